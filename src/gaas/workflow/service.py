"""The workflow engine: definitions (validated, versioned), instances and their steps, approvals,
tasks, SLA escalation, schedules and event triggers. The only entry to gaas_workflow's workflow
tables for the API, the worker and other modules.

For other modules:
- `start(db, actor, "normal-change-approval", "change", change.id, {...}, run_now=True)` starts the
  domain's definition of that name (or the platform's) for a record, in the caller's transaction;
- `contexts.register_context_type` / `contexts.register_outcome_handler` let a module's records be
  read, written (`set_field`) and told the outcome (approved, rejected, ...).

An instance advances one step per `run_step`. Automatic steps (notification, condition,
set_field) run one after the other; approval and task steps wait for people. Engine work runs as
the platform (`as_platform`), so it may notify anyone and write through other modules' services
whatever the permissions of the person whose decision moved the workflow on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.orm import Session

from gaas.audit import service as audit
from gaas.core.context import SYSTEM_USER_ID, Actor
from gaas.core.db import request_info, set_context
from gaas.core.errors import Conflict, Forbidden, NotFound, Problem, ValidationProblem
from gaas.core.events import emit
from gaas.core.ids import new_id
from gaas.core.jsontext import jsonable
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import where_equal, where_viewable
from gaas.core.records import apply_patch, restore, soft_delete, stamp_created
from gaas.iam import service as iam
from gaas.iam.models import Domain, Role
from gaas.workflow import contexts, events
from gaas.workflow.expressions import ExpressionError, evaluate, render
from gaas.workflow.models import (
    Approval,
    ApprovalDecision,
    DefinitionVersion,
    InstanceStatus,
    Schedule,
    TriggerType,
    WorkflowDefinition,
    WorkflowInstance,
    WorkflowStep,
)
from gaas.workflow.notify import notify_users
from gaas.workflow.schemas import DefinitionCreate, DefinitionUpdate
from gaas.workflow.steps import PERSON_REFS, next_of, next_slot, validate_steps, validate_trigger
from gaas.workflow.templates import TEMPLATES

MAX_AUTOMATIC_STEPS = 200  # per run_until_waiting: far above any valid (acyclic) definition


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


# ---- acting as the platform ------------------------------------------------------------------------

@contextmanager
def as_platform(db: Session) -> Iterator[Actor]:
    """Engine work acts as the system user, keeping the request id so that the audit rows of one
    decision read as one event. Pending writes are flushed under the caller's own context first:
    row-level security checks them as whoever made them."""
    previous: Actor | None = db.info.get("actor")
    if previous is not None and previous.user_id == SYSTEM_USER_ID:
        yield previous
        return
    db.flush()
    platform = iam.system_actor(replace(request_info(db), entry_point="workflow"))
    set_context(db, platform)
    try:
        yield platform
        db.flush()
    finally:
        set_context(db, previous)


# ---- definitions -----------------------------------------------------------------------------------

DEFINITION_SORTS = (SortKey("name", WorkflowDefinition.name), SortKey("created_at", WorkflowDefinition.created_at),
                    SortKey("updated_at", WorkflowDefinition.updated_at))


def _role_checker(db: Session, domain: str | None):
    names = set(db.scalars(select(Role.name).where(Role.deleted_at.is_(None),
                                                   or_(Role.domain.is_(None), Role.domain == domain))))
    return lambda name: name in names


def _validated(db: Session, domain: str | None, trigger_type: str, trigger_config: dict[str, Any] | None,
               steps: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    config, errors = validate_trigger(trigger_type, trigger_config)
    normalized, step_errors = validate_steps(steps, _role_checker(db, domain))
    errors += step_errors
    if errors:
        raise ValidationProblem("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)
    return config, normalized


def _snapshot(db: Session, definition: WorkflowDefinition, actor: Actor) -> None:
    db.flush()  # the version is bumped at flush
    db.add(DefinitionVersion(definition_id=definition.id, version=definition.version, domain=definition.domain,
                             name=definition.name, trigger_type=definition.trigger_type,
                             trigger_config=definition.trigger_config, steps=definition.steps,
                             created_by=actor.user_id))


def _sync_schedule(db: Session, definition: WorkflowDefinition, now: datetime) -> None:
    schedule = db.get(Schedule, definition.id)
    wanted = (definition.trigger_type == TriggerType.schedule and definition.active
              and definition.deleted_at is None)
    if not wanted:
        if schedule is not None:
            db.delete(schedule)
        return
    config = definition.trigger_config or {}
    slot = next_slot(config["cron"], config["timezone"], now)
    if schedule is None:
        db.add(Schedule(definition_id=definition.id, domain=definition.domain, cron=config["cron"],
                        timezone=config["timezone"], next_run_at=slot))
    elif (schedule.cron, schedule.timezone) != (config["cron"], config["timezone"]):
        schedule.cron, schedule.timezone, schedule.next_run_at = config["cron"], config["timezone"], slot


def get_definition(db: Session, actor: Actor, definition_id: uuid.UUID, *,
                   include_deleted: bool = True) -> WorkflowDefinition:
    definition = db.get(WorkflowDefinition, definition_id)
    if (definition is None or (definition.deleted_at is not None and not include_deleted)
            or not (actor.can("workflow.view", definition.domain)
                    or (definition.domain is None and actor.can_anywhere("workflow.view")))):
        raise NotFound(f"No workflow definition {definition_id}.")
    return definition


def list_definitions(db: Session, actor: Actor, *, domain: str | None, trigger_type: str | None,
                     active: bool | None, name: str | None, include_deleted: bool, sort: str | None,
                     cursor: str | None, limit: int) -> tuple[list[WorkflowDefinition], str | None]:
    if not actor.can_anywhere("workflow.view"):
        raise Forbidden("Listing workflows needs the 'workflow.view' permission.", permission="workflow.view")
    stmt: Select = select(WorkflowDefinition)
    stmt = where_viewable(stmt, actor, "workflow.view", WorkflowDefinition.domain, global_rows=True)
    if not include_deleted:
        stmt = stmt.where(WorkflowDefinition.deleted_at.is_(None))
    stmt = where_equal(stmt, (WorkflowDefinition.domain, domain), (WorkflowDefinition.trigger_type, trigger_type),
                       (WorkflowDefinition.active, active), (WorkflowDefinition.name, name))
    return paginate(stmt, id_column=WorkflowDefinition.id, sort_keys=DEFINITION_SORTS, sort=sort, cursor=cursor,
                    limit=limit, execute=db.scalars)


def create_definition(db: Session, actor: Actor, data: DefinitionCreate, *, now: datetime | None = None
                      ) -> WorkflowDefinition:
    iam.require(actor, "workflow.manage", data.domain)
    if data.domain is not None:
        iam.require_active_domain(db, data.domain)
    config, steps = _validated(db, data.domain, data.trigger_type, data.trigger_config, data.steps)
    definition = WorkflowDefinition(name=data.name, description=data.description, domain=data.domain,
                                    trigger_type=data.trigger_type.value, trigger_config=config, steps=steps,
                                    active=data.active)
    stamp_created(definition, actor)
    db.add(definition)
    _snapshot(db, definition, actor)
    _sync_schedule(db, definition, now or SYSTEM_CLOCK.now())
    db.flush()
    return definition


def update_definition(db: Session, actor: Actor, definition_id: uuid.UUID, data: DefinitionUpdate,
                      if_match: int | None, *, now: datetime | None = None) -> WorkflowDefinition:
    """A new version: instances already running keep the steps of the version they started with."""
    definition = get_definition(db, actor, definition_id, include_deleted=False)
    iam.require(actor, "workflow.manage", definition.domain)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    trigger_type = changes.get("trigger_type", definition.trigger_type)
    config = changes.get("trigger_config", definition.trigger_config)
    if "trigger_type" in changes and "trigger_config" not in changes and trigger_type != definition.trigger_type:
        config = None
    config, steps = _validated(db, definition.domain, trigger_type, config, changes.get("steps", definition.steps))
    if "trigger_type" in changes:
        changes["trigger_type"] = trigger_type.value if hasattr(trigger_type, "value") else trigger_type
    if "trigger_type" in changes or "trigger_config" in changes:
        changes["trigger_config"] = config
    if "steps" in changes:
        changes["steps"] = steps
    apply_patch(definition, actor, changes, header_version=if_match, body_version=data.version)
    _snapshot(db, definition, actor)
    _sync_schedule(db, definition, now or SYSTEM_CLOCK.now())
    db.flush()
    return definition


def delete_definition(db: Session, actor: Actor, definition_id: uuid.UUID, if_match: int | None
                      ) -> WorkflowDefinition:
    definition = get_definition(db, actor, definition_id, include_deleted=False)
    iam.require(actor, "workflow.manage", definition.domain)
    soft_delete(definition, actor, header_version=if_match)
    _sync_schedule(db, definition, SYSTEM_CLOCK.now())
    db.flush()
    return definition


def restore_definition(db: Session, actor: Actor, definition_id: uuid.UUID) -> WorkflowDefinition:
    definition = get_definition(db, actor, definition_id)
    iam.require(actor, "workflow.manage", definition.domain)
    restore(definition, actor)
    _sync_schedule(db, definition, SYSTEM_CLOCK.now())
    db.flush()
    return definition


def definition_version(db: Session, actor: Actor, definition_id: uuid.UUID, version: int) -> DefinitionVersion:
    get_definition(db, actor, definition_id)
    found = db.get(DefinitionVersion, (definition_id, version))
    if found is None:
        raise NotFound(f"Workflow definition {definition_id} has no version {version}.")
    return found


def find_definition(db: Session, name_or_id: str | uuid.UUID, domain: str | None) -> WorkflowDefinition | None:
    """An active definition by id, or by name: the domain's own first, then the platform's."""
    if isinstance(name_or_id, uuid.UUID):
        found = db.get(WorkflowDefinition, name_or_id)
        return found if found is not None and found.deleted_at is None and found.active else None
    rows = db.scalars(select(WorkflowDefinition).where(
        WorkflowDefinition.name == name_or_id, WorkflowDefinition.deleted_at.is_(None),
        WorkflowDefinition.active.is_(True),
        or_(WorkflowDefinition.domain.is_(None), WorkflowDefinition.domain == domain))).all()
    return next((d for d in rows if d.domain is not None), None) or next(iter(rows), None)


def sync_default_definitions(db: Session, actor: Actor) -> int:
    """The shipped definitions (workflow/defaults.py): created when missing, and kept in step with
    the code as long as nobody but the platform has edited them."""
    from gaas.workflow.defaults import DEFAULT_DEFINITIONS

    changed = 0
    now = SYSTEM_CLOCK.now()
    for spec in DEFAULT_DEFINITIONS:
        existing = db.scalar(select(WorkflowDefinition).where(WorkflowDefinition.name == spec["name"],
                                                              WorkflowDefinition.domain.is_(None),
                                                              WorkflowDefinition.deleted_at.is_(None)))
        if existing is None:
            create_definition(db, actor, DefinitionCreate.model_validate(spec), now=now)
            changed += 1
            continue
        if existing.updated_by != SYSTEM_USER_ID:
            continue
        wanted = DefinitionCreate.model_validate(spec)
        config, steps = _validated(db, None, wanted.trigger_type, wanted.trigger_config, wanted.steps)
        if (existing.steps, existing.trigger_config, existing.description) != (steps, config, wanted.description):
            update_definition(db, actor, existing.id, DefinitionUpdate(
                description=wanted.description, trigger_type=wanted.trigger_type, trigger_config=config,
                steps=steps), existing.version, now=now)
            changed += 1
    return changed


# ---- instances -------------------------------------------------------------------------------------

_STEPS_CACHE: dict[tuple[uuid.UUID, int], tuple[str, list[dict[str, Any]]]] = {}


def _definition_steps(db: Session, instance: WorkflowInstance) -> tuple[str, list[dict[str, Any]]]:
    """The (name, steps) of the version an instance runs; versions never change, so cached."""
    key = (instance.workflow_definition_id, instance.definition_version)
    if key not in _STEPS_CACHE:
        version = db.get(DefinitionVersion, key)
        if version is None:
            raise NotFound(f"Workflow definition {key[0]} has no version {key[1]}.")
        _STEPS_CACHE[key] = (version.name, version.steps)
    return _STEPS_CACHE[key]


def _step(steps: list[dict[str, Any]], number: int | None) -> dict[str, Any]:
    for step in steps:
        if step["step"] == number:
            return step
    raise NotFound(f"The workflow has no step {number}.")


def _load_record(db: Session, actor: Actor, context_type: str | None, context_id: uuid.UUID | None) -> Any:
    handler = contexts.context_type(context_type)
    if handler is None or context_id is None:
        return None
    return handler.load(db, actor, context_id)


def start(db: Session, actor: Actor, definition: str | uuid.UUID | WorkflowDefinition,
          context_type: str | None = None, context_id: uuid.UUID | None = None,
          variables: dict[str, Any] | None = None, *, domain: str | None = None,
          requested_by: uuid.UUID | None = None, trigger_key: str | None = None, run_now: bool = False,
          now: datetime | None = None) -> WorkflowInstance:
    """Start a workflow for a record, in the caller's transaction.

    `definition` is a definition, its id or its name (the domain's own definition of that name,
    else the platform's). The instance's domain is the record's. With `run_now`, its automatic
    first steps run before this returns (up to the first approval or task); otherwise a worker
    runs them.
    """
    now = now or SYSTEM_CLOCK.now()
    record = None
    handler = contexts.context_type(context_type)
    if handler is not None and context_id is not None:
        with as_platform(db) as platform:
            record = handler.load(db, platform, context_id)
        domain = getattr(record, "domain", domain)
        if requested_by is None and handler.requester_field:
            requested_by = getattr(record, handler.requester_field, None)
    if not isinstance(definition, WorkflowDefinition):
        found = find_definition(db, definition, domain)
        if found is None:
            raise ValidationProblem.field("definition", f"no active workflow definition {definition!r} for "
                                          f"domain {domain!r}", "unknown_definition")
        definition = found
    if definition.domain is not None and definition.domain != domain:
        raise ValidationProblem.field("domain", f"definition {definition.name!r} belongs to domain "
                                      f"{definition.domain!r}", "cross_domain")
    if domain is not None and not actor.sees(domain):
        raise NotFound(f"No {context_type or 'record'} {context_id}.")
    instance = WorkflowInstance(
        id=new_id(), workflow_definition_id=definition.id,
        definition_version=definition.version, context_type=context_type, context_id=context_id, domain=domain,
        status=InstanceStatus.running, current_step=definition.steps[0]["step"], variables=dict(variables or {}),
        started_at=now, started_by=actor.user_id, requested_by=requested_by, next_run_at=now,
        trigger_key=trigger_key)
    stamp_created(instance, actor)
    with as_platform(db):
        db.add(instance)
        db.flush()
        emit(db, events.WORKFLOW_STARTED, domain=domain, entity_type="workflow_instance", entity_id=instance.id,
             payload={"definition": definition.name, "definition_id": definition.id, "context_type": context_type,
                      "context_id": context_id})
        if run_now:
            run_until_waiting(db, instance, now)
    return instance


INSTANCE_SORTS = (SortKey("started_at", WorkflowInstance.started_at),)


def get_instance(db: Session, actor: Actor, instance_id: uuid.UUID) -> WorkflowInstance:
    instance = db.get(WorkflowInstance, instance_id)
    if instance is None or not actor.can("workflow.view", instance.domain):
        raise NotFound(f"No workflow instance {instance_id}.")
    return instance


def list_instances(db: Session, actor: Actor, *, definition_id: uuid.UUID | None, status: InstanceStatus | None,
                   context_type: str | None, context_id: uuid.UUID | None, domain: str | None,
                   cursor: str | None, limit: int) -> tuple[list[WorkflowInstance], str | None]:
    if not actor.can_anywhere("workflow.view"):
        raise Forbidden("Listing workflows needs the 'workflow.view' permission.", permission="workflow.view")
    stmt: Select = select(WorkflowInstance)
    stmt = where_viewable(stmt, actor, "workflow.view", WorkflowInstance.domain)
    stmt = where_equal(stmt, (WorkflowInstance.workflow_definition_id, definition_id),
                       (WorkflowInstance.status, status), (WorkflowInstance.context_type, context_type),
                       (WorkflowInstance.context_id, context_id), (WorkflowInstance.domain, domain))
    return paginate(stmt, id_column=WorkflowInstance.id, sort_keys=INSTANCE_SORTS, sort="-started_at",
                    cursor=cursor, limit=limit, execute=db.scalars)


def timeline(db: Session, instance: WorkflowInstance) -> tuple[list[WorkflowStep], list[Approval],
                                                                dict[uuid.UUID, list[ApprovalDecision]]]:
    steps = list(db.scalars(select(WorkflowStep).where(WorkflowStep.instance_id == instance.id)
                            .order_by(WorkflowStep.started_at, WorkflowStep.id)))
    approvals = list(db.scalars(select(Approval).where(Approval.instance_id == instance.id)
                                .order_by(Approval.created_at)))
    decisions: dict[uuid.UUID, list[ApprovalDecision]] = {}
    if approvals:
        for decision in db.scalars(select(ApprovalDecision).where(
                ApprovalDecision.approval_id.in_([a.id for a in approvals])).order_by(ApprovalDecision.decided_at)):
            decisions.setdefault(decision.approval_id, []).append(decision)
    return steps, approvals, decisions


def cancel_instance(db: Session, actor: Actor, instance_id: uuid.UUID, now: datetime | None = None
                    ) -> WorkflowInstance:
    instance = get_instance(db, actor, instance_id)
    iam.require(actor, "workflow.manage", instance.domain)
    db.refresh(instance, with_for_update=True)
    if instance.status != InstanceStatus.running:
        raise Conflict(f"The workflow is {instance.status.value}; only a running one can be cancelled.",
                       errors=[{"field": "status", "message": f"{instance.status.value}", "type": "state"}])
    now = now or SYSTEM_CLOCK.now()
    audit.record(db, action="cancel", entity_type="workflow_instance", entity_id=instance.id,
                 domain=instance.domain, changes={"after": {"status": "cancelled"}})
    with as_platform(db):
        _close_open_steps(db, instance, "cancelled", now)
        _finish(db, instance, InstanceStatus.cancelled, "cancelled", now, comment=None, decided_by=actor.user_id)
    return instance


def _close_open_steps(db: Session, instance: WorkflowInstance, status: str, now: datetime) -> None:
    for step in db.scalars(select(WorkflowStep).where(WorkflowStep.instance_id == instance.id,
                                                      WorkflowStep.status == "active")):
        step.status, step.completed_at = status, now
    for approval in db.scalars(select(Approval).where(Approval.instance_id == instance.id,
                                                      Approval.status == "pending")):
        approval.status, approval.decided_at = "cancelled", now


# ---- the engine ------------------------------------------------------------------------------------

def _namespace(instance: WorkflowInstance, record: Any, step: dict[str, Any] | None = None,
               **extra: Any) -> dict[str, Any]:
    fields = contexts.record_fields(record)
    namespace: dict[str, Any] = dict(instance.variables or {})
    namespace.update({
        "variables": instance.variables or {}, "record": fields, "domain": instance.domain,
        "context_type": instance.context_type, "context_id": jsonable(instance.context_id),
        "instance": {"id": str(instance.id), "status": instance.status.value, "outcome": instance.outcome,
                     "definition_name": extra.pop("definition_name", None)},
        "step": step or {},
    })
    if instance.context_type:
        namespace[instance.context_type] = fields
    namespace.update(extra)
    return namespace


def _role_holders(db: Session, role: str, domain: str | None) -> list[uuid.UUID]:
    return list(db.scalars(text("SELECT gaas_workflow.role_holders(:role, :domain)"),
                           {"role": role, "domain": domain}))


def holds_role(db: Session, user_id: uuid.UUID, role: str, domain: str | None) -> bool:
    return user_id in _role_holders(db, role, domain)


def _person(instance: WorkflowInstance, record: Any, ref: str) -> uuid.UUID | None:
    handler = contexts.context_type(instance.context_type)
    if ref == "requester":
        if instance.requested_by is not None:
            return instance.requested_by
        field = handler.requester_field if handler else None
    else:
        field = handler.assignee_field if handler else None
    value = getattr(record, field, None) if (record is not None and field) else None
    return value if isinstance(value, uuid.UUID) else None


def _recipients(db: Session, instance: WorkflowInstance, record: Any, entries: list[str]) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    for entry in entries:
        if entry.startswith("role:"):
            found += _role_holders(db, entry[5:], instance.domain)
        elif entry.startswith("user:"):
            found.append(uuid.UUID(entry[5:]))
        elif entry in PERSON_REFS and (person := _person(instance, record, entry)) is not None:
            found.append(person)
    return found


def _message(step: dict[str, Any], namespace: dict[str, Any]) -> tuple[str, str]:
    subject, body = TEMPLATES[step["template"]] if step.get("template") else (step["subject"], step["body"])
    return render(subject, namespace), render(body, namespace)


def _open_step(db: Session, instance: WorkflowInstance, step: dict[str, Any], now: datetime, *,
               status: str = "active", **values: Any) -> WorkflowStep:
    hours = step.get("sla_hours")
    row = WorkflowStep(instance_id=instance.id, domain=instance.domain, step_number=step["step"],
                       step_type=step["type"], name=step.get("name"), status=status, started_at=now,
                       sla_due_at=now + timedelta(hours=hours) if hours and status == "active" else None,
                       completed_at=None if status == "active" else now, **values)
    db.add(row)
    return row


def run_until_waiting(db: Session, instance: WorkflowInstance, now: datetime) -> None:
    for _ in range(MAX_AUTOMATIC_STEPS):
        if not run_step(db, instance, now):
            return


def run_step(db: Session, instance: WorkflowInstance, now: datetime) -> bool:
    """Execute the instance's current step; True when the next one can run at once.

    The caller holds the instance (a row lock, or its own fresh insert) and the transaction:
    the step's effects, its timeline row and the move to the next step commit together.
    """
    if instance.status != InstanceStatus.running or instance.next_run_at is None:
        return False
    name, steps = _definition_steps(db, instance)
    step = _step(steps, instance.current_step)
    record = _load_record(db, iam.system_actor(), instance.context_type, instance.context_id)
    kind = step["type"]
    if kind == "approval":
        row = _open_step(db, instance, step, now, assignee_role=step["approver_role"])
        db.flush()
        approval = Approval(domain=instance.domain, instance_id=instance.id, step_id=row.id,
                            approver_role=step["approver_role"], required_approvals=step.get("approvals_required", 1),
                            requested_by=instance.requested_by)
        db.add(approval)
        db.flush()
        approvers = [u for u in _role_holders(db, step["approver_role"], instance.domain) if u != instance.requested_by]
        subject, body = _message({"template": "approval_requested"}, _namespace(
            instance, record, step, definition_name=name, approval_id=str(approval.id), step_id=str(row.id)))
        notify_users(db, approvers, subject, body, domain=instance.domain, context_type=instance.context_type,
                     context_id=instance.context_id, instance_id=instance.id)
        emit(db, events.APPROVAL_REQUESTED, domain=instance.domain, entity_type="approval", entity_id=approval.id,
             payload={"instance_id": instance.id, "approver_role": approval.approver_role,
                      "context_type": instance.context_type, "context_id": instance.context_id})
        instance.next_run_at = None
        return False
    if kind == "task":
        assignee = step.get("assignee")
        assignee_id = (_person(instance, record, assignee) if assignee in PERSON_REFS
                       else uuid.UUID(assignee) if assignee else None)
        row = _open_step(db, instance, step, now, assignee_role=step.get("assignee_role"), assignee_id=assignee_id)
        db.flush()
        people = ([assignee_id] if assignee_id else []) + (
            _role_holders(db, step["assignee_role"], instance.domain) if step.get("assignee_role") else [])
        subject, body = _message({"template": "task_assigned"}, _namespace(
            instance, record, step, definition_name=name, step_id=str(row.id)))
        notify_users(db, people, subject, body, domain=instance.domain, context_type=instance.context_type,
                     context_id=instance.context_id, instance_id=instance.id)
        instance.next_run_at = None
        return False
    try:
        target = _run_automatic(db, instance, step, record, name, now)
    except (Problem, ExpressionError) as exc:
        _fail(db, instance, step, now, exc)
        return False
    return _goto(db, instance, target, now)


def _run_automatic(db: Session, instance: WorkflowInstance, step: dict[str, Any], record: Any, name: str,
                   now: datetime) -> int | str:
    """A notification, condition or set_field step; returns where to go next."""
    _, steps = _definition_steps(db, instance)
    following = step.get("next", next_of(steps, step["step"]))
    kind = step["type"]
    namespace = _namespace(instance, record, step, definition_name=name)
    if kind == "notification":
        subject, body = _message(step, namespace)
        people = _recipients(db, instance, record, step["recipients"])
        sent = notify_users(db, people, subject, body, domain=instance.domain, context_type=instance.context_type,
                            context_id=instance.context_id, instance_id=instance.id, email=step.get("email", True))
        _open_step(db, instance, step, now, status="completed", details={"notified": [str(n.user_id) for n in sent]})
        return following
    if kind == "condition":
        result = evaluate(step["if"], namespace)
        _open_step(db, instance, step, now, status="completed", details={"result": result})
        return step["then"] if result else step["else"]
    # set_field: through the record's own module, in a savepoint so a refusal leaves nothing behind
    handler = contexts.context_type(instance.context_type)
    if handler is None or handler.set_field is None or record is None:
        raise ValidationProblem.field("context_type", f"records of type {instance.context_type!r} cannot be "
                                      "written by a workflow", "not_writable")
    value = step["value"]
    if isinstance(value, str) and "{{" in value:
        value = render(value, namespace)
    with db.begin_nested():
        handler.set_field(db, iam.system_actor(request_info(db)), record, step["field"], value)
    _open_step(db, instance, step, now, status="completed", details={"field": step["field"], "value": value})
    return following


def _goto(db: Session, instance: WorkflowInstance, target: int | str, now: datetime) -> bool:
    if target == "end":
        outcome = (instance.variables or {}).get("outcome", "completed")
        _finish(db, instance, InstanceStatus.completed, outcome, now,
                comment=(instance.variables or {}).get("rejection_comment"),
                decided_by=_uuid_or_none((instance.variables or {}).get("decided_by")))
        return False
    instance.current_step = int(target)
    instance.next_run_at = now
    instance.updated_by = SYSTEM_USER_ID
    return True


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _fail(db: Session, instance: WorkflowInstance, step: dict[str, Any], now: datetime, exc: Exception) -> None:
    reason = getattr(exc, "detail", None) or str(exc)
    _open_step(db, instance, step, now, status="failed", details={"error": reason})
    instance.last_error = f"step {step['step']} ({step['type']}): {reason}"[:2000]
    _finish(db, instance, InstanceStatus.failed, "failed", now, comment=instance.last_error, decided_by=None)


def fail_instance(db: Session, instance: WorkflowInstance, now: datetime, reason: str) -> None:
    """End an instance that cannot go on for a reason outside its steps (the worker's last resort
    when a step raised unexpectedly): failed, announced, and its record's module told."""
    instance.last_error = reason[:2000]
    _finish(db, instance, InstanceStatus.failed, "failed", now, comment=instance.last_error, decided_by=None)


def _finish(db: Session, instance: WorkflowInstance, status: InstanceStatus, outcome: str, now: datetime, *,
            comment: str | None, decided_by: uuid.UUID | None) -> None:
    """End an instance and tell its record's module, in this same transaction."""
    name, _ = _definition_steps(db, instance)
    instance.status, instance.outcome, instance.completed_at, instance.next_run_at = status, outcome, now, None
    instance.updated_by = SYSTEM_USER_ID
    db.flush()
    emit(db, events.WORKFLOW_FAILED if status == InstanceStatus.failed else events.WORKFLOW_COMPLETED,
         domain=instance.domain, entity_type="workflow_instance", entity_id=instance.id,
         payload={"definition": name, "context_type": instance.context_type, "context_id": instance.context_id,
                  "status": status.value, "outcome": outcome, "comment": comment})
    result = contexts.Outcome(instance_id=instance.id, definition_name=name, context_type=instance.context_type,
                              context_id=instance.context_id, outcome=outcome, comment=comment,
                              decided_by=decided_by)
    for handler in contexts.outcome_handlers(instance.context_type):
        handler(db, iam.system_actor(request_info(db)), result)


# ---- approvals -------------------------------------------------------------------------------------

APPROVAL_SORTS = (SortKey("created_at", Approval.created_at),)


def get_approval(db: Session, actor: Actor, approval_id: uuid.UUID) -> Approval:
    """An approval the caller may look at: with workflow.view in its domain, or as a part in it (its
    requester, or a holder of the role that decides it), as `list_approvals(mine=True)` shows."""
    approval = db.get(Approval, approval_id)
    if approval is None or not actor.sees(approval.domain) or not (
            actor.can("workflow.view", approval.domain) or approval.requested_by == actor.user_id
            or holds_role(db, actor.user_id, approval.approver_role, approval.domain)):
        raise NotFound(f"No approval {approval_id}.")
    return approval


def list_approvals(db: Session, actor: Actor, *, status: str | None, mine: bool, domain: str | None,
                   cursor: str | None, limit: int) -> tuple[list[Approval], str | None]:
    """Approvals the caller may see; `mine`: pending ones the caller may decide."""
    stmt: Select = select(Approval)
    if mine:
        stmt = stmt.where(Approval.status == "pending",
                          Approval.requested_by.is_distinct_from(actor.user_id),
                          text("CAST(:me AS uuid) IN (SELECT gaas_workflow.role_holders("
                               "gaas_workflow.approvals.approver_role, gaas_workflow.approvals.domain))")
                          .bindparams(me=str(actor.user_id)),
                          ~select(ApprovalDecision.id).where(ApprovalDecision.approval_id == Approval.id,
                                                             ApprovalDecision.user_id == actor.user_id).exists())
    else:
        if not actor.can_anywhere("workflow.view"):
            raise Forbidden("Listing approvals needs 'workflow.view' (or ask for mine=true).",
                            permission="workflow.view")
        stmt = where_viewable(stmt, actor, "workflow.view", Approval.domain)
    stmt = where_equal(stmt, (Approval.status, status), (Approval.domain, domain))
    return paginate(stmt, id_column=Approval.id, sort_keys=APPROVAL_SORTS, sort="-created_at", cursor=cursor,
                    limit=limit, execute=db.scalars)


def decide(db: Session, actor: Actor, approval_id: uuid.UUID, decision: str, comment: str | None,
           now: datetime | None = None) -> Approval:
    """Approve or reject: only a holder of the approver role in the instance's domain, never the
    requester, once per person. Audited; the workflow moves on in the same transaction."""
    now = now or SYSTEM_CLOCK.now()
    approval = get_approval(db, actor, approval_id)
    instance = db.get(WorkflowInstance, approval.instance_id, with_for_update=True)
    db.refresh(approval, with_for_update=True)
    assert instance is not None
    if actor.read_only:
        raise Forbidden("A read-only token cannot decide approvals.")
    if approval.status != "pending":
        raise Conflict(f"This approval is already {approval.status}.",
                       errors=[{"field": "status", "message": approval.status, "type": "state"}])
    if actor.user_id == instance.requested_by:
        raise Forbidden("The requester cannot approve their own request.", reason="requester")
    if not holds_role(db, actor.user_id, approval.approver_role, approval.domain):
        raise Forbidden(f"Only a holder of the role '{approval.approver_role}' in "
                        f"{approval.domain or 'the platform'} can decide this approval.", role=approval.approver_role)
    if decision == "reject" and not (comment and comment.strip()):
        raise ValidationProblem.field("comment", "a rejection needs a reason", "missing")
    if db.scalar(select(ApprovalDecision.id).where(ApprovalDecision.approval_id == approval.id,
                                                   ApprovalDecision.user_id == actor.user_id)):
        raise Conflict("You have already decided this approval.",
                       errors=[{"field": "approval_id", "message": "already decided by you", "type": "duplicate"}])
    db.add(ApprovalDecision(approval_id=approval.id, domain=approval.domain, user_id=actor.user_id,
                            decision=decision, comment=comment, decided_at=now))
    audit.record(db, action=decision, entity_type="approval", entity_id=approval.id, domain=approval.domain,
                 changes={"after": {"decision": decision, "comment": comment, "approver_role": approval.approver_role,
                                    "instance_id": instance.id, "context_type": instance.context_type,
                                    "context_id": instance.context_id}})
    emit(db, events.APPROVAL_DECIDED, domain=approval.domain, entity_type="approval", entity_id=approval.id,
         payload={"instance_id": instance.id, "decision": decision, "comment": comment, "user_id": actor.user_id,
                  "context_type": instance.context_type, "context_id": instance.context_id})
    db.flush()
    step_row = db.get(WorkflowStep, approval.step_id)
    assert step_row is not None
    _, steps = _definition_steps(db, instance)
    step = _step(steps, step_row.step_number)
    if decision == "reject":
        approval.status, approval.decided_at = "rejected", now
        step_row.status, step_row.completed_at = "rejected", now
        step_row.acted_by, step_row.comment = actor.user_id, comment
        instance.variables = {**(instance.variables or {}), "outcome": "rejected", "rejection_comment": comment,
                              "decided_by": str(actor.user_id)}
        with as_platform(db):
            if _goto(db, instance, step.get("on_reject", "end"), now):
                run_until_waiting(db, instance, now)
        return approval
    approvals_so_far = db.scalar(select(func.count()).select_from(ApprovalDecision).where(
        ApprovalDecision.approval_id == approval.id, ApprovalDecision.decision == "approve")) or 0
    step_row.details = {**(step_row.details or {}), "approvals": approvals_so_far}
    if approvals_so_far < approval.required_approvals:
        return approval
    approval.status, approval.decided_at = "approved", now
    step_row.status, step_row.completed_at = "approved", now
    step_row.acted_by, step_row.comment = actor.user_id, comment
    instance.variables = {**(instance.variables or {}), "outcome": "approved", "decided_by": str(actor.user_id)}
    with as_platform(db):
        if _goto(db, instance, step.get("next", next_of(steps, step["step"])), now):
            run_until_waiting(db, instance, now)
    return approval


# ---- tasks -----------------------------------------------------------------------------------------

TASK_SORTS = (SortKey("started_at", WorkflowStep.started_at),)


def list_tasks(db: Session, actor: Actor, *, mine: bool, status: str | None, domain: str | None,
               cursor: str | None, limit: int) -> tuple[list[WorkflowStep], str | None]:
    stmt: Select = select(WorkflowStep).where(WorkflowStep.step_type == "task")
    if mine:
        stmt = stmt.where(WorkflowStep.status == "active", or_(
            WorkflowStep.assignee_id == actor.user_id,
            text("CAST(:me AS uuid) IN (SELECT gaas_workflow.role_holders(gaas_workflow.workflow_steps.assignee_role,"
                 " gaas_workflow.workflow_steps.domain))").bindparams(me=str(actor.user_id))))
    else:
        if not actor.can_anywhere("workflow.view"):
            raise Forbidden("Listing tasks needs 'workflow.view' (or ask for mine=true).", permission="workflow.view")
        stmt = where_viewable(stmt, actor, "workflow.view", WorkflowStep.domain)
    stmt = where_equal(stmt, (WorkflowStep.status, status), (WorkflowStep.domain, domain))
    return paginate(stmt, id_column=WorkflowStep.id, sort_keys=TASK_SORTS, sort="-started_at", cursor=cursor,
                    limit=limit, execute=db.scalars)


def complete_task(db: Session, actor: Actor, step_id: uuid.UUID, comment: str | None,
                  variables: dict[str, Any], now: datetime | None = None) -> WorkflowStep:
    now = now or SYSTEM_CLOCK.now()
    row = db.get(WorkflowStep, step_id)
    if row is None or row.step_type != "task" or not actor.sees(row.domain):
        raise NotFound(f"No workflow task {step_id}.")
    instance = db.get(WorkflowInstance, row.instance_id, with_for_update=True)
    db.refresh(row, with_for_update=True)
    assert instance is not None
    if row.status != "active":
        raise Conflict(f"This task is already {row.status}.",
                       errors=[{"field": "status", "message": row.status, "type": "state"}])
    allowed = row.assignee_id == actor.user_id or (
        row.assignee_role is not None and holds_role(db, actor.user_id, row.assignee_role, row.domain))
    if actor.read_only or not allowed:
        raise Forbidden("Only the task's assignee or a holder of its role in its domain can complete it.")
    row.status, row.completed_at, row.acted_by, row.comment = "completed", now, actor.user_id, comment
    if variables:
        instance.variables = {**(instance.variables or {}), **variables}
    audit.record(db, action="complete", entity_type="workflow_task", entity_id=row.id, domain=row.domain,
                 changes={"after": {"comment": comment, "variables": variables, "instance_id": instance.id}})
    emit(db, events.WORKFLOW_TASK_COMPLETED, domain=row.domain, entity_type="workflow_task", entity_id=row.id,
         payload={"instance_id": instance.id, "user_id": actor.user_id, "comment": comment})
    _, steps = _definition_steps(db, instance)
    step = _step(steps, row.step_number)
    with as_platform(db):
        if _goto(db, instance, step.get("next", next_of(steps, step["step"])), now):
            run_until_waiting(db, instance, now)
    return row


# ---- the worker's claims ---------------------------------------------------------------------------

_CLAIM_OVERDUE = text("""
    SELECT id FROM gaas_workflow.workflow_steps
    WHERE status = 'active' AND escalated_at IS NULL AND sla_due_at <= :now
    ORDER BY sla_due_at LIMIT :limit FOR UPDATE SKIP LOCKED""")


def escalate_overdue_steps(db: Session, now: datetime, limit: int = 50) -> int:
    """Every active step past its SLA escalates exactly once: the role's domain administrators are
    notified and the escalation is recorded on the step (and audited, and announced)."""
    ids = list(db.scalars(_CLAIM_OVERDUE, {"now": now, "limit": limit}))
    for step_id in ids:
        row = db.get(WorkflowStep, step_id)
        instance = db.get(WorkflowInstance, row.instance_id) if row else None
        if row is None or instance is None:
            continue
        name, steps = _definition_steps(db, instance)
        step = _step(steps, row.step_number)
        admins = _role_holders(db, "domain_admin", row.domain)
        record = _load_record(db, iam.system_actor(), instance.context_type, instance.context_id)
        subject, body = _message({"template": "step_escalated"}, _namespace(
            instance, record, step, definition_name=name, sla_due_at=jsonable(row.sla_due_at)))
        sent = notify_users(db, admins, subject, body, domain=row.domain, context_type=instance.context_type,
                            context_id=instance.context_id, instance_id=instance.id)
        row.escalated_at = now
        row.details = {**(row.details or {}), "escalation": {"at": jsonable(now),
                                                             "notified": [str(n.user_id) for n in sent]}}
        audit.record(db, action="escalate", entity_type="workflow_step", entity_id=row.id, domain=row.domain,
                     changes={"after": {"escalated_at": now, "sla_due_at": row.sla_due_at,
                                        "notified": [n.user_id for n in sent]}})
        emit(db, events.WORKFLOW_STEP_ESCALATED, domain=row.domain, entity_type="workflow_step", entity_id=row.id,
             payload={"instance_id": instance.id, "step": row.step_number, "step_type": row.step_type,
                      "sla_due_at": row.sla_due_at, "assignee_role": row.assignee_role})
    db.flush()
    return len(ids)


_CLAIM_SCHEDULES = text("""
    SELECT definition_id FROM gaas_workflow.workflow_schedules
    WHERE next_run_at <= :now ORDER BY next_run_at LIMIT :limit FOR UPDATE SKIP LOCKED""")


def fire_due_schedules(db: Session, now: datetime, limit: int = 20) -> int:
    """Start every scheduled definition whose slot has come, once per slot (and per domain for a
    platform definition); missed slots (the workers were down) fire once, not once each."""
    fired = 0
    for definition_id in list(db.scalars(_CLAIM_SCHEDULES, {"now": now, "limit": limit})):
        schedule = db.get(Schedule, definition_id)
        definition = db.get(WorkflowDefinition, definition_id)
        assert schedule is not None and definition is not None
        slot = schedule.next_run_at
        domains = [definition.domain] if definition.domain else list(db.scalars(
            select(Domain.code).where(Domain.active.is_(True), Domain.deleted_at.is_(None)).order_by(Domain.code)))
        for domain in domains:
            key = f"schedule:{slot.isoformat()}:{domain}"
            with db.begin_nested():
                start(db, iam.system_actor(), definition, None, None, {"scheduled_for": jsonable(slot)},
                      domain=domain, trigger_key=key, now=now)
            fired += 1
        schedule.last_run_at = now
        following = next_slot(schedule.cron, schedule.timezone, slot)
        schedule.next_run_at = following if following > now else next_slot(schedule.cron, schedule.timezone, now)
    db.flush()
    return fired


def event_definitions(db: Session) -> list[WorkflowDefinition]:
    return list(db.scalars(select(WorkflowDefinition).where(
        WorkflowDefinition.trigger_type == TriggerType.event.value, WorkflowDefinition.active.is_(True),
        WorkflowDefinition.deleted_at.is_(None))))


def matches_event_type(pattern: str, event_type: str) -> bool:
    if pattern in ("*", event_type):
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


def start_for_event(db: Session, definitions: list[WorkflowDefinition], event: dict[str, Any],
                    namespace: dict[str, Any], now: datetime) -> int:
    """Start the event-triggered definitions an event matches (once per event: trigger_key)."""
    started = 0
    for definition in definitions:
        config = definition.trigger_config or {}
        if not matches_event_type(config.get("event_type", ""), event["event_type"]):
            continue
        if definition.domain is not None and definition.domain != event["domain"]:
            continue
        if event["at"] < definition.updated_at:
            continue  # a rule applies to what happens after it was written, not before
        if not evaluate(config.get("condition"), namespace):
            continue
        context_type = event["entity_type"] if contexts.context_type(event["entity_type"]) else None
        try:
            with db.begin_nested():
                start(db, iam.system_actor(), definition, context_type, event["entity_id"] if context_type else None,
                      {"event": {k: jsonable(v) for k, v in event.items() if k != "at"}}, domain=event["domain"],
                      trigger_key=f"event:{event['key']}", now=now)
            started += 1
        except Problem:
            continue  # the record is gone or the definition does not apply to it: nothing to start
    return started
