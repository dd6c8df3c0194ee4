"""The specification's gaas_incident_mgmt and gaas_change_mgmt, checked against the catalogue:
every table, column (with its type and nullability), enum value, constraint and index it writes;
and the isolation of the ITSM tables as the application role."""

from __future__ import annotations

import pytest

from tests.support import World, api_incident

INC, C = "gaas_incident_mgmt", "gaas_change_mgmt"
TS, UUID, TEXT, INT, BOOL = "timestamp with time zone", "uuid", "text", "integer", "boolean"

# (column, type, nullable) as the specification writes them (TIMESTAMP as timestamptz, our convention).
BASE = [("id", UUID, False), ("domain", "character varying(100)", True), ("deleted_at", TS, True),
        ("created_at", TS, False), ("created_by", UUID, False), ("updated_at", TS, False),
        ("updated_by", UUID, False), ("version", INT, False)]
SPEC_COLUMNS = {
    (INC, "incidents"): [*BASE,
        ("number", "character varying(50)", False), ("short_description", "character varying(200)", False),
        ("description", TEXT, True), ("priority", "incident_priority", False), ("impact", "incident_impact", False),
        ("urgency", "incident_urgency", False), ("category", "character varying(100)", True),
        ("subcategory", "character varying(100)", True), ("status", "incident_status", False),
        ("assigned_to", UUID, True), ("assigned_group", "character varying(100)", True), ("service_id", UUID, True),
        ("ci_id", UUID, True), ("sla_due", TS, True), ("sla_breached", BOOL, True), ("resolution_notes", TEXT, True),
        ("resolved_at", TS, True), ("resolved_by", UUID, True), ("closed_at", TS, True), ("closed_by", UUID, True),
        ("problem_id", UUID, True)],
    (INC, "problems"): [*BASE,
        ("number", "character varying(50)", False), ("short_description", "character varying(200)", False),
        ("description", TEXT, True), ("status", "problem_status", False), ("priority", "incident_priority", False),
        ("assigned_to", UUID, True), ("assigned_group", "character varying(100)", True), ("root_cause", TEXT, True),
        ("workaround", TEXT, True), ("service_id", UUID, True), ("ci_id", UUID, True), ("permanent_fix", TEXT, True),
        ("resolved_at", TS, True), ("resolved_by", UUID, True), ("closed_at", TS, True), ("closed_by", UUID, True)],
    (C, "changes"): [*BASE,
        ("number", "character varying(50)", False), ("short_description", "character varying(200)", False),
        ("description", TEXT, True), ("type", "change_type", False), ("status", "change_status", False),
        ("risk", "change_risk", False), ("requested_by", UUID, False), ("assigned_to", UUID, True),
        ("service_id", UUID, True), ("affected_cis", "uuid[]", True), ("planned_start", TS, True),
        ("planned_end", TS, True), ("actual_start", TS, True), ("actual_end", TS, True),
        ("implementation_plan", TEXT, True), ("rollback_plan", TEXT, True), ("test_plan", TEXT, True),
        ("workflow_id", UUID, True), ("approval_status", "character varying(50)", True),
        ("implementation_notes", TEXT, True), ("success", BOOL, True), ("closed_at", TS, True),
        ("closed_by", UUID, True)],
}
SPEC_ENUMS = {
    (INC, "incident_priority"): ["critical", "high", "medium", "low"],
    (INC, "incident_status"): ["new", "in_progress", "resolved", "closed", "cancelled"],
    (INC, "incident_impact"): ["high", "medium", "low"],
    (INC, "incident_urgency"): ["high", "medium", "low"],
    (INC, "problem_status"): ["new", "investigating", "root_cause_found", "fix_in_progress", "resolved", "closed"],
    (C, "change_type"): ["standard", "normal", "emergency"],
    (C, "change_status"): ["draft", "submitted", "under_review", "approved", "rejected", "scheduled", "implementing",
                           "implemented", "closed", "cancelled"],
    (C, "change_risk"): ["high", "medium", "low"],
}
# index -> (table, the definition's distinctive part)
SPEC_INDEXES = {
    "idx_incidents_domain": ("incidents", "(domain) WHERE (deleted_at IS NULL)"),
    "idx_incidents_status": ("incidents", "(status) WHERE (status <> 'closed'"),
    "idx_incidents_priority": ("incidents", "(priority) WHERE (status = ANY (ARRAY['new'"),
    "idx_incidents_assigned_to": ("incidents", "(assigned_to) WHERE (status = ANY (ARRAY['new'"),
    "idx_incidents_service": ("incidents", "(service_id)"),
    "idx_incidents_ci": ("incidents", "(ci_id)"),
    "idx_incidents_sla_due": ("incidents", "(sla_due) WHERE ((status = ANY (ARRAY['new'"),
    "idx_incidents_created_at": ("incidents", "(created_at)"),
    "idx_incidents_short_desc_trgm": ("incidents", "gin (short_description gin_trgm_ops)"),
    "idx_incidents_desc_trgm": ("incidents", "gin (description gin_trgm_ops)"),
    "idx_problems_domain": ("problems", "(domain) WHERE (deleted_at IS NULL)"),
    "idx_problems_status": ("problems", "(status) WHERE (status <> 'closed'"),
    "idx_problems_service": ("problems", "(service_id)"),
    "idx_changes_domain": ("changes", "(domain) WHERE (deleted_at IS NULL)"),
    "idx_changes_status": ("changes", "(status) WHERE (status <> ALL (ARRAY['closed'"),
    "idx_changes_type": ("changes", "(type)"),
    "idx_changes_planned_start": ("changes", "(planned_start)"),
    "idx_changes_service": ("changes", "(service_id)"),
}


@pytest.mark.parametrize(("schema", "table"), sorted(SPEC_COLUMNS))
def test_every_specified_column_exists_with_its_type(database, schema, table):
    rows = database.owner_rows("""
        SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable,
               pg_get_expr(d.adbin, d.adrelid) AS default
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped""", t=f"{schema}.{table}")
    actual = {r["name"]: r for r in rows}
    for name, type_, nullable in SPEC_COLUMNS[(schema, table)]:
        assert name in actual, f"{table}.{name} is missing"
        assert actual[name]["type"].split(".")[-1] == type_, (table, name, actual[name]["type"])
        assert actual[name]["nullable"] == nullable, (table, name)
    defaults = {"status": "'new'" if table != "changes" else "'draft'", "version": "1", "id": "gen_random_uuid()"}
    for name, default in defaults.items():
        assert actual[name]["default"].startswith(default), (table, name, actual[name]["default"])
    if table == "incidents":
        assert actual["sla_breached"]["default"] == "false"
    prefix = {"incidents": "INC", "problems": "PRB", "changes": "CHG"}[table]
    assert actual["number"]["default"].startswith(f"('{prefix}'::text || lpad(")


@pytest.mark.parametrize(("schema", "enum"), sorted(SPEC_ENUMS))
def test_every_specified_enum_has_exactly_its_values(database, schema, enum):
    labels = [r["enumlabel"] for r in database.owner_rows(
        "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN pg_namespace n"
        " ON n.oid = t.typnamespace WHERE n.nspname = :s AND t.typname = :e ORDER BY e.enumsortorder",
        s=schema, e=enum)]
    assert labels == SPEC_ENUMS[(schema, enum)]


def test_every_specified_index_and_constraint_exists(database):
    indexes = {r["indexname"]: r for r in database.owner_rows(
        "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE schemaname IN (:i, :c)", i=INC, c=C)}
    for name, (table, fragment) in SPEC_INDEXES.items():
        assert name in indexes, name
        assert indexes[name]["tablename"] == table
        assert fragment in indexes[name]["indexdef"], indexes[name]["indexdef"]
    constraints = {(r["table"], r["contype"], r["columns"]) for r in database.owner_rows("""
        SELECT c.conrelid::regclass::text AS table, c.contype,
               array_to_string(ARRAY(SELECT a.attname FROM unnest(c.conkey) k
                                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k), ',') AS columns
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname IN (:i, :c)""", i=INC, c=C)}
    for table in (f"{INC}.incidents", f"{INC}.problems", f"{C}.changes"):
        assert (table, "p", "id") in constraints
        assert (table, "u", "number") in constraints
    assert (f"{INC}.incidents", "f", "problem_id") in constraints  # incidents.problem_id references problems


def test_itsm_tables_are_isolated_for_the_application_role(database, client, world: World):
    home, other = world.domain(), world.domain()
    agent = world.user(home, "domain_admin")
    incident = api_incident(client, agent, home)
    change = client.post("/api/v1/changes", json={"domain": home, "short_description": "c", "type": "normal"},
                         headers=agent.headers).json()
    stranger = world.user(other, "domain_admin")
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                     (str(stranger.id), other))
        for table, record in (("gaas_incident_mgmt.incidents", incident), ("gaas_change_mgmt.changes", change)):
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (record["id"],)).fetchone()[0] == 0
            assert conn.execute(f"UPDATE {table} SET short_description = 'x' WHERE id = %s",
                                (record["id"],)).rowcount == 0
        # a row cannot be written into a domain one does not act in
        with pytest.raises(Exception, match="row-level security"):
            conn.execute("INSERT INTO gaas_change_mgmt.change_windows (domain, name, kind, start_at, end_at,"
                         " created_by, updated_by) VALUES (%s, 'w', 'blackout', now(), now() + interval '1 hour',"
                         " %s, %s)", (home, stranger.id, stranger.id))
        conn.rollback()
    # the platform defaults are readable by everyone acting, writable by nobody in a domain
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                     (str(stranger.id), other))
        assert conn.execute("SELECT count(*) FROM gaas_incident_mgmt.sla_policies WHERE domain IS NULL"
                            ).fetchone()[0] == 4
        assert conn.execute("UPDATE gaas_incident_mgmt.sla_policies SET resolution_minutes = 1 WHERE domain IS NULL"
                            ).rowcount == 0
        conn.rollback()
