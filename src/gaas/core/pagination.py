"""Keyset (cursor) pagination with a stable order and a bounded page size."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from gaas.core.errors import ValidationProblem

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None
    limit: int


@dataclass(frozen=True)
class SortKey:
    """An allow-listed sort field: the API name and the (non-null) column it orders by."""

    name: str
    column: InstrumentedAttribute


def _encode(values: list[Any]) -> str:
    def plain(v: Any) -> Any:
        if isinstance(v, datetime):
            return {"t": v.isoformat()}
        if isinstance(v, uuid.UUID):
            return {"u": str(v)}
        return v

    raw = json.dumps([plain(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    def typed(v: Any) -> Any:
        if isinstance(v, dict) and "t" in v:
            return datetime.fromisoformat(v["t"])
        if isinstance(v, dict) and "u" in v:
            return uuid.UUID(v["u"])
        return v

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != 2:
            raise ValueError("cursor shape")
        return [typed(v) for v in values]
    except (ValueError, TypeError) as exc:
        raise ValidationProblem.field("cursor", "not a cursor this API issued") from exc


def paginate(
    stmt: Select,
    *,
    id_column: InstrumentedAttribute,
    sort_keys: Sequence[SortKey],
    sort: str | None,
    cursor: str | None,
    limit: int,
    execute,
) -> tuple[list[Any], str | None]:
    """Order `stmt` by (sort column, id), continue after `cursor`, return rows and the next cursor.

    `sort` is an allow-listed name, optionally prefixed with '-' for descending.
    """
    allowed = {k.name: k for k in sort_keys}
    descending = bool(sort and sort.startswith("-"))
    name = (sort or sort_keys[0].name).lstrip("-")
    if name not in allowed:
        raise ValidationProblem.field("sort", f"must be one of {sorted(allowed)} (prefix '-' to reverse)")
    column = allowed[name].column
    if cursor:
        last_value, last_id = _decode(cursor)
        if descending:
            stmt = stmt.where(or_(column < last_value, and_(column == last_value, id_column < last_id)))
        else:
            stmt = stmt.where(or_(column > last_value, and_(column == last_value, id_column > last_id)))
    order = (column.desc(), id_column.desc()) if descending else (column.asc(), id_column.asc())
    rows = list(execute(stmt.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, _encode([getattr(last, column.key), getattr(last, id_column.key)])
