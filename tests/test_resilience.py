"""Database trouble reaches the client as a clear, retryable problem, never as a 500, and a
deadlock victim is replayed instead of failing (real deadlocks, real timeouts)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from gaas.core.app import create_app
from gaas.core.http import DbSession


@pytest.fixture(scope="module")
def trouble(database):
    """The real application, plus two routes that make the database misbehave on purpose."""
    app = create_app(database.factory)
    runs: dict[str, int] = {}
    meet = threading.Barrier(2, timeout=10)

    @app.post("/test/locks")
    def lock_in_order(db: DbSession, body: dict[str, Any]) -> dict[str, int]:
        runs[body["name"]] = runs.get(body["name"], 0) + 1
        db.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": body["first"]})
        if runs[body["name"]] == 1:  # only the first attempts meet, so that they cross
            meet.wait()
        db.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": body["second"]})
        return {"attempts": runs[body["name"]]}

    @app.get("/test/slow")
    def slow(db: DbSession) -> dict[str, str]:
        db.execute(text("SET LOCAL statement_timeout = '20ms'"))
        db.execute(text("SELECT pg_sleep(2)"))
        return {"finished": "yes"}

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, runs


def test_a_deadlock_victim_is_replayed_and_both_requests_succeed(trouble):
    client, runs = trouble
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(client.post, "/test/locks", json={"name": "one", "first": "a", "second": "b"})
        two = pool.submit(client.post, "/test/locks", json={"name": "two", "first": "b", "second": "a"})
        responses = [one.result(timeout=30), two.result(timeout=30)]
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    # PostgreSQL broke the deadlock by failing exactly one of them, which ran again.
    assert sorted(r.json()["attempts"] for r in responses) == [1, 2]
    assert sorted(runs.values()) == [1, 2]
    assert len({r.headers["x-request-id"] for r in responses}) == 2


def test_a_statement_timeout_is_a_clear_retryable_problem(trouble):
    client, _ = trouble
    response = client.get("/test/slow")
    assert response.status_code == 503 and response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["type"].endswith("/timeout") and "statement timeout" in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"] and "Traceback" not in response.text
