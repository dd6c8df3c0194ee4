"""Small building blocks for list queries: equality filters and half-open ranges."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, or_

if TYPE_CHECKING:
    from gaas.core.context import Actor


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


def where_viewable(stmt: Select, actor: Actor, permission: str, domain: Any, *, global_rows: bool = False) -> Select:
    """Only rows of domains where the caller holds `permission` (row-level security already hides
    the domains they may not see at all); `global_rows`: rows without a domain too. `domain` is the
    column to filter (a Core column keeps a statement off the ORM's slower path)."""
    allowed = actor.domains_with(permission)
    if allowed is None:
        return stmt
    condition = domain.in_(sorted(allowed))
    return stmt.where(or_(domain.is_(None), condition) if global_rows else condition)
