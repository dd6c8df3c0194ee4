"""The audit log API, record history, and monthly partitions kept ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import World, assert_problem, audit_rows, unique


def test_auditor_reads_own_domain_only_and_others_are_refused(client, world: World):
    health, justice = world.domain(), world.domain()
    health_admin, justice_admin = world.user(health, "domain_admin"), world.user(justice, "domain_admin")
    client.post("/api/v1/users", json={"email": f"{unique('a')}@example.org", "name": "H", "domain": health},
                headers=health_admin.headers)
    client.post("/api/v1/users", json={"email": f"{unique('a')}@example.org", "name": "J", "domain": justice},
                headers=justice_admin.headers)
    auditor = world.user(health, "auditor")
    page = client.get("/api/v1/audit-log", params={"limit": 500}, headers=auditor.headers).json()
    domains = {row["domain"] for row in page["items"]}
    assert health in domains
    assert justice not in domains
    assert None not in domains  # platform-level rows are for global auditors only
    agent = world.user(health, "service_desk_agent")
    assert assert_problem(client.get("/api/v1/audit-log", headers=agent.headers), 403)["detail"]


def test_filters_and_newest_first_paging(client, world: World):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    created = client.post("/api/v1/users", json={"email": f"{unique('f')}@example.org", "name": "F", "domain": domain},
                          headers=admin.headers).json()
    for name in ("F2", "F3"):
        version = client.get(f"/api/v1/users/{created['id']}", headers=admin.headers).json()["version"]
        client.patch(f"/api/v1/users/{created['id']}", json={"name": name, "version": version}, headers=admin.headers)
    auditor = world.user(domain, "auditor")

    def query(**params):
        response = client.get("/api/v1/audit-log", params=params, headers=auditor.headers)
        assert response.status_code == 200, response.text
        return response.json()

    rows = query(entity_type="user", entity_id=created["id"])["items"]
    assert [r["action"] for r in rows] == ["update", "update", "create"]
    assert [r["changes"]["after"].get("name") for r in rows] == ["F3", "F2", "F"]
    assert query(entity_id=created["id"], action="create")["items"][0]["action"] == "create"
    assert {r["user_id"] for r in query(user_id=str(admin.id), limit=500)["items"]} == {str(admin.id)}
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert query(entity_id=created["id"], since=future)["items"] == []
    assert len(query(entity_id=created["id"], until=future)["items"]) == 3
    first = query(entity_id=created["id"], limit=2)
    second = query(entity_id=created["id"], limit=2, cursor=first["next_cursor"])
    assert [r["id"] for r in first["items"] + second["items"]] == [r["id"] for r in rows]
    assert second["next_cursor"] is None


def test_one_action_reads_as_one_event(client, database, world: World):
    """Everything a request wrote carries its request id (returned as X-Request-ID)."""
    admin = world.admin()
    domain = world.domain()
    user = world.user(domain)
    role = client.get("/api/v1/roles", params={"name": "auditor"}, headers=admin.headers).json()["items"][0]
    response = client.post(f"/api/v1/users/{user.id}/roles", json={"role_id": role["id"]}, headers=admin.headers)
    request_id = response.headers["x-request-id"]
    rows = audit_rows(database, request_id)
    assert len(rows) == 1 and rows[0]["request_id"] == request_id
    # A client-supplied id is kept when it is sane, replaced when it is not.
    assert client.get("/api/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert client.get("/api/health", headers={"X-Request-ID": "bad id; drop"}).headers["x-request-id"] != "bad id; drop"


def test_history_of_a_user_includes_logins_and_role_changes(client, world: World):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    person = world.user(domain)
    client.post("/api/v1/auth/token", data={"username": person.email, "password": "wrong password!"})
    history = client.get(f"/api/v1/users/{person.id}/history", headers=admin.headers).json()["items"]
    actions = [h["action"] for h in history]
    assert actions[0] == "create"
    assert "login_failed" in actions
    assert_problem(client.get(f"/api/v1/users/{person.id}/history", headers=world.user(world.domain(), "domain_admin")
                              .headers), 404)


def test_partitions_are_kept_ahead_and_catch_everything(database):
    partitions = {r["name"] for r in database.owner_rows(
        "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'gaas_audit.audit_log'::regclass")}
    now = datetime.now(UTC)
    for months in range(0, 13):
        year, month = divmod(now.month - 1 + months, 12)
        assert f"audit_log_{now.year + year}_{month + 1:02d}" in partitions
    assert "audit_log_default" in partitions

    # A row beyond the horizon lands in the default partition, and moves when its month arrives.
    with database.owner_engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO gaas_audit.audit_log (action, entity_type, timestamp)"
                             " VALUES ('far', 'test', now() + interval '20 months')")
    where = "FROM gaas_audit.audit_log_default WHERE action = 'far'"
    assert database.owner_rows(f"SELECT count(*) AS n {where}")[0]["n"] == 1
    with database.owner_engine.begin() as conn:
        created = conn.exec_driver_sql("SELECT gaas_audit.ensure_audit_log_partitions(1, 21)").scalar()
    assert created >= 8
    assert database.owner_rows(f"SELECT count(*) AS n {where}")[0]["n"] == 0
    assert database.owner_rows("SELECT count(*) AS n FROM gaas_audit.audit_log WHERE action = 'far'")[0]["n"] == 1


def test_every_remaining_write_path_is_audited(client, database, world: World):
    """Profile edits, own password change, unlock, token revoke and logout: one row each."""
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    person = world.user(domain)

    def one_row(response, action: str, entity_type: str) -> dict:
        assert response.status_code < 300, response.text
        rows = audit_rows(database, response.headers["x-request-id"])
        assert [(r["action"], r["entity_type"]) for r in rows] == [(action, entity_type)]
        return rows[0]

    me = client.get("/api/v1/me", headers=person.headers).json()
    row = one_row(client.patch("/api/v1/me", json={"phone": "+254 700 000", "version": me["version"]},
                               headers=person.headers), "update", "user")
    assert row["changes"] == {"before": {"phone": None}, "after": {"phone": "+254 700 000"}}

    row = one_row(client.post("/api/v1/me/password", json={"current_password": "correct horse battery",
                                                           "new_password": "a different password"},
                              headers=person.headers), "update", "user")
    assert row["changes"]["after"]["password_hash"] == "[redacted]"
    assert set(row["changes"]["after"]) == {"password_hash", "password_updated_at"}

    for _ in range(5):
        client.post("/api/v1/auth/token", data={"username": person.email, "password": "wrong password!"})
    row = one_row(client.post(f"/api/v1/users/{person.id}/unlock", headers=admin.headers), "update", "user")
    assert row["changes"]["before"]["failed_login_attempts"] == 5
    assert row["changes"]["after"] == {"failed_login_attempts": 0, "locked_until": None}

    token = client.post("/api/v1/tokens", json={"name": "script"}, headers=person.headers).json()
    row = one_row(client.delete(f"/api/v1/tokens/{token['id']}", headers=person.headers), "delete", "api_token")
    assert row["changes"]["before"] == {"deleted_at": None, "revoked_at": None}
    assert row["domain"] == domain

    session = client.post("/api/v1/auth/token", data={"username": person.email,
                                                      "password": "a different password"}).json()["access_token"]
    row = one_row(client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {session}"}),
                  "update", "api_token")
    assert row["changes"]["before"] == {"revoked_at": None}
    assert row["domain"] == domain


def test_reads_write_no_audit_rows(client, database, world: World):
    person = world.user(world.domain(), "auditor")
    for path in ("/api/v1/me", "/api/v1/users", "/api/v1/roles", "/api/v1/domains", "/api/v1/audit-log"):
        response = client.get(path, headers=person.headers)
        assert response.status_code == 200
        assert audit_rows(database, response.headers["x-request-id"]) == []
