"""Change management's rules: the lifecycle by change type, approval, scheduling against other
changes and change windows, the suggested risk, the outcome and the incidents a failed change
caused, and the change calendar. The only entry to gaas_change_mgmt for other modules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gaas.audit import service as audit
from gaas.catalog import service as catalog
from gaas.changes import analysis, approval, events, planning
from gaas.changes.models import (
    Change,
    ChangeIncident,
    ChangeRisk,
    ChangeStatus,
    ChangeType,
    ChangeWindow,
)
from gaas.changes.schemas import (
    CalendarChange,
    CalendarWindow,
    CausedIncidentOut,
    ChangeCalendar,
    ChangeConflict,
    ChangeCreate,
    ChangeUpdate,
    ConflictReport,
    RiskAssessment,
)
from gaas.changes.windows import overlapping
from gaas.cmdb import service as cmdb
from gaas.core.context import Actor
from gaas.core.errors import Conflict, Forbidden, NotFound, ValidationProblem
from gaas.core.events import emit
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import contains_pattern, where_equal, where_viewable
from gaas.core.records import (
    delete_announced,
    expected_version,
    hard_delete,
    restore_announced,
    stamp_created,
)
from gaas.iam import service as iam
from gaas.iam.service import require
from gaas.incidents import service as incidents

S = ChangeStatus
_NORMAL_PATH: dict[ChangeStatus, frozenset[ChangeStatus]] = {
    S.draft: frozenset({S.submitted, S.cancelled}),
    S.submitted: frozenset({S.under_review, S.cancelled}),
    S.under_review: frozenset({S.approved, S.rejected, S.cancelled}),
    S.approved: frozenset({S.scheduled, S.cancelled}),
    S.rejected: frozenset({S.draft, S.cancelled}),  # rework, or give up
    S.scheduled: frozenset({S.implementing, S.cancelled}),
    S.implementing: frozenset({S.implemented, S.cancelled}),
    S.implemented: frozenset({S.closed}),
    S.closed: frozenset(),
    S.cancelled: frozenset(),
}
# Where each status may go next, by change type: a standard change is pre-approved (draft →
# scheduled); an emergency change skips review but still needs approval.
TRANSITIONS: dict[ChangeType, dict[ChangeStatus, frozenset[ChangeStatus]]] = {
    ChangeType.normal: _NORMAL_PATH,
    ChangeType.emergency: {**_NORMAL_PATH, S.submitted: frozenset({S.approved, S.rejected, S.cancelled}),
                           S.under_review: frozenset({S.approved, S.rejected, S.cancelled})},
    ChangeType.standard: {**{s: frozenset() for s in S},
                          S.draft: frozenset({S.scheduled, S.cancelled}),
                          S.scheduled: frozenset({S.implementing, S.cancelled}),
                          S.implementing: frozenset({S.implemented, S.cancelled}),
                          S.implemented: frozenset({S.closed})},
}
FINAL = (S.closed, S.cancelled)
# The permission each move needs (draft → scheduled for a standard change is the requester's).
APPROVER_MOVES = frozenset({S.under_review, S.approved, S.rejected})
IMPLEMENTER_MOVES = frozenset({S.implementing, S.implemented})

PLANS = ("implementation_plan", "rollback_plan", "test_plan")
WINDOW = ("planned_start", "planned_end")
SCOPE = ("affected_cis", "service_id", "risk", *PLANS)
TEXT = ("short_description", "description")
# What may still change in each status. The approved scope is frozen; the window may move
# (rescheduling) until implementation starts; the outcome is written while implementing.
EDITABLE: dict[ChangeStatus, frozenset[str]] = {
    S.draft: frozenset({"type", "template_id", "assigned_to", *TEXT, *SCOPE, *WINDOW}),
    S.submitted: frozenset({"assigned_to", *TEXT, *SCOPE, *WINDOW}),
    S.under_review: frozenset({"assigned_to", *TEXT, *SCOPE, *WINDOW}),
    S.rejected: frozenset({"assigned_to", *TEXT}),
    S.approved: frozenset({"assigned_to", *TEXT, *WINDOW}),
    S.scheduled: frozenset({"assigned_to", *TEXT, *WINDOW}),
    S.implementing: frozenset({"assigned_to", "implementation_notes"}),
    S.implemented: frozenset({"implementation_notes"}),
    S.closed: frozenset(),
    S.cancelled: frozenset(),
}
RESCHEDULABLE = frozenset({S.submitted, S.under_review, S.approved, S.scheduled})
CALENDAR_STATUSES = (S.submitted, S.under_review, S.approved, S.scheduled, S.implementing, S.implemented, S.closed)
MAX_CALENDAR_DAYS = 366
MAX_CALENDAR_CHANGES = 2000

CHANGE_SORTS = (SortKey("number", Change.number), SortKey("created_at", Change.created_at),
                SortKey("updated_at", Change.updated_at))


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _is_requester(actor: Actor, change: Change) -> bool:
    return actor.user_id in (change.requested_by, change.created_by) and actor.can("change.create", change.domain)


def _require_editor(actor: Actor, change: Change) -> None:
    """change.edit, or the requester working on their own change before it is approved."""
    if actor.can("change.edit", change.domain):
        return
    if _is_requester(actor, change) and change.status in (S.draft, S.rejected, S.submitted):
        return
    require(actor, "change.edit", change.domain)


# ---- reading ------------------------------------------------------------------------------------

def get_change(db: Session, actor: Actor, change_id: uuid.UUID, *, include_deleted: bool = True) -> Change:
    change = db.get(Change, change_id)
    if change is None or (change.deleted_at is not None and not include_deleted) \
            or not actor.can("change.view", change.domain):
        raise NotFound(f"No change {change_id}.")
    return change


def _viewable(stmt: Select, actor: Actor, domain: Any = Change.domain) -> Select:
    """Only the domains where the caller holds change.view; `domain`: the column to filter (a Core
    column keeps a statement off the ORM's slower path)."""
    return where_viewable(stmt, actor, "change.view", domain)


def list_changes(db: Session, actor: Actor, *, domain: str | None = None, status: list[ChangeStatus] | None = None,
                 type_: ChangeType | None = None, risk: ChangeRisk | None = None, service_id: uuid.UUID | None = None,
                 ci_id: uuid.UUID | None = None, requested_by: uuid.UUID | None = None,
                 assigned_to: uuid.UUID | None = None, q: str | None = None, include_deleted: bool = False,
                 sort: str | None = None, cursor: str | None = None,
                 limit: int = 50) -> tuple[list[Change], str | None]:
    if not actor.can_anywhere("change.view"):
        raise Forbidden("Listing changes needs the 'change.view' permission.", permission="change.view")
    stmt = _viewable(select(Change), actor)
    if not include_deleted:
        stmt = stmt.where(Change.deleted_at.is_(None))
    stmt = where_equal(stmt, (Change.domain, domain), (Change.type, type_), (Change.risk, risk),
                       (Change.service_id, service_id), (Change.requested_by, requested_by),
                       (Change.assigned_to, assigned_to))
    if status:
        stmt = stmt.where(Change.status.in_(status))
    if ci_id is not None:
        stmt = stmt.where(Change.affected_cis.overlap([ci_id]))
    if q:
        stmt = stmt.where(Change.short_description.ilike(contains_pattern(q.strip())))
    return paginate(stmt, id_column=Change.id, sort_keys=CHANGE_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


# ---- references ---------------------------------------------------------------------------------

def _check_people(db: Session, domain: str, values: dict[str, Any]) -> None:
    for field in ("requested_by", "assigned_to"):
        user_id = values.get(field)
        if user_id is not None and not iam.user_allowed_in_domain(db, user_id, domain):
            raise ValidationProblem.field(field, f"no active user allowed in domain '{domain}' has this id",
                                          "unknown_user")


def _check_scope(db: Session, actor: Actor, domain: str, values: dict[str, Any]) -> None:
    """The service and every affected CI exist, are visible, and belong to the change's domain
    (or, for CIs, are shared infrastructure)."""
    if values.get("service_id") is not None and catalog.service_exists(db, actor, values["service_id"],
                                                                      domain=domain) is None:
        raise ValidationProblem.field("service_id", f"no such service in domain '{domain}'", "unknown_service")
    affected = values.get("affected_cis") or []
    found = cmdb.cis_existing(db, actor, affected)
    for index, ci_id in enumerate(affected):
        ci = found.get(ci_id)
        if ci is None or ci.domain not in (None, domain):
            raise ValidationProblem.field(f"affected_cis.{index}", f"no such configuration item in domain "
                                          f"'{domain}' or shared", "unknown_ci")


def _check_window(start: datetime | None, end: datetime | None) -> None:
    for field, value in (("planned_start", start), ("planned_end", end)):
        if value is not None and value.tzinfo is None:
            raise ValidationProblem.field(field, "give the time zone (e.g. 2026-06-01T22:00:00Z)", "naive_datetime")
    if start is not None and end is not None and end <= start:
        raise ValidationProblem.field("planned_end", "must be after planned_start", "range")


# ---- creating -----------------------------------------------------------------------------------

def create_change(db: Session, actor: Actor, data: ChangeCreate, *, at: datetime | None = None) -> Change:
    """Request a change (a draft). `at` (not exposed by the API) backdates it, for demo data."""
    require(actor, "change.create", data.domain)
    iam.require_active_domain(db, data.domain)
    values = data.model_dump()
    values["affected_cis"] = list(dict.fromkeys(values["affected_cis"]))
    _check_people(db, data.domain, values)
    _check_scope(db, actor, data.domain, values)
    _check_window(data.planned_start, data.planned_end)
    template = None
    if data.type == ChangeType.standard:
        if data.template_id is None:
            raise ValidationProblem.field("template_id", "a standard change follows a template", "missing")
        template = planning.usable_template(db, actor, data.template_id, data.domain)
        for plan in PLANS:
            if values[plan] is not None:
                raise ValidationProblem.field(plan, "a standard change inherits its plans from its template",
                                              "inherited")
            values[plan] = getattr(template, plan)
    elif data.template_id is not None:
        raise ValidationProblem.field("template_id", "only standard changes follow a template", "not_standard")
    change = Change(**{**values, "requested_by": data.requested_by or actor.user_id}, status=S.draft,
                    **({"created_at": at} if at is not None else {}))
    suggested, reasons = analysis.assess_risk(db, actor, change)
    change.suggested_risk, change.risk_reasons = suggested, [r.model_dump(mode="json") for r in reasons]
    change.risk = data.risk or (template.risk if template is not None else suggested)
    stamp_created(change, actor)
    db.add(change)
    db.flush()
    emit(db, events.CHANGE_CREATED, domain=change.domain, entity_type="change", entity_id=change.id,
         payload={"number": change.number, "type": change.type, "risk": change.risk,
                  "suggested_risk": change.suggested_risk, "service_id": change.service_id,
                  "affected_cis": change.affected_cis})
    return change


# ---- the lifecycle --------------------------------------------------------------------------------

def _check_transition(change: Change, new: ChangeStatus, type_: ChangeType) -> None:
    allowed_moves = TRANSITIONS[type_][change.status]
    if new != change.status and new not in allowed_moves:
        allowed = sorted(s.value for s in allowed_moves)
        raise Conflict(f"A {type_.value} change in {change.status.value} cannot move to {new.value}; "
                       f"allowed: {allowed or 'none'}.",
                       errors=[{"field": "status", "message": f"{change.status.value} → {new.value} is not allowed "
                                f"for a {type_.value} change", "type": "transition", "allowed": allowed}])


def _require_move(actor: Actor, change: Change, new: ChangeStatus) -> None:
    if new in APPROVER_MOVES or (new == S.scheduled and change.status == S.approved):
        require(actor, "change.approve", change.domain)
    elif new in IMPLEMENTER_MOVES:
        require(actor, "change.implement", change.domain)
    else:
        _require_editor(actor, change)


def _check_editable(change: Change, status: ChangeStatus, fields: set[str]) -> None:
    frozen = sorted(fields - EDITABLE[change.status] - {"success", "implementation_notes"})
    if frozen:
        allowed = sorted(EDITABLE[change.status])
        raise Conflict(f"In {change.status.value}, {', '.join(frozen)} can no longer change.",
                       errors=[{"field": f, "message": f"not editable in {change.status.value}", "type": "frozen",
                                "allowed": allowed} for f in frozen])
    if "success" in fields and not (change.status == S.implementing and status == S.implemented):
        raise ValidationProblem.field("success", "recorded when the change moves from implementing to implemented",
                                      "state")
    if "implementation_notes" in fields and status not in (S.implementing, S.implemented):
        raise ValidationProblem.field("implementation_notes", "written during or after implementation", "state")


def _check_ready(change: Change) -> None:
    """Submitting (or scheduling a standard change) needs a window and the three plans."""
    verb = "schedule" if change.type == ChangeType.standard else "submit"
    for field in WINDOW:
        if getattr(change, field) is None:
            raise ValidationProblem.field(field, f"required to {verb} a change", "missing")
    for plan in PLANS:
        if _blank(getattr(change, plan)):
            raise ValidationProblem.field(plan, "required to submit a change", "missing")


def update_change(db: Session, actor: Actor, change_id: uuid.UUID, data: ChangeUpdate, if_match: int | None,
                  *, at: datetime | None = None) -> Change:
    change = get_change(db, actor, change_id, include_deleted=False)
    asked = data.model_dump(exclude_unset=True, exclude={"version"})
    changes = _effective(change, asked)
    # A request that would change nothing still needs the right to make it: otherwise a caller
    # could learn that the values they sent are the current ones, and get a 200 they should not.
    _authorize(actor, change, changes if changes else {k: v for k, v in asked.items() if k != "status"})
    expected_version(if_match, data.version, change.version)
    apply_changes(db, actor, change, changes, at or datetime.now(UTC))
    return change


def _effective(change: Change, changes: dict[str, Any]) -> dict[str, Any]:
    """The requested values that differ from the record's (a repeated PATCH changes nothing)."""
    if "affected_cis" in changes:
        changes["affected_cis"] = list(dict.fromkeys(changes["affected_cis"]))
    return {k: v for k, v in changes.items() if k == "approval_comment" or getattr(change, k) != v}


def _authorize(actor: Actor, change: Change, changes: dict[str, Any]) -> None:
    """403 naming the permission this request needs: the move's, the editor's, the implementer's."""
    fields = set(changes) - {"status", "approval_comment"}
    if "status" in changes and changes["status"] in TRANSITIONS[changes.get("type", change.type)][change.status]:
        _require_move(actor, change, changes["status"])
    if fields - {"success", "implementation_notes"}:
        _require_editor(actor, change)
    if fields & {"success", "implementation_notes"}:
        require(actor, "change.implement", change.domain)


def apply_changes(db: Session, actor: Actor, change: Change, changes: dict[str, Any], now: datetime) -> None:
    """Validate and apply one request's changes (fields and/or a move), authorized by the caller."""
    changes = dict(changes)
    comment = changes.pop("approval_comment", None)
    status = changes.pop("status", change.status)
    if not changes and status == change.status:
        if comment is not None:
            raise ValidationProblem.field("approval_comment", "given with an approval or rejection", "state")
        return
    fields = set(changes)
    if change.status in FINAL:
        raise Conflict(f"{change.number} is {change.status.value}: it can no longer change.",
                       errors=[{"field": next(iter(sorted(fields)), "status"), "type": "final", "allowed": [],
                                "message": f"the change is {change.status.value}"}])
    type_ = changes.get("type", change.type)
    _check_transition(change, status, type_)
    _check_editable(change, status, fields)
    if comment is not None and status not in (S.approved, S.rejected):
        raise ValidationProblem.field("approval_comment", "given with an approval or rejection", "state")
    _check_people(db, change.domain, changes)
    _check_scope(db, actor, change.domain, changes)
    _check_window(changes.get("planned_start", change.planned_start), changes.get("planned_end", change.planned_end))
    if "type" in changes or "template_id" in changes:
        _retype(db, actor, change, changes)
    elif change.type == ChangeType.standard and fields & set(PLANS):
        raise ValidationProblem.field(sorted(fields & set(PLANS))[0], "a standard change inherits its plans from "
                                      "its template", "inherited")
    old = {"status": change.status, "planned_start": change.planned_start, "planned_end": change.planned_end}
    with db.no_autoflush:  # one flush: one audit row for the whole change
        for key, value in changes.items():
            setattr(change, key, value)
        change.updated_by = actor.user_id
        reach = None
        if "affected_cis" in changes or (status in (S.submitted, S.scheduled) and status != old["status"]):
            reach = analysis.impact(db, actor, list(change.affected_cis or []))
            suggested, reasons = analysis.assess_risk(db, actor, change, reach)
            change.suggested_risk, change.risk_reasons = suggested, [r.model_dump(mode="json") for r in reasons]
        _move(change, actor, old["status"], status, now)
        if change.status not in (S.draft, S.rejected, S.cancelled):
            _check_ready(change)  # what submitting required stays true afterwards
        conflicts = None
        moved_or_rescoped = bool(fields & {*WINDOW, "affected_cis", "service_id"}) or status != old["status"]
        if status in RESCHEDULABLE and moved_or_rescoped:
            conflicts = analysis.find_conflicts(db, actor, change, reach)
            _refuse_window_conflicts(change, conflicts)
            change.conflicts = [c.model_dump(mode="json") for c in conflicts]
            change.conflicts_checked_at = now
    if not db.is_modified(change):
        return
    db.flush()
    _emit_update_events(db, change, old, sorted(fields | ({"status"} if status != old["status"] else set())),
                        comment, conflicts)
    if status != old["status"] and status in (S.approved, S.rejected):
        audit.record(db, action="approve" if status == S.approved else "reject", entity_type="change",
                     entity_id=change.id, domain=change.domain,
                     changes={"after": {"approval_status": change.approval_status, "comment": comment}})
    if status != old["status"]:
        approval.on_status_change(db, actor, change, old["status"])  # the approval workflow


def _retype(db: Session, actor: Actor, change: Change, changes: dict[str, Any]) -> None:
    """In draft only (EDITABLE): a standard change takes its template's plans; another type drops
    the template and keeps the plans it has (editable from then on)."""
    type_ = changes.get("type", change.type)
    template_id = changes.get("template_id", change.template_id)
    if type_ == ChangeType.standard:
        if template_id is None:
            raise ValidationProblem.field("template_id", "a standard change follows a template", "missing")
        template = planning.usable_template(db, actor, template_id, change.domain)
        for plan in PLANS:
            changes[plan] = getattr(template, plan)
    elif "template_id" in changes and changes["template_id"] is not None:
        raise ValidationProblem.field("template_id", "only standard changes follow a template", "not_standard")
    else:
        changes["template_id"] = None


def _move(change: Change, actor: Actor, old: ChangeStatus, new: ChangeStatus, now: datetime) -> None:
    """A status move and what it records: approval state, actual times, the outcome, closure."""
    if new == old:
        return
    if new == S.submitted:
        change.approval_status = "pending"
    elif new == S.approved:
        change.approval_status = "approved"
    elif new == S.rejected:
        change.approval_status = "rejected"
    elif new == S.scheduled and change.type == ChangeType.standard:
        change.approval_status = "approved"  # pre-approved: it follows its template
    elif new == S.implementing:
        change.actual_start = now
    elif new == S.implemented:
        if change.success is None:
            raise ValidationProblem.field("success", "say whether the change succeeded", "missing")
        if _blank(change.implementation_notes):
            raise ValidationProblem.field("implementation_notes", "required to complete a change", "missing")
        change.actual_end = now
    elif new == S.closed:
        change.closed_at, change.closed_by = now, actor.user_id
    change.status = new


def _refuse_window_conflicts(change: Change, conflicts: list[ChangeConflict]) -> None:
    """Blackouts and missed maintenance windows stop standard and normal changes; an emergency
    change goes ahead with them on record."""
    blocking = analysis.blocking(conflicts)
    if blocking and change.type != ChangeType.emergency:
        raise Conflict(f"{change.number} cannot run then: " + "; ".join(c.detail for c in blocking) + ".",
                       errors=[{"field": "planned_start", "message": c.detail, "type": c.kind,
                                "window_id": str(c.window_id) if c.window_id else None} for c in blocking],
                       conflicts=[c.model_dump(mode="json") for c in conflicts])


def _emit_update_events(db: Session, change: Change, old: dict[str, Any], changed: list[str], comment: str | None,
                        conflicts: list[ChangeConflict] | None) -> None:
    base = {"domain": change.domain, "entity_type": "change", "entity_id": change.id}
    emit(db, events.CHANGE_UPDATED, **base, payload={"number": change.number, "changed": changed})
    if change.status != old["status"]:
        payload = {"number": change.number, "from": old["status"], "to": change.status, "type": change.type,
                   "risk": change.risk, "approval_status": change.approval_status}
        emit(db, events.CHANGE_STATUS_CHANGED, **base, payload=payload)
        if change.status.value in events.STATUS_EVENTS:
            emit(db, events.STATUS_EVENTS[change.status.value], **base,
                 payload={**payload, **({"comment": comment} if comment is not None else {}),
                          **({"success": change.success} if change.status == S.implemented else {})})
    elif (change.planned_start, change.planned_end) != (old["planned_start"], old["planned_end"]) \
            and change.status in RESCHEDULABLE:
        emit(db, events.CHANGE_RESCHEDULED, **base, payload={
            "number": change.number, "planned_start": change.planned_start, "planned_end": change.planned_end,
            "previous_start": old["planned_start"], "previous_end": old["planned_end"]})
    if conflicts:
        emit(db, events.CHANGE_CONFLICTS_FOUND, **base, payload={
            "number": change.number, "conflicts": [c.model_dump(mode="json") for c in conflicts]})


# ---- conflicts and risk, on demand ---------------------------------------------------------------

def conflict_report(db: Session, actor: Actor, change_id: uuid.UUID) -> ConflictReport:
    change = get_change(db, actor, change_id, include_deleted=False)
    return ConflictReport(change_id=change.id, number=change.number, checked_at=datetime.now(UTC),
                          conflicts=analysis.find_conflicts(db, actor, change))


def risk_assessment(db: Session, actor: Actor, change_id: uuid.UUID) -> RiskAssessment:
    change = get_change(db, actor, change_id, include_deleted=False)
    suggested, reasons = analysis.assess_risk(db, actor, change)
    return RiskAssessment(change_id=change.id, risk=change.risk, suggested_risk=suggested, reasons=reasons)


# ---- deleting ------------------------------------------------------------------------------------

def delete_change(db: Session, actor: Actor, change_id: uuid.UUID, if_match: int | None) -> Change:
    change = get_change(db, actor, change_id)
    require(actor, "change.delete", change.domain)
    delete_announced(db, change, actor, if_match=if_match, event_type=events.CHANGE_DELETED, entity_type="change")
    return change


def restore_change(db: Session, actor: Actor, change_id: uuid.UUID) -> Change:
    change = get_change(db, actor, change_id)
    require(actor, "change.delete", change.domain)
    restore_announced(db, change, actor, event_type=events.CHANGE_RESTORED, entity_type="change")
    return change


# ---- incidents a failed change caused --------------------------------------------------------------

def caused_incidents(db: Session, actor: Actor, change_id: uuid.UUID) -> list[CausedIncidentOut]:
    change = get_change(db, actor, change_id)
    links = db.scalars(select(ChangeIncident).where(ChangeIncident.change_id == change.id)
                       .order_by(ChangeIncident.created_at, ChangeIncident.id)).all()
    found = incidents.incidents_existing(db, actor, [link.incident_id for link in links])
    out = []
    for link in links:
        incident = found.get(link.incident_id)
        out.append(CausedIncidentOut(incident_id=link.incident_id, number=incident.number if incident else None,
                                     short_description=incident.short_description if incident else None,
                                     linked_at=link.created_at, linked_by=link.created_by))
    return out


def link_caused_incident(db: Session, actor: Actor, change_id: uuid.UUID, incident_id: uuid.UUID) -> None:
    change = get_change(db, actor, change_id, include_deleted=False)
    require(actor, "change.edit", change.domain)
    if change.status not in (S.implemented, S.closed) or change.success is not False:
        raise Conflict(f"{change.number} did not fail: only a failed change can have caused incidents.",
                       errors=[{"field": "incident_id", "message": "the change is not a failed one", "type": "state",
                                "allowed": [S.implemented.value, S.closed.value]}])
    incident = incidents.incident_exists(db, actor, incident_id)
    if incident is None or incident.domain != change.domain:
        raise ValidationProblem.field("incident_id", f"no such incident in domain '{change.domain}'",
                                      "unknown_incident")
    if change.actual_start is not None and incident.created_at < change.actual_start:
        raise ValidationProblem.field("incident_id", f"{incident.number} was reported before {change.number} "
                                      "started", "before_change")
    duplicate = db.scalar(select(ChangeIncident.id).where(ChangeIncident.change_id == change.id,
                                                          ChangeIncident.incident_id == incident.id))
    if duplicate is not None:
        raise Conflict(f"{incident.number} is already linked to {change.number}.",
                       errors=[{"field": "incident_id", "message": "already linked", "type": "unique"}])
    db.add(ChangeIncident(domain=change.domain, change_id=change.id, incident_id=incident.id,
                          created_by=actor.user_id))
    db.flush()
    audit.record(db, action="link_incident", entity_type="change", entity_id=change.id, domain=change.domain,
                 changes={"after": {"incident_id": incident.id, "incident": incident.number}})
    emit(db, events.CHANGE_INCIDENT_LINKED, domain=change.domain, entity_type="change", entity_id=change.id,
         payload={"number": change.number, "incident_id": incident.id, "incident": incident.number})


def unlink_caused_incident(db: Session, actor: Actor, change_id: uuid.UUID, incident_id: uuid.UUID) -> None:
    change = get_change(db, actor, change_id, include_deleted=False)
    require(actor, "change.edit", change.domain)
    link = db.scalar(select(ChangeIncident).where(ChangeIncident.change_id == change.id,
                                                  ChangeIncident.incident_id == incident_id))
    if link is None:
        raise NotFound(f"Incident {incident_id} is not linked to {change.number}.")
    hard_delete(db, link)
    audit.record(db, action="unlink_incident", entity_type="change", entity_id=change.id, domain=change.domain,
                 changes={"before": {"incident_id": incident_id}})


# ---- the calendar ---------------------------------------------------------------------------------

def calendar(db: Session, actor: Actor, start: datetime, end: datetime, *, domain: str | None = None,
             service_id: uuid.UUID | None = None) -> ChangeCalendar:
    """Changes planned in [start, end) (submitted onwards, cancelled and rejected ones left out) and
    the occurrences of the change windows in that period."""
    if not actor.can_anywhere("change.view"):
        raise Forbidden("The change calendar needs the 'change.view' permission.", permission="change.view")
    for field, value in (("from", start), ("to", end)):
        if value.tzinfo is None:
            raise ValidationProblem.field(field, "give the time zone (e.g. 2026-06-01T00:00:00Z)", "naive_datetime")
    if end <= start:
        raise ValidationProblem.field("to", "must be after from", "range")
    if end - start > timedelta(days=MAX_CALENDAR_DAYS):
        raise ValidationProblem.field("to", f"a calendar covers at most {MAX_CALENDAR_DAYS} days", "range")
    stmt = _viewable(select(Change), actor).where(
        Change.status.in_(CALENDAR_STATUSES), Change.deleted_at.is_(None),
        Change.planned_start < end, Change.planned_end > start)
    stmt = where_equal(stmt, (Change.domain, domain), (Change.service_id, service_id))
    rows = list(db.scalars(stmt.order_by(Change.planned_start, Change.number).limit(MAX_CALENDAR_CHANGES + 1)))
    changes = [CalendarChange(id=c.id, number=c.number, domain=c.domain, short_description=c.short_description,
                              type=c.type, status=c.status, risk=c.risk, service_id=c.service_id,
                              planned_start=c.planned_start, planned_end=c.planned_end,
                              has_conflicts=bool(c.conflicts)) for c in rows[:MAX_CALENDAR_CHANGES]]
    window_stmt = select(ChangeWindow).where(ChangeWindow.deleted_at.is_(None))
    window_stmt = where_viewable(window_stmt, actor, "change.view", ChangeWindow.domain)
    window_stmt = where_equal(window_stmt, (ChangeWindow.domain, domain))
    if service_id is not None:
        window_stmt = window_stmt.where((ChangeWindow.service_id == service_id) | ChangeWindow.service_id.is_(None))
    windows = [CalendarWindow(window_id=w.id, name=w.name, kind=w.kind, domain=w.domain, service_id=w.service_id,
                              start=begins, end=ends)
               for w in db.scalars(window_stmt) for begins, ends in overlapping(w, start, end)]
    windows.sort(key=lambda w: (w.start, w.name))
    return ChangeCalendar(start=start, end=end, changes=changes, windows=windows,
                          truncated=len(rows) > MAX_CALENDAR_CHANGES)
