"""Operations can see the platform: Prometheus metrics by route template, pool and outbox
figures, and JSON log lines that carry the request id."""

from __future__ import annotations

import io
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from starlette.testclient import TestClient

from gaas.core.app import create_app
from gaas.core.http import DbSession
from gaas.core.logs import formatter
from gaas.core.settings import get_settings
from tests.support import api_incident


def samples(body: str) -> dict[str, list]:
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def test_metrics_name_routes_by_template_and_sample_the_database(client, world, database):
    admin = world.admin()
    for _ in range(3):
        assert client.get(f"/api/v1/users/{admin.id}", headers=admin.headers).status_code == 200
    client.get("/api/v1/no-such-thing")
    with database.owner_engine.begin() as conn:  # an undelivered event, as a module would write it
        conn.execute(text("INSERT INTO gaas_workflow.outbox_events (event_type, domain, entity_type) "
                          "VALUES ('test.happened', NULL, 'test')"))
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    counts = {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
              for s in found["gaas_http_request_duration_seconds_count"]}
    assert counts[("GET", "/api/v1/users/{user_id}", "200")] >= 3
    assert counts[("GET", "unmatched", "404")] >= 1
    assert not any(str(admin.id) in route for _, route, _ in counts)  # never a raw id as a label
    assert [s.value for s in found["gaas_db_up"]] == [1]
    assert {s.labels["state"] for s in found["gaas_db_pool_connections"]} == {"in_use", "idle", "overflow"}
    assert sum(s.value for s in found["gaas_outbox_pending_events"]) >= 1
    assert found["gaas_outbox_lag_seconds"][0].value >= 0


def test_metrics_count_sla_breaches_and_webhook_trouble(client, world, database):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    late = api_incident(client, admin, domain)
    hook = client.post("/api/v1/webhooks", headers=admin.headers, json={
        "name": "metrics", "url": "https://receiver.example.org/hook", "domain": domain,
        "event_types": ["incident.created"]})
    assert hook.status_code == 201, hook.text
    with database.owner_engine.begin() as conn:  # as the breach job and a failing receiver would leave them
        conn.execute(text("UPDATE gaas_incident_mgmt.incidents SET sla_breached = TRUE WHERE id = :id"),
                     {"id": late["id"]})
        conn.execute(text("INSERT INTO gaas_workflow.webhook_deliveries (webhook_id, domain, event_id, "
                          "idempotency_key, event_type, body, status) VALUES (:w, :d, gen_random_uuid(), 'k1', "
                          "'incident.created', '{}', 'failed')"), {"w": hook.json()["id"], "d": domain})
    found = samples(client.get("/metrics").text)
    breached = {s.labels["domain"]: s.value for s in found["gaas_incidents_sla_breached_open"]}
    assert breached[domain] == 1
    failed = {s.labels["status"]: s.value for s in found["gaas_webhook_deliveries"]}
    assert failed["failed"] >= 1 and "pending" in failed
    assert "gaas_webhooks_disabled" in found


def test_metrics_need_the_token_when_one_is_set(client, monkeypatch):
    monkeypatch.setenv("GAAS_METRICS_TOKEN", "scrape-secret")
    get_settings.cache_clear()
    try:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    finally:
        monkeypatch.delenv("GAAS_METRICS_TOKEN")
        get_settings.cache_clear()


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json"))
    logger = logging.getLogger("gaas.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def test_log_lines_are_json_with_the_request_id(database, json_log):
    app = create_app(database.factory)

    @app.get("/test/log")
    def log_something(db: DbSession) -> dict[str, int]:  # a sync endpoint: runs on a worker thread
        db.execute(text("SELECT 1"))
        logging.getLogger("gaas.test").info("something worth knowing")
        return {"logged": 1}

    with TestClient(app) as client:
        response = client.get("/test/log", headers={"X-Request-ID": "trace-me-123"})
        client.get("/test/log")
    assert response.status_code == 200
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert len(lines) == 2 and lines[0]["request_id"] == "trace-me-123"
    assert lines[1]["request_id"] not in ("trace-me-123", None)  # each request its own, none left behind
    assert lines[0]["event"] == "something worth knowing" and lines[0]["level"] == "info"
    assert {"logger", "timestamp"} <= set(lines[0])
