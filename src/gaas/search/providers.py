"""The contract between global search and the modules that own searchable records.

Each owning module exposes one provider, `search(db, actor, query) -> list[SearchHit]`, in its own
`search.py`: it reads only its own tables, applies its own view permissions (row-level security
applies underneath, as for every read) and scores its hits on the common scale below, so that
the search module can merge them into one ranked list without reading anyone's tables.

Common scale (0..1):
- a record number the query names exactly: 1.0;
- a full-text match: 0.5 + 0.5 * ts_rank_cd(vector, query, 32) (rank / (rank + 1): titles are
  weighted A, so a title match ranks above a body match);
- a trigram (typo-tolerant) match of the title: 0.9 * word_similarity(text, title).
The best of the three counts; providers may add small bounded boosts (an article's solved count).

`sql_hits()` builds the usual provider statement from a table's columns, so that every provider
matches, scores, bounds its work and highlights in the same way.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gaas.core.context import Actor

# Matches scored per provider and query: beyond this, a very common word's matches are cut
# (in index order) before ranking, so one query never ranks a whole table.
CANDIDATES = 200
# Trigram word-similarity threshold for typos: "pasword reset" against "Password reset" is ~0.9,
# a single wrong letter in a short word ~0.5.
FUZZY_THRESHOLD = 0.5
# Sentinels around highlighted words (private-use code points, removed from the source first),
# so that the snippet can be HTML-escaped before the <mark> tags are put in.
MARK_START, MARK_STOP = "\ue000", "\ue001"
HEADLINE_OPTIONS = (f'StartSel="{MARK_START}", StopSel="{MARK_STOP}", MaxWords=30, MinWords=12, '
                    'ShortWord=2, MaxFragments=2, FragmentDelimiter=" … "')


@dataclass(frozen=True)
class SearchQuery:
    text: str  # as typed, trimmed
    tsquery: str  # the text as a tsquery over the caller's languages and `simple`; '' if no words
    codes: tuple[str, ...]  # record numbers named in the text, normalised (inc123 -> INC0000123)
    fuzzy: bool  # worth matching titles by trigram similarity (short text with letters)
    limit: int  # how many best hits each provider returns
    typos: bool = True  # has words that may be misspelt (not only codes, numbers, host names)
    # Which kinds of match this call makes: "text" (full text), "codes" (record numbers), "fuzzy"
    # (trigrams). The search module asks for the costly trigram scans only when the cheap matches
    # did not fill the page (see search.service.search).
    matching: frozenset[str] = frozenset({"text", "codes", "fuzzy"})


@dataclass
class SearchHit:
    type: str
    id: uuid.UUID
    number: str | None
    title: str
    snippet: str | None
    domain: str | None
    status: str | None
    score: float
    updated_at: datetime
    url: str


Provider = Callable[[Session, Actor, SearchQuery], list[SearchHit]]

_CODE = re.compile(r"\b([A-Za-z]{2,3})0*(\d{1,7})\b")
PREFIXES = ("INC", "PRB", "CHG", "KB", "SRV", "CI")


def record_numbers(value: str) -> tuple[str, ...]:
    """INC0000123, inc123, KB42 ... as the platform writes them (prefix + 7 digits)."""
    found = []
    for prefix, digits in _CODE.findall(value):
        prefix = prefix.upper()
        if prefix in PREFIXES and int(digits) > 0:
            found.append(f"{prefix}{int(digits):07d}")
    return tuple(dict.fromkeys(found))


def safe_snippet(raw: str | None) -> str | None:
    """HTML from a ts_headline result: the text escaped, the matches in <mark>."""
    if not raw:
        return None
    escaped = html.escape(raw, quote=False)
    return escaped.replace(MARK_START, "<mark>").replace(MARK_STOP, "</mark>")


def sql_hits(*, source: str, number: str | None, title: str, document: str, status: str, visible: str,
             query: SearchQuery, params: dict[str, Any] | None = None, extra_score: str = "0",
             extra_columns: str = "", fuzzy_title: bool = True, nearest: bool = False,
             nearest_from: str | None = None, nearest_title: str | None = None,
             unindexed: str | None = None) -> tuple[Any, dict[str, Any]]:
    """One provider statement. `source` is the FROM clause, the searched table aliased `t` (with
    whatever it joins); `visible` is the provider's SQL filter (its permission rules; row-level
    security applies as well), with its bind `params`. Typos are matched nearest-first through a
    GiST trigram index on the title (`nearest`), or by threshold through the GIN one. When that
    GiST index is on another table, `nearest_from` (joining `t`) and `nearest_title` name it, and
    `unindexed` (over `t`) selects the rows it does not hold yet, which are scored directly.
    Returns (statement, parameters); the rows carry id, number, title, domain, status,
    updated_at, score, snippet and `extra_columns`."""
    matches, scores = [], []
    params = {**(params or {}), "limit": query.limit, "candidates": CANDIDATES, "hl": HEADLINE_OPTIONS,
              "marks": MARK_START + MARK_STOP}
    if query.tsquery and "text" in query.matching:
        params["tsq"] = query.tsquery
        matches.append("t.search_vector @@ CAST(:tsq AS tsquery)")
        scores.append("CASE WHEN t.search_vector @@ CAST(:tsq AS tsquery) "
                      "THEN 0.5 + 0.5 * ts_rank_cd(t.search_vector, CAST(:tsq AS tsquery), 32) ELSE 0 END")
    fuzzy = query.fuzzy and fuzzy_title and "fuzzy" in query.matching
    knn = fuzzy and nearest
    if fuzzy and not nearest:
        # A million rows: the trigram GIN index with the similarity threshold, which is cheap when the
        # text matches little (a nearest-first walk would then read much of its index).
        params["text"] = query.text
        matches.append(f":text <% {title}")
        scores.append(f"0.9 * word_similarity(:text, {title})")
    if query.codes and number and "codes" in query.matching:
        params["codes"] = list(query.codes)
        matches.append(f"{number} = ANY(:codes)")
        scores.append(f"CASE WHEN {number} = ANY(:codes) THEN 1.0 ELSE 0 END")
    if not matches and not knn:
        return None, params
    if query.tsquery:
        params["tsq"] = query.tsquery
    headline = ("ts_headline(gaas_knowledge.search_config(c.domain), translate(c.document, :marks, ''), "
                "CAST(:tsq AS tsquery), :hl)" if query.tsquery else "NULL")
    extras = f", {extra_columns}" if extra_columns else ""
    columns = (f"t.id, {number or 'NULL'} AS number, {title} AS title, t.domain, {status} AS status, "
               f"t.updated_at, {document} AS document{extras}")
    parts = []
    if knn:
        # Typos: the titles nearest by word similarity, walked in order through a GiST trigram index
        # (KNN), so only as many rows are read as it takes to find `limit` the caller may see.
        params["text"] = query.text
        params["max_distance"] = 1 - FUZZY_THRESHOLD
        walks = [(nearest_from or source, nearest_title or title, "true")]
        if unindexed:
            walks.append((source, title, unindexed))
        for walked, key, only in walks:
            parts.append(f"""
            SELECT k.* FROM (
                SELECT {columns}, least(1.0, 0.9 * (1 - (:text <<-> {key})) + {extra_score}) AS score,
                       :text <<-> {key} AS distance
                FROM {walked}
                WHERE t.deleted_at IS NULL AND ({visible}) AND ({only})
                ORDER BY :text <<-> {key} LIMIT :limit
            ) k WHERE k.distance <= :max_distance""")
    if matches:
        parts.append(f"""
            SELECT m.*, CAST(NULL AS real) AS distance FROM (
                SELECT {columns}, least(1.0, greatest({', '.join(scores)}) + {extra_score}) AS score
                FROM {source}
                WHERE t.deleted_at IS NULL AND ({visible}) AND ({' OR '.join(matches)})
                LIMIT :candidates
            ) m""")
    # Innermost: the matches (at most CANDIDATES), scored; then the best `limit`; only those get a
    # headline (ts_headline parses the whole document).
    statement = text(f"""
        SELECT c.*, {headline} AS snippet FROM (
            SELECT u.* FROM ({' UNION ALL '.join(parts)}) u
            ORDER BY u.score DESC, u.id LIMIT :limit
        ) c
        ORDER BY c.score DESC, c.id""")
    return statement, params


def run_hits(db: Session, type_: str, url: str, statement: Any, params: dict[str, Any]) -> list[SearchHit]:
    if statement is None:
        return []
    return [SearchHit(type=type_, id=r.id, number=r.number, title=r.title, snippet=safe_snippet(r.snippet),
                      domain=r.domain, status=r.status, score=float(r.score), updated_at=r.updated_at,
                      url=f"{url}/{r.id}") for r in db.execute(statement, params)]


def domain_scope(actor: Actor, permission: str, params: dict[str, Any], name: str) -> str:
    """SQL over `t.domain`: the domains where `permission` holds, as list queries filter them (for
    records that always have a domain)."""
    allowed = actor.domains_with(permission)
    if allowed is None:
        return "true"
    if not allowed:
        return "false"
    params[name] = sorted(allowed)
    return f"t.domain = ANY(:{name})"


def touch_rows(db: Session, table: str, domain: str | None, *, batch: int,
               after: uuid.UUID | None) -> tuple[int, uuid.UUID | None]:
    """Rewrite one batch of `table`'s rows (in id order, after `after`, of `domain` if given) so
    that its search-vector trigger recomputes them, e.g. after the domain's language changed.
    Returns (rows, last id); the caller loops until fewer than `batch` come back."""
    where = ["(CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid))"]
    if domain is not None:
        where.append("domain = :domain")
    rows = db.execute(text(f"""
        WITH batch AS (SELECT id FROM {table} WHERE {' AND '.join(where)} ORDER BY id LIMIT :batch)
        UPDATE {table} t SET domain = t.domain FROM batch WHERE t.id = batch.id RETURNING t.id"""),
                      {"after": after, "domain": domain, "batch": batch}).scalars().all()
    return len(rows), (max(rows) if rows else None)
