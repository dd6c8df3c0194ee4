"""`gaas worker`: everything that happens without a request.

Every kind of work is a row in PostgreSQL that is due: an undelivered outbox event, a runnable
workflow instance, a pending webhook delivery or e-mail, an overdue step, a schedule slot, a
housekeeping job. A worker thread claims one with `FOR UPDATE SKIP LOCKED`, does the work and
records the result in the *same* transaction, so:
- any number of threads, processes and machines share the work without taking the same row;
- a worker that dies (kill -9, lost machine, database restart) holds its row only until
  PostgreSQL ends its session: the transaction rolls back whole and another worker takes the row
  at once; nothing is lost, and database effects are never applied twice;
- calls to the outside world (webhooks, SMTP) are at least once: a crash after the call and before
  the commit repeats the call, with the same idempotency key (and e-mail Message-ID).

Idle threads sleep until NOTIFY (triggers on the outbox, instances, deliveries and e-mails wake
them at commit) or the poll interval. SIGTERM (or SIGINT) stops them after the transaction in hand.
Procrastinate was considered and not used: see docs/architecture.md ("The worker").
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gaas.core.context import RequestInfo
from gaas.core.db import unit_of_work
from gaas.core.jsontext import jsonable
from gaas.core.settings import Settings, get_settings
from gaas.iam import service as iam
from gaas.workflow import service, webhooks
from gaas.workflow.models import InstanceStatus, WorkflowInstance
from gaas.workflow.notify import send_due_email
from gaas.workflow.service import SYSTEM_CLOCK, Clock

log = logging.getLogger("gaas.worker")
CHANNEL = "gaas_worker"
OUTBOX_BATCH = 200


# ---- event fan-out ---------------------------------------------------------------------------------

_CLAIM_OUTBOX = text("""
    SELECT id, event_type, domain, entity_type, entity_id, payload, actor_id, occurred_at
    FROM gaas_workflow.outbox_events
    WHERE processed_at IS NULL
    ORDER BY occurred_at LIMIT :limit FOR UPDATE SKIP LOCKED""")
_MARK_PROCESSED = text("""
    UPDATE gaas_workflow.outbox_events SET processed_at = :now, attempts = attempts + 1
    WHERE id = ANY(CAST(:ids AS uuid[]))""")


def expand(row: Any) -> list[dict[str, Any]]:
    """One outbox row as the events it holds: a batch row (entity_id NULL, payload {"batch": [...]})
    is one event per item, keyed `<row id>:<index>`; any other row is one event keyed by its id."""
    base = {"event_id": str(row.id), "event_type": row.event_type, "domain": row.domain,
            "entity_type": row.entity_type, "actor_id": jsonable(row.actor_id),
            "occurred_at": jsonable(row.occurred_at), "at": row.occurred_at}
    payload = row.payload or {}
    if row.entity_id is None and isinstance(payload.get("batch"), list):
        events = []
        for index, item in enumerate(payload["batch"]):
            item = dict(item)
            entity_id = item.pop("entity_id", None)
            events.append({**base, "key": f"{row.id}:{index}", "entity_id": entity_id, "payload": item})
        return events
    return [{**base, "key": str(row.id), "entity_id": jsonable(row.entity_id), "payload": payload}]


def event_namespace(event: dict[str, Any]) -> dict[str, Any]:
    """What a trigger's or webhook's condition sees: the payload under the entity's name
    (`change.type == "normal"`), as `payload`, and the event itself as `event`."""
    return {**event["payload"], "payload": event["payload"], "event": event, "domain": event["domain"],
            event["entity_type"]: {**event["payload"], "id": event["entity_id"]}}


def fan_out(db: Session, now: datetime, limit: int = OUTBOX_BATCH) -> int:
    """Claim undelivered outbox rows; queue a delivery per interested webhook and start the
    event-triggered workflows, per event; mark the rows processed. All in one transaction."""
    rows = db.execute(_CLAIM_OUTBOX, {"limit": limit}).all()
    if not rows:
        return 0
    subs = webhooks.subscribers(db)
    definitions = service.event_definitions(db)
    deliveries: list[dict[str, Any]] = []
    for row in rows:
        for event in expand(row):
            namespace = event_namespace(event)
            if subs:
                deliveries += webhooks.delivery_rows(subs, event, namespace)
            if definitions:
                service.start_for_event(db, definitions, event, namespace, now)
    webhooks.queue_deliveries(db, deliveries, now)
    db.execute(_MARK_PROCESSED, {"now": now, "ids": [str(r.id) for r in rows]})
    return len(rows)


# ---- housekeeping ------------------------------------------------------------------------------------

def _partitions(db: Session, settings: Settings) -> None:
    db.execute(text("SELECT gaas_audit.ensure_audit_log_partitions(1, :n)"), {"n": settings.audit_partitions_ahead})
    db.execute(text("SELECT gaas_cost_mgmt.ensure_cost_entries_partitions(1, 2)"))


def _sla_breaches(db: Session, settings: Settings) -> None:
    from gaas.incidents import service as incidents

    incidents.mark_sla_breaches(db, batch=1000)


def _prune_outbox(db: Session, settings: Settings) -> None:
    db.execute(text("""
        DELETE FROM gaas_workflow.outbox_events WHERE id IN (
            SELECT id FROM gaas_workflow.outbox_events
            WHERE processed_at < now() - make_interval(days => :days) LIMIT 10000)"""),
               {"days": settings.outbox_retention_days})


def _audit_seal(db: Session, settings: Settings) -> None:
    from gaas.audit import seal

    seal.seal(db)


def _retire_expired_articles(db: Session, settings: Settings) -> None:
    from gaas.knowledge import service as knowledge

    knowledge.retire_expired(db)


def _cmdb_pending_index_entries(db: Session, settings: Settings) -> None:
    from gaas.cmdb import service as cmdb

    cmdb.merge_pending_index_entries(db)


def _cmdb_search_names(db: Session, settings: Settings) -> None:
    from gaas.cmdb import service as cmdb

    cmdb.index_pending_search_names(db)


# name -> (interval in seconds, job)
JOBS: dict[str, tuple[int, Callable[[Session, Settings], None]]] = {
    "partitions": (24 * 3600, _partitions),
    "sla_breaches": (60, _sla_breaches),
    "outbox_prune": (3600, _prune_outbox),
    "audit_seal": (60, _audit_seal),
    "retire_expired_articles": (3600, _retire_expired_articles),
    "cmdb_pending_index_entries": (60, _cmdb_pending_index_entries),
    # Until then, searching scores an import's new CIs one by one: keep that window short.
    "cmdb_search_names": (5, _cmdb_search_names),
}

_CLAIM_JOB = text("""
    SELECT name FROM gaas_workflow.worker_jobs WHERE next_run_at <= :now
    ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED""")


def ensure_jobs(db: Session, now: datetime) -> None:
    for name, (interval, _) in JOBS.items():
        db.execute(text("INSERT INTO gaas_workflow.worker_jobs (name, interval_seconds, next_run_at) "
                        "VALUES (:name, :interval, :now) ON CONFLICT (name) DO NOTHING"),
                   {"name": name, "interval": interval, "now": now})


def run_job(db: Session, now: datetime, settings: Settings) -> int:
    name = db.scalar(_CLAIM_JOB, {"now": now})
    if name is None or name not in JOBS:
        return 0
    interval, job = JOBS[name]
    error = None
    try:
        with db.begin_nested():
            job(db, settings)
    except (DBAPIError, ValueError) as exc:
        if isinstance(exc, OperationalError):
            raise
        error = str(exc)[:2000]
        log.warning("worker job %s failed: %s", name, error)
    db.execute(text("UPDATE gaas_workflow.worker_jobs SET next_run_at = :next, last_run_at = :now, "
                    "last_error = :error, runs = runs + 1 WHERE name = :name"),
               {"next": now + timedelta(seconds=interval), "now": now, "error": error, "name": name})
    return 1


# ---- the worker --------------------------------------------------------------------------------------

def _advance(db: Session, now: datetime, limit: int = 20) -> int:
    """Run runnable instances up to their next wait (approval, task) or their end. Each runs in a
    savepoint: one that raises unexpectedly fails (recorded, announced) instead of being retried
    forever, and the others go on."""
    instances = list(db.scalars(
        select(WorkflowInstance).where(WorkflowInstance.next_run_at <= now,
                                       WorkflowInstance.status == InstanceStatus.running)
        .order_by(WorkflowInstance.next_run_at).limit(limit).with_for_update(skip_locked=True)))
    for instance in instances:
        instance_id = instance.id
        try:
            with db.begin_nested():
                service.run_until_waiting(db, instance, now)
        except OperationalError:
            raise
        except Exception as exc:
            log.exception("workflow instance %s failed", instance_id)
            _fail_unexpectedly(db, instance_id, now, f"{type(exc).__name__}: {exc}")
    return len(instances)


def _fail_unexpectedly(db: Session, instance_id: uuid.UUID, now: datetime, reason: str) -> None:
    """End an instance whose step raised: failed, announced (workflow.failed) and its record's
    module told, as for a step that fails cleanly. Should even that raise, the instance is still
    marked failed, so that it is never retried forever."""
    try:
        with db.begin_nested():
            instance = db.get(WorkflowInstance, instance_id, populate_existing=True)
            assert instance is not None
            service.fail_instance(db, instance, now, reason)
        return
    except OperationalError:
        raise
    except Exception:
        log.exception("workflow instance %s: announcing its failure failed too", instance_id)
    instance = db.get(WorkflowInstance, instance_id, populate_existing=True)
    assert instance is not None
    instance.status, instance.outcome, instance.completed_at = InstanceStatus.failed, "failed", now
    instance.next_run_at, instance.last_error = None, reason[:2000]


class Worker:
    """The kinds of work, each claimed in its own transaction as the platform.

    `run_until_idle` drives everything in the calling thread (tests, `gaas worker --once`);
    `serve` runs `concurrency` threads until SIGTERM.
    """

    def __init__(self, factory: sessionmaker[Session], settings: Settings | None = None, *,
                 clock: Clock = SYSTEM_CLOCK, concurrency: int | None = None,
                 listen_url: str | None = None) -> None:
        self.factory = factory
        self.settings = settings or get_settings()
        self.clock = clock
        self.concurrency = concurrency or self.settings.worker_concurrency
        self.listen_url = listen_url
        self.policy = webhooks.DeliveryPolicy.from_settings(self.settings)
        self.stopping = threading.Event()
        self._cond = threading.Condition()
        self._generation = 0
        self._periodic_lock = threading.Lock()
        self._periodic_due = 0.0

    # -- one unit of work ---------------------------------------------------------------------------
    def _unit(self, work: Callable[[Session, datetime], int]) -> int:
        info = RequestInfo(request_id=f"worker-{uuid.uuid4().hex[:16]}", entry_point="worker")
        with unit_of_work(iam.system_actor(info), self.factory) as db:
            # Every unit claims its rows and marks them done in one transaction, so a commit lost in
            # a database crash only means the work is found undone and done again (at least once, as
            # promised): waiting for the WAL flush buys nothing here and costs most of the time.
            db.execute(text("SET LOCAL synchronous_commit = off"))
            return work(db, self.clock.now())

    def _kinds(self, client: httpx.Client) -> list[Callable[[Session, datetime], int]]:
        return [fan_out, _advance,
                lambda db, now: webhooks.deliver_due(db, client, self.policy, now),
                lambda db, now: send_due_email(db, now, self.settings)]

    def _periodic(self) -> list[Callable[[Session, datetime], int]]:
        return [service.escalate_overdue_steps, service.fire_due_schedules,
                lambda db, now: run_job(db, now, self.settings)]

    def run_pass(self, client: httpx.Client, *, periodic: bool = True, budget: int = 50) -> int:
        """Each kind of work until it has none left (or `budget` items), once."""
        done = 0
        kinds = self._kinds(client) + (self._periodic() if periodic else [])
        for work in kinds:
            for _ in range(budget):
                if self.stopping.is_set():
                    return done
                count = self._unit(work)
                done += count
                if count == 0:
                    break
        return done

    def run_until_idle(self, max_passes: int = 100) -> int:
        """Everything due now, in this thread, until nothing is left (tests; `gaas worker --once`)."""
        self.setup()
        total = 0
        with httpx.Client() as client:
            for _ in range(max_passes):
                done = self.run_pass(client)
                total += done
                if done == 0:
                    break
        return total

    def setup(self) -> None:
        self._unit(lambda db, now: ensure_jobs(db, now) or 0)

    # -- serving ------------------------------------------------------------------------------------
    def wake(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def stop(self, *_: Any) -> None:
        self.stopping.set()
        self.wake()

    def _periodic_now(self) -> bool:
        """Overdue steps, schedules and housekeeping are looked at about once a second per process."""
        with self._periodic_lock:
            if time.monotonic() < self._periodic_due:
                return False
            self._periodic_due = time.monotonic() + 1.0
            return True

    def _thread(self) -> None:
        failures = 0
        with httpx.Client() as client:
            while not self.stopping.is_set():
                seen = self._generation
                try:
                    done = self.run_pass(client, periodic=self._periodic_now())
                    failures = 0
                except (OperationalError, psycopg.OperationalError) as exc:
                    # The database went away (restart, failover, network): what was in hand rolled
                    # back; wait and carry on.
                    failures += 1
                    log.warning("database unavailable (%s); retrying", exc)
                    self.stopping.wait(min(0.5 * 2 ** failures, 10))
                    continue
                except Exception:
                    log.exception("worker error; carrying on")
                    self.stopping.wait(1)
                    continue
                if done == 0:
                    with self._cond:
                        if self._generation == seen and not self.stopping.is_set():
                            self._cond.wait(self.settings.worker_poll_seconds)

    def _listen(self) -> None:
        while not self.stopping.is_set() and self.listen_url:
            try:
                with psycopg.connect(self.listen_url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
                self.stopping.wait(1)

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT; the transaction in hand is finished first."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        while not self.stopping.is_set():
            try:
                self.setup()
                break
            except (OperationalError, psycopg.OperationalError) as exc:
                log.warning("database unavailable (%s); retrying", exc)
                self.stopping.wait(2)
        threads = [threading.Thread(target=self._thread, name=f"gaas-worker-{i}", daemon=True)
                   for i in range(self.concurrency)]
        threads.append(threading.Thread(target=self._listen, name="gaas-worker-listen", daemon=True))
        for thread in threads:
            thread.start()
        log.info("worker started with %d threads", self.concurrency)
        while not self.stopping.is_set():
            self.stopping.wait(1)
        for thread in threads:
            thread.join(timeout=self.policy.timeout + 30)
        log.info("worker stopped")
