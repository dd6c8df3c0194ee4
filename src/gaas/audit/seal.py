"""A tamper-evident audit log: a SHA-256 chain per domain and month, added after the fact.

Writers are never serialised: they only stamp each audit row with their transaction id
(`txid`, a column default the application cannot set). A sealer (the worker, or `gaas audit
seal`) later takes every row whose transaction ended before the oldest one still running in
this database (`gaas_audit.seal_horizon()`), so that no late commit can fall behind the seal,
in (txid, timestamp, id) order, and appends to each
row's chain: row_hash = sha256(the row's canonical text), chain_hash = sha256(previous
chain_hash || row_hash). The application role may append seals, never change them.

`verify` recomputes every chain from the rows and names, per chain, the first row that was
changed, removed, or inserted out of band. Someone holding the owner role could recompute the
seals too: keep the chain heads `verify` prints somewhere else (a ticket, a log store) to make
that evident as well. `archive` exports whole old partitions (verified first) to gzip'd CSV,
records the file's SHA-256, then detaches and drops them.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from gaas.core.jsontext import dumps

GENESIS = bytes(32)
BATCH = 5000
# The row as text, identically on every server version: epoch microseconds rather than a
# timestamp (whose rendering follows the session's time zone), jsonb's own canonical text.
_CANONICAL = """
    SELECT a.id, a.timestamp, coalesce(a.domain, '') AS chain_domain,
           date_trunc('month', a.timestamp AT TIME ZONE 'UTC')::date AS period,
           jsonb_build_array(a.id, (extract(epoch FROM a.timestamp) * 1000000)::bigint, a.user_id, a.user_email,
                             a.action, a.entity_type, a.entity_id, a.changes, a.ip_address::text, a.user_agent,
                             a.domain, a.request_id, a.txid::text)::text AS canonical
    FROM gaas_audit.audit_log a"""
_UNSEALED = text(_CANONICAL + """
    WHERE (a.txid IS NULL AND CAST(:first AS boolean))
       OR (a.txid >= CAST(coalesce(:since, '0') AS xid8) AND a.txid < CAST(:until AS xid8))
    ORDER BY a.txid NULLS FIRST, a.timestamp, a.id""")
_INSERT_SEALS = text("""
    INSERT INTO gaas_audit.audit_seals (chain_domain, period, position, audit_id, audit_timestamp, row_hash, chain_hash)
    SELECT s.chain_domain, s.period, s.position, s.audit_id, s.audit_timestamp, decode(s.row_hash, 'hex'),
           decode(s.chain_hash, 'hex')
    FROM jsonb_to_recordset(CAST(:seals AS jsonb)) AS s(chain_domain text, period date, position bigint,
        audit_id uuid, audit_timestamp timestamptz, row_hash text, chain_hash text)""")


def row_hash(canonical: str) -> bytes:
    return hashlib.sha256(canonical.encode()).digest()


def chained(previous: bytes, row: bytes) -> bytes:
    return hashlib.sha256(previous + row).digest()


# ---- sealing ------------------------------------------------------------------------------------------

def seal(db: Session) -> int:
    """Seal every row whose transaction has ended; returns how many. Run as the application role
    with a context that sees every domain. Concurrent sealers skip rather than wait."""
    state = db.execute(text("SELECT horizon::text AS horizon FROM gaas_audit.seal_state "
                            "FOR UPDATE SKIP LOCKED")).first()
    if state is None:
        return 0  # another sealer is at work
    until = db.execute(text("SELECT gaas_audit.seal_horizon()::text")).scalar_one()
    heads: dict[tuple[str, date], tuple[int, bytes]] = {}
    pending: list[dict[str, Any]] = []
    sealed = 0
    rows = db.execute(_UNSEALED.execution_options(stream_results=True, yield_per=BATCH),
                      {"first": state.horizon is None, "since": state.horizon, "until": until})
    for row in rows:
        key = (row.chain_domain, row.period)
        if key not in heads:
            heads[key] = _head(db, *key)
        position, previous = heads[key]
        digest = row_hash(row.canonical)
        link = chained(previous, digest)
        heads[key] = (position + 1, link)
        pending.append({"chain_domain": row.chain_domain, "period": row.period, "position": position + 1,
                        "audit_id": row.id, "audit_timestamp": row.timestamp, "row_hash": digest.hex(),
                        "chain_hash": link.hex()})
        if len(pending) >= BATCH:
            sealed += _write_seals(db, pending)
    sealed += _write_seals(db, pending)
    db.execute(text("UPDATE gaas_audit.seal_state SET horizon = CAST(:until AS xid8), sealed_rows = sealed_rows + :n, "
                    "updated_at = now()"), {"until": until, "n": sealed})
    return sealed


def _head(db: Session, chain_domain: str, period: date) -> tuple[int, bytes]:
    last = db.execute(text("SELECT position, chain_hash FROM gaas_audit.audit_seals WHERE chain_domain = :d "
                           "AND period = :p ORDER BY position DESC LIMIT 1"), {"d": chain_domain, "p": period}).first()
    return (last.position, bytes(last.chain_hash)) if last else (0, GENESIS)


def _write_seals(db: Session, pending: list[dict[str, Any]]) -> int:
    if not pending:
        return 0
    db.execute(_INSERT_SEALS, {"seals": dumps(pending)})
    count = len(pending)
    pending.clear()
    return count


# ---- verifying ---------------------------------------------------------------------------------------

@dataclass
class Finding:
    kind: str  # changed | removed | inserted | seal_altered
    chain_domain: str
    period: date
    position: int
    audit_id: str
    detail: str


@dataclass
class Verification:
    rows: int = 0
    chains: int = 0
    findings: list[Finding] = field(default_factory=list)
    heads: dict[str, str] = field(default_factory=dict)  # "domain/YYYY-MM" -> last chain hash

    @property
    def intact(self) -> bool:
        return not self.findings


def verify(conn: Connection, *, period: date | None = None) -> Verification:
    """Recompute every sealed chain (as the owner: every domain, whatever row-level security says).
    Rows not sealed yet (newer than the seal horizon) are not judged."""
    horizon = conn.execute(text("SELECT horizon::text FROM gaas_audit.seal_state")).scalar()
    archived = [(r.range_from, r.range_to) for r in conn.execute(text(
        "SELECT range_from, range_to FROM gaas_audit.archives"))]
    only = "AND date_trunc('month', a.timestamp AT TIME ZONE 'UTC')::date = :period" if period else ""
    rows = conn.execute(text(_CANONICAL + f"""
        WHERE (a.txid IS NULL OR a.txid < CAST(coalesce(:horizon, '0') AS xid8)) {only}
        ORDER BY chain_domain, period, a.txid NULLS FIRST, a.timestamp, a.id""").execution_options(
        stream_results=True, yield_per=BATCH), {"horizon": horizon, "period": period})
    seals = conn.execute(text(f"""
        SELECT chain_domain, period, position, audit_id, row_hash, chain_hash FROM gaas_audit.audit_seals
        WHERE TRUE {"AND period = :period" if period else ""}
        ORDER BY chain_domain, period, position""").execution_options(stream_results=True, yield_per=BATCH),
        {"period": period})
    result = Verification()
    for key, chain_rows, chain_seals in _by_chain(rows, seals):
        if any(start <= datetime(key[1].year, key[1].month, 1, tzinfo=UTC) < end for start, end in archived):
            continue  # exported and detached: the archive's checksum stands for it
        result.chains += 1
        finding, head, checked = _verify_chain(conn, key, chain_rows, chain_seals)
        result.rows += checked
        result.heads[f"{key[0] or '(global)'}/{key[1]:%Y-%m}"] = head.hex()
        if finding:
            result.findings.append(finding)
    return result


def _by_chain(rows, seals) -> Iterator[tuple[tuple[str, date], Iterator, Iterator]]:
    """Both ordered streams, grouped per chain, chains in order (one may lack a chain the other
    has). Groups are streamed, never held: a domain's month may hold millions of rows."""
    row_groups = itertools.groupby(rows, key=lambda r: (r.chain_domain, r.period))
    seal_groups = itertools.groupby(seals, key=lambda s: (s.chain_domain, s.period))
    row_next, seal_next = next(row_groups, None), next(seal_groups, None)
    while row_next or seal_next:
        key = min(g[0] for g in (row_next, seal_next) if g)
        has_rows, has_seals = bool(row_next and row_next[0] == key), bool(seal_next and seal_next[0] == key)
        yield key, row_next[1] if has_rows else iter(()), seal_next[1] if has_seals else iter(())
        # Advancing a groupby skips whatever of its current group was left unread.
        if has_rows:
            row_next = next(row_groups, None)
        if has_seals:
            seal_next = next(seal_groups, None)


def _verify_chain(conn: Connection, key: tuple[str, date], rows: Iterator, seals: Iterator
                  ) -> tuple[Finding | None, bytes, int]:
    """Walk one chain's rows and seals side by side: the first divergence, the head, rows checked."""
    previous, checked, last_position = GENESIS, 0, 0
    row, seal_ = next(rows, None), next(seals, None)

    def finding(kind: str, position: int, audit_id: Any, detail: str) -> Finding:
        return Finding(kind, key[0], key[1], position, str(audit_id), detail)

    while row is not None or seal_ is not None:
        if seal_ is not None and chained(previous, bytes(seal_.row_hash)) != bytes(seal_.chain_hash):
            return finding("seal_altered", seal_.position, seal_.audit_id,
                           "the seal itself was altered: its chain hash does not follow"), previous, checked
        if row is not None and seal_ is not None and row.id == seal_.audit_id:
            if row_hash(row.canonical) != bytes(seal_.row_hash):
                return finding("changed", seal_.position, row.id,
                               "the row differs from what was sealed"), previous, checked
            previous, checked, last_position = bytes(seal_.chain_hash), checked + 1, seal_.position
            row, seal_ = next(rows, None), next(seals, None)
            continue
        if row is not None and (seal_ is None or not _is_sealed(conn, row.id)):
            return finding("inserted", seal_.position if seal_ else last_position + 1, row.id,
                           "below the seal horizon but never sealed: inserted out of band"), previous, checked
        return finding("removed", seal_.position, seal_.audit_id,
                       "a sealed row is missing from the audit log"), previous, checked
    return None, previous, checked


def _is_sealed(conn: Connection, audit_id: Any) -> bool:
    return conn.execute(text("SELECT 1 FROM gaas_audit.audit_seals WHERE audit_id = :id"),
                        {"id": audit_id}).first() is not None


# ---- archiving ---------------------------------------------------------------------------------------

PARTITION = re.compile(r"^audit_log_(\d{4})_(\d{2})$")


@dataclass
class Archived:
    partition: str
    rows: int
    path: Path
    sha256: str


class ArchiveRefused(RuntimeError):
    pass


def archive(conn: Connection, before: date, directory: Path) -> list[Archived]:
    """Export, record, detach and drop every monthly partition that ends on or before `before`,
    each only if its chains verify and all its rows are sealed. Runs in the caller's transaction
    (as the owner); the files are written first, so a failure leaves the partitions in place."""
    directory.mkdir(parents=True, exist_ok=True)
    done = []
    for name in conn.execute(text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'gaas_audit.audit_log'::regclass ORDER BY 1")).scalars():
        match = PARTITION.match(name)
        if not match:
            continue
        start = date(int(match[1]), int(match[2]), 1)
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        if end > before:
            continue
        done.append(_archive_partition(conn, name, start, end, directory))
    return done


def _archive_partition(conn: Connection, name: str, start: date, end: date, directory: Path) -> Archived:
    unsealed = conn.execute(text(
        f"SELECT count(*) FROM gaas_audit.{name} WHERE txid >= (SELECT coalesce(horizon, '0') FROM "
        "gaas_audit.seal_state)")).scalar_one()
    if unsealed:
        raise ArchiveRefused(f"{name}: {unsealed} rows are not sealed yet; run `gaas audit seal` first.")
    check = verify(conn, period=start)
    if not check.intact:
        first = check.findings[0]
        raise ArchiveRefused(f"{name}: the audit chain does not verify ({first.kind} row {first.audit_id}).")
    path = directory / f"{name}.csv.gz"
    rows = conn.execute(text(f"SELECT count(*) FROM gaas_audit.{name}")).scalar_one()
    export = f"COPY (SELECT * FROM gaas_audit.{name} ORDER BY timestamp, id) TO STDOUT WITH (FORMAT csv, HEADER)"
    with gzip.open(path, "wb") as out, conn.connection.dbapi_connection.cursor().copy(export) as copy:
        for chunk in copy:
            out.write(chunk)
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    conn.execute(text("INSERT INTO gaas_audit.archives (partition_name, range_from, range_to, row_count, file_name, "
                      "sha256) VALUES (:n, :f, :t, :rows, :file, :sha)"),
                 {"n": name, "f": datetime(start.year, start.month, 1, tzinfo=UTC),
                  "t": datetime(end.year, end.month, 1, tzinfo=UTC), "rows": rows, "file": path.name, "sha": checksum})
    conn.execute(text(f"ALTER TABLE gaas_audit.audit_log DETACH PARTITION gaas_audit.{name}"))
    conn.execute(text(f"DROP TABLE gaas_audit.{name}"))
    return Archived(name, rows, path, checksum)
