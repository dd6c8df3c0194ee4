"""Changes, standard-change templates and change windows through the battery, then the lifecycle
by type, approval, the submit rules, the suggested risk from the CMDB, the outcome, the incidents
a failed change caused, and the change calendar."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from tests.battery import ResourceBattery
from tests.support import (
    Person,
    World,
    api_ci,
    api_incident,
    api_link,
    api_patch,
    api_service,
    assert_problem,
    audit_rows,
    rid,
    unique,
)

PLANS = {"implementation_plan": "Apply the patch with the runbook", "rollback_plan": "Restore the snapshot",
         "test_plan": "Log in through the portal"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def window(days: int = 10, hours: int = 2, length: int = 2) -> dict[str, str]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=days, hours=hours)
    return {"planned_start": iso(start), "planned_end": iso(start + timedelta(hours=length))}


class TestChanges(ResourceBattery):
    path = "/api/v1/changes"
    entity_type = "change"
    table = "gaas_change_mgmt.changes"
    history_resource = "changes"
    list_filter = "q"
    update: ClassVar[dict[str, Any]] = {"short_description": "Upgrade the mail relay", "description": "To 3.2"}
    bad_inputs = [
        ({"type": "sneaky"}, "type"),
        ({"risk": "extreme"}, "risk"),
        ({"affected_cis": [str(uuid.uuid4())]}, "affected_cis.0"),
        ({"service_id": str(uuid.uuid4())}, "service_id"),
        ({"assigned_to": str(uuid.uuid4())}, "assigned_to"),
        ({"requested_by": str(uuid.uuid4())}, "requested_by"),
        ({"planned_start": "2026-07-01T10:00:00Z", "planned_end": "2026-07-01T09:00:00Z"}, "planned_end"),
        ({"planned_start": "2026-07-01T10:00:00"}, "planned_start"),
        ({"template_id": str(uuid.uuid4())}, "template_id"),
        ({"type": "standard"}, "template_id"),
        ({"short_description": "x" * 201}, "short_description"),
        ({"status": "approved"}, "status"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "auditor")

    def body(self, domain: str) -> dict[str, Any]:
        return {"domain": domain, "short_description": unique("Patch the web servers "), "type": "normal",
                "risk": "low", "description": "Monthly patching"}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["short_description"]


class TestChangeTemplates(ResourceBattery):
    path = "/api/v1/change-templates"
    entity_type = "change_template"
    table = "gaas_change_mgmt.change_templates"
    history_resource = "change-templates"
    list_filter = "domain"
    update: ClassVar[dict[str, Any]] = {"name": "Restart an app pool (v2)", "risk": "medium"}
    bad_inputs = [
        ({"implementation_plan": ""}, "implementation_plan"),
        ({"risk": "none"}, "risk"),
        ({"service_id": str(uuid.uuid4())}, "service_id"),
        ({"name": ""}, "name"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "service_desk_agent")

    def body(self, domain: str) -> dict[str, Any]:
        return {"domain": domain, "name": "Restart an app pool", "short_description": "Restart the IIS app pool",
                "risk": "low", **PLANS}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["domain"]


class TestChangeWindows(ResourceBattery):
    path = "/api/v1/change-windows"
    entity_type = "change_window"
    table = "gaas_change_mgmt.change_windows"
    history_resource = "change-windows"
    list_filter = "domain"
    update: ClassVar[dict[str, Any]] = {"name": "Sunday night (extended)", "end_at": "2026-07-05T06:00:00Z"}
    bad_inputs = [
        ({"end_at": "2026-07-04T01:00:00Z"}, "end_at"),
        ({"kind": "party"}, "kind"),
        ({"timezone": "Atlantis/Capital"}, "timezone"),
        ({"recurrence": "monthly"}, "recurrence"),
        ({"service_id": str(uuid.uuid4())}, "service_id"),
        ({"start_at": "2026-07-05T01:00:00"}, "start_at"),
        ({"recurrence": "daily", "end_at": "2026-07-07T01:00:00Z"}, "end_at"),
        ({"recurrence_until": "2026-01-01"}, "recurrence_until"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "service_desk_agent")

    def body(self, domain: str) -> dict[str, Any]:
        return {"domain": domain, "name": "Sunday night", "kind": "maintenance", "start_at": "2026-07-05T01:00:00Z",
                "end_at": "2026-07-05T05:00:00Z", "recurrence": "weekly", "timezone": "Europe/Paris"}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["domain"]


@pytest.fixture(scope="module")
def cab(world: World):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    return {"domain": domain, "admin": admin, "manager": world.user(domain, "change_manager"),
            "owner": world.user(domain, "service_owner"), "agent": world.user(domain, "service_desk_agent")}


def curl(change: dict) -> str:
    return f"/api/v1/changes/{change['id']}"


def make_change(client, who: Person, domain: str, **extra: Any) -> dict[str, Any]:
    body = {"domain": domain, "short_description": unique("Change "), "type": "normal", **extra}
    response = client.post("/api/v1/changes", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def move(client, who: Person, change: dict, *statuses: str, **extra: Any) -> dict:
    current = change
    for status in statuses:
        response = api_patch(client, who, curl(change), status=status, **extra)
        assert response.status_code == 200, response.text
        current = response.json()
    return current


# ---- the lifecycle by type ------------------------------------------------------------------------

def test_a_normal_change_from_draft_to_closed(client, database, cab):
    domain, owner, manager = cab["domain"], cab["owner"], cab["manager"]
    ci = api_ci(client, cab["admin"], domain)
    change = make_change(client, owner, domain, affected_cis=[ci["id"]], **window(), **PLANS)
    assert change["status"] == "draft" and change["approval_status"] is None
    assert change["requested_by"] == str(owner.id)
    submitted = move(client, owner, change, "submitted")  # the requester submits their own change
    assert submitted["approval_status"] == "pending" and submitted["conflicts"] == []
    assert_problem(api_patch(client, owner, curl(change), status="under_review"), 403)
    assert_problem(api_patch(client, manager, curl(change), status="approved"), 409, "status")
    move(client, manager, change, "under_review")
    request_id = rid()
    approved = client.patch(curl(change), json={"status": "approved", "approval_comment": "CAB 12 May: go",
                                                "version": submitted["version"] + 1},
                            headers={**manager.headers, "X-Request-ID": request_id})
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval_status"] == "approved"
    rows = audit_rows(database, request_id)
    assert [r["action"] for r in rows] == ["update", "approve"]
    assert rows[1]["changes"]["after"] == {"approval_status": "approved", "comment": "CAB 12 May: go"}
    events = database.owner_rows("SELECT event_type, payload FROM gaas_workflow.outbox_events "
                                 "WHERE request_id = :r", r=request_id)
    assert {e["event_type"] for e in events} == {"change.updated", "change.status_changed", "change.approved"}
    assert next(e for e in events if e["event_type"] == "change.approved")["payload"]["comment"] == "CAB 12 May: go"
    # the approved scope is frozen; the window may still move
    body = assert_problem(api_patch(client, manager, curl(change), affected_cis=[]), 409, "affected_cis")
    assert "planned_start" in body["errors"][0]["allowed"]
    scheduled = move(client, manager, change, "scheduled")
    assert_problem(api_patch(client, manager, curl(change), status="implemented"), 409, "status")
    implementing = move(client, manager, change, "implementing")
    assert implementing["actual_start"] is not None
    assert_problem(api_patch(client, manager, curl(change), status="implemented"), 422, "success")
    assert_problem(api_patch(client, manager, curl(change), status="implemented", success=True), 422,
                   "implementation_notes")
    done = move(client, manager, change, "implemented", success=True, implementation_notes="Patched 12 servers")
    assert done["actual_end"] >= done["actual_start"] and done["success"] is True
    closed = move(client, manager, change, "closed")
    assert closed["closed_by"] == str(manager.id) and closed["closed_at"]
    assert_problem(api_patch(client, manager, curl(change), status="cancelled"), 409)
    assert_problem(api_patch(client, manager, curl(change), description="late"), 409)
    assert scheduled["status"] == "scheduled"


def test_an_emergency_change_skips_review_but_needs_approval(client, cab):
    domain, manager = cab["domain"], cab["manager"]
    change = make_change(client, manager, domain, type="emergency", **window(days=0, hours=1), **PLANS)
    move(client, manager, change, "submitted")
    body = assert_problem(api_patch(client, manager, curl(change), status="under_review"), 409, "status")
    assert body["errors"][0]["allowed"] == ["approved", "cancelled", "rejected"]
    assert_problem(api_patch(client, manager, curl(change), status="scheduled"), 409, "status")
    assert move(client, manager, change, "approved", "scheduled", "implementing")["status"] == "implementing"
    # cancelling before it is implemented is allowed, even mid-implementation
    assert move(client, manager, change, "cancelled")["status"] == "cancelled"


def test_a_standard_change_is_pre_approved_and_inherits_its_template(client, cab):
    domain, admin, owner = cab["domain"], cab["admin"], cab["owner"]
    template = client.post("/api/v1/change-templates", json={
        "domain": domain, "name": "Certificate renewal", "short_description": "Renew a TLS certificate", **PLANS},
        headers=admin.headers).json()
    assert_problem(client.post("/api/v1/changes", json={"domain": domain, "short_description": "Renew",
                                                        "type": "standard", "template_id": template["id"],
                                                        "implementation_plan": "my own"},
                               headers=owner.headers), 422, "implementation_plan")
    change = make_change(client, owner, domain, type="standard", template_id=template["id"])
    assert {k: change[k] for k in PLANS} == PLANS and change["risk"] == "low"
    assert_problem(api_patch(client, owner, curl(change), status="submitted"), 409, "status")
    assert_problem(api_patch(client, owner, curl(change), status="scheduled"), 422, "planned_start")
    assert_problem(api_patch(client, owner, curl(change), test_plan="skip it"), 422, "test_plan")
    scheduled = api_patch(client, owner, curl(change), status="scheduled", **window(days=3)).json()
    assert (scheduled["status"], scheduled["approval_status"]) == ("scheduled", "approved")
    # a retired template takes no new changes
    api_patch(client, admin, f"/api/v1/change-templates/{template['id']}", active=False).raise_for_status()
    assert_problem(client.post("/api/v1/changes", json={"domain": domain, "short_description": "Renew",
                                                        "type": "standard", "template_id": template["id"]},
                               headers=owner.headers), 422, "template_id")


def test_rejected_returns_to_draft_for_rework_and_type_changes_only_in_draft(client, cab):
    domain, owner, manager = cab["domain"], cab["owner"], cab["manager"]
    change = make_change(client, owner, domain, **window(days=4), **PLANS)
    move(client, owner, change, "submitted")
    assert_problem(api_patch(client, owner, curl(change), type="emergency"), 409, "type")
    move(client, manager, change, "under_review")
    rejected = move(client, manager, change, "rejected", approval_comment="No rollback test")
    assert rejected["approval_status"] == "rejected"
    assert_problem(api_patch(client, owner, curl(change), rollback_plan="Tested restore"), 409, "rollback_plan")
    draft = move(client, owner, change, "draft")
    reworked = api_patch(client, owner, curl(change), rollback_plan="Tested restore", type="emergency").json()
    assert (draft["status"], reworked["type"]) == ("draft", "emergency")
    assert move(client, owner, change, "submitted")["approval_status"] == "pending"
    assert_problem(api_patch(client, owner, curl(change), approval_comment="ok"), 422, "approval_comment")


def test_submitting_needs_a_window_and_the_three_plans(client, cab):
    domain, owner = cab["domain"], cab["owner"]
    change = make_change(client, owner, domain)
    assert_problem(api_patch(client, owner, curl(change), status="submitted"), 422, "planned_start")
    api_patch(client, owner, curl(change), **window(days=5)).raise_for_status()
    for plan in PLANS:
        assert_problem(api_patch(client, owner, curl(change), status="submitted"), 422, plan)
        api_patch(client, owner, curl(change), **{plan: PLANS[plan]}).raise_for_status()
    assert api_patch(client, owner, curl(change), status="submitted").json()["status"] == "submitted"


def test_permissions_along_the_way(client, world, cab):
    domain, owner, agent = cab["domain"], cab["owner"], cab["agent"]
    change = make_change(client, owner, domain, **window(days=6), **PLANS)
    colleague = world.user(domain, "service_owner")
    assert_problem(api_patch(client, colleague, curl(change), description="mine now"), 403)
    assert_problem(client.post("/api/v1/changes", json={"domain": domain, "short_description": "x", "type": "normal"},
                               headers=world.user(domain, "auditor").headers), 403)
    move(client, owner, change, "submitted")
    body = assert_problem(api_patch(client, agent, curl(change), status="under_review"), 403)
    assert body["permission"] == "change.approve"


# ---- risk -------------------------------------------------------------------------------------------

def test_suggested_risk_comes_from_business_services_sla_and_failed_changes(client, cab):
    domain, admin, owner = cab["domain"], cab["admin"], cab["admin"]
    tops = [api_service(client, admin, domain, "business", sla_target=sla) for sla in ("99.95", "99.50", "99.00")]
    apps = [api_service(client, admin, domain, "technical", parent=t["id"]) for t in tops]
    switch = api_ci(client, admin, domain, "network_device", name=unique("core-sw-"))
    for app in apps:
        api_link(client, admin, api_ci(client, admin, domain, service_id=app["id"]), switch)
    quiet = api_ci(client, admin, domain)
    risky = make_change(client, owner, domain, affected_cis=[switch["id"]], risk="low")
    assert (risky["risk"], risky["suggested_risk"]) == ("low", "high")  # the requester's choice is kept
    reasons = {r["factor"]: r for r in risky["risk_reasons"]}
    assert reasons["business_services"]["value"] == 3 and reasons["business_services"]["points"] == 2
    assert reasons["sla_target"]["value"] == "99.95" and reasons["sla_target"]["points"] == 2
    assert reasons["recent_failed_changes"]["value"] == 0
    calm = make_change(client, owner, domain, affected_cis=[quiet["id"]])
    assert (calm["risk"], calm["suggested_risk"]) == ("low", "low")  # no risk given: the suggestion is taken
    # a failed change on the same CI raises the next one's risk
    failed = make_change(client, owner, domain, type="emergency", affected_cis=[quiet["id"]],
                         **window(days=0, hours=1), **PLANS)
    move(client, owner, failed, "submitted", "approved", "scheduled", "implementing")
    move(client, owner, failed, "implemented", success=False, implementation_notes="Rolled back")
    after = client.get(f"{curl(calm)}/risk", headers=owner.headers).json()
    failures = next(r for r in after["reasons"] if r["factor"] == "recent_failed_changes")
    assert failures["value"] == 1 and failed["number"] in failures["detail"]
    again = make_change(client, owner, domain, affected_cis=[quiet["id"], switch["id"]])
    assert again["suggested_risk"] == "high"
    # the stored suggestion follows the affected CIs
    moved = api_patch(client, owner, curl(risky), affected_cis=[quiet["id"]]).json()
    assert moved["suggested_risk"] == "low" and moved["risk"] == "low"


# ---- outcome and caused incidents -----------------------------------------------------------------

def test_a_failed_change_links_the_incidents_it_caused(client, database, cab):
    domain, manager, agent = cab["domain"], cab["manager"], cab["agent"]
    before = api_incident(client, agent, domain)
    change = make_change(client, manager, domain, type="emergency", **window(days=0, hours=1), **PLANS)
    move(client, manager, change, "submitted", "approved", "scheduled", "implementing")
    caused = api_incident(client, agent, domain, short_description="Portal 500s after the patch")
    assert_problem(client.post(f"{curl(change)}/incidents", json={"incident_id": caused["id"]},
                               headers=manager.headers), 409, "incident_id")
    move(client, manager, change, "implemented", success=False, implementation_notes="Rolled back after errors")
    assert_problem(client.post(f"{curl(change)}/incidents", json={"incident_id": before["id"]},
                               headers=manager.headers), 422, "incident_id")
    request_id = rid()
    linked = client.post(f"{curl(change)}/incidents", json={"incident_id": caused["id"]},
                         headers={**manager.headers, "X-Request-ID": request_id})
    assert linked.status_code == 204
    assert [r["action"] for r in audit_rows(database, request_id)] == ["link_incident"]
    assert_problem(client.post(f"{curl(change)}/incidents", json={"incident_id": caused["id"]},
                               headers=manager.headers), 409, "incident_id")
    listed = client.get(f"{curl(change)}/incidents", headers=manager.headers).json()
    assert [(i["incident_id"], i["number"]) for i in listed] == [(caused["id"], caused["number"])]
    assert client.delete(f"{curl(change)}/incidents/{caused['id']}", headers=manager.headers).status_code == 204
    assert client.get(f"{curl(change)}/incidents", headers=manager.headers).json() == []


# ---- the calendar ---------------------------------------------------------------------------------

def test_the_calendar_shows_planned_changes_and_window_occurrences(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    monday = (datetime.now(UTC) + timedelta(days=14)).replace(hour=0, minute=0, second=0, microsecond=0)
    monday -= timedelta(days=monday.weekday())
    client.post("/api/v1/change-windows", json={
        "domain": domain, "name": "Nightly", "kind": "maintenance", "start_at": iso(monday + timedelta(hours=1)),
        "end_at": iso(monday + timedelta(hours=5)), "recurrence": "daily"}, headers=admin.headers).raise_for_status()
    client.post("/api/v1/change-windows", json={
        "domain": domain, "name": "Election freeze", "kind": "blackout", "start_at": iso(monday + timedelta(days=5)),
        "end_at": iso(monday + timedelta(days=7))}, headers=admin.headers).raise_for_status()
    inside = {"planned_start": iso(monday + timedelta(days=1, hours=2)),
              "planned_end": iso(monday + timedelta(days=1, hours=3))}
    planned = make_change(client, admin, domain, **inside, **PLANS)
    move(client, admin, planned, "submitted")
    make_change(client, admin, domain, **inside, **PLANS)  # a draft is not on the calendar
    week = client.get("/api/v1/changes/calendar", params={"from": iso(monday), "to": iso(monday + timedelta(days=7)),
                                                          "domain": domain}, headers=admin.headers)
    assert week.status_code == 200, week.text
    body = week.json()
    assert [c["number"] for c in body["changes"]] == [planned["number"]]
    nightly = [w for w in body["windows"] if w["name"] == "Nightly"]
    assert len(nightly) == 7 and nightly[0]["start"] == iso(monday + timedelta(hours=1))
    assert [w["kind"] for w in body["windows"] if w["name"] == "Election freeze"] == ["blackout"]
    assert body["from"] == iso(monday) and body["truncated"] is False
    assert_problem(client.get("/api/v1/changes/calendar", params={"from": iso(monday), "to": iso(monday)},
                              headers=admin.headers), 422, "to")
    assert_problem(client.get("/api/v1/changes/calendar", params={"from": iso(monday),
                                                                  "to": iso(monday + timedelta(days=400))},
                              headers=admin.headers), 422, "to")
    assert_problem(client.get("/api/v1/changes/calendar", params={"to": iso(monday)}, headers=admin.headers), 422,
                   "from")
