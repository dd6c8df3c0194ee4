"""How each ServiceNow table maps onto GaaS records, both ways: the fields, their numeric codes
and reference fields, the translation of encoded-query conditions into the owning module's query
expressions, and of written fields into the owning module's schemas. Records are read and written
only through the modules' service and query functions, with the caller as the actor."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nh3
from markdownify import markdownify
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gaas.changes import queries as change_queries
from gaas.changes import service as changes
from gaas.changes.models import Change, ChangeStatus, ChangeType
from gaas.changes.schemas import ChangeCreate, ChangeUpdate
from gaas.cmdb import queries as cmdb_queries
from gaas.cmdb import service as cmdb
from gaas.cmdb.models import CIRelationship, CIRelationshipType, ConfigurationItem, Environment
from gaas.cmdb.schemas import CICreate, CIRelationshipCreate, CIUpdate
from gaas.core.context import SYSTEM_USER_ID, Actor
from gaas.core.errors import NotFound, Problem
from gaas.core.filtering import (
    CONTAINS,
    EMPTY,
    ENDSWITH,
    EQ,
    GE,
    GT,
    IN,
    LE,
    LT,
    MATCH_ALL,
    MATCH_NONE,
    NE,
    NOT_CONTAINS,
    NOT_EMPTY,
    NOT_IN,
    STARTSWITH,
    All,
    AnyOf,
    Cond,
    Expr,
)
from gaas.iam import queries as iam_queries
from gaas.iam import service as iam
from gaas.iam.models import User, UserStatus
from gaas.iam.schemas import UserCreate, UserUpdate
from gaas.incidents import problems
from gaas.incidents import queries as incident_queries
from gaas.incidents import service as incidents
from gaas.incidents.models import Impact, Incident, IncidentStatus, Priority, ProblemStatus, Urgency
from gaas.incidents.models import Problem as ProblemRecord
from gaas.incidents.schemas import IncidentCreate, IncidentUpdate, ProblemCreate, ProblemUpdate
from gaas.knowledge import queries as knowledge_queries
from gaas.knowledge import service as knowledge
from gaas.knowledge.models import Article
from gaas.knowledge.schemas import ArticleCreate, ArticleUpdate
from gaas.servicenow import codes as c
from gaas.servicenow.models import ExternalKey
from gaas.servicenow.query import Query, QueryError, Term


class WriteError(Problem):
    status = 400
    slug = "invalid-field"
    title = "Invalid field"


def _write_error(table: str, name: str, message: str) -> WriteError:
    return WriteError(f"{table}.{name}: {message}", errors=[{"field": name, "message": message, "type": "invalid"}])


# ---- lookups shared by reading and writing --------------------------------------------------------------

@dataclass
class Lookups:
    """What translating one request looks up, once: assignment groups, users and CIs by name."""

    db: Session
    actor: Actor
    _groups: dict[str, str] | None = None

    def groups(self) -> dict[str, str]:
        """group sys_id -> name, for the groups the caller can see."""
        if self._groups is None:
            names = incident_queries.assignment_groups(self.db, self.actor)
            self._groups = {c.group_sys_id(n): n for n in names}
        return self._groups

    def group_name(self, value: str) -> str:
        text = value.strip()
        if c.is_sys_id(text):
            name = self.groups().get(text.replace("-", "").lower())
            if name is None:
                raise ValueError(f"no assignment group has sys_id {text}")
            return name
        return text

    def user(self, value: str) -> uuid.UUID:
        text = value.strip()
        if c.is_sys_id(text):
            return c.parse_sys_id(text)
        ref = iam_queries.find_login(self.db, text)
        if ref is None:
            raise ValueError(f"no user '{text}' (give a sys_id, user name or e-mail)")
        return ref.id

    def ci(self, value: str) -> uuid.UUID:
        text = value.strip()
        if c.is_sys_id(text):
            return c.parse_sys_id(text)
        rows, _ = cmdb_queries.query_cis(self.db, self.actor, where=Cond("name", EQ, text), limit=2, count=False)
        if len(rows) != 1:
            raise ValueError(f"{'no' if not rows else 'more than one'} configuration item is named '{text}'")
        return rows[0].id

    def problem(self, value: str) -> uuid.UUID:
        text = value.strip()
        if c.is_sys_id(text):
            return c.parse_sys_id(text)
        rows, _ = incident_queries.query_problems(self.db, self.actor, where=Cond("number", EQ, text.upper()),
                                                  limit=1, count=False)
        if not rows:
            raise ValueError(f"no problem '{text}'")
        return rows[0].id


# ---- columns -------------------------------------------------------------------------------------------

STRING, CHOICE, REFERENCE = "string", "choice", "reference"
DATETIME, BOOLEAN, INTEGER = "datetime", "boolean", "integer"
_OPS = {"=": EQ, "!=": NE, "<": LT, ">": GT, "<=": LE, ">=": GE, "LIKE": CONTAINS, "NOT LIKE": NOT_CONTAINS,
        "STARTSWITH": STARTSWITH, "ENDSWITH": ENDSWITH, "IN": IN, "NOT IN": NOT_IN, "ISEMPTY": EMPTY,
        "ISNOTEMPTY": NOT_EMPTY}
_KIND_OPS = {
    STRING: set(_OPS),
    REFERENCE: {"=", "!=", "IN", "NOT IN", "ISEMPTY", "ISNOTEMPTY"},
    DATETIME: {"=", "!=", "<", ">", "<=", ">=", "ISEMPTY", "ISNOTEMPTY"},
    INTEGER: {"=", "!=", "<", ">", "<=", ">=", "IN", "NOT IN"},
    BOOLEAN: {"=", "!="},
    CHOICE: {"=", "!=", "<", ">", "<=", ">=", "IN", "NOT IN", "ISEMPTY", "ISNOTEMPTY"},
}


@dataclass
class Column:
    """One ServiceNow field of a table."""

    name: str
    kind: str
    get: Callable[[Any, Render], Any]
    ours: str | None = None  # the GaaS field conditions and ORDERBY translate to
    parse: Callable[[str, Lookups], Any] | None = None  # a query value -> the GaaS value
    choices: dict[str, str] | None = None  # code -> label
    code_expr: Callable[[str], Expr] | None = None  # the condition one code means
    empty_expr: Expr | None = None  # what ISEMPTY means for a choice (default: never empty)
    ref: str | None = None  # the referenced table
    write: Callable[[Any, Writer], None] | None = None
    sortable: bool = True
    hidden: bool = False  # written, never shown (a password)


def _plain(value: Any) -> str | None:
    """A written value: a string, or {"value": ...} as ServiceNow also accepts; '' clears."""
    if isinstance(value, dict):
        value = value.get("value", value.get("sys_id"))
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if text != "" else None


@dataclass
class Writer:
    """Collects the GaaS values a ServiceNow body means."""

    table: str
    lookups: Lookups
    changes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def set(self, ours: str, value: Any) -> None:
        self.changes[ours] = value


def _w_text(ours: str) -> Callable[[Any, Writer], None]:
    def write(value: Any, w: Writer) -> None:
        w.set(ours, _plain(value))
    return write


def _w_html_as_markdown(ours: str) -> Callable[[Any, Writer], None]:
    """ServiceNow keeps an article's text as HTML, we keep Markdown: converted, after scripts and
    styles are dropped with their content (what remains is sanitised again when shown)."""
    def write(value: Any, w: Writer) -> None:
        html = _plain(value)
        w.set(ours, None if html is None else markdownify(nh3.clean(html), heading_style="ATX").strip())
    return write


def _w_required_text(ours: str) -> Callable[[Any, Writer], None]:
    def write(value: Any, w: Writer) -> None:
        text = _plain(value)
        w.set(ours, text if text is not None else "")
    return write


def _w_map(ours: str, mapping: dict[str, Any], *, nullable: bool = False) -> Callable[[Any, Writer], None]:
    def write(value: Any, w: Writer) -> None:
        code = _plain(value)
        if code is None and nullable:
            w.set(ours, None)
            return
        if code not in mapping:
            raise ValueError(f"'{code}' is not one of {', '.join(mapping)}")
        w.set(ours, mapping[code])
    return write


def _w_ref(ours: str, resolve: str) -> Callable[[Any, Writer], None]:
    def write(value: Any, w: Writer) -> None:
        text = _plain(value)
        w.set(ours, None if text is None else getattr(w.lookups, resolve)(text))
    return write


def _w_time(ours: str) -> Callable[[Any, Writer], None]:
    def write(value: Any, w: Writer) -> None:
        text = _plain(value)
        w.set(ours, None if text is None else c.parse_time(text))
    return write


def text(name: str, ours: str | None = None, *, attr: str | None = None, write: bool = True,
         required: bool = False, sortable: bool = True) -> Column:
    attr = attr or ours or name
    writer = None
    if write and ours:
        writer = _w_required_text(ours) if required else _w_text(ours)
    return Column(name, STRING, lambda r, _: getattr(r, attr), ours=ours, parse=lambda v, _: v, write=writer,
                  sortable=sortable)


def time(name: str, ours: str | None, *, attr: str | None = None, write: bool = False) -> Column:
    attr = attr or ours
    return Column(name, DATETIME, lambda r, _: getattr(r, attr), ours=ours, parse=lambda v, _: c.parse_time(v),
                  write=_w_time(ours) if write and ours else None)


def user_ref(name: str, ours: str | None, *, attr: str | None = None, write: bool = True,
             getter: Callable[[Any, Render], Any] | None = None) -> Column:
    attr = attr or ours
    return Column(name, REFERENCE, getter or (lambda r, _: getattr(r, attr)), ours=ours,
                  parse=lambda v, lk: c.parse_sys_id(v), ref="sys_user",
                  write=_w_ref(ours, "user") if write and ours else None)


def ci_ref(name: str, ours: str, *, write: bool = True) -> Column:
    return Column(name, REFERENCE, lambda r, _: getattr(r, ours), ours=ours, parse=lambda v, lk: c.parse_sys_id(v),
                  ref="cmdb_ci", write=_w_ref(ours, "ci") if write else None)


def group_ref(name: str = "assignment_group", ours: str = "assigned_group") -> Column:
    return Column(name, REFERENCE, lambda r, _: getattr(r, ours), ours=ours, parse=lambda v, lk: lk.group_name(v),
                  ref="sys_user_group", write=_w_ref(ours, "group_name"))


def choice(name: str, ours: str | None, labels: dict[str, str], code_of: Callable[[Any], str | None], *,
           code_expr: Callable[[str], Expr] | None = None, write: Callable[[Any, Writer], None] | None = None,
           empty_expr: Expr | None = None, sortable: bool = True) -> Column:
    return Column(name, CHOICE, lambda r, _: code_of(r), ours=ours, choices=labels,
                  code_expr=code_expr, empty_expr=empty_expr, write=write, sortable=sortable)


def enum_choice(name: str, ours: str, labels: dict[str, str], code_of: dict[Any, str], value_of: dict[str, Any], *,
                write: bool = True, nullable: bool = False) -> Column:
    def expr(code: str) -> Expr:
        return Cond(ours, EQ, value_of[code])
    return choice(name, ours, labels, lambda r: code_of.get(getattr(r, ours)) if getattr(r, ours) is not None else None,
                  code_expr=expr, write=_w_map(ours, value_of, nullable=nullable) if write else None,
                  empty_expr=Cond(ours, EMPTY) if nullable else None)


def boolean(name: str, get: Callable[[Any], bool | None], *, true_expr: Expr | None = None,
            false_expr: Expr | None = None) -> Column:
    def expr(code: str) -> Expr:
        if true_expr is None:
            raise QueryError(f"{name} cannot be queried", errors=[{"field": name, "message": "cannot be queried",
                                                                    "type": "unknown_field"}])
        return true_expr if code == "true" else false_expr
    return choice(name, None, {"true": "true", "false": "false"},
                  lambda r: None if get(r) is None else ("true" if get(r) else "false"), code_expr=expr,
                  sortable=False)


def system_columns(table: str, *, created: str = "created_at", updated: str = "updated_at",
                   domain: bool = True, created_by: bool = True) -> list[Column]:
    cols = [
        Column("sys_id", REFERENCE, lambda r, _: r.id, ours="id", parse=lambda v, _: c.parse_sys_id(v), ref=table),
        time("sys_created_on", created),
        time("sys_updated_on", updated),
        Column("sys_mod_count", INTEGER, lambda r, _: max(getattr(r, "version", 1) - 1, 0), ours="version",
               parse=lambda v, _: int(v) + 1),
        Column("sys_class_name", STRING, lambda r, _: table, sortable=False),
    ]
    if created_by:
        cols += [Column("sys_created_by", STRING, lambda r, rd: rd.login(r.created_by), sortable=False),
                 Column("sys_updated_by", STRING,
                        lambda r, rd: rd.login(getattr(r, "updated_by", None) or r.created_by), sortable=False)]
    if domain:
        cols.append(Column("sys_domain", STRING, lambda r, _: r.domain or "global", ours="domain",
                           parse=lambda v, _: v, sortable=True))
    return cols


# ---- tables --------------------------------------------------------------------------------------------

@dataclass
class Table:
    name: str
    label: str
    columns: dict[str, Column]
    query: Callable[..., tuple[list[Any], int | None]]
    get: Callable[[Session, Actor, uuid.UUID], Any]
    create: Callable[[Session, Actor, dict[str, Any], Lookups], Any] | None = None
    update: Callable[[Session, Actor, Any, dict[str, Any], Lookups, int | None], Any] | None = None
    delete: Callable[[Session, Actor, Any], None] | None = None
    base: Expr | None = None  # what every query of this table adds (a CI class table's classes)
    display: str = "number"
    # Accepted on write and not kept (documented): ServiceNow fields GaaS has no place for.
    ignored: frozenset[str] = frozenset()
    read_only_reason: str = ""

    def column(self, name: str) -> Column:
        col = self.columns.get(name)
        if col is None:
            if "." in name:
                raise QueryError(f"Dot-walked fields such as '{name}' are not supported.",
                                 errors=[{"field": name, "message": "dot-walking is not supported",
                                          "type": "unsupported_field"}])
            raise QueryError(f"The field '{name}' is not supported on table {self.name}.",
                             errors=[{"field": name, "message": f"not a field of {self.name} in GaaS",
                                      "type": "unknown_field"}])
        return col

    # ---- queries ----

    def condition(self, term: Term, lookups: Lookups) -> Expr:
        col = self.column(term.field)
        if term.op not in _KIND_OPS[col.kind]:
            raise QueryError(f"The operator {term.op} is not supported on {self.name}.{col.name}.",
                             errors=[{"field": col.name, "message": f"operator {term.op} is not supported on this "
                                      "field", "type": "unsupported_operator", "operator": term.op}])
        if col.kind == CHOICE:
            return self._choice(col, term)
        if col.ours is None or col.parse is None:
            raise QueryError(f"The field {self.name}.{col.name} cannot be queried in GaaS.",
                             errors=[{"field": col.name, "message": "cannot be queried", "type": "unsupported_field"}])
        op = _OPS[term.op]
        if op in (EMPTY, NOT_EMPTY):
            return Cond(col.ours, op)
        try:
            if op in (IN, NOT_IN):
                value: Any = [col.parse(v, lookups) for v in term.value.split(",") if v != ""]
            elif col.kind == BOOLEAN:
                value = c.parse_bool(term.value)
            else:
                value = col.parse(term.value, lookups)
        except ValueError as exc:
            raise QueryError(f"{self.name}.{col.name}: {exc}",
                             errors=[{"field": col.name, "message": str(exc), "type": "invalid_value"}]) from exc
        return Cond(col.ours, op, value)

    def _choice(self, col: Column, term: Term) -> Expr:
        codes = list(col.choices or {})
        if term.op in ("ISEMPTY", "ISNOTEMPTY"):
            empty = col.empty_expr or MATCH_NONE
            if term.op == "ISEMPTY":
                return empty
            return MATCH_ALL if col.empty_expr is None else AnyOf(tuple(col.code_expr(x) for x in codes))
        values = [v.strip() for v in term.value.split(",")] if term.op in ("IN", "NOT IN") else [term.value.strip()]
        if col.kind == CHOICE and codes == ["true", "false"]:
            values = ["true" if v.lower() in ("true", "1") else "false" if v.lower() in ("false", "0") else v
                      for v in values]
        if term.op in ("<", ">", "<=", ">="):
            try:
                bound = float(values[0])
                numeric = {x: float(x) for x in codes}
            except ValueError as exc:
                raise QueryError(f"{self.name}.{col.name}{term.op}{term.value}: compare with a number",
                                 errors=[{"field": col.name, "message": "compare with a number",
                                          "type": "invalid_value"}]) from exc
            test = {"<": bound.__gt__, ">": bound.__lt__, "<=": bound.__ge__, ">=": bound.__le__}[term.op]
            selected = [x for x in codes if test(numeric[x])]
        else:
            unknown = [v for v in values if v not in codes]
            if unknown:
                raise QueryError(f"{self.name}.{col.name}: '{unknown[0]}' is not one of {', '.join(codes)}.",
                                 errors=[{"field": col.name, "message": f"'{unknown[0]}' is not one of "
                                          f"{', '.join(codes)}", "type": "invalid_value"}])
            selected = values if term.op in ("=", "IN") else [x for x in codes if x not in values]
        parts = tuple({repr(e): e for e in (col.code_expr(x) for x in selected)}.values())
        expr: Expr = AnyOf(parts)
        if term.op in ("!=", "NOT IN") and col.empty_expr is not None:
            expr = AnyOf((*parts, col.empty_expr))  # ServiceNow's != keeps the empty ones
        return expr

    def where(self, query: Query, lookups: Lookups) -> Expr:
        alternatives = []
        for groups in query.queries:
            alternatives.append(All(tuple(
                self.condition(group[0], lookups) if len(group) == 1
                else AnyOf(tuple(self.condition(t, lookups) for t in group)) for group in groups)))
        expr: Expr = MATCH_ALL if not alternatives else alternatives[0] if len(alternatives) == 1 \
            else AnyOf(tuple(alternatives))
        if self.base is not None:
            expr = All((self.base, expr))
        return expr

    def order(self, query: Query) -> list[tuple[str, bool]]:
        out = []
        for name, descending in query.order:
            col = self.column(name)
            if not col.sortable or col.ours is None:
                raise QueryError(f"GaaS cannot order {self.name} by {name}.",
                                 errors=[{"field": name, "message": "cannot be ordered by", "type": "unsortable"}])
            out.append((col.ours, descending))
        return out

    # ---- writes ----

    def rename(self, problem: Problem) -> None:
        """Name ServiceNow's fields in a service's refusal (close_notes, not resolution_notes)."""
        names: dict[str, str] = {"domain": "sys_domain"}
        for col in self.columns.values():
            if col.ours and not col.ours.startswith("attributes.") and col.ours not in names:
                names[col.ours] = col.name
        for error in problem.errors:
            field_ = str(error.get("field", ""))
            if field_ in names:
                error["field"] = names[field_]
        for ours, theirs in sorted(names.items(), key=lambda kv: -len(kv[0])):
            problem.detail = problem.detail.replace(f"{ours}:", f"{theirs}:").replace(f"'{ours}'", f"'{theirs}'")
        problem.args = (problem.detail,)

    def translate(self, body: dict[str, Any], lookups: Lookups, *, creating: bool) -> Writer:
        if not isinstance(body, dict):
            raise WriteError("The body must be a JSON object of fields.", errors=[{"field": "body",
                                                                                   "message": "not an object",
                                                                                   "type": "invalid"}])
        writer = Writer(self.name, lookups)
        unknown = []
        for name, value in body.items():
            col = self.columns.get(name)
            if col is not None and col.write is not None:
                try:
                    col.write(value, writer)
                except ValueError as exc:
                    raise _write_error(self.name, name, str(exc)) from exc
            elif col is not None or name in self.ignored:
                continue  # read-only here (e.g. a record read and sent back whole), or accepted and not kept
            else:
                unknown.append(name)
        if unknown:
            raise WriteError(f"{self.name} in GaaS has no field(s) {', '.join(unknown)}.",
                             errors=[{"field": n, "message": f"not a field of {self.name} in GaaS",
                                      "type": "unknown_field"} for n in unknown])
        return writer


# ---- rendering -----------------------------------------------------------------------------------------

@dataclass
class Render:
    """One response's records as ServiceNow writes them, with the references it names looked up once."""

    db: Session
    actor: Actor
    base_url: str
    display: str = "false"  # false | true | all
    exclude_links: bool = False
    fields: list[str] | None = None
    users: dict[uuid.UUID, iam_queries.UserRef] = field(default_factory=dict)
    cis: dict[uuid.UUID, tuple[str, str, str]] = field(default_factory=dict)
    problems: dict[uuid.UUID, str] = field(default_factory=dict)
    extras: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)

    def login(self, user_id: uuid.UUID | None) -> str:
        if user_id is None:
            return ""
        if user_id == SYSTEM_USER_ID:
            return "system"
        ref = self.users.get(user_id)
        return ref.login if ref else user_id.hex

    def prepare(self, table: Table, records: list[Any]) -> None:
        ids = [r.id for r in records]
        if ids and table.name in ("incident", "problem", "change_request"):
            rows = self.db.execute(select(ExternalKey.target_id, ExternalKey.extra).where(
                ExternalKey.target_id.in_(ids), ExternalKey.extra != {}))
            self.extras = {row.target_id: row.extra for row in rows}
        columns = self._columns(table)
        wanted: dict[str, set[Any]] = {}
        for col in columns:
            if col.kind == REFERENCE and col.ref in ("sys_user", "cmdb_ci", "problem"):
                values = wanted.setdefault(col.ref, set())
                for record in records:
                    value = col.get(record, self)
                    if value is not None:
                        values.add(value)
        users = wanted.get("sys_user", set())
        users |= {getattr(r, "created_by", None) for r in records} | {getattr(r, "updated_by", None) for r in records}
        self.users = iam_queries.user_refs(self.db, [u for u in users if u is not None])
        if self.display != "false":
            self.cis = cmdb_queries.ci_labels(self.db, self.actor, list(wanted.get("cmdb_ci", ())))
            problem_ids = list(wanted.get("problem", ()))
            if problem_ids and self.actor.can_anywhere("problem.view"):
                rows, _ = incident_queries.query_problems(self.db, self.actor, where=Cond("id", IN, problem_ids),
                                                          limit=len(problem_ids), count=False)
                self.problems = {p.id: p.number for p in rows}

    def _columns(self, table: Table) -> list[Column]:
        if self.fields:
            return [table.columns[f] for f in self.fields if f in table.columns and not table.columns[f].hidden]
        return [col for col in table.columns.values() if not col.hidden]

    def _raw(self, col: Column, value: Any) -> str:
        if value is None:
            return ""
        if col.kind == REFERENCE:
            if isinstance(value, uuid.UUID):
                return value.hex
            if col.ref == "sys_user_group":
                return c.group_sys_id(value)
            if col.ref == "cmdb_rel_type":
                return c.rel_type_sys_id(value)
            return c.sys_id(value)
        if col.kind == DATETIME:
            return c.sn_time(value)
        if col.kind == BOOLEAN:
            return "true" if value else "false"
        return str(value)

    def _display(self, col: Column, value: Any) -> str:
        if value is None:
            return ""
        if col.kind == CHOICE:
            return (col.choices or {}).get(value, value)
        if col.kind == REFERENCE:
            if col.ref in ("sys_user_group", "cmdb_rel_type"):
                return value
            if col.ref == "sys_user":
                ref = self.users.get(value)
                return ref.name if ref else ""
            if col.ref == "cmdb_ci":
                label = self.cis.get(value)
                return label[1] if label else ""
            if col.ref == "problem":
                return self.problems.get(value, "")
            return c.sys_id(value)
        return self._raw(col, value)

    def link(self, table: str, value: str) -> str:
        return f"{self.base_url}/api/now/table/{table}/{value}"

    def record(self, table: Table, record: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for col in self._columns(table):
            value = col.get(record, self)
            raw = self._raw(col, value)
            if col.kind == REFERENCE and col.name != "sys_id":
                if raw == "":
                    out[col.name] = {"display_value": "", "value": ""} if self.display == "all" else ""
                    continue
                item: dict[str, str] = {}
                if self.display in ("true", "all"):
                    item["display_value"] = self._display(col, value)
                if not self.exclude_links and col.ref in TABLES:
                    item["link"] = self.link(col.ref, raw)
                if self.display in ("false", "all"):
                    item["value"] = raw
                if self.exclude_links and self.display != "all":
                    out[col.name] = item.get("value", item.get("display_value", ""))
                else:
                    out[col.name] = item
            elif self.display == "all":
                out[col.name] = {"display_value": self._display(col, value), "value": raw}
            elif self.display == "true":
                out[col.name] = self._display(col, value)
            else:
                out[col.name] = raw
        return out


def imported_target(db: Session, table: str, sys_id: str) -> uuid.UUID | None:
    """The GaaS record a ServiceNow sys_id was imported as (row-level security applies)."""
    family = "cmdb_ci" if table.startswith("cmdb_ci") and table != "cmdb_rel_ci" else table
    return db.scalar(select(ExternalKey.target_id).where(ExternalKey.source_table == family,
                                                         ExternalKey.sys_id == sys_id).limit(1))


# ---- shared write helpers -------------------------------------------------------------------------------

def _domain_of(actor: Actor, body: dict[str, Any], table: str, *, allow_global: bool = False) -> str | None:
    value = _plain(body.get("sys_domain"))
    if value is not None and value != "global":
        return value
    if value == "global" and allow_global:
        return None
    if actor.home_domain is not None:
        return actor.home_domain
    if allow_global:
        return None
    raise _write_error(table, "sys_domain", "a global user must say which domain the record belongs to (sys_domain)")


def _schema(table: str, model: type, values: dict[str, Any], names: dict[str, str]):
    """Validate through the owning module's schema; errors name the ServiceNow fields."""
    try:
        return model(**values)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            ours = ".".join(str(p) for p in err.get("loc", ())) or "body"
            errors.append({"field": names.get(ours, ours), "message": err.get("msg", "invalid"), "type": "invalid"})
        raise WriteError("; ".join(f"{table}.{e['field']}: {e['message']}" for e in errors), errors=errors) from exc


def _sn_names(table: Table) -> dict[str, str]:
    return {col.ours: col.name for col in table.columns.values() if col.ours and col.write is not None}


# ---- incident ------------------------------------------------------------------------------------------

OPEN = (IncidentStatus.new, IncidentStatus.in_progress)


def _incident_state(record: Incident) -> str:
    if record.status == IncidentStatus.in_progress and record.hold_reason:
        return "3"
    return c.INCIDENT_STATE_OF[record.status]


def _incident_state_expr(code: str) -> Expr:
    if code == "2":
        return All((Cond("status", EQ, IncidentStatus.in_progress), Cond("hold_reason", EMPTY)))
    if code == "3":
        return All((Cond("status", EQ, IncidentStatus.in_progress), Cond("hold_reason", NOT_EMPTY)))
    return Cond("status", EQ, c.INCIDENT_STATUS_OF[code])


def _w_incident_state(value: Any, w: Writer) -> None:
    code = _plain(value)
    if code not in c.INCIDENT_STATUS_OF:
        raise ValueError(f"'{code}' is not one of {', '.join(c.INCIDENT_STATES)}")
    w.set("status", c.INCIDENT_STATUS_OF[code])
    w.extra["on_hold"] = code == "3" if code in ("2", "3") else None


def _priority_expr(code: str) -> Expr:
    return Cond("priority", EQ, c.PRIORITY_OF[code])


def _caller(record: Any, r: Render) -> uuid.UUID | None:
    kept = r.extras.get(record.id, {}).get("caller_id")
    return uuid.UUID(kept) if kept else record.created_by


def incident_columns() -> dict[str, Column]:
    state = choice("state", "status", c.INCIDENT_STATES, _incident_state, code_expr=_incident_state_expr,
                   write=_w_incident_state)
    cols = [
        text("number", "number", write=False),
        text("short_description", "short_description", required=True),
        text("description", "description", sortable=False),
        state,
        Column("incident_state", CHOICE, state.get, ours="status", choices=c.INCIDENT_STATES,
               code_expr=_incident_state_expr, write=_w_incident_state),
        enum_choice("hold_reason", "hold_reason", c.HOLD_REASONS, c.HOLD_CODE_OF, c.HOLD_REASON_OF, nullable=True),
        enum_choice("impact", "impact", c.LEVELS, c.IMPACT_CODE_OF, c.IMPACT_OF),
        enum_choice("urgency", "urgency", c.LEVELS, c.URGENCY_CODE_OF, c.URGENCY_OF),
        choice("priority", "priority", c.PRIORITIES, lambda r: c.PRIORITY_CODE_OF[r.priority],
               code_expr=_priority_expr, write=_w_map("priority", c.PRIORITY_OF)),
        text("category", "category"),
        text("subcategory", "subcategory"),
        user_ref("assigned_to", "assigned_to"),
        group_ref(),
        ci_ref("cmdb_ci", "ci_id"),
        Column("problem_id", REFERENCE, lambda r, _: r.problem_id, ours="problem_id",
               parse=lambda v, lk: c.parse_sys_id(v), ref="problem", write=_w_ref("problem_id", "problem")),
        user_ref("caller_id", None, write=False, getter=_caller),
        user_ref("opened_by", "created_by", write=False),
        time("opened_at", "created_at"),
        text("close_notes", "resolution_notes", sortable=False),
        user_ref("resolved_by", "resolved_by", write=False),
        time("resolved_at", "resolved_at"),
        user_ref("closed_by", "closed_by", write=False),
        time("closed_at", "closed_at"),
        time("sla_due", "sla_due"),
        boolean("made_sla", lambda r: not r.sla_breached, true_expr=Cond("sla_breached", EQ, False),
                false_expr=Cond("sla_breached", EQ, True)),
        boolean("active", lambda r: r.status in OPEN, true_expr=Cond("status", IN, list(OPEN)),
                false_expr=Cond("status", NOT_IN, list(OPEN))),
        *system_columns("incident"),
    ]
    return {col.name: col for col in cols}


def shortest_walk(current: Any, goal: Any, moves: dict[Any, Any]) -> list[Any]:
    """The shortest walk from `current` to `goal` that a module's own transition table (`moves`:
    status -> the statuses it may move to) allows, one move at a time: ServiceNow moves a record in
    one step where we go through each state, audited. When there is none, the goal itself, for the
    module to refuse with its reason."""
    from collections import deque

    if goal is None or goal == current:
        return []
    came_from: dict[Any, Any] = {current: None}
    queue = deque([current])
    while queue:
        status = queue.popleft()
        for following in sorted(moves.get(status, ()), key=lambda s: s.value):
            if following not in came_from:
                came_from[following] = status
                queue.append(following)
    if goal not in came_from:
        return [goal]
    path = []
    while goal != current:
        path.append(goal)
        goal = came_from[goal]
    return path[::-1]


def apply_incident(db: Session, actor: Actor, incident: Incident, changes: dict[str, Any], *,
                   on_hold: bool | None, if_match: int | None = None, at: datetime | None = None,
                   times: dict[IncidentStatus, datetime] | None = None) -> Incident:
    """Apply field changes and walk the lifecycle to the requested state, one legal step at a time,
    each through incidents.service.update_incident. `on_hold`: state 3 (True) or 2 (False) was asked."""
    changes = dict(changes)
    target = changes.pop("status", None)
    hold = changes.pop("hold_reason", ...)
    if hold is ... and on_hold is True:
        hold = incident.hold_reason or "awaiting_caller"
    elif hold is ... and on_hold is False:
        hold = None
    notes = changes.pop("resolution_notes", ...)
    steps: list[IncidentStatus | None] = list(shortest_walk(incident.status, target, incidents.TRANSITIONS))
    steps = steps or [None]
    version = if_match if if_match is not None else incident.version
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        values: dict[str, Any] = dict(changes) if index == 0 else {}
        if step is not None:
            values["status"] = step
        if notes is not ... and (last or step in (IncidentStatus.resolved, IncidentStatus.closed)):
            values["resolution_notes"], notes = notes, ...
        if last and hold is not ... and (step or incident.status) == IncidentStatus.in_progress:
            values["hold_reason"] = hold
        if values:
            values["version"] = version
            data = _schema("incident", IncidentUpdate, values, _sn_names(TABLES["incident"]))
            when = (times or {}).get(step, at) if step is not None else at
            incident = incidents.update_incident(db, actor, incident.id, data, None, at=when)
            version = incident.version
    return incident


def create_incident(db: Session, actor: Actor, body: dict[str, Any], lookups: Lookups, *,
                    opened_at: datetime | None = None,
                    times: dict[IncidentStatus, datetime] | None = None) -> Incident:
    table = TABLES["incident"]
    w = table.translate(body, lookups, creating=True)
    values = dict(w.changes)
    later = {k: values.pop(k) for k in ("status", "hold_reason", "resolution_notes") if k in values}
    values.setdefault("impact", Impact.low)
    values.setdefault("urgency", Urgency.low)
    values["domain"] = _domain_of(actor, body, "incident")
    data = _schema("incident", IncidentCreate, values, {**_sn_names(table), "domain": "sys_domain"})
    incident = incidents.create_incident(db, actor, data, opened_at=opened_at)
    if later:
        incident = apply_incident(db, actor, incident, later, on_hold=w.extra.get("on_hold"), at=opened_at,
                                  times=times)
    return incident


def update_incident(db: Session, actor: Actor, incident: Incident, body: dict[str, Any], lookups: Lookups,
                    if_match: int | None) -> Incident:
    w = TABLES["incident"].translate(body, lookups, creating=False)
    return apply_incident(db, actor, incident, w.changes, on_hold=w.extra.get("on_hold"), if_match=if_match)


# ---- problem -------------------------------------------------------------------------------------------

def problem_columns() -> dict[str, Column]:
    cols = [
        text("number", "number", write=False),
        text("short_description", "short_description", required=True),
        text("description", "description", sortable=False),
        enum_choice("state", "status", c.PROBLEM_STATES, c.PROBLEM_STATE_OF, c.PROBLEM_STATUS_OF),
        enum_choice("problem_state", "status", c.PROBLEM_STATES, c.PROBLEM_STATE_OF, c.PROBLEM_STATUS_OF),
        choice("priority", "priority", c.PRIORITIES, lambda r: c.PRIORITY_CODE_OF[r.priority],
               code_expr=_priority_expr, write=_w_map("priority", c.PRIORITY_OF)),
        user_ref("assigned_to", "assigned_to"),
        group_ref(),
        ci_ref("cmdb_ci", "ci_id"),
        text("cause_notes", "root_cause", sortable=False),
        text("workaround", "workaround", sortable=False),
        text("fix_notes", "permanent_fix", sortable=False),
        boolean("known_error", lambda r: r.known_error, true_expr=Cond("workaround", NOT_EMPTY),
                false_expr=Cond("workaround", EMPTY)),
        user_ref("opened_by", "created_by", write=False),
        time("opened_at", "created_at"),
        user_ref("resolved_by", "resolved_by", write=False),
        time("resolved_at", "resolved_at"),
        user_ref("closed_by", "closed_by", write=False),
        time("closed_at", "closed_at"),
        boolean("active", lambda r: r.status not in (ProblemStatus.resolved, ProblemStatus.closed),
                true_expr=Cond("status", NOT_IN, [ProblemStatus.resolved, ProblemStatus.closed]),
                false_expr=Cond("status", IN, [ProblemStatus.resolved, ProblemStatus.closed])),
        *system_columns("problem"),
    ]
    return {col.name: col for col in cols}


def apply_problem(db: Session, actor: Actor, problem: ProblemRecord, changes: dict[str, Any], *,
                  if_match: int | None = None, at: datetime | None = None,
                  times: dict[ProblemStatus, datetime] | None = None) -> ProblemRecord:
    changes = dict(changes)
    target = changes.pop("status", None)
    steps = shortest_walk(problem.status, target, problems.TRANSITIONS)
    version = if_match if if_match is not None else problem.version
    for index, step in enumerate(steps or [None]):
        values: dict[str, Any] = dict(changes) if index == 0 else {}
        if step is not None:
            values["status"] = step
        if values:
            values["version"] = version
            data = _schema("problem", ProblemUpdate, values, _sn_names(TABLES["problem"]))
            when = (times or {}).get(step, at) if step is not None else at
            problem, _ = problems.update_problem(db, actor, problem.id, data, None, at=when)
            version = problem.version
    return problem


def create_problem(db: Session, actor: Actor, body: dict[str, Any], lookups: Lookups, *,
                   at: datetime | None = None, times: dict[ProblemStatus, datetime] | None = None) -> ProblemRecord:
    table = TABLES["problem"]
    w = table.translate(body, lookups, creating=True)
    values = dict(w.changes)
    target = values.pop("status", None)
    values.setdefault("priority", Priority.low)
    values["domain"] = _domain_of(actor, body, "problem")
    data = _schema("problem", ProblemCreate, values, {**_sn_names(table), "domain": "sys_domain"})
    problem = problems.create_problem(db, actor, data)
    if target is not None:
        problem = apply_problem(db, actor, problem, {"status": target}, at=at, times=times)
    return problem


def update_problem(db: Session, actor: Actor, problem: ProblemRecord, body: dict[str, Any], lookups: Lookups,
                   if_match: int | None) -> ProblemRecord:
    w = TABLES["problem"].translate(body, lookups, creating=False)
    return apply_problem(db, actor, problem, w.changes, if_match=if_match)


# ---- change_request ------------------------------------------------------------------------------------

def _w_change_state(value: Any, w: Writer) -> None:
    code = _plain(value)
    if code not in c.CHANGE_STATUS_OF:
        raise ValueError(f"'{code}' is not one of {', '.join(c.CHANGE_STATES)}")
    w.set("status", c.CHANGE_STATUS_OF[code])


def _change_state_expr(code: str) -> Expr:
    return Cond("status", IN, [s for s, x in c.CHANGE_STATE_OF.items() if x == code])


def _w_approval(value: Any, w: Writer) -> None:
    text_ = _plain(value)
    if text_ not in ("approved", "rejected"):
        raise ValueError("only 'approved' or 'rejected' can be written")
    w.set("status", ChangeStatus(text_))


def _approval_expr(code: str) -> Expr:
    status = {v: k for k, v in c.APPROVAL_OF.items()}[code]
    return Cond("approval_status", EMPTY) if status is None else Cond("approval_status", EQ, status)


def _w_close_code(value: Any, w: Writer) -> None:
    code = _plain(value)
    if code is None:
        w.set("success", None)
        return
    if code not in c.CLOSE_CODES:
        raise ValueError(f"'{code}' is not one of {', '.join(c.CLOSE_CODES)}")
    w.set("success", code != "unsuccessful")


def _w_change_ci(value: Any, w: Writer) -> None:
    text_ = _plain(value)
    w.extra["cmdb_ci"] = None if text_ is None else w.lookups.ci(text_)


def change_columns() -> dict[str, Column]:
    cols = [
        text("number", "number", write=False),
        text("short_description", "short_description", required=True),
        text("description", "description", sortable=False),
        choice("type", "type", c.CHANGE_TYPES, lambda r: r.type.value, code_expr=lambda x: Cond("type", EQ, x),
               write=_w_map("type", {t.value: t for t in ChangeType})),
        choice("state", "status", c.CHANGE_STATES, lambda r: c.CHANGE_STATE_OF[r.status],
               code_expr=_change_state_expr, write=_w_change_state),
        choice("approval", None, c.APPROVALS, lambda r: c.APPROVAL_OF.get(r.approval_status, "not requested"),
               code_expr=_approval_expr, write=_w_approval, sortable=False),
        choice("risk", "risk", c.RISKS, lambda r: c.RISK_CODE_OF[r.risk],
               code_expr=lambda x: Cond("risk", EQ, c.RISK_OF[x]), write=_w_map("risk", c.RISK_OF)),
        user_ref("requested_by", "requested_by"),
        user_ref("assigned_to", "assigned_to"),
        Column("cmdb_ci", REFERENCE, lambda r, _: (r.affected_cis or [None])[0], ours="affected_cis",
               parse=lambda v, lk: c.parse_sys_id(v), ref="cmdb_ci", write=_w_change_ci, sortable=False),
        time("start_date", "planned_start", write=True),
        time("end_date", "planned_end", write=True),
        time("work_start", "actual_start"),
        time("work_end", "actual_end"),
        text("implementation_plan", "implementation_plan", sortable=False),
        text("backout_plan", "rollback_plan", sortable=False),
        text("test_plan", "test_plan", sortable=False),
        text("close_notes", "implementation_notes", sortable=False),
        choice("close_code", None, c.CLOSE_CODES,
               lambda r: None if r.success is None else ("successful" if r.success else "unsuccessful"),
               code_expr=lambda x: Cond("success", EQ, x != "unsuccessful"), write=_w_close_code,
               empty_expr=Cond("success", EMPTY), sortable=False),
        time("closed_at", "closed_at"),
        user_ref("opened_by", "created_by", write=False),
        time("opened_at", "created_at"),
        boolean("active", lambda r: r.status not in (ChangeStatus.closed, ChangeStatus.cancelled),
                true_expr=Cond("status", NOT_IN, [ChangeStatus.closed, ChangeStatus.cancelled]),
                false_expr=Cond("status", IN, [ChangeStatus.closed, ChangeStatus.cancelled])),
        *system_columns("change_request"),
    ]
    return {col.name: col for col in cols}


def _change_values(change: Change | None, w: Writer) -> dict[str, Any]:
    values = dict(w.changes)
    if "cmdb_ci" in w.extra:
        current = list(change.affected_cis or []) if change is not None else []
        ci = w.extra["cmdb_ci"]
        values["affected_cis"] = ([ci] + [x for x in current if x != ci]) if ci is not None else current[1:]
    return values


def create_change(db: Session, actor: Actor, body: dict[str, Any], lookups: Lookups) -> Change:
    table = TABLES["change_request"]
    w = table.translate(body, lookups, creating=True)
    values = _change_values(None, w)
    target = values.pop("status", None)
    values.pop("success", None)
    values.setdefault("type", ChangeType.normal)
    values["domain"] = _domain_of(actor, body, "change_request")
    data = _schema("change_request", ChangeCreate, values, {**_sn_names(table), "domain": "sys_domain"})
    change = changes.create_change(db, actor, data)
    if target is not None and target != change.status:
        change = changes.update_change(db, actor, change.id, ChangeUpdate(status=target, version=change.version), None)
    return change


def update_change(db: Session, actor: Actor, change: Change, body: dict[str, Any], lookups: Lookups,
                  if_match: int | None) -> Change:
    table = TABLES["change_request"]
    w = table.translate(body, lookups, creating=False)
    values = _change_values(change, w)
    values["version"] = if_match if if_match is not None else change.version
    data = _schema("change_request", ChangeUpdate, values, _sn_names(table))
    return changes.update_change(db, actor, change.id, data, None)


# ---- CMDB ----------------------------------------------------------------------------------------------

# ServiceNow field -> CI attribute (and how its value converts).
CI_ATTRIBUTES: dict[str, tuple[str, Callable[[str], Any], Callable[[Any], str]]] = {
    "host_name": ("hostname", str, str),
    "fqdn": ("fqdn", str, str),
    "ip_address": ("ip", str, str),
    "serial_number": ("serial_number", str, str),
    "os": ("os", str, str),
    "cpu_count": ("cpu_cores", int, str),
    "ram": ("ram_gb", lambda v: round(float(v) / 1024, 3), lambda gb: str(round(float(gb) * 1024))),
    "location": ("location", str, str),
    "version": ("version", str, str),
    "tcp_port": ("port", int, str),
    "model_id": ("model", str, str),
}
ATTRIBUTE_FIELDS = {attr: name for name, (attr, _, _) in CI_ATTRIBUTES.items()}


def _ci_attribute(name: str) -> Column:
    attr, to_ours, to_sn = CI_ATTRIBUTES[name]

    def get(record: ConfigurationItem, _: Render) -> Any:
        value = (record.attributes or {}).get(attr)
        return None if value is None else to_sn(value)

    def write(value: Any, w: Writer) -> None:
        text_ = _plain(value)
        w.extra.setdefault("attributes", {})[attr] = None if text_ is None else to_ours(text_)

    return Column(name, STRING, get, ours=f"attributes.{attr}", parse=lambda v, _: v, write=write)


def _w_install(mapping: dict[str, Any]) -> Callable[[Any, Writer], None]:
    def write(value: Any, w: Writer) -> None:
        code = _plain(value)
        if code not in mapping:
            raise ValueError(f"'{code}' is not one of {', '.join(mapping)}")
        w.set("status", mapping[code])
    return write


def _w_used_for(value: Any, w: Writer) -> None:
    text_ = _plain(value)
    match = {k.lower(): v for k, v in c.USED_FOR.items()}.get((text_ or "").lower())
    if match is None:
        raise ValueError(f"'{text_}' is not one of {', '.join(c.USED_FOR)}")
    w.set("environment", match)


def _w_class(value: Any, w: Writer) -> None:
    text_ = _plain(value)
    if text_ not in c.CLASS_ALIASES:
        raise ValueError(f"'{text_}' is not a class GaaS maps (e.g. {', '.join(list(c.CLASS_TABLES)[:4])}, ...)")
    w.extra["ci_class"] = c.CLASS_ALIASES[text_]
    w.extra["sn_class"] = text_


def _source_name(value: str) -> str:
    """ServiceNow's discovery sources ("ServiceNow", "SCCM", "Service Mapping") as GaaS source names."""
    name = re.sub(r"[^a-z0-9_.-]+", "-", value.strip().lower()).strip("-._")
    return name[:100] or "servicenow"


def _w_source(value: Any, w: Writer) -> None:
    text_ = _plain(value)
    w.set("discovered_by", None if text_ is None else _source_name(text_))


def _status_codes(mapping: dict[Any, str]) -> Callable[[str], Expr]:
    def expr(code: str) -> Expr:
        return Cond("status", IN, [s for s, x in mapping.items() if x == code])
    return expr


def ci_columns(table: str) -> dict[str, Column]:
    cols = [
        text("name", "name", required=True),
        Column("sys_class_name", STRING, lambda r, _: c.TABLE_OF_CLASS.get(r.ci_class, "cmdb_ci"), ours="ci_class",
               parse=lambda v, _: c.CLASS_ALIASES.get(v, v), write=_w_class),
        text("asset_tag", None, attr="number", write=False),
        choice("install_status", "status", c.INSTALL_STATUSES, lambda r: c.INSTALL_STATUS_OF[r.status],
               code_expr=_status_codes(c.INSTALL_STATUS_OF), write=_w_install(c.CI_STATUS_OF_INSTALL)),
        choice("operational_status", "status", c.OPERATIONAL_STATUSES, lambda r: c.OPERATIONAL_STATUS_OF[r.status],
               code_expr=_status_codes(c.OPERATIONAL_STATUS_OF), write=_w_install(c.CI_STATUS_OF_OPERATIONAL)),
        choice("used_for", "environment", {v: v for v in c.USED_FOR}, lambda r: c.USED_FOR_OF[r.environment],
               code_expr=lambda x: Cond("environment", EQ, c.USED_FOR[x]), write=_w_used_for),
        user_ref("owned_by", "owner_id"),
        user_ref("managed_by", "managed_by"),
        Column("discovery_source", STRING, lambda r, _: r.discovered_by, ours="discovered_by",
               parse=lambda v, _: _source_name(v), write=_w_source),
        time("last_discovered", "last_discovered_at", write=True),
        *(_ci_attribute(name) for name in CI_ATTRIBUTES),
    ]
    # A CI's sys_class_name is its own class's table, not the table it was read from.
    cols += [col for col in system_columns(table) if col.name != "sys_class_name"]
    return {col.name: col for col in cols}


def _ci_get(db: Session, actor: Actor, ci_id: uuid.UUID) -> ConfigurationItem:
    return cmdb.get_ci(db, actor, ci_id, include_deleted=False)


def _ci_attributes(current: dict[str, Any], w: Writer) -> dict[str, Any] | None:
    given = w.extra.get("attributes")
    if given is None:
        return None
    merged = dict(current)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def ci_create_values(actor: Actor, body: dict[str, Any], w: Writer, table: str) -> dict[str, Any]:
    values = dict(w.changes)
    ci_class = w.extra.get("ci_class") or c.CLASS_TABLES.get(table)
    if ci_class is None:
        raise _write_error(table, "sys_class_name", "say which class the CI is (e.g. cmdb_ci_server), or post to "
                           "that class's table")
    attributes = _ci_attributes({}, w) or {}
    if ci_class == "database" and "engine" not in attributes:
        attributes["engine"] = c.DATABASE_ENGINES.get(w.extra.get("sn_class", ""), "unknown")
    if ci_class in ("server", "virtual_machine", "network_device", "load_balancer") and "hostname" not in attributes:
        attributes["hostname"] = values.get("name") or ""
    if ci_class == "container_cluster" and "cluster_id" not in attributes:
        attributes["cluster_id"] = values.get("name") or ""
    values.update(ci_class=ci_class, attributes=attributes)
    values.setdefault("environment", Environment.production)
    values.setdefault("owner_id", actor.user_id)
    values["domain"] = _domain_of(actor, body, table, allow_global=True)
    return values


def create_ci(db: Session, actor: Actor, body: dict[str, Any], lookups: Lookups, table: str) -> ConfigurationItem:
    spec = TABLES[table]
    w = spec.translate(body, lookups, creating=True)
    values = ci_create_values(actor, body, w, table)
    data = _schema(table, CICreate, values, {**_sn_names(spec), "domain": "sys_domain", "attributes": "attributes"})
    return cmdb.create_ci(db, actor, data)


def update_ci(db: Session, actor: Actor, ci: ConfigurationItem, body: dict[str, Any], lookups: Lookups,
              if_match: int | None, table: str) -> ConfigurationItem:
    spec = TABLES[table]
    w = spec.translate(body, lookups, creating=False)
    values = dict(w.changes)
    values.pop("ci_class", None)
    if "ci_class" in w.extra and w.extra["ci_class"] != ci.ci_class:
        raise _write_error(table, "sys_class_name", "a CI's class cannot change in GaaS")
    attributes = _ci_attributes(ci.attributes or {}, w)
    if attributes is not None:
        values["attributes"] = attributes
    values["version"] = if_match if if_match is not None else ci.version
    data = _schema(table, CIUpdate, values, _sn_names(spec))
    return cmdb.update_ci(db, actor, ci.id, data, None)


# ---- cmdb_rel_ci ---------------------------------------------------------------------------------------

def _parent(rel: CIRelationship) -> uuid.UUID:
    return rel.target_ci_id if rel.relationship_type in c.PARENT_IS_TARGET else rel.source_ci_id


def _child(rel: CIRelationship) -> uuid.UUID:
    return rel.source_ci_id if rel.relationship_type in c.PARENT_IS_TARGET else rel.target_ci_id


def _end_expr(parent: bool) -> Callable[[str, Any], Expr]:
    forward = [t for t in CIRelationshipType if t not in c.PARENT_IS_TARGET]
    backward = list(c.PARENT_IS_TARGET)

    def expr(op: str, value: Any) -> Expr:
        first, second = ("source_ci_id", "target_ci_id") if parent else ("target_ci_id", "source_ci_id")
        return AnyOf((All((Cond(first, op, value), Cond("relationship_type", IN, forward))),
                      All((Cond(second, op, value), Cond("relationship_type", IN, backward)))))
    return expr


class _RelTable(Table):
    def condition(self, term: Term, lookups: Lookups) -> Expr:
        if term.field in ("parent", "child"):
            base = super().condition(Term("sys_id", term.op, term.value), lookups)
            if not isinstance(base, Cond):
                raise QueryError("unsupported")
            return _end_expr(term.field == "parent")(base.op, base.value)
        return super().condition(term, lookups)


def resolve_rel_type(value: str) -> tuple[CIRelationshipType, bool]:
    """A relationship type by ServiceNow name ("Depends on::Used by") or its sys_id."""
    text_ = value.strip()
    name = c.REL_TYPE_BY_SYS_ID.get(text_.replace("-", "").lower(), text_)
    if name not in c.REL_TYPE_ALIASES:
        raise ValueError(f"unknown relationship type '{text_}' (e.g. {', '.join(list(c.REL_TYPE_NAMES.values())[:3])})")
    return c.REL_TYPE_ALIASES[name]


def _rel_type_expr(code: str) -> Expr:
    kind, _ = c.REL_TYPE_ALIASES[code]
    return Cond("relationship_type", EQ, kind)


def rel_columns() -> dict[str, Column]:
    cols = [
        Column("parent", REFERENCE, lambda r, _: _parent(r), ref="cmdb_ci", ours="source_ci_id",
               parse=lambda v, _: c.parse_sys_id(v), write=_w_ref("parent", "ci"), sortable=False),
        Column("child", REFERENCE, lambda r, _: _child(r), ref="cmdb_ci", ours="target_ci_id",
               parse=lambda v, _: c.parse_sys_id(v), write=_w_ref("child", "ci"), sortable=False),
        Column("type", REFERENCE, lambda r, _: c.REL_TYPE_NAMES[r.relationship_type], ref="cmdb_rel_type",
               ours="relationship_type", parse=lambda v, _: resolve_rel_type(v)[0], write=_w_text("type"),
               sortable=True),
        text("description", "description", sortable=False),
        *[col for col in system_columns("cmdb_rel_ci", domain=False) if col.name not in ("sys_updated_on",)],
        Column("sys_updated_on", DATETIME, lambda r, _: r.created_at, ours="created_at",
               parse=lambda v, _: c.parse_time(v)),
    ]
    return {col.name: col for col in cols}


def create_relationship(db: Session, actor: Actor, body: dict[str, Any], lookups: Lookups) -> CIRelationship:
    w = TABLES["cmdb_rel_ci"].translate(body, lookups, creating=True)
    missing = [n for n in ("parent", "child", "type") if w.changes.get(n) is None]
    if missing:
        raise WriteError(f"cmdb_rel_ci needs {', '.join(missing)}.",
                         errors=[{"field": n, "message": "required", "type": "missing"} for n in missing])
    try:
        kind, parent_is_source = resolve_rel_type(w.changes["type"])
    except ValueError as exc:
        raise _write_error("cmdb_rel_ci", "type", str(exc)) from exc
    parent, child = w.changes["parent"], w.changes["child"]
    source, target = (parent, child) if parent_is_source else (child, parent)
    data = _schema("cmdb_rel_ci", CIRelationshipCreate,
                   {"source_ci_id": source, "target_ci_id": target, "relationship_type": kind,
                    "description": w.changes.get("description")},
                   {"source_ci_id": "parent", "target_ci_id": "child", "relationship_type": "type"})
    return cmdb.create_relationship(db, actor, data)


def _rel_get(db: Session, actor: Actor, rel_id: uuid.UUID) -> CIRelationship:
    rel = cmdb_queries.get_relationship(db, actor, rel_id)
    if rel is None:
        raise NotFound(f"No relationship {rel_id}.")
    return rel


# ---- sys_user --------------------------------------------------------------------------------------------

def _first_name(user: User) -> str:
    return user.name.split(" ", 1)[0]


def _last_name(user: User) -> str:
    parts = user.name.split(" ", 1)
    return parts[1] if len(parts) > 1 else ""


def _w_active(value: Any, w: Writer) -> None:
    w.set("status", UserStatus.active if c.parse_bool(_plain(value) or "false") else UserStatus.inactive)


def user_columns() -> dict[str, Column]:
    cols = [
        Column("user_name", STRING, lambda r, _: r.username or r.email, ours="username", parse=lambda v, _: v.lower(),
               write=_w_text("username")),
        text("name", "name", required=True),
        Column("first_name", STRING, lambda r, _: _first_name(r), sortable=False),
        Column("last_name", STRING, lambda r, _: _last_name(r), sortable=False),
        Column("email", STRING, lambda r, _: r.email, ours="email", parse=lambda v, _: v.lower(),
               write=_w_text("email")),
        choice("active", "status", {"true": "true", "false": "false"},
               lambda r: "true" if r.status == UserStatus.active else "false",
               code_expr=lambda x: Cond("status", EQ if x == "true" else NE, UserStatus.active), write=_w_active,
               sortable=False),
        boolean("locked_out", lambda r: bool(r.locked_until and r.locked_until > datetime.now(UTC))),
        text("phone", "phone"),
        text("time_zone", "timezone"),
        text("preferred_language", "language"),
        time("last_login_time", "last_login_at"),
        Column("user_password", STRING, lambda r, _: None, write=_w_text("password"), sortable=False, hidden=True),
        *system_columns("sys_user"),
    ]
    return {col.name: col for col in cols}


def create_user(db: Session, actor: Actor, body: dict[str, Any], lookups: Lookups) -> User:
    table = TABLES["sys_user"]
    w = table.translate(body, lookups, creating=True)
    values = dict(w.changes)
    values["domain"] = _domain_of(actor, body, "sys_user", allow_global=True)
    data = _schema("sys_user", UserCreate, values, {**_sn_names(table), "domain": "sys_domain"})
    return iam.create_user(db, actor, data)


def update_user(db: Session, actor: Actor, user: User, body: dict[str, Any], lookups: Lookups,
                if_match: int | None) -> User:
    table = TABLES["sys_user"]
    w = table.translate(body, lookups, creating=False)
    values = dict(w.changes)
    if "password" in values:
        raise _write_error("sys_user", "user_password", "set passwords through GaaS (POST /api/v1/users/{id}/password)")
    values["version"] = if_match if if_match is not None else user.version
    data = _schema("sys_user", UserUpdate, values, _sn_names(table))
    return iam.update_user(db, actor, user.id, data, None)


# ---- sys_user_group (read-only: the assignment group names in use) --------------------------------------------

@dataclass(frozen=True)
class Group:
    name: str

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(c.group_sys_id(self.name))


def group_columns() -> dict[str, Column]:
    cols = [
        Column("sys_id", REFERENCE, lambda r, _: r.id, ours="id", parse=lambda v, _: c.parse_sys_id(v),
               ref="sys_user_group"),
        Column("name", STRING, lambda r, _: r.name, ours="name", parse=lambda v, _: v),
        Column("active", BOOLEAN, lambda r, _: True),
        Column("sys_class_name", STRING, lambda r, _: "sys_user_group", sortable=False),
    ]
    return {col.name: col for col in cols}


def _matches(expr: Expr, values: dict[str, Any]) -> bool:
    """Evaluate an expression over one in-memory row (groups are few and computed)."""
    if isinstance(expr, All):
        return all(_matches(p, values) for p in expr.parts)
    if isinstance(expr, AnyOf):
        return any(_matches(p, values) for p in expr.parts)
    value = values.get(expr.field)
    op, given = expr.op, expr.value
    low = str(value or "").lower()
    checks: dict[str, Callable[[], bool]] = {
        EQ: lambda: value == given, NE: lambda: value != given, IN: lambda: value in given,
        NOT_IN: lambda: value not in given, EMPTY: lambda: not value, NOT_EMPTY: lambda: bool(value),
        CONTAINS: lambda: str(given).lower() in low, NOT_CONTAINS: lambda: str(given).lower() not in low,
        STARTSWITH: lambda: low.startswith(str(given).lower()), ENDSWITH: lambda: low.endswith(str(given).lower()),
        LT: lambda: value < given, GT: lambda: value > given, LE: lambda: value <= given, GE: lambda: value >= given,
    }
    return checks[op]()


def _query_groups(db: Session, actor: Actor, *, where: Expr | None = None, order: Iterable = (), offset: int = 0,
                  limit: int = 50, count: bool = True) -> tuple[list[Group], int | None]:
    groups = [Group(n) for n in incident_queries.assignment_groups(db, actor)]
    rows = [g for g in groups if where is None or _matches(where, {"id": g.id, "name": g.name})]
    for name, descending in reversed(list(order)):
        rows.sort(key=lambda g, n=name: str(getattr(g, n)), reverse=descending)
    return rows[offset: offset + limit], len(rows)


def _group_get(db: Session, actor: Actor, group_id: uuid.UUID) -> Group:
    for name in incident_queries.assignment_groups(db, actor):
        if Group(name).id == group_id:
            return Group(name)
    raise NotFound(f"No assignment group {group_id.hex}.")


# ---- kb_knowledge -----------------------------------------------------------------------------------------

def kb_columns() -> dict[str, Column]:
    cols = [
        text("number", "number", write=False),
        text("short_description", "title", required=True),
        Column("text", STRING, lambda r, _: r.body_html, ours="body", parse=lambda v, _: v,
               write=_w_html_as_markdown("body"), sortable=False),
        text("description", "summary", sortable=False),
        choice("workflow_state", "status", c.WORKFLOW_STATES, lambda r: c.WORKFLOW_STATE_OF[r.status],
               code_expr=lambda x: Cond("status", EQ, x)),
        text("kb_category", "category"),
        Column("meta", STRING, lambda r, _: ", ".join(r.keywords or []), sortable=False,
               write=lambda v, w: w.set("keywords", [k.strip() for k in (_plain(v) or "").split(",") if k.strip()])),
        user_ref("author", "author_id", write=False),
        time("valid_to", "valid_to", write=True),
        time("published", "published_at"),
        boolean("active", lambda r: r.status.value == "published"),
        *system_columns("kb_knowledge"),
    ]
    return {col.name: col for col in cols}


def create_article(db: Session, actor: Actor, body: dict[str, Any], lookups: Lookups) -> Article:
    table = TABLES["kb_knowledge"]
    w = table.translate(body, lookups, creating=True)
    values = dict(w.changes)
    values["domain"] = _domain_of(actor, body, "kb_knowledge", allow_global=True)
    data = _schema("kb_knowledge", ArticleCreate, values, {**_sn_names(table), "domain": "sys_domain"})
    return knowledge.create_article(db, actor, data)


def update_article(db: Session, actor: Actor, article: Article, body: dict[str, Any], lookups: Lookups,
                   if_match: int | None) -> Article:
    table = TABLES["kb_knowledge"]
    w = table.translate(body, lookups, creating=False)
    values = dict(w.changes)
    values["version"] = if_match if if_match is not None else article.version
    data = _schema("kb_knowledge", ArticleUpdate, values, _sn_names(table))
    return knowledge.update_article(db, actor, article.id, data, None)


# ---- the tables ---------------------------------------------------------------------------------------------

def _deleter(fn: Callable[..., Any]) -> Callable[[Session, Actor, Any], None]:
    def delete(db: Session, actor: Actor, record: Any) -> None:
        fn(db, actor, record.id, None)
    return delete


def _ci_table(name: str, label: str, ci_class: str | None) -> Table:
    return Table(
        name, label, ci_columns(name), query=cmdb_queries.query_cis, get=_ci_get,
        create=lambda db, a, body, lk: create_ci(db, a, body, lk, name),
        update=lambda db, a, rec, body, lk, im: update_ci(db, a, rec, body, lk, im, name),
        delete=_deleter(cmdb.delete_ci), base=Cond("ci_class", EQ, ci_class) if ci_class else None, display="name",
        ignored=frozenset({"asset", "company", "support_group", "assigned_to", "comments", "short_description",
                           "category", "subcategory", "manufacturer", "model_number", "sys_tags"}))


def _checked_ci_get(ci_class: str | None) -> Callable[[Session, Actor, uuid.UUID], ConfigurationItem]:
    def get(db: Session, actor: Actor, ci_id: uuid.UUID) -> ConfigurationItem:
        ci = _ci_get(db, actor, ci_id)
        if ci_class is not None and ci.ci_class != ci_class:
            raise NotFound(f"No {ci_class} {ci_id.hex}.")
        return ci
    return get


TASK_IGNORED = frozenset({"close_code", "contact_type", "comments", "work_notes", "comments_and_work_notes",
                          "watch_list", "work_notes_list", "opened_by", "caller_id", "opened_at", "sys_tags",
                          "company", "location", "notify", "u_correlation_id", "correlation_id",
                          "correlation_display", "business_service", "service_offering"})

TABLES: dict[str, Table] = {}


def _register() -> None:
    TABLES["incident"] = Table(
        "incident", "Incident", incident_columns(), query=incident_queries.query_incidents,
        get=lambda db, a, i: incidents.get_incident(db, a, i, include_deleted=False),
        create=create_incident, update=update_incident, delete=_deleter(incidents.delete_incident),
        ignored=TASK_IGNORED)
    TABLES["problem"] = Table(
        "problem", "Problem", problem_columns(), query=incident_queries.query_problems,
        get=lambda db, a, i: problems.get_problem(db, a, i, include_deleted=False),
        create=create_problem, update=update_problem, delete=_deleter(problems.delete_problem),
        ignored=TASK_IGNORED | {"impact", "urgency", "close_notes"})
    TABLES["change_request"] = Table(
        "change_request", "Change Request", change_columns(), query=change_queries.query_changes,
        get=lambda db, a, i: changes.get_change(db, a, i, include_deleted=False),
        create=create_change, update=update_change, delete=_deleter(changes.delete_change),
        ignored=TASK_IGNORED | {"priority", "impact", "urgency", "category", "assignment_group", "justification",
                                "reason", "requested_by_date"})
    TABLES["cmdb_ci"] = _ci_table("cmdb_ci", "Configuration Item", None)
    for table, ci_class in c.CLASS_TABLES.items():
        TABLES[table] = _ci_table(table, ci_class.replace("_", " ").title(), ci_class)
        TABLES[table].get = _checked_ci_get(ci_class)
    TABLES["cmdb_rel_ci"] = _RelTable(
        "cmdb_rel_ci", "CI Relationship", rel_columns(), query=cmdb_queries.query_relationships, get=_rel_get,
        create=create_relationship, delete=lambda db, a, rel: cmdb.delete_relationship(db, a, rel.id),
        display="type", read_only_reason="a relationship cannot be edited in GaaS: delete it and create another")
    TABLES["sys_user"] = Table(
        "sys_user", "User", user_columns(), query=iam_queries.query_users,
        get=lambda db, a, i: iam.get_user(db, a, i, include_deleted=False), create=create_user, update=update_user,
        delete=_deleter(iam.delete_user), display="name",
        ignored=frozenset({"title", "department", "company", "location", "manager", "mobile_phone", "gender",
                           "vip", "employee_number", "source", "notification", "calendar_integration"}))
    TABLES["sys_user_group"] = Table(
        "sys_user_group", "Group", group_columns(), query=_query_groups, get=_group_get, display="name",
        read_only_reason="assignment groups are the names given on incidents and problems in GaaS, not records "
                         "of their own: set assignment_group on those")
    TABLES["kb_knowledge"] = Table(
        "kb_knowledge", "Knowledge", kb_columns(), query=knowledge_queries.query_articles,
        get=lambda db, a, i: knowledge.get_article(db, a, i, include_deleted=False), create=create_article,
        update=update_article, delete=_deleter(knowledge.delete_article), display="number",
        ignored=frozenset({"kb_knowledge_base", "article_type", "sys_tags", "can_read_user_criteria",
                           "cannot_read_user_criteria", "topic", "display_attachments"}))


_register()
