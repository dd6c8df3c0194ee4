"""Workflow and events: end-to-end event latency (commit of the event to the webhook request
arriving at a local receiver) at a sustained rate with two `gaas worker` processes, and workflow
steps completed per second.

Baselines in the same run: a bare LISTEN/NOTIFY round trip (the least any PostgreSQL-driven delivery
can take) for latency; single-row UPDATE commits on the instances table for steps (a step is at least
one such transaction)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from bench.common import BenchDatabase, Figure, console, print_table

STEPS_PER_INSTANCE = 10


class _Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                now = time.time()
                with receiver.lock:
                    receiver.arrivals.setdefault(self.headers["Idempotency-Key"], now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _setup(db: BenchDatabase, hook_url: str) -> tuple[str, uuid.UUID]:
    """Migrate, then a domain, an administrator's webhook on bench events, and a definition of
    STEPS_PER_INSTANCE automatic steps; as the platform, through the services."""
    os.environ.update({k: v for k, v in db.env().items() if k.startswith("GAAS_")})
    from gaas.core import bootstrap
    from gaas.core import db as core_db
    from gaas.core.settings import get_settings

    get_settings.cache_clear()
    core_db.app_engine.cache_clear()
    core_db.session_factory.cache_clear()
    bootstrap.upgrade_database()
    from gaas.core.db import unit_of_work
    from gaas.iam import service as iam
    from gaas.iam.schemas import DomainCreate, UserCreate
    from gaas.workflow import service as workflow
    from gaas.workflow import webhooks
    from gaas.workflow.schemas import DefinitionCreate, WebhookCreate

    actor = iam.system_actor()
    with unit_of_work(actor) as session:
        iam.create_domain(session, actor, DomainCreate(code="bench", name="Bench"))
        admin = iam.create_user(session, actor, UserCreate(email="bench@example.org", name="Bench", domain=None,
                                                            password="a long bench password 42"))
        session.flush()
        as_admin = iam._actor(admin.id, admin.email, None, [{"permissions": sorted(iam.PERMISSIONS),
                                                               "scope_type": "global", "scope_domain": None,
                                                               "scope_id": None}], read_only=False,
                              info=actor.request)
        webhooks.create_webhook(session, as_admin, WebhookCreate(name="bench", url=hook_url, domain="bench",
                                                                  event_types=["bench.*"]))
        steps = [{"step": i, "type": "condition", "if": f"n >= {i}", "then": i + 1 if i < STEPS_PER_INSTANCE
                  else "end", "else": "end"} for i in range(1, STEPS_PER_INSTANCE + 1)]
        definition = workflow.create_definition(session, actor, DefinitionCreate(
            name="bench-steps", domain="bench", trigger_type="manual", steps=steps))
        return "bench", definition.id


def _notify_round_trips(url: str, n: int) -> list[float]:
    """Commit a NOTIFY on one connection, wait for it on another."""
    samples = []
    with psycopg.connect(url, autocommit=True) as listener, psycopg.connect(url, autocommit=True) as sender:
        listener.execute("LISTEN bench_baseline")
        for _ in range(n):
            start = time.perf_counter()
            sender.execute("NOTIFY bench_baseline")
            next(listener.notifies(timeout=5, stop_after=1))
            samples.append(time.perf_counter() - start)
    return samples


def _produce(url: str, rate: int, seconds: float) -> dict[str, float]:
    """One event per transaction at `rate` per second; the time each commit returned, by event id."""
    committed: dict[str, float] = {}
    interval = 1 / rate
    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            target = start + i * interval
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            with conn.transaction():
                conn.execute("SELECT set_config('gaas.user_id', '00000000-0000-7000-8000-000000000000', true),"
                             " set_config('gaas.domains', '*', true)")
                event_id = conn.execute(
                    "INSERT INTO gaas_workflow.outbox_events (event_type, domain, entity_type, entity_id, payload)"
                    " VALUES ('bench.ping', 'bench', 'bench', gen_random_uuid(), '{\"n\": 1}') RETURNING id"
                ).fetchone()[0]
            committed[str(event_id)] = time.time()
    return committed


def _worker(db: BenchDatabase, threads: int) -> subprocess.Popen:
    env = {**db.env(), "GAAS_WORKER_POLL_SECONDS": "1"}
    return subprocess.Popen([sys.executable, "-m", "gaas.cli", "worker", "--concurrency", str(threads)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _steps(app_url: str, definition_id: uuid.UUID, instances: int) -> tuple[float, int]:
    """Queue `instances` runnable instances in one transaction; seconds until all completed."""
    from gaas.core.db import unit_of_work
    from gaas.iam import service as iam
    from gaas.workflow import service as workflow

    with unit_of_work(iam.system_actor()) as session:
        for _ in range(instances):
            workflow.start(session, iam.system_actor(), definition_id, None, None, {"n": STEPS_PER_INSTANCE},
                           domain="bench")
    start = time.perf_counter()
    with psycopg.connect(app_url, autocommit=True) as conn:
        conn.execute("SELECT set_config('gaas.user_id', '00000000-0000-7000-8000-000000000000', false),"
                     " set_config('gaas.domains', '*', false)")
        while True:
            left = conn.execute("SELECT count(*) FROM gaas_workflow.workflow_instances WHERE status = 'running'"
                                ).fetchone()[0]
            if left == 0:
                break
            time.sleep(0.05)
    elapsed = time.perf_counter() - start
    return elapsed, instances * STEPS_PER_INSTANCE


def _update_baseline(app_url: str, n: int) -> list[float]:
    samples = []
    with psycopg.connect(app_url) as conn:
        for _ in range(n):
            start = time.perf_counter()
            with conn.transaction():
                conn.execute("SELECT set_config('gaas.user_id', '00000000-0000-7000-8000-000000000000', true),"
                             " set_config('gaas.domains', '*', true)")
                conn.execute("UPDATE gaas_workflow.workflow_instances SET next_run_at = NULL WHERE id = ("
                             "SELECT id FROM gaas_workflow.workflow_instances LIMIT 1)")
            samples.append(time.perf_counter() - start)
    return samples


def run(db: BenchDatabase, *, rate: int = 200, seconds: float = 20, workers: int = 2, threads: int = 4,
        instances: int = 500) -> None:
    receiver = _Receiver()
    _, definition_id = _setup(db, receiver.url)
    app_url = db.app_url.replace("postgresql+psycopg://", "postgresql://")
    procs = [_worker(db, threads) for _ in range(workers)]
    try:
        time.sleep(3)  # the workers connect and settle
        console.print(f"workflow: {instances} instances x {STEPS_PER_INSTANCE} automatic steps, "
                      f"{workers} workers x {threads} threads")
        elapsed, steps = _steps(app_url, definition_id, instances)
        baseline_updates = _update_baseline(app_url, 500)
        console.print(f"workflow: {rate} events/s for {seconds:.0f} s, commit to webhook received")
        committed = _produce(app_url, rate, seconds)
        deadline = time.time() + 60
        while len(set(committed) & set(receiver.arrivals)) < len(committed) and time.time() < deadline:
            time.sleep(0.1)
        latencies = [receiver.arrivals[k] - t for k, t in committed.items() if k in receiver.arrivals]
        missing = len(committed) - len(latencies)
        baseline = _notify_round_trips(app_url, 500)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        receiver.server.shutdown()
    figures = [
        Figure(f"event latency at {rate}/s, {workers} workers (commit → webhook)", len(latencies), latencies,
               "LISTEN/NOTIFY round trip", baseline),
        Figure(f"workflow step ({instances} instances x {STEPS_PER_INSTANCE})", steps, [elapsed / steps],
               "UPDATE+commit on instances", baseline_updates),
    ]
    print_table("Workflow and events", figures)
    p99 = Figure.ms(latencies, 0.99) if latencies else float("nan")
    console.print(f"event latency: median {Figure.ms(latencies, 0.5):.1f} ms, p99 {p99:.1f} ms "
                  f"(target p99 < 1000 ms), max {1000 * max(latencies):.1f} ms; {missing} of {len(committed)} "
                  f"not received; mean {1000 * statistics.mean(latencies):.1f} ms")
    console.print(f"workflow steps: {steps / elapsed:,.0f} steps/s ({steps} steps in {elapsed:.2f} s)")
