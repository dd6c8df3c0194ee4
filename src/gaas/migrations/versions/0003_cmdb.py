"""CMDB (gaas_cmdb): CI classes, configuration items and their relationships.

Revision ID: 0003_cmdb
Revises: 0002_catalog_costs
Create Date: 2026-11-27
"""

from alembic import op

from gaas.migrations.helpers import (
    LEAKPROOF_SQL,
    app_role,
    base_columns,
    definer_function,
    enable_domain_rls,
    enable_rls_by,
    grant,
    number_default,
    number_sequence,
    q,
)

revision = "0003_cmdb"
down_revision = "0002_catalog_costs"
branch_labels = None
depends_on = None

M = "gaas_cmdb"


def upgrade() -> None:
    op.execute(f"CREATE TYPE {M}.ci_status AS ENUM ('active', 'inactive', 'retired', 'maintenance')")
    # "Common ENUM types (defined in each schema but consistent)": the CMDB's copy.
    op.execute(f"CREATE TYPE {M}.environment_type AS ENUM ('production', 'staging', 'development', 'test')")
    op.execute(f"""
CREATE TYPE {M}.ci_relationship_type AS ENUM (
    'runs_on', 'depends_on', 'connects_to', 'manages', 'part_of', 'backed_up_by', 'replicates_to'
)""")

    # Classes are global (NULL domain) or a domain's own; a JSON Schema validates each CI's attributes.
    op.execute(f"""
CREATE TABLE {M}.ci_classes (
{base_columns()},
    name VARCHAR(100) NOT NULL,
    label VARCHAR(200) NOT NULL,
    description TEXT,
    attribute_schema JSONB NOT NULL DEFAULT '{{"type": "object"}}',
    recommended JSONB NOT NULL DEFAULT '[]',
    identification JSONB NOT NULL DEFAULT '[]',
    source_precedence JSONB NOT NULL DEFAULT '[]',
    staleness_days INTEGER NOT NULL DEFAULT 60,
    is_system BOOLEAN NOT NULL DEFAULT FALSE,
    CONSTRAINT uq_ci_class_name UNIQUE NULLS NOT DISTINCT (name, domain),
    CONSTRAINT chk_ci_class_name CHECK (name ~ '^[a-z][a-z0-9_]{{1,99}}$'),
    CONSTRAINT chk_ci_class_staleness CHECK (staleness_days > 0)
)""")
    op.execute(f"CREATE INDEX idx_ci_classes_domain ON {M}.ci_classes(domain) WHERE deleted_at IS NULL")
    enable_domain_rls(M, "ci_classes")
    grant(M, "ci_classes", "SELECT, INSERT, UPDATE")

    number_sequence(M, "ci_number_seq")
    op.execute(f"""
CREATE TABLE {M}.configuration_items (
{base_columns()},
    number VARCHAR(50) UNIQUE NOT NULL DEFAULT {number_default(M, "ci_number_seq", "CI")},
    name VARCHAR(200) NOT NULL,
    ci_class VARCHAR(100) NOT NULL,
    status {M}.ci_status NOT NULL DEFAULT 'active',
    environment {M}.environment_type NOT NULL,
    service_id UUID,
    owner_id UUID NOT NULL,
    managed_by UUID,
    attributes JSONB NOT NULL DEFAULT '{{}}',
    discovered_by VARCHAR(100),
    last_discovered_at TIMESTAMPTZ,
    -- Beyond the specification, for reconciliation: the keys of the class's identification rules
    -- ("server|0|[\"SN123\"]"), kept by the application on every write, and which source last
    -- wrote each attribute and when (source precedence).
    identity_keys TEXT[] NOT NULL DEFAULT '{{}}',
    attribute_sources JSONB NOT NULL DEFAULT '{{}}',
    CONSTRAINT chk_ci_attributes_object CHECK (jsonb_typeof(attributes) = 'object')
)""")
    op.execute(f"CREATE INDEX idx_cis_domain ON {M}.configuration_items(domain) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_cis_class ON {M}.configuration_items(ci_class) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_cis_status ON {M}.configuration_items(status) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_cis_service ON {M}.configuration_items(service_id)")
    op.execute(f"CREATE INDEX idx_cis_environment ON {M}.configuration_items(environment)")
    op.execute(f"CREATE INDEX idx_cis_created_at ON {M}.configuration_items(created_at)")
    op.execute(f"CREATE INDEX idx_cis_attributes ON {M}.configuration_items USING gin(attributes)")
    op.execute(f"CREATE INDEX idx_cis_name_trgm ON {M}.configuration_items USING gin(name gin_trgm_ops)")
    # Fuzzy search ranks by word-similarity distance: a GiST trigram index returns the nearest names
    # first (KNN) without scoring every match, as the GIN index would have to.
    # Not partial: a partial index here tempts the planner to use it as "all live rows" elsewhere.
    op.execute(f"CREATE INDEX idx_cis_name_trgm_knn ON {M}.configuration_items USING gist(name gist_trgm_ops)")
    # fastupdate off: an import looks keys up while it inserts them; a pending list would make every
    # lookup scan all the entries this import added.
    op.execute(f"CREATE INDEX idx_cis_identity ON {M}.configuration_items USING gin(identity_keys) "
               "WITH (fastupdate = off)")
    enable_domain_rls(M, "configuration_items")
    grant(M, "configuration_items", "SELECT, INSERT, UPDATE")

    op.execute(f"""
CREATE TABLE {M}.ci_relationships (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    source_ci_id UUID NOT NULL,
    target_ci_id UUID NOT NULL,
    relationship_type {M}.ci_relationship_type NOT NULL,
    description TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    CONSTRAINT fk_source_ci FOREIGN KEY (source_ci_id) REFERENCES {M}.configuration_items(id) ON DELETE CASCADE,
    CONSTRAINT fk_target_ci FOREIGN KEY (target_ci_id) REFERENCES {M}.configuration_items(id) ON DELETE CASCADE,
    CONSTRAINT chk_no_self_relationship CHECK (source_ci_id != target_ci_id),
    CONSTRAINT uq_ci_relationship UNIQUE (source_ci_id, target_ci_id, relationship_type)
)""")
    op.execute(f"CREATE INDEX idx_ci_rel_source ON {M}.ci_relationships(source_ci_id)")
    op.execute(f"CREATE INDEX idx_ci_rel_target ON {M}.ci_relationships(target_ci_id)")
    op.execute(f"CREATE INDEX idx_ci_rel_type ON {M}.ci_relationships(relationship_type)")
    # Impact analysis walks target -> source by type: covering index for that walk.
    op.execute(f"CREATE INDEX idx_ci_rel_walk ON {M}.ci_relationships(target_ci_id, relationship_type, source_ci_id)")
    visible = (f"EXISTS (SELECT 1 FROM {M}.configuration_items c WHERE c.id = source_ci_id) AND "
               f"EXISTS (SELECT 1 FROM {M}.configuration_items c WHERE c.id = target_ci_id)")
    writable = (f"EXISTS (SELECT 1 FROM {M}.configuration_items c WHERE c.id = source_ci_id "
                f"AND gaas_iam.writes_domain(c.domain)) AND "
                f"EXISTS (SELECT 1 FROM {M}.configuration_items c WHERE c.id = target_ci_id "
                f"AND gaas_iam.writes_domain(c.domain))")
    enable_rls_by(M, "ci_relationships", read=visible, write=writable)
    grant(M, "ci_relationships", "SELECT, INSERT, DELETE")

    _leakproof_operators()
    _graph_changes()

    definer_function("gaas_iam.user_is_active(uuid)", """
CREATE FUNCTION gaas_iam.user_is_active(p_user_id uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM gaas_iam.users u
                   WHERE u.id = p_user_id AND u.status = 'active' AND u.deleted_at IS NULL)
$$""")


def _graph_changes() -> None:
    """One row per transaction that changed the impact graph (relationships, or CIs' existence,
    domain or service). An in-memory copy of the graph is fresh exactly when no such transaction
    is invisible to the snapshot it was built from (see cmdb/graph.py)."""
    op.execute(f"""
CREATE TABLE {M}.graph_changes (
    xid xid8 PRIMARY KEY DEFAULT pg_current_xact_id(),
    changed_at TIMESTAMPTZ NOT NULL DEFAULT now()
)""")
    op.execute(f"GRANT SELECT ON {M}.graph_changes TO {q(app_role())}")
    op.execute(f"""
CREATE FUNCTION {M}.note_graph_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO {M}.graph_changes (xid) VALUES (pg_current_xact_id()) ON CONFLICT (xid) DO NOTHING;
    RETURN NULL;
END
$$""")
    op.execute(f"REVOKE ALL ON FUNCTION {M}.note_graph_change() FROM PUBLIC")
    op.execute(f"CREATE TRIGGER graph_changed AFTER INSERT OR UPDATE OR DELETE ON {M}.ci_relationships "
               f"FOR EACH STATEMENT EXECUTE FUNCTION {M}.note_graph_change()")
    op.execute(f"CREATE TRIGGER graph_changed AFTER INSERT OR DELETE OR UPDATE OF deleted_at, domain, service_id "
               f"ON {M}.configuration_items FOR EACH STATEMENT EXECUTE FUNCTION {M}.note_graph_change()")
    definer_function(f"{M}.prune_graph_changes(integer)", f"""
CREATE FUNCTION {M}.prune_graph_changes(p_hours integer) RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH gone AS (DELETE FROM {M}.graph_changes WHERE changed_at < now() - make_interval(hours => greatest(p_hours, 1))
                  RETURNING 1)
    SELECT count(*)::integer FROM gone
$$""")


def _leakproof_operators() -> None:
    op.execute(LEAKPROOF_SQL)


def downgrade() -> None:
    op.execute(LEAKPROOF_SQL.replace("LEAKPROOF", "NOT LEAKPROOF"))
    op.execute(f"DROP TABLE IF EXISTS {M}.graph_changes")
    op.execute(f"DROP FUNCTION IF EXISTS {M}.note_graph_change() CASCADE")
    op.execute(f"DROP FUNCTION IF EXISTS {M}.prune_graph_changes(integer)")
    op.execute("DROP FUNCTION IF EXISTS gaas_iam.user_is_active(uuid)")
    for table in ("ci_relationships", "configuration_items", "ci_classes"):
        op.execute(f"DROP TABLE IF EXISTS {M}.{table} CASCADE")
    op.execute(f"DROP SEQUENCE IF EXISTS {M}.ci_number_seq")
    for enum in ("ci_relationship_type", "environment_type", "ci_status"):
        op.execute(f"DROP TYPE IF EXISTS {M}.{enum}")
