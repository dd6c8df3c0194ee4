"""Operations: the audit log's tamper-evident seal and archive register, and login throttling
per client address.

Revision ID: 0007_operations
Revises: 0006_knowledge
Create Date: 2026-11-27
"""

from alembic import op

from gaas.migrations.helpers import app_role, definer_function, q

revision = "0007_operations"
down_revision = "0006_knowledge"
branch_labels = None
depends_on = None

A = "gaas_audit"
# Every audit column but txid: the application cannot choose where a row falls in the seal.
AUDIT_COLUMNS = ("id, user_id, user_email, action, entity_type, entity_id, changes, ip_address, user_agent, domain, "
                 "request_id, timestamp")


def upgrade() -> None:
    _audit_seal()
    _login_throttle()


def _audit_seal() -> None:
    # The writing transaction's id: rows are sealed in that order once every transaction below
    # the oldest running one has ended, so a late commit can never slip in behind the seal.
    # Nullable, default set apart: existing rows keep NULL (sealed first) and nothing is rewritten.
    op.execute(f"ALTER TABLE {A}.audit_log ADD COLUMN txid xid8")
    op.execute(f"ALTER TABLE {A}.audit_log ALTER COLUMN txid SET DEFAULT pg_current_xact_id()")
    op.execute(f"CREATE INDEX idx_audit_log_txid ON {A}.audit_log(txid)")
    op.execute(f"REVOKE INSERT ON {A}.audit_log FROM {q(app_role())}")
    op.execute(f"GRANT INSERT ({AUDIT_COLUMNS}) ON {A}.audit_log TO {q(app_role())}")
    op.execute(f"""
CREATE TABLE {A}.audit_seals (
    chain_domain VARCHAR(100) NOT NULL,          -- '' for global rows
    period DATE NOT NULL,                        -- the month the rows were written in (UTC)
    position BIGINT NOT NULL,
    audit_id UUID NOT NULL,
    audit_timestamp TIMESTAMPTZ NOT NULL,
    row_hash BYTEA NOT NULL,
    chain_hash BYTEA NOT NULL,                   -- sha256(previous chain_hash || row_hash)
    sealed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_domain, period, position)
)""")
    op.execute(f"CREATE INDEX idx_audit_seals_audit ON {A}.audit_seals(audit_id)")
    op.execute(f"""
CREATE TABLE {A}.seal_state (
    id BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    horizon xid8,                                -- every row with a smaller txid is sealed
    sealed_rows BIGINT NOT NULL DEFAULT 0,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
)""")
    op.execute(f"INSERT INTO {A}.seal_state (horizon) VALUES (NULL)")
    op.execute(f"""
CREATE TABLE {A}.archives (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    partition_name TEXT NOT NULL UNIQUE,
    range_from TIMESTAMPTZ NOT NULL,
    range_to TIMESTAMPTZ NOT NULL,
    row_count BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    archived_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    archived_by TEXT NOT NULL DEFAULT current_user
)""")
    # The sealer (worker or `gaas audit seal`, as the application role) appends seals and moves the
    # horizon; nothing may rewrite a seal. Verification and archiving run as the owner.
    # The seal horizon: the oldest transaction still running *in this database* that holds a
    # transaction id (only those can still add audit rows here), else everything up to now.
    # Seeing other roles' transactions needs a superuser owner (or pg_read_all_stats); without
    # that, the cluster-wide oldest running transaction is used, which is merely slower to move.
    definer_function(f"{A}.seal_horizon()", f"""
CREATE FUNCTION {A}.seal_horizon() RETURNS xid8
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_snapshot pg_snapshot := pg_current_snapshot();
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'pg_read_all_stats', 'member') THEN
        RETURN pg_snapshot_xmin(v_snapshot);
    END IF;
    RETURN coalesce(
        (SELECT min(x) FROM pg_snapshot_xip(v_snapshot) AS x
         WHERE (x::text::numeric % 4294967296)::text IN (
             SELECT backend_xid::text FROM pg_stat_activity
             WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid())),
        pg_snapshot_xmax(v_snapshot));
END
$$""")
    op.execute(f"GRANT SELECT, INSERT ON {A}.audit_seals TO {q(app_role())}")
    op.execute(f"GRANT SELECT, UPDATE ON {A}.seal_state TO {q(app_role())}")
    op.execute(f"GRANT SELECT ON {A}.archives TO {q(app_role())}")


def _login_throttle() -> None:
    """Failed logins per client address in a sliding window, kept by a definer function so that
    login (before anyone acts) can count and check them in one round trip."""
    op.execute("""
CREATE TABLE gaas_iam.login_failures (
    address INET NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL DEFAULT now()
)""")
    op.execute("CREATE INDEX idx_login_failures ON gaas_iam.login_failures(address, failed_at)")
    definer_function("gaas_iam.address_throttled(inet, integer, integer)", """
CREATE FUNCTION gaas_iam.address_throttled(p_address inet, p_limit integer, p_minutes integer) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*) >= p_limit FROM gaas_iam.login_failures
    WHERE address = p_address AND failed_at > now() - make_interval(mins => p_minutes)
$$""")
    definer_function("gaas_iam.note_login_failure(inet, integer)", """
CREATE FUNCTION gaas_iam.note_login_failure(p_address inet, p_keep_minutes integer) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM gaas_iam.login_failures WHERE failed_at < now() - make_interval(mins => greatest(p_keep_minutes, 1));
    INSERT INTO gaas_iam.login_failures (address) VALUES (p_address);
$$""")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {A}.seal_horizon()")
    op.execute("DROP FUNCTION IF EXISTS gaas_iam.note_login_failure(inet, integer)")
    op.execute("DROP FUNCTION IF EXISTS gaas_iam.address_throttled(inet, integer, integer)")
    op.execute("DROP TABLE IF EXISTS gaas_iam.login_failures")
    op.execute(f"DROP TABLE IF EXISTS {A}.archives")
    op.execute(f"DROP TABLE IF EXISTS {A}.seal_state")
    op.execute(f"DROP TABLE IF EXISTS {A}.audit_seals")
    op.execute(f"REVOKE INSERT ON {A}.audit_log FROM {q(app_role())}")
    op.execute(f"GRANT INSERT ON {A}.audit_log TO {q(app_role())}")
    op.execute(f"ALTER TABLE {A}.audit_log DROP COLUMN IF EXISTS txid")
