"""Passwords: long enough is not enough; common, breached-list and personal ones are refused,
by name of the field and with the reason, on every way a password is set."""

from __future__ import annotations

from tests.support import PASSWORD, assert_problem


def test_weak_passwords_are_refused_everywhere(client, world):
    admin = world.admin()
    domain = world.domain()
    for weak, why in (("password1234", "common"), ("qwertyuiop123", "common"),
                      ("Grace Hopper 1906", "personal")):
        response = client.post("/api/v1/users", headers=admin.headers, json={
            "email": "grace.hopper@example.org", "name": "Grace Hopper", "domain": domain, "password": weak})
        body = assert_problem(response, 422)
        assert [e["field"] for e in body["errors"]] == ["password"], (why, body)
        assert body["errors"][0]["type"] == "weak_password" and body["errors"][0]["message"]
    created = client.post("/api/v1/users", headers=admin.headers, json={
        "email": "grace.hopper@example.org", "name": "Grace Hopper", "domain": domain, "password": PASSWORD})
    assert created.status_code == 201, created.text

    person = world.user(domain, "service_desk_agent")
    change = client.post("/api/v1/me/password", headers=person.headers,
                         json={"current_password": PASSWORD, "new_password": "letmein12345"})
    assert assert_problem(change, 422)["errors"][0]["field"] == "new_password"
    same = client.post("/api/v1/me/password", headers=person.headers,
                       json={"current_password": PASSWORD, "new_password": PASSWORD})
    assert assert_problem(same, 422)["errors"][0]["type"] == "unchanged"
    reset = client.post(f"/api/v1/users/{person.id}/password", headers=admin.headers,
                        json={"new_password": "iloveyou123456"})
    assert assert_problem(reset, 422)["errors"][0]["field"] == "new_password"
    # Nothing was changed by the refusals: the old password still logs in.
    login = client.post("/api/v1/auth/token", data={"username": person.email, "password": PASSWORD})
    assert login.status_code == 200
