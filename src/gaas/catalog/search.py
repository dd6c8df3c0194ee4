"""The service portfolio's provider for global search (gaas.search): services by number, name and
description (full text, the vector kept by the database) and by name with typos."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.search.providers import SearchHit, SearchQuery, run_hits, sql_hits, touch_rows


def _visible(actor: Actor, params: dict[str, Any]) -> str:
    """Mirror of list_services: the domains where service.view holds (service-scoped viewers see
    what row-level security shows them, as in the list)."""
    allowed = actor.domains_with("service.view")
    service_scoped = any(g.scope_type == "service" and "service.view" in g.permissions for g in actor.grants)
    if allowed is None or service_scoped:
        return "true"
    if not allowed:
        return "false"
    params["service_domains"] = sorted(allowed)
    return "t.domain = ANY(:service_domains)"


def search(db: Session, actor: Actor, query: SearchQuery) -> list[SearchHit]:
    if not actor.can_anywhere("service.view"):
        return []
    params: dict[str, Any] = {}
    visible = _visible(actor, params)
    statement, params = sql_hits(source="gaas_service_catalog.services t", number="t.number", title="t.name",
                                 document="coalesce(t.description, '')", status="t.status::text", visible=visible,
                                 query=query, params=params)
    return run_hits(db, "service", "/api/v1/services", statement, params)


def reindex(db: Session, domain: str | None, *, batch: int, after: uuid.UUID | None) -> tuple[int, uuid.UUID | None]:
    return touch_rows(db, "gaas_service_catalog.services", domain, batch=batch, after=after)
