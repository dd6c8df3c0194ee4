"""For CMDB impact analysis: the open incidents on a set of CIs (which may be hundreds of
thousands), as far as the caller may see them."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.incidents.models import OPEN_INCIDENT, Incident
from gaas.incidents.service import _viewable

# Up to this many CIs the database filters by id; beyond, open incidents on any CI are read once
# and matched here (there are far fewer open incidents than CIs behind a core switch).
ID_FILTER_MAX = 10_000


def open_incidents_on(db: Session, actor: Actor, ci_ids: Collection[uuid.UUID], *,
                      limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """How many open incidents name one of these CIs, and the most urgent `limit` of them."""
    if not ci_ids or actor.domains_with("incident.view") == frozenset():
        return 0, []
    t = Incident.__table__.c  # Core columns: an impact report is a latency target, the ORM path costs more
    stmt = _viewable(select(t.id, t.number, t.domain, t.short_description, t.priority, t.status, t.ci_id, t.sla_due,
                            t.sla_breached), actor, t.domain).where(t.status.in_(OPEN_INCIDENT), t.deleted_at.is_(None))
    if len(ci_ids) <= ID_FILTER_MAX:
        rows = db.execute(stmt.where(t.ci_id == func.any(list(ci_ids)))).all()
    else:
        wanted = ci_ids  # a collection that answers `in` cheaply (a set, or the impact walk's marks)
        rows = [r for r in db.execute(stmt.where(t.ci_id.is_not(None))) if r.ci_id in wanted]
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    rows.sort(key=lambda r: (rank.get(str(r.priority), 4), r.sla_due is None, r.sla_due or 0, r.number))
    return len(rows), [{"id": str(r.id), "number": r.number, "domain": r.domain,
                        "short_description": r.short_description, "priority": str(r.priority),
                        "status": str(r.status), "ci_id": str(r.ci_id), "sla_breached": r.sla_breached,
                        "sla_due": r.sla_due.isoformat() if r.sla_due else None} for r in rows[:limit]]
