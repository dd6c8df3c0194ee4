"""Workflow engine and events (gaas_workflow): the specification's workflow_definitions and
workflow_instances, exactly, plus what the engine needs beyond them (marked): definition versions,
the step timeline, approvals and their decisions, in-app notifications and e-mails, webhooks and
their delivery log, cron schedules, the worker's housekeeping jobs, and wake-up notifications.

The outbox (gaas_workflow.outbox_events) exists since 0002.

Revision ID: 0005_workflow
Revises: 0004_itsm
Create Date: 2026-11-28
"""

from alembic import op

from gaas.migrations.helpers import definer_function, enable_domain_rls, enable_rls_by, grant

revision = "0005_workflow"
down_revision = "0004_itsm"
branch_labels = None
depends_on = None

W = "gaas_workflow"
SYSTEM_USER = "00000000-0000-7000-8000-000000000000"
# Beyond the specification's columns: the base-table bookkeeping our records all carry.
BOOKKEEPING = """    deleted_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_by UUID NOT NULL,
    version INTEGER NOT NULL DEFAULT 1"""


def upgrade() -> None:
    _definitions()
    _instances()
    _steps_and_approvals()
    _notifications()
    _webhooks()
    _worker()
    _role_holders()


def _definitions() -> None:
    op.execute(f"""
CREATE TABLE {W}.workflow_definitions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name VARCHAR(200) NOT NULL,
    description TEXT,
    trigger_type VARCHAR(50) NOT NULL,  -- 'manual', 'event', 'schedule'
    trigger_config JSONB,
    steps JSONB NOT NULL,
    domain VARCHAR(100),
    active BOOLEAN DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_by UUID NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    -- Beyond the specification: soft delete, and the trigger types as a constraint.
    deleted_at TIMESTAMPTZ,
    CONSTRAINT chk_workflow_trigger_type CHECK (trigger_type IN ('manual', 'event', 'schedule')),
    CONSTRAINT chk_workflow_steps_array CHECK (jsonb_typeof(steps) = 'array')
)""")
    op.execute(f"CREATE INDEX idx_workflow_defs_domain ON {W}.workflow_definitions(domain)")
    op.execute(f"CREATE INDEX idx_workflow_defs_trigger ON {W}.workflow_definitions(trigger_type)")
    # Beyond: one live definition of a name per domain (NULL: the platform's), so "the domain's
    # change-approval workflow" is a lookup by name with the platform's as the fallback.
    op.execute(f"CREATE UNIQUE INDEX uq_workflow_defs_name_domain ON {W}.workflow_definitions "
               "(name, coalesce(domain, '')) WHERE deleted_at IS NULL")
    enable_domain_rls(W, "workflow_definitions")
    grant(W, "workflow_definitions", "SELECT, INSERT, UPDATE")

    # Beyond: every version of a definition, so a running instance keeps the steps it started with.
    op.execute(f"""
CREATE TABLE {W}.workflow_definition_versions (
    definition_id UUID NOT NULL REFERENCES {W}.workflow_definitions(id),
    version INTEGER NOT NULL,
    domain VARCHAR(100),
    name VARCHAR(200) NOT NULL,
    trigger_type VARCHAR(50) NOT NULL,
    trigger_config JSONB,
    steps JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    created_by UUID NOT NULL,
    PRIMARY KEY (definition_id, version)
)""")
    enable_domain_rls(W, "workflow_definition_versions")
    grant(W, "workflow_definition_versions", "SELECT, INSERT")


def _instances() -> None:
    op.execute(f"CREATE TYPE {W}.workflow_instance_status AS ENUM ('running', 'completed', 'failed', 'cancelled')")
    op.execute(f"""
CREATE TABLE {W}.workflow_instances (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    workflow_definition_id UUID NOT NULL,
    context_type VARCHAR(50),
    context_id UUID,
    status {W}.workflow_instance_status NOT NULL DEFAULT 'running',
    current_step INTEGER DEFAULT 1,
    variables JSONB DEFAULT '{{}}',
    started_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    started_by UUID,
    completed_at TIMESTAMPTZ,
    -- Beyond the specification:
    domain VARCHAR(100),                 -- the context record's domain (row-level security)
    definition_version INTEGER NOT NULL, -- the definition's version this instance runs
    requested_by UUID,                   -- the requester, who may never approve
    outcome VARCHAR(50),                 -- approved, rejected, completed, cancelled, failed
    -- Runnable by the worker from this time on; NULL while waiting for a person or finished.
    next_run_at TIMESTAMPTZ,
    -- What started it (event id, schedule slot): an event or a slot starts an instance once.
    trigger_key VARCHAR(200),
    last_error TEXT,
{BOOKKEEPING},
    CONSTRAINT fk_workflow_def FOREIGN KEY (workflow_definition_id) REFERENCES {W}.workflow_definitions(id)
)""")
    op.execute(f"CREATE INDEX idx_workflow_inst_def ON {W}.workflow_instances(workflow_definition_id)")
    op.execute(f"CREATE INDEX idx_workflow_inst_status ON {W}.workflow_instances(status)")
    op.execute(f"CREATE INDEX idx_workflow_inst_context ON {W}.workflow_instances(context_type, context_id)")
    op.execute(f"CREATE INDEX idx_workflow_inst_runnable ON {W}.workflow_instances(next_run_at) "
               "WHERE next_run_at IS NOT NULL")
    op.execute(f"CREATE UNIQUE INDEX uq_workflow_inst_trigger ON {W}.workflow_instances"
               "(workflow_definition_id, trigger_key) WHERE trigger_key IS NOT NULL")
    enable_domain_rls(W, "workflow_instances")
    grant(W, "workflow_instances", "SELECT, INSERT, UPDATE")


def _steps_and_approvals() -> None:
    # Beyond: the timeline of an instance, one row per step reached, with who acted and when.
    op.execute(f"""
CREATE TABLE {W}.workflow_steps (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    instance_id UUID NOT NULL REFERENCES {W}.workflow_instances(id),
    domain VARCHAR(100),
    step_number INTEGER NOT NULL,
    step_type VARCHAR(20) NOT NULL,
    name VARCHAR(200),
    status VARCHAR(20) NOT NULL DEFAULT 'active',
    assignee_role VARCHAR(100),
    assignee_id UUID,
    started_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ,
    sla_due_at TIMESTAMPTZ,
    escalated_at TIMESTAMPTZ,
    acted_by UUID,
    comment TEXT,
    details JSONB NOT NULL DEFAULT '{{}}',
    CONSTRAINT chk_workflow_step_status CHECK (status IN ('active', 'completed', 'approved', 'rejected', 'skipped',
                                                          'cancelled', 'failed'))
)""")
    op.execute(f"CREATE INDEX idx_workflow_steps_instance ON {W}.workflow_steps(instance_id, started_at)")
    op.execute(f"CREATE INDEX idx_workflow_steps_sla ON {W}.workflow_steps(sla_due_at) "
               "WHERE status = 'active' AND escalated_at IS NULL AND sla_due_at IS NOT NULL")
    op.execute(f"CREATE INDEX idx_workflow_steps_open_tasks ON {W}.workflow_steps(domain, assignee_role) "
               "WHERE status = 'active' AND step_type = 'task'")
    enable_domain_rls(W, "workflow_steps")
    grant(W, "workflow_steps", "SELECT, INSERT, UPDATE")

    op.execute(f"""
CREATE TABLE {W}.approvals (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain VARCHAR(100),
    instance_id UUID NOT NULL REFERENCES {W}.workflow_instances(id),
    step_id UUID NOT NULL UNIQUE REFERENCES {W}.workflow_steps(id),
    approver_role VARCHAR(100) NOT NULL,
    required_approvals INTEGER NOT NULL DEFAULT 1,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    requested_by UUID,
    decided_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT chk_approval_status CHECK (status IN ('pending', 'approved', 'rejected', 'cancelled')),
    CONSTRAINT chk_approval_required CHECK (required_approvals BETWEEN 1 AND 20)
)""")
    op.execute(f"CREATE INDEX idx_approvals_pending ON {W}.approvals(domain, approver_role) WHERE status = 'pending'")
    op.execute(f"CREATE INDEX idx_approvals_instance ON {W}.approvals(instance_id)")
    enable_domain_rls(W, "approvals")
    grant(W, "approvals", "SELECT, INSERT, UPDATE")

    op.execute(f"""
CREATE TABLE {W}.approval_decisions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    approval_id UUID NOT NULL REFERENCES {W}.approvals(id),
    domain VARCHAR(100),
    user_id UUID NOT NULL,
    decision VARCHAR(10) NOT NULL,
    comment TEXT,
    decided_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT chk_approval_decision CHECK (decision IN ('approve', 'reject')),
    CONSTRAINT uq_approval_decision_user UNIQUE (approval_id, user_id)
)""")
    enable_domain_rls(W, "approval_decisions")
    grant(W, "approval_decisions", "SELECT, INSERT")


def _notifications() -> None:
    op.execute(f"""
CREATE TABLE {W}.notifications (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain VARCHAR(100),
    user_id UUID NOT NULL,
    subject VARCHAR(300) NOT NULL,
    body TEXT NOT NULL,
    context_type VARCHAR(50),
    context_id UUID,
    instance_id UUID,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    read_at TIMESTAMPTZ
)""")
    op.execute(f"CREATE INDEX idx_notifications_user ON {W}.notifications(user_id, created_at DESC)")
    enable_domain_rls(W, "notifications")
    # And only one's own: a notification is personal, even inside a domain one administers. The
    # platform (the worker, as the system user) writes them for everyone.
    own = f"(user_id = gaas_iam.acting_user_id() OR gaas_iam.acting_user_id() = '{SYSTEM_USER}'::uuid)"
    op.execute(f"CREATE POLICY notifications_own ON {W}.notifications AS RESTRICTIVE FOR ALL USING ({own}) "
               f"WITH CHECK ({own})")
    grant(W, "notifications", "SELECT, INSERT, UPDATE")

    op.execute(f"""
CREATE TABLE {W}.email_messages (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain VARCHAR(100),
    notification_id UUID REFERENCES {W}.notifications(id),
    to_address VARCHAR(255) NOT NULL,
    subject VARCHAR(300) NOT NULL,
    body TEXT NOT NULL,
    message_id VARCHAR(200) NOT NULL,
    status VARCHAR(10) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_error TEXT,
    sent_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT chk_email_status CHECK (status IN ('pending', 'sent', 'failed'))
)""")
    op.execute(f"CREATE INDEX idx_email_due ON {W}.email_messages(next_attempt_at) WHERE status = 'pending'")
    op.execute(f"CREATE INDEX idx_email_status ON {W}.email_messages(domain, status, created_at)")
    enable_domain_rls(W, "email_messages")
    grant(W, "email_messages", "SELECT, INSERT, UPDATE")


def _webhooks() -> None:
    op.execute(f"""
CREATE TABLE {W}.webhooks (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    domain VARCHAR(100),
{BOOKKEEPING},
    name VARCHAR(200) NOT NULL,
    url VARCHAR(2000) NOT NULL,
    secret VARCHAR(200) NOT NULL,
    event_types TEXT[] NOT NULL,
    condition TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    owner_id UUID NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    disabled_at TIMESTAMPTZ,
    disabled_reason TEXT,
    CONSTRAINT chk_webhook_event_types CHECK (cardinality(event_types) BETWEEN 1 AND 100)
)""")
    op.execute(f"CREATE INDEX idx_webhooks_domain ON {W}.webhooks(domain) WHERE deleted_at IS NULL")
    op.execute(f"CREATE INDEX idx_webhooks_created_at ON {W}.webhooks(created_at)")
    enable_domain_rls(W, "webhooks")
    grant(W, "webhooks", "SELECT, INSERT, UPDATE")

    op.execute(f"""
CREATE TABLE {W}.webhook_deliveries (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id UUID NOT NULL REFERENCES {W}.webhooks(id),
    domain VARCHAR(100),                -- the webhook's (row-level security)
    event_id UUID NOT NULL,
    idempotency_key VARCHAR(100) NOT NULL,
    event_type VARCHAR(100) NOT NULL,
    body JSONB NOT NULL,
    status VARCHAR(10) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_attempt_at TIMESTAMPTZ,
    response_status INTEGER,
    last_error TEXT,
    attempt_log JSONB NOT NULL DEFAULT '[]',
    delivered_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    CONSTRAINT chk_delivery_status CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Fan-out of one event to one webhook happens once, even if the event is handled again.
    CONSTRAINT uq_webhook_delivery_key UNIQUE (webhook_id, idempotency_key)
)""")
    op.execute(f"CREATE INDEX idx_deliveries_due ON {W}.webhook_deliveries(next_attempt_at) WHERE status = 'pending'")
    op.execute(f"CREATE INDEX idx_deliveries_webhook ON {W}.webhook_deliveries(webhook_id, created_at DESC)")
    enable_domain_rls(W, "webhook_deliveries")
    grant(W, "webhook_deliveries", "SELECT, INSERT, UPDATE")


def _worker() -> None:
    # Beyond: the next slot of every scheduled definition, claimed by one worker at a time.
    op.execute(f"""
CREATE TABLE {W}.workflow_schedules (
    definition_id UUID PRIMARY KEY REFERENCES {W}.workflow_definitions(id),
    domain VARCHAR(100),
    cron VARCHAR(100) NOT NULL,
    timezone VARCHAR(64) NOT NULL,
    next_run_at TIMESTAMPTZ NOT NULL,
    last_run_at TIMESTAMPTZ
)""")
    op.execute(f"CREATE INDEX idx_workflow_schedules_due ON {W}.workflow_schedules(next_run_at)")
    enable_domain_rls(W, "workflow_schedules")
    grant(W, "workflow_schedules", "SELECT, INSERT, UPDATE, DELETE")

    # The worker's own periodic jobs (partitions, SLA breach marking, outbox pruning): platform rows.
    op.execute(f"""
CREATE TABLE {W}.worker_jobs (
    name VARCHAR(100) PRIMARY KEY,
    interval_seconds INTEGER NOT NULL,
    next_run_at TIMESTAMPTZ NOT NULL,
    last_run_at TIMESTAMPTZ,
    last_error TEXT,
    runs BIGINT NOT NULL DEFAULT 0
)""")
    enable_rls_by(W, "worker_jobs", read="gaas_iam.sees_domain(NULL)", write="gaas_iam.writes_domain(NULL)")
    grant(W, "worker_jobs", "SELECT, INSERT, UPDATE")
    # The worker prunes delivered events after GAAS_OUTBOX_RETENTION_DAYS.
    grant(W, "outbox_events", "DELETE")

    # Wake idle workers at commit instead of waiting for their next poll.
    op.execute(f"""
CREATE FUNCTION {W}.wake_workers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gaas_worker', TG_TABLE_NAME);
    RETURN NULL;
END
$$""")
    op.execute(f"REVOKE ALL ON FUNCTION {W}.wake_workers() FROM PUBLIC")
    op.execute(f"CREATE TRIGGER outbox_wake AFTER INSERT ON {W}.outbox_events "
               f"FOR EACH STATEMENT EXECUTE FUNCTION {W}.wake_workers()")
    op.execute(f"CREATE TRIGGER instances_wake AFTER INSERT OR UPDATE OF next_run_at ON {W}.workflow_instances "
               f"FOR EACH STATEMENT EXECUTE FUNCTION {W}.wake_workers()")
    for table in ("webhook_deliveries", "email_messages"):
        op.execute(f"CREATE TRIGGER {table}_wake AFTER INSERT ON {W}.{table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {W}.wake_workers()")


def _role_holders() -> None:
    """Who holds a role in a domain (approvers, escalation recipients), for callers that cannot
    see those users: the approver check runs as the approver, who may not see every holder."""
    definer_function(f"{W}.role_holders(text, text)", f"""
CREATE FUNCTION {W}.role_holders(p_role text, p_domain text) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT DISTINCT u.id
    FROM gaas_iam.users u
    JOIN gaas_iam.user_roles ur ON ur.user_id = u.id
    JOIN gaas_iam.roles r ON r.id = ur.role_id AND r.deleted_at IS NULL AND r.name = p_role
    LEFT JOIN gaas_iam.domains d ON ur.scope_type = 'domain' AND d.id = ur.scope_id AND d.deleted_at IS NULL
    WHERE u.status = 'active' AND u.deleted_at IS NULL
      AND (
        -- given for one domain
        (ur.scope_type = 'domain' AND d.code = p_domain AND (r.domain IS NULL OR r.domain = p_domain))
        -- given globally: a platform role acts in the user's own domain (every domain for a
        -- global user); a domain's own role acts in that domain only
        OR (coalesce(ur.scope_type, 'global') = 'global' AND (
              (r.domain IS NULL AND (u.domain IS NULL OR u.domain = p_domain))
              OR (r.domain IS NOT NULL AND r.domain = p_domain)))
      )
$$""")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {W}.role_holders(text, text)")
    op.execute(f"DROP TRIGGER IF EXISTS outbox_wake ON {W}.outbox_events")
    for table in ("worker_jobs", "workflow_schedules", "webhook_deliveries", "webhooks", "email_messages",
                  "notifications", "approval_decisions", "approvals", "workflow_steps", "workflow_instances",
                  "workflow_definition_versions", "workflow_definitions"):
        op.execute(f"DROP TABLE IF EXISTS {W}.{table} CASCADE")
    op.execute(f"DROP FUNCTION IF EXISTS {W}.wake_workers()")
    op.execute(f"DROP TYPE IF EXISTS {W}.workflow_instance_status")
