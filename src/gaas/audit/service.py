"""The audit trail: written in the same transaction as the change, from every entry point.

Every ORM entity with ``__audit_entity__`` is audited automatically by a flush listener:
create, update (changed fields only, before and after), soft delete and restore. Other
writes (role assignments, token revocation, logins) call :func:`record` themselves.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, TextClause, event, insert, inspect, select, text
from sqlalchemy.orm import Session

from gaas.audit.models import AuditLog
from gaas.core.context import Actor
from gaas.core.db import request_info
from gaas.core.errors import Forbidden
from gaas.core.ids import new_ids
from gaas.core.jsontext import dumps, jsonable
from gaas.core.models import AuditedMixin
from gaas.core.queries import where_equal, where_in_range

REDACTED = "[redacted]"


def _row(session: Session, *, action: str, entity_type: str, entity_id: uuid.UUID | None,
         changes: dict[str, Any] | None, domain: str | None) -> dict[str, Any]:
    actor: Actor | None = session.info.get("actor")
    info = request_info(session)
    return {
        "user_id": actor.user_id if actor else None,
        "user_email": actor.email if actor else None,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "changes": jsonable(changes) if changes is not None else None,
        "ip_address": info.ip_address,
        "user_agent": info.user_agent,
        "domain": domain,
        "request_id": info.request_id,
    }


def record(session: Session, *, action: str, entity_type: str, entity_id: uuid.UUID | None,
           changes: dict[str, Any] | None = None, domain: str | None = None) -> None:
    """Write one audit row now, in the caller's transaction."""
    session.execute(insert(AuditLog), [_row(session, action=action, entity_type=entity_type,
                                            entity_id=entity_id, changes=changes, domain=domain)])


_INSERT_MANY = text("""
    INSERT INTO gaas_audit.audit_log (id, user_id, user_email, action, entity_type, entity_id, changes, ip_address,
                                      user_agent, domain, request_id)
    SELECT r.id, CAST(:user_id AS uuid), :user_email, r.action, :entity_type, r.entity_id, r.changes,
           CAST(:ip AS inet), :user_agent, r.domain, :request_id
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id uuid, action text, entity_id uuid, changes jsonb,
                                                       domain text)""")


def record_many(session: Session, entity_type: str,
                rows: list[tuple[str, uuid.UUID, dict[str, Any], str | None]]) -> None:
    """Many audit rows of one entity type in one statement: (action, entity id, changes, domain)."""
    statement = prepare_many(session, entity_type, rows)
    if statement is not None:
        session.execute(*statement)


def prepare_many(session: Session, entity_type: str, rows: list[tuple[str, uuid.UUID, dict[str, Any], str | None]]
                 ) -> tuple[TextClause, dict[str, Any]] | None:
    """record_many's statement and parameters, to execute later in the same transaction (a bulk
    writer prepares on one thread while another executes)."""
    if not rows:
        return None
    actor: Actor | None = session.info.get("actor")
    info = request_info(session)
    batch = [{"id": audit_id, "action": action, "entity_id": entity_id, "changes": changes, "domain": domain}
             for audit_id, (action, entity_id, changes, domain) in zip(new_ids(len(rows)), rows, strict=True)]
    return _INSERT_MANY, {
        "user_id": actor.user_id if actor else None, "user_email": actor.email if actor else None,
        "entity_type": entity_type, "ip": info.ip_address, "user_agent": info.user_agent,
        "request_id": info.request_id, "rows": dumps(batch),
    }


def _changed_fields(obj: AuditedMixin) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in obj.__audit_ignore__:
            continue
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if old == new:
            continue
        if key in obj.__audit_redact__:
            # Secrets are never loaded, so "before" is unknown rather than empty: say only that it changed.
            before[key] = REDACTED
            after[key] = REDACTED if new is not None else None
        else:
            before[key], after[key] = old, new
    return before, after


def _created_fields(obj: AuditedMixin) -> dict[str, Any]:
    state = inspect(obj)
    values = {}
    for attr in state.mapper.column_attrs:
        key = attr.key
        if key in obj.__audit_ignore__ or key == "deleted_at":
            continue
        value = state.dict.get(key)  # never triggers a load: server defaults are not content
        if value is None:
            continue
        values[key] = REDACTED if key in obj.__audit_redact__ else value
    return values


def _audit_rows_for_flush(session: Session) -> list[dict[str, Any]]:
    rows = []
    for obj in session.new:
        if isinstance(obj, AuditedMixin) and obj.__audit_entity__:
            rows.append(_row(session, action="create", entity_type=obj.__audit_entity__, entity_id=obj.id,
                             changes={"after": _created_fields(obj)}, domain=_domain_of(obj)))
    for obj in session.dirty:
        if not (isinstance(obj, AuditedMixin) and obj.__audit_entity__) or not session.is_modified(obj):
            continue
        before, after = _changed_fields(obj)
        if not after and not before:
            continue
        action = "update"
        if "deleted_at" in after:
            action = "delete" if after["deleted_at"] is not None else "restore"
        rows.append(_row(session, action=action, entity_type=obj.__audit_entity__, entity_id=obj.id,
                         changes={"before": before, "after": after}, domain=_domain_of(obj)))
    for obj in session.deleted:
        if isinstance(obj, AuditedMixin) and obj.__audit_entity__:
            rows.append(_row(session, action="purge", entity_type=obj.__audit_entity__, entity_id=obj.id,
                             changes=None, domain=_domain_of(obj)))
    return rows


def _domain_of(obj: Any) -> str | None:
    return getattr(obj, "audit_domain", None) or getattr(obj, "domain", None)


@event.listens_for(Session, "after_flush")
def _write_audit_rows(session: Session, flush_context: Any) -> None:
    # after_flush still sees the pre-flush history, and ids and defaults are assigned by now.
    rows = _audit_rows_for_flush(session)
    if rows:
        session.connection().execute(insert(AuditLog), rows)


# ---- reading --------------------------------------------------------------------------------

def require_audit_view(actor: Actor) -> None:
    if not actor.can_anywhere("audit.view"):
        raise Forbidden("Reading the audit log needs the 'audit.view' permission.", permission="audit.view")


def audit_scope(actor: Actor) -> Any:
    """SQL filter: the audit rows of the domains where the actor holds audit.view; platform-level
    rows (no domain) only for a global holder of it. Row-level security narrows it further."""
    domains = actor.domains_with("audit.view")
    if domains is None:
        return None if actor.is_global else AuditLog.domain.isnot(None)
    return AuditLog.domain.in_(sorted(domains))


def may_see_details(actor: Actor, domain: str | None) -> bool:
    """Addresses and user agents are for auditors of the row's domain."""
    return actor.can("audit.view", domain)


def audit_query(*, entity_type: str | None = None, entity_id: uuid.UUID | None = None,
                user_id: uuid.UUID | None = None, action: str | None = None, domain: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                request_id: str | None = None) -> Select:
    """Filters over the audit log; row-level security limits it to the caller's domains."""
    stmt = where_equal(select(AuditLog), (AuditLog.entity_type, entity_type), (AuditLog.entity_id, entity_id),
                       (AuditLog.user_id, user_id), (AuditLog.action, action), (AuditLog.domain, domain),
                       (AuditLog.request_id, request_id))
    return where_in_range(stmt, AuditLog.timestamp, since, until)


