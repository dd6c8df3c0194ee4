"""Incident management's rules: the priority matrix, the lifecycle, assignment, the SLA clock
and its breach job, and the SLA-at-risk view. The only entry to gaas_incident_mgmt for other
modules (problems, SLA policies and the matrix live beside it in this module)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, Select, cast, false, func, select, text
from sqlalchemy.orm import Session

from gaas.audit import service as audit
from gaas.catalog import service as catalog
from gaas.cmdb import service as cmdb
from gaas.core.context import Actor
from gaas.core.errors import Conflict, Forbidden, NotFound, ValidationProblem
from gaas.core.events import emit, emit_many
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import contains_pattern, where_equal, where_viewable
from gaas.core.records import delete_announced, expected_version, restore_announced, rows_by_id, stamp_created
from gaas.core.settings import get_settings
from gaas.iam import service as iam
from gaas.iam.service import require
from gaas.incidents import events
from gaas.incidents.models import (
    OPEN_INCIDENT,
    HoldReason,
    Incident,
    IncidentStatus,
    Priority,
    Problem,
    ProblemStatus,
)
from gaas.incidents.policies import calendar, computed_priority, effective_matrix, policy_for
from gaas.incidents.schemas import AtRiskIncident, IncidentCreate, IncidentOut, IncidentUpdate, KnownError
from gaas.incidents.sla import add_working_time, working_seconds_between

# Where each status may go next. Closed and cancelled are final; a resolved incident may be
# reopened (within GAAS_INCIDENT_REOPEN_DAYS of its resolution).
TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.new: frozenset({IncidentStatus.in_progress, IncidentStatus.cancelled}),
    IncidentStatus.in_progress: frozenset({IncidentStatus.resolved, IncidentStatus.cancelled}),
    IncidentStatus.resolved: frozenset({IncidentStatus.closed, IncidentStatus.in_progress}),
    IncidentStatus.closed: frozenset(),
    IncidentStatus.cancelled: frozenset(),
}
FINAL = (IncidentStatus.closed, IncidentStatus.cancelled)
# Moving an incident into these needs incident.resolve (reopening too: it undoes a resolution).
RESOLVER_MOVES = {(IncidentStatus.in_progress, IncidentStatus.resolved),
                  (IncidentStatus.resolved, IncidentStatus.closed),
                  (IncidentStatus.resolved, IncidentStatus.in_progress)}

INCIDENT_SORTS = (SortKey("number", Incident.number), SortKey("priority", Incident.priority),
                  SortKey("created_at", Incident.created_at), SortKey("updated_at", Incident.updated_at))
AT_RISK_SORTS = (SortKey("sla_due", Incident.sla_due),)
MAX_AT_RISK_WINDOW = timedelta(days=30)


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


# ---- reading ------------------------------------------------------------------------------------

def get_incident(db: Session, actor: Actor, incident_id: uuid.UUID, *, include_deleted: bool = True) -> Incident:
    """An incident the caller may see (row-level security, then incident.view), else 404."""
    incident = db.get(Incident, incident_id)
    if incident is None or (incident.deleted_at is not None and not include_deleted) \
            or not actor.can("incident.view", incident.domain):
        raise NotFound(f"No incident {incident_id}.")
    return incident


def incident_exists(db: Session, actor: Actor, incident_id: uuid.UUID) -> Incident | None:
    """For other modules: the live incident the caller may see."""
    incident = db.get(Incident, incident_id)
    return incident if incident is not None and _live_and_viewable(actor, incident) else None


def incidents_existing(db: Session, actor: Actor, incident_ids: list[uuid.UUID]) -> dict[uuid.UUID, Incident]:
    """For other modules: incident_exists for many incidents in one query."""
    return rows_by_id(db, Incident, incident_ids, lambda incident: _live_and_viewable(actor, incident))


def _live_and_viewable(actor: Actor, incident: Incident) -> bool:
    return incident.deleted_at is None and actor.can("incident.view", incident.domain)


def known_errors(db: Session, incidents: list[Incident]) -> dict[uuid.UUID, KnownError]:
    """The workaround each linked known error offers, for a page of incidents (one query)."""
    ids = {i.problem_id for i in incidents if i.problem_id is not None}
    if not ids:
        return {}
    rows = db.execute(select(Problem.id, Problem.number, Problem.workaround).where(
        Problem.id.in_(ids), Problem.deleted_at.is_(None)))
    return {r.id: KnownError(problem_id=r.id, number=r.number, workaround=r.workaround)
            for r in rows if not _blank(r.workaround)}


def incident_out(incident: Incident, known: dict[uuid.UUID, KnownError] | None = None) -> IncidentOut:
    out = IncidentOut.model_validate(incident)
    if incident.problem_id is not None and known:
        out.known_error = known.get(incident.problem_id)
    return out


def incidents_out(db: Session, incidents: list[Incident]) -> list[IncidentOut]:
    known = known_errors(db, incidents)
    return [incident_out(i, known) for i in incidents]


def _viewable(stmt: Select, actor: Actor, domain: Any = Incident.domain) -> Select:
    """Only the domains where the caller holds incident.view; `domain`: the column to filter (a Core
    column keeps a statement off the ORM's slower path)."""
    return where_viewable(stmt, actor, "incident.view", domain)


def list_incidents(db: Session, actor: Actor, *, domain: str | None = None,
                   status: list[IncidentStatus] | None = None, open_only: bool = False,
                   priority: Priority | None = None, assigned_to: uuid.UUID | None = None,
                   assigned_group: str | None = None, service_id: uuid.UUID | None = None,
                   ci_id: uuid.UUID | None = None, problem_id: uuid.UUID | None = None,
                   sla_breached: bool | None = None, q: str | None = None, include_deleted: bool = False,
                   sort: str | None = None, cursor: str | None = None,
                   limit: int = 50) -> tuple[list[Incident], str | None]:
    if not actor.can_anywhere("incident.view"):
        raise Forbidden("Listing incidents needs the 'incident.view' permission.", permission="incident.view")
    stmt = _viewable(select(Incident), actor)
    if not include_deleted:
        stmt = stmt.where(Incident.deleted_at.is_(None))
    stmt = where_equal(stmt, (Incident.domain, domain), (Incident.priority, priority),
                       (Incident.assigned_to, assigned_to), (Incident.assigned_group, assigned_group),
                       (Incident.service_id, service_id), (Incident.ci_id, ci_id), (Incident.problem_id, problem_id),
                       (Incident.sla_breached, sla_breached))
    if open_only:
        # Written as the partial indexes' predicate, so "my open incidents" uses idx_incidents_assigned_to.
        stmt = stmt.where(Incident.status.in_(OPEN_INCIDENT))
    if status:
        stmt = stmt.where(Incident.status.in_(status))
    if q:
        stmt = stmt.where(Incident.short_description.ilike(contains_pattern(q.strip())))
    return paginate(stmt, id_column=Incident.id, sort_keys=INCIDENT_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def at_risk(db: Session, actor: Actor, within: timedelta, *, domain: str | None = None, cursor: str | None = None,
            limit: int = 50) -> tuple[list[AtRiskIncident], str | None]:
    """The specification's Query 2: open incidents whose SLA is due within `within` (or overdue
    but not yet marked breached), soonest first, with their service's and assignee's names."""
    if not actor.can_anywhere("incident.view"):
        raise Forbidden("Listing incidents needs the 'incident.view' permission.", permission="incident.view")
    if within > MAX_AT_RISK_WINDOW:
        raise ValidationProblem.field("within", "at most 30 days (30d)")
    hours = cast(func.extract("epoch", Incident.sla_due - func.now()) / 3600, Float).label("hours")
    stmt = select(Incident.id, Incident.number, Incident.short_description, Incident.priority, Incident.domain,
                  Incident.service_id, Incident.sla_due, Incident.assigned_to, hours)
    stmt = _viewable(stmt, actor).where(
        Incident.status.in_(OPEN_INCIDENT),
        Incident.sla_due <= func.now() + within,
        Incident.sla_breached == false(),
        Incident.deleted_at.is_(None))
    stmt = where_equal(stmt, (Incident.domain, domain))
    rows, next_cursor = paginate(stmt, id_column=Incident.id, sort_keys=AT_RISK_SORTS, sort=None, cursor=cursor,
                                 limit=limit, execute=db.execute)
    services = catalog.service_labels(db, sorted({r.service_id for r in rows if r.service_id}))
    people = iam.user_names(db, sorted({r.assigned_to for r in rows if r.assigned_to}))
    return [AtRiskIncident(id=r.id, number=r.number, short_description=r.short_description, priority=r.priority,
                           domain=r.domain, service_id=r.service_id,
                           service_name=services[r.service_id][1] if r.service_id in services else None,
                           sla_due=r.sla_due, hours_until_breach=round(r.hours, 4), assigned_to_id=r.assigned_to,
                           assigned_to=people.get(r.assigned_to)) for r in rows], next_cursor


# ---- references ---------------------------------------------------------------------------------

class Lookups:
    """What validating incidents looks up, asked once per request however many incidents name it
    (bulk creation); every answer still comes from the module that owns the record."""

    def __init__(self, db: Session, actor: Actor) -> None:
        self.db, self.actor = db, actor
        self._answers: dict[tuple, Any] = {}

    def _once(self, key: tuple, ask) -> Any:
        if key not in self._answers:
            self._answers[key] = ask()
        return self._answers[key]

    def active_domain(self, domain: str) -> None:
        self._once(("domain", domain), lambda: iam.require_active_domain(self.db, domain))

    def assignable(self, user_id: uuid.UUID, domain: str) -> bool:
        return self._once(("user", user_id, domain), lambda: iam.user_allowed_in_domain(self.db, user_id, domain))

    def service(self, service_id: uuid.UUID, domain: str) -> bool:
        return self._once(("service", service_id, domain),
                          lambda: catalog.service_exists(self.db, self.actor, service_id, domain=domain) is not None)

    def ci(self, ci_id: uuid.UUID, domain: str) -> bool:
        def ask() -> bool:
            ci = cmdb.ci_exists(self.db, self.actor, ci_id)
            return ci is not None and ci.domain in (None, domain)
        return self._once(("ci", ci_id, domain), ask)

    def priority(self, domain: str, impact, urgency) -> Priority:
        return self._once(("matrix", domain), lambda: effective_matrix(self.db, domain)[0]).lookup(impact, urgency)

    def policy(self, domain: str, priority: Priority):
        return self._once(("policy", domain, priority), lambda: policy_for(self.db, domain, priority))


def check_references(db: Session, actor: Actor, domain: str, values: dict[str, Any],
                     lookups: Lookups | None = None) -> None:
    """Every reference an incident (or a problem) makes, checked through the module that owns it."""
    lookups = lookups or Lookups(db, actor)
    user_id = values.get("assigned_to")
    if user_id is not None and not lookups.assignable(user_id, domain):
        raise ValidationProblem.field("assigned_to", f"no active user allowed in domain '{domain}' has this id",
                                      "unknown_user")
    if values.get("service_id") is not None and not lookups.service(values["service_id"], domain):
        raise ValidationProblem.field("service_id", f"no such service in domain '{domain}'", "unknown_service")
    if values.get("ci_id") is not None and not lookups.ci(values["ci_id"], domain):
        raise ValidationProblem.field("ci_id", f"no such configuration item in domain '{domain}' or shared",
                                      "unknown_ci")
    if values.get("problem_id") is not None:
        linkable_problem(db, actor, values["problem_id"], domain, "problem_id")


def linkable_problem(db: Session, actor: Actor, problem_id: uuid.UUID, domain: str, field: str) -> Problem:
    problem = db.get(Problem, problem_id)
    if problem is None or problem.deleted_at is not None or problem.domain != domain \
            or not actor.can("problem.view", problem.domain):
        raise ValidationProblem.field(field, f"no such problem in domain '{domain}'", "unknown_problem")
    if problem.status == ProblemStatus.closed:
        raise ValidationProblem.field(field, f"{problem.number} is closed; it takes no more incidents",
                                      "closed_problem")
    return problem


# ---- the SLA clock ------------------------------------------------------------------------------

_LOOK_UP = object()


def _run_clock(db: Session, incident: Incident, now: datetime, *, resolved_since: datetime | None = None,
               policy: Any = _LOOK_UP) -> None:
    """Bring the SLA fields in step with the incident's priority, status and hold reason.

    The clock runs from created_at for the policy's resolution target, in the policy's working
    time, plus the working time it spent stopped: on hold for a reason the policy pauses on
    (sla_due is NULL meanwhile, so a paused incident is neither at risk nor breached), or resolved
    before a reopen (`resolved_since`)."""
    if policy is _LOOK_UP:
        policy = policy_for(db, incident.domain, incident.priority)
    clock = calendar(policy)
    if incident.sla_paused_at is not None:
        incident.sla_paused_seconds += working_seconds_between(clock, incident.sla_paused_at, now)
        incident.sla_paused_at = None
    if resolved_since is not None:
        incident.sla_paused_seconds += working_seconds_between(clock, resolved_since, now)
    incident.sla_policy_id = policy.id if policy is not None else None
    pausing = policy is not None and incident.status == IncidentStatus.in_progress \
        and incident.hold_reason in policy.pause_on
    if pausing:
        incident.sla_paused_at = now
        incident.sla_due = None
    elif policy is None:
        incident.sla_due = None
    else:
        incident.sla_due = add_working_time(clock, incident.created_at,
                                            policy.resolution_minutes * 60 + incident.sla_paused_seconds)


def mark_sla_breaches(db: Session, *, batch: int = 1000) -> int:
    """Mark open incidents past their due date as breached, each exactly once: the conditional
    UPDATE ... RETURNING only takes rows still unmarked (rows another run holds are skipped), and
    each marked row gets its audit row and its incident.sla_breached event in the same transaction.
    Returns how many were marked; call again while it returns `batch`."""
    actor = db.info.get("actor")
    rows = db.execute(text("""
        WITH due AS (
            SELECT id FROM gaas_incident_mgmt.incidents
            WHERE status IN ('new', 'in_progress') AND sla_breached = FALSE AND sla_due < now()
              AND deleted_at IS NULL
            ORDER BY sla_due
            LIMIT :batch
            FOR UPDATE SKIP LOCKED
        )
        UPDATE gaas_incident_mgmt.incidents i
        SET sla_breached = TRUE, version = i.version + 1, updated_at = now(), updated_by = :actor
        FROM due WHERE i.id = due.id
        RETURNING i.id, i.domain, i.number, i.priority::text AS priority, i.sla_due, i.assigned_to,
                  i.assigned_group"""), {"batch": batch, "actor": actor.user_id if actor else None}).all()
    if not rows:
        return 0
    audit.record_many(db, "incident", [("update", r.id, {"before": {"sla_breached": False},
                                                          "after": {"sla_breached": True}}, r.domain) for r in rows])
    emit_many(db, events.INCIDENT_SLA_BREACHED, "incident", [
        (r.domain, r.id, {"number": r.number, "priority": r.priority, "sla_due": r.sla_due,
                          "assigned_to": r.assigned_to, "assigned_group": r.assigned_group}) for r in rows])
    return len(rows)


# ---- writing --------------------------------------------------------------------------------------

def _priority(db: Session, actor: Actor, domain: str, impact, urgency, chosen: Priority | None,
              lookups: Lookups | None = None) -> tuple[Priority, bool, Priority]:
    """(priority, overridden, computed): a chosen priority other than the matrix's is an override."""
    computed = (lookups or Lookups(db, actor)).priority(domain, impact, urgency)
    if chosen is None or chosen == computed:
        return computed, False, computed
    require(actor, "incident.override_priority", domain)
    return chosen, True, computed


def _audit_override(db: Session, incident: Incident, before: Priority | None, computed: Priority) -> None:
    audit.record(db, action="override_priority", entity_type="incident", entity_id=incident.id,
                 domain=incident.domain, changes={"before": {"priority": before},
                                                  "after": {"priority": incident.priority, "computed": computed}})


def _new_incident(db: Session, actor: Actor, data: IncidentCreate, lookups: Lookups,
                  now: datetime) -> tuple[Incident, Priority | None]:
    """A validated, not yet written incident, and the matrix's priority when it is overridden."""
    require(actor, "incident.create", data.domain)
    lookups.active_domain(data.domain)
    values = data.model_dump(exclude={"priority"})
    if values["assigned_to"] is not None or values["assigned_group"] is not None:
        require(actor, "incident.assign", data.domain)
    check_references(db, actor, data.domain, values, lookups)
    priority, overridden, computed = _priority(db, actor, data.domain, data.impact, data.urgency, data.priority,
                                               lookups)
    incident = Incident(**values, priority=priority, priority_overridden=overridden, status=IncidentStatus.new,
                        sla_breached=False, sla_paused_seconds=0, created_at=now)
    _run_clock(db, incident, now, policy=lookups.policy(data.domain, priority))
    stamp_created(incident, actor)
    return incident, computed if overridden else None


def _announce_created(db: Session, created: list[tuple[Incident, Priority | None]]) -> None:
    """After the insert: override audit rows, and incident.created / incident.assigned events."""
    for incident, computed in created:
        if computed is not None:
            _audit_override(db, incident, None, computed)
    emit_many(db, events.INCIDENT_CREATED, "incident", [
        (i.domain, i.id, {"number": i.number, "short_description": i.short_description, "priority": i.priority,
                          "service_id": i.service_id, "ci_id": i.ci_id, "sla_due": i.sla_due}) for i, _ in created])
    emit_many(db, events.INCIDENT_ASSIGNED, "incident", [
        (i.domain, i.id, {"number": i.number, "assigned_to": i.assigned_to, "assigned_group": i.assigned_group,
                          "previous_assigned_to": None, "previous_assigned_group": None})
        for i, _ in created if i.assigned_to is not None or i.assigned_group is not None])


def create_incident(db: Session, actor: Actor, data: IncidentCreate, *, opened_at: datetime | None = None) -> Incident:
    """Report an incident. `opened_at` (not exposed by the API) backdates it, for imports and demo data."""
    created = _new_incident(db, actor, data, Lookups(db, actor), opened_at or datetime.now(UTC))
    db.add(created[0])
    db.flush()
    _announce_created(db, [created])
    return created[0]


def create_incidents(db: Session, actor: Actor, items: list[IncidentCreate]) -> list[Incident]:
    """Bulk creation in one transaction (monitoring tools, imports): every bad item is reported
    (items.N.field) and none is written; references are looked up once per request."""
    lookups, now = Lookups(db, actor), datetime.now(UTC)
    created: list[tuple[Incident, Priority | None]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            created.append(_new_incident(db, actor, item, lookups, now))
        except ValidationProblem as problem:
            errors += [{**e, "field": f"items.{index}.{e['field']}"} for e in problem.errors]
    if errors:
        raise ValidationProblem(f"{len(errors)} item(s) are not valid; nothing was written.", errors=errors)
    db.add_all([incident for incident, _ in created])
    db.flush()
    _announce_created(db, created)
    return [incident for incident, _ in created]


@dataclass(frozen=True)
class _Before:
    status: IncidentStatus
    priority: Priority
    assigned_to: uuid.UUID | None
    assigned_group: str | None
    hold_reason: str | None
    resolved_at: datetime | None


def _check_transition(current: IncidentStatus, new: IncidentStatus) -> None:
    if new != current and new not in TRANSITIONS[current]:
        allowed = sorted(s.value for s in TRANSITIONS[current])
        raise Conflict(f"A {current.value} incident cannot become {new.value}; allowed: {allowed or 'none'}.",
                       errors=[{"field": "status", "message": f"{current.value} → {new.value} is not allowed",
                                "type": "transition", "allowed": allowed}])


def update_incident(db: Session, actor: Actor, incident_id: uuid.UUID, data: IncidentUpdate,
                    if_match: int | None, *, at: datetime | None = None) -> Incident:
    incident = get_incident(db, actor, incident_id, include_deleted=False)
    require(actor, "incident.edit", incident.domain)
    expected_version(if_match, data.version, incident.version)
    changes = data.model_dump(exclude_unset=True, exclude={"version", "solved_by_articles"})
    apply_changes(db, actor, incident, changes, at or datetime.now(UTC))
    _link_solving_articles(db, actor, incident, data.solved_by_articles or [])
    return incident


def _link_solving_articles(db: Session, actor: Actor, incident: Incident, article_ids: list[uuid.UUID]) -> None:
    """Through the knowledge module, which checks each article (published, readable, this domain)."""
    from gaas.knowledge import service as knowledge

    for index, article_id in enumerate(dict.fromkeys(article_ids)):
        knowledge.link_incident(db, actor, article_id, incident.id, article_field=f"solved_by_articles[{index}]")


def apply_changes(db: Session, actor: Actor, incident: Incident, changes: dict[str, Any], now: datetime) -> None:
    """Validate and apply one set of changes (fields and/or a status move) with every side effect:
    resolution stamps, the SLA clock, priority from the matrix, audit (by the flush) and events."""
    changes = {k: v for k, v in changes.items() if getattr(incident, k) != v or k == "priority"}
    if not changes:
        return
    # A closed or cancelled incident is a record: it only gains (or loses) its problem link, which
    # is how problem analysis collects history.
    if incident.status in FINAL and set(changes) - {"problem_id"}:
        raise Conflict(f"{incident.number} is {incident.status.value}: it can no longer change.",
                       errors=[{"field": next(iter(changes)), "message": f"the incident is {incident.status.value}",
                                "type": "final", "allowed": []}])
    before = _Before(incident.status, incident.priority, incident.assigned_to, incident.assigned_group,
                     incident.hold_reason, incident.resolved_at)
    status = changes.pop("status", incident.status)
    _check_transition(incident.status, status)
    if (incident.status, status) in RESOLVER_MOVES:
        require(actor, "incident.resolve", incident.domain)
    if ("assigned_to" in changes or "assigned_group" in changes):
        require(actor, "incident.assign", incident.domain)
    check_references(db, actor, incident.domain, changes)
    if incident.status == IncidentStatus.resolved and status == IncidentStatus.in_progress:
        _check_reopen(incident, now)

    hold = changes.pop("hold_reason", incident.hold_reason if status == IncidentStatus.in_progress else None)
    if hold is not None and status != IncidentStatus.in_progress:
        raise Conflict("Only an in-progress incident can be on hold.",
                       errors=[{"field": "hold_reason", "message": f"the incident is {status.value}",
                                "type": "state", "allowed": [IncidentStatus.in_progress.value]}])
    notes = changes.get("resolution_notes", incident.resolution_notes)
    if status in (IncidentStatus.resolved, IncidentStatus.closed) and _blank(notes):
        raise ValidationProblem.field("resolution_notes", "required to resolve an incident", "missing")

    chosen = changes.pop("priority") if "priority" in changes else ...  # ...: not given; None: back to the matrix
    impact, urgency = changes.get("impact", incident.impact), changes.get("urgency", incident.urgency)
    override_computed: Priority | None = None
    if chosen is not ...:
        priority, overridden, computed = _priority(db, actor, incident.domain, impact, urgency, chosen)
        if overridden and (not incident.priority_overridden or priority != incident.priority):
            override_computed = computed
        changes.update(priority=priority, priority_overridden=overridden)
    elif "impact" in changes or "urgency" in changes:
        computed = computed_priority(db, incident.domain, impact, urgency)
        if not incident.priority_overridden:
            changes["priority"] = computed
        elif computed == incident.priority:
            changes["priority_overridden"] = False  # the matrix now agrees: the override has no more reason

    # One flush for the whole change, so the audit log shows it as one update.
    with db.no_autoflush:
        for key, value in changes.items():
            setattr(incident, key, value)
        incident.hold_reason = hold.value if isinstance(hold, HoldReason) else hold
        incident.updated_by = actor.user_id
        _stamp_transition(incident, actor, before.status, status, now)
        if status != before.status or incident.priority != before.priority \
                or incident.hold_reason != before.hold_reason:
            reopened = before.status == IncidentStatus.resolved and status == IncidentStatus.in_progress
            _run_clock(db, incident, now, resolved_since=before.resolved_at if reopened else None)
    if not db.is_modified(incident):
        return
    db.flush()
    if override_computed is not None:
        _audit_override(db, incident, before.priority, override_computed)
    changed = set(changes) | ({"status"} if status != before.status else set()) \
        | ({"hold_reason"} if incident.hold_reason != before.hold_reason else set())
    _emit_update_events(db, incident, before, sorted(changed))


def _check_reopen(incident: Incident, now: datetime) -> None:
    days = get_settings().incident_reopen_days
    if incident.resolved_at is not None and now - incident.resolved_at > timedelta(days=days):
        raise Conflict(f"{incident.number} was resolved more than {days} days ago: report a new incident instead.",
                       errors=[{"field": "status", "message": f"reopening is allowed within {days} days of resolution",
                                "type": "reopen_expired", "allowed": [IncidentStatus.closed.value]}])


def _stamp_transition(incident: Incident, actor: Actor, old: IncidentStatus, new: IncidentStatus,
                      now: datetime) -> None:
    if new == old:
        return
    incident.status = new
    if new == IncidentStatus.resolved:
        incident.resolved_at, incident.resolved_by = now, actor.user_id
    elif new == IncidentStatus.closed:
        incident.closed_at, incident.closed_by = now, actor.user_id
    elif old == IncidentStatus.resolved and new == IncidentStatus.in_progress:
        incident.resolved_at = incident.resolved_by = None


def _emit_update_events(db: Session, incident: Incident, before: _Before, changed: list[str]) -> None:
    base = {"domain": incident.domain, "entity_type": "incident", "entity_id": incident.id}
    emit(db, events.INCIDENT_UPDATED, **base, payload={"number": incident.number, "changed": changed})
    if incident.status != before.status:
        emit(db, events.INCIDENT_STATUS_CHANGED, **base, payload={"number": incident.number, "from": before.status,
                                                                  "to": incident.status})
    if (incident.assigned_to, incident.assigned_group) != (before.assigned_to, before.assigned_group):
        emit(db, events.INCIDENT_ASSIGNED, **base, payload={
            "number": incident.number, "assigned_to": incident.assigned_to,
            "assigned_group": incident.assigned_group, "previous_assigned_to": before.assigned_to,
            "previous_assigned_group": before.assigned_group})
    if incident.priority != before.priority:
        emit(db, events.INCIDENT_PRIORITY_CHANGED, **base, payload={
            "number": incident.number, "from": before.priority, "to": incident.priority,
            "overridden": incident.priority_overridden, "sla_due": incident.sla_due})


def resolve_linked_incidents(db: Session, actor: Actor, problem: Problem, notes: str, now: datetime) -> list[str]:
    """For problem resolution: resolve every open incident linked to the problem, each through the
    incident rules (a new one passes through in_progress). Returns their numbers."""
    incidents = db.scalars(select(Incident).where(Incident.problem_id == problem.id,
                                                  Incident.status.in_(OPEN_INCIDENT),
                                                  Incident.deleted_at.is_(None)).order_by(Incident.number)).all()
    for incident in incidents:
        require(actor, "incident.edit", incident.domain)
        if incident.status == IncidentStatus.new:
            apply_changes(db, actor, incident, {"status": IncidentStatus.in_progress}, now)
        apply_changes(db, actor, incident, {"status": IncidentStatus.resolved, "resolution_notes": notes}, now)
    return [i.number for i in incidents]


def open_incident_counts(db: Session, problem_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not problem_ids:
        return {}
    rows = db.execute(select(Incident.problem_id, func.count()).where(
        Incident.problem_id.in_(problem_ids), Incident.status.in_(OPEN_INCIDENT), Incident.deleted_at.is_(None))
        .group_by(Incident.problem_id))
    return {problem_id: count for problem_id, count in rows}


def set_problem(db: Session, actor: Actor, incident: Incident, problem_id: uuid.UUID | None) -> None:
    """Link or unlink an incident and a problem (from the problem's side: no incident version needed)."""
    apply_changes(db, actor, incident, {"problem_id": problem_id}, datetime.now(UTC))


def delete_incident(db: Session, actor: Actor, incident_id: uuid.UUID, if_match: int | None) -> Incident:
    incident = get_incident(db, actor, incident_id)
    require(actor, "incident.delete", incident.domain)
    delete_announced(db, incident, actor, if_match=if_match, event_type=events.INCIDENT_DELETED, entity_type="incident")
    return incident


def restore_incident(db: Session, actor: Actor, incident_id: uuid.UUID) -> Incident:
    incident = get_incident(db, actor, incident_id)
    require(actor, "incident.delete", incident.domain)
    restore_announced(db, incident, actor, event_type=events.INCIDENT_RESTORED, entity_type="incident")
    return incident
