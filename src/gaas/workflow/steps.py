"""Checking a definition's steps and trigger on write, so that a running instance never meets a
step it cannot execute. Every error names the step (`steps[2].approver_role`).

Step shapes (`step` numbers are unique; a step goes on to `next`, else to the following step in
the list, and the last one ends the workflow; `"end"` ends it explicitly):
- approval:     approver_role, approvals_required (1), sla_hours, on_reject (a step; default: end)
- task:         assignee_role or assignee ("assignee", "requester" or a user id), sla_hours, instructions
- notification: template (a name in templates.TEMPLATES) or subject + body; recipients: a list of
                "role:<name>", "user:<uuid>", "assignee", "requester"; email (true)
- condition:    if (an expression on variables and the record), then, else
- set_field:    field, value (a template when it is a string with {{ }}), through the record's module
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from gaas.workflow.expressions import check_condition, check_template
from gaas.workflow.templates import TEMPLATES

STEP_TYPES = ("approval", "task", "notification", "condition", "set_field")
PERSON_REFS = ("assignee", "requester")
MAX_STEPS = 50
MAX_SLA_HOURS = 24 * 365
_KEYS: dict[str, frozenset[str]] = {
    "approval": frozenset({"approver_role", "approvals_required", "sla_hours", "on_reject"}),
    "task": frozenset({"assignee_role", "assignee", "sla_hours", "instructions"}),
    "notification": frozenset({"template", "subject", "body", "recipients", "email"}),
    "condition": frozenset({"if", "then", "else"}),
    "set_field": frozenset({"field", "value"}),
}
_COMMON = frozenset({"step", "type", "name", "next"})

Errors = list[dict[str, Any]]


def _error(errors: Errors, index: int | None, key: str, message: str, kind: str = "invalid") -> None:
    field = "steps" if index is None else f"steps[{index}]" + (f".{key}" if key else "")
    errors.append({"field": field, "message": message, "type": kind})


def _sla(errors: Errors, i: int, step: dict[str, Any]) -> None:
    hours = step.get("sla_hours")
    if hours is None:
        return
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= MAX_SLA_HOURS:
        _error(errors, i, "sla_hours", f"a number of hours above 0 and at most {MAX_SLA_HOURS}")


def _role(errors: Errors, i: int, key: str, value: Any, role_exists: Callable[[str], bool]) -> None:
    if not isinstance(value, str) or not value.strip():
        _error(errors, i, key, "a role name is required", "missing")
    elif not role_exists(value):
        _error(errors, i, key, f"no role '{value}' in this domain or the platform", "unknown_role")


def _recipients(errors: Errors, i: int, value: Any, role_exists: Callable[[str], bool]) -> None:
    if not isinstance(value, list) or not value or len(value) > 50:
        _error(errors, i, "recipients", "a list of 1 to 50 recipients: role:<name>, user:<id>, assignee, requester",
               "missing")
        return
    for entry in value:
        if not isinstance(entry, str):
            _error(errors, i, "recipients", f"{entry!r} is not a recipient")
        elif entry.startswith("role:"):
            _role(errors, i, "recipients", entry[5:], role_exists)
        elif entry.startswith("user:"):
            try:
                uuid.UUID(entry[5:])
            except ValueError:
                _error(errors, i, "recipients", f"{entry!r}: not a user id")
        elif entry not in PERSON_REFS:
            _error(errors, i, "recipients", f"{entry!r}: use role:<name>, user:<id>, assignee or requester")


def _check_step(errors: Errors, i: int, step: dict[str, Any], role_exists: Callable[[str], bool]) -> None:
    kind = step["type"]
    unknown = set(step) - _COMMON - _KEYS[kind]
    if unknown:
        _error(errors, i, sorted(unknown)[0], f"not a field of a {kind} step", "extra_forbidden")
    if step.get("name") is not None and (not isinstance(step["name"], str) or len(step["name"]) > 200):
        _error(errors, i, "name", "text of at most 200 characters")
    if kind == "approval":
        _role(errors, i, "approver_role", step.get("approver_role"), role_exists)
        required = step.get("approvals_required", 1)
        if isinstance(required, bool) or not isinstance(required, int) or not 1 <= required <= 20:
            _error(errors, i, "approvals_required", "a whole number from 1 to 20")
        _sla(errors, i, step)
    elif kind == "task":
        if step.get("assignee_role") is None and step.get("assignee") is None:
            _error(errors, i, "assignee_role", "a task needs an assignee_role or an assignee", "missing")
        if step.get("assignee_role") is not None:
            _role(errors, i, "assignee_role", step["assignee_role"], role_exists)
        if step.get("assignee") is not None and step["assignee"] not in PERSON_REFS:
            try:
                uuid.UUID(str(step["assignee"]))
            except ValueError:
                _error(errors, i, "assignee", "assignee, requester or a user id")
        _sla(errors, i, step)
    elif kind == "notification":
        template = step.get("template")
        if template is not None:
            if template not in TEMPLATES:
                _error(errors, i, "template", f"no template '{template}'; known: {sorted(TEMPLATES)}",
                       "unknown_template")
        elif not (isinstance(step.get("subject"), str) and isinstance(step.get("body"), str)):
            _error(errors, i, "template", "a template name, or a subject and a body", "missing")
        for key in ("subject", "body"):
            if isinstance(step.get(key), str) and (reason := check_template(step[key])):
                _error(errors, i, key, f"not a valid template: {reason}", "template")
        _recipients(errors, i, step.get("recipients"), role_exists)
        if not isinstance(step.get("email", True), bool):
            _error(errors, i, "email", "true or false")
    elif kind == "condition":
        expression = step.get("if")
        if not isinstance(expression, str) or not expression.strip():
            _error(errors, i, "if", "an expression is required, e.g. risk == \"high\"", "missing")
        elif reason := check_condition(expression):
            _error(errors, i, "if", f"not a valid expression: {reason}", "expression")
        for key in ("then", "else"):
            if key not in step:
                _error(errors, i, key, "a step number or \"end\"", "missing")
    elif kind == "set_field":
        field = step.get("field")
        if not isinstance(field, str) or not field.isidentifier():
            _error(errors, i, "field", "the name of a field of the record", "missing")
        if "value" not in step:
            _error(errors, i, "value", "the value to write (null is allowed)", "missing")
        elif isinstance(step["value"], str) and (reason := check_template(step["value"])):
            _error(errors, i, "value", f"not a valid template: {reason}", "template")


def successors(step: dict[str, Any], following: int | str) -> list[int | str]:
    """Where a step may go next ("end" ends the workflow)."""
    if step["type"] == "condition":
        return [step["then"], step["else"]]
    targets: list[int | str] = [step.get("next", following)]
    if step["type"] == "approval" and step.get("on_reject") is not None:
        targets.append(step["on_reject"])
    return targets


def next_of(steps: list[dict[str, Any]], number: int) -> int | str:
    """The step after `number` in list order, or "end"."""
    numbers = [s["step"] for s in steps]
    index = numbers.index(number)
    return numbers[index + 1] if index + 1 < len(numbers) else "end"


def validate_steps(raw: Any, role_exists: Callable[[str], bool]) -> tuple[list[dict[str, Any]], Errors]:
    """The steps with their numbers filled in, and every error found."""
    errors: Errors = []
    if not isinstance(raw, list) or not raw:
        _error(errors, None, "", "a list of at least one step", "missing")
        return [], errors
    if len(raw) > MAX_STEPS:
        _error(errors, None, "", f"at most {MAX_STEPS} steps")
        return [], errors
    steps: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            _error(errors, i, "", "a step is an object with a type")
            continue
        step = dict(item)
        step.setdefault("step", i + 1)
        number = step["step"]
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 10_000:
            _error(errors, i, "step", "a whole number from 1 to 10000")
            continue
        if number in seen:
            _error(errors, i, "step", f"step {number} is defined twice", "duplicate")
            continue
        seen.add(number)
        if step.get("type") not in STEP_TYPES:
            _error(errors, i, "type", f"unknown step type {step.get('type')!r}; one of {list(STEP_TYPES)}",
                   "unknown_step_type")
            continue
        _check_step(errors, i, step, role_exists)
        steps.append(step)
    if errors:
        return steps, errors
    _check_graph(steps, errors)
    return steps, errors


def _check_graph(steps: list[dict[str, Any]], errors: Errors) -> None:
    """Every jump names a step; every step is reachable from the first; no cycles (a loop of
    automatic steps would never stop)."""
    index_of = {s["step"]: i for i, s in enumerate(steps)}
    edges: dict[int, list[int]] = {}
    for i, step in enumerate(steps):
        targets = []
        for key, target in zip(_jump_keys(step), successors(step, next_of(steps, step["step"])), strict=True):
            if target == "end":
                continue
            if target not in index_of:
                _error(errors, i, key, f"there is no step {target!r}", "unknown_step")
            else:
                targets.append(target)
        edges[step["step"]] = targets
    if errors:
        return
    reached: set[int] = set()
    frontier = [steps[0]["step"]]
    while frontier:
        number = frontier.pop()
        if number not in reached:
            reached.add(number)
            frontier.extend(edges[number])
    for i, step in enumerate(steps):
        if step["step"] not in reached:
            _error(errors, i, "", f"step {step['step']} can never be reached", "unreachable")
    state: dict[int, int] = {}

    def visit(number: int) -> bool:
        state[number] = 1
        for target in edges[number]:
            if state.get(target) == 1 or (state.get(target) is None and visit(target)):
                return True
        state[number] = 2
        return False

    if not errors and visit(steps[0]["step"]):
        _error(errors, None, "", "the steps form a loop; a workflow must always move towards its end", "cycle")


def _jump_keys(step: dict[str, Any]) -> list[str]:
    if step["type"] == "condition":
        return ["then", "else"]
    keys = ["next"]
    if step["type"] == "approval" and step.get("on_reject") is not None:
        keys.append("on_reject")
    return keys


# ---- triggers --------------------------------------------------------------------------------------

def validate_trigger(trigger_type: str, config: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Errors]:
    errors: Errors = []

    def bad(key: str, message: str, kind: str = "invalid") -> None:
        errors.append({"field": f"trigger_config.{key}" if key else "trigger_config", "message": message,
                       "type": kind})

    config = dict(config or {})
    if trigger_type == "manual":
        return (config or None), errors
    if trigger_type == "event":
        event_type = config.get("event_type")
        if not isinstance(event_type, str) or not event_type.strip():
            bad("event_type", "the event type that starts this workflow, e.g. change.submitted", "missing")
        elif event_type.startswith("workflow.") or event_type.startswith("approval."):
            bad("event_type", "workflow events cannot start workflows (that could loop)")
        condition = config.get("condition")
        if condition is not None and (not isinstance(condition, str) or (reason := check_condition(condition))):
            bad("condition", f"not a valid expression: {reason if isinstance(condition, str) else 'not text'}",
                "expression")
        if set(config) - {"event_type", "condition"}:
            bad(sorted(set(config) - {"event_type", "condition"})[0], "unknown field", "extra_forbidden")
        return config, errors
    if trigger_type == "schedule":
        cron = config.get("cron")
        zone = config.setdefault("timezone", "UTC")
        try:
            tz = ZoneInfo(zone) if isinstance(zone, str) else None
        except (ZoneInfoNotFoundError, ValueError):
            tz = None
        if tz is None:
            bad("timezone", f"{zone!r} is not an IANA time zone", "timezone")
        if not isinstance(cron, str) or not cron.strip():
            bad("cron", "a cron expression, e.g. \"0 8 1 * *\"", "missing")
        elif tz is not None and (reason := cron_error(cron, tz)):
            bad("cron", f"not a valid cron expression: {reason}", "cron")
        if set(config) - {"cron", "timezone"}:
            bad(sorted(set(config) - {"cron", "timezone"})[0], "unknown field", "extra_forbidden")
        return config, errors
    errors.append({"field": "trigger_type", "message": "manual, event or schedule", "type": "enum"})
    return config, errors


def cron_error(cron: str, tz: ZoneInfo) -> str | None:
    if len(cron.split()) != 5:
        return "five fields: minute hour day-of-month month day-of-week"
    try:
        next(CronSim(cron, datetime.now(tz)))
    except (CronSimError, StopIteration) as exc:
        return str(exc) or "never fires"
    return None


def next_slot(cron: str, zone: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the cron expression names, in its time zone
    (cronsim handles the daylight-saving gaps and repeats), as UTC."""
    tz = ZoneInfo(zone)
    return next(CronSim(cron, after.astimezone(tz).replace(second=0, microsecond=0))).astimezone(UTC)
