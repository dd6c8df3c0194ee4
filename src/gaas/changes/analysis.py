"""What the CMDB says about a change: conflicts with other changes and with change windows, and a
suggested risk with its reasons. Reaches the CMDB only through gaas.cmdb.service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gaas.changes.models import SLOT_STATUSES, Change, ChangeRisk, ChangeWindow, WindowKind
from gaas.changes.schemas import ChangeConflict, RiskReason
from gaas.changes.windows import containing, overlapping
from gaas.cmdb import service as cmdb
from gaas.core.context import Actor

RECENT_FAILURES = timedelta(days=90)
# Conflicts of these kinds stop a standard or normal change from being submitted or (re)scheduled;
# an emergency change goes ahead with them on record.
WINDOW_KINDS = ("blackout", "outside_maintenance")


def impact(db: Session, actor: Actor, ci_ids: list[uuid.UUID], *, with_services: bool = True) -> cmdb.ImpactSet:
    """The CIs that fail with these CIs (and the services above them), as far as the caller sees."""
    if not ci_ids:
        return cmdb.ImpactSet(frozenset(), [], [])
    return cmdb.impact_of(db, actor, list(dict.fromkeys(ci_ids)), with_services=with_services)


# ---- conflicts ------------------------------------------------------------------------------------

def find_conflicts(db: Session, actor: Actor, change: Change,
                   our_impact: cmdb.ImpactSet | None = None) -> list[ChangeConflict]:
    """Other changes holding a slot in an overlapping window on the same CIs or on CIs in each
    other's impact set; blackout windows it falls in; maintenance windows it falls outside of."""
    if change.planned_start is None or change.planned_end is None:
        return []
    cis = list(dict.fromkeys(change.affected_cis or []))
    return (_change_conflicts(db, actor, change, cis, our_impact)
            + _window_conflicts(db, actor, change, cis))


def _overlapping_changes(db: Session, change: Change) -> list[Change]:
    return list(db.scalars(select(Change).where(
        Change.status.in_(SLOT_STATUSES), Change.deleted_at.is_(None),
        Change.planned_start < change.planned_end, Change.planned_end > change.planned_start,
        Change.id != change.id, func.cardinality(Change.affected_cis) > 0,
    ).order_by(Change.planned_start, Change.number)))


def _change_conflicts(db: Session, actor: Actor, change: Change, cis: list[uuid.UUID],
                      our_impact: cmdb.ImpactSet | None) -> list[ChangeConflict]:
    if not cis:
        return []
    others = _overlapping_changes(db, change)
    if not others:
        return []
    ours = set(cis)
    reach = (our_impact or impact(db, actor, cis)).cis  # fails with our CIs (ours included)
    found: dict[uuid.UUID, tuple[str, set[uuid.UUID], str]] = {}
    pending: list[Change] = []
    for other in others:
        theirs = set(other.affected_cis or [])
        if shared := ours & theirs:
            found[other.id] = ("same_ci", shared, f"{other.number} changes the same CI(s) at the same time")
        elif hit := theirs & reach:
            found[other.id] = ("impact", hit, f"{other.number} changes CI(s) that depend on this change's CIs")
        else:
            pending.append(other)
    # The other direction: do our CIs depend on theirs? One walk over all of them first; only when
    # it meets our CIs, one walk per change to say which.
    theirs_all = sorted({c for o in pending for c in o.affected_cis or []})
    if pending and ours & impact(db, actor, theirs_all, with_services=False).cis:
        for other in pending:
            if hit := ours & impact(db, actor, list(other.affected_cis or []), with_services=False).cis:
                found[other.id] = ("impact", hit, f"this change's CIs depend on CI(s) {other.number} changes")
    return [ChangeConflict(kind=kind, detail=detail, change_id=o.id, number=o.number, status=o.status,
                           planned_start=o.planned_start, planned_end=o.planned_end, ci_ids=sorted(ids))
            for o in others if o.id in found for kind, ids, detail in [found[o.id]]]


def _services_touched(db: Session, actor: Actor, change: Change,
                      cis: list[uuid.UUID]) -> set[uuid.UUID | None]:
    """The services the change touches (its own, its CIs'); None stands for whatever belongs to no
    service (CIs without one, or a change naming neither service nor CIs)."""
    touched: set[uuid.UUID | None] = {change.service_id} if change.service_id else set()
    touched.update(ci.service_id for ci in cmdb.cis_existing(db, actor, cis).values())
    return touched or {None}


def _window_conflicts(db: Session, actor: Actor, change: Change, cis: list[uuid.UUID]) -> list[ChangeConflict]:
    windows = list(db.scalars(select(ChangeWindow).where(ChangeWindow.domain == change.domain,
                                                         ChangeWindow.deleted_at.is_(None))
                              .order_by(ChangeWindow.start_at, ChangeWindow.id)))
    if not windows:
        return []
    start, end = change.planned_start, change.planned_end
    services = _services_touched(db, actor, change, cis) if any(w.service_id for w in windows) else {None}
    conflicts = []
    for window in windows:
        if window.kind != WindowKind.blackout or (window.service_id and window.service_id not in services):
            continue
        for begins, ends in overlapping(window, start, end)[:1]:
            conflicts.append(ChangeConflict(
                kind="blackout", detail=f"falls in blackout window '{window.name}'", window_id=window.id,
                window_name=window.name, occurrence_start=begins, occurrence_end=ends, service_id=window.service_id))
    maintenance = [w for w in windows if w.kind == WindowKind.maintenance]
    # Each service touched must run inside one of its own maintenance windows, or, when it has none,
    # one of the domain's; with no maintenance windows at all, any time is allowed.
    domain_wide = [w for w in maintenance if w.service_id is None]
    checked_domain_wide = False
    for service_id in sorted(services, key=str):
        own = [w for w in maintenance if service_id is not None and w.service_id == service_id]
        scope = own or domain_wide
        if not scope or (not own and checked_domain_wide):
            continue  # nothing to respect, or the domain's windows already checked
        checked_domain_wide = checked_domain_wide or not own
        if not any(containing(w, start, end) for w in scope):
            names = ", ".join(f"'{w.name}'" for w in scope)
            conflicts.append(ChangeConflict(
                kind="outside_maintenance", detail=f"is not inside a maintenance window ({names})",
                service_id=service_id if own else None, window_id=scope[0].id, window_name=scope[0].name))
    return conflicts


def blocking(conflicts: list[ChangeConflict]) -> list[ChangeConflict]:
    return [c for c in conflicts if c.kind in WINDOW_KINDS]


# ---- risk -----------------------------------------------------------------------------------------

def _sla(value: str | None) -> Decimal | None:
    try:
        return Decimal(value) if value is not None else None
    except InvalidOperation:
        return None


def assess_risk(db: Session, actor: Actor, change: Change,
                reach: cmdb.ImpactSet | None = None) -> tuple[ChangeRisk, list[RiskReason]]:
    """A suggested risk from what the affected CIs reach: business services (how many, how
    demanding their SLA targets) and recent failed changes on the same CIs. Each factor scores
    0-2 points; 4 or more is high, 2-3 medium, less low."""
    cis = list(dict.fromkeys(change.affected_cis or []))
    if not cis:
        return ChangeRisk.low, [RiskReason(factor="affected_cis", value=0, points=0,
                                           detail="no configuration items named: nothing to assess")]
    reach = reach or impact(db, actor, cis)
    business = reach.business_services
    names = ", ".join(sorted(b["name"] for b in business)[:5]) + ("…" if len(business) > 5 else "")
    reasons = [RiskReason(factor="business_services", value=len(business),
                          points=2 if len(business) >= 3 else 1 if business else 0,
                          detail=f"reaches {len(business)} business service(s)" + (f": {names}" if business else ""))]
    targets = [t for t in (_sla(b.get("sla_target")) for b in business) if t is not None]
    top = max(targets, default=None)
    reasons.append(RiskReason(factor="sla_target", value=str(top) if top is not None else None,
                              points=2 if top is not None and top >= Decimal("99.9") else
                              1 if top is not None and top >= Decimal("99.5") else 0,
                              detail=f"highest SLA target reached: {top}%" if top is not None
                              else "no SLA target among the business services reached"))
    failed = list(db.scalars(select(Change.number).where(
        Change.success.is_(False), Change.actual_end >= datetime.now(UTC) - RECENT_FAILURES,
        Change.affected_cis.overlap(cis), Change.id != change.id, Change.deleted_at.is_(None),
    ).order_by(Change.actual_end.desc()).limit(10)))
    reasons.append(RiskReason(factor="recent_failed_changes", value=len(failed),
                              points=min(len(failed), 2),
                              detail=f"{len(failed)} failed change(s) on the same CIs in the last 90 days"
                              + (f": {', '.join(failed)}" if failed else "")))
    score = sum(r.points for r in reasons)
    return (ChangeRisk.high if score >= 4 else ChangeRisk.medium if score >= 2 else ChangeRisk.low), reasons
