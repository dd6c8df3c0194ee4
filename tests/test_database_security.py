"""Security enforced by PostgreSQL itself: raw SQL through the application role."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from tests.support import Database, World

SCHEMAS = ("gaas_service_catalog", "gaas_incident_mgmt", "gaas_change_mgmt", "gaas_cmdb", "gaas_workflow",
           "gaas_iam", "gaas_cost_mgmt", "gaas_knowledge", "gaas_audit")


@pytest.fixture(scope="module")
def two_domains(world: World):
    health = world.domain(name="Healthcare")
    justice = world.domain(name="Justice")
    return {
        "health": health,
        "justice": justice,
        "nurse": world.user(health, "service_desk_agent"),
        "judge": world.user(justice, "service_desk_agent"),
    }


def act_as(conn: psycopg.Connection, user_id: uuid.UUID | str, domains: str) -> None:
    conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                 (str(user_id), domains))


def test_every_schema_and_extension_exists(database: Database):
    schemas = {r["nspname"] for r in database.owner_rows("SELECT nspname FROM pg_namespace")}
    assert set(SCHEMAS) <= schemas
    extensions = {r["extname"] for r in database.owner_rows("SELECT extname FROM pg_extension")}
    assert {"pg_trgm", "btree_gin"} <= extensions


def test_app_role_is_unprivileged_and_owns_nothing(database: Database):
    role = database.app_url.username
    attrs = database.owner_rows(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = :r", r=role)[0]
    assert attrs == {"rolsuper": False, "rolbypassrls": False, "rolcreaterole": False, "rolcreatedb": False}
    owned = database.owner_rows(
        "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.rolname = :r AND n.nspname LIKE 'gaas_%'",
        r=role)
    assert owned == []


def test_every_table_with_a_domain_column_has_forced_rls(database: Database):
    rows = database.owner_rows("""
        SELECT c.relname, n.nspname, c.relrowsecurity, c.relforcerowsecurity
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attname = 'domain' AND NOT a.attisdropped AND n.nspname LIKE 'gaas_%'
          AND c.relkind IN ('r', 'p') AND NOT c.relispartition""")
    assert {r["relname"] for r in rows} >= {"users", "roles", "audit_log"}
    assert all(r["relrowsecurity"] and r["relforcerowsecurity"] for r in rows), rows


def test_partitions_are_not_reachable_directly(database: Database):
    with database.psycopg_app() as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM gaas_audit.audit_log_default")


def test_healthcare_transaction_sees_no_justice_rows(database: Database, two_domains):
    nurse, judge = two_domains["nurse"], two_domains["judge"]
    with database.psycopg_app() as conn:
        act_as(conn, nurse.id, two_domains["health"])
        domains = {r[0] for r in conn.execute("SELECT DISTINCT domain FROM gaas_iam.users").fetchall()}
        assert two_domains["justice"] not in domains
        assert two_domains["health"] in domains
        assert conn.execute("SELECT count(*) FROM gaas_iam.users WHERE id = %s", (judge.id,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM gaas_audit.audit_log WHERE domain = %s",
                            (two_domains["justice"],)).fetchone()[0] == 0
        seen_domains = {r[0] for r in conn.execute("SELECT code FROM gaas_iam.domains").fetchall()}
        assert seen_domains == {two_domains["health"]}


def test_healthcare_transaction_cannot_insert_a_justice_row(database: Database, two_domains):
    with database.psycopg_app() as conn:
        act_as(conn, two_domains["nurse"].id, two_domains["health"])
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(
                "INSERT INTO gaas_iam.users (email, name, domain, created_by, updated_by)"
                " VALUES ('intruder@example.org', 'Intruder', %s, %s, %s)",
                (two_domains["justice"], two_domains["nurse"].id, two_domains["nurse"].id))


def test_healthcare_transaction_cannot_update_or_move_justice_rows(database: Database, two_domains):
    nurse, judge = two_domains["nurse"], two_domains["judge"]
    with database.psycopg_app() as conn:
        act_as(conn, nurse.id, two_domains["health"])
        updated = conn.execute("UPDATE gaas_iam.users SET name = 'hacked' WHERE id = %s", (judge.id,))
        assert updated.rowcount == 0
        # Nor move one of its own rows into another domain.
        with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("UPDATE gaas_iam.users SET domain = %s WHERE id = %s", (two_domains["justice"], nurse.id))
    assert database.owner_rows("SELECT name FROM gaas_iam.users WHERE id = :id", id=judge.id)[0]["name"] != "hacked"


def test_without_context_no_rows_at_all(database: Database, two_domains):
    with database.psycopg_app() as conn:
        for table in ("gaas_iam.users", "gaas_iam.roles", "gaas_iam.domains", "gaas_iam.user_roles",
                      "gaas_iam.api_tokens", "gaas_audit.audit_log"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("INSERT INTO gaas_iam.domains (code, name, created_by, updated_by)"
                         " VALUES ('rogue', 'Rogue', gen_random_uuid(), gen_random_uuid())")


def test_context_ends_with_the_transaction(database: Database, two_domains):
    """set_config(..., true) is transaction-local: safe behind PgBouncer's transaction mode."""
    with database.psycopg_app() as conn:
        with conn.transaction():
            act_as(conn, two_domains["nurse"].id, two_domains["health"])
            assert conn.execute("SELECT count(*) FROM gaas_iam.users").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM gaas_iam.users").fetchone()[0] == 0


def test_audit_log_is_append_only(database: Database, two_domains):
    nurse = two_domains["nurse"]
    with database.psycopg_app() as conn:
        act_as(conn, nurse.id, two_domains["health"])
        conn.execute("INSERT INTO gaas_audit.audit_log (user_id, action, entity_type, domain)"
                     " VALUES (%s, 'note', 'test', %s)", (nurse.id, two_domains["health"]))
        assert conn.execute("SELECT count(*) FROM gaas_audit.audit_log WHERE action = 'note'").fetchone()[0] == 1
        for statement in ("UPDATE gaas_audit.audit_log SET action = 'forged'",
                          "DELETE FROM gaas_audit.audit_log",
                          "TRUNCATE gaas_audit.audit_log"):
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)


def test_app_role_cannot_disable_or_bypass_rls(database: Database, two_domains):
    with database.psycopg_app() as conn:
        for statement in ("ALTER TABLE gaas_iam.users DISABLE ROW LEVEL SECURITY",
                          "ALTER TABLE gaas_iam.users NO FORCE ROW LEVEL SECURITY",
                          "DROP POLICY users_select ON gaas_iam.users",
                          "CREATE POLICY open ON gaas_iam.users USING (true)",
                          "ALTER ROLE CURRENT_USER BYPASSRLS"):
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
        # row_security=off does not switch policies off: it makes the query fail instead.
        with conn.transaction():
            conn.execute("SET LOCAL row_security = off")
            with pytest.raises(errors.InsufficientPrivilege, match="row-level security"):
                conn.execute("SELECT count(*) FROM gaas_iam.users")


def test_app_role_cannot_read_password_or_token_hashes(database: Database, two_domains):
    with database.psycopg_app() as conn:
        act_as(conn, two_domains["nurse"].id, "*")
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SELECT password_hash FROM gaas_iam.users")
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SELECT secret_hash FROM gaas_iam.api_tokens")


def test_read_only_context_cannot_write(database: Database, two_domains):
    nurse = two_domains["nurse"]
    with database.psycopg_app() as conn:
        act_as(conn, nurse.id, two_domains["health"])
        conn.execute("SELECT set_config('gaas.read_only', 'true', true)")
        assert conn.execute("UPDATE gaas_iam.users SET phone = '123' WHERE id = %s", (nurse.id,)).rowcount == 0


def test_global_context_sees_every_domain(database: Database, two_domains):
    with database.psycopg_app() as conn:
        act_as(conn, uuid.uuid4(), "*")
        domains = {r[0] for r in conn.execute("SELECT DISTINCT domain FROM gaas_iam.users").fetchall()}
        assert {two_domains["health"], two_domains["justice"]} <= domains
