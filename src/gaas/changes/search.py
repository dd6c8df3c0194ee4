"""Change management's provider for global search (gaas.search): changes by number, short
description (typos too) and description."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.search.providers import SearchHit, SearchQuery, domain_scope, run_hits, sql_hits, touch_rows


def search(db: Session, actor: Actor, query: SearchQuery) -> list[SearchHit]:
    if not actor.can_anywhere("change.view"):
        return []
    params: dict[str, Any] = {}
    visible = domain_scope(actor, "change.view", params, "change_domains")
    statement, params = sql_hits(source="gaas_change_mgmt.changes t", number="t.number", title="t.short_description",
                                 document="coalesce(t.description, '')", status="t.status::text", visible=visible,
                                 query=query, params=params)
    return run_hits(db, "change", "/api/v1/changes", statement, params)


def reindex(db: Session, domain: str | None, *, batch: int, after: uuid.UUID | None) -> tuple[int, uuid.UUID | None]:
    return touch_rows(db, "gaas_change_mgmt.changes", domain, batch=batch, after=after)
