"""For CMDB impact analysis: the changes planned or under way on a set of CIs (which may be
hundreds of thousands), as far as the caller may see them."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import cast, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Session

from gaas.changes.models import Change, ChangeStatus
from gaas.changes.service import _viewable
from gaas.core.context import Actor

UPCOMING = (ChangeStatus.approved, ChangeStatus.scheduled, ChangeStatus.implementing)
ID_FILTER_MAX = 10_000


def upcoming_changes_on(db: Session, actor: Actor, ci_ids: Collection[uuid.UUID], *,
                        limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """How many approved, scheduled or implementing changes, not yet over, touch one of these
    CIs, and the `limit` soonest."""
    if not ci_ids or actor.domains_with("change.view") == frozenset():
        return 0, []
    t = Change.__table__.c  # Core columns: an impact report is a latency target, the ORM path costs more
    stmt = _viewable(select(t.id, t.number, t.domain, t.short_description, t.type, t.status, t.risk, t.planned_start,
                            t.planned_end, t.affected_cis), actor, t.domain).where(
        t.status.in_(UPCOMING), t.deleted_at.is_(None),
        or_(t.planned_end.is_(None), t.planned_end >= datetime.now(UTC)))
    if len(ci_ids) <= ID_FILTER_MAX:
        # Through a sub-select, like the CMDB's key lookups: a literal array misleads the planner.
        ids = cast(literal(list(ci_ids), ARRAY(UUID(as_uuid=True))), ARRAY(UUID(as_uuid=True)))
        rows = db.execute(stmt.where(t.affected_cis.op("&&")(select(ids).scalar_subquery()))).all()
    else:
        wanted = ci_ids  # a collection that answers `in` cheaply (a set, or the impact walk's marks)
        rows = [r for r in db.execute(stmt.where(t.affected_cis.is_not(None)))
                if any(ci in wanted for ci in r.affected_cis)]
    rows.sort(key=lambda r: (r.planned_start is None, r.planned_start or 0, r.number))
    return len(rows), [{"id": str(r.id), "number": r.number, "domain": r.domain,
                        "short_description": r.short_description, "type": str(r.type), "status": str(r.status),
                        "risk": str(r.risk), "planned_start": r.planned_start.isoformat() if r.planned_start else None,
                        "planned_end": r.planned_end.isoformat() if r.planned_end else None}
                       for r in rows[:limit]]

