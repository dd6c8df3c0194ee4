"""SLA policies and the priority matrix: per domain, falling back to the platform default (the
row with a NULL domain). Part of the incidents module; other modules go through service.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.errors import Conflict, Forbidden, NotFound, ValidationProblem
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import where_equal
from gaas.core.records import apply_patch, expected_version, restore, soft_delete, stamp_created
from gaas.iam import service as iam
from gaas.incidents.models import Impact, Priority, PriorityMatrix, SlaPolicy, Urgency
from gaas.incidents.schemas import (
    Matrix,
    PriorityMatrixOut,
    PriorityMatrixPut,
    SlaPolicyCreate,
    SlaPolicyOut,
    SlaPolicyUpdate,
    matrix_dict,
)
from gaas.incidents.sla import ALWAYS, Calendar

POLICY_SORTS = (SortKey("priority", SlaPolicy.priority), SortKey("name", SlaPolicy.name),
                SortKey("created_at", SlaPolicy.created_at))


def require(actor: Actor, permission: str, domain: str | None) -> None:
    if not actor.can(permission, domain):
        where = f"domain '{domain}'" if domain else "the platform defaults"
        raise Forbidden(f"This needs the '{permission}' permission in {where}.", permission=permission)


# ---- the priority matrix --------------------------------------------------------------------------

def _matrix_rows(db: Session, domain: str | None) -> list[PriorityMatrix]:
    return list(db.scalars(select(PriorityMatrix).where(
        PriorityMatrix.deleted_at.is_(None),
        or_(PriorityMatrix.domain.is_(None), PriorityMatrix.domain == domain))))


def effective_matrix(db: Session, domain: str | None) -> tuple[Matrix, PriorityMatrix | None]:
    """The domain's own matrix, else the platform default (None when even that is missing)."""
    rows = _matrix_rows(db, domain)
    row = next((r for r in rows if r.domain is not None), None) or next((r for r in rows if r.domain is None), None)
    if row is None:
        return DEFAULT_MATRIX, None
    return Matrix.model_validate(row.matrix), row


def computed_priority(db: Session, domain: str, impact: Impact, urgency: Urgency) -> Priority:
    return effective_matrix(db, domain)[0].lookup(impact, urgency)


DEFAULT_MATRIX = Matrix.model_validate({
    "high": {"high": "critical", "medium": "high", "low": "medium"},
    "medium": {"high": "high", "medium": "medium", "low": "low"},
    "low": {"high": "medium", "medium": "low", "low": "low"},
})


def _matrix_out(domain: str | None, matrix: Matrix, row: PriorityMatrix | None) -> PriorityMatrixOut:
    return PriorityMatrixOut(domain=domain, inherited=row is None or row.domain != domain, matrix=matrix,
                             version=row.version if row is not None else 1,
                             updated_at=row.updated_at if row is not None else datetime.now(UTC))


def get_matrix(db: Session, actor: Actor, domain: str | None) -> PriorityMatrixOut:
    if domain is not None and not actor.sees(domain):
        raise NotFound(f"No domain '{domain}'.")
    if not actor.can_anywhere("incident.view") and not actor.can_anywhere("sla.manage"):
        raise Forbidden("The priority matrix needs the 'incident.view' permission.", permission="incident.view")
    matrix, row = effective_matrix(db, domain)
    return _matrix_out(domain, matrix, row)


def put_matrix(db: Session, actor: Actor, domain: str | None, data: PriorityMatrixPut,
               if_match: int | None) -> PriorityMatrixOut:
    """Replace a domain's matrix (or the platform default, domain None). Existing incidents keep
    their priority; new ones and later impact/urgency changes use the new matrix."""
    if domain is not None and not actor.sees(domain):
        raise NotFound(f"No domain '{domain}'.")
    require(actor, "sla.manage", domain)
    iam.require_active_domain(db, domain)
    own = next((r for r in _matrix_rows(db, domain) if r.domain == domain), None)
    if own is None:
        own = PriorityMatrix(domain=domain, matrix=matrix_dict(data.matrix))
        stamp_created(own, actor)
        db.add(own)
    else:
        apply_patch(own, actor, {"matrix": matrix_dict(data.matrix)}, header_version=if_match,
                    body_version=data.version)
    db.flush()
    return _matrix_out(domain, data.matrix, own)


def reset_matrix(db: Session, actor: Actor, domain: str, if_match: int | None) -> PriorityMatrixOut:
    """The domain goes back to the platform default."""
    if not actor.sees(domain):
        raise NotFound(f"No domain '{domain}'.")
    require(actor, "sla.manage", domain)
    own = next((r for r in _matrix_rows(db, domain) if r.domain == domain), None)
    if own is None:
        raise NotFound(f"Domain '{domain}' has no matrix of its own.")
    soft_delete(own, actor, header_version=if_match)
    db.flush()
    matrix, row = effective_matrix(db, domain)
    return _matrix_out(domain, matrix, row)


# ---- SLA policies ---------------------------------------------------------------------------------

def policy_for(db: Session, domain: str, priority: Priority) -> SlaPolicy | None:
    """The domain's policy for this priority, else the platform default's."""
    rows = db.scalars(select(SlaPolicy).where(
        SlaPolicy.priority == priority, SlaPolicy.deleted_at.is_(None),
        or_(SlaPolicy.domain.is_(None), SlaPolicy.domain == domain))).all()
    return next((r for r in rows if r.domain is not None), None) or next(iter(rows), None)


def calendar(policy: SlaPolicy | None) -> Calendar:
    if policy is None or policy.business_timezone is None:
        return ALWAYS
    return Calendar(zone=ZoneInfo(policy.business_timezone), start=time.fromisoformat(policy.business_start),
                    end=time.fromisoformat(policy.business_end), days=frozenset(policy.business_days),
                    holidays=frozenset(policy.holidays))


def policy_out(policy: SlaPolicy) -> SlaPolicyOut:
    return SlaPolicyOut.model_validate(policy)


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """API fields -> columns: times as "HH:MM:SS", lists sorted and without repeats."""
    columns = dict(values)
    for key in ("business_start", "business_end"):
        if isinstance(columns.get(key), time):
            columns[key] = columns[key].isoformat()
    for key in ("business_days", "holidays", "pause_on"):
        if columns.get(key) is not None:
            columns[key] = sorted({str(v) if key == "pause_on" else v for v in columns[key]})
    return columns


def _check_business_hours(policy: SlaPolicy) -> None:
    """All of time zone, start and end, or none of them; a window within one local day."""
    given = [policy.business_timezone, policy.business_start, policy.business_end]
    if any(v is not None for v in given) and any(v is None for v in given):
        missing = ["business_timezone", "business_start", "business_end"][[v is None for v in given].index(True)]
        raise ValidationProblem.field(missing, "business hours need a time zone, a start and an end", "missing")
    if policy.business_start is not None and policy.business_end <= policy.business_start:
        raise ValidationProblem.field("business_end", "must be after business_start (a window within one day)",
                                      "range")


def get_policy(db: Session, actor: Actor, policy_id: uuid.UUID) -> SlaPolicy:
    policy = db.get(SlaPolicy, policy_id)
    if policy is None or (not actor.can_anywhere("incident.view") and not actor.can_anywhere("sla.manage")):
        raise NotFound(f"No SLA policy {policy_id}.")
    return policy


def list_policies(db: Session, actor: Actor, *, domain: str | None, priority: Priority | None,
                  include_deleted: bool, sort: str | None, cursor: str | None,
                  limit: int) -> tuple[list[SlaPolicy], str | None]:
    if not actor.can_anywhere("incident.view") and not actor.can_anywhere("sla.manage"):
        raise Forbidden("SLA policies need the 'incident.view' permission.", permission="incident.view")
    stmt = where_equal(select(SlaPolicy), (SlaPolicy.domain, domain), (SlaPolicy.priority, priority))
    if not include_deleted:
        stmt = stmt.where(SlaPolicy.deleted_at.is_(None))
    return paginate(stmt, id_column=SlaPolicy.id, sort_keys=POLICY_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def create_policy(db: Session, actor: Actor, data: SlaPolicyCreate) -> SlaPolicy:
    require(actor, "sla.manage", data.domain)
    iam.require_active_domain(db, data.domain)
    policy = SlaPolicy(**_columns(data.model_dump()))
    _check_business_hours(policy)
    stamp_created(policy, actor)
    db.add(policy)
    db.flush()
    return policy


def update_policy(db: Session, actor: Actor, policy_id: uuid.UUID, data: SlaPolicyUpdate,
                  if_match: int | None) -> SlaPolicy:
    """Changing a policy applies to incidents when their due date is next computed (priority
    change, hold, reopen); due dates already set are not moved behind the agents' backs."""
    policy = get_policy(db, actor, policy_id)
    if policy.deleted_at is not None:
        raise NotFound(f"No SLA policy {policy_id}.")
    require(actor, "sla.manage", policy.domain)
    apply_patch(policy, actor, _columns(data.model_dump(exclude_unset=True, exclude={"version"})),
                header_version=if_match, body_version=data.version)
    _check_business_hours(policy)
    db.flush()
    return policy


def delete_policy(db: Session, actor: Actor, policy_id: uuid.UUID, if_match: int | None) -> SlaPolicy:
    policy = get_policy(db, actor, policy_id)
    require(actor, "sla.manage", policy.domain)
    if policy.domain is None and policy.deleted_at is None:
        raise Conflict("A platform default policy cannot be deleted (every priority needs one); edit it instead.")
    if if_match is not None:
        expected_version(if_match, None, policy.version)
    soft_delete(policy, actor)
    db.flush()
    return policy


def restore_policy(db: Session, actor: Actor, policy_id: uuid.UUID) -> SlaPolicy:
    policy = get_policy(db, actor, policy_id)
    require(actor, "sla.manage", policy.domain)
    restore(policy, actor)
    db.flush()
    return policy
