"""Domain events through the transactional outbox (gaas_workflow.outbox_events).

An event is written in the same transaction as the change it describes, so a rolled-back
transaction leaves no event; the worker delivers committed ones at least once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from gaas.core.db import request_info
from gaas.core.jsontext import dumps

_INSERT = text(
    "INSERT INTO gaas_workflow.outbox_events (event_type, domain, entity_type, entity_id, payload, actor_id,"
    " request_id) VALUES (:event_type, :domain, :entity_type, :entity_id, CAST(:payload AS jsonb), :actor_id,"
    " :request_id)"
)


def _origin(session: Session) -> dict[str, Any]:
    """Who and which request an event comes from."""
    actor = session.info.get("actor")
    return {"actor_id": actor.user_id if actor else None, "request_id": request_info(session).request_id}


def emit(session: Session, event_type: str, *, domain: str | None, entity_type: str,
         entity_id: uuid.UUID | None, payload: dict[str, Any]) -> None:
    session.execute(_INSERT, {"event_type": event_type, "domain": domain, "entity_type": entity_type,
                              "entity_id": entity_id, "payload": dumps(payload), **_origin(session)})


_EMIT_MANY = text("""
    INSERT INTO gaas_workflow.outbox_events (event_type, domain, entity_type, entity_id, payload, actor_id, request_id)
    SELECT :event_type, e.domain, :entity_type, e.entity_id, e.payload, CAST(:actor_id AS uuid), :request_id
    FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS e(domain text, entity_id uuid, payload jsonb)""")


def emit_many(session: Session, event_type: str, entity_type: str,
              events: list[tuple[str | None, uuid.UUID, dict[str, Any]]]) -> None:
    """Many events of one type in one statement: (domain, entity id, payload)."""
    if not events:
        return
    batch = [{"domain": domain, "entity_id": entity_id, "payload": payload} for domain, entity_id, payload in events]
    session.execute(_EMIT_MANY, {"event_type": event_type, "entity_type": entity_type, "events": dumps(batch),
                                 **_origin(session)})


_EMIT_BATCH = text("""
    INSERT INTO gaas_workflow.outbox_events (event_type, domain, entity_type, entity_id, payload, actor_id, request_id)
    SELECT :event_type, b.domain, :entity_type, NULL, jsonb_build_object('batch', b.items), CAST(:actor_id AS uuid),
           :request_id
    FROM jsonb_to_recordset(CAST(:batches AS jsonb)) AS b(domain text, items jsonb)""")


def emit_batch(session: Session, event_type: str, entity_type: str,
               events: list[tuple[str | None, uuid.UUID, dict[str, Any]]]) -> None:
    """Many events of one type as one outbox row per domain, for bulk writes (a discovery import
    of a million CIs): the row's payload is {"batch": [{"entity_id": …, **payload}, …]} with
    entity_id NULL, and the worker delivers each item as an event of its own. Same transaction,
    same guarantees as `emit`, a thousandth of the writes."""
    statement = prepare_batch(session, event_type, entity_type, events)
    if statement is not None:
        session.execute(*statement)


def prepare_batch(session: Session, event_type: str, entity_type: str,
                  events: list[tuple[str | None, uuid.UUID, dict[str, Any]]]) -> tuple[TextClause, dict] | None:
    """emit_batch's statement and parameters, to execute later in the same transaction."""
    if not events:
        return None
    by_domain: dict[str | None, list[dict[str, Any]]] = {}
    for domain, entity_id, payload in events:
        by_domain.setdefault(domain, []).append({"entity_id": entity_id, **payload})
    return _EMIT_BATCH, {"event_type": event_type, "entity_type": entity_type, **_origin(session),
                         "batches": dumps([{"domain": domain, "items": items} for domain, items in by_domain.items()])}


def outbox_metrics(session: Session) -> list:
    """Scrape-time figures: events not yet delivered, per domain, and the age of the oldest."""
    from prometheus_client.core import GaugeMetricFamily

    depth = GaugeMetricFamily("gaas_outbox_pending_events", "Outbox rows not yet processed.", labels=["domain"])
    lag = GaugeMetricFamily("gaas_outbox_lag_seconds", "Age of the oldest unprocessed outbox row.")
    oldest = 0.0
    for row in session.execute(text(
            "SELECT coalesce(domain, '') AS domain, count(*) AS n, extract(epoch FROM now() - min(occurred_at)) AS age"
            " FROM gaas_workflow.outbox_events WHERE processed_at IS NULL GROUP BY 1")):
        depth.add_metric([row.domain], row.n)
        oldest = max(oldest, float(row.age or 0))
    lag.add_metric([], oldest)
    return [depth, lag]
