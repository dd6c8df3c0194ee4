"""The workflow engine: definitions validated and versioned, approvals (two steps, rejection with its
comment, the requester and the wrong role refused, decisions audited), the outcome handed to the
record's module in the same transaction, tasks, conditions, set_field through the owning module,
SLA escalation exactly once, cron under a controllable clock, event triggers with conditions, and
e-mail to a real SMTP sink.

The approval flow runs against a record type registered here ("purchase", backed by catalog
services), exactly as the changes module registers "change"."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gaas.catalog import service as catalog
from gaas.catalog.schemas import ServiceUpdate
from gaas.core.db import unit_of_work
from gaas.core.settings import get_settings
from gaas.iam import service as iam
from gaas.workflow import contexts
from gaas.workflow import service as workflow
from gaas.workflow.contexts import ContextType, Outcome
from tests.support import Person, World, api_service, assert_problem, rid, unique
from tests.test_workflow_support import Clock, SmtpSink, make_worker

OUTCOMES: list[Outcome] = []


def _record_outcome(db, actor, outcome: Outcome) -> None:
    """What a module does with an outcome: write its record through its own service."""
    OUTCOMES.append(outcome)
    service = catalog.get_service(db, actor, outcome.context_id)
    catalog.update_service(db, actor, service.id, ServiceUpdate(
        description=f"{outcome.outcome}: {outcome.comment or ''}".strip(), version=service.version), None)


contexts.register_context_type("purchase", ContextType(
    load=lambda db, actor, id_: catalog.get_service(db, actor, id_, include_deleted=False),
    set_field=contexts._update_through(catalog.update_service, ServiceUpdate),
    assignee_field="manager_id", requester_field="owner_id"))
contexts.register_outcome_handler("purchase", _record_outcome)


@pytest.fixture(scope="module")
def smtp(database):
    """SMTP settings pointing at a sink in this process for the whole module."""
    sink = SmtpSink().start()
    settings = get_settings()
    saved = (settings.smtp_host, settings.smtp_port)
    settings.smtp_host, settings.smtp_port = "127.0.0.1", sink.port
    yield sink
    settings.smtp_host, settings.smtp_port = saved
    sink.stop()


@pytest.fixture(scope="module")
def org(world: World, client) -> dict[str, Any]:
    domain = world.domain()
    people = {
        "domain": domain,
        "admin": world.user(domain, "domain_admin"),
        "requester": world.user(domain, "service_owner"),
        "manager": world.user(domain, "change_manager"),
        "manager2": world.user(domain, "change_manager"),
        "owner": world.user(domain, "service_owner"),
        "agent": world.user(domain, "service_desk_agent"),
    }
    other = world.domain()
    people["other_domain"] = other
    people["outsider"] = world.user(other, "change_manager")
    return people


def _purchase(client, org) -> dict[str, Any]:
    return api_service(client, org["admin"], org["domain"], owner_id=str(org["requester"].id))


def _start(world: World, definition: Any, record_id: Any, requester: Person | None, **kw: Any):
    with world.session() as db:
        instance = workflow.start(db, iam.system_actor(), definition, "purchase", uuid.UUID(str(record_id)),
                                  requested_by=requester.id if requester else None, run_now=True, **kw)
        return instance.id


def _instance(client, who: Person, instance_id) -> dict[str, Any]:
    response = client.get(f"/api/v1/workflow-instances/{instance_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _pending(detail: dict[str, Any]) -> dict[str, Any]:
    [approval] = [a for a in detail["approvals"] if a["status"] == "pending"]
    return approval


# ---- change approval on the engine -------------------------------------------------------------------

def test_an_approved_normal_change_goes_through_both_approvals(client, database, world, org, smtp):
    OUTCOMES.clear()
    record = _purchase(client, org)
    instance_id = _start(world, "normal-change-approval", record["id"], org["requester"])
    detail = _instance(client, org["admin"], instance_id)
    assert detail["status"] == "running" and detail["current_step"] == 1
    first = _pending(detail)
    assert first["approver_role"] == "change_manager"

    # The change managers (not the requester) were asked, in-app and by e-mail.
    mine = client.get("/api/v1/approvals", params={"mine": "true"}, headers=org["manager"].headers).json()
    assert first["id"] in [a["id"] for a in mine["items"]]
    assert client.get("/api/v1/approvals", params={"mine": "true"},
                      headers=org["requester"].headers).json()["items"] == []

    # The requester may not approve even with the role; nor may the wrong role or another domain.
    assert_problem(client.post(f"/api/v1/approvals/{first['id']}/approve", json={},
                               headers=org["owner"].headers), 403)
    assert_problem(client.post(f"/api/v1/approvals/{first['id']}/approve", json={},
                               headers=org["outsider"].headers), 404)

    request_id = rid()
    response = client.post(f"/api/v1/approvals/{first['id']}/approve", json={"comment": "Looks safe"},
                           headers={**org["manager"].headers, "X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "approved"
    assert response.json()["decisions"][0]["comment"] == "Looks safe"
    assert_problem(client.post(f"/api/v1/approvals/{first['id']}/approve", json={},
                               headers=org["manager2"].headers), 409)
    audited = database.owner_rows("SELECT action, user_id, changes FROM gaas_audit.audit_log "
                                  "WHERE request_id = :r AND entity_type = 'approval'", r=request_id)
    assert [(a["action"], a["user_id"]) for a in audited] == [("approve", org["manager"].id)]
    assert audited[0]["changes"]["after"]["comment"] == "Looks safe"

    detail = _instance(client, org["admin"], instance_id)
    second = _pending(detail)
    assert second["approver_role"] == "service_owner" and detail["current_step"] == 2
    # The requester holds service_owner too, and still may not approve the second step.
    body = assert_problem(client.post(f"/api/v1/approvals/{second['id']}/approve", json={},
                                      headers=org["requester"].headers), 403)
    assert "requester" in body["detail"]
    response = client.post(f"/api/v1/approvals/{second['id']}/approve", json={}, headers=org["owner"].headers)
    assert response.status_code == 200, response.text

    detail = _instance(client, org["admin"], instance_id)
    assert (detail["status"], detail["outcome"]) == ("completed", "approved")
    assert [(s["step_number"], s["status"]) for s in detail["timeline"]] == [
        (1, "approved"), (2, "approved"), (3, "completed")]
    assert [s["acted_by"] for s in detail["timeline"][:2]] == [str(org["manager"].id), str(org["owner"].id)]
    # The outcome reached the record's module in the same transaction as the last decision.
    assert [o.outcome for o in OUTCOMES] == ["approved"]
    assert client.get(f"/api/v1/services/{record['id']}", headers=org["admin"].headers).json()["description"] \
        == "approved:"
    # The requester heard of it, in-app and (once the worker ran) by e-mail.
    notes = client.get("/api/v1/notifications", headers=org["requester"].headers).json()["items"]
    assert any("approved" in n["subject"] for n in notes)
    make_worker(database, smtp_host="127.0.0.1", smtp_port=smtp.port).run_until_idle()
    assert any("approved" in m["Subject"] for m in smtp.to(org["requester"].email))
    assert any("Approval needed" in m["Subject"] for m in smtp.to(org["manager"].email))
    assert not any("Approval needed" in m["Subject"] for m in smtp.to(org["requester"].email))


def test_a_rejection_ends_rejected_with_its_comment(client, database, world, org):
    OUTCOMES.clear()
    record = _purchase(client, org)
    instance_id = _start(world, "normal-change-approval", record["id"], org["requester"])
    first = _pending(_instance(client, org["admin"], instance_id))
    assert_problem(client.post(f"/api/v1/approvals/{first['id']}/reject", json={},
                               headers=org["manager"].headers), 422, "comment")
    response = client.post(f"/api/v1/approvals/{first['id']}/reject", json={"comment": "No rollback plan"},
                           headers=org["manager"].headers)
    assert response.status_code == 200, response.text
    detail = _instance(client, org["admin"], instance_id)
    assert (detail["status"], detail["outcome"]) == ("completed", "rejected")
    assert detail["timeline"][0]["comment"] == "No rollback plan"
    assert [(o.outcome, o.comment, o.decided_by) for o in OUTCOMES] == [
        ("rejected", "No rollback plan", org["manager"].id)]
    assert client.get(f"/api/v1/services/{record['id']}", headers=org["admin"].headers).json()["description"] \
        == "rejected: No rollback plan"
    # a decided approval takes no more decisions
    assert_problem(client.post(f"/api/v1/approvals/{first['id']}/approve", json={},
                               headers=org["manager2"].headers), 409)


def test_emergency_approval_has_a_four_hour_sla_and_escalates_exactly_once(client, database, world, org):
    record = _purchase(client, org)
    instance_id = _start(world, "emergency-change-approval", record["id"], org["requester"])
    step = _instance(client, org["admin"], instance_id)["timeline"][0]
    started, due = datetime.fromisoformat(step["started_at"]), datetime.fromisoformat(step["sla_due_at"])
    assert due - started == timedelta(hours=4)

    clock = Clock(started + timedelta(hours=3, minutes=59))
    worker = make_worker(database, clock)

    def escalations() -> int:
        notes = client.get("/api/v1/notifications", headers=org["admin"].headers).json()["items"]
        return sum(1 for n in notes if n["subject"].startswith("Escalation") and n["instance_id"] == str(instance_id))

    worker.run_until_idle()
    assert escalations() == 0
    clock.advance(minutes=2)
    worker.run_until_idle()
    worker.run_until_idle()
    clock.advance(hours=5)
    worker.run_until_idle()
    assert escalations() == 1
    step = _instance(client, org["admin"], instance_id)["timeline"][0]
    assert step["escalated_at"] is not None and step["status"] == "active"
    assert step["details"]["escalation"]["notified"] == [str(org["admin"].id)]
    rows = database.owner_rows("SELECT count(*) AS n FROM gaas_audit.audit_log WHERE action = 'escalate' "
                               "AND entity_id = :id", id=step["id"])
    assert rows[0]["n"] == 1


# ---- definitions -------------------------------------------------------------------------------------

def _definition(**overrides: Any) -> dict[str, Any]:
    return {"name": unique("wf-"), "trigger_type": "manual",
            "steps": [{"type": "approval", "approver_role": "change_manager", "sla_hours": 8}], **overrides}


@pytest.mark.parametrize(("overrides", "field"), [
    ({"steps": [{"type": "approval", "approver_role": "change_manager"}, {"type": "teleport"}]}, "steps[1].type"),
    ({"steps": [{"type": "approval"}]}, "steps[0].approver_role"),
    ({"steps": [{"type": "approval", "approver_role": "no_such_role"}]}, "steps[0].approver_role"),
    ({"steps": [{"type": "approval", "approver_role": "change_manager", "sla_hours": -1}]}, "steps[0].sla_hours"),
    ({"steps": [{"type": "task"}]}, "steps[0].assignee_role"),
    ({"steps": [{"type": "notification", "template": "nope", "recipients": ["requester"]}]}, "steps[0].template"),
    ({"steps": [{"type": "notification", "template": "change_approved", "recipients": ["boss"]}]},
     "steps[0].recipients"),
    ({"steps": [{"type": "condition", "if": "risk ==", "then": "end", "else": "end"}]}, "steps[0].if"),
    ({"steps": [{"type": "set_field", "field": "description"}]}, "steps[0].value"),
    ({"steps": [{"step": 1, "type": "approval", "approver_role": "change_manager", "next": "end"},
                {"step": 2, "type": "approval", "approver_role": "change_manager"}]}, "steps[1]"),
    ({"steps": [{"step": 1, "type": "approval", "approver_role": "change_manager", "next": 7}]}, "steps[0].next"),
    ({"steps": [{"step": 1, "type": "condition", "if": "true", "then": 2, "else": "end"},
                {"step": 2, "type": "condition", "if": "true", "then": 1, "else": "end"}]}, "steps"),
    ({"trigger_type": "schedule", "trigger_config": {"cron": "61 * * * *"}}, "trigger_config.cron"),
    ({"trigger_type": "schedule", "trigger_config": {"cron": "0 8 * * *", "timezone": "Mars/Olympus"}},
     "trigger_config.timezone"),
    ({"trigger_type": "event", "trigger_config": {}}, "trigger_config.event_type"),
    ({"trigger_type": "event", "trigger_config": {"event_type": "change.submitted", "condition": "change.type =="}},
     "trigger_config.condition"),
])
def test_definitions_are_validated_naming_the_step(client, database, org, overrides, field):
    body = _definition(domain=org["domain"], **overrides)
    assert_problem(client.post("/api/v1/workflow-definitions", json=body, headers=org["admin"].headers), 422, field)
    assert database.owner_rows("SELECT id FROM gaas_workflow.workflow_definitions WHERE name = :n",
                               n=body["name"]) == []


def test_editing_a_definition_makes_a_version_and_running_instances_keep_theirs(client, world, org):
    created = client.post("/api/v1/workflow-definitions", json=_definition(domain=org["domain"]),
                          headers=org["admin"].headers)
    assert created.status_code == 201, created.text
    definition = created.json()
    record = _purchase(client, org)
    instance_id = _start(world, uuid.UUID(definition["id"]), record["id"], org["requester"])

    new_steps = [{"type": "approval", "approver_role": "service_owner", "sla_hours": 2}]
    stale = client.patch(f"/api/v1/workflow-definitions/{definition['id']}", json={"steps": new_steps, "version": 5},
                         headers=org["admin"].headers)
    assert_problem(stale, 409, "version")
    edited = client.patch(f"/api/v1/workflow-definitions/{definition['id']}", json={"steps": new_steps},
                          headers={**org["admin"].headers, "If-Match": '"1"'})
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2
    old = client.get(f"/api/v1/workflow-definitions/{definition['id']}/versions/1", headers=org["admin"].headers)
    assert old.json()["steps"][0]["approver_role"] == "change_manager"

    running = _instance(client, org["admin"], instance_id)
    assert running["definition_version"] == 1
    assert _pending(running)["approver_role"] == "change_manager"
    response = client.post(f"/api/v1/approvals/{_pending(running)['id']}/approve", json={},
                           headers=org["manager"].headers)
    assert response.status_code == 200, response.text
    assert _instance(client, org["admin"], instance_id)["outcome"] == "approved"
    newer = _start(world, uuid.UUID(definition["id"]), _purchase(client, org)["id"], org["requester"])
    assert _pending(_instance(client, org["admin"], newer))["approver_role"] == "service_owner"


def test_a_domain_definition_overrides_the_platform_one_of_the_same_name(client, world, org):
    body = _definition(name="normal-change-approval", domain=org["domain"],
                       steps=[{"type": "approval", "approver_role": "domain_admin"}])
    assert client.post("/api/v1/workflow-definitions", json=body, headers=org["admin"].headers).status_code == 201
    instance_id = _start(world, "normal-change-approval", _purchase(client, org)["id"], org["requester"])
    assert _pending(_instance(client, org["admin"], instance_id))["approver_role"] == "domain_admin"
    # a second of that name in the same domain is a conflict
    assert_problem(client.post("/api/v1/workflow-definitions", json=body, headers=org["admin"].headers), 409, "name")


# ---- conditions, set_field, tasks ---------------------------------------------------------------------

def test_condition_set_field_and_task_steps(client, database, world, org):
    steps = [
        {"step": 1, "type": "condition", "if": "purchase.type == 'business' and amount > 1000", "then": 2, "else": 3},
        {"step": 2, "type": "set_field", "field": "description", "value": "big: {{ amount }}", "next": 4},
        {"step": 3, "type": "set_field", "field": "description", "value": "small", "next": 4},
        {"step": 4, "type": "task", "assignee_role": "service_desk_agent", "instructions": "Order it"},
        {"step": 5, "type": "notification", "subject": "Done {{ record.number }}", "body": "{{ variables.note }}",
         "recipients": ["requester", "user:" + str(org["admin"].id)]},
    ]
    created = client.post("/api/v1/workflow-definitions", json=_definition(domain=org["domain"], steps=steps),
                          headers=org["admin"].headers)
    assert created.status_code == 201, created.text
    record = _purchase(client, org)
    instance_id = _start(world, uuid.UUID(created.json()["id"]), record["id"], org["requester"],
                         variables={"amount": 5000})
    service = client.get(f"/api/v1/services/{record['id']}", headers=org["admin"].headers).json()
    assert service["description"] == "big: 5000"
    # written through the catalog: audited as the platform, announced as a service update
    audited = database.owner_rows("SELECT user_id, changes FROM gaas_audit.audit_log WHERE entity_id = :id "
                                  "AND action = 'update'", id=record["id"])
    assert audited[-1]["changes"]["after"]["description"] == "big: 5000"
    assert str(audited[-1]["user_id"]) == "00000000-0000-7000-8000-000000000000"

    tasks = client.get("/api/v1/workflow-tasks", params={"mine": "true"}, headers=org["agent"].headers).json()
    [task] = [t for t in tasks["items"] if t["instance_id"] == str(instance_id)]
    assert_problem(client.post(f"/api/v1/workflow-tasks/{task['id']}/complete", json={},
                               headers=org["manager"].headers), 403)
    done = client.post(f"/api/v1/workflow-tasks/{task['id']}/complete",
                       json={"comment": "Ordered", "variables": {"note": "arrives Monday"}},
                       headers=org["agent"].headers)
    assert done.status_code == 200, done.text
    detail = _instance(client, org["admin"], instance_id)
    assert detail["status"] == "completed"
    assert [(s["step_number"], s["status"]) for s in detail["timeline"]] == [
        (1, "completed"), (2, "completed"), (4, "completed"), (5, "completed")]
    assert detail["timeline"][0]["details"] == {"result": True}
    notes = client.get("/api/v1/notifications", headers=org["requester"].headers).json()["items"]
    assert any(n["subject"] == f"Done {record['number']}" and n["body"] == "arrives Monday" for n in notes)


def test_a_set_field_the_module_refuses_fails_the_instance_and_writes_nothing(client, database, world, org):
    steps = [{"type": "set_field", "field": "status", "value": "retired"}]
    created = client.post("/api/v1/workflow-definitions", json=_definition(domain=org["domain"], steps=steps),
                          headers=org["admin"].headers)
    record = api_service(client, org["admin"], org["domain"], owner_id=str(org["requester"].id))
    child = api_service(client, org["admin"], org["domain"], type_="technical", parent=record["id"],
                        owner_id=str(org["requester"].id))
    assert (child["parent_service_id"], child["status"]) == (record["id"], "active")  # why retiring must fail
    instance_id = _start(world, uuid.UUID(created.json()["id"]), record["id"], org["requester"])
    detail = _instance(client, org["admin"], instance_id)
    assert (detail["status"], detail["outcome"]) == ("failed", "failed")
    assert "active children" in detail["last_error"] or "retire" in detail["last_error"]
    assert client.get(f"/api/v1/services/{record['id']}", headers=org["admin"].headers).json()["status"] == "active"


def _due_instance(client, world, org, steps: list[dict[str, Any]]) -> tuple[dict[str, Any], uuid.UUID]:
    """An instance of `steps` on a new purchase, started and left for the worker to run."""
    created = client.post("/api/v1/workflow-definitions", json=_definition(domain=org["domain"], steps=steps),
                          headers=org["admin"].headers)
    assert created.status_code == 201, created.text
    record = _purchase(client, org)
    with world.session() as db:
        instance = workflow.start(db, iam.system_actor(), uuid.UUID(created.json()["id"]), "purchase",
                                  uuid.UUID(record["id"]), requested_by=org["requester"].id)
        return record, instance.id


def _raising(error: Exception) -> Any:
    """A stand-in for an engine function that raises `error` (code that breaks unexpectedly)."""
    def fail(*args: Any, **kwargs: Any) -> None:
        raise error
    return fail


def test_a_step_that_raises_unexpectedly_fails_the_instance_announced_and_its_module_told(
        client, database, world, org, monkeypatch):
    record, instance_id = _due_instance(client, world, org, [{"type": "set_field", "field": "description",
                                                              "value": "never written"}])
    monkeypatch.setattr(workflow, "run_until_waiting", _raising(RuntimeError("the step's code is broken")))
    make_worker(database).run_until_idle()
    detail = _instance(client, org["admin"], instance_id)
    assert (detail["status"], detail["outcome"]) == ("failed", "failed")
    assert detail["last_error"] == "RuntimeError: the step's code is broken"
    # as for a step that fails cleanly: the record's module is told, and the failure is announced
    [told] = [o for o in OUTCOMES if o.instance_id == instance_id]
    assert (told.outcome, told.comment) == ("failed", "RuntimeError: the step's code is broken")
    service = client.get(f"/api/v1/services/{record['id']}", headers=org["admin"].headers).json()
    assert service["description"] == "failed: RuntimeError: the step's code is broken"
    announced = database.owner_rows("SELECT payload FROM gaas_workflow.outbox_events WHERE event_type = "
                                    "'workflow.failed' AND entity_id = :id", id=instance_id)
    assert [a["payload"]["outcome"] for a in announced] == ["failed"]


def test_an_instance_whose_failure_cannot_be_announced_is_still_failed_and_not_retried(
        client, database, world, org, monkeypatch):
    _, instance_id = _due_instance(client, world, org, [{"type": "set_field", "field": "description",
                                                         "value": "never written"}])
    monkeypatch.setattr(workflow, "run_until_waiting", _raising(RuntimeError("broken step")))
    monkeypatch.setattr(workflow, "fail_instance", _raising(ValueError("the outcome handler is broken too")))
    make_worker(database).run_until_idle()
    detail = _instance(client, org["admin"], instance_id)
    assert (detail["status"], detail["outcome"], detail["last_error"]) == ("failed", "failed",
                                                                           "RuntimeError: broken step")
    assert not [o for o in OUTCOMES if o.instance_id == instance_id]
    assert not database.owner_rows("SELECT 1 FROM gaas_workflow.outbox_events WHERE event_type = 'workflow.failed' "
                                   "AND entity_id = :id", id=instance_id)


def test_an_approval_is_seen_with_workflow_view_or_by_those_who_decide_it(client, world, org):
    admin = world.admin()
    decider_role, bystander_role = unique("decider_"), unique("bystander_")
    for role in (decider_role, bystander_role):
        made = client.post("/api/v1/roles", json={"name": role, "permissions": ["service.view"]}, headers=admin.headers)
        assert made.status_code == 201, made.text
    created = client.post("/api/v1/workflow-definitions", headers=org["admin"].headers, json=_definition(
        domain=org["domain"], steps=[{"type": "approval", "approver_role": decider_role}]))
    assert created.status_code == 201, created.text
    instance_id = _start(world, uuid.UUID(created.json()["id"]), _purchase(client, org)["id"], org["requester"])
    approval = _pending(_instance(client, org["admin"], instance_id))
    decider, bystander = world.user(org["domain"], decider_role), world.user(org["domain"], bystander_role)
    path = f"/api/v1/approvals/{approval['id']}"
    assert client.get(path, headers=org["agent"].headers).json()["id"] == approval["id"]  # workflow.view
    assert client.get(path, headers=decider.headers).json()["id"] == approval["id"]  # decides it
    assert_problem(client.get(path, headers=bystander.headers), 404)
    assert_problem(client.post(f"{path}/approve", json={}, headers=bystander.headers), 404)
    decided = client.post(f"{path}/approve", json={}, headers=decider.headers)
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"


def test_manual_start_through_the_api(client, org):
    record = _purchase(client, org)
    body = {"definition_name": "emergency-change-approval", "context_type": "purchase", "context_id": record["id"]}
    assert_problem(client.post("/api/v1/workflow-instances", json=body, headers=org["requester"].headers), 403)
    response = client.post("/api/v1/workflow-instances", json=body, headers=org["manager"].headers)
    assert response.status_code == 201, response.text
    assert response.json()["approvals"][0]["approver_role"] == "change_manager"
    assert_problem(client.post("/api/v1/workflow-instances", json={**body, "definition_name": "nope"},
                               headers=org["manager"].headers), 422, "definition")
    assert_problem(client.post("/api/v1/workflow-instances", json={**body, "context_type": "spaceship"},
                               headers=org["manager"].headers), 422, "context_type")
    cancelled = client.post(f"/api/v1/workflow-instances/{response.json()['id']}/cancel",
                            headers=org["admin"].headers)
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["approvals"][0]["status"] == "cancelled"


# ---- triggers: events and schedules --------------------------------------------------------------------

def test_an_event_trigger_with_a_condition_starts_once_per_matching_event(client, database, org):
    body = _definition(domain=org["domain"], trigger_type="event",
                       trigger_config={"event_type": "service.created", "condition": "service.type == 'business'"},
                       steps=[{"type": "notification", "subject": "New {{ service.name }}", "body": "{{ event.key }}",
                               "recipients": ["role:domain_admin"]}])
    created = client.post("/api/v1/workflow-definitions", json=body, headers=org["admin"].headers)
    assert created.status_code == 201, created.text
    business = api_service(client, org["admin"], org["domain"])
    technical = api_service(client, org["admin"], org["domain"], type_="technical", parent=business["id"])
    worker = make_worker(database)
    worker.run_until_idle()
    worker.run_until_idle()
    instances = client.get("/api/v1/workflow-instances", params={"definition": created.json()["id"]},
                           headers=org["admin"].headers).json()["items"]
    assert [(i["context_id"], i["status"]) for i in instances] == [(business["id"], "completed")]
    # the technical service's event was handled too: its condition said no
    handled = database.owner_rows("SELECT processed_at FROM gaas_workflow.outbox_events WHERE entity_id = :id "
                                  "AND event_type = 'service.created'", id=technical["id"])
    assert len(handled) == 1 and handled[0]["processed_at"] is not None
    notes = client.get("/api/v1/notifications", headers=org["admin"].headers).json()["items"]
    assert sum(1 for n in notes if n["subject"] == f"New {business['name']}") == 1


def test_a_cron_trigger_fires_at_the_right_minute(client, database, org):
    paris = ZoneInfo("Europe/Paris")
    body = _definition(domain=org["domain"], trigger_type="schedule",
                       trigger_config={"cron": "30 9 * * 1-5", "timezone": "Europe/Paris"},
                       steps=[{"type": "notification", "subject": "Stand-up", "body": "{{ scheduled_for }}",
                               "recipients": ["role:domain_admin"]}])
    # a Friday evening: the next slot is Monday 09:30 Paris time
    friday = datetime(2031, 3, 28, 18, 0, tzinfo=paris).astimezone(UTC)
    with unit_of_work(iam.system_actor(), database.factory) as db:
        from gaas.workflow.schemas import DefinitionCreate

        definition = workflow.create_definition(db, iam.system_actor(), DefinitionCreate.model_validate(body),
                                                now=friday)
        definition_id = definition.id
    clock = Clock(datetime(2031, 3, 31, 9, 29, 59, tzinfo=paris).astimezone(UTC))
    worker = make_worker(database, clock)

    def fired() -> list[dict[str, Any]]:
        return client.get("/api/v1/workflow-instances", params={"definition": str(definition_id)},
                          headers=org["admin"].headers).json()["items"]

    worker.run_until_idle()
    assert fired() == []
    clock.advance(seconds=1)  # Monday 09:30:00 Paris (07:30 UTC, summer time since Sunday)
    worker.run_until_idle()
    worker.run_until_idle()
    [first] = fired()
    assert first["variables"]["scheduled_for"] == "2031-03-31T07:30:00Z"
    assert first["status"] == "completed"
    clock.advance(hours=23, minutes=59)
    worker.run_until_idle()
    assert len(fired()) == 1
    clock.advance(minutes=1)  # Tuesday 09:30
    worker.run_until_idle()
    assert len(fired()) == 2
    # missed slots (workers down over the weekend and Monday) fire once, then it is back on time
    clock.advance(days=6)
    worker.run_until_idle()
    assert len(fired()) == 3
    schedule = database.owner_rows("SELECT next_run_at FROM gaas_workflow.workflow_schedules "
                                   "WHERE definition_id = :id", id=definition_id)[0]
    assert schedule["next_run_at"] > clock.now()


def test_the_monthly_cost_report_reaches_each_domains_finance_officers(client, database, world, org):
    finance = world.user(org["domain"], "finance_officer")
    with unit_of_work(iam.system_actor(), database.factory) as db:
        definition = workflow.find_definition(db, "monthly-cost-report", None)
        slot = db.get(workflow.Schedule, definition.id).next_run_at
    assert (slot.day, slot.hour, slot.minute) == (1, 8, 0)
    make_worker(database, Clock(slot)).run_until_idle()
    notes = client.get("/api/v1/notifications", headers=finance.headers).json()["items"]
    assert [n["subject"] for n in notes] == [f"Monthly cost report for {org['domain']}"]


# ---- isolation ---------------------------------------------------------------------------------------

def test_another_domains_workflows_are_invisible(client, world, org):
    instance_id = _start(world, "emergency-change-approval", _purchase(client, org)["id"], org["requester"])
    assert_problem(client.get(f"/api/v1/workflow-instances/{instance_id}", headers=org["outsider"].headers), 404)
    listed = client.get("/api/v1/workflow-instances", headers=org["outsider"].headers).json()["items"]
    assert str(instance_id) not in [i["id"] for i in listed]
    listed = client.get("/api/v1/approvals", headers=org["outsider"].headers).json()["items"]
    assert all(a["domain"] != org["domain"] for a in listed)


def test_notifications_are_personal_even_in_raw_sql(client, database, org):
    """The requester's notifications cannot be read by a domain administrator of the same domain."""
    mine = client.get("/api/v1/notifications", headers=org["requester"].headers).json()["items"]
    assert mine, "the tests above left the requester notifications; without them this test proves nothing"
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                     (str(org["admin"].id), org["domain"]))
        seen = conn.execute("SELECT count(*) FROM gaas_workflow.notifications WHERE user_id = %s",
                            (org["requester"].id,)).fetchone()[0]
        assert seen == 0
    first = mine[0]["id"]
    assert_problem(client.post(f"/api/v1/notifications/{first}/read", headers=org["admin"].headers), 404)
    read = client.post(f"/api/v1/notifications/{first}/read", headers=org["requester"].headers)
    assert read.json()["read_at"] is not None
    assert client.post("/api/v1/notifications/read-all", headers=org["requester"].headers).status_code == 200
    assert client.get("/api/v1/notifications", params={"unread": "true"},
                      headers=org["requester"].headers).json()["items"] == []


def test_the_shipped_sla_breach_escalation_tells_the_assignee_and_admins_and_asks_for_a_review_once(
        client, database, world):
    from sqlalchemy import text

    from gaas.incidents import service as incidents
    from tests.support import api_incident

    domain = world.domain()
    agent, admin, reviewer = (world.user(domain, "service_desk_agent"), world.user(domain, "domain_admin"),
                              world.user(domain, "service_desk_agent"))
    incident = api_incident(client, agent, domain, assigned_to=str(agent.id))
    with database.owner_engine.begin() as conn:
        conn.execute(text("UPDATE gaas_incident_mgmt.incidents SET sla_due = now() - interval '1 minute' "
                          "WHERE id = :id"), {"id": incident["id"]})
    for _ in range(2):  # a second breach check and worker pass change nothing
        with unit_of_work(iam.system_actor(), database.factory) as db:
            incidents.mark_sla_breaches(db)
        make_worker(database).run_until_idle()
    subject = f"SLA breached: {incident['number']} {incident['short_description']}"
    for person in (agent, admin):
        notes = client.get("/api/v1/notifications", headers=person.headers).json()["items"]
        assert [n["subject"] for n in notes if n["subject"].startswith("SLA breached")] == [subject]
    instances = database.owner_rows("SELECT id, status FROM gaas_workflow.workflow_instances WHERE context_id = :id",
                                    id=incident["id"])
    assert [i["status"] for i in instances] == ["running"]  # waiting for the review task
    tasks = client.get("/api/v1/workflow-tasks", params={"mine": "true"}, headers=reviewer.headers).json()["items"]
    [task] = [t for t in tasks if t["instance_id"] == str(instances[0]["id"])]
    assert task["status"] == "active"
