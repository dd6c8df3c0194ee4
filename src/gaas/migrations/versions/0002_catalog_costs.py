"""Service portfolio (gaas_service_catalog), costs (gaas_cost_mgmt) and the event outbox.

Revision ID: 0002_catalog_costs
Revises: 0001_foundation
Create Date: 2026-11-26
"""

from alembic import op

from gaas.migrations.helpers import (
    base_columns,
    definer_function,
    enable_domain_rls,
    enable_rls_by,
    grant,
    number_default,
    number_sequence,
    partition_maintainer,
)

revision = "0002_catalog_costs"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

S = "gaas_service_catalog"
C = "gaas_cost_mgmt"


def upgrade() -> None:
    _services()
    _relationships_and_stakeholders()
    _cost_entries()
    _outbox()
    _user_allowed_in_domain()


def _services() -> None:
    op.execute(f"""
CREATE TYPE {S}.service_type AS ENUM (
    'business',        -- Level 1: Citizen-facing services
    'technical',       -- Level 2: Backend services
    'application',     -- Level 3: Software applications
    'infrastructure'   -- Level 4: Servers, databases, etc.
)""")
    op.execute(f"CREATE TYPE {S}.service_status AS ENUM ('design', 'active', 'deprecated', 'retired')")
    number_sequence(S, "service_number_seq")
    op.execute(f"""
CREATE TABLE {S}.services (
{base_columns(domain="VARCHAR(100) NOT NULL")},
    number VARCHAR(50) UNIQUE NOT NULL DEFAULT {number_default(S, "service_number_seq", "SRV")},
    -- VARCHAR with a length check rather than VARCHAR(200): with the type modifier, the
    -- specification's Query 1 fails ("recursive query column has type character varying(200)[]
    -- in non-recursive term but type character varying[] overall").
    name VARCHAR NOT NULL CONSTRAINT chk_service_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    description TEXT,
    type {S}.service_type NOT NULL,
    parent_service_id UUID,
    status {S}.service_status NOT NULL DEFAULT 'design',
    owner_id UUID NOT NULL,
    manager_id UUID,
    sla_target DECIMAL(5,2),
    cost_people DECIMAL(12,2) DEFAULT 0,
    cost_process DECIMAL(12,2) DEFAULT 0,
    cost_technology DECIMAL(12,2) DEFAULT 0,
    -- The specification sums the three columns; one NULL would make the total NULL, so a
    -- missing part counts as 0 (the parts also default to 0).
    total_cost DECIMAL(12,2) GENERATED ALWAYS AS (
        coalesce(cost_people, 0) + coalesce(cost_process, 0) + coalesce(cost_technology, 0)) STORED,
    metadata JSONB,
    CONSTRAINT fk_parent_service FOREIGN KEY (parent_service_id) REFERENCES {S}.services(id),
    CONSTRAINT chk_cost_positive CHECK (cost_people >= 0 AND cost_process >= 0 AND cost_technology >= 0),
    CONSTRAINT chk_sla_target CHECK (sla_target IS NULL OR (sla_target >= 0 AND sla_target <= 100)),
    CONSTRAINT chk_not_own_parent CHECK (parent_service_id IS NULL OR parent_service_id <> id)
)""")
    op.execute(f"CREATE INDEX idx_services_domain ON {S}.services(domain) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_services_type ON {S}.services(type) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_services_parent ON {S}.services(parent_service_id) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_services_owner ON {S}.services(owner_id)")
    op.execute(f"CREATE INDEX idx_services_status ON {S}.services(status) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_services_created_at ON {S}.services(created_at)")
    op.execute(f"CREATE INDEX idx_services_name_trgm ON {S}.services USING gin(name gin_trgm_ops)")
    op.execute(f"CREATE INDEX idx_services_description_trgm ON {S}.services USING gin(description gin_trgm_ops)")
    # The tree walks children within one domain (GET /services/tree): roots, then children by parent.
    op.execute(f"CREATE INDEX idx_services_domain_roots ON {S}.services(domain) "
               "WHERE parent_service_id IS NULL AND deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_services_domain_parent ON {S}.services(domain, parent_service_id) "
               "WHERE deleted_at IS NULL")
    enable_domain_rls(S, "services")
    grant(S, "services", "SELECT, INSERT, UPDATE")


def _relationships_and_stakeholders() -> None:
    op.execute(f"""
CREATE TYPE {S}.service_relationship_type AS ENUM (
    'depends_on', 'provides_data_to', 'consumes_data_from', 'integrates_with', 'replaces', 'parent_of'
)""")
    op.execute(f"""
CREATE TABLE {S}.service_relationships (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    source_service_id UUID NOT NULL,
    target_service_id UUID NOT NULL,
    relationship_type {S}.service_relationship_type NOT NULL,
    description TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    CONSTRAINT fk_source_service FOREIGN KEY (source_service_id) REFERENCES {S}.services(id) ON DELETE CASCADE,
    CONSTRAINT fk_target_service FOREIGN KEY (target_service_id) REFERENCES {S}.services(id) ON DELETE CASCADE,
    CONSTRAINT chk_no_self_relationship CHECK (source_service_id != target_service_id),
    CONSTRAINT uq_service_relationship UNIQUE (source_service_id, target_service_id, relationship_type)
)""")
    op.execute(f"CREATE INDEX idx_service_rel_source ON {S}.service_relationships(source_service_id)")
    op.execute(f"CREATE INDEX idx_service_rel_target ON {S}.service_relationships(target_service_id)")
    op.execute(f"CREATE INDEX idx_service_rel_type ON {S}.service_relationships(relationship_type)")
    both_ends = (f"EXISTS (SELECT 1 FROM {S}.services s WHERE s.id = source_service_id) AND "
                 f"EXISTS (SELECT 1 FROM {S}.services s WHERE s.id = target_service_id)")
    # Written from the source's side: the caller must be able to write the source's domain.
    write = (f"EXISTS (SELECT 1 FROM {S}.services s WHERE s.id = source_service_id "
             f"AND gaas_iam.writes_domain(s.domain)) AND "
             f"EXISTS (SELECT 1 FROM {S}.services s WHERE s.id = target_service_id)")
    enable_rls_by(S, "service_relationships", read=both_ends, write=write)
    grant(S, "service_relationships", "SELECT, INSERT, DELETE")

    op.execute(f"""
CREATE TABLE {S}.service_stakeholders (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id UUID NOT NULL,
    user_id UUID NOT NULL,
    role VARCHAR(50) NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    CONSTRAINT fk_service FOREIGN KEY (service_id) REFERENCES {S}.services(id) ON DELETE CASCADE,
    CONSTRAINT uq_service_user_role UNIQUE (service_id, user_id, role),
    CONSTRAINT chk_stakeholder_role CHECK (role IN ('owner', 'manager', 'stakeholder', 'contributor'))
)""")
    op.execute(f"CREATE INDEX idx_service_stakeholders_service ON {S}.service_stakeholders(service_id)")
    op.execute(f"CREATE INDEX idx_service_stakeholders_user ON {S}.service_stakeholders(user_id)")
    enable_rls_by(
        S, "service_stakeholders",
        read=f"EXISTS (SELECT 1 FROM {S}.services s WHERE s.id = service_id)",
        write=f"EXISTS (SELECT 1 FROM {S}.services s WHERE s.id = service_id AND gaas_iam.writes_domain(s.domain))",
    )
    grant(S, "service_stakeholders", "SELECT, INSERT, DELETE")


def _cost_entries() -> None:
    op.execute(f"CREATE TYPE {C}.cost_category AS ENUM ('people', 'process', 'technology')")
    op.execute(f"""
CREATE TABLE {C}.cost_entries (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    domain VARCHAR(100) NOT NULL,
    service_id UUID,
    ci_id UUID,
    category {C}.cost_category NOT NULL,
    amount DECIMAL(12,2) NOT NULL,
    currency VARCHAR(3) DEFAULT 'USD',
    period_start DATE NOT NULL,
    period_end DATE NOT NULL,
    description TEXT,
    metadata JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    -- base-table pattern beyond the specification's columns: corrections are versioned and audited
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_by UUID NOT NULL,
    deleted_at TIMESTAMPTZ,
    version INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (id, period_start),
    CONSTRAINT chk_cost_amount_positive CHECK (amount >= 0),
    CONSTRAINT chk_cost_period CHECK (period_end >= period_start),
    CONSTRAINT chk_cost_currency CHECK (currency ~ '^[A-Z]{{3}}$')
) PARTITION BY RANGE (period_start)""")
    op.execute(f"CREATE INDEX idx_cost_entries_domain ON {C}.cost_entries(domain)")
    op.execute(f"CREATE INDEX idx_cost_entries_service ON {C}.cost_entries(service_id)")
    op.execute(f"CREATE INDEX idx_cost_entries_category ON {C}.cost_entries(category)")
    op.execute(f"CREATE INDEX idx_cost_entries_period ON {C}.cost_entries(period_start, period_end)")
    op.execute(f"CREATE INDEX idx_cost_entries_ci ON {C}.cost_entries(ci_id)")
    # The cost report reads one domain over a range of periods.
    op.execute(f"CREATE INDEX idx_cost_entries_domain_period ON {C}.cost_entries(domain, period_start) "
               "WHERE deleted_at IS NULL")
    op.execute(f"CREATE TABLE {C}.cost_entries_default PARTITION OF {C}.cost_entries DEFAULT")
    enable_domain_rls(C, "cost_entries")
    grant(C, "cost_entries", "SELECT, INSERT, UPDATE")
    partition_maintainer(C, "cost_entries", "period_start", "year")
    op.execute(f"SELECT {C}.ensure_cost_entries_partitions(10, 2)")


def _outbox() -> None:
    """Domain events, written in the same transaction as the change they describe; the worker
    (workflow module) delivers them."""
    op.execute("""
CREATE TABLE gaas_workflow.outbox_events (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    event_type VARCHAR(100) NOT NULL,
    domain VARCHAR(100),
    entity_type VARCHAR(100) NOT NULL,
    entity_id UUID,
    payload JSONB NOT NULL DEFAULT '{}',
    actor_id UUID,
    request_id VARCHAR(64),
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    processed_at TIMESTAMPTZ,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
)""")
    op.execute("CREATE INDEX idx_outbox_pending ON gaas_workflow.outbox_events(occurred_at) WHERE processed_at IS NULL")
    op.execute("CREATE INDEX idx_outbox_entity ON gaas_workflow.outbox_events(entity_type, entity_id)")
    op.execute("CREATE INDEX idx_outbox_type ON gaas_workflow.outbox_events(event_type)")
    enable_domain_rls("gaas_workflow", "outbox_events", global_rows_readable=False)
    grant("gaas_workflow", "outbox_events", "SELECT, INSERT, UPDATE")


def _user_allowed_in_domain() -> None:
    """For other modules: may this user be given work in this domain (owner, assignee, …)?
    Answers for users the caller cannot see either, and reveals nothing else about them."""
    definer_function("gaas_iam.user_allowed_in_domain(uuid, text)", """
CREATE FUNCTION gaas_iam.user_allowed_in_domain(p_user_id uuid, p_domain text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM gaas_iam.users u
        WHERE u.id = p_user_id AND u.status = 'active' AND u.deleted_at IS NULL
          AND (u.domain IS NULL OR u.domain = p_domain
               OR EXISTS (SELECT 1 FROM gaas_iam.actor_grants(u.id) g WHERE g.scope_domain = p_domain)))
$$""")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS gaas_iam.user_allowed_in_domain(uuid, text)")
    op.execute("DROP TABLE IF EXISTS gaas_workflow.outbox_events")
    op.execute(f"DROP TABLE IF EXISTS {C}.cost_entries CASCADE")
    op.execute(f"DROP FUNCTION IF EXISTS {C}.ensure_cost_entries_partitions(integer, integer)")
    op.execute(f"DROP TYPE IF EXISTS {C}.cost_category")
    for table in ("service_stakeholders", "service_relationships", "services"):
        op.execute(f"DROP TABLE IF EXISTS {S}.{table} CASCADE")
    op.execute(f"DROP SEQUENCE IF EXISTS {S}.service_number_seq")
    for enum in ("service_relationship_type", "service_status", "service_type"):
        op.execute(f"DROP TYPE IF EXISTS {S}.{enum}")
