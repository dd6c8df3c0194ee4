"""Password spraying is slowed per client address, across accounts, without locking the
accounts being sprayed; other addresses are not affected."""

from __future__ import annotations

from starlette.testclient import TestClient

from gaas.core.app import create_app
from gaas.core.settings import get_settings
from tests.support import PASSWORD


def test_one_address_guessing_many_accounts_is_made_to_wait(world, database, monkeypatch):
    monkeypatch.setenv("GAAS_LOGIN_ADDRESS_MAX_FAILURES", "4")
    get_settings.cache_clear()
    try:
        domain = world.domain()
        people = [world.user(domain, "service_desk_agent") for _ in range(3)]
        app = create_app(database.factory)
        attacker = TestClient(app, client=("203.0.113.66", 40000))
        neighbour = TestClient(app, client=("198.51.100.7", 40000))
        answers = [attacker.post("/api/v1/auth/token", data={"username": p.email, "password": "wrong guess 123"})
                   for p in people + people[:1]]
        assert [a.status_code for a in answers] == [401, 401, 401, 401]
        # The fifth attempt, even with the right password, waits: the address is throttled.
        throttled = attacker.post("/api/v1/auth/token", data={"username": people[1].email, "password": PASSWORD})
        assert throttled.status_code == 429 and throttled.headers["content-type"] == "application/problem+json"
        assert throttled.headers["retry-after"] == str(15 * 60) and "address" in throttled.json()["detail"]
        # Another address logs the same person in, and no sprayed account was locked.
        ok = neighbour.post("/api/v1/auth/token", data={"username": people[1].email, "password": PASSWORD})
        assert ok.status_code == 200, ok.text
        rows = database.owner_rows("SELECT count(*) AS n FROM gaas_iam.users WHERE email = ANY(:e) "
                                   "AND locked_until IS NOT NULL", e=[p.email for p in people])
        assert rows[0]["n"] == 0
        refused = database.owner_rows("SELECT changes->>'reason' AS reason FROM gaas_audit.audit_log "
                                      "WHERE action = 'login_failed' AND ip_address = '203.0.113.66' "
                                      "ORDER BY timestamp DESC LIMIT 1")
        assert refused and "address" in (refused[0]["reason"] or ""), refused
    finally:
        get_settings.cache_clear()
