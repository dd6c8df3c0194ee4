"""Generic record queries for compatibility layers and reports: a small expression tree of
conditions (AND / OR of field-operator-value), compiled by the module that owns the table against
an allow-list of its fields, with an explicit order, offset paging and a total count.

A module exposes a `query_*` function that applies its own visibility rules (permission, domains,
soft delete) and hands its allow-list here; callers never see the tables. A field or operator that
is not allowed is a 422 naming it, never silently ignored.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, or_, select, true
from sqlalchemy.orm import Session

from gaas.core.errors import ValidationProblem

# Operators a condition may use.
EQ, NE, LT, GT, LE, GE = "eq", "ne", "lt", "gt", "le", "ge"
IN, NOT_IN = "in", "not_in"
CONTAINS, NOT_CONTAINS, STARTSWITH, ENDSWITH = "contains", "not_contains", "startswith", "endswith"
EMPTY, NOT_EMPTY = "empty", "not_empty"

EQUALITY = frozenset({EQ, NE, IN, NOT_IN, EMPTY, NOT_EMPTY})
ORDERED = EQUALITY | {LT, GT, LE, GE}
TEXT = ORDERED | {CONTAINS, NOT_CONTAINS, STARTSWITH, ENDSWITH}


@dataclass(frozen=True)
class Cond:
    """`field op value`; `value` is a list for in/not_in and ignored for empty/not_empty."""

    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class All:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Expr, ...]


Expr = Cond | All | AnyOf
MATCH_ALL = All(())
MATCH_NONE = AnyOf(())


@dataclass(frozen=True)
class Field:
    """One queryable field: its column (or SQL expression), the operators it takes, and how a
    value given for it is read (raises ValueError when it cannot be)."""

    column: Any
    ops: frozenset[str] = EQUALITY
    parse: Callable[[Any], Any] = lambda v: v
    sortable: bool = True
    text: bool = False  # empty also matches ''

    @classmethod
    def text_(cls, column: Any, *, sortable: bool = True) -> Field:
        return cls(column, TEXT, _text, sortable, True)

    @classmethod
    def uuid_(cls, column: Any) -> Field:
        return cls(column, EQUALITY, _uuid, True)

    @classmethod
    def enum_(cls, column: Any, kind: type[enum.Enum]) -> Field:
        return cls(column, ORDERED, lambda v: v if isinstance(v, kind) else kind(str(v)), True)

    @classmethod
    def time_(cls, column: Any) -> Field:
        return cls(column, ORDERED, _datetime, True)

    @classmethod
    def bool_(cls, column: Any) -> Field:
        return cls(column, frozenset({EQ, NE, EMPTY, NOT_EMPTY}), _bool, True)

    @classmethod
    def int_(cls, column: Any) -> Field:
        return cls(column, ORDERED, int, True)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not text")
    return value


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError("not a boolean")


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(str(value).strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class Compiler:
    fields: dict[str, Field]
    errors: list[dict[str, Any]] = field(default_factory=list)

    def field(self, name: str, op: str | None = None) -> Field | None:
        spec = self.fields.get(name)
        if spec is None:
            self.errors.append({"field": name, "message": "cannot be queried", "type": "unknown_field"})
            return None
        if op is not None and op not in spec.ops:
            self.errors.append({"field": name, "message": f"operator '{op}' is not supported on this field",
                                "type": "unsupported_operator"})
            return None
        return spec

    def value(self, name: str, spec: Field, value: Any) -> Any:
        try:
            return spec.parse(value)
        except (ValueError, TypeError):
            self.errors.append({"field": name, "message": f"'{value}' is not a valid value", "type": "invalid"})
            return None

    def compile(self, expr: Expr) -> ColumnElement[bool]:
        if isinstance(expr, All):
            return and_(true(), *(self.compile(p) for p in expr.parts))
        if isinstance(expr, AnyOf):
            return or_(false(), *(self.compile(p) for p in expr.parts))
        spec = self.field(expr.field, expr.op)
        if spec is None:
            return false()
        col, op = spec.column, expr.op
        if op in (EMPTY, NOT_EMPTY):
            empty = or_(col.is_(None), col == "") if spec.text else col.is_(None)
            return empty if op == EMPTY else not_(empty)
        if op in (IN, NOT_IN):
            values = expr.value if isinstance(expr.value, list | tuple | set | frozenset) else [expr.value]
            parsed = [self.value(expr.field, spec, v) for v in values]
            if op == IN:
                return col.in_(parsed) if parsed else false()
            return or_(col.is_(None), col.not_in(parsed)) if parsed else true()
        value = self.value(expr.field, spec, expr.value)
        if value is None:
            return false()
        if op == EQ:
            return col == value
        if op == NE:
            return col.is_distinct_from(value)
        if op == LT:
            return col < value
        if op == GT:
            return col > value
        if op == LE:
            return col <= value
        if op == GE:
            return col >= value
        if op == CONTAINS:
            return col.ilike(f"%{_escape(value)}%")
        if op == NOT_CONTAINS:
            return or_(col.is_(None), not_(col.ilike(f"%{_escape(value)}%")))
        if op == STARTSWITH:
            return col.ilike(f"{_escape(value)}%")
        if op == ENDSWITH:
            return col.ilike(f"%{_escape(value)}")
        self.errors.append({"field": expr.field, "message": f"unknown operator '{op}'", "type": "unsupported_operator"})
        return false()


def run_query(db: Session, stmt: Select, *, fields: dict[str, Field], id_column: Any, where: Expr | None,
              order: Sequence[tuple[str, bool]] = (), offset: int = 0, limit: int = 50,
              count: bool = True, default_order: Any = None) -> tuple[list[Any], int | None]:
    """Rows of `stmt` matching `where`, ordered by `order` ((field, descending) pairs, then the id
    as a tie-break, so offset paging is stable), `offset`/`limit`, and the total count."""
    compiler = Compiler(fields)
    if where is not None and where != MATCH_ALL:
        stmt = stmt.where(compiler.compile(where))
    clauses = []
    for name, descending in order:
        spec = compiler.field(name)
        if spec is None:
            continue
        if not spec.sortable:
            compiler.errors.append({"field": name, "message": "cannot be sorted on", "type": "unsortable"})
            continue
        clauses.append(spec.column.desc() if descending else spec.column.asc())
    if compiler.errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in compiler.errors)
        raise ValidationProblem(detail, errors=compiler.errors)
    if offset < 0 or limit < 0:
        raise ValidationProblem.field("offset", "must not be negative")
    total = None
    if count:
        total = db.scalar(select(func.count()).select_from(
            stmt.with_only_columns(id_column, maintain_column_froms=True).order_by(None).subquery()))
    if not clauses and default_order is not None:
        clauses.append(default_order)
    rows = list(db.scalars(stmt.order_by(*clauses, id_column.asc()).offset(offset).limit(limit))) if limit else []
    return rows, total


def field_names(expr: Expr | None) -> set[str]:
    """Every field an expression names."""
    if expr is None:
        return set()
    if isinstance(expr, Cond):
        return {expr.field}
    return set().union(*(field_names(p) for p in expr.parts)) if expr.parts else set()
