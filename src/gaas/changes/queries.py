"""Generic queries over changes (for the ServiceNow Table API and reports): the fields that may be
filtered and sorted on, under exactly the visibility rules of service.list_changes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gaas.changes.models import Change, ChangeRisk, ChangeStatus, ChangeType
from gaas.changes.service import _viewable
from gaas.core.context import Actor
from gaas.core.errors import Forbidden
from gaas.core.filtering import EQ, Expr, Field, run_query

CHANGE_FIELDS: dict[str, Field] = {
    "id": Field.uuid_(Change.id),
    "number": Field.text_(Change.number),
    "domain": Field.text_(Change.domain),
    "short_description": Field.text_(Change.short_description),
    "description": Field.text_(Change.description, sortable=False),
    "type": Field.enum_(Change.type, ChangeType),
    "status": Field.enum_(Change.status, ChangeStatus),
    "risk": Field.enum_(Change.risk, ChangeRisk),
    "approval_status": Field.text_(Change.approval_status),
    "requested_by": Field.uuid_(Change.requested_by),
    "assigned_to": Field.uuid_(Change.assigned_to),
    "service_id": Field.uuid_(Change.service_id),
    # "affected_cis eq X": X is one of the change's CIs.
    "affected_cis": Field(Change.affected_cis.any_(), frozenset({EQ}), Field.uuid_(Change.id).parse, sortable=False),
    "planned_start": Field.time_(Change.planned_start),
    "planned_end": Field.time_(Change.planned_end),
    "actual_start": Field.time_(Change.actual_start),
    "actual_end": Field.time_(Change.actual_end),
    "implementation_plan": Field.text_(Change.implementation_plan, sortable=False),
    "rollback_plan": Field.text_(Change.rollback_plan, sortable=False),
    "test_plan": Field.text_(Change.test_plan, sortable=False),
    "implementation_notes": Field.text_(Change.implementation_notes, sortable=False),
    "success": Field.bool_(Change.success),
    "closed_at": Field.time_(Change.closed_at),
    "created_at": Field.time_(Change.created_at),
    "created_by": Field.uuid_(Change.created_by),
    "updated_at": Field.time_(Change.updated_at),
    "updated_by": Field.uuid_(Change.updated_by),
    "version": Field.int_(Change.version),
}


def query_changes(db: Session, actor: Actor, *, where: Expr | None = None,
                  order: Sequence[tuple[str, bool]] = (), offset: int = 0, limit: int = 50,
                  count: bool = True) -> tuple[list[Change], int | None]:
    """Changes the caller may list (as service.list_changes), filtered by an expression over
    CHANGE_FIELDS, in `order` then by id, with offset paging and the total."""
    if not actor.can_anywhere("change.view"):
        raise Forbidden("Listing changes needs the 'change.view' permission.", permission="change.view")
    stmt = _viewable(select(Change), actor).where(Change.deleted_at.is_(None))
    return run_query(db, stmt, fields=CHANGE_FIELDS, id_column=Change.id, where=where, order=order,
                     offset=offset, limit=limit, count=count, default_order=Change.created_at.asc())
