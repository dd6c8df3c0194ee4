"""Rules that keep one domain's administrators inside their domain, and accounts safe."""

from __future__ import annotations

import pytest
from psycopg import errors

from gaas.core import bootstrap
from tests.support import PASSWORD, World, assert_problem, audit_rows, rid


@pytest.fixture(scope="module")
def domains(world: World):
    return world.domain(), world.domain()


def _domain_id(client, admin, code):
    return client.get("/api/v1/domains", params={"q": code}, headers=admin.headers).json()["items"][0]["id"]


def test_domain_admin_cannot_take_over_a_user_with_rights_elsewhere(client, world, domains):
    health, justice = domains
    root = world.admin()
    health_admin = world.user(health, "domain_admin")
    # U lives in healthcare but also administers justice.
    u = world.user(health)
    role = client.get("/api/v1/roles", params={"name": "domain_admin"}, headers=root.headers).json()["items"][0]
    client.post(f"/api/v1/users/{u.id}/roles", json={"role_id": role["id"], "scope_type": "domain",
                                                      "scope_id": _domain_id(client, root, justice)},
                headers=root.headers).raise_for_status()
    for response in (
        client.post(f"/api/v1/users/{u.id}/password", json={"new_password": "taken over password"},
                    headers=health_admin.headers),
        client.post("/api/v1/tokens", params={"user_id": str(u.id)}, json={"name": "mine now"},
                    headers=health_admin.headers),
        client.patch(f"/api/v1/users/{u.id}", json={"email": "attacker@example.org", "version": 1},
                     headers=health_admin.headers),
        client.delete(f"/api/v1/users/{u.id}", headers=health_admin.headers),
    ):
        assert "rights you do not have" in assert_problem(response, 403)["detail"]
    # A platform administrator may.
    assert client.post(f"/api/v1/users/{u.id}/password", json={"new_password": "reset by the platform"},
                       headers=root.headers).status_code == 200
    # And a plain healthcare user is the healthcare admin's to manage.
    plain = world.user(health)
    created = client.post("/api/v1/tokens", params={"user_id": str(plain.id)}, json={"name": "for plain"},
                          headers=health_admin.headers)
    assert created.status_code == 201 and created.json()["user_id"] == str(plain.id)


def test_domain_roles_cannot_be_given_a_global_scope(client, world, database, domains):
    health, _ = domains
    root = world.admin()
    health_admin = world.user(health, "domain_admin")
    role = client.post("/api/v1/roles", json={"name": "night_watch", "domain": health,
                                              "permissions": ["incident.view"]}, headers=health_admin.headers).json()
    globe = world.user(None)
    response = client.post(f"/api/v1/users/{globe.id}/roles", json={"role_id": role["id"], "scope_type": "global"},
                           headers=root.headers)
    assert_problem(response, 422, "scope_type")
    # Even if such a row existed, the database reads it as scoped to the role's domain.
    with database.owner_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO gaas_iam.user_roles (user_id, role_id, scope_type, created_by)"
                             " VALUES (%s, %s, 'global', %s)", (globe.id, role["id"], root.id))
    grants = database.owner_rows("SELECT scope_type, scope_domain FROM gaas_iam.actor_grants(:u)", u=globe.id)
    assert grants == [{"scope_type": "domain", "scope_domain": health}]


def test_unassigning_what_rls_forbids_is_refused_not_faked(client, world, database, domains):
    health, _ = domains
    root = world.admin()
    globe = world.user(None)
    agent_role = client.get("/api/v1/roles", params={"name": "service_desk_agent"},
                            headers=root.headers).json()["items"][0]
    assignment = client.post(f"/api/v1/users/{globe.id}/roles",
                             json={"role_id": agent_role["id"], "scope_type": "domain",
                                   "scope_id": _domain_id(client, root, health)}, headers=root.headers).json()
    health_admin = world.user(health, "domain_admin")
    request_id = rid()
    response = client.delete(f"/api/v1/users/{globe.id}/roles/{assignment['id']}",
                             headers={**health_admin.headers, "X-Request-ID": request_id})
    assert_problem(response, 403)
    assert audit_rows(database, request_id) == []
    assert database.owner_rows("SELECT count(*) AS n FROM gaas_iam.user_roles WHERE id = :i",
                               i=assignment["id"])[0]["n"] == 1


def test_auditors_read_the_audit_log_of_their_scope_only(client, world, domains):
    health, justice = domains
    root = world.admin()
    # A global user whose auditor role is scoped to healthcare.
    auditor = world.user(None)
    role = client.get("/api/v1/roles", params={"name": "auditor"}, headers=root.headers).json()["items"][0]
    client.post(f"/api/v1/users/{auditor.id}/roles", json={"role_id": role["id"], "scope_type": "domain",
                                                           "scope_id": _domain_id(client, root, health)},
                headers=root.headers).raise_for_status()
    world.user(justice, "service_desk_agent")  # leaves justice audit rows
    rows = client.get("/api/v1/audit-log", params={"limit": 500}, headers=auditor.headers).json()["items"]
    assert rows and {r["domain"] for r in rows} == {health}


def test_history_shows_addresses_to_auditors_only(client, world, domains):
    health, _ = domains
    person = world.user(health)
    client.post("/api/v1/auth/token", data={"username": person.email, "password": "wrong password!"})
    agent = world.user(health, "service_desk_agent")
    auditor = world.user(health, "auditor")
    as_agent = client.get(f"/api/v1/users/{person.id}/history", headers=agent.headers).json()["items"]
    as_auditor = client.get(f"/api/v1/users/{person.id}/history", headers=auditor.headers).json()["items"]
    assert [h["action"] for h in as_agent] == [h["action"] for h in as_auditor]
    failed = next(h for h in as_auditor if h["action"] == "login_failed")
    assert failed["user_agent"] == "testclient"
    assert all(h["user_agent"] is None and h["ip_address"] is None for h in as_agent)


def test_a_locked_account_cannot_be_opened_by_a_racing_correct_password(database, world, domains):
    """The database re-checks the lock under a row lock, whatever the caller already decided."""
    health, _ = domains
    person = world.user(health)
    with database.owner_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE gaas_iam.users SET locked_until = now() + interval '15 minutes',"
                             " failed_login_attempts = 5 WHERE id = %s", (person.id,))
    with database.psycopg_app() as conn:
        ok, _ = conn.execute("SELECT * FROM gaas_iam.record_login(%s, %s, true, true, NULL, NULL, 'race', 'r1', 5,"
                             " 15)", (person.id, person.email)).fetchone()
        conn.commit()
    assert ok is False
    state = database.owner_rows("SELECT failed_login_attempts, locked_until IS NOT NULL AS locked"
                                " FROM gaas_iam.users WHERE id = :id", id=person.id)[0]
    assert state == {"failed_login_attempts": 5, "locked": True}


def test_changing_a_password_ends_login_sessions(client, world, domains):
    health, _ = domains
    person = world.user(health)
    session = client.post("/api/v1/auth/token", data={"username": person.email, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    changed = client.post("/api/v1/me/password", json={"current_password": PASSWORD,
                                                        "new_password": "  spaces kept here  "}, headers=headers)
    assert changed.status_code == 204
    assert_problem(client.get("/api/v1/me", headers=headers), 401)
    assert client.get("/api/v1/me", headers=person.headers).status_code == 200  # API tokens stay
    assert_problem(client.post("/api/v1/auth/token", data={"username": person.email,
                                                           "password": "spaces kept here"}), 401)
    assert client.post("/api/v1/auth/token", data={"username": person.email,
                                                   "password": "  spaces kept here  "}).status_code == 200


def test_read_only_tokens_cannot_log_out_or_revoke(client, world, domains):
    health, _ = domains
    person = world.user(health, read_only=True)
    assert_problem(client.post("/api/v1/auth/logout", headers=person.headers), 403)
    token_id = client.get("/api/v1/tokens", headers=person.headers).json()[0]["id"]
    assert_problem(client.delete(f"/api/v1/tokens/{token_id}", headers=person.headers), 403)


def test_grants_on_a_deleted_domain_stop_applying(client, world, database):
    root = world.admin()
    home, gone = world.domain(), world.domain()
    person = world.user(home)
    role = client.get("/api/v1/roles", params={"name": "auditor"}, headers=root.headers).json()["items"][0]
    gone_id = _domain_id(client, root, gone)
    client.post(f"/api/v1/users/{person.id}/roles", json={"role_id": role["id"], "scope_type": "domain",
                                                          "scope_id": gone_id}, headers=root.headers)
    assert sorted(client.get("/api/v1/me", headers=person.headers).json()["visible_domains"]) == sorted([home, gone])
    assert client.delete(f"/api/v1/domains/{gone_id}", headers=root.headers).status_code == 200
    assert client.get("/api/v1/me", headers=person.headers).json()["visible_domains"] == [home]


def test_serving_refuses_privileged_roles(database):
    bootstrap.check_app_role(database.app_engine)
    with pytest.raises(bootstrap.SetupError, match="row-level security"):
        bootstrap.check_app_role(database.owner_engine)
    with pytest.raises(bootstrap.SetupError, match="BYPASSRLS"):
        bootstrap.check_owner_role(database.app_url)


def test_rls_on_assignments_tokens_and_roles(database, world, domains):
    health, justice = domains
    nurse = world.user(health, "domain_admin")
    judge = world.user(justice, "domain_admin")
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                     (str(nurse.id), health))
        assert conn.execute("SELECT count(*) FROM gaas_iam.user_roles WHERE user_id = %s",
                            (judge.id,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM gaas_iam.api_tokens WHERE user_id = %s",
                            (judge.id,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM gaas_iam.roles WHERE domain = %s", (justice,)).fetchone()[0] == 0
        role_id = conn.execute("SELECT id FROM gaas_iam.roles WHERE name = 'platform_admin'").fetchone()[0]
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"), conn.transaction():
            conn.execute("INSERT INTO gaas_iam.user_roles (user_id, role_id, scope_type, created_by)"
                         " VALUES (%s, %s, 'global', %s)", (judge.id, role_id, nurse.id))
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"), conn.transaction():
            conn.execute("INSERT INTO gaas_iam.roles (name, domain, created_by, updated_by)"
                         " VALUES ('sneaky', %s, %s, %s)", (justice, nurse.id, nurse.id))
        assert conn.execute("UPDATE gaas_iam.api_tokens SET revoked_at = now() WHERE user_id = %s",
                            (judge.id,)).rowcount == 0
