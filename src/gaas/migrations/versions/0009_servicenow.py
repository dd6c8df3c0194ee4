"""ServiceNow compatibility: the external keys of imported records.

One row per imported ServiceNow record: (source family, sys_id) -> the GaaS record it became,
with a fingerprint of what was imported (a re-import of the same content writes nothing) and the
ServiceNow-only values GaaS keeps for the Table API (e.g. an incident's caller).

Revision ID: 0009_servicenow
Revises: 0007_operations
Create Date: 2026-12-01
"""

from alembic import op

from gaas.migrations.helpers import app_role, enable_domain_rls, grant, q

revision = "0009_servicenow"
down_revision = "0007_operations"
branch_labels = None
depends_on = None

S = "gaas_servicenow"


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {S}")
    op.execute(f"REVOKE ALL ON SCHEMA {S} FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA {S} TO {q(app_role())}")
    op.execute(f"""
CREATE TABLE {S}.external_keys (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain VARCHAR(100),                       -- the GaaS record's domain (NULL: a global record)
    source_table VARCHAR(80) NOT NULL,         -- the key family: incident, problem, change_request,
                                               -- cmdb_ci (every CI class), cmdb_rel_ci, sys_user, ...
    sys_id VARCHAR(32) NOT NULL,
    target_type VARCHAR(40) NOT NULL,          -- incident, problem, change, ci, ci_relationship, user,
                                               -- article, group
    target_id UUID,                            -- NULL for groups (names, not records)
    display_value TEXT,                        -- number or name, to resolve references by display value
    fingerprint VARCHAR(64) NOT NULL,          -- sha256 of the mapped values last imported
    extra JSONB NOT NULL DEFAULT '{{}}'::jsonb,  -- ServiceNow-only values kept (caller_id, ...)
    imported_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT uq_external_keys_source UNIQUE NULLS NOT DISTINCT (domain, source_table, sys_id)
)""")
    op.execute(f"CREATE INDEX idx_external_keys_target ON {S}.external_keys(target_id)")
    op.execute(f"CREATE INDEX idx_external_keys_sys_id ON {S}.external_keys(sys_id)")
    enable_domain_rls(S, "external_keys")
    grant(S, "external_keys", "SELECT, INSERT, UPDATE, DELETE")


def downgrade() -> None:
    op.execute(f"DROP TABLE IF EXISTS {S}.external_keys")
    op.execute(f"DROP SCHEMA IF EXISTS {S}")
