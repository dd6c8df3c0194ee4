"""Keyset (cursor) pagination with a stable order and a bounded page size."""

from __future__ import annotations

import base64
import enum
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
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
        if isinstance(v, date):
            return {"D": v.isoformat()}
        if isinstance(v, uuid.UUID):
            return {"u": str(v)}
        if isinstance(v, Decimal):
            return {"d": str(v)}
        if isinstance(v, enum.Enum):
            return v.value
        return v

    raw = json.dumps([plain(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_DECODERS = {"t": datetime.fromisoformat, "D": date.fromisoformat, "u": uuid.UUID, "d": Decimal}


def _decode(cursor: str, sort_name: str, column: InstrumentedAttribute) -> tuple[Any, uuid.UUID]:
    """A cursor this API issued for this sort, with values of the column's type; else 422."""
    def typed(v: Any) -> Any:
        if isinstance(v, dict) and len(v) == 1:
            kind, text_value = next(iter(v.items()))
            if kind in _DECODERS and isinstance(text_value, str):
                return _DECODERS[kind](text_value)
        if isinstance(v, str | int | float | bool):
            return v
        raise ValueError("unexpected value in cursor")

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, value, last_id = json.loads(raw)
        value, last_id = typed(value), typed(last_id)
        if name != sort_name or not isinstance(last_id, uuid.UUID):
            raise ValueError("cursor of another listing")
        expected = column.type.python_type
        if isinstance(value, str) and issubclass(expected, enum.Enum):
            value = expected(value)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ValueError("cursor value of the wrong type")
        return value, last_id
    except (ValueError, TypeError, KeyError, NotImplementedError, InvalidOperation, UnicodeDecodeError) as exc:
        raise ValidationProblem.field("cursor", "not a cursor this API issued for this listing") from exc


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
        last_value, last_id = _decode(cursor, f"{'-' if descending else ''}{name}", column)
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
    return rows, _encode([f"{'-' if descending else ''}{name}", getattr(last, column.key),
                          getattr(last, id_column.key)])


def encode_offset(offset: int) -> str:
    """A cursor for computed or relevance-ranked results, which page by position."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = raw.split(":", 1)
        if kind != "o" or not value.isdigit():
            raise ValueError(raw)
        return int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationProblem.field("cursor", "not a cursor this API issued") from exc
