"""The audit log is tamper-evident: sealed into SHA-256 chains after the fact (writers never wait),
and verification names the first row changed, removed or inserted out of band. Real rows, real
roles, real concurrent transactions."""

from __future__ import annotations

import gzip
import hashlib
import uuid
from datetime import UTC, date, datetime

import psycopg
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from gaas.audit import seal
from gaas.audit import service as audit
from gaas.cli import app as cli
from gaas.core.db import set_context, unit_of_work
from gaas.iam.service import system_actor


def sealed(database) -> int:
    with unit_of_work(system_actor(), database.factory) as db:
        return seal.seal(db)


def write_audit(database, domain: str | None, note: str) -> uuid.UUID:
    entity = uuid.uuid4()
    with unit_of_work(system_actor(), database.factory) as db:
        audit.record(db, action="update", entity_type="test", entity_id=entity, domain=domain,
                     changes={"after": {"note": note}})
    return entity


def audit_id_of(database, entity: uuid.UUID) -> uuid.UUID:
    return database.owner_rows("SELECT id FROM gaas_audit.audit_log WHERE entity_id = :e", e=entity)[0]["id"]


def verify_with(database, tamper: str | None = None, **params) -> seal.Verification:
    """Verify as the owner, optionally after tampering inside the same, rolled-back transaction."""
    with database.owner_engine.connect() as conn:
        if tamper:
            conn.execute(text(tamper), params)
        try:
            return seal.verify(conn)
        finally:
            conn.rollback()


@pytest.fixture(scope="module")
def history(world, database):
    domain = world.domain()
    world.user(domain, "service_desk_agent")
    entities = [write_audit(database, domain, f"note {i}") for i in range(3)]
    assert sealed(database) > 0
    return {"domain": domain, "entities": entities}


def test_sealed_chains_verify_and_name_their_heads(history, database):
    result = verify_with(database)
    assert result.intact and result.rows > 0
    month = f"{datetime.now(UTC):%Y-%m}"
    assert f"{history['domain']}/{month}" in result.heads and len(result.heads[f"{history['domain']}/{month}"]) == 64
    assert sealed(database) == 0  # nothing new: sealing again adds nothing


def test_a_changed_row_is_named(history, database):
    target = audit_id_of(database, history["entities"][1])
    result = verify_with(database, "UPDATE gaas_audit.audit_log SET changes = '{\"after\": {\"note\": \"forged\"}}' "
                                   "WHERE id = :id", id=target)
    assert [(f.kind, f.audit_id, f.chain_domain) for f in result.findings] == [
        ("changed", str(target), history["domain"])]


def test_a_removed_row_is_named(history, database):
    target = audit_id_of(database, history["entities"][0])
    result = verify_with(database, "DELETE FROM gaas_audit.audit_log WHERE id = :id", id=target)
    assert [(f.kind, f.audit_id) for f in result.findings] == [("removed", str(target))]


def test_a_row_inserted_out_of_band_is_named(history, database):
    forged = uuid.uuid4()
    result = verify_with(database, "INSERT INTO gaas_audit.audit_log (id, action, entity_type, domain, txid) "
                                   "VALUES (:id, 'delete', 'test', :d, '3')", id=forged, d=history["domain"])
    assert [(f.kind, f.audit_id) for f in result.findings] == [("inserted", str(forged))]


def test_an_altered_seal_is_named(history, database):
    target = audit_id_of(database, history["entities"][2])
    result = verify_with(database, "UPDATE gaas_audit.audit_seals SET row_hash = sha256('x') WHERE audit_id = :id",
                         id=target)
    assert [(f.kind, f.audit_id) for f in result.findings] == [("seal_altered", str(target))]


def test_the_application_role_cannot_touch_seals_or_choose_a_txid(history, database):
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, false), set_config('gaas.domains', '*', false)",
                     (str(system_actor().user_id),))
        for statement in ("UPDATE gaas_audit.audit_seals SET row_hash = sha256('x')",
                          "DELETE FROM gaas_audit.audit_seals",
                          "INSERT INTO gaas_audit.audit_log (action, entity_type, txid) VALUES ('x', 'test', '5')",
                          "UPDATE gaas_audit.audit_log SET action = 'x'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()


def test_a_transaction_still_running_is_sealed_later_never_skipped(history, database):
    slow = database.factory()
    slow.begin()
    set_context(slow, system_actor())
    entity = uuid.uuid4()
    audit.record(slow, action="update", entity_type="test", entity_id=entity, domain=history["domain"])
    slow.flush()
    write_audit(database, history["domain"], "committed meanwhile")
    sealed(database)  # the running transaction holds the horizon back: its row cannot be passed over
    slow.commit()
    slow.close()
    sealed(database)
    found = database.owner_rows("SELECT count(*) AS n FROM gaas_audit.audit_seals s JOIN gaas_audit.audit_log a "
                                "ON a.id = s.audit_id WHERE a.entity_id = :e", e=entity)
    assert found[0]["n"] == 1
    assert verify_with(database).intact


def test_old_months_are_archived_with_a_checksum_and_detached(history, database, tmp_path):
    runner = CliRunner()
    with database.owner_engine.begin() as conn:  # rows of an old month, as a long-running platform has them
        conn.execute(text("SELECT gaas_audit.ensure_audit_log_partitions(40, 1)"))
        conn.execute(text("INSERT INTO gaas_audit.audit_log (action, entity_type, domain, timestamp) "
                          "SELECT 'update', 'old', :d, timestamp '2024-03-10 12:00' + make_interval(mins => g) "
                          "FROM generate_series(1, 5) g"), {"d": history["domain"]})
    refused = runner.invoke(cli, ["audit", "archive", "--before", "2024-04-01", "--to", str(tmp_path)])
    assert refused.exit_code == 1 and "not sealed" in refused.output
    assert sealed(database) == 5
    done = runner.invoke(cli, ["audit", "archive", "--before", "2024-04-01", "--to", str(tmp_path)],
                         catch_exceptions=False)
    assert done.exit_code == 0, done.output
    export = tmp_path / "audit_log_2024_03.csv.gz"
    [record] = database.owner_rows("SELECT partition_name, row_count, sha256, range_from FROM gaas_audit.archives "
                                   "WHERE partition_name = 'audit_log_2024_03'")
    assert record["row_count"] == 5 and record["sha256"] == hashlib.sha256(export.read_bytes()).hexdigest()
    assert record["range_from"] == datetime(2024, 3, 1, tzinfo=UTC)
    lines = gzip.decompress(export.read_bytes()).decode().splitlines()
    assert len(lines) == 6 and lines[0].startswith("id,")
    assert database.owner_rows("SELECT to_regclass('gaas_audit.audit_log_2024_03') AS t")[0]["t"] is None
    verified = runner.invoke(cli, ["audit", "verify"], catch_exceptions=False)
    assert verified.exit_code == 0 and "intact" in verified.output
    assert f"{history['domain']}/{date.today():%Y-%m}" in verified.output


def test_the_worker_seals_the_audit_log_on_its_own(history, database):
    from tests.test_workflow_support import make_worker

    entity = write_audit(database, history["domain"], "sealed by the worker")
    make_worker(database).run_until_idle()
    found = database.owner_rows("SELECT count(*) AS n FROM gaas_audit.audit_seals s JOIN gaas_audit.audit_log a "
                                "ON a.id = s.audit_id WHERE a.entity_id = :e", e=entity)
    assert found[0]["n"] == 1
    assert verify_with(database).intact
