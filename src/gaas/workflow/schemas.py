"""Bodies the workflow, approval, notification and webhook APIs read and write."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from gaas.iam.schemas import DomainCode, Name, Record, Strict
from gaas.workflow.models import InstanceStatus, TriggerType

Comment = Annotated[str, StringConstraints(max_length=10000)]
ContextTypeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,49}$")]
EventPattern = Annotated[str, StringConstraints(pattern=r"^(\*|[a-z][a-z0-9_]*(\.(\*|[a-z][a-z0-9_]*))?)$",
                                                max_length=100)]
Steps = Annotated[list[Any], Field(min_length=1, max_length=50,
                                   description="The steps, in order; see the module documentation for their shapes")]


class DefinitionCreate(Strict):
    name: Name
    description: str | None = Field(default=None, max_length=10000)
    domain: DomainCode | None = Field(default=None, description="Omit for a platform definition (global)")
    trigger_type: TriggerType = TriggerType.manual
    trigger_config: dict[str, Any] | None = Field(
        default=None, description="event: {event_type, condition}; schedule: {cron, timezone}")
    steps: Steps
    active: bool = True


class DefinitionUpdate(Strict):
    name: Name = None  # may be omitted, never null
    description: str | None = Field(default=None, max_length=10000)
    trigger_type: TriggerType = None  # may be omitted, never null
    trigger_config: dict[str, Any] | None = None
    steps: Steps = None  # may be omitted, never null
    active: bool = None  # may be omitted, never null
    version: int | None = Field(default=None, ge=1)


class DefinitionOut(Record):
    id: uuid.UUID
    name: str
    description: str | None
    domain: str | None
    trigger_type: str
    trigger_config: dict[str, Any] | None
    steps: list[dict[str, Any]]
    active: bool | None
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    version: int
    deleted_at: datetime | None


class DefinitionVersionOut(Record):
    definition_id: uuid.UUID
    version: int
    name: str
    trigger_type: str
    trigger_config: dict[str, Any] | None
    steps: list[dict[str, Any]]
    created_at: datetime
    created_by: uuid.UUID


class InstanceStart(Strict):
    definition_id: uuid.UUID | None = Field(default=None, description="The definition, or its name")
    definition_name: Name | None = None
    context_type: ContextTypeName | None = None
    context_id: uuid.UUID | None = None
    domain: DomainCode | None = Field(default=None, description="Needed when there is no context record")
    variables: dict[str, Any] = Field(default_factory=dict)


class StepOut(Record):
    id: uuid.UUID
    step_number: int
    step_type: str
    name: str | None
    status: str
    assignee_role: str | None
    assignee_id: uuid.UUID | None
    started_at: datetime
    completed_at: datetime | None
    sla_due_at: datetime | None
    escalated_at: datetime | None
    acted_by: uuid.UUID | None
    comment: str | None
    details: dict[str, Any]


class DecisionOut(Record):
    user_id: uuid.UUID
    decision: str
    comment: str | None
    decided_at: datetime


class ApprovalOut(Record):
    id: uuid.UUID
    domain: str | None
    instance_id: uuid.UUID
    step_id: uuid.UUID
    approver_role: str
    required_approvals: int
    status: str
    requested_by: uuid.UUID | None
    decided_at: datetime | None
    created_at: datetime
    context_type: str | None = None
    context_id: uuid.UUID | None = None
    decisions: list[DecisionOut] = []


class InstanceOut(Record):
    id: uuid.UUID
    workflow_definition_id: uuid.UUID
    definition_version: int
    context_type: str | None
    context_id: uuid.UUID | None
    domain: str | None
    status: InstanceStatus
    outcome: str | None
    current_step: int | None
    variables: dict[str, Any]
    started_at: datetime
    started_by: uuid.UUID | None
    requested_by: uuid.UUID | None
    completed_at: datetime | None
    last_error: str | None
    version: int


class InstanceDetail(InstanceOut):
    timeline: list[StepOut] = []
    approvals: list[ApprovalOut] = []


class DecisionIn(Strict):
    comment: Comment | None = None


class TaskComplete(Strict):
    comment: Comment | None = None
    variables: dict[str, Any] = Field(default_factory=dict, description="Merged into the instance's variables")


class TaskOut(StepOut):
    instance_id: uuid.UUID
    domain: str | None


class NotificationOut(Record):
    id: uuid.UUID
    domain: str | None
    subject: str
    body: str
    context_type: str | None
    context_id: uuid.UUID | None
    instance_id: uuid.UUID | None
    created_at: datetime
    read_at: datetime | None


class EmailOut(Record):
    id: uuid.UUID
    domain: str | None
    notification_id: uuid.UUID | None
    to_address: str
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime


class WebhookCreate(Strict):
    name: Name
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000, pattern=r"^https?://\S+$")]
    domain: DomainCode | None = Field(default=None, description="Only this domain's events; omit (global users "
                                                                "only) for every domain the owner sees")
    event_types: Annotated[list[EventPattern], Field(min_length=1, max_length=100,
                                                     description="e.g. change.approved, incident.*, *")]
    condition: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None, description="An expression on the event, e.g. change.type == \"normal\"")
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = Field(
        default=None, description="The HMAC key; generated when omitted, and shown only in this response")
    active: bool = True


class WebhookUpdate(Strict):
    name: Name = None  # may be omitted, never null
    url: Annotated[str, StringConstraints(min_length=8, max_length=2000, pattern=r"^https?://\S+$")] = None
    event_types: Annotated[list[EventPattern], Field(min_length=1, max_length=100)] = None
    condition: Annotated[str, StringConstraints(max_length=2000)] | None = None
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] = None
    active: bool = None  # may be omitted, never null; true re-enables a disabled webhook
    version: int | None = Field(default=None, ge=1)


class WebhookOut(Record):
    id: uuid.UUID
    domain: str | None
    name: str
    url: str
    event_types: list[str]
    condition: str | None
    active: bool
    owner_id: uuid.UUID
    consecutive_failures: int
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    version: int
    deleted_at: datetime | None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown only once")


class DeliveryOut(Record):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event_id: uuid.UUID
    idempotency_key: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    response_status: int | None
    last_error: str | None
    attempt_log: list[dict[str, Any]]
    delivered_at: datetime | None
    created_at: datetime


class ReadAll(BaseModel):
    marked: int


DecisionKind = Literal["approve", "reject"]
