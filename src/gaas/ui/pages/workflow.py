"""Notifications, my workflow approvals and tasks, workflow definitions (steps edited as a form and
validated by the engine) and webhooks with their delivery logs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gaas.core.http import DbSession
from gaas.ui import forms
from gaas.ui.pages.core import history, stale_conflict
from gaas.ui.pages.portfolio import domain_options, people
from gaas.ui.web import UI, CheckedForm, CurrentUI, UIRoute, redirect, render
from gaas.workflow import notify, webhooks
from gaas.workflow import service as workflow
from gaas.workflow.models import TriggerType
from gaas.workflow.schemas import DefinitionCreate, DefinitionUpdate, WebhookCreate, WebhookUpdate
from gaas.workflow.steps import STEP_TYPES

router = APIRouter(route_class=UIRoute, include_in_schema=False)


# ---- notifications ------------------------------------------------------------------------------

@router.get("/notifications/badge", response_class=HTMLResponse)
def notification_badge(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    rows, more = notify.list_notifications(db, ui.actor, unread=True, limit=99)
    return render(request, "fragments/notification_badge.html", {"unread": len(rows), "more": bool(more)})


@router.get("/notifications", response_class=HTMLResponse)
def notifications(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    unread_only = request.query_params.get("unread") == "yes"
    cursor = request.query_params.get("cursor") or None
    rows, next_cursor = notify.list_notifications(db, ui.actor, unread=unread_only, cursor=cursor, limit=50)
    return render(request, "notifications.html", {"title": ui.t("Notifications"), "rows": rows,
                                                  "next_cursor": next_cursor, "cursor": cursor,
                                                  "unread_only": unread_only, "paths": CONTEXT_PATHS})


CONTEXT_PATHS = {"incident": "/incidents/", "change": "/changes/", "problem": "/problems/", "service": "/services/",
                 "ci": "/cis/", "article": "/articles/"}


@router.post("/notifications/read-all")
def notifications_read_all(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    notify.mark_all_read(db, ui.actor, datetime.now(UTC))
    return redirect("/notifications", request, flash="All marked as read.")


@router.post("/notifications/{notification_id}/read")
def notification_read(notification_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                      form: CheckedForm) -> Response:
    notify.mark_read(db, ui.actor, notification_id, datetime.now(UTC))
    return redirect("/notifications", request)


def record_workflows(db, ui: UI, context_type: str, context_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The workflows run for a record, each with its steps (None: the reader may not see workflows)."""
    if not ui.can("workflow.view"):
        return None
    instances, _ = workflow.list_instances(db, ui.actor, definition_id=None, status=None, context_type=context_type,
                                           context_id=context_id, domain=None, cursor=None, limit=10)
    found = []
    for instance in instances:
        steps, approvals, decisions = workflow.timeline(db, instance)
        definition = db.get(workflow.WorkflowDefinition, instance.workflow_definition_id)
        found.append({"instance": instance, "name": definition.name if definition else "", "steps": steps,
                      "decisions": [d for a in approvals for d in decisions.get(a.id, [])]})
    return found


# ---- workflow approvals and tasks ----------------------------------------------------------------

def my_workflow_work(db, ui: UI) -> dict[str, Any]:
    approvals, _ = workflow.list_approvals(db, ui.actor, status=None, mine=True, domain=None, cursor=None, limit=50)
    tasks, _ = workflow.list_tasks(db, ui.actor, mine=True, status=None, domain=None, cursor=None, limit=50)
    instances = {}
    for approval in approvals:
        instance = db.get(workflow.WorkflowInstance, approval.instance_id)
        if instance is not None:
            instances[approval.id] = instance
    return {"approvals": approvals, "tasks": tasks, "instances": instances, "paths": CONTEXT_PATHS}


@router.post("/approvals/{approval_id}/{decision}", response_class=HTMLResponse)
def decide(approval_id: uuid.UUID, decision: str, request: Request, db: DbSession, ui: CurrentUI,
           form: CheckedForm) -> Response:
    if decision not in ("approve", "reject"):
        decision = "reject" if decision == "rejected" else "approve"
    _, errors = forms.attempt(db, lambda: workflow.decide(db, ui.actor, approval_id, decision,
                                                          forms.text(form, "comment")))
    if errors:
        from gaas.ui.pages.itsm import approvals_page

        return approvals_page(request, db, ui, errors=errors, status=errors.status)
    return redirect("/approvals", request, flash="Decision recorded.")


@router.post("/tasks/{task_id}/complete", response_class=HTMLResponse)
def complete_task(task_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    _, errors = forms.attempt(db, lambda: workflow.complete_task(db, ui.actor, task_id, forms.text(form, "comment"),
                                                                 {}))
    if errors:
        from gaas.ui.pages.itsm import approvals_page

        return approvals_page(request, db, ui, errors=errors, status=errors.status)
    return redirect("/approvals", request, flash="Task completed.")


# ---- workflow definitions -----------------------------------------------------------------------

STEP_KEYS = ("step", "type", "name", "next", "approver_role", "approvals_required", "sla_hours", "on_reject",
             "assignee_role", "assignee", "instructions", "template", "subject", "body", "recipients", "email",
             "if", "then", "else", "field", "value")
NUMBERS = ("step", "approvals_required", "sla_hours")


def _coerce(key: str, raw: str) -> Any:
    if key in NUMBERS:
        try:
            return int(raw) if raw.lstrip("-").isdigit() else float(raw)
        except ValueError:
            return raw  # the engine names it as invalid
    if key in ("next", "on_reject", "then", "else"):
        return int(raw) if raw.isdigit() else raw
    if key == "recipients":
        return [r.strip() for r in raw.split(",") if r.strip()]
    if key == "email":
        return raw in ("on", "true", "yes")
    return raw


def steps_from_form(form: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows s0_type, s0_name, ... into the engine's step objects (blank rows and removed rows dropped)."""
    steps = []
    for index in range(60):
        if f"s{index}_type" not in form:
            break
        if forms.checkbox(form, f"s{index}_remove") or not forms.text(form, f"s{index}_type"):
            continue
        step: dict[str, Any] = {}
        for key in STEP_KEYS:
            raw = forms.text(form, f"s{index}_{key}")
            if raw is not None:
                step[key] = _coerce(key, raw)
        steps.append(step)
    return steps


def _step_rows(steps: list[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for step in [*steps, {}]:
        row = {}
        for key in STEP_KEYS:
            value = step.get(key)
            row[key] = ", ".join(value) if isinstance(value, list) else ("" if value is None else str(value))
        rows.append(row)
    return rows


def _step_errors(errors: forms.FormErrors | None, problem_errors: list[dict[str, Any]]) -> dict[str, list[str]]:
    """'steps[2].approver_role' -> {'s2_approver_role': [...]}; 'steps[2]' -> {'s2': [...]}."""
    import re

    found: dict[str, list[str]] = {}
    for item in problem_errors:
        match = re.match(r"^steps\[(\d+)\](?:\.(\w+))?$", str(item.get("field") or ""))
        if match:
            key = f"s{match[1]}_{match[2]}" if match[2] else f"s{match[1]}"
            found.setdefault(key, []).append(item.get("message", "invalid"))
    return found


def _definition_page(request, db, ui: UI, definition, *, values=None, errors=None, step_errors=None, conflict=None,
                     status=200) -> Response:
    if values is None:
        values = {"name": definition.name, "description": definition.description, "domain": definition.domain,
                  "trigger_type": definition.trigger_type, "active": definition.active,
                  "trigger_config": json.dumps(definition.trigger_config or {}, indent=1),
                  "steps": definition.steps} if definition is not None else {
            "trigger_type": "manual", "active": True, "trigger_config": "{}", "domain": ui.actor.home_domain or "",
            "steps": [{"step": 1, "type": "approval", "name": "Approve", "approver_role": "change_manager"}]}
    from gaas.workflow.templates import TEMPLATES

    runs = []
    if definition is not None:
        runs, _ = workflow.list_instances(db, ui.actor, definition_id=definition.id, status=None, context_type=None,
                                          context_id=None, domain=None, cursor=None, limit=20)
    return render(request, "workflow_definition.html", {
        "title": definition.name if definition else ui.t("New workflow"), "d": definition, "values": values,
        "runs": runs, "paths": CONTEXT_PATHS,
        "rows": _step_rows(values.get("steps") or []), "errors": errors, "step_errors": step_errors or {},
        "conflict": conflict, "domains": domain_options(db, ui), "step_types": STEP_TYPES,
        "triggers": [t.value for t in TriggerType], "templates": sorted(TEMPLATES),
        "activity": history(db, "workflow_definition", definition.id) if definition else []}, status=status)


def _definition_values(form: dict[str, Any], errors: forms.FormErrors) -> dict[str, Any]:
    return {"name": forms.text(form, "name"), "description": forms.text(form, "description"),
            "trigger_type": forms.text(form, "trigger_type") or "manual", "active": forms.checkbox(form, "active"),
            "trigger_config": forms.json_field(form, "trigger_config", errors, {}) or None,
            "steps": steps_from_form(form)}


def _save_definition(request, db, ui: UI, form, definition) -> Response:
    errors = forms.FormErrors()
    values = _definition_values(form, errors)
    problem_errors: list[dict[str, Any]] = []
    result = None
    if not errors:
        def save():
            if definition is None:
                return workflow.create_definition(db, ui.actor, DefinitionCreate.model_validate(
                    {**values, "domain": forms.text(form, "domain")}))
            return workflow.update_definition(db, ui.actor, definition.id, DefinitionUpdate.model_validate(
                {**values, "version": forms.version(form)}), None)

        try:
            with db.begin_nested():
                result = save()
        except Exception as exc:
            from gaas.core.errors import Problem

            if isinstance(exc, Problem):
                problem_errors = exc.errors
            errors = forms.errors_from(exc)
    if errors:
        shown = {**values, "trigger_config": form.get("trigger_config") or "{}", "domain": forms.text(form, "domain")}
        conflict = stale_conflict(db, ui, "workflow_definition", definition.id, definition,
                                  {"name": values["name"]}) if errors.stale and definition else None
        return _definition_page(request, db, ui, definition, values=shown, errors=errors,
                                step_errors=_step_errors(errors, problem_errors), conflict=conflict,
                                status=errors.status)
    return redirect(f"/admin/workflows/{result.id}", request, flash="Workflow saved.")


@router.get("/admin/workflows", response_class=HTMLResponse)
def definitions(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    rows, _ = workflow.list_definitions(db, ui.actor, domain=None, trigger_type=None, active=None, name=None,
                                        include_deleted=False, sort=None, cursor=None, limit=200)
    return render(request, "workflows.html", {"title": ui.t("Workflows"), "rows": rows})


@router.get("/admin/workflows/new", response_class=HTMLResponse)
def new_definition(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _definition_page(request, db, ui, None)


@router.post("/admin/workflows/new", response_class=HTMLResponse)
def create_definition(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    return _save_definition(request, db, ui, form, None)


@router.get("/admin/workflows/{definition_id}", response_class=HTMLResponse)
def definition_page(definition_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _definition_page(request, db, ui, workflow.get_definition(db, ui.actor, definition_id))


@router.post("/admin/workflows/{definition_id}", response_class=HTMLResponse)
def save_definition(definition_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                    form: CheckedForm) -> Response:
    return _save_definition(request, db, ui, form, workflow.get_definition(db, ui.actor, definition_id))


@router.get("/admin/emails", response_class=HTMLResponse)
def emails(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    """E-mail notifications sent, pending or failed (for workflow managers)."""
    status = request.query_params.get("status") or None
    cursor = request.query_params.get("cursor") or None
    rows, next_cursor = notify.list_emails(db, ui.actor, status=status if status in ("pending", "sent", "failed")
                                           else None, domain=None, cursor=cursor, limit=50)
    return render(request, "emails.html", {"title": ui.t("E-mail notifications"), "rows": rows, "status": status,
                                           "cursor": cursor, "next_cursor": next_cursor})


# ---- webhooks -----------------------------------------------------------------------------------

def _webhook_values(form: dict[str, Any]) -> dict[str, Any]:
    return {"name": forms.text(form, "name"), "url": forms.text(form, "url"),
            "event_types": [e.strip() for e in (forms.text(form, "event_types") or "").split(",") if e.strip()],
            "condition": forms.text(form, "condition"), "active": forms.checkbox(form, "active")}


def _webhook_page(request, db, ui: UI, hook, *, values=None, errors=None, conflict=None, secret=None,
                  status=200) -> Response:
    deliveries = []
    if hook is not None:
        deliveries, _ = webhooks.list_deliveries(db, ui.actor, hook.id, status=request.query_params.get("status")
                                                 or None, cursor=None, limit=50)
    if values is None:
        values = {"name": hook.name, "url": hook.url, "event_types": hook.event_types, "condition": hook.condition,
                  "active": hook.active} if hook else {"active": True, "event_types": ["incident.*"],
                                                       "domain": ui.actor.home_domain or ""}
    shown = {**values, "event_types": ", ".join(values.get("event_types") or [])}
    return render(request, "webhook.html", {
        "title": hook.name if hook else ui.t("New webhook"), "h": hook, "values": shown, "errors": errors,
        "conflict": conflict, "deliveries": deliveries, "secret": secret, "domains": domain_options(db, ui),
        "owner": people(db, [hook.owner_id]).get(hook.owner_id) if hook else None,
        "activity": history(db, "webhook", hook.id) if hook else []}, status=status)


@router.get("/admin/webhooks", response_class=HTMLResponse)
def webhook_list(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    rows, _ = webhooks.list_webhooks(db, ui.actor, domain=None, active=None, include_deleted=False, sort=None,
                                     cursor=None, limit=200)
    return render(request, "webhooks.html", {"title": ui.t("Webhooks"), "rows": rows})


@router.get("/admin/webhooks/new", response_class=HTMLResponse)
def new_webhook(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _webhook_page(request, db, ui, None)


@router.post("/admin/webhooks/new", response_class=HTMLResponse)
def create_webhook(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    values = {**_webhook_values(form), "domain": forms.text(form, "domain")}
    created, errors = forms.attempt(db, lambda: webhooks.create_webhook(db, ui.actor, WebhookCreate.model_validate(
        {k: v for k, v in values.items() if v is not None})))
    if errors:
        return _webhook_page(request, db, ui, None, values=values, errors=errors, status=errors.status)
    hook, secret = created
    # The signing secret is shown this once, as the API does.
    return _webhook_page(request, db, ui, hook, secret=secret, status=201)


@router.get("/admin/webhooks/{webhook_id}", response_class=HTMLResponse)
def webhook_page(webhook_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _webhook_page(request, db, ui, webhooks.get_webhook(db, ui.actor, webhook_id))


@router.post("/admin/webhooks/{webhook_id}", response_class=HTMLResponse)
def save_webhook(webhook_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                 form: CheckedForm) -> Response:
    hook = webhooks.get_webhook(db, ui.actor, webhook_id)
    values = _webhook_values(form)
    body = {**values, "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: webhooks.update_webhook(db, ui.actor, webhook_id,
                                                                  WebhookUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "webhook", webhook_id, hook, {"name": values["name"], "url": values["url"]}) \
            if errors.stale else None
        return _webhook_page(request, db, ui, hook, values=values, errors=errors, conflict=conflict,
                             status=errors.status)
    return redirect(f"/admin/webhooks/{webhook_id}", request, flash="Saved.")
