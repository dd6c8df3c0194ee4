"""Global search: one ranked list across the record types the caller may see.

The search module owns no table and reads none: it turns the text into a query once (the
caller's languages, record numbers, whether typos are worth matching), asks each owning
module's provider for its best hits on the common scale (see providers.py), and merges them.
Paging is by position in the merged ranking (offset cursors, bounded depth).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace

from sqlalchemy import text
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.errors import ValidationProblem
from gaas.core.pagination import decode_offset, encode_offset
from gaas.search.providers import FUZZY_THRESHOLD, Provider, SearchHit, SearchQuery, record_numbers


@dataclass(frozen=True)
class Source:
    type: str  # the API name in ?types=
    provider: str  # "module:function"
    reindex: str | None = None  # "module:function" rebuilding one batch of search vectors
    # When its trigram (typo) matching runs: 1 with the exact matches (CIs: names are what they are
    # searched by), 2 if the exact matches found next to nothing, 3 if that did not either (the
    # million-row incidents).
    fuzzy_round: int = 2


SOURCES = (
    Source("articles", "gaas.knowledge.search:search", "gaas.knowledge.service:reindex"),
    Source("incidents", "gaas.incidents.search:search_incidents", "gaas.incidents.search:reindex_incidents",
           fuzzy_round=3),
    Source("problems", "gaas.incidents.search:search_problems", "gaas.incidents.search:reindex_problems"),
    Source("changes", "gaas.changes.search:search", "gaas.changes.search:reindex"),
    Source("services", "gaas.catalog.search:search", "gaas.catalog.search:reindex"),
    Source("cis", "gaas.cmdb.search:search", fuzzy_round=1),
)
TYPES = tuple(s.type for s in SOURCES)
EXACT, FUZZY = frozenset({"text", "codes"}), frozenset({"fuzzy"})
FUZZY_BELOW = 5  # fewer exact hits than this: the words may be misspelt, try trigrams
MAX_DEPTH = 200  # positions reachable by paging: deeper results are not worth ranking
MAX_QUERY = 200


def _load(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def provider(source: Source) -> Provider:
    return _load(source.provider)


def parse_types(value: str | None) -> tuple[str, ...]:
    if not value:
        return TYPES
    wanted = tuple(dict.fromkeys(t.strip().lower() for t in value.split(",") if t.strip()))
    unknown = [t for t in wanted if t not in TYPES]
    if unknown or not wanted:
        raise ValidationProblem.field("types", f"unknown type(s) {unknown}; use a comma-separated subset of "
                                      f"{list(TYPES)}", "enum")
    return wanted


_PREPARE = text("""
    SELECT coalesce(string_agg(DISTINCT
               CASE WHEN numnode(websearch_to_tsquery(c.cfg, :q)) > 0
                    THEN '(' || websearch_to_tsquery(c.cfg, :q)::text || ')' END, ' | '), '') AS tsq
    FROM (SELECT c.oid::regconfig AS cfg FROM gaas_knowledge.search_settings s
          JOIN pg_catalog.pg_ts_config c ON c.cfgname = s.language WHERE s.deleted_at IS NULL
          UNION SELECT 'pg_catalog.simple'::regconfig) c""")


def prepare(db: Session, text_value: str, limit: int) -> SearchQuery:
    """The query every provider runs: websearch syntax ("quoted phrases", -not, or) in each
    language configured for a domain the caller sees (row-level security picks the settings) and
    in `simple` (codes and words as written), OR-ed together."""
    value = " ".join(text_value.split())[:MAX_QUERY]
    tsq = db.execute(_PREPARE, {"q": value}).scalar_one()
    # Typos are a matter of words: a text without one (a code, a record number, a host name) is
    # matched exactly, except by CIs, whose names are matched by trigram anyway (Source.fuzzy_round).
    fuzzy = len(value) <= 60 and any(c.isalpha() for c in value)
    typos = fuzzy and any(len(word) >= 3 and word.isalpha() for word in value.split())
    # The statements are built to be driven by their indexes; with LIMIT over a filter that row-level
    # security makes look cheap, the planner would otherwise walk the table hoping to stop early.
    db.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', :th, true), "
                    "set_config('enable_seqscan', 'off', true)"), {"th": str(FUZZY_THRESHOLD)})
    return SearchQuery(text=value, tsquery=tsq, codes=record_numbers(value), fuzzy=fuzzy, limit=limit, typos=typos)


def search(db: Session, actor: Actor, q: str, *, types: tuple[str, ...] = TYPES, cursor: str | None = None,
           limit: int = 20) -> tuple[list[SearchHit], str | None, dict[str, int]]:
    """The merged ranking: (page, next cursor, hits per type among the ranked ones)."""
    if not q or not q.strip():
        raise ValidationProblem.field("q", "type something to search for", "missing")
    offset = decode_offset(cursor)
    if offset + limit > MAX_DEPTH:
        raise ValidationProblem.field("cursor", f"search results go {MAX_DEPTH} deep; refine the query", "too_deep")
    needed = offset + limit + 1
    query = prepare(db, q, needed)
    best: dict[tuple[str, str], SearchHit] = {}
    wanted = [s for s in SOURCES if s.type in types]
    for round_ in (1, 2, 3):
        if round_ > 1 and (not query.typos or len(best) >= FUZZY_BELOW):
            break  # typos are looked for only when the words (not a record number) found next to nothing
        for source in wanted:
            if round_ == 1:
                matching = EXACT | ({"fuzzy"} if source.fuzzy_round == 1 else set())
            elif source.fuzzy_round == round_:
                matching = FUZZY
            else:
                continue
            for hit in provider(source)(db, actor, replace(query, matching=frozenset(matching))):
                key = (hit.type, str(hit.id))
                if key not in best or best[key].score < hit.score:
                    best[key] = hit
    hits = sorted(best.values(), key=lambda h: (-h.score, h.type, str(h.id)))
    counts: dict[str, int] = {}
    for hit in hits:
        counts[hit.type] = counts.get(hit.type, 0) + 1
    page = hits[offset:offset + limit]
    more = len(hits) > offset + limit
    return page, encode_offset(offset + limit) if more else None, counts


def reindex(db_factory, domain: str | None = None, *, batch: int = 5000, progress=None) -> dict[str, int]:
    """Recompute every search vector (of one domain), one batch per transaction: after a domain's
    language changed. `db_factory()` yields a transaction acting as the system."""
    totals: dict[str, int] = {}
    for source in SOURCES:
        if source.reindex is None:
            continue
        one_batch = _load(source.reindex)
        after = None
        while True:
            with db_factory() as db:
                count, after = one_batch(db, domain, batch=batch, after=after)
            totals[source.type] = totals.get(source.type, 0) + count
            if progress is not None and count:
                progress(source.type, count)
            if count < batch:
                break
    return totals
