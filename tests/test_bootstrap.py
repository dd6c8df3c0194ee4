"""The first start: a platform administrator `admin` when the database has none."""

from __future__ import annotations

from gaas.core import bootstrap
from tests.support import assert_problem


def test_admin_is_created_once_with_a_generated_password(client, database, monkeypatch):
    monkeypatch.delenv("GAAS_ADMIN_PASSWORD", raising=False)
    first = bootstrap.ensure_admin()
    assert first.created and first.password and len(first.password) >= 16
    again = bootstrap.ensure_admin()
    assert again == bootstrap.AdminBootstrap(created=False)

    login = client.post("/api/v1/auth/token", data={"username": "admin", "password": first.password})
    assert login.status_code == 200
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}).json()
    assert me["username"] == "admin" and me["domain"] is None and me["visible_domains"] is None
    assert_problem(client.post("/api/v1/auth/token", data={"username": "system", "password": ""}), 422)
    assert_problem(client.post("/api/v1/auth/token", data={"username": "system", "password": "x"}), 401)
