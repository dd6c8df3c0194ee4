"""Bad input of every kind gets a 4xx problem+json naming the field, and writes nothing."""

from __future__ import annotations

import pytest

from tests.support import World, assert_problem, audit_rows, rid


@pytest.fixture(scope="module")
def admin(world: World):
    return world.user(world.domain(), "domain_admin")


def test_malformed_json(client, database, admin):
    request_id = rid()
    response = client.post("/api/v1/users", content=b'{"email": "a@example.org", "name": ',
                           headers={**admin.headers, "Content-Type": "application/json", "X-Request-ID": request_id})
    body = assert_problem(response, 400, "body")
    assert "malformed JSON" in body["detail"]
    assert audit_rows(database, request_id) == []


def test_missing_body(client, admin):
    assert_problem(client.post("/api/v1/users", headers=admin.headers), 422, "body")


def test_body_that_is_not_an_object(client, admin):
    assert_problem(client.post("/api/v1/users", json=["a", "b"], headers=admin.headers), 422)


def test_bad_uuid_in_path_and_query(client, admin):
    assert_problem(client.get("/api/v1/users/not-a-uuid", headers=admin.headers), 422, "user_id")
    assert_problem(client.get("/api/v1/audit-log", params={"entity_id": "nope"}, headers=admin.headers), 422,
                   "entity_id")


def test_wrong_query_types_and_enums(client, admin):
    assert_problem(client.get("/api/v1/users", params={"limit": "many"}, headers=admin.headers), 422, "limit")
    assert_problem(client.get("/api/v1/users", params={"status": "sleeping"}, headers=admin.headers), 422, "status")
    assert_problem(client.get("/api/v1/users", params={"include_deleted": "perhaps"}, headers=admin.headers), 422,
                   "include_deleted")


def test_bad_if_match(client, admin):
    response = client.patch(f"/api/v1/users/{admin.id}", json={"name": "X"},
                            headers={**admin.headers, "If-Match": "yesterday"})
    assert_problem(response, 422, "If-Match")


def test_several_errors_are_all_reported(client, admin):
    response = client.post("/api/v1/users", json={"email": "bad", "name": "", "surname": "x"}, headers=admin.headers)
    fields = {e["field"] for e in assert_problem(response, 422)["errors"]}
    assert {"email", "name", "surname"} <= fields


def test_unknown_route_and_method(client, admin):
    assert_problem(client.get("/api/v1/nothing-here", headers=admin.headers), 404)
    assert_problem(client.put("/api/v1/users", json={}, headers=admin.headers), 405)
    assert_problem(client.get("/api/v1/nothing/0191a1c0-0000-7000-8000-000000000000/history",
                              headers=admin.headers), 404)


def test_form_login_validation(client):
    assert_problem(client.post("/api/v1/auth/token", data={"username": "x"}), 422, "password")
    assert_problem(client.post("/api/v1/auth/token", data={"username": "x", "password": "y", "grant_type": "magic"}),
                   422, "grant_type")


def test_nothing_partial_is_written(client, database, admin):
    """A request that fails half-way (the role grant after the user insert) leaves nothing."""
    email = "half-way@example.org"
    response = client.post("/api/v1/users", json={"email": email, "name": "Half", "domain": "no-such-domain"},
                           headers=admin.headers)
    assert response.status_code in (403, 422)
    assert database.owner_rows("SELECT count(*) AS n FROM gaas_iam.users WHERE email = :e", e=email)[0]["n"] == 0


def test_null_for_a_required_field_is_named(client, admin):
    me = client.get(f"/api/v1/users/{admin.id}", headers=admin.headers).json()
    for body, field in (({"email": None}, "email"), ({"name": None}, "name"), ({"status": None}, "status")):
        response = client.patch(f"/api/v1/users/{admin.id}", json={**body, "version": me["version"]},
                                headers=admin.headers)
        assert_problem(response, 422, field)
    role = client.post("/api/v1/roles", json={"name": "nullable_test", "domain": admin.domain,
                                              "permissions": ["incident.view"]}, headers=admin.headers).json()
    assert_problem(client.patch(f"/api/v1/roles/{role['id']}", json={"permissions": None, "version": 1},
                                headers=admin.headers), 422, "permissions")


def test_nul_characters_are_refused_cleanly(client, admin):
    assert_problem(client.post("/api/v1/users", json={"email": "nul@example.org", "name": "a\u0000b",
                                                      "domain": admin.domain}, headers=admin.headers), 422)
    assert_problem(client.get("/api/v1/users", params={"q": "a\u0000"}, headers=admin.headers), 422)
    response = client.post("/api/v1/auth/token", data={"username": "x\u0000y", "password": "whatever"})
    assert response.status_code in (401, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("cursor", [
    "W3siZSI6MX0sIHsidSI6MX1d",                       # [{"u":1},{"u":1}]-like garbage
    "WyJuYW1lIiwgNSwgeyJ1IjogIjAxOTEifV0",            # ["name", 5, {"u": "0191"}]: bad uuid
    "WyJuYW1lIiwgNSwgeyJ1IjogIjAxYTIxYTMwLWFlOTYtN2E2My05ODQzLWI4M2JiODEwNTc0ZiJ9XQ",  # int for a text column
    "WyJlbWFpbCIsICJ4IiwgeyJ1IjogIjAxYTIxYTMwLWFlOTYtN2E2My05ODQzLWI4M2JiODEwNTc0ZiJ9XQ",  # other sort
    "W10", "bnVsbA", "%%%",
])
def test_tampered_cursors_are_422(client, admin, cursor):
    assert_problem(client.get("/api/v1/users", params={"cursor": cursor, "sort": "name"}, headers=admin.headers),
                   422, "cursor")


def test_bad_uuid_in_a_body(client, admin):
    assert_problem(client.post(f"/api/v1/users/{admin.id}/roles", json={"role_id": "nope"}, headers=admin.headers),
                   422, "role_id")


def test_every_response_carries_a_request_id(client, admin):
    for response in (client.get("/api/v1/nothing", headers=admin.headers),
                     client.post("/api/v1/users", json={}, headers=admin.headers),
                     client.get("/api/v1/users")):
        assert response.status_code >= 400
        assert response.headers["x-request-id"] == response.json()["request_id"]


def test_an_unexpected_error_is_a_problem_with_a_request_id(database):
    """Even a bug answers problem+json with the request id, and no stack trace."""
    from fastapi.testclient import TestClient

    from gaas.core.app import create_app

    app = create_app(database.factory)

    @app.get("/api/test-boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = TestClient(app, raise_server_exceptions=False).get("/api/test-boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert "secret internals" not in response.text and "Traceback" not in response.text
