"""Incident management's providers for global search (gaas.search): incidents and problems by
number, short description (typos too), description, resolution, root cause and workaround."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.search.providers import SearchHit, SearchQuery, domain_scope, run_hits, sql_hits, touch_rows


def search_incidents(db: Session, actor: Actor, query: SearchQuery) -> list[SearchHit]:
    if not actor.can_anywhere("incident.view"):
        return []
    params: dict[str, Any] = {}
    visible = domain_scope(actor, "incident.view", params, "incident_domains")
    statement, params = sql_hits(source="gaas_incident_mgmt.incidents t", number="t.number",
                                 title="t.short_description",
                                 document="concat_ws(' ', t.description, t.resolution_notes)",
                                 status="t.status::text", visible=visible, query=query, params=params)
    return run_hits(db, "incident", "/api/v1/incidents", statement, params)


def search_problems(db: Session, actor: Actor, query: SearchQuery) -> list[SearchHit]:
    if not actor.can_anywhere("problem.view"):
        return []
    params: dict[str, Any] = {}
    visible = domain_scope(actor, "problem.view", params, "problem_domains")
    statement, params = sql_hits(source="gaas_incident_mgmt.problems t", number="t.number",
                                 title="t.short_description",
                                 document="concat_ws(' ', t.description, t.root_cause, t.workaround)",
                                 status="t.status::text", visible=visible, query=query, params=params)
    return run_hits(db, "problem", "/api/v1/problems", statement, params)


def reindex_incidents(db: Session, domain: str | None, *, batch: int,
                      after: uuid.UUID | None) -> tuple[int, uuid.UUID | None]:
    return touch_rows(db, "gaas_incident_mgmt.incidents", domain, batch=batch, after=after)


def reindex_problems(db: Session, domain: str | None, *, batch: int,
                     after: uuid.UUID | None) -> tuple[int, uuid.UUID | None]:
    return touch_rows(db, "gaas_incident_mgmt.problems", domain, batch=batch, after=after)
