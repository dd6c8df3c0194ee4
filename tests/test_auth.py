"""Logging in, lockout, tokens: the rules of gaas.iam's authentication."""

from __future__ import annotations

from tests.support import PASSWORD, World, assert_problem, audit_rows, rid


def login(client, username: str, password: str, request_id: str | None = None):
    headers = {"X-Request-ID": request_id} if request_id else {}
    return client.post("/api/v1/auth/token", data={"username": username, "password": password}, headers=headers)


def test_login_by_email_or_username_returns_a_working_bearer_token(client, database, world: World):
    person = world.user(world.domain(), "service_desk_agent")
    username = person.email.split("@")[0]
    request_id = rid()
    response = login(client, person.email.upper(), PASSWORD, request_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["email"] == person.email
    assert me.json()["last_login_at"] is not None
    rows = audit_rows(database, request_id)
    assert [(r["action"], r["entity_type"]) for r in rows] == [("login", "user"), ("create", "api_token")]
    assert rows[0]["entity_id"] == person.id
    assert rows[0]["user_agent"] == "testclient"
    assert rows[0]["domain"] == person.domain
    assert login(client, username, PASSWORD).status_code == 200


def test_failed_logins_lock_the_account_for_a_while(client, database, world: World):
    person = world.user(world.domain())
    for attempt in range(1, 5):
        request_id = rid()
        response = login(client, person.email, "wrong password!", request_id)
        assert_problem(response, 401)
        assert "locked_until" not in response.json()
        row = audit_rows(database, request_id)[0]
        assert row["action"] == "login_failed"
        assert row["changes"]["reason"] == "wrong password"
        assert row["changes"]["after"]["failed_login_attempts"] == attempt
    fifth = login(client, person.email, "wrong password!")
    assert assert_problem(fifth, 401)["locked_until"]
    state = database.owner_rows("SELECT failed_login_attempts, locked_until > now() + interval '14 minutes' AS long"
                                " FROM gaas_iam.users WHERE id = :id", id=person.id)[0]
    assert state == {"failed_login_attempts": 5, "long": True}

    # Locked: even the right password is refused, and the attempt is audited.
    request_id = rid()
    assert_problem(login(client, person.email, PASSWORD, request_id), 401)
    assert audit_rows(database, request_id)[0]["changes"]["reason"] == "account locked"
    # A lockout guards password logins only: it must not let a guesser switch off API tokens.
    assert client.get("/api/v1/me", headers=person.headers).status_code == 200

    # Fifteen minutes later (moved back in the database: the clock is PostgreSQL's) it opens again.
    with database.owner_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE gaas_iam.users SET locked_until = now() - interval '1 second' WHERE id = %s",
                             (person.id,))
    # A wrong password after the lock ran out starts a fresh count instead of re-locking at once.
    response = login(client, person.email, "wrong again!!")
    assert "locked_until" not in response.json()
    assert login(client, person.email, PASSWORD).status_code == 200
    state = database.owner_rows("SELECT failed_login_attempts, locked_until FROM gaas_iam.users WHERE id = :id",
                                id=person.id)[0]
    assert state == {"failed_login_attempts": 0, "locked_until": None}


def test_admin_unlock_and_reset_password(client, database, world: World):
    domain = world.domain()
    person = world.user(domain)
    admin = world.user(domain, "domain_admin")
    for _ in range(5):
        login(client, person.email, "wrong password!")
    unlocked = client.post(f"/api/v1/users/{person.id}/unlock", headers=admin.headers)
    assert unlocked.status_code == 200
    assert unlocked.json()["locked_until"] is None
    assert login(client, person.email, PASSWORD).status_code == 200

    request_id = rid()
    reset = client.post(f"/api/v1/users/{person.id}/password", json={"new_password": "a brand new password"},
                        headers={**admin.headers, "X-Request-ID": request_id})
    assert reset.status_code == 200
    rows = audit_rows(database, request_id)
    # The password changes, and the login session opened above is ended with it.
    assert [(r["action"], r["entity_type"]) for r in rows] == [("update", "user"), ("update", "api_token")]
    assert rows[0]["changes"]["before"]["password_hash"] == "[redacted]"
    assert rows[0]["changes"]["after"]["password_hash"] == "[redacted]"
    assert rows[1]["changes"] == {"before": {"revoked_at": None},
                                  "after": {"revoked_at": rows[1]["changes"]["after"]["revoked_at"]}}
    assert rows[1]["changes"]["after"]["revoked_at"] is not None
    assert "a brand new password" not in str(rows)
    assert_problem(login(client, person.email, PASSWORD), 401)
    assert login(client, person.email, "a brand new password").status_code == 200


def test_unknown_and_inactive_users_cannot_log_in(client, database, world: World):
    request_id = rid()
    assert_problem(login(client, "nobody@example.org", PASSWORD, request_id), 401)
    row = audit_rows(database, request_id)[0]
    assert (row["action"], row["entity_id"], row["user_email"]) == ("login_failed", None, "nobody@example.org")
    inactive = world.user(world.domain(), status="inactive")
    assert_problem(login(client, inactive.email, PASSWORD), 401)
    assert_problem(client.get("/api/v1/me", headers=inactive.headers), 401)


def test_change_own_password(client, world: World):
    person = world.user(world.domain())
    wrong = client.post("/api/v1/me/password", json={"current_password": "nope", "new_password": "another long one"},
                        headers=person.headers)
    assert_problem(wrong, 422, "current_password")
    ok = client.post("/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "another long one"},
                     headers=person.headers)
    assert ok.status_code == 204
    assert login(client, person.email, "another long one").status_code == 200


def test_api_tokens_lifecycle(client, database, world: World):
    person = world.user(world.domain(), "service_desk_agent")
    request_id = rid()
    created = client.post("/api/v1/tokens", json={"name": "monitoring", "read_only": True, "expires_in_days": 30},
                          headers={**person.headers, "X-Request-ID": request_id})
    assert created.status_code == 201
    token = created.json()["token"]
    prefix, key, secret = token.split(".")
    assert (prefix, key) == ("gaas", created.json()["key"])
    stored = database.owner_rows("SELECT secret_hash FROM gaas_iam.api_tokens WHERE key = :k", k=key)[0]
    assert secret not in stored["secret_hash"] and len(stored["secret_hash"]) == 64
    rows = audit_rows(database, request_id)
    assert rows[0]["changes"]["after"]["secret_hash"] == "[redacted]"
    assert secret not in str(rows)

    listed = client.get("/api/v1/tokens", headers=person.headers).json()
    assert "monitoring" in [t["name"] for t in listed]
    assert all("token" not in t and "secret_hash" not in t for t in listed)

    # Read-only tokens read, and cannot write (refused by the service and by PostgreSQL).
    read_only = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=read_only).status_code == 200
    used = database.owner_rows("SELECT last_used_at FROM gaas_iam.api_tokens WHERE key = :k", k=key)[0]
    assert used["last_used_at"] is not None
    assert_problem(client.patch("/api/v1/me", json={"phone": "123", "version": 1}, headers=read_only), 403)
    assert_problem(client.post("/api/v1/tokens", json={"name": "x"}, headers=read_only), 403)

    revoked = client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=person.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert_problem(client.get("/api/v1/me", headers=read_only), 401)


def test_bad_tokens_are_refused(client, database, world: World):
    person = world.user(world.domain())
    for value in ("nonsense", "gaas.abc", "gaas.ffffffffffffffff.secret", person.token + "x"):
        assert_problem(client.get("/api/v1/me", headers={"Authorization": f"Bearer {value}"}), 401)
    key = person.token.split(".")[1]
    with database.owner_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE gaas_iam.api_tokens SET expires_at = now() - interval '1 minute' WHERE key = %s",
                             (key,))
    assert "expired" in assert_problem(client.get("/api/v1/me", headers=person.headers), 401)["detail"]


def test_logout_revokes_the_session_token(client, world: World):
    person = world.user(world.domain())
    token = login(client, person.email, PASSWORD).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert_problem(client.get("/api/v1/me", headers=headers), 401)


def test_deleted_users_tokens_stop_working(client, world: World):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    person = world.user(domain)
    assert client.get("/api/v1/me", headers=person.headers).status_code == 200
    assert client.delete(f"/api/v1/users/{person.id}", headers=admin.headers).status_code == 200
    assert_problem(client.get("/api/v1/me", headers=person.headers), 401)
