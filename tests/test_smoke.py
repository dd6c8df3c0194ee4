from tests.support import assert_problem


def test_health_and_ready(client):
    assert client.get("/api/health").json()["status"] == "ok"
    ready = client.get("/api/ready")
    assert ready.status_code == 200
    assert ready.json()["revision"] == "0001_foundation"


def test_unauthenticated_is_a_problem(client):
    response = client.get("/api/v1/users")
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["instance"] == "/api/v1/users"
    assert response.headers["x-request-id"]
