"""Discovery import: CIs and relationships from a named source, reconciled against the CMDB.

The input streams in batches (no file is held in memory whole, no round trip per row): each
batch is validated, matched by its classes' identification rules (one GIN lookup on
identity_keys), merged, and written with multi-row statements, audit rows and events included.

- A match is updated, but only the attributes this source may write: a lower-precedence source
  (per class, `source_precedence`, highest first) cannot overwrite a higher one's value while that
  value is fresh (younger than the class's staleness period).
- `last_discovered_at` only moves forward; moving it alone is a touch, not a change (no new
  version, no audit row), so importing the same file twice changes nothing the second time.
- Rows that name the same CI within one import are merged (the later row wins).
- A bad row is reported with its line, field and reason; unless `partial`, nothing is written.
- New CIs reach the fuzzy-search name index through the worker (migration 0011); search scores
  them directly until then.
- Relationship rows ({"relationship_type", "source": {...}, "target": {...}}) name both ends by
  identity (class plus the values of one of its rules) and must come after the CIs they name.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import IO, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import TextClause, text
from sqlalchemy.exc import DBAPIError, PendingRollbackError
from sqlalchemy.orm import Session

from gaas.audit.service import prepare_many, record_many
from gaas.cmdb.models import CIClass, CIRelationshipType, CIStatus, Environment
from gaas.cmdb.schemas import ClassName
from gaas.cmdb.service import IdentityKeyer, attribute_validator, class_for, identity_keyer
from gaas.core.bulk import bulk_section
from gaas.core.context import Actor
from gaas.core.errors import Forbidden, ValidationProblem
from gaas.core.events import emit_batch, prepare_batch
from gaas.core.ids import new_ids
from gaas.core.jsontext import dumps
from gaas.iam import service as iam
from gaas.iam.schemas import DOMAIN_CODE, DomainCode, Name

BATCH_SIZE = 1000
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
CLASS_NAME = re.compile(r"^[a-z][a-z0-9_]{1,99}$")
DOMAIN_CODE_RE = re.compile(DOMAIN_CODE)
# 'manual' is what people write through the API or UI; no import may claim it.
RESERVED_SOURCES = frozenset({"manual"})
MAX_REPORTED_ERRORS = 1000


class ImportedCI(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ci_class: ClassName
    name: Name
    domain: DomainCode | None = None
    environment: Environment = Environment.production
    status: CIStatus = CIStatus.active
    owner_id: uuid.UUID | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    discovered_at: datetime | None = None


class ImportedRelationship(BaseModel):
    model_config = ConfigDict(extra="forbid")

    relationship_type: CIRelationshipType
    source: dict[str, Any]
    target: dict[str, Any]


@dataclass
class ImportResult:
    source: str
    dry_run: bool
    partial: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    rejected: int = 0
    relationships_created: int = 0
    relationships_unchanged: int = 0
    committed: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, field_name: str, message: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "field": field_name, "message": message})


# ---- reading ----------------------------------------------------------------------------------------

def read_rows(stream: IO[bytes], fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) for NDJSON, CSV or a JSON array; a row that cannot be parsed is a str
    (the reason) so that it is reported with its line and the rest goes on."""
    if fmt == "ndjson":  # the bulk format: bytes straight to orjson, no text layer
        yield from _ndjson(stream)
        return
    text_stream = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    try:
        yield from _parse(text_stream, fmt)
    finally:
        text_stream.detach()  # the caller owns the stream: do not close it with the wrapper


def _ndjson(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield number, f"malformed JSON: {exc}"
            continue
        if not isinstance(value, dict):
            yield number, "a row is a JSON object"
        elif b"\\u0000" in line and _has_nul(value):  # cheap test first: JSON spells NUL \u0000
            yield number, NUL_REASON
        else:
            yield number, value


def _parse(text_stream: io.TextIOWrapper, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    if fmt == "csv":
        reader = csv.DictReader(text_stream)
        try:
            for row in reader:
                parsed = _csv_row(row)
                yield reader.line_num, NUL_REASON if _has_nul(parsed) else parsed
        except csv.Error as exc:  # the reader cannot go on past a broken line
            yield reader.line_num + 1, f"unreadable CSV, import stopped here: {exc}"
    elif fmt == "json":
        try:
            # A JSON array has no line structure to stream by: for large imports use NDJSON or CSV.
            values = json.load(text_stream, parse_constant=_no_constant)
        except ValueError as exc:
            yield 1, f"malformed JSON: {exc}"
            return
        if not isinstance(values, list):
            yield 1, "a JSON import is an array of rows"
            return
        for number, value in enumerate(values, start=1):
            if not isinstance(value, dict):
                yield number, "a row is a JSON object"
            else:
                yield number, NUL_REASON if _has_nul(value) else value
    else:
        raise ValidationProblem.field("format", "use ndjson, csv or json")


NUL_REASON = "text may not contain NUL characters"


def _has_nul(value: Any) -> bool:
    """PostgreSQL text cannot hold NUL: such a row is refused, not half-written."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _csv_row(row: dict[str, str | None]) -> dict[str, Any]:
    """CSV columns: ci_class, name, domain, environment, status, owner_id, discovered_at, and
    attr.<name> for attributes. Values stay text until the class schema says a property is a
    number or boolean (see _typed_csv_attributes), so a serial number like 0123 keeps its zero."""
    result: dict[str, Any] = {"_csv": True}
    attributes: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value == "":
            continue
        if key.startswith("attr."):
            attributes[key[5:]] = value
        else:
            result[key] = value
    result["attributes"] = attributes
    return result


def _typed_csv_attributes(cls: CIClass, attributes: dict[str, Any]) -> dict[str, Any]:
    properties = cls.attribute_schema.get("properties", {})
    typed = {}
    for key, value in attributes.items():
        kind = properties.get(key, {}).get("type")
        try:
            if kind == "integer":
                value = int(value)
            elif kind == "number":
                value = float(value) if any(c in value for c in ".eE") else int(value)
            elif kind == "boolean" and value.lower() in ("true", "false"):
                value = value.lower() == "true"
        except ValueError:
            pass  # the schema check names it
        typed[key] = value
    return typed


def _batches(rows: Iterable[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    batch: list[tuple[int, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---- reconciling ------------------------------------------------------------------------------------------

@dataclass
class _Candidate:
    line: int
    row: ImportedCI
    cls: CIClass
    keys: list[str]


@dataclass
class _Writes:
    """One batch's statements: the writer thread runs them while the next batch is validated.
    Creations arrive fully prepared (parameters serialised on the main thread), so the writer
    sends them back to back; updates are audited only once the database says what changed."""

    creates: list[tuple[TextClause, dict[str, Any]]]
    updates: list[dict[str, Any]]
    touches: list[dict[str, Any]]
    update_audits: list[tuple[str, uuid.UUID, dict[str, Any], str | None]]
    states: list[SimpleNamespace]  # each CI written, as it will be once written (for the next lookup)


class Importer:
    """Reconciles batch after batch, with Python's work (parsing, validation, identity keys,
    reconciling) and the database's (looking up, writing) overlapping. A writer thread runs the
    statements in order: lookup(k), writes(k-1), lookup(k+1), writes(k), … so that while the
    database writes batch k-1, Python reconciles batch k and validates batch k+1. Lookup(k) runs
    before writes(k-1), so batch k-1's results are overlaid from memory (`_in_flight`): a CI it
    creates or changes is matched as it will be. Only the writer thread touches the session
    while it has work: any other database access first waits for it (`_settle`)."""

    def __init__(self, db: Session, actor: Actor, *, source: str, dry_run: bool, partial: bool,
                 default_domain: str | None, owner_id: uuid.UUID | None) -> None:
        self.db, self.actor, self.source = db, actor, source
        self.default_domain = default_domain
        self.owner_id = owner_id or actor.user_id
        self.result = ImportResult(source=source, dry_run=dry_run, partial=partial)
        self.now = datetime.now(UTC)
        self.now_text = self.now.isoformat()
        self.classes: dict[tuple[str, str | None], CIClass | None] = {}
        # Per class (by identity, each kept alive in `classes`): its identity keyer and attribute
        # validator, compiled once for the whole import.
        self.compiled: dict[int, tuple[IdentityKeyer, Callable[[dict[str, Any]], None]]] = {}
        self.domains: dict[str | None, bool] = {}
        # Dry run: identity key -> (a stand-in id, domain) of each CI this import would have created.
        self.pending: dict[str, tuple[str, str | None]] = {}
        self.allowed_owner: dict[tuple[uuid.UUID, str | None], bool] = {}
        self._writer: ThreadPoolExecutor | None = None
        self._jobs: list[Future[int]] = []  # submitted to the writer, not yet settled
        self._failure: BaseException | None = None  # the writer's first failure: later jobs do nothing
        self._prepared: _Writes | None = None  # the last batch's writes, submitted after the next lookup
        self._in_flight: list[SimpleNamespace] = []  # how the CIs of the submitted writes will be

    def run(self, rows: Iterable[tuple[int, Any]], progress: Callable[[int], None] | None = None) -> ImportResult:
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gaas-import")
        # The GiST index behind fuzzy name search costs more to write than the rest of a CI: this
        # import's new CIs are indexed by the worker (and searched directly until then).
        self.db.execute(_DEFER_SEARCH_NAMES, {"value": "on"})
        with bulk_section():
            try:
                for batch in _batches(rows, BATCH_SIZE):
                    self.result.rows += len(batch)
                    cis = [(line, row) for line, row in batch
                           if not (isinstance(row, dict) and "relationship_type" in row)]
                    rels = [(line, row) for line, row in batch if isinstance(row, dict) and "relationship_type" in row]
                    self._ci_batch(cis)
                    if rels:
                        self._relationship_batch(rels)
                    if progress:
                        progress(len(batch))
                self._settle()
            finally:
                wait(self._jobs)  # failing: still, free the session before anyone rolls it back
                self._writer.shutdown()
                self._stop_deferring()
        return self.result

    def _stop_deferring(self) -> None:
        """Later writes in this transaction index their names themselves again. A transaction an
        error has already lost will be rolled back, setting and all: nothing to reset there."""
        with contextlib.suppress(DBAPIError, PendingRollbackError):
            self.db.execute(_DEFER_SEARCH_NAMES, {"value": "off"})

    def _on_writer(self, work: Callable[..., Any], *args: Any) -> Future:
        def guarded() -> Any:
            if self._failure is not None:  # the transaction is lost: do not pile errors on it
                raise self._failure
            try:
                return work(*args)
            except BaseException as exc:
                self._failure = exc
                raise

        assert self._writer is not None
        return self._writer.submit(guarded)

    def _submit_prepared(self) -> None:
        if self._prepared is not None:
            writes, self._prepared = self._prepared, None
            self._jobs.append(self._on_writer(self._write, writes))
            self._in_flight = writes.states

    def _settle(self) -> Session:
        """The session, once every write is done; the writer's failure is raised here."""
        self._submit_prepared()
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            self.result.updated -= job.result()
        self._in_flight = []
        return self.db

    def _compiled(self, cls: CIClass) -> tuple[IdentityKeyer, Callable[[dict[str, Any]], None]]:
        entry = self.compiled.get(id(cls))
        if entry is None:
            entry = self.compiled[id(cls)] = (identity_keyer(cls), attribute_validator(cls))
        return entry

    # -- CIs --
    def _class(self, name: str, domain: str | None) -> CIClass | None:
        if (name, domain) not in self.classes:
            self.classes[(name, domain)] = class_for(self._settle(), name, domain)
        return self.classes[(name, domain)]

    def _owner_ok(self, owner: uuid.UUID, domain: str | None) -> bool:
        if (owner, domain) not in self.allowed_owner:
            db = self._settle()
            self.allowed_owner[(owner, domain)] = (iam.user_allowed_in_domain(db, owner, domain) if domain
                                                   else iam.user_is_active(db, owner))
        return self.allowed_owner[(owner, domain)]

    def _domain_ok(self, domain: str | None) -> bool:
        if domain not in self.domains:
            try:
                iam.require_active_domain(self._settle(), domain)
                self.domains[domain] = True
            except ValidationProblem:
                self.domains[domain] = False
        return self.domains[domain]

    def _validate(self, line: int, raw: Any) -> _Candidate | None:
        if isinstance(raw, str):
            self.result.reject(line, "row", raw)
            return None
        from_csv = bool(raw.pop("_csv", False))
        try:
            row = ImportedCI.model_validate({"domain": self.default_domain, **raw})
        except ValidationError as exc:
            error = exc.errors()[0]
            self.result.reject(line, ".".join(str(p) for p in error["loc"]) or "row", error["msg"])
            return None
        if not self.actor.can("cmdb.import", row.domain):
            self.result.reject(line, "domain", f"importing into {row.domain or 'shared infrastructure'} needs the "
                                               "'cmdb.import' permission there")
            return None
        if not self._domain_ok(row.domain):
            self.result.reject(line, "domain", f"no active domain '{row.domain}'")
            return None
        if row.discovered_at is not None:  # naive means UTC; the future is not a discovery time
            seen = row.discovered_at if row.discovered_at.tzinfo else row.discovered_at.replace(tzinfo=UTC)
            row.discovered_at = min(seen, self.now)
        cls = self._class(row.ci_class, row.domain)
        if cls is None:
            self.result.reject(line, "ci_class", f"no class '{row.ci_class}'")
            return None
        if from_csv:
            row.attributes = _typed_csv_attributes(cls, row.attributes)
        keyer, validate = self._compiled(cls)
        try:
            validate(row.attributes)
        except ValidationProblem as problem:
            first = problem.errors[0]
            self.result.reject(line, first["field"], first["message"])
            return None
        owner = row.owner_id or self.owner_id
        if not self._owner_ok(owner, row.domain):
            self.result.reject(line, "owner_id", "no active user allowed in this domain has this id")
            return None
        row.owner_id = owner
        keys = keyer(row.domain, row.name, row.environment, row.attributes)
        if not keys:
            self.result.reject(line, "attributes", f"none of class '{cls.name}''s identification rules "
                                                   f"{cls.identification} is complete")
            return None
        return _Candidate(line, row, cls, keys)

    def _ci_batch(self, rows: list[tuple[int, Any]]) -> None:
        candidates: dict[str, _Candidate] = {}
        for line, raw in rows:
            candidate = self._validate(line, raw)
            if candidate is None:
                continue
            # The same CI twice in one batch: merge, the later row winning.
            earlier = next((candidates[k] for k in candidate.keys if k in candidates), None)
            if earlier is not None:
                candidate.row.attributes = {**earlier.row.attributes, **candidate.row.attributes}
                seen = [t for t in (earlier.row.discovered_at, candidate.row.discovered_at) if t is not None]
                candidate.row.discovered_at = max(seen) if seen else None
                self.result.merged += 1
                for key in earlier.keys:
                    candidates.pop(key, None)
            for key in candidate.keys:
                candidates[key] = candidate
        unique = list({id(c): c for c in candidates.values()}.values())
        if not unique:
            return
        all_keys = sorted({k for c in unique for k in c.keys})
        looking = self._on_writer(self._lookup, dumps(all_keys))
        self._submit_prepared()  # the previous batch is written after this lookup, while this one is reconciled
        in_flight = {state.id: state for state in self._in_flight}
        found = [ci for ci in looking.result() if ci.deleted_at is None and ci.id not in in_flight]
        by_key = {k: ci for ci in [*found, *in_flight.values()] for k in ci.identity_keys}
        writes = _Writes([], [], [], [], [])
        creates: list[dict[str, Any]] = []
        ids = new_ids(len(unique))[::-1]  # popped from the end: in order
        matched: dict[uuid.UUID, tuple[Any, _Candidate]] = {}
        for candidate in unique:
            match = next((by_key[k] for k in candidate.keys if k in by_key), None)
            if match is not None and not self.actor.can("cmdb.import", match.domain):
                self.result.reject(candidate.line, "attributes", "this identifies an existing CI in a domain you may "
                                                                 "not import into")
                continue
            if match is not None and match.id in matched:  # two rows, one CI: the later row wins
                earlier = matched[match.id][1]
                candidate.row.attributes = {**earlier.row.attributes, **candidate.row.attributes}
                self.result.merged += 1
            if match is not None:
                matched[match.id] = (match, candidate)
                continue
            if self.result.dry_run and any(k in self.pending for k in candidate.keys):
                self.result.merged += 1  # an earlier batch of this dry run would have created it
                continue
            if self.result.dry_run:
                self.pending.update(dict.fromkeys(candidate.keys, (candidate.keys[0], candidate.row.domain)))
            creates.append(self._new_row(candidate, ids.pop()))
        for match, candidate in matched.values():
            change = self._reconcile(match, candidate)
            if change is None:
                self.result.unchanged += 1
                continue
            values, before, after = change
            writes.states.append(SimpleNamespace(**values, domain=match.domain, name=match.name,
                                                 environment=match.environment, deleted_at=None))
            if before:
                writes.updates.append(values)
                changes = {"before": before, "after": after, "source": self.source}
                writes.update_audits.append(("update", match.id, changes, match.domain))
            else:
                writes.touches.append(values)
                self.result.unchanged += 1
        self.result.created += len(creates)
        self.result.updated += len(writes.updates)
        if not self.result.dry_run and (creates or writes.updates or writes.touches):
            writes.creates = self._prepare_creates(creates) if creates else []
            writes.states.extend(SimpleNamespace(**row, deleted_at=None) for row in creates)
            self._prepared = writes

    def _lookup(self, keys: str) -> list[Any]:
        return self.db.execute(_EXISTING, {"keys": keys}).all()

    def _write(self, writes: _Writes) -> int:
        """On the writer thread: one batch's statements. Returns how many of its updates the
        database found nothing to change in (only what really changed is counted, audited and
        announced)."""
        db, not_done = self.db, 0
        for statement in writes.creates:
            db.execute(*statement)
        if writes.updates:
            done = set(db.execute(_UPDATE_CIS.bindparams(bump=True, actor=self.actor.user_id),
                                  {"rows": dumps(writes.updates)}).scalars())
            not_done = len(writes.updates) - len(done)
            audits = [a for a in writes.update_audits if a[1] in done]
            emit_batch(db, "ci.updated", "ci", [(a[3], a[1], {"changed": sorted(a[2]["after"]["attributes"]),
                                                             "source": self.source}) for a in audits])
            record_many(db, "ci", audits)
        if writes.touches:
            db.execute(_UPDATE_CIS.bindparams(bump=False, actor=self.actor.user_id), {"rows": dumps(writes.touches)})
        return not_done

    def _prepare_creates(self, rows: list[dict[str, Any]]) -> list[tuple[TextClause, dict[str, Any]]]:
        audits = [("create", row["id"], {"after": {k: row[k] for k in _CREATE_AUDITED if row[k] is not None},
                                          "source": self.source}, row["domain"]) for row in rows]
        events = [(row["domain"], row["id"], {"name": row["name"], "ci_class": row["ci_class"], "source": self.source})
                  for row in rows]
        return [statement for statement in (
            (_INSERT_CIS, {"rows": dumps(rows)}),
            prepare_many(self.db, "ci", audits),
            prepare_batch(self.db, "ci.created", "ci", events),
        ) if statement is not None]

    def _new_row(self, candidate: _Candidate, ci_id: uuid.UUID) -> dict[str, Any]:
        row = candidate.row
        seen = row.discovered_at or self.now
        written = {"source": self.source, "at": seen.isoformat() if row.discovered_at else self.now_text}
        return {"id": ci_id, "domain": row.domain, "name": row.name, "ci_class": row.ci_class,
                "status": row.status.value, "environment": row.environment.value, "owner_id": row.owner_id,
                "attributes": row.attributes, "discovered_by": self.source, "last_discovered_at": seen,
                "identity_keys": candidate.keys, "attribute_sources": dict.fromkeys(row.attributes, written),
                "actor": self.actor.user_id}

    def _reconcile(self, ci: Any, candidate: _Candidate):
        """The attributes this source may write, and whether anything changes."""
        row, cls = candidate.row, candidate.cls
        seen = row.discovered_at or self.now
        rank = _ranker(cls.source_precedence)
        fresh_after = self.now - timedelta(days=cls.staleness_days)
        attributes = dict(ci.attributes)
        sources = dict(ci.attribute_sources or {})
        before, after = {}, {}
        for key, value in row.attributes.items():
            if attributes.get(key) == value:
                continue
            writer = sources.get(key)
            if writer and rank(writer["source"]) < rank(self.source) \
                    and datetime.fromisoformat(writer["at"]) > fresh_after:
                continue  # a higher-precedence source's fresh value stands
            before[key], after[key] = attributes.get(key), value
            attributes[key] = value
            sources[key] = {"source": self.source, "at": seen.isoformat()}
        last_seen = max(filter(None, [ci.last_discovered_at, seen]))
        if not before and last_seen == ci.last_discovered_at:
            return None
        keys = self._compiled(cls)[0](ci.domain, ci.name, ci.environment, attributes)
        values = {"id": ci.id, "attributes": attributes, "attribute_sources": sources, "last_discovered_at": last_seen,
                  "discovered_by": self.source if before else ci.discovered_by or self.source, "identity_keys": keys}
        changes_before = {"attributes": {k: before[k] for k in before}} if before else {}
        changes_after = {"attributes": after} if before else {}
        return values, changes_before, changes_after

    # -- relationships --
    def _relationship_batch(self, rows: list[tuple[int, Any]]) -> None:
        self._settle()
        parsed: list[tuple[int, ImportedRelationship, str, str]] = []
        for line, raw in rows:
            try:
                rel = ImportedRelationship.model_validate(raw)
            except ValidationError as exc:
                error = exc.errors()[0]
                self.result.reject(line, ".".join(str(p) for p in error["loc"]), error["msg"])
                continue
            ends = []
            for end_name in ("source", "target"):
                key = self._end_key(rel.source if end_name == "source" else rel.target)
                if key is None:
                    self.result.reject(line, end_name, "name the CI by its class and one complete identification rule")
                    break
                ends.append(key)
            if len(ends) == 2:
                parsed.append((line, rel, ends[0], ends[1]))
        if not parsed:
            return
        keys = sorted({k for _, _, s, t in parsed for k in (s, t)})
        found = self.db.execute(_ENDS, {"keys": dumps(keys)}).all()
        by_key = {k: (row.id, row.domain) for row in found if row.deleted_at is None for k in row.identity_keys}
        if self.result.dry_run:  # the CIs this dry run would have created count as found
            by_key.update({k: self.pending[k] for k in keys if k not in by_key and k in self.pending})
        new_links: list[dict[str, Any]] = []
        link_ids = new_ids(len(parsed))[::-1]
        domains: dict[uuid.UUID, str | None] = {}
        for line, rel, source_key, target_key in parsed:
            if source_key not in by_key or target_key not in by_key:
                missing = "source" if source_key not in by_key else "target"
                self.result.reject(line, missing, "no such CI (rows must come after the CIs they link)")
                continue
            (source_id, source_domain), (target_id, target_domain) = by_key[source_key], by_key[target_key]
            if source_id == target_id:
                self.result.reject(line, "target", "a CI cannot relate to itself")
                continue
            if not (self.actor.can("cmdb.import", source_domain) and self.actor.can("cmdb.import", target_domain)):
                self.result.reject(line, "source", "linking these CIs needs 'cmdb.import' in both their domains")
                continue
            if isinstance(source_id, str) or isinstance(target_id, str):
                self.result.relationships_created += 1  # dry run: an end is a CI this import would create
                continue
            link_id = link_ids.pop()
            domains[link_id] = source_domain
            new_links.append({"id": link_id, "source_ci_id": source_id, "target_ci_id": target_id,
                              "relationship_type": rel.relationship_type.value})
        if not new_links:
            return
        columns = {
            "ids": [link["id"] for link in new_links], "sources": [link["source_ci_id"] for link in new_links],
            "targets": [link["target_ci_id"] for link in new_links],
            "types": [link["relationship_type"] for link in new_links],
        }
        if self.result.dry_run:
            existing = self.db.execute(text("""
                SELECT count(*) FROM gaas_cmdb.ci_relationships r
                JOIN unnest(CAST(:sources AS uuid[]), CAST(:targets AS uuid[]), CAST(:types AS text[]))
                     AS n(source, target, type)
                  ON r.source_ci_id = n.source AND r.target_ci_id = n.target AND r.relationship_type::text = n.type
            """), columns).scalar_one()
            self.result.relationships_unchanged += existing
            self.result.relationships_created += len(new_links) - existing
            return
        inserted = set(self.db.execute(text("""
            INSERT INTO gaas_cmdb.ci_relationships (id, source_ci_id, target_ci_id, relationship_type, created_by)
            SELECT n.id, n.source, n.target, CAST(n.type AS gaas_cmdb.ci_relationship_type), :actor
            FROM unnest(CAST(:ids AS uuid[]), CAST(:sources AS uuid[]), CAST(:targets AS uuid[]),
                        CAST(:types AS text[])) AS n(id, source, target, type)
            ON CONFLICT ON CONSTRAINT uq_ci_relationship DO NOTHING
            RETURNING id"""), {**columns, "actor": self.actor.user_id}).scalars())
        record_many(self.db, "ci", [
            ("add_relationship", link["source_ci_id"], {"after": {"relationship_id": link["id"],
                                                                  "type": link["relationship_type"],
                                                                  "target_ci_id": link["target_ci_id"]},
                                                        "source": self.source}, domains[link["id"]])
            for link in new_links if link["id"] in inserted])
        self.result.relationships_created += len(inserted)
        self.result.relationships_unchanged += len(new_links) - len(inserted)

    def _end_key(self, end: dict[str, Any]) -> str | None:
        name = end.get("ci_class")
        domain = end.get("domain", self.default_domain)
        if not isinstance(name, str) or not CLASS_NAME.match(name) or not (
                domain is None or (isinstance(domain, str) and DOMAIN_CODE_RE.match(domain))):
            return None
        cls = self._class(name, domain)
        if cls is None:
            return None
        attributes = {k: v for k, v in end.items() if k not in ("ci_class", "domain", "name", "environment")}
        keys = self._compiled(cls)[0](domain, end.get("name", ""), end.get("environment", ""), attributes)
        return keys[0] if keys else None


# Batches go in as one JSON parameter (jsonb_to_recordset, or an array of keys): no per-value
# adaptation in the driver. The keys go in through a sub-select: given as a literal array of a
# thousand keys the planner expects thousands of matches and scans the table; deleted CIs are
# skipped by the caller for the same reason.
_EXISTING = text("""
    SELECT id, domain, name, environment::text AS environment, attributes, attribute_sources, last_discovered_at,
           discovered_by, identity_keys, deleted_at
    FROM gaas_cmdb.configuration_items
    WHERE identity_keys && (SELECT array_agg(k) FROM jsonb_array_elements_text(CAST(:keys AS jsonb)) AS k)""")
_ENDS = text("""
    SELECT id, identity_keys, domain, deleted_at FROM gaas_cmdb.configuration_items
    WHERE identity_keys && (SELECT array_agg(k) FROM jsonb_array_elements_text(CAST(:keys AS jsonb)) AS k)""")
_CREATE_AUDITED = ("name", "ci_class", "domain", "environment", "status", "owner_id", "attributes", "discovered_by")
# The new CIs skip the search-name trigger (the import defers it, see run()) and are listed as
# pending instead, one row per domain, for the worker to index.
_INSERT_CIS = text("""
    WITH created AS (
        INSERT INTO gaas_cmdb.configuration_items (id, domain, name, ci_class, status, environment, owner_id,
            attributes, discovered_by, last_discovered_at, identity_keys, attribute_sources, created_by, updated_by)
        SELECT r.id, r.domain, r.name, r.ci_class, CAST(r.status AS gaas_cmdb.ci_status),
               CAST(r.environment AS gaas_cmdb.environment_type), r.owner_id, r.attributes, r.discovered_by,
               r.last_discovered_at, r.identity_keys, r.attribute_sources, r.actor, r.actor
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id uuid, domain text, name text, ci_class text,
            status text, environment text, owner_id uuid, attributes jsonb, discovered_by text,
            last_discovered_at timestamptz, identity_keys text[], attribute_sources jsonb, actor uuid)
        RETURNING id, domain
    )
    INSERT INTO gaas_cmdb.ci_search_names_pending (domain, ci_ids)
    SELECT domain, array_agg(id) FROM created GROUP BY domain""")
_DEFER_SEARCH_NAMES = text("SELECT set_config('gaas.defer_search_names', :value, true)")
# A touch (bump false) moves last_discovered_at without a new version.
_UPDATE_CIS = text("""
    UPDATE gaas_cmdb.configuration_items c
    SET attributes = r.attributes, attribute_sources = r.attribute_sources,
        last_discovered_at = r.last_discovered_at, discovered_by = r.discovered_by,
        identity_keys = r.identity_keys,
        version = c.version + CASE WHEN :bump THEN 1 ELSE 0 END,
        updated_at = CASE WHEN :bump THEN now() ELSE c.updated_at END,
        updated_by = CASE WHEN :bump THEN CAST(:actor AS uuid) ELSE c.updated_by END
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id uuid, attributes jsonb, attribute_sources jsonb,
        last_discovered_at timestamptz, discovered_by text, identity_keys text[])
    WHERE c.id = r.id
    RETURNING c.id""")


def _ranker(precedence: list[str]) -> Callable[[str], int]:
    """Lower is stronger; a source the class does not list ranks below every listed one."""
    order = {source: index for index, source in enumerate(precedence)}
    return lambda source: order.get(source, len(order))


def import_cis(db: Session, actor: Actor, rows: Iterable[tuple[int, Any]], *, source: str, dry_run: bool,
               partial: bool, default_domain: str | None = None, owner_id: uuid.UUID | None = None,
               progress: Callable[[int], None] | None = None) -> ImportResult:
    """Run an import in the caller's transaction. The caller commits only when `committed` is true."""
    if not actor.can_anywhere("cmdb.import"):
        raise Forbidden("Imports need the 'cmdb.import' permission.", permission="cmdb.import")
    if not SOURCE_NAME.match(source):
        raise ValidationProblem.field("source", "a source is a short lower-case name, e.g. aws-auto-discovery")
    if source in RESERVED_SOURCES:
        raise ValidationProblem.field("source", f"'{source}' is reserved for changes made by people")
    importer = Importer(db, actor, source=source, dry_run=dry_run, partial=partial,
                        default_domain=default_domain, owner_id=owner_id)
    result = importer.run(rows, progress)
    result.committed = not dry_run and (partial or result.rejected == 0)
    return result
