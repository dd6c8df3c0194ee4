"""Backup, restore into an empty database, and the checks that make a backup trustworthy:
checksum, row counts from the dump's own snapshot, retention."""

from __future__ import annotations

import json
import os
import secrets

import pytest
from psycopg import sql
from sqlalchemy import create_engine, pool, text
from typer.testing import CliRunner

from gaas.cli import app as cli
from gaas.core import backup, db
from gaas.core.settings import get_settings
from tests.conftest import _admin_conn


@pytest.fixture
def empty_database(pg_server, monkeypatch):
    """A new empty database that GAAS_DATABASE_URL points at, for the restore; the module's
    database is pointed at again afterwards."""
    name = f"gaas_restore_{secrets.token_hex(3)}"
    with _admin_conn(pg_server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = pg_server.set(database=name)
    monkeypatch.setenv("GAAS_DATABASE_URL", target.render_as_string(hide_password=False))
    monkeypatch.setenv("GAAS_APP_DATABASE_URL", os.environ["GAAS_APP_DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}")
    get_settings.cache_clear()
    yield target
    monkeypatch.undo()
    get_settings.cache_clear()
    db.app_engine.cache_clear()
    db.session_factory.cache_clear()
    with _admin_conn(pg_server) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def demo_sealed(database):
    """The demo data, its audit log sealed: the round trip must keep every row and every seal."""
    from gaas import demo
    from gaas.audit import seal
    from gaas.core.db import unit_of_work
    from gaas.iam.service import system_actor

    assert demo.load_demo()["domains"] == 3
    with unit_of_work(system_actor(), database.factory) as db:
        assert seal.seal(db) > 1000


def test_backup_restore_round_trip_with_checks(demo_sealed, database, tmp_path, empty_database):
    source = database.owner_url
    runner = CliRunner()
    expected = backup.row_counts(source)
    assert expected["gaas_incident_mgmt.incidents"] > 0 and expected["gaas_audit.audit_seals"] > 1000
    first = backup.backup(source, tmp_path, keep=2)
    assert first.tables == expected and first.tables["gaas_iam.users"] >= 2
    described = json.loads(first.path.with_suffix(".json").read_text())
    assert described["sha256"] == first.sha256 and described["tables"] == expected

    # A damaged dump is refused before anything is restored.
    damaged = tmp_path / "damaged" / first.path.name
    damaged.parent.mkdir()
    data = bytearray(first.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    damaged.with_suffix(".json").write_text(first.path.with_suffix(".json").read_text())
    refused = runner.invoke(cli, ["restore", str(damaged)])
    assert refused.exit_code == 1 and "SHA-256" in refused.output
    assert backup.row_counts(empty_database) == {}

    restored = runner.invoke(cli, ["restore", str(first.path)], catch_exceptions=False)
    assert restored.exit_code == 0, restored.output
    assert "audit log verifies" in restored.output
    assert backup.row_counts(empty_database) == expected
    verified = runner.invoke(cli, ["audit", "verify"], catch_exceptions=False)  # GAAS_DATABASE_URL: the restored
    assert verified.exit_code == 0 and "intact" in verified.output, verified.output
    engine = create_engine(empty_database, poolclass=pool.NullPool)
    with engine.connect() as conn:  # the application role can work in the restored database
        assert conn.execute(text(
            "SELECT has_table_privilege('gaas_app', 'gaas_service_catalog.services', 'SELECT, INSERT, UPDATE')"
            " AND has_column_privilege('gaas_app', 'gaas_iam.users', 'email', 'SELECT')"
            " AND NOT has_column_privilege('gaas_app', 'gaas_iam.users', 'password_hash', 'SELECT')"
            " AND NOT has_table_privilege('gaas_app', 'gaas_audit.audit_log', 'UPDATE')")).scalar_one()
    engine.dispose()
    again = runner.invoke(cli, ["restore", str(first.path)])
    assert again.exit_code == 1 and "not empty" in again.output


def test_backups_beyond_the_retention_are_removed(database, tmp_path):
    made = []
    for stamp in ("20260101T000000Z", "20260102T000000Z"):  # older backups, as earlier runs left them
        old = tmp_path / f"gaas-{database.owner_url.database}-{stamp}.dump"
        old.write_bytes(b"old")
        old.with_suffix(".json").write_text("{}")
        made.append(old)
    (tmp_path / "gaas-otherdb-20260101T000000Z.dump").write_bytes(b"another database's")
    done = backup.backup(database.owner_url, tmp_path, keep=2)
    assert done.removed == [made[0]] and not made[0].with_suffix(".json").exists()
    assert sorted(p.name for p in tmp_path.glob("*.dump")) == sorted(
        [made[1].name, done.path.name, "gaas-otherdb-20260101T000000Z.dump"])
