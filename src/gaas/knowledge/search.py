"""The knowledge base's search provider (global search) and the suggestions offered while an
incident is written.

Both read only published articles in force that the caller may read (see service.py), with the
counters as a small boost: articles that solved incidents before rank higher.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.errors import Forbidden
from gaas.knowledge.schemas import Suggestion
from gaas.knowledge.service import INTERNAL, VIEW
from gaas.search.providers import (
    CANDIDATES,
    FUZZY_THRESHOLD,
    HEADLINE_OPTIONS,
    MARK_START,
    MARK_STOP,
    SearchHit,
    SearchQuery,
    run_hits,
    safe_snippet,
    sql_hits,
)

SOURCE = "gaas_knowledge.articles t LEFT JOIN gaas_knowledge.article_stats s ON s.article_id = t.id"
# Up to +0.1 for articles that solved incidents (100 or more: the full boost), +0.05 for helpful votes.
BOOST = ("0.1 * least(1.0, ln(1 + coalesce(s.solved_count, 0)) / ln(100))"
         " + 0.05 * coalesce(s.helpful_count::float / nullif(s.helpful_count + s.not_helpful_count, 0), 0)")
MAX_TERMS = 12


def scope_sql(actor: Actor, permission: str, name: str, params: dict[str, Any]) -> str:
    """SQL over `t.domain`: the domains where `permission` holds (global rows for holders anywhere)."""
    allowed = actor.domains_with(permission)
    if allowed is None:
        return "true" if actor.can_anywhere(permission) else "false"
    parts = []
    if allowed:
        params[name] = sorted(allowed)
        parts.append(f"t.domain = ANY(:{name})")
    if actor.can_anywhere(permission):
        parts.append("t.domain IS NULL")
    return f"({' OR '.join(parts)})" if parts else "false"


def reader_sql(actor: Actor, params: dict[str, Any]) -> str:
    view = scope_sql(actor, VIEW, "kb_view", params)
    internal = scope_sql(actor, INTERNAL, "kb_internal", params)
    return (f"t.status = 'published' AND (t.valid_to IS NULL OR t.valid_to > now()) AND {view} "
            f"AND (t.audience = 'everyone' OR {internal})")


def search(db: Session, actor: Actor, query: SearchQuery) -> list[SearchHit]:
    """Global search's provider for knowledge articles."""
    if not actor.can_anywhere(VIEW):
        return []
    params: dict[str, Any] = {}
    visible = reader_sql(actor, params)
    statement, params = sql_hits(source=SOURCE, number="t.number", title="t.title",
                                 document="concat_ws(' ', t.summary, t.body_text)", status="t.status::text",
                                 visible=visible, query=query, params=params, extra_score=BOOST)
    return run_hits(db, "article", "/api/v1/articles", statement, params)


_WORD = re.compile(r"(\w+)$")


def _terms(db: Session, config_domain: str | None, value: str) -> tuple[list[str], str | None]:
    """The lexemes of `value` in the domain's language; the word still being typed (no space after
    it) comes back separately, to be matched as a prefix."""
    partial = None
    head = value
    match = _WORD.search(value)
    if match and not value[-1:].isspace():
        partial, head = match.group(1).lower(), value[:match.start()]
    lexemes = db.execute(text("SELECT tsvector_to_array(to_tsvector(gaas_knowledge.search_config(:d), :t))"),
                         {"d": config_domain, "t": head}).scalar_one() or []
    lexemes = [w for w in lexemes if "'" not in w and "\\" not in w]
    if partial is not None and ("'" in partial or len(partial) < 2):
        partial = None
    return lexemes[:MAX_TERMS], partial


def suggest(db: Session, actor: Actor, value: str, *, domain: str | None = None,
            service_id: uuid.UUID | None = None, ci_id: uuid.UUID | None = None, limit: int = 5) -> list[Suggestion]:
    """Published articles most relevant to an incident's short description as it is typed: any of
    its words (the last one as a prefix), ranked by cover density, with a boost for articles that
    solved incidents, were found helpful, or are linked to the incident's service or CI."""
    if not actor.can_anywhere(VIEW):
        raise Forbidden("Suggestions need the 'knowledge.view' permission.", permission=VIEW)
    value = value.strip() if value.endswith("\n") else value
    if not value.strip():
        return []
    lexemes, partial = _terms(db, domain or actor.home_domain, value)
    terms = [f"'{w}'" for w in lexemes]
    if partial:
        terms.append(f"'{partial}':*")
    params: dict[str, Any] = {"limit": limit, "candidates": CANDIDATES, "hl": HEADLINE_OPTIONS,
                              "marks": MARK_START + MARK_STOP}
    db.execute(text("SELECT set_config('enable_seqscan', 'off', true)"))  # index-driven (see search.service)
    visible = reader_sql(actor, params)
    if domain is not None:
        params["incident_domain"] = domain
        visible += " AND (t.domain = :incident_domain OR t.domain IS NULL)"
    related = []
    for target_type, target_id in (("service", service_id), ("ci", ci_id)):
        if target_id is not None:
            params[f"{target_type}_id"] = target_id
            related.append(f"EXISTS (SELECT 1 FROM gaas_knowledge.article_links l WHERE l.article_id = t.id "
                           f"AND l.target_type = '{target_type}' AND l.target_id = :{target_type}_id)")
    boost = BOOST + (f" + CASE WHEN {' OR '.join(related)} THEN 0.1 ELSE 0 END" if related else "")
    columns = ("t.id, t.number, t.domain, t.kind::text AS kind, t.title, t.summary, t.problem_id, "
               "concat_ws(' ', t.summary, t.body_text) AS document, coalesce(s.solved_count, 0) AS solved, "
               "coalesce(s.helpful_count, 0) AS helpful")
    found: dict[uuid.UUID, Any] = {}
    if terms:
        params["tsq"] = " | ".join(dict.fromkeys(terms))
        rows = db.execute(text(f"""
            SELECT c.*, ts_headline(gaas_knowledge.search_config(c.domain), translate(c.document, :marks, ''),
                                    CAST(:tsq AS tsquery), :hl) AS snippet FROM (
                SELECT m.* FROM (
                    SELECT {columns}, least(1.0, 0.5 + 0.5 * ts_rank_cd(t.search_vector, CAST(:tsq AS tsquery), 32)
                                               + {boost}) AS score
                    FROM {SOURCE}
                    WHERE t.deleted_at IS NULL AND {visible} AND t.search_vector @@ CAST(:tsq AS tsquery)
                    LIMIT :candidates
                ) m ORDER BY m.score DESC, m.id LIMIT :limit
            ) c"""), params)
        found.update((r.id, r) for r in rows)
    short = value.strip()
    if len(found) < limit and len(short) <= 60 and any(len(w) >= 3 and w.isalpha() for w in short.split()):
        # Few or no words matched: perhaps misspelt; titles by trigram word similarity.
        params.update(text=short)
        db.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', :th, true)"),
                   {"th": str(FUZZY_THRESHOLD)})
        rows = db.execute(text(f"""
            SELECT k.*, NULL AS snippet FROM (
                SELECT m.* FROM (
                    SELECT {columns}, least(1.0, 0.9 * word_similarity(:text, t.title) + {boost}) AS score
                    FROM {SOURCE}
                    WHERE t.deleted_at IS NULL AND {visible} AND :text <% t.title
                    LIMIT :candidates
                ) m ORDER BY m.score DESC, m.id LIMIT :limit
            ) k"""), params)
        for r in rows:
            if r.id not in found or found[r.id].score < r.score:
                found[r.id] = r
    rows = sorted(found.values(), key=lambda r: (-r.score, str(r.id)))[:limit]
    return [Suggestion(id=r.id, number=r.number, domain=r.domain, kind=r.kind, title=r.title, summary=r.summary,
                       snippet=safe_snippet(r.snippet), score=round(float(r.score), 4), solved=r.solved,
                       helpful=r.helpful, problem_id=r.problem_id) for r in rows]
