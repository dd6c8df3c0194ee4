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
