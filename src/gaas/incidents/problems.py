"""Problem management: root cause, workaround (a known error), permanent fix; linked incidents
and their resolution with the problem. Part of the incidents module."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.errors import Conflict, Forbidden, NotFound, ValidationProblem
from gaas.core.events import emit
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import contains_pattern, where_equal, where_viewable
from gaas.core.records import delete_announced, expected_version, restore_announced, stamp_created
from gaas.iam import service as iam
from gaas.iam.service import require as _require
from gaas.incidents import events
from gaas.incidents import service as incidents
from gaas.incidents.models import Incident, Priority, Problem, ProblemStatus
from gaas.incidents.schemas import ProblemCreate, ProblemOut, ProblemUpdate

S = ProblemStatus
# The problem manager's path, with the steps back a real investigation takes: a root cause that
# turns out wrong, a fix abandoned, a resolution that did not hold. Closed is final.
TRANSITIONS: dict[ProblemStatus, frozenset[ProblemStatus]] = {
    S.new: frozenset({S.investigating, S.root_cause_found}),
    S.investigating: frozenset({S.root_cause_found}),
    S.root_cause_found: frozenset({S.fix_in_progress, S.investigating}),
    S.fix_in_progress: frozenset({S.resolved, S.root_cause_found}),
    S.resolved: frozenset({S.closed, S.fix_in_progress}),
    S.closed: frozenset(),
}
NEEDS_ROOT_CAUSE = frozenset({S.root_cause_found, S.fix_in_progress, S.resolved, S.closed})
NEEDS_FIX = frozenset({S.resolved, S.closed})

PROBLEM_SORTS = (SortKey("number", Problem.number), SortKey("priority", Problem.priority),
                 SortKey("created_at", Problem.created_at), SortKey("updated_at", Problem.updated_at))


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def get_problem(db: Session, actor: Actor, problem_id: uuid.UUID, *, include_deleted: bool = True) -> Problem:
    problem = db.get(Problem, problem_id)
    if problem is None or (problem.deleted_at is not None and not include_deleted) \
            or not actor.can("problem.view", problem.domain):
        raise NotFound(f"No problem {problem_id}.")
    return problem


def problem_out(db: Session, problems: list[Problem]) -> list[ProblemOut]:
    counts = incidents.open_incident_counts(db, [p.id for p in problems])
    return [ProblemOut.model_validate(p).model_copy(update={"open_incidents": counts.get(p.id, 0)})
            for p in problems]


def list_problems(db: Session, actor: Actor, *, domain: str | None, status: ProblemStatus | None,
                  priority: Priority | None, assigned_to: uuid.UUID | None, service_id: uuid.UUID | None,
                  known_error: bool | None, q: str | None, include_deleted: bool, sort: str | None,
                  cursor: str | None, limit: int) -> tuple[list[Problem], str | None]:
    if not actor.can_anywhere("problem.view"):
        raise Forbidden("Listing problems needs the 'problem.view' permission.", permission="problem.view")
    stmt = select(Problem)
    stmt = where_viewable(stmt, actor, "problem.view", Problem.domain)
    if not include_deleted:
        stmt = stmt.where(Problem.deleted_at.is_(None))
    stmt = where_equal(stmt, (Problem.domain, domain), (Problem.status, status), (Problem.priority, priority),
                       (Problem.assigned_to, assigned_to), (Problem.service_id, service_id))
    if known_error is not None:
        has_workaround = func.coalesce(func.btrim(Problem.workaround), "") != ""
        stmt = stmt.where(has_workaround if known_error else ~has_workaround)
    if q:
        stmt = stmt.where(Problem.short_description.ilike(contains_pattern(q.strip())))
    return paginate(stmt, id_column=Problem.id, sort_keys=PROBLEM_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def create_problem(db: Session, actor: Actor, data: ProblemCreate) -> Problem:
    _require(actor, "problem.manage", data.domain)
    iam.require_active_domain(db, data.domain)
    values = data.model_dump()
    incidents.check_references(db, actor, data.domain, values)
    problem = Problem(**values, status=ProblemStatus.new)
    stamp_created(problem, actor)
    db.add(problem)
    db.flush()
    base = {"domain": problem.domain, "entity_type": "problem", "entity_id": problem.id}
    emit(db, events.PROBLEM_CREATED, **base, payload={"number": problem.number, "priority": problem.priority,
                                                      "service_id": problem.service_id, "ci_id": problem.ci_id})
    if problem.known_error:
        emit(db, events.PROBLEM_KNOWN_ERROR, **base, payload={"number": problem.number,
                                                              "workaround": problem.workaround})
    return problem


def _check_transition(current: ProblemStatus, new: ProblemStatus) -> None:
    if new != current and new not in TRANSITIONS[current]:
        allowed = sorted(s.value for s in TRANSITIONS[current])
        raise Conflict(f"A problem in {current.value} cannot move to {new.value}; allowed: {allowed or 'none'}.",
                       errors=[{"field": "status", "message": f"{current.value} → {new.value} is not allowed",
                                "type": "transition", "allowed": allowed}])


def update_problem(db: Session, actor: Actor, problem_id: uuid.UUID, data: ProblemUpdate,
                   if_match: int | None, *, at: datetime | None = None) -> tuple[Problem, list[str]]:
    """Edit a problem or move it along its lifecycle. With status=resolved and resolve_incidents,
    its open incidents are resolved in the same transaction (their numbers are returned)."""
    problem = get_problem(db, actor, problem_id, include_deleted=False)
    _require(actor, "problem.manage", problem.domain)
    expected_version(if_match, data.version, problem.version)
    now = at or datetime.now(UTC)
    changes = data.model_dump(exclude_unset=True, exclude={"version", "resolve_incidents",
                                                           "incident_resolution_notes"})
    changes = {k: v for k, v in changes.items() if getattr(problem, k) != v}
    status = changes.pop("status", problem.status)
    if data.resolve_incidents and (status != ProblemStatus.resolved or problem.status == ProblemStatus.resolved):
        raise ValidationProblem.field("resolve_incidents", "only when resolving the problem (status=resolved)",
                                      "state")
    if problem.status == ProblemStatus.closed and (changes or status != problem.status):
        raise Conflict(f"{problem.number} is closed: it can no longer change.",
                       errors=[{"field": next(iter(changes), "status"), "message": "the problem is closed",
                                "type": "final", "allowed": []}])
    _check_transition(problem.status, status)
    incidents.check_references(db, actor, problem.domain, changes)
    root_cause = changes.get("root_cause", problem.root_cause)
    fix = changes.get("permanent_fix", problem.permanent_fix)
    if status in NEEDS_ROOT_CAUSE and _blank(root_cause):
        raise ValidationProblem.field("root_cause", f"required for a problem in {status.value}", "missing")
    if status in NEEDS_FIX and _blank(fix):
        raise ValidationProblem.field("permanent_fix", f"required for a problem in {status.value}", "missing")
    was_known_error, old_status = problem.known_error, problem.status
    for key, value in changes.items():
        setattr(problem, key, value)
    if changes or status != old_status:  # a request that changes nothing is no edit
        problem.updated_by = actor.user_id
    if status != old_status:
        problem.status = status
        if status == ProblemStatus.resolved:
            problem.resolved_at, problem.resolved_by = now, actor.user_id
        elif status == ProblemStatus.closed:
            problem.closed_at, problem.closed_by = now, actor.user_id
        elif old_status == ProblemStatus.resolved:  # the fix did not hold
            problem.resolved_at = problem.resolved_by = None
    if not db.is_modified(problem):
        return problem, []
    db.flush()
    base = {"domain": problem.domain, "entity_type": "problem", "entity_id": problem.id}
    emit(db, events.PROBLEM_UPDATED, **base, payload={
        "number": problem.number, "changed": sorted(set(changes) | ({"status"} if status != old_status else set()))})
    if status != old_status:
        emit(db, events.PROBLEM_STATUS_CHANGED, **base, payload={"number": problem.number, "from": old_status,
                                                                 "to": status})
    if problem.known_error and not was_known_error:
        emit(db, events.PROBLEM_KNOWN_ERROR, **base, payload={"number": problem.number,
                                                              "workaround": problem.workaround})
    resolved: list[str] = []
    if data.resolve_incidents:
        notes = data.incident_resolution_notes or f"Resolved with problem {problem.number}: {problem.permanent_fix}"
        resolved = incidents.resolve_linked_incidents(db, actor, problem, notes, now)
    return problem, resolved


def delete_problem(db: Session, actor: Actor, problem_id: uuid.UUID, if_match: int | None) -> Problem:
    problem = get_problem(db, actor, problem_id)
    _require(actor, "problem.delete", problem.domain)
    delete_announced(db, problem, actor, if_match=if_match, event_type=events.PROBLEM_DELETED, entity_type="problem")
    return problem


def restore_problem(db: Session, actor: Actor, problem_id: uuid.UUID) -> Problem:
    problem = get_problem(db, actor, problem_id)
    _require(actor, "problem.delete", problem.domain)
    restore_announced(db, problem, actor, event_type=events.PROBLEM_RESTORED, entity_type="problem")
    return problem


# ---- linked incidents -----------------------------------------------------------------------------

def list_linked_incidents(db: Session, actor: Actor, problem_id: uuid.UUID, *, cursor: str | None,
                          limit: int) -> tuple[list[Incident], str | None]:
    problem = get_problem(db, actor, problem_id)
    return incidents.list_incidents(db, actor, problem_id=problem.id, cursor=cursor, limit=limit)


def link_incident(db: Session, actor: Actor, problem_id: uuid.UUID, incident_id: uuid.UUID) -> Incident:
    problem = get_problem(db, actor, problem_id, include_deleted=False)
    _require(actor, "problem.manage", problem.domain)
    incident = incidents.incident_exists(db, actor, incident_id)
    if incident is None or incident.domain != problem.domain:
        raise ValidationProblem.field("incident_id", f"no such incident in domain '{problem.domain}'",
                                      "unknown_incident")
    if incident.problem_id == problem.id:
        raise Conflict(f"{incident.number} is already linked to {problem.number}.",
                       errors=[{"field": "incident_id", "message": "already linked", "type": "unique"}])
    incidents.linkable_problem(db, actor, problem.id, incident.domain, "problem_id")
    incidents.set_problem(db, actor, incident, problem.id)
    emit(db, events.PROBLEM_INCIDENT_LINKED, domain=problem.domain, entity_type="problem", entity_id=problem.id,
         payload={"number": problem.number, "incident_id": incident.id, "incident": incident.number})
    return incident


def unlink_incident(db: Session, actor: Actor, problem_id: uuid.UUID, incident_id: uuid.UUID) -> None:
    problem = get_problem(db, actor, problem_id, include_deleted=False)
    _require(actor, "problem.manage", problem.domain)
    incident = incidents.incident_exists(db, actor, incident_id)
    if incident is None or incident.problem_id != problem.id:
        raise NotFound(f"Incident {incident_id} is not linked to {problem.number}.")
    incidents.set_problem(db, actor, incident, None)
    emit(db, events.PROBLEM_INCIDENT_UNLINKED, domain=problem.domain, entity_type="problem", entity_id=problem.id,
         payload={"number": problem.number, "incident_id": incident.id, "incident": incident.number})
