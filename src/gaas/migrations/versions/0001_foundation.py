"""Foundation: extensions, the nine schemas, identity (gaas_iam) and the audit log (gaas_audit).

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-26
"""

from alembic import op

from gaas.migrations.helpers import (
    app_role,
    base_columns,
    base_indexes,
    definer_function,
    enable_domain_rls,
    enable_rls_by,
    grant,
    partition_maintainer,
    q,
)

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None

SCHEMAS = (
    "gaas_service_catalog",
    "gaas_incident_mgmt",
    "gaas_change_mgmt",
    "gaas_cmdb",
    "gaas_workflow",
    "gaas_iam",
    "gaas_cost_mgmt",
    "gaas_knowledge",
    "gaas_audit",
)

SYSTEM_USER_ID = "00000000-0000-7000-8000-000000000000"


def upgrade() -> None:
    role = q(app_role())
    # pg_trgm and btree_gin are trusted extensions: a database owner may create them.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    for schema in SCHEMAS:
        op.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        op.execute(f"REVOKE ALL ON SCHEMA {schema} FROM PUBLIC")
        op.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    # Nothing may be created by the application role anywhere, not even in public.
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

    _security_context_functions()
    _iam_tables()
    _audit_log()
    _login_and_token_functions()


def _security_context_functions() -> None:
    """What row-level security reads: the acting user and domains, set per transaction."""
    op.execute("""
CREATE FUNCTION gaas_iam.acting_user_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('gaas.user_id', true), '')::uuid
$$""")
    # Strict: NULL domain (a global row) only for global actors ('*').
    op.execute("""
CREATE FUNCTION gaas_iam.sees_domain(d text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN coalesce(current_setting('gaas.user_id', true), '') = '' THEN false
        WHEN current_setting('gaas.domains', true) = '*' THEN true
        WHEN d IS NULL THEN false
        ELSE d = ANY (string_to_array(current_setting('gaas.domains', true), ','))
    END
$$""")
    # Global rows (NULL domain) are readable by any acting user.
    op.execute("""
CREATE FUNCTION gaas_iam.sees_row(d text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN coalesce(current_setting('gaas.user_id', true), '') = '' THEN false
        WHEN d IS NULL THEN true
        WHEN current_setting('gaas.domains', true) = '*' THEN true
        ELSE d = ANY (string_to_array(current_setting('gaas.domains', true), ','))
    END
$$""")
    op.execute("""
CREATE FUNCTION gaas_iam.writes_domain(d text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('gaas.read_only', true), '') <> 'true' AND gaas_iam.sees_domain(d)
$$""")
    for fn in ("acting_user_id()", "sees_domain(text)", "sees_row(text)", "writes_domain(text)"):
        op.execute(f"REVOKE ALL ON FUNCTION gaas_iam.{fn} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION gaas_iam.{fn} TO {q(app_role())}")


def _iam_tables() -> None:
    op.execute("CREATE TYPE gaas_iam.user_status AS ENUM ('active', 'inactive', 'locked', 'pending_verification')")

    op.execute(f"""
CREATE TABLE gaas_iam.domains (
{base_columns(domain=None)},
    code VARCHAR(100) NOT NULL,
    name VARCHAR(200) NOT NULL,
    description TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    CONSTRAINT uq_domains_code UNIQUE (code),
    CONSTRAINT chk_domain_code CHECK (code ~ '^[a-z][a-z0-9_-]{{1,99}}$')
)""")
    base_indexes("gaas_iam", "domains", domain=False)
    enable_rls_by(
        "gaas_iam", "domains",
        read="gaas_iam.sees_domain(code)",
        write="gaas_iam.writes_domain(code)",
    )
    # Only global administrators create domains; domain admins may edit their own.
    op.execute("DROP POLICY domains_insert ON gaas_iam.domains")
    op.execute("CREATE POLICY domains_insert ON gaas_iam.domains FOR INSERT WITH CHECK (gaas_iam.writes_domain(NULL))")
    grant("gaas_iam", "domains", "SELECT, INSERT, UPDATE")

    # users: the specification's columns, plus created_by/updated_by/version (base-table pattern).
    op.execute("""
CREATE TABLE gaas_iam.users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email VARCHAR(255) UNIQUE NOT NULL,
    username VARCHAR(100) UNIQUE,
    name VARCHAR(200) NOT NULL,
    password_hash VARCHAR(255),
    password_updated_at TIMESTAMPTZ,
    domain VARCHAR(100) REFERENCES gaas_iam.domains(code) ON UPDATE CASCADE,
    status gaas_iam.user_status NOT NULL DEFAULT 'active',
    phone VARCHAR(50),
    language VARCHAR(10) DEFAULT 'en',
    timezone VARCHAR(50) DEFAULT 'UTC',
    last_login_at TIMESTAMPTZ,
    failed_login_attempts INTEGER DEFAULT 0,
    locked_until TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMPTZ,
    created_by UUID NOT NULL,
    updated_by UUID NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
)""")
    op.execute("CREATE INDEX idx_users_email ON gaas_iam.users(email) WHERE deleted_at IS NULL")
    op.execute("CREATE INDEX idx_users_domain ON gaas_iam.users(domain) WHERE deleted_at IS NULL")
    op.execute("CREATE INDEX idx_users_status ON gaas_iam.users(status)")
    op.execute("CREATE INDEX idx_users_name_trgm ON gaas_iam.users USING gin(name gin_trgm_ops)")
    enable_domain_rls("gaas_iam", "users")
    # The application can never read password hashes: every column but password_hash.
    op.execute(f"""
GRANT SELECT (id, email, username, name, password_updated_at, domain, status, phone, language, timezone,
              last_login_at, failed_login_attempts, locked_until, created_at, updated_at, deleted_at,
              created_by, updated_by, version)
    ON gaas_iam.users TO {q(app_role())}""")
    # No DELETE: users are soft-deleted only.
    grant("gaas_iam", "users", "INSERT, UPDATE")

    op.execute(f"""
INSERT INTO gaas_iam.users (id, email, username, name, status, created_by, updated_by)
VALUES ('{SYSTEM_USER_ID}', 'system@gaas.local', 'system', 'System', 'inactive',
        '{SYSTEM_USER_ID}', '{SYSTEM_USER_ID}')""")

    op.execute("""
CREATE TABLE gaas_iam.roles (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(100) NOT NULL,
    description TEXT,
    domain VARCHAR(100) REFERENCES gaas_iam.domains(code) ON UPDATE CASCADE,
    permissions JSONB NOT NULL DEFAULT '[]',
    is_system BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    deleted_at TIMESTAMPTZ,
    created_by UUID NOT NULL,
    updated_by UUID NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    -- NULLS NOT DISTINCT (PostgreSQL 15+): two global roles may not share a name either.
    CONSTRAINT uq_role_name_domain UNIQUE NULLS NOT DISTINCT (name, domain),
    CONSTRAINT chk_role_permissions_array CHECK (jsonb_typeof(permissions) = 'array')
)""")
    op.execute("CREATE INDEX idx_roles_domain ON gaas_iam.roles(domain)")
    op.execute("CREATE INDEX idx_roles_permissions ON gaas_iam.roles USING gin(permissions)")
    enable_domain_rls("gaas_iam", "roles")
    grant("gaas_iam", "roles", "SELECT, INSERT, UPDATE")

    op.execute("""
CREATE TABLE gaas_iam.user_roles (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id UUID NOT NULL,
    role_id UUID NOT NULL,
    scope_type VARCHAR(50) DEFAULT 'global',
    scope_id UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES gaas_iam.users(id) ON DELETE CASCADE,
    CONSTRAINT fk_role FOREIGN KEY (role_id) REFERENCES gaas_iam.roles(id) ON DELETE CASCADE,
    CONSTRAINT uq_user_role_scope UNIQUE NULLS NOT DISTINCT (user_id, role_id, scope_type, scope_id),
    CONSTRAINT chk_user_role_scope CHECK (
        scope_type IN ('global', 'domain', 'service')
        AND (scope_type = 'global') = (scope_id IS NULL)
    )
)""")
    op.execute("CREATE INDEX idx_user_roles_user ON gaas_iam.user_roles(user_id)")
    op.execute("CREATE INDEX idx_user_roles_role ON gaas_iam.user_roles(role_id)")
    # Visible and writable exactly when the user they belong to is.
    enable_rls_by(
        "gaas_iam", "user_roles",
        read="EXISTS (SELECT 1 FROM gaas_iam.users u WHERE u.id = user_id)",
        write="EXISTS (SELECT 1 FROM gaas_iam.users u WHERE u.id = user_id AND gaas_iam.writes_domain(u.domain))",
    )
    grant("gaas_iam", "user_roles", "SELECT, INSERT, DELETE")

    op.execute(f"""
CREATE TABLE gaas_iam.api_tokens (
{base_columns(domain=None)},
    user_id UUID NOT NULL REFERENCES gaas_iam.users(id) ON DELETE CASCADE,
    name VARCHAR(200) NOT NULL,
    kind VARCHAR(20) NOT NULL DEFAULT 'api',
    key VARCHAR(32) NOT NULL,
    secret_hash VARCHAR(128) NOT NULL,
    read_only BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ,
    CONSTRAINT uq_api_tokens_key UNIQUE (key),
    CONSTRAINT chk_api_token_kind CHECK (kind IN ('api', 'session'))
)""")
    op.execute("CREATE INDEX idx_api_tokens_user ON gaas_iam.api_tokens(user_id) WHERE deleted_at IS NULL")
    enable_rls_by(
        "gaas_iam", "api_tokens",
        read="user_id = gaas_iam.acting_user_id() OR EXISTS (SELECT 1 FROM gaas_iam.users u "
             "WHERE u.id = user_id AND gaas_iam.writes_domain(u.domain))",
        write="coalesce(current_setting('gaas.read_only', true), '') <> 'true' AND ("
              "user_id = gaas_iam.acting_user_id() OR EXISTS (SELECT 1 FROM gaas_iam.users u "
              "WHERE u.id = user_id AND gaas_iam.writes_domain(u.domain)))",
    )
    # The secret's hash is never readable by the application; lookups go through a definer function.
    op.execute(f"""
GRANT SELECT (id, user_id, name, kind, key, read_only, expires_at, last_used_at, revoked_at, deleted_at,
              created_at, created_by, updated_at, updated_by, version)
    ON gaas_iam.api_tokens TO {q(app_role())}""")
    grant("gaas_iam", "api_tokens", "INSERT, UPDATE")


def _audit_log() -> None:
    op.execute("""
CREATE TABLE gaas_audit.audit_log (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    user_id UUID,
    user_email VARCHAR(255),
    action VARCHAR(100) NOT NULL,
    entity_type VARCHAR(100) NOT NULL,
    entity_id UUID,
    changes JSONB,
    ip_address INET,
    user_agent TEXT,
    domain VARCHAR(100),
    request_id VARCHAR(64),
    -- clock_timestamp(): rows of one transaction keep the order they were written in.
    timestamp TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- A partitioned table's primary key must include the partition key.
    PRIMARY KEY (id, timestamp)
) PARTITION BY RANGE (timestamp)""")
    op.execute("CREATE INDEX idx_audit_log_user ON gaas_audit.audit_log(user_id)")
    op.execute("CREATE INDEX idx_audit_log_entity ON gaas_audit.audit_log(entity_type, entity_id)")
    op.execute("CREATE INDEX idx_audit_log_timestamp ON gaas_audit.audit_log(timestamp)")
    op.execute("CREATE INDEX idx_audit_log_domain ON gaas_audit.audit_log(domain)")
    op.execute("CREATE INDEX idx_audit_log_request ON gaas_audit.audit_log(request_id)")
    # A row whose month has no partition yet still lands somewhere: an audit row is never lost.
    op.execute("CREATE TABLE gaas_audit.audit_log_default PARTITION OF gaas_audit.audit_log DEFAULT")

    op.execute("ALTER TABLE gaas_audit.audit_log ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE gaas_audit.audit_log FORCE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY audit_log_select ON gaas_audit.audit_log FOR SELECT USING (gaas_iam.sees_domain(domain))")
    op.execute("""
CREATE POLICY audit_log_insert ON gaas_audit.audit_log FOR INSERT
WITH CHECK (gaas_iam.acting_user_id() IS NOT NULL AND (domain IS NULL OR gaas_iam.sees_domain(domain)))""")
    # Append-only: the application role may add and read rows, never change or remove them.
    grant("gaas_audit", "audit_log", "SELECT, INSERT")

    partition_maintainer("gaas_audit", "audit_log", "timestamp", "month")
    op.execute("SELECT gaas_audit.ensure_audit_log_partitions(1, 12)")


def _login_and_token_functions() -> None:
    """Authentication happens before anyone is acting, so it cannot read the RLS-protected
    tables; these narrow definer functions return only what login needs for one user."""
    definer_function("gaas_iam.auth_lookup(text)", """
CREATE FUNCTION gaas_iam.auth_lookup(p_login text)
RETURNS TABLE (id uuid, email text, name text, domain text, status gaas_iam.user_status,
               password_hash text, locked_until timestamptz, failed_login_attempts integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.id, u.email, u.name, u.domain, u.status, u.password_hash, u.locked_until,
           coalesce(u.failed_login_attempts, 0)
    FROM gaas_iam.users u
    WHERE (u.email = lower(p_login) OR u.username = lower(p_login)) AND u.deleted_at IS NULL
    LIMIT 1
$$""")

    definer_function(
        "gaas_iam.record_login(uuid, text, boolean, boolean, text, inet, text, text, integer, integer)", """
CREATE FUNCTION gaas_iam.record_login(
    p_user_id uuid, p_login text, p_success boolean, p_count_failure boolean, p_reason text,
    p_ip inet, p_user_agent text, p_request_id text, p_max_failures integer, p_lock_minutes integer)
RETURNS TABLE (ok boolean, locked_until timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_user gaas_iam.users;
    v_attempts integer;
    v_locked timestamptz;
    v_changes jsonb;
BEGIN
    IF p_user_id IS NOT NULL THEN
        -- The row lock serialises concurrent attempts on one account: a correct password that
        -- arrives after parallel failures locked the account is refused, not let in.
        SELECT * INTO v_user FROM gaas_iam.users u WHERE u.id = p_user_id FOR UPDATE;
        IF p_success AND (v_user.locked_until > now() OR v_user.status <> 'active' OR v_user.deleted_at IS NOT NULL) THEN
            p_success := false;
            p_count_failure := false;
            p_reason := CASE WHEN v_user.locked_until > now() THEN 'account locked' ELSE 'account ' || v_user.status END;
        END IF;
    END IF;
    IF v_user.id IS NULL THEN
        v_changes := jsonb_build_object('reason', p_reason);
    ELSIF p_success THEN
        UPDATE gaas_iam.users u SET failed_login_attempts = 0, locked_until = NULL, last_login_at = now()
        WHERE u.id = v_user.id;
        v_changes := jsonb_build_object(
            'before', jsonb_build_object('failed_login_attempts', coalesce(v_user.failed_login_attempts, 0),
                                         'last_login_at', v_user.last_login_at),
            'after', jsonb_build_object('failed_login_attempts', 0, 'last_login_at', now()));
    ELSIF p_count_failure THEN
        -- A lock that has run out starts a fresh count.
        v_attempts := CASE WHEN v_user.locked_until IS NOT NULL AND v_user.locked_until <= now() THEN 1
                           ELSE coalesce(v_user.failed_login_attempts, 0) + 1 END;
        v_locked := CASE WHEN v_attempts >= p_max_failures THEN now() + make_interval(mins => p_lock_minutes)
                         WHEN v_user.locked_until > now() THEN v_user.locked_until END;
        UPDATE gaas_iam.users u SET failed_login_attempts = v_attempts, locked_until = v_locked
        WHERE u.id = v_user.id;
        v_changes := jsonb_build_object(
            'reason', p_reason,
            'before', jsonb_build_object('failed_login_attempts', coalesce(v_user.failed_login_attempts, 0),
                                         'locked_until', v_user.locked_until),
            'after', jsonb_build_object('failed_login_attempts', v_attempts, 'locked_until', v_locked));
    ELSE
        v_locked := v_user.locked_until;
        v_changes := jsonb_build_object('reason', p_reason);
    END IF;
    INSERT INTO gaas_audit.audit_log (user_id, user_email, action, entity_type, entity_id, changes,
                                      ip_address, user_agent, domain, request_id)
    VALUES (v_user.id, coalesce(v_user.email, left(p_login, 255)),
            CASE WHEN p_success THEN 'login' ELSE 'login_failed' END,
            'user', v_user.id, v_changes, p_ip, p_user_agent, v_user.domain, p_request_id);
    RETURN QUERY SELECT p_success, v_locked;
END
$$""")

    definer_function("gaas_iam.actor_grants(uuid)", """
CREATE FUNCTION gaas_iam.actor_grants(p_user_id uuid)
RETURNS TABLE (permissions jsonb, scope_type text, scope_domain text, scope_id uuid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    -- A role defined in a domain acts in that domain only, whatever scope it was given with.
    SELECT r.permissions,
           CASE WHEN r.domain IS NOT NULL AND coalesce(ur.scope_type, 'global') = 'global' THEN 'domain'
                ELSE coalesce(ur.scope_type, 'global') END,
           coalesce(d.code, r.domain), ur.scope_id
    FROM gaas_iam.user_roles ur
    JOIN gaas_iam.roles r ON r.id = ur.role_id AND r.deleted_at IS NULL
    LEFT JOIN gaas_iam.domains d ON ur.scope_type = 'domain' AND d.id = ur.scope_id
    WHERE ur.user_id = p_user_id
      AND (ur.scope_type IS DISTINCT FROM 'domain' OR (d.id IS NOT NULL AND d.deleted_at IS NULL))
      AND (r.domain IS NULL OR r.domain = coalesce(d.code, r.domain))
$$""")

    # One round trip per authenticated request: the secret's hash is compared in the database
    # (it never leaves it), last-used time is kept, and the user's grants come along.
    definer_function("gaas_iam.token_actor(text, text)", """
CREATE FUNCTION gaas_iam.token_actor(p_key text, p_secret_hash text)
RETURNS TABLE (token_id uuid, user_id uuid, read_only boolean, expires_at timestamptz, revoked boolean,
               email text, domain text, user_active boolean, grants jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT t.id, t.user_id, t.read_only, t.expires_at,
           (t.revoked_at IS NOT NULL OR t.deleted_at IS NOT NULL),
           u.email::text, u.domain::text,
           -- A lockout guards password logins; it must not let anyone switch off an account's API tokens.
           (u.status = 'active' AND u.deleted_at IS NULL),
           (SELECT coalesce(jsonb_agg(jsonb_build_object('permissions', g.permissions, 'scope_type', g.scope_type,
                                                         'scope_domain', g.scope_domain, 'scope_id', g.scope_id)),
                            '[]'::jsonb)
            FROM gaas_iam.actor_grants(t.user_id) g)
    FROM gaas_iam.api_tokens t JOIN gaas_iam.users u ON u.id = t.user_id
    WHERE t.key = p_key AND t.secret_hash = p_secret_hash;
    IF FOUND THEN
        -- At most one write a minute per token, and never a wait: if another request holds the
        -- row, it is updating last_used_at already.
        UPDATE gaas_iam.api_tokens SET last_used_at = now()
        WHERE id = (SELECT t2.id FROM gaas_iam.api_tokens t2
                    WHERE t2.key = p_key AND t2.revoked_at IS NULL
                      AND (t2.last_used_at IS NULL OR t2.last_used_at < now() - interval '1 minute')
                    FOR UPDATE SKIP LOCKED);
    END IF;
END
$$""")


def downgrade() -> None:
    for schema in reversed(SCHEMAS):
        op.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
