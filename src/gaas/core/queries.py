"""Small building blocks for list queries: equality filters and half-open ranges."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select


def where_equal(stmt: Select, *pairs: tuple[Any, Any]) -> Select:
    """`column == value` for every pair whose value was given (None means "no filter")."""
    for column, value in pairs:
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def where_in_range(stmt: Select, column: Any, start: Any, end: Any) -> Select:
    """start <= column < end, each bound only when given."""
    if start is not None:
        stmt = stmt.where(column >= start)
    if end is not None:
        stmt = stmt.where(column < end)
    return stmt


def contains_pattern(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, with its own % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
