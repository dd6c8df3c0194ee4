"""gaas_workflow: workflow definitions (and their versions), instances with their step timeline,
approvals, notifications and e-mails, webhooks and their delivery log, schedules, worker jobs.
The outbox (outbox_events) is written through gaas.core.events with plain SQL."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gaas.core.errors import register_unique_fields
from gaas.core.ids import new_id
from gaas.core.models import AuditedMixin, Base, BaseTableMixin, pg_enum

SCHEMA = "gaas_workflow"

register_unique_fields({
    "uq_workflow_defs_name_domain": "name",
    "uq_approval_decision_user": "approval_id",
})


class TriggerType(enum.StrEnum):
    manual = "manual"
    event = "event"
    schedule = "schedule"


class InstanceStatus(enum.StrEnum):
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class WorkflowDefinition(BaseTableMixin, Base):
    """The specification's columns plus soft delete. `version` is both the optimistic lock and the
    definition's version: every edit stores a snapshot in workflow_definition_versions."""

    __tablename__ = "workflow_definitions"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "workflow_definition"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    trigger_type: Mapped[str] = mapped_column(String(50))
    trigger_config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class DefinitionVersion(Base):
    __tablename__ = "workflow_definition_versions"
    __table_args__ = {"schema": SCHEMA}

    definition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.workflow_definitions.id"),
                                                     primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    trigger_type: Mapped[str] = mapped_column(String(50))
    trigger_config: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID]


class WorkflowInstance(BaseTableMixin, Base):
    __tablename__ = "workflow_instances"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "workflow_instance"
    __audit_ignore__ = AuditedMixin.__audit_ignore__ | {"next_run_at"}

    workflow_definition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.workflow_definitions.id"))
    context_type: Mapped[str | None] = mapped_column(String(50))
    context_id: Mapped[uuid.UUID | None]
    status: Mapped[InstanceStatus] = mapped_column(pg_enum(InstanceStatus, "workflow_instance_status", SCHEMA),
                                                  default=InstanceStatus.running)
    current_step: Mapped[int | None] = mapped_column(Integer, default=1)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_by: Mapped[uuid.UUID | None]
    completed_at: Mapped[datetime | None]
    definition_version: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[uuid.UUID | None]
    outcome: Mapped[str | None] = mapped_column(String(50))
    next_run_at: Mapped[datetime | None]
    trigger_key: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)


class WorkflowStep(Base):
    """One step reached by an instance: the timeline."""

    __tablename__ = "workflow_steps"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.workflow_instances.id"))
    domain: Mapped[str | None] = mapped_column(String(100))
    step_number: Mapped[int] = mapped_column(Integer)
    step_type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    assignee_role: Mapped[str | None] = mapped_column(String(100))
    assignee_id: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    sla_due_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    acted_by: Mapped[uuid.UUID | None]
    comment: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    domain: Mapped[str | None] = mapped_column(String(100))
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.workflow_instances.id"))
    step_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.workflow_steps.id"))
    approver_role: Mapped[str] = mapped_column(String(100))
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    requested_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ApprovalDecision(Base):
    __tablename__ = "approval_decisions"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    approval_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.approvals.id"))
    domain: Mapped[str | None] = mapped_column(String(100))
    user_id: Mapped[uuid.UUID]
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    domain: Mapped[str | None] = mapped_column(String(100))
    user_id: Mapped[uuid.UUID]
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    context_type: Mapped[str | None] = mapped_column(String(50))
    context_id: Mapped[uuid.UUID | None]
    instance_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    read_at: Mapped[datetime | None]


class EmailMessage(Base):
    __tablename__ = "email_messages"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    domain: Mapped[str | None] = mapped_column(String(100))
    notification_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.notifications.id"))
    to_address: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Webhook(BaseTableMixin, Base):
    __tablename__ = "webhooks"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "webhook"
    __audit_redact__ = frozenset({"secret"})
    __audit_ignore__ = AuditedMixin.__audit_ignore__ | {"consecutive_failures"}

    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(Text))
    condition: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    owner_id: Mapped[uuid.UUID]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.webhooks.id"))
    domain: Mapped[str | None] = mapped_column(String(100))
    event_id: Mapped[uuid.UUID]
    idempotency_key: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_attempt_at: Mapped[datetime | None]
    response_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Schedule(Base):
    __tablename__ = "workflow_schedules"
    __table_args__ = {"schema": SCHEMA}

    definition_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.workflow_definitions.id"),
                                                     primary_key=True)
    domain: Mapped[str | None] = mapped_column(String(100))
    cron: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    next_run_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
