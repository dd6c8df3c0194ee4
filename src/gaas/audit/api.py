"""Read-only API over the audit log: the log itself and any record's history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from gaas.audit import service
from gaas.audit.models import AuditLog
from gaas.audit.schemas import AuditEntry
from gaas.core.errors import NotFound
from gaas.core.history import HISTORY_SOURCES
from gaas.core.http import CurrentActor, DbSession, PageLimit
from gaas.core.pagination import Page, SortKey, paginate

router = APIRouter(prefix="/api/v1", tags=["audit"])

AUDIT_SORTS = (SortKey("timestamp", AuditLog.timestamp),)


Cursor = Annotated[str | None, Query(max_length=500)]


def _entries(actor, rows) -> list[AuditEntry]:
    entries = []
    for row in rows:
        entry = AuditEntry.model_validate(row)
        if not service.may_see_details(actor, row.domain):
            entry = entry.model_copy(update={"ip_address": None, "user_agent": None})
        entries.append(entry)
    return entries


@router.get("/audit-log", response_model=Page[AuditEntry], summary="Search the audit log")
def list_audit_log(
    db: DbSession,
    actor: CurrentActor,
    limit: PageLimit,
    entity_type: Annotated[str | None, Query(max_length=100)] = None,
    entity_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    domain: Annotated[str | None, Query(max_length=100)] = None,
    request_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[datetime | None, Query(description="From this time (inclusive)")] = None,
    until: Annotated[datetime | None, Query(description="Before this time (exclusive)")] = None,
    sort: Annotated[str | None, Query(description="timestamp or -timestamp (default: newest first)")] = None,
    cursor: Cursor = None,
) -> Page[AuditEntry]:
    service.require_audit_view(actor)
    stmt = service.audit_query(entity_type=entity_type, entity_id=entity_id, user_id=user_id, action=action,
                               domain=domain, since=since, until=until, request_id=request_id)
    scope = service.audit_scope(actor)
    if scope is not None:
        stmt = stmt.where(scope)
    rows, next_cursor = paginate(stmt, id_column=AuditLog.id, sort_keys=AUDIT_SORTS, sort=sort or "-timestamp",
                                 cursor=cursor, limit=limit, execute=db.scalars)
    return Page[AuditEntry](items=_entries(actor, rows), next_cursor=next_cursor, limit=limit)


@router.get("/{resource}/{record_id}/history", response_model=Page[AuditEntry],
            summary="Every recorded change of one record, oldest first")
def record_history(resource: str, record_id: uuid.UUID, db: DbSession, actor: CurrentActor, limit: PageLimit,
                   cursor: Cursor = None) -> Page[AuditEntry]:
    """Whoever may see a record may see its history; addresses and user agents only with audit.view."""
    source = HISTORY_SOURCES.get(resource)
    if source is None:
        raise NotFound(f"No resource type '{resource}' keeps a history.")
    source.fetch_visible(db, actor, record_id)
    stmt = service.audit_query(entity_type=source.entity_type, entity_id=record_id)
    rows, next_cursor = paginate(stmt, id_column=AuditLog.id, sort_keys=AUDIT_SORTS, sort="timestamp",
                                 cursor=cursor, limit=limit, execute=db.scalars)
    return Page[AuditEntry](items=_entries(actor, rows), next_cursor=next_cursor, limit=limit)
