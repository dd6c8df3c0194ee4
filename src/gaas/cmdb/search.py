"""The CMDB's provider for global search (gaas.search): configuration items by number and by name
(a partial or misspelt hostname) through the search-name trigram index; CIs carry no prose to
index by full text."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy.orm import Session

from gaas.cmdb.service import unindexed_names
from gaas.core.context import Actor
from gaas.search.providers import SearchHit, SearchQuery, run_hits, sql_hits


def _visible(actor: Actor, params: dict[str, Any]) -> str:
    """Mirror of cmdb.service._can_view: ci.view in the CI's domain; shared (global) CIs for
    holders anywhere."""
    allowed = actor.domains_with("ci.view")
    if allowed is None:
        return "true"
    parts = ["t.domain IS NULL"]
    if allowed:
        params["ci_domains"] = sorted(allowed)
        parts.append("t.domain = ANY(:ci_domains)")
    return f"({' OR '.join(parts)})"


def search(db: Session, actor: Actor, query: SearchQuery) -> list[SearchHit]:
    if not actor.can_anywhere("ci.view"):
        return []
    params: dict[str, Any] = {}
    visible = _visible(actor, params)
    names_only = replace(query, tsquery="")  # no full-text vector on CIs
    statement, params = sql_hits(source="gaas_cmdb.configuration_items t", number="t.number", title="t.name",
                                 document="t.name", status="t.status::text", visible=visible, query=names_only,
                                 params=params, nearest=True,
                                 nearest_from="gaas_cmdb.ci_search_names n "
                                              "JOIN gaas_cmdb.configuration_items t ON t.id = n.ci_id",
                                 nearest_title="n.name", unindexed=unindexed_names("t"))
    return run_hits(db, "ci", "/api/v1/cis", statement, params)
