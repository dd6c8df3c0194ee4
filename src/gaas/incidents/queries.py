"""Generic queries over incidents and problems (for the ServiceNow Table API and reports): the
fields that may be filtered and sorted on, under exactly the visibility rules of the lists in
service.py and problems.py; and the assignment groups in use."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, union
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.errors import Forbidden
from gaas.core.filtering import Expr, Field, run_query
from gaas.core.queries import where_viewable
from gaas.incidents.models import (
    HoldReason,
    Impact,
    Incident,
    IncidentStatus,
    Priority,
    Problem,
    ProblemStatus,
    Urgency,
)
from gaas.incidents.service import _viewable

INCIDENT_FIELDS: dict[str, Field] = {
    "id": Field.uuid_(Incident.id),
    "number": Field.text_(Incident.number),
    "domain": Field.text_(Incident.domain),
    "short_description": Field.text_(Incident.short_description),
    "description": Field.text_(Incident.description, sortable=False),
    "status": Field.enum_(Incident.status, IncidentStatus),
    "hold_reason": Field.enum_(Incident.hold_reason, HoldReason),
    "priority": Field.enum_(Incident.priority, Priority),
    "impact": Field.enum_(Incident.impact, Impact),
    "urgency": Field.enum_(Incident.urgency, Urgency),
    "category": Field.text_(Incident.category),
    "subcategory": Field.text_(Incident.subcategory),
    "assigned_to": Field.uuid_(Incident.assigned_to),
    "assigned_group": Field.text_(Incident.assigned_group),
    "service_id": Field.uuid_(Incident.service_id),
    "ci_id": Field.uuid_(Incident.ci_id),
    "problem_id": Field.uuid_(Incident.problem_id),
    "sla_due": Field.time_(Incident.sla_due),
    "sla_breached": Field.bool_(Incident.sla_breached),
    "resolution_notes": Field.text_(Incident.resolution_notes, sortable=False),
    "resolved_at": Field.time_(Incident.resolved_at),
    "resolved_by": Field.uuid_(Incident.resolved_by),
    "closed_at": Field.time_(Incident.closed_at),
    "closed_by": Field.uuid_(Incident.closed_by),
    "created_at": Field.time_(Incident.created_at),
    "created_by": Field.uuid_(Incident.created_by),
    "updated_at": Field.time_(Incident.updated_at),
    "updated_by": Field.uuid_(Incident.updated_by),
    "version": Field.int_(Incident.version),
}

PROBLEM_FIELDS: dict[str, Field] = {
    "id": Field.uuid_(Problem.id),
    "number": Field.text_(Problem.number),
    "domain": Field.text_(Problem.domain),
    "short_description": Field.text_(Problem.short_description),
    "description": Field.text_(Problem.description, sortable=False),
    "status": Field.enum_(Problem.status, ProblemStatus),
    "priority": Field.enum_(Problem.priority, Priority),
    "assigned_to": Field.uuid_(Problem.assigned_to),
    "assigned_group": Field.text_(Problem.assigned_group),
    "root_cause": Field.text_(Problem.root_cause, sortable=False),
    "workaround": Field.text_(Problem.workaround, sortable=False),
    "permanent_fix": Field.text_(Problem.permanent_fix, sortable=False),
    "service_id": Field.uuid_(Problem.service_id),
    "ci_id": Field.uuid_(Problem.ci_id),
    "resolved_at": Field.time_(Problem.resolved_at),
    "resolved_by": Field.uuid_(Problem.resolved_by),
    "closed_at": Field.time_(Problem.closed_at),
    "closed_by": Field.uuid_(Problem.closed_by),
    "created_at": Field.time_(Problem.created_at),
    "created_by": Field.uuid_(Problem.created_by),
    "updated_at": Field.time_(Problem.updated_at),
    "updated_by": Field.uuid_(Problem.updated_by),
    "version": Field.int_(Problem.version),
}


def query_incidents(db: Session, actor: Actor, *, where: Expr | None = None,
                    order: Sequence[tuple[str, bool]] = (), offset: int = 0, limit: int = 50,
                    count: bool = True) -> tuple[list[Incident], int | None]:
    """Incidents the caller may list (as service.list_incidents), filtered by an expression over
    INCIDENT_FIELDS, in `order` then by id, with offset paging and the total."""
    if not actor.can_anywhere("incident.view"):
        raise Forbidden("Listing incidents needs the 'incident.view' permission.", permission="incident.view")
    stmt = _viewable(select(Incident), actor).where(Incident.deleted_at.is_(None))
    return run_query(db, stmt, fields=INCIDENT_FIELDS, id_column=Incident.id, where=where, order=order,
                     offset=offset, limit=limit, count=count, default_order=Incident.created_at.asc())


def query_problems(db: Session, actor: Actor, *, where: Expr | None = None,
                   order: Sequence[tuple[str, bool]] = (), offset: int = 0, limit: int = 50,
                   count: bool = True) -> tuple[list[Problem], int | None]:
    """Problems the caller may list (as problems.list_problems), like query_incidents."""
    if not actor.can_anywhere("problem.view"):
        raise Forbidden("Listing problems needs the 'problem.view' permission.", permission="problem.view")
    stmt = select(Problem).where(Problem.deleted_at.is_(None))
    stmt = where_viewable(stmt, actor, "problem.view", Problem.domain)
    return run_query(db, stmt, fields=PROBLEM_FIELDS, id_column=Problem.id, where=where, order=order,
                     offset=offset, limit=limit, count=count, default_order=Problem.created_at.asc())


def assignment_groups(db: Session, actor: Actor) -> list[str]:
    """The assignment group names in use on the incidents and problems the caller may see
    (groups are names on those records; there is no group entity)."""
    names: list = []
    if actor.can_anywhere("incident.view"):
        names.append(_viewable(select(Incident.assigned_group), actor).where(
            Incident.assigned_group.is_not(None), Incident.deleted_at.is_(None)))
    if actor.can_anywhere("problem.view"):
        stmt = select(Problem.assigned_group).where(Problem.assigned_group.is_not(None), Problem.deleted_at.is_(None))
        stmt = where_viewable(stmt, actor, "problem.view", Problem.domain)
        names.append(stmt)
    if not names:
        return []
    return sorted(db.scalars(union(*names)).all())
