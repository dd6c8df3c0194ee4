"""Real `gaas worker` processes against the test database: kill -9 one in the middle of a workflow
step and another completes it (once); kill one in the middle of a webhook delivery and the receiver,
checking the idempotency key, acts on the event once; SIGTERM lets the delivery in hand finish; a
lost database connection (as in a database restart) is survived."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import World, api_service, unique
from tests.test_workflow_support import Receiver


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll until `condition` is truthy (a deadline only against hanging, not a speed check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Workers:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, threads: int = 2) -> subprocess.Popen:
        env = {**os.environ, "GAAS_WORKER_POLL_SECONDS": "0.2", "GAAS_WEBHOOK_RETRY_BASE_SECONDS": "0"}
        log = (self.tmp / f"worker-{len(self.procs)}.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "gaas.cli", "worker", "--concurrency", str(threads)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        """What the workers printed: shown when a test times out waiting for them."""
        return "\n".join(path.read_text(errors="replace")[-4000:] for path in sorted(self.tmp.glob("worker-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    running = Workers(tmp_path)
    yield running
    running.stop_all()


@pytest.fixture(scope="module")
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def org(world: World) -> dict[str, Any]:
    domain = world.domain()
    return {"domain": domain, "admin": world.user(domain, "domain_admin")}


def _owner(database) -> psycopg.Connection:
    return psycopg.connect(database.owner_url.set(drivername="postgresql").render_as_string(hide_password=False))


def _blocked_worker_pid(database) -> int | None:
    rows = database.owner_rows("SELECT application_name FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                               "AND application_name LIKE 'gaas-worker:%' AND datname = current_database()")
    return int(rows[0]["application_name"].split(":")[1]) if rows else None


def test_a_killed_worker_mid_step_is_finished_by_another_and_nothing_is_done_twice(
        client, database, org, receiver, workers):
    hook = client.post("/api/v1/webhooks", json={
        "name": unique("kill-"), "url": receiver.url("/kill-step"), "domain": org["domain"],
        "event_types": ["service.updated"]}, headers=org["admin"].headers)
    assert hook.status_code == 201, hook.text
    marker = unique("flow-")
    definition = client.post("/api/v1/workflow-definitions", json={
        "name": unique("kill-"), "domain": org["domain"], "trigger_type": "event",
        "trigger_config": {"event_type": "service.created", "condition": f"service.name == '{marker}'"},
        "steps": [{"type": "set_field", "field": "description", "value": "written once by the workflow"},
                  {"type": "notification", "subject": "done", "body": "done", "recipients": ["role:domain_admin"]}],
    }, headers=org["admin"].headers)
    assert definition.status_code == 201, definition.text
    service = api_service(client, org["admin"], org["domain"], name=marker)

    # Hold the service row: the worker that runs the set_field step will wait on it, mid-step.
    with _owner(database) as lock:
        lock.execute("SELECT 1 FROM gaas_service_catalog.services WHERE id = %s FOR UPDATE", (service["id"],))
        first, second = workers.start(), workers.start()
        pid = wait_for(lambda: _blocked_worker_pid(database), "a worker to be inside the step")
        victim = first if first.pid == pid else second
        survivor = second if victim is first else first
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        lock.rollback()

    def instance() -> dict[str, Any] | None:
        rows = database.owner_rows("SELECT id, status FROM gaas_workflow.workflow_instances "
                                   "WHERE workflow_definition_id = :d", d=definition.json()["id"])
        return rows[0] if rows and rows[0]["status"] == "completed" else None

    done = wait_for(instance, "the other worker to complete the workflow")
    assert survivor.poll() is None
    steps = database.owner_rows("SELECT step_number, status FROM gaas_workflow.workflow_steps WHERE instance_id = :i "
                                "ORDER BY started_at", i=done["id"])
    assert [(s["step_number"], s["status"]) for s in steps] == [(1, "completed"), (2, "completed")]
    updates = database.owner_rows("SELECT changes FROM gaas_audit.audit_log "
                                  "WHERE entity_id = :id AND action = 'update'",
                                  id=service["id"])
    assert [u["changes"]["after"]["description"] for u in updates] == ["written once by the workflow"]
    events = database.owner_rows("SELECT id FROM gaas_workflow.outbox_events WHERE event_type = 'service.updated' "
                                 "AND entity_id = :id", id=service["id"])
    assert len(events) == 1
    wait_for(lambda: receiver.on("/kill-step"), "the webhook delivery")
    assert [r.key for r in receiver.on("/kill-step")] == [str(events[0]["id"])]


def test_a_killed_worker_mid_delivery_is_redelivered_and_acted_on_once(client, database, org, receiver, workers):
    hook = client.post("/api/v1/webhooks", json={
        "name": unique("held-"), "url": receiver.url("/held"), "domain": org["domain"],
        "event_types": ["service.created"]}, headers=org["admin"].headers).json()
    receiver.hold["/held"] = threading.Event()
    first = workers.start()
    service = api_service(client, org["admin"], org["domain"])
    wait_for(lambda: receiver.on("/held"), "the delivery to reach the receiver")
    second = workers.start()
    os.kill(first.pid, signal.SIGKILL)  # the only worker that could be sending it, mid-request
    first.wait()
    receiver.hold["/held"].set()
    wait_for(lambda: len(receiver.on("/held")) >= 2, "the other worker to deliver it again")
    keys = [r.key for r in receiver.on("/held")]
    assert len(set(keys)) == 1 and receiver.on("/held")[0].json["entity_id"] == service["id"]
    assert len([k for k in receiver.accepted if k[0] == "/held"]) == 1, "acted on once"

    def delivered() -> list[dict[str, Any]]:
        return [d for d in database.owner_rows("SELECT status, attempts FROM gaas_workflow.webhook_deliveries "
                                               "WHERE webhook_id = :w", w=hook["id"]) if d["status"] == "delivered"]

    # the dead worker's attempt rolled back with its transaction: one recorded attempt
    assert wait_for(delivered, "the delivery to be recorded") == [{"status": "delivered", "attempts": 1}]
    assert second.poll() is None


def test_sigterm_finishes_the_delivery_in_hand_and_a_lost_connection_is_survived(
        client, database, org, receiver, workers):
    worker = workers.start(threads=1)
    # As in a database restart: every connection of the worker is cut.
    client.post("/api/v1/webhooks", json={"name": unique("term-"), "url": receiver.url("/term"),
                                          "domain": org["domain"], "event_types": ["service.created"]},
                headers=org["admin"].headers)
    wait_for(lambda: database.owner_rows("SELECT pid FROM pg_stat_activity WHERE application_name = :a "
                                         "AND datname = current_database()", a=f"gaas-worker:{worker.pid}"),
             "the worker to connect")
    database.owner_rows("SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name = :a",
                        a=f"gaas-worker:{worker.pid}")
    receiver.hold["/term"] = threading.Event()
    api_service(client, org["admin"], org["domain"])
    try:
        wait_for(lambda: receiver.on("/term"), "the worker to deliver after losing its connections")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the worker's log:\n{workers.logs()}") from None
    os.kill(worker.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert worker.poll() is None, "it finishes the delivery in hand first"
    receiver.hold["/term"].set()
    assert worker.wait(timeout=60) == 0
    rows = database.owner_rows("SELECT d.status, d.attempts FROM gaas_workflow.webhook_deliveries d "
                               "JOIN gaas_workflow.webhooks w ON w.id = d.webhook_id WHERE w.url = :u",
                               u=receiver.url("/term"))
    assert rows == [{"status": "delivered", "attempts": 1}]
    assert len(receiver.on("/term")) == 1
