"""Workflow, approval, task, notification and webhook API: thin translation to the services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from gaas.core.errors import ValidationProblem
from gaas.core.history import register_history
from gaas.core.http import CurrentActor, DbSession, IfMatch, PageLimit, set_etag
from gaas.core.pagination import Page
from gaas.iam import service as iam
from gaas.workflow import notify, service, webhooks
from gaas.workflow.models import Approval, InstanceStatus, TriggerType, WorkflowInstance
from gaas.workflow.schemas import (
    ApprovalOut,
    DecisionIn,
    DecisionOut,
    DefinitionCreate,
    DefinitionOut,
    DefinitionUpdate,
    DefinitionVersionOut,
    DeliveryOut,
    EmailOut,
    InstanceDetail,
    InstanceOut,
    InstanceStart,
    NotificationOut,
    ReadAll,
    StepOut,
    TaskComplete,
    TaskOut,
    WebhookCreate,
    WebhookCreated,
    WebhookOut,
    WebhookUpdate,
)

router = APIRouter(prefix="/api/v1", tags=["workflow"])
Cursor = Annotated[str | None, Query(max_length=500)]
DomainQuery = Annotated[str | None, Query(max_length=100)]

register_history("workflow-definitions", "workflow_definition",
                 lambda db, actor, id_: service.get_definition(db, actor, id_))
register_history("workflow-instances", "workflow_instance", lambda db, actor, id_: service.get_instance(db, actor, id_))
register_history("webhooks", "webhook", lambda db, actor, id_: webhooks.get_webhook(db, actor, id_))


def _now() -> datetime:
    return datetime.now(UTC)


# ---- definitions -----------------------------------------------------------------------------------

def _definition(response: Response, definition) -> DefinitionOut:
    set_etag(response, definition.version)
    return DefinitionOut.model_validate(definition)


@router.get("/workflow-definitions", response_model=Page[DefinitionOut])
def list_definitions(db: DbSession, actor: CurrentActor, limit: PageLimit, domain: DomainQuery = None,
                     trigger_type: TriggerType | None = None, active: bool | None = None,
                     name: Annotated[str | None, Query(max_length=200)] = None, include_deleted: bool = False,
                     sort: Annotated[str | None, Query(max_length=50)] = None,
                     cursor: Cursor = None) -> Page[DefinitionOut]:
    rows, next_cursor = service.list_definitions(db, actor, domain=domain, trigger_type=trigger_type, active=active,
                                                 name=name, include_deleted=include_deleted, sort=sort,
                                                 cursor=cursor, limit=limit)
    return Page[DefinitionOut](items=[DefinitionOut.model_validate(r) for r in rows], next_cursor=next_cursor,
                               limit=limit)


@router.post("/workflow-definitions", response_model=DefinitionOut, status_code=status.HTTP_201_CREATED,
             summary="Define a workflow (validated: step types, roles, templates, cron, reachability)")
def create_definition(body: DefinitionCreate, db: DbSession, actor: CurrentActor, response: Response) -> DefinitionOut:
    return _definition(response, service.create_definition(db, actor, body))


@router.get("/workflow-definitions/{definition_id}", response_model=DefinitionOut)
def get_definition(definition_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> DefinitionOut:
    return _definition(response, service.get_definition(db, actor, definition_id))


@router.patch("/workflow-definitions/{definition_id}", response_model=DefinitionOut,
              summary="Edit a definition: a new version; running instances keep theirs")
def update_definition(definition_id: uuid.UUID, body: DefinitionUpdate, db: DbSession, actor: CurrentActor,
                      response: Response, if_match: IfMatch) -> DefinitionOut:
    return _definition(response, service.update_definition(db, actor, definition_id, body, if_match))


@router.delete("/workflow-definitions/{definition_id}", response_model=DefinitionOut)
def delete_definition(definition_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                      if_match: IfMatch) -> DefinitionOut:
    return _definition(response, service.delete_definition(db, actor, definition_id, if_match))


@router.post("/workflow-definitions/{definition_id}/restore", response_model=DefinitionOut)
def restore_definition(definition_id: uuid.UUID, db: DbSession, actor: CurrentActor,
                       response: Response) -> DefinitionOut:
    return _definition(response, service.restore_definition(db, actor, definition_id))


@router.get("/workflow-definitions/{definition_id}/versions/{version}", response_model=DefinitionVersionOut)
def definition_version(definition_id: uuid.UUID, version: int, db: DbSession,
                       actor: CurrentActor) -> DefinitionVersionOut:
    return DefinitionVersionOut.model_validate(service.definition_version(db, actor, definition_id, version))


# ---- instances -------------------------------------------------------------------------------------

def _approval_out(approval: Approval, instance: WorkflowInstance | None, decisions) -> ApprovalOut:
    out = ApprovalOut.model_validate(approval)
    out.decisions = [DecisionOut.model_validate(d) for d in decisions]
    if instance is not None:
        out.context_type, out.context_id = instance.context_type, instance.context_id
    return out


def _detail(db, instance: WorkflowInstance, response: Response | None = None) -> InstanceDetail:
    if response is not None:
        set_etag(response, instance.version)
    steps, approvals, decisions = service.timeline(db, instance)
    detail = InstanceDetail.model_validate(instance)
    detail.timeline = [StepOut.model_validate(s) for s in steps]
    detail.approvals = [_approval_out(a, instance, decisions.get(a.id, [])) for a in approvals]
    return detail


@router.get("/workflow-instances", response_model=Page[InstanceOut])
def list_instances(db: DbSession, actor: CurrentActor, limit: PageLimit,
                   definition: Annotated[uuid.UUID | None, Query(description="workflow_definition_id")] = None,
                   status: InstanceStatus | None = None,
                   context_type: Annotated[str | None, Query(max_length=50)] = None,
                   context_id: uuid.UUID | None = None, domain: DomainQuery = None,
                   cursor: Cursor = None) -> Page[InstanceOut]:
    rows, next_cursor = service.list_instances(db, actor, definition_id=definition, status=status,
                                               context_type=context_type, context_id=context_id, domain=domain,
                                               cursor=cursor, limit=limit)
    return Page[InstanceOut](items=[InstanceOut.model_validate(r) for r in rows], next_cursor=next_cursor,
                             limit=limit)


@router.post("/workflow-instances", response_model=InstanceDetail, status_code=status.HTTP_201_CREATED,
             summary="Start a workflow by hand for a record (or for a domain)")
def start_instance(body: InstanceStart, db: DbSession, actor: CurrentActor, response: Response) -> InstanceDetail:
    if (body.definition_id is None) == (body.definition_name is None):
        raise ValidationProblem.field("definition_id", "give definition_id or definition_name", "missing")
    if (body.context_type is None) != (body.context_id is None):
        raise ValidationProblem.field("context_id", "context_type and context_id go together", "missing")
    domain = body.domain
    if body.context_type is not None and service.contexts.context_type(body.context_type) is None:
        raise ValidationProblem.field("context_type", f"no record type {body.context_type!r}", "unknown_context")
    if body.context_type is not None:
        domain = getattr(service._load_record(db, actor, body.context_type, body.context_id), "domain", domain)
    iam.require(actor, "workflow.start", domain)
    instance = service.start(db, actor, body.definition_id or body.definition_name, body.context_type,
                             body.context_id, body.variables, domain=domain, run_now=True)
    return _detail(db, instance, response)


@router.get("/workflow-instances/{instance_id}", response_model=InstanceDetail,
            summary="An instance with its timeline: every step, who acted and when")
def get_instance(instance_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> InstanceDetail:
    return _detail(db, service.get_instance(db, actor, instance_id), response)


@router.post("/workflow-instances/{instance_id}/cancel", response_model=InstanceDetail)
def cancel_instance(instance_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> InstanceDetail:
    return _detail(db, service.cancel_instance(db, actor, instance_id), response)


# ---- approvals and tasks ---------------------------------------------------------------------------

@router.get("/approvals", response_model=Page[ApprovalOut], tags=["approvals"])
def list_approvals(db: DbSession, actor: CurrentActor, limit: PageLimit,
                   mine: Annotated[bool, Query(description="Pending approvals I may decide")] = False,
                   status: Literal["pending", "approved", "rejected", "cancelled"] | None = None,
                   domain: DomainQuery = None, cursor: Cursor = None) -> Page[ApprovalOut]:
    rows, next_cursor = service.list_approvals(db, actor, status=status, mine=mine, domain=domain, cursor=cursor,
                                               limit=limit)
    return Page[ApprovalOut](items=[ApprovalOut.model_validate(r) for r in rows], next_cursor=next_cursor,
                             limit=limit)


def _approval_detail(db, approval: Approval) -> ApprovalOut:
    instance = db.get(WorkflowInstance, approval.instance_id)
    _, _, decisions = service.timeline(db, instance)
    return _approval_out(approval, instance, decisions.get(approval.id, []))


@router.get("/approvals/{approval_id}", response_model=ApprovalOut, tags=["approvals"])
def get_approval(approval_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> ApprovalOut:
    return _approval_detail(db, service.get_approval(db, actor, approval_id))


@router.post("/approvals/{approval_id}/approve", response_model=ApprovalOut, tags=["approvals"],
             summary="Approve (a holder of the approver role in the domain, never the requester)")
def approve(approval_id: uuid.UUID, body: DecisionIn, db: DbSession, actor: CurrentActor) -> ApprovalOut:
    return _approval_detail(db, service.decide(db, actor, approval_id, "approve", body.comment))


@router.post("/approvals/{approval_id}/reject", response_model=ApprovalOut, tags=["approvals"],
             summary="Reject, with a comment")
def reject(approval_id: uuid.UUID, body: DecisionIn, db: DbSession, actor: CurrentActor) -> ApprovalOut:
    return _approval_detail(db, service.decide(db, actor, approval_id, "reject", body.comment))


@router.get("/workflow-tasks", response_model=Page[TaskOut], tags=["approvals"])
def list_tasks(db: DbSession, actor: CurrentActor, limit: PageLimit,
               mine: Annotated[bool, Query(description="Open tasks for me or my roles")] = False,
               status: Literal["active", "completed", "cancelled"] | None = None,
               domain: DomainQuery = None, cursor: Cursor = None) -> Page[TaskOut]:
    rows, next_cursor = service.list_tasks(db, actor, mine=mine, status=status, domain=domain, cursor=cursor,
                                           limit=limit)
    return Page[TaskOut](items=[TaskOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/workflow-tasks/{task_id}/complete", response_model=TaskOut, tags=["approvals"])
def complete_task(task_id: uuid.UUID, body: TaskComplete, db: DbSession, actor: CurrentActor) -> TaskOut:
    return TaskOut.model_validate(service.complete_task(db, actor, task_id, body.comment, body.variables))


# ---- notifications ---------------------------------------------------------------------------------

@router.get("/notifications", response_model=Page[NotificationOut], tags=["notifications"],
            summary="My in-app notifications, newest first")
def list_notifications(db: DbSession, actor: CurrentActor, limit: PageLimit, unread: bool = False,
                       cursor: Cursor = None) -> Page[NotificationOut]:
    rows, next_cursor = notify.list_notifications(db, actor, unread=unread, cursor=cursor, limit=limit)
    return Page[NotificationOut](items=[NotificationOut.model_validate(r) for r in rows], next_cursor=next_cursor,
                                 limit=limit)


@router.post("/notifications/read-all", response_model=ReadAll, tags=["notifications"])
def read_all(db: DbSession, actor: CurrentActor) -> ReadAll:
    return ReadAll(marked=notify.mark_all_read(db, actor, _now()))


@router.post("/notifications/{notification_id}/read", response_model=NotificationOut, tags=["notifications"])
def mark_read(notification_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> NotificationOut:
    return NotificationOut.model_validate(notify.mark_read(db, actor, notification_id, _now()))


@router.get("/email-messages", response_model=Page[EmailOut], tags=["notifications"],
            summary="E-mails sent or being retried (e.g. ?status=failed), for workflow managers")
def list_emails(db: DbSession, actor: CurrentActor, limit: PageLimit,
                status: Literal["pending", "sent", "failed"] | None = None, domain: DomainQuery = None,
                cursor: Cursor = None) -> Page[EmailOut]:
    rows, next_cursor = notify.list_emails(db, actor, status=status, domain=domain, cursor=cursor, limit=limit)
    return Page[EmailOut](items=[EmailOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


# ---- webhooks --------------------------------------------------------------------------------------

def _webhook(response: Response, webhook) -> WebhookOut:
    set_etag(response, webhook.version)
    return WebhookOut.model_validate(webhook)


@router.get("/webhooks", response_model=Page[WebhookOut], tags=["webhooks"])
def list_webhooks(db: DbSession, actor: CurrentActor, limit: PageLimit, domain: DomainQuery = None,
                  active: bool | None = None, include_deleted: bool = False,
                  sort: Annotated[str | None, Query(max_length=50)] = None,
                  cursor: Cursor = None) -> Page[WebhookOut]:
    rows, next_cursor = webhooks.list_webhooks(db, actor, domain=domain, active=active,
                                               include_deleted=include_deleted, sort=sort, cursor=cursor,
                                               limit=limit)
    return Page[WebhookOut](items=[WebhookOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/webhooks", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED, tags=["webhooks"],
             summary="Subscribe a URL to events; bodies are signed (X-GaaS-Signature: sha256=HMAC)")
def create_webhook(body: WebhookCreate, db: DbSession, actor: CurrentActor, response: Response) -> WebhookCreated:
    webhook, secret = webhooks.create_webhook(db, actor, body)
    set_etag(response, webhook.version)
    return WebhookCreated.model_validate({**WebhookOut.model_validate(webhook).model_dump(), "secret": secret})


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"])
def get_webhook(webhook_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> WebhookOut:
    return _webhook(response, webhooks.get_webhook(db, actor, webhook_id))


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"])
def update_webhook(webhook_id: uuid.UUID, body: WebhookUpdate, db: DbSession, actor: CurrentActor,
                   response: Response, if_match: IfMatch) -> WebhookOut:
    return _webhook(response, webhooks.update_webhook(db, actor, webhook_id, body, if_match))


@router.delete("/webhooks/{webhook_id}", response_model=WebhookOut, tags=["webhooks"])
def delete_webhook(webhook_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                   if_match: IfMatch) -> WebhookOut:
    return _webhook(response, webhooks.delete_webhook(db, actor, webhook_id, if_match))


@router.post("/webhooks/{webhook_id}/restore", response_model=WebhookOut, tags=["webhooks"])
def restore_webhook(webhook_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> WebhookOut:
    return _webhook(response, webhooks.restore_webhook(db, actor, webhook_id))


@router.get("/webhooks/{webhook_id}/deliveries", response_model=Page[DeliveryOut], tags=["webhooks"],
            summary="The webhook's delivery log: every event, its attempts and their results")
def list_deliveries(webhook_id: uuid.UUID, db: DbSession, actor: CurrentActor, limit: PageLimit,
                    status: Literal["pending", "delivered", "failed"] | None = None,
                    cursor: Cursor = None) -> Page[DeliveryOut]:
    rows, next_cursor = webhooks.list_deliveries(db, actor, webhook_id, status=status, cursor=cursor, limit=limit)
    return Page[DeliveryOut](items=[DeliveryOut.model_validate(r) for r in rows], next_cursor=next_cursor,
                             limit=limit)
