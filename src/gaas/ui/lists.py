"""Lists of records: filters, a search box, sortable columns, keyset paging, saved filters and CSV
export of the current filter, for every record type, from one declaration each.

A list calls the module's own list function (the API's), so visibility, permissions and the
allow-listed sort keys are exactly the API's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from gaas.core.errors import Problem
from gaas.ui.web import FILTERS_COOKIE, UI, render, secure_cookies

EXPORT_MAX_ROWS = 10_000
PAGE_SIZE = 25
MAX_SAVED = 12


@dataclass
class Column:
    key: str
    title: str
    sort: str | None = None  # the API's sort key, when sortable
    cell: Callable[[Any, dict[str, Any]], Any] | None = None  # (row, extras) -> text or Markup
    csv: Callable[[Any, dict[str, Any]], Any] | None = None

    def value(self, row: Any, extras: dict[str, Any]) -> Any:
        if self.cell is not None:
            return self.cell(row, extras)
        return _get(row, self.key)

    def csv_value(self, row: Any, extras: dict[str, Any]) -> str:
        if self.csv is not None:
            value = self.csv(row, extras)
        else:
            value = self.value(row, extras)
            if isinstance(value, Markup):
                value = value.striptags()
        value = getattr(value, "value", value)
        return "" if value is None else str(value)


@dataclass
class Filter:
    name: str
    title: str
    options: list[tuple[str, str]] | Callable[[Session, UI], list[tuple[str, str]]] | None = None  # None: text
    kind: str = "select"  # select | text | bool


@dataclass
class ListSpec:
    name: str  # also the URL: /<name>
    title: str
    columns: list[Column]
    fetch: Callable[..., tuple[list[Any], str | None]]  # (db, ui, filters, q, sort, cursor, limit)
    filters: list[Filter] = field(default_factory=list)
    search: str | None = None  # the search box's label, when the list searches
    link: Callable[[Any], str] | None = None
    extras: Callable[[Session, UI, list[Any]], dict[str, Any]] | None = None  # names for ids, etc.
    new: tuple[str, str] | None = None  # (url, permission) of the "New" button
    default_sort: str | None = None
    url: str = ""

    def __post_init__(self) -> None:
        self.url = self.url or f"/{self.name}"


def _get(row: Any, key: str) -> Any:
    return row.get(key) if isinstance(row, dict) else getattr(row, key, None)


def link(url: str, text: Any) -> Markup:
    return Markup('<a href="{}">{}</a>').format(url, text)


def badge(value: Any, kind: str = "") -> Markup:
    text = str(getattr(value, "value", value) or "")
    return Markup('<span class="badge {} {}">{}</span>').format(kind, f"v-{text}", text.replace("_", " "))


def params_of(request: Request, spec: ListSpec) -> dict[str, str]:
    values = {}
    for f in spec.filters:
        raw = request.query_params.get(f.name, "").strip()
        if raw:
            values[f.name] = raw
    return values


def run(db: Session, ui: UI, spec: ListSpec, request: Request) -> dict[str, Any]:
    filters = params_of(request, spec)
    q = (request.query_params.get("q") or "").strip() or None
    sort = request.query_params.get("sort") or spec.default_sort
    cursor = request.query_params.get("cursor") or None
    rows: list[Any] = []
    next_cursor = None
    error = None
    try:
        with db.begin_nested():
            rows, next_cursor = spec.fetch(db, ui, filters, q, sort, cursor, PAGE_SIZE)
    except Problem as exc:
        if exc.status in (401, 403, 404):
            raise  # not allowed to list at all: a page that says so
        error = exc.detail
    except ValueError as exc:  # an enum filter with a value that is not one of its options
        error = ui.t("A filter has a value that is not one of its options.") + f" ({exc})"
    extras = spec.extras(db, ui, rows) if spec.extras and rows else {}
    options = {f.name: (f.options(db, ui) if callable(f.options) else f.options) for f in spec.filters}
    return {"spec": spec, "rows": rows, "next_cursor": next_cursor, "filters": filters, "q": q or "",
            "sort": sort or "", "cursor": cursor, "error": error, "extras": extras, "options": options,
            "saved": saved_filters(request, ui, spec.name)}


def page(request: Request, db: Session, ui: UI, spec: ListSpec) -> Response:
    context = run(db, ui, spec, request)
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
        return render(request, "fragments/list_results.html", context)
    return render(request, "list.html", context)


def export(request: Request, db: Session, ui: UI, spec: ListSpec) -> Response:
    """The whole current filter (up to EXPORT_MAX_ROWS rows) as CSV, page by page through the API's
    own keyset paging."""
    filters = params_of(request, spec)
    q = (request.query_params.get("q") or "").strip() or None
    sort = request.query_params.get("sort") or spec.default_sort
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", *(c.title for c in spec.columns)])  # the id: for imports and the API
    cursor, written = None, 0
    while written < EXPORT_MAX_ROWS:
        rows, cursor = spec.fetch(db, ui, filters, q, sort, cursor, 500)
        extras = spec.extras(db, ui, rows) if spec.extras and rows else {}
        for row in rows:
            writer.writerow([str(_get(row, "id") or ""), *(_csv_safe(c.csv_value(row, extras)) for c in spec.columns)])
        written += len(rows)
        if cursor is None or not rows:
            break
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{spec.name}.csv"'})


def _csv_safe(value: str) -> str:
    """No formula injection when the file is opened in a spreadsheet."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# ---- saved filters -------------------------------------------------------------------------------
# Kept in an HttpOnly cookie per browser, keyed by the user: no table until the UI has a migration.

def _all_saved(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.cookies.get(FILTERS_COOKIE) or "{}")
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


def saved_filters(request: Request, ui: UI, list_name: str) -> list[dict[str, str]]:
    mine = _all_saved(request).get(str(ui.actor.user_id), {})
    items = mine.get(list_name, []) if isinstance(mine, dict) else []
    return [i for i in items if isinstance(i, dict) and "name" in i and "query" in i]


def store_saved(request: Request, response: Response, ui: UI, list_name: str,
                items: list[dict[str, str]]) -> None:
    data = _all_saved(request)
    mine = data.get(str(ui.actor.user_id), {})
    mine = mine if isinstance(mine, dict) else {}
    mine[list_name] = items[:MAX_SAVED]
    data = {str(ui.actor.user_id): mine}  # one user per browser cookie: others' filters are dropped
    response.set_cookie(FILTERS_COOKIE, json.dumps(data, separators=(",", ":")), max_age=365 * 86400, path="/",
                        httponly=True, samesite="lax", secure=secure_cookies(request))


def cells(spec: ListSpec, row: Any, extras: dict[str, Any]) -> list[Any]:
    return [c.value(row, extras) for c in spec.columns]


def text_or_markup(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return escape("" if value is None else getattr(value, "value", value))
