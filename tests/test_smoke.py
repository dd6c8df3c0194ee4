from fastapi.testclient import TestClient

from gaas.core import bootstrap
from gaas.core.app import create_app
from tests.support import assert_problem


def test_health_and_ready(client):
    assert client.get("/api/health").json()["status"] == "ok"
    ready = client.get("/api/ready")
    assert ready.status_code == 200
    assert ready.json()["revision"] == bootstrap.head_revision()


def test_every_response_carries_the_security_headers(client):
    for response in (client.get("/api/health"), client.get("/api/v1/users"), client.get("/api/v1/nowhere")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_unauthenticated_is_a_problem(client):
    response = client.get("/api/v1/users")
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["instance"] == "/api/v1/users"
    assert response.headers["x-request-id"]


def test_openapi_describes_the_identity_api(client):
    spec = client.get("/api/openapi.json").json()
    for path in ("/api/v1/auth/token", "/api/v1/me", "/api/v1/domains", "/api/v1/users", "/api/v1/roles",
                 "/api/v1/users/{user_id}/roles", "/api/v1/tokens", "/api/v1/audit-log",
                 "/api/v1/{resource}/{record_id}/history", "/api/health", "/api/ready"):
        assert path in spec["paths"], path
    assert client.get("/api/docs").status_code == 200


def test_ready_is_503_when_the_schema_is_behind(client, database):
    with database.owner_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE public.alembic_version SET version_num = '0000_older'")
    try:
        # A plain client: this 503 is the behaviour under test, not a server error.
        response = TestClient(client.app).get("/api/ready")
        body = assert_problem(response, 503)
        assert "0000_older" in body["detail"]
        assert response.headers["retry-after"]
    finally:
        with database.owner_engine.begin() as conn:
            conn.exec_driver_sql("UPDATE public.alembic_version SET version_num = %s", (bootstrap.head_revision(),))
    assert client.get("/api/ready").status_code == 200


def test_ready_is_503_when_the_database_is_unreachable():
    import socket

    from sqlalchemy import create_engine, pool
    from sqlalchemy.orm import sessionmaker

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nowhere = create_engine(f"postgresql+psycopg://gaas_app:x@127.0.0.1:{port}/gaas", poolclass=pool.NullPool,
                            connect_args={"connect_timeout": 2})
    response = TestClient(create_app(sessionmaker(bind=nowhere))).get("/api/ready")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["detail"] == "The database is not reachable."
