"""Import of ServiceNow exports (`gaas import servicenow FILE…`): XML unloads, JSON exports
(JSONv2 `{"records": [...]}` or Table API `{"result": [...]}`) and CSV exports of incident,
problem, change_request, the cmdb_ci tables, cmdb_rel_ci, sys_user, sys_user_group and
kb_knowledge.

Every record is written through the owning module's service functions (the same translation as
the Table API), each in its own savepoint, as one acting user, in one transaction: every bad row is
reported with its file and line, and nothing is written unless every row is good (or `partial`).
`sys_id` is kept as an external key (gaas_servicenow.external_keys) with a fingerprint of what was
imported: importing the same export again writes nothing; a changed record is updated.

References are resolved across the files of one run and against earlier imports: by sys_id, or by
display value (a user's name, user name or e-mail; a CI's name; a group's name) when an export
carries display values (CSV exports do).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import uuid
import xml.sax
import xml.sax.handler
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from gaas.cmdb import service as cmdb
from gaas.cmdb.models import CIRelationship
from gaas.core.context import Actor
from gaas.core.errors import Conflict, NotFound, Problem
from gaas.iam import queries as iam_queries
from gaas.iam import service as iam
from gaas.iam.schemas import USERNAME, UserCreate
from gaas.incidents.models import IncidentStatus, ProblemStatus
from gaas.servicenow import codes as c
from gaas.servicenow import mapping as m
from gaas.servicenow.models import ExternalKey

# Tables read, in the order they are written (what references point at comes first).
ORDER = ("sys_user_group", "sys_user", "cmdb_rel_type", "cmdb_ci", "cmdb_rel_ci", "problem", "incident",
         "change_request", "kb_knowledge")
FAMILY_TARGET = {"sys_user_group": "group", "sys_user": "user", "cmdb_rel_type": "rel_type", "cmdb_ci": "ci",
                 "cmdb_rel_ci": "ci_relationship", "problem": "problem", "incident": "incident",
                 "change_request": "change", "kb_knowledge": "article"}
KNOWN = {"incident", "problem", "change_request", "cmdb_rel_ci", "sys_user", "sys_user_group", "kb_knowledge",
         "cmdb_rel_type", *c.CLASS_ALIASES}
_USERNAME = re.compile(USERNAME)


def family(table: str) -> str:
    return "cmdb_ci" if table in c.CLASS_ALIASES else table


@dataclass
class Value:
    value: str
    display: str | None = None


@dataclass
class SourceRow:
    file: str
    line: int
    table: str
    fields: dict[str, Value]

    def get(self, name: str) -> str:
        item = self.fields.get(name)
        return item.value if item is not None else ""

    @property
    def sys_id(self) -> str:
        return self.get("sys_id").replace("-", "").lower()


# ---- reading ------------------------------------------------------------------------------------

def table_of_name(name: str) -> str | None:
    """The table a file is an export of, from its name: incident.json, cmdb_ci_server_2024.csv."""
    stem = Path(name).name.split(".", 1)[0].lower()
    matches = [t for t in KNOWN if stem == t or stem.startswith(t + "_") or stem.startswith(t + "-")]
    return max(matches, key=len) if matches else None


def _value(raw: Any) -> Value:
    if isinstance(raw, dict):
        value = raw.get("value", raw.get("sys_id", ""))
        display = raw.get("display_value")
        return Value("" if value is None else str(value), None if display is None else str(display))
    if raw is None:
        return Value("")
    if isinstance(raw, bool):
        return Value("true" if raw else "false")
    return Value(str(raw))


def read_json(name: str, text: str, default_table: str | None) -> Iterator[SourceRow]:
    """Records of a JSON export with their line numbers: each record is decoded where it starts."""
    decoder = json.JSONDecoder()
    match = re.search(r'"(records|result)"\s*:\s*\[', text)
    if match:
        pos = match.end()
    else:
        stripped = len(text) - len(text.lstrip())
        if not text[stripped:stripped + 1] == "[":
            raise ValueError('not a ServiceNow JSON export: expected {"records": [...]}, {"result": [...]} or [...]')
        pos = stripped + 1
    line, counted = 1, 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line += text.count("\n", counted, pos)
        counted = pos
        record, pos = decoder.raw_decode(text, pos)
        if not isinstance(record, dict):
            raise ValueError(f"line {line}: a record must be an object")
        fields = {k: _value(v) for k, v in record.items()}
        table = fields["sys_class_name"].value if "sys_class_name" in fields else ""
        yield SourceRow(name, line, _table(table, default_table), fields)


def read_csv(name: str, text: str, default_table: str | None) -> Iterator[SourceRow]:
    reader = csv.DictReader(io.StringIO(text))
    for record in reader:
        fields = {k.strip(): Value(v or "") for k, v in record.items() if k is not None}
        table = fields["sys_class_name"].value if "sys_class_name" in fields else ""
        yield SourceRow(name, reader.line_num, _table(table, default_table), fields)


class _XmlHandler(xml.sax.handler.ContentHandler):
    """<unload><incident action="INSERT_OR_UPDATE"><field display_value="…">value</field>…</incident></unload>
    (an XML unload) or <xml><incident>…</incident></xml> (a list export)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.depth, self.rows = name, 0, []
        self.record: SourceRow | None = None
        self.field: str | None = None
        self.display: str | None = None
        self.text: list[str] = []
        self.locator: Any = None

    def setDocumentLocator(self, locator: Any) -> None:  # noqa: N802 - SAX's name
        self.locator = locator

    def startElement(self, name: str, attrs: Any) -> None:  # noqa: N802 - SAX's name
        self.depth += 1
        if self.depth == 2:
            line = self.locator.getLineNumber() if self.locator else 0
            self.record = SourceRow(self.name, line, name, {})
        elif self.depth == 3:
            self.field, self.display, self.text = name, attrs.get("display_value"), []

    def characters(self, content: str) -> None:
        if self.depth == 3:
            self.text.append(content)

    def endElement(self, name: str) -> None:  # noqa: N802 - SAX's name
        if self.depth == 3 and self.record is not None and self.field is not None:
            self.record.fields[self.field] = Value("".join(self.text).strip(), self.display)
        elif self.depth == 2 and self.record is not None:
            record = self.record
            table = record.fields["sys_class_name"].value if "sys_class_name" in record.fields else ""
            record.table = _table(table, record.table if record.table in KNOWN else None)
            self.rows.append(record)
            self.record = None
        self.depth -= 1


def read_xml(name: str, data: bytes) -> list[SourceRow]:
    parser = xml.sax.make_parser()  # noqa: S317 - external entities and DTDs are switched off below
    parser.setFeature(xml.sax.handler.feature_external_ges, False)
    parser.setFeature(xml.sax.handler.feature_external_pes, False)
    handler = _XmlHandler(name)
    parser.setContentHandler(handler)
    parser.parse(io.BytesIO(data))
    return handler.rows


def _table(given: str, default: str | None) -> str:
    if given in KNOWN:
        return given
    return default or given or ""


def read_file(path: Path, table: str | None = None) -> list[SourceRow]:
    data = path.read_bytes()
    default = table or table_of_name(path.name)
    suffix = path.suffix.lower()
    if suffix == ".xml":
        rows = read_xml(path.name, data)
        if table:
            for row in rows:
                row.table = table
        return rows
    text = data.decode("utf-8-sig")
    if suffix == ".csv":
        return list(read_csv(path.name, text, default))
    return list(read_json(path.name, text, default))


# ---- resolving references ------------------------------------------------------------------------

@dataclass
class Index:
    """Where each ServiceNow record of this run and of earlier imports went in GaaS."""

    keys: dict[tuple[str, str], ExternalKey] = field(default_factory=dict)  # (family, sys_id) -> key
    by_display: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (family, lower display) -> sys_ids
    rel_types: dict[str, str] = field(default_factory=dict)  # cmdb_rel_type sys_id -> name
    groups: dict[str, str] = field(default_factory=dict)  # sys_user_group sys_id -> name

    def target(self, fam: str, sys_id: str) -> uuid.UUID | None:
        key = self.keys.get((fam, sys_id))
        return key.target_id if key is not None else None

    def note_display(self, fam: str, display: str | None, sys_id: str) -> None:
        if display:
            self.by_display.setdefault((fam, display.strip().lower()), set()).add(sys_id)


class Unresolved(ValueError):
    pass


class ImportLookups(m.Lookups):
    """References in an export name ServiceNow's sys_ids (or display values): resolve them to the
    GaaS records they were imported as."""

    def __init__(self, db: Session, actor: Actor, index: Index, row: SourceRow) -> None:
        super().__init__(db, actor)
        self.index, self.row = index, row

    def _resolve(self, fam: str, value: str, what: str) -> uuid.UUID:
        text = value.strip()
        sys_id = text.replace("-", "").lower()
        if c.is_sys_id(text):
            target = self.index.target(fam, sys_id)
            if target is not None:
                return target
        candidates = self.index.by_display.get((fam, text.lower()), set())
        if len(candidates) == 1:
            target = self.index.target(fam, next(iter(candidates)))
            if target is not None:
                return target
        raise Unresolved(f"refers to {what} {text}, which is neither in these files nor imported before")

    def user(self, value: str) -> uuid.UUID:
        try:
            return self._resolve("sys_user", value, "sys_user")
        except Unresolved:
            ref = iam_queries.find_login(self.db, value) if not c.is_sys_id(value) else None
            if ref is not None:
                return ref.id
            raise

    def ci(self, value: str) -> uuid.UUID:
        try:
            return self._resolve("cmdb_ci", value, "cmdb_ci")
        except Unresolved:
            if c.is_sys_id(value):
                raise
            return super().ci(value)

    def problem(self, value: str) -> uuid.UUID:
        return self._resolve("problem", value, "problem")

    def group_name(self, value: str) -> str:
        text = value.strip()
        if c.is_sys_id(text):
            name = self.index.groups.get(text.replace("-", "").lower())
            if name is None:
                raise Unresolved(f"refers to sys_user_group {text}, which is neither in these files nor imported "
                                 "before")
            return name
        return text


# ---- writing ------------------------------------------------------------------------------------

@dataclass
class Result:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    ignored_fields: dict[str, set[str]] = field(default_factory=dict)  # table -> fields not kept
    committed: bool = False
    by_table: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return len({(e["file"], e["line"]) for e in self.errors})


class RowError(Exception):
    def __init__(self, field_: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field_, message


# Extra ServiceNow fields an import reads besides the Table API's writable ones.
TIMES = ("opened_at", "resolved_at", "closed_at", "caller_id")


def _choice_code(col: m.Column, value: Value) -> str:
    """A choice given as its code, or (CSV exports) as its label."""
    if not col.choices or value.value in col.choices:
        return value.value
    for code, label in col.choices.items():
        if label.lower() == value.value.strip().lower():
            return code
    return value.value


def body_of(row: SourceRow, table: m.Table, result: Result) -> dict[str, Any]:
    """The writable ServiceNow fields of a row, as the Table API would receive them."""
    body: dict[str, Any] = {}
    ignored = result.ignored_fields.setdefault(row.table, set())
    for name, value in row.fields.items():
        col = table.columns.get(name)
        if col is None or col.write is None:
            if col is None and not name.startswith(("sys_", "u_")) and name not in TIMES:
                ignored.add(name)
            continue
        text = _choice_code(col, value) if col.kind == m.CHOICE else value.value
        if col.kind == m.REFERENCE and not text and value.display:
            text = value.display
        if text == "" and col.kind in (m.REFERENCE, m.CHOICE, m.DATETIME):
            continue  # an empty reference or choice in an export: nothing to set
        body[name] = text
    return body


def _time(row: SourceRow, *names: str) -> datetime | None:
    for name in names:
        text = row.get(name)
        if text:
            try:
                return c.parse_time(text)
            except ValueError as exc:
                raise RowError(name, f"'{text}' is not a date and time") from exc
    return None


def fingerprint(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class Importer:
    def __init__(self, db: Session, actor: Actor, *, domain: str, owner_id: uuid.UUID | None,
                 progress: Callable[[int], None] | None = None) -> None:
        self.db, self.actor, self.domain, self.owner_id = db, actor, domain, owner_id
        self.progress = progress or (lambda _n: None)
        self.index = Index()
        self.result = Result()
        self._savepoint: Any = None
        self._new_keys: list[ExternalKey] = []

    # ---- the run ----

    def run(self, rows: list[SourceRow]) -> Result:
        self._load_keys()
        for row in rows:
            if row.table not in KNOWN:
                self.result.errors.append({"file": row.file, "line": row.line, "table": row.table or "?",
                                           "sys_id": row.sys_id, "field": "sys_class_name",
                                           "message": f"not a table GaaS imports ({row.table or 'unknown'}); name "
                                                      "the file after its table or pass --table"})
        rows = [r for r in rows if r.table in KNOWN]
        for row in rows:
            fam = family(row.table)
            for name in ("name", "user_name", "email", "number"):
                self.index.note_display(fam, row.get(name), row.sys_id)
            if fam == "cmdb_rel_type" and row.sys_id:
                self.index.rel_types[row.sys_id] = row.get("name")
            if fam == "sys_user_group" and row.sys_id and row.get("name"):
                self.index.groups[row.sys_id] = row.get("name")
        for table in ORDER:
            for row in (r for r in rows if family(r.table) == table):
                self.result.rows += 1
                self.result.by_table[row.table] = self.result.by_table.get(row.table, 0) + 1
                self._row(row)
                self.progress(1)
        columns = ("id", "domain", "source_table", "sys_id", "target_type", "target_id", "display_value",
                   "fingerprint", "extra")
        for start in range(0, len(self._new_keys), 1000):
            self.db.execute(insert(ExternalKey), [{col: getattr(k, col) for col in columns}
                                                  for k in self._new_keys[start:start + 1000]])
        return self.result

    def _load_keys(self) -> None:
        for key in self.db.scalars(select(ExternalKey).where(ExternalKey.domain == self.domain)):
            self.index.keys[(key.source_table, key.sys_id)] = key
            if key.source_table == "sys_user_group" and key.display_value:
                self.index.groups[key.sys_id] = key.display_value
            if key.display_value:
                self.index.note_display(key.source_table, key.display_value, key.sys_id)

    def _row(self, row: SourceRow) -> None:
        fam = family(row.table)
        if not row.sys_id or not c.is_sys_id(row.sys_id):
            self._error(row, "sys_id", f"'{row.get('sys_id')}' is not a sys_id")
            return
        self._savepoint = None
        try:
            outcome = getattr(self, f"_import_{fam}")(row)
            if self._savepoint is not None:
                self._savepoint.commit()
        except (RowError, Problem, Unresolved) as exc:
            if self._savepoint is not None:
                self._savepoint.rollback()
            self._refused(row, exc)
            return
        setattr(self.result, outcome, getattr(self.result, outcome) + 1)

    def _begin(self) -> None:
        """Before a row's first write: its savepoint (an unchanged row costs no round trip)."""
        if self._savepoint is None:
            self._savepoint = self.db.begin_nested()

    def _refused(self, row: SourceRow, exc: Exception) -> None:
        if isinstance(exc, RowError):
            self._error(row, exc.field, exc.message)
        elif isinstance(exc, m.WriteError):
            for error in exc.errors or [{"field": "body", "message": exc.detail}]:
                self._error(row, error["field"], error["message"])
        elif isinstance(exc, Problem):
            m.TABLES[row.table if row.table in m.TABLES else "cmdb_ci"].rename(exc)
            for error in exc.errors or [{"field": "-", "message": exc.detail}]:
                self._error(row, error.get("field", "-"), error.get("message") or exc.detail)
        else:
            self._error(row, "-", str(exc))

    def _error(self, row: SourceRow, field_: str, message: str) -> None:
        self.result.errors.append({"file": row.file, "line": row.line, "table": row.table, "sys_id": row.sys_id,
                                   "field": field_, "message": message})

    def _keep(self, row: SourceRow, target_type: str, target_id: uuid.UUID | None, display: str | None,
              print_: str, extra: dict[str, Any] | None = None) -> str:
        """Record (or refresh) the external key; 'created' or 'updated'."""
        fam = family(row.table)
        key = self.index.keys.get((fam, row.sys_id))
        if key is None:
            # Written in bulk at the end of the run (a row's key is its last write, so a row that
            # fails never leaves one); the index answers references meanwhile.
            key = ExternalKey(id=uuid.uuid4(), domain=self.domain, source_table=fam, sys_id=row.sys_id,
                              target_type=target_type, target_id=target_id, display_value=display,
                              fingerprint=print_, extra=extra or {})
            self._new_keys.append(key)
            self.index.keys[(fam, row.sys_id)] = key
            return "created"
        self.db.execute(update(ExternalKey).where(ExternalKey.id == key.id).values(
            target_id=target_id, display_value=display, fingerprint=print_, extra=extra or {}))
        key.target_id, key.display_value, key.fingerprint, key.extra = target_id, display, print_, extra or {}
        return "updated"

    def _unchanged(self, row: SourceRow, print_: str) -> ExternalKey | None:
        key = self.index.keys.get((family(row.table), row.sys_id))
        return key if key is not None and key.fingerprint == print_ else None

    def _existing(self, row: SourceRow) -> ExternalKey | None:
        return self.index.keys.get((family(row.table), row.sys_id))

    def _lookups(self, row: SourceRow) -> ImportLookups:
        return ImportLookups(self.db, self.actor, self.index, row)

    def _resolved(self, row: SourceRow, body: dict[str, Any], lookups: ImportLookups, table: m.Table) -> dict:
        """The body with its references resolved to GaaS ids (what the fingerprint covers)."""
        out: dict[str, Any] = {}
        for name, value in body.items():
            col = table.columns[name]
            try:
                if col.kind == m.REFERENCE and col.ref == "sys_user":
                    out[name] = lookups.user(value).hex
                elif col.kind == m.REFERENCE and col.ref == "cmdb_ci":
                    out[name] = lookups.ci(value).hex
                elif col.kind == m.REFERENCE and col.ref == "problem":
                    out[name] = lookups.problem(value).hex
                elif col.kind == m.REFERENCE and col.ref == "sys_user_group":
                    out[name] = lookups.group_name(value)
                else:
                    out[name] = value
            except ValueError as exc:
                raise RowError(name, str(exc)) from exc
        return out

    # ---- per table ----

    def _import_sys_user_group(self, row: SourceRow) -> str:
        name = row.get("name").strip()
        if not name:
            raise RowError("name", "a group needs a name")
        print_ = fingerprint({"name": name})
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        return self._keep(row, "group", None, name, print_)

    def _import_cmdb_rel_type(self, row: SourceRow) -> str:
        name = row.get("name").strip()
        if name not in c.REL_TYPE_ALIASES:
            raise RowError("name", f"relationship type '{name}' has no GaaS equivalent")
        print_ = fingerprint({"name": name})
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        return self._keep(row, "rel_type", None, name, print_)

    def _import_sys_user(self, row: SourceRow) -> str:
        email = row.get("email").strip().lower()
        user_name = row.get("user_name").strip().lower()
        name = row.get("name").strip() or " ".join(x for x in (row.get("first_name"), row.get("last_name")) if x)
        data = {"email": email, "user_name": user_name, "name": name}
        print_ = fingerprint(data)
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        existing = self._existing(row)
        if existing is not None:
            return self._keep(row, "user", existing.target_id, name or user_name, print_)
        found = (iam_queries.find_login(self.db, email) if email else None) or \
            (iam_queries.find_login(self.db, user_name) if user_name else None)
        if found is not None:
            return self._keep(row, "user", found.id, name or user_name, print_)
        if not email:
            raise RowError("email", "a user GaaS does not know yet needs an e-mail address to be created")
        values = {"email": email, "name": name or user_name or email, "domain": self.domain}
        if user_name and _USERNAME.match(user_name):
            values["username"] = user_name
        try:
            user = iam.create_user(self.db, self.actor, UserCreate(**values))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise RowError("email", str(exc).splitlines()[-1]) from exc
        return self._keep(row, "user", user.id, values["name"], print_)

    def _import_cmdb_ci(self, row: SourceRow) -> str:
        sn_class = row.get("sys_class_name") or row.table
        table_name = row.table if row.table in m.TABLES else "cmdb_ci"
        table = m.TABLES[table_name]
        body = body_of(row, table, self.result)
        body["sys_class_name"] = sn_class
        attributes = {k[2:]: v.value for k, v in row.fields.items() if k.startswith("u_") and v.value != ""}
        lookups = self._lookups(row)
        resolved = self._resolved(row, body, lookups, table)
        print_ = fingerprint({"fields": resolved, "attributes": attributes})
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        existing = self._existing(row)
        values_body = {**resolved, "sys_domain": self.domain}
        if existing is None:
            if "owned_by" not in values_body:
                if self.owner_id is None:
                    raise RowError("owned_by", "the CI names no owner: give --owner")
                values_body["owned_by"] = self.owner_id.hex
            w = table.translate(values_body, self._plain_lookups(), creating=True)
            values = m.ci_create_values(self.actor, values_body, w, table_name)
            values["attributes"] = {**values["attributes"], **attributes}
            data = m._schema(table_name, m.CICreate, values, m._sn_names(table))
            ci = cmdb.create_ci(self.db, self.actor, data)
            self._keep(row, "ci", ci.id, ci.name, print_)
            return "created"
        ci = self._target(cmdb.get_ci, existing)
        values_body.pop("sys_class_name", None)
        values_body.pop("sys_domain", None)
        updated = m.update_ci(self.db, self.actor, ci, values_body, self._plain_lookups(), None, table_name)
        if attributes and any(updated.attributes.get(k) != v for k, v in attributes.items()):
            cmdb.update_ci(self.db, self.actor, updated.id,
                           m.CIUpdate(attributes={**updated.attributes, **attributes}, version=updated.version), None)
        self._keep(row, "ci", ci.id, ci.name, print_)
        return "updated"

    def _plain_lookups(self) -> m.Lookups:
        """For bodies already resolved to GaaS ids."""
        return m.Lookups(self.db, self.actor)

    def _target(self, getter: Callable[..., Any], key: ExternalKey) -> Any:
        try:
            return getter(self.db, self.actor, key.target_id, include_deleted=False)
        except NotFound as exc:
            raise RowError("sys_id", f"was imported before as {key.target_type} {key.target_id}, which is gone "
                                     "from GaaS") from exc

    def _import_cmdb_rel_ci(self, row: SourceRow) -> str:
        lookups = self._lookups(row)
        item = row.fields.get("type") or Value("")
        name = item.display or self.index.rel_types.get(item.value.replace("-", "").lower()) or item.value
        try:
            kind, parent_is_source = m.resolve_rel_type(name)
        except ValueError as exc:
            raise RowError("type", str(exc)) from exc
        ends = {}
        for end in ("parent", "child"):
            item = row.fields.get(end) or Value("")
            try:
                ends[end] = lookups.ci(item.value or item.display or "")
            except ValueError as exc:
                raise RowError(end, str(exc)) from exc
        parent, child = ends["parent"], ends["child"]
        source, target = (parent, child) if parent_is_source else (child, parent)
        print_ = fingerprint({"source": source.hex, "target": target.hex, "type": kind.value})
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        existing = self._existing(row)
        if existing is not None and existing.target_id is not None:
            old = self.db.get(CIRelationship, existing.target_id)
            if old is not None:
                cmdb.delete_relationship(self.db, self.actor, old.id)
        try:
            rel = cmdb.create_relationship(self.db, self.actor, m.CIRelationshipCreate(
                source_ci_id=source, target_ci_id=target, relationship_type=kind))
            rel_id = rel.id
        except Conflict as exc:
            if exc.extra.get("existing_id") is None:
                raise
            rel_id = uuid.UUID(exc.extra["existing_id"])  # already related (by GaaS itself): keep that link
        self._keep(row, "ci_relationship", rel_id, kind.value, print_)
        return "created" if existing is None else "updated"

    def _task(self, row: SourceRow, table_name: str) -> tuple[m.Table, dict[str, Any], ImportLookups]:
        table = m.TABLES[table_name]
        body = body_of(row, table, self.result)
        lookups = self._lookups(row)
        return table, self._resolved(row, body, lookups, table), lookups

    def _import_incident(self, row: SourceRow) -> str:
        _, body, _ = self._task(row, "incident")
        caller = row.fields.get("caller_id")
        caller_id = None
        if caller is not None and (caller.value or caller.display):
            try:
                caller_id = self._lookups(row).user(caller.value or caller.display or "").hex
            except ValueError as exc:
                raise RowError("caller_id", str(exc)) from exc
        state = body.get("state", "1")
        if state in ("6", "7") and not body.get("close_notes"):
            body["close_notes"] = f"Imported from ServiceNow ({row.get('close_code') or 'no close notes'})"
        opened = _time(row, "opened_at", "sys_created_on")
        times = {IncidentStatus.resolved: _time(row, "resolved_at"), IncidentStatus.closed: _time(row, "closed_at")}
        times = {k: v for k, v in times.items() if v is not None}
        extra = {"caller_id": str(uuid.UUID(caller_id))} if caller_id else {}
        print_ = fingerprint({"fields": body, "caller": caller_id, "opened": opened})
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        existing = self._existing(row)
        plain = self._plain_lookups()
        if existing is None:
            incident = m.create_incident(self.db, self.actor, {**body, "sys_domain": self.domain}, plain,
                                         opened_at=opened, times=times)
            self._keep(row, "incident", incident.id, incident.number, print_, extra)
            return "created"
        from gaas.incidents import service as incidents

        incident = self._target(incidents.get_incident, existing)
        changed = {k: v for k, v in body.items()}
        m.update_incident(self.db, self.actor, incident, changed, plain, None)
        self._keep(row, "incident", incident.id, incident.number, print_, extra)
        return "updated"

    def _import_problem(self, row: SourceRow) -> str:
        _, body, _ = self._task(row, "problem")
        state = body.get("state") or body.get("problem_state")
        if state in c.LEGACY_PROBLEM_STATUS_OF and state not in c.PROBLEM_STATUS_OF:
            body["state"] = c.PROBLEM_STATE_OF[c.LEGACY_PROBLEM_STATUS_OF[state]]
        body.pop("problem_state", None)
        if body.get("state") in ("103", "104", "106", "107") and not body.get("cause_notes"):
            body["cause_notes"] = "Imported from ServiceNow (no cause notes)"
        if body.get("state") in ("106", "107") and not body.get("fix_notes"):
            body["fix_notes"] = "Imported from ServiceNow (no fix notes)"
        opened = _time(row, "opened_at", "sys_created_on")
        times = {ProblemStatus.resolved: _time(row, "resolved_at"), ProblemStatus.closed: _time(row, "closed_at")}
        times = {k: v for k, v in times.items() if v is not None}
        print_ = fingerprint({"fields": body})
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        existing = self._existing(row)
        plain = self._plain_lookups()
        if existing is None:
            problem = m.create_problem(self.db, self.actor, {**body, "sys_domain": self.domain}, plain, at=opened,
                                       times=times)
            self._keep(row, "problem", problem.id, problem.number, print_)
            return "created"
        from gaas.incidents import problems

        problem = self._target(problems.get_problem, existing)
        m.update_problem(self.db, self.actor, problem, body, plain, None)
        self._keep(row, "problem", problem.id, problem.number, print_)
        return "updated"

    def _import_change_request(self, row: SourceRow) -> str:
        _, body, _ = self._task(row, "change_request")
        if body.get("type") == "standard":
            body["type"] = "normal"  # a standard change follows a GaaS template; none exists for it yet
        target = body.pop("state", None)
        body.pop("approval", None)
        print_ = fingerprint({"fields": body, "state": target})
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        existing = self._existing(row)
        plain = self._plain_lookups()
        from gaas.changes import service as changes
        from gaas.changes.schemas import ChangeUpdate

        if existing is None:
            change = m.create_change(self.db, self.actor, {**body, "sys_domain": self.domain}, plain)
        else:
            change = self._target(changes.get_change, existing)
            fields = {k: v for k, v in body.items() if k not in ("type",)}
            if fields:
                change = m.update_change(self.db, self.actor, change, fields, plain, None)
        goal = c.CHANGE_STATUS_OF.get(target or "")
        for step in m.shortest_walk(change.status, goal, changes.TRANSITIONS[change.type]):
            try:
                change = changes.update_change(self.db, self.actor, change.id,
                                               ChangeUpdate(status=step, version=change.version), None)
            except Problem as exc:
                raise RowError("state", f"cannot bring the change to {step.value}: {exc.detail}") from exc
        self._keep(row, "change", change.id, change.number, print_)
        return "created" if existing is None else "updated"

    def _import_kb_knowledge(self, row: SourceRow) -> str:
        _, body, _ = self._task(row, "kb_knowledge")
        print_ = fingerprint({"fields": body})
        if self._unchanged(row, print_):
            return "unchanged"
        self._begin()
        existing = self._existing(row)
        plain = self._plain_lookups()
        if existing is None:
            article = m.create_article(self.db, self.actor, {**body, "sys_domain": self.domain}, plain)
            self._keep(row, "article", article.id, article.number, print_,
                       {"workflow_state": row.get("workflow_state")} if row.get("workflow_state") else None)
            return "created"
        from gaas.knowledge import service as knowledge

        article = self._target(knowledge.get_article, existing)
        m.update_article(self.db, self.actor, article, body, plain, None)
        self._keep(row, "article", article.id, article.number, print_)
        return "updated"


def import_files(db: Session, actor: Actor, paths: list[Path], *, domain: str, owner_id: uuid.UUID | None = None,
                 table: str | None = None, progress: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None) -> Result:
    """Read every file, then import its rows in dependency order (see the module docstring)."""
    rows: list[SourceRow] = []
    errors: list[dict[str, Any]] = []
    for path in paths:
        try:
            rows += read_file(path, table)
        except (ValueError, xml.sax.SAXException, UnicodeDecodeError, csv.Error) as exc:
            errors.append({"file": path.name, "line": 0, "table": table or table_of_name(path.name) or "?",
                           "sys_id": "", "field": "-", "message": f"cannot read the file: {exc}"})
    if on_total is not None:
        on_total(len(rows))
    importer = Importer(db, actor, domain=domain, owner_id=owner_id, progress=progress)
    result = importer.run(rows)
    result.errors = errors + result.errors
    return result
