"""Incidents and SLA policies through the battery, then the priority matrix and its override,
the lifecycle, assignment, references checked through their modules, events and isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.battery import ResourceBattery
from tests.support import (
    Person,
    World,
    api_ci,
    api_incident,
    api_patch,
    api_problem,
    api_service,
    assert_problem,
    audit_rows,
    rid,
    unique,
)

LEVELS = ["high", "medium", "low"]
PRIORITIES = ["critical", "high", "medium", "low"]
DEFAULT_MATRIX = {"high": {"high": "critical", "medium": "high", "low": "medium"},
                  "medium": {"high": "high", "medium": "medium", "low": "low"},
                  "low": {"high": "medium", "medium": "low", "low": "low"}}


class TestIncidents(ResourceBattery):
    path = "/api/v1/incidents"
    entity_type = "incident"
    table = "gaas_incident_mgmt.incidents"
    history_resource = "incidents"
    list_filter = "q"
    update: ClassVar[dict[str, Any]] = {"short_description": "Mail relay refuses connections", "category": "network"}
    bad_inputs = [
        ({"impact": "enormous"}, "impact"),
        ({"urgency": None}, "urgency"),
        ({"priority": "urgent"}, "priority"),
        ({"short_description": "x" * 201}, "short_description"),
        ({"short_description": ""}, "short_description"),
        ({"assigned_to": str(uuid.uuid4())}, "assigned_to"),
        ({"service_id": str(uuid.uuid4())}, "service_id"),
        ({"ci_id": str(uuid.uuid4())}, "ci_id"),
        ({"problem_id": str(uuid.uuid4())}, "problem_id"),
        ({"status": "resolved"}, "status"),
        ({"domain": "Not A Domain"}, "domain"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "auditor")

    def body(self, domain: str) -> dict[str, Any]:
        return {"domain": domain, "short_description": unique("Citizen portal slow "), "impact": "medium",
                "urgency": "high", "description": "Pages take 30 s to load", "category": "application"}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["short_description"]


class TestSlaPolicies(ResourceBattery):
    path = "/api/v1/sla-policies"
    entity_type = "sla_policy"
    table = "gaas_incident_mgmt.sla_policies"
    history_resource = "sla-policies"
    list_filter = "domain"
    update: ClassVar[dict[str, Any]] = {"name": "Gold high", "resolution_minutes": 360}
    bad_inputs = [
        ({"resolution_minutes": 0}, "resolution_minutes"),
        ({"priority": "urgent"}, "priority"),
        ({"business_timezone": "Mars/Olympus"}, "business_timezone"),
        ({"business_start": "18:00", "business_end": "08:00"}, "business_end"),
        ({"business_timezone": None}, "business_timezone"),
        ({"business_days": [8]}, "business_days.0"),
        ({"business_days": []}, "business_days"),
        ({"pause_on": ["lunch"]}, "pause_on.0"),
        ({"holidays": ["2026-02-30"]}, "holidays.0"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "service_desk_agent")

    def body(self, domain: str) -> dict[str, Any]:
        return {"domain": domain, "name": "Gold", "priority": "high", "resolution_minutes": 240,
                "business_timezone": "Europe/Paris", "business_start": "08:00:00", "business_end": "18:00:00",
                "business_days": [1, 2, 3, 4, 5], "holidays": ["2026-12-25"],
                "pause_on": ["awaiting_caller", "awaiting_vendor"]}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["domain"]


@pytest.fixture(scope="module")
def desk(world: World):
    domain = world.domain()
    return {"domain": domain, "admin": world.user(domain, "domain_admin"),
            "agent": world.user(domain, "service_desk_agent"), "owner": world.user(domain, "service_owner"),
            "auditor": world.user(domain, "auditor")}


def url(incident: dict) -> str:
    return f"/api/v1/incidents/{incident['id']}"


def outbox(database, entity_id: str) -> list[tuple[str, dict]]:
    rows = database.owner_rows("SELECT event_type, payload FROM gaas_workflow.outbox_events WHERE entity_id = :id "
                               "ORDER BY occurred_at", id=entity_id)
    return [(r["event_type"], r["payload"]) for r in rows]


# ---- the priority matrix -------------------------------------------------------------------------

@pytest.mark.parametrize("impact", LEVELS)
@pytest.mark.parametrize("urgency", LEVELS)
def test_default_matrix_gives_the_priority(client, desk, impact, urgency):
    incident = api_incident(client, desk["agent"], desk["domain"], impact=impact, urgency=urgency)
    assert incident["priority"] == DEFAULT_MATRIX[impact][urgency]
    assert incident["priority_overridden"] is False


matrices = st.fixed_dictionaries({i: st.fixed_dictionaries({u: st.sampled_from(PRIORITIES) for u in LEVELS})
                                  for i in LEVELS})


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(matrix=matrices, cells=st.lists(st.tuples(st.sampled_from(LEVELS), st.sampled_from(LEVELS)), min_size=1,
                                       max_size=3))
def test_a_domains_own_matrix_decides_priority_on_create_and_on_change(client, world, desk, matrix, cells):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    put = client.put("/api/v1/priority-matrix", params={"domain": domain}, json={"matrix": matrix},
                     headers=admin.headers)
    assert put.status_code == 200, put.text
    assert put.json()["inherited"] is False
    for impact, urgency in cells:
        incident = api_incident(client, admin, domain, impact=impact, urgency=urgency)
        assert incident["priority"] == matrix[impact][urgency]
        moved = api_patch(client, admin, url(incident), urgency=LEVELS[(LEVELS.index(urgency) + 1) % 3]).json()
        assert moved["priority"] == matrix[impact][moved["urgency"]]
    # other domains keep the default
    other = api_incident(client, desk["agent"], desk["domain"], impact="high", urgency="high")
    assert other["priority"] == "critical"


def test_matrix_edit_needs_sla_manage_and_resets_to_the_default(client, world, desk):
    domain, admin, agent = desk["domain"], desk["admin"], desk["agent"]
    current = client.get("/api/v1/priority-matrix", params={"domain": domain}, headers=agent.headers).json()
    assert current["inherited"] is True and current["matrix"] == DEFAULT_MATRIX
    everything_low = {i: dict.fromkeys(LEVELS, "low") for i in LEVELS}
    assert_problem(client.put("/api/v1/priority-matrix", params={"domain": domain}, json={"matrix": everything_low},
                              headers=agent.headers), 403)
    assert_problem(client.put("/api/v1/priority-matrix", params={"domain": domain},
                              json={"matrix": {**everything_low, "high": {"high": "urgent"}}},
                              headers=admin.headers), 422, "matrix.high.high")
    set_ = client.put("/api/v1/priority-matrix", params={"domain": domain}, json={"matrix": everything_low},
                      headers=admin.headers).json()
    assert api_incident(client, agent, domain, impact="high", urgency="high")["priority"] == "low"
    # a second edit must present the version
    assert_problem(client.put("/api/v1/priority-matrix", params={"domain": domain}, json={"matrix": DEFAULT_MATRIX},
                              headers=admin.headers), 409, "version")
    # the platform default is for global administrators only
    assert_problem(client.put("/api/v1/priority-matrix", json={"matrix": everything_low}, headers=admin.headers), 403)
    reset = client.delete("/api/v1/priority-matrix", params={"domain": domain},
                          headers={**admin.headers, "If-Match": f'"{set_["version"]}"'})
    assert reset.status_code == 200 and reset.json()["inherited"] is True
    assert api_incident(client, agent, domain, impact="high", urgency="high")["priority"] == "critical"
    stranger = world.user(world.domain(), "domain_admin")
    assert_problem(client.get("/api/v1/priority-matrix", params={"domain": domain}, headers=stranger.headers), 404)


def test_priority_override_needs_the_permission_and_is_audited(client, database, desk):
    domain, agent, admin = desk["domain"], desk["agent"], desk["admin"]
    assert_problem(client.post("/api/v1/incidents", json={"domain": domain, "short_description": "x",
                                                          "impact": "low", "urgency": "low", "priority": "critical"},
                               headers=agent.headers), 403)
    # choosing what the matrix says anyway is not an override
    same = api_incident(client, agent, domain, impact="low", urgency="low", priority="low")
    assert same["priority_overridden"] is False
    request_id = rid()
    response = client.post("/api/v1/incidents", json={"domain": domain, "short_description": "VIP laptop",
                                                      "impact": "low", "urgency": "low", "priority": "critical"},
                           headers={**admin.headers, "X-Request-ID": request_id})
    incident = response.json()
    assert (incident["priority"], incident["priority_overridden"]) == ("critical", True)
    rows = audit_rows(database, request_id)
    assert [r["action"] for r in rows] == ["create", "override_priority"]
    assert rows[1]["changes"] == {"before": {"priority": None}, "after": {"priority": "critical", "computed": "low"}}
    # an overridden priority survives impact/urgency changes...
    moved = api_patch(client, admin, url(incident), impact="high").json()
    assert (moved["priority"], moved["priority_overridden"]) == ("critical", True)
    # ...until someone returns it to the matrix (null), which is audited as an update
    request_id = rid()
    back = client.patch(url(incident), json={"priority": None, "version": moved["version"]},
                        headers={**admin.headers, "X-Request-ID": request_id}).json()
    assert (back["priority"], back["priority_overridden"]) == ("medium", False)
    rows = audit_rows(database, request_id)
    assert [r["action"] for r in rows] == ["update"]
    assert rows[0]["changes"]["before"]["priority"] == "critical"
    after = rows[0]["changes"]["after"]
    assert (after["priority"], after["priority_overridden"]) == ("medium", False)
    assert set(after) == {"priority", "priority_overridden", "sla_due", "sla_policy_id"}  # the SLA follows
    # overriding on update is audited with the computed value beside it
    request_id = rid()
    client.patch(url(incident), json={"priority": "low", "version": back["version"]},
                 headers={**admin.headers, "X-Request-ID": request_id}).raise_for_status()
    assert [r["action"] for r in audit_rows(database, request_id)] == ["update", "override_priority"]
    assert_problem(api_patch(client, agent, url(incident), priority="high"), 403)


# ---- the lifecycle ----------------------------------------------------------------------------------

def test_lifecycle_resolve_close_and_final_states(client, database, desk):
    domain, agent = desk["domain"], desk["agent"]
    incident = api_incident(client, agent, domain)
    body = assert_problem(api_patch(client, agent, url(incident), status="resolved"), 409, "status")
    assert body["errors"][0]["allowed"] == ["cancelled", "in_progress"]
    assert body["errors"][0]["type"] == "transition"
    assert api_patch(client, agent, url(incident), status="in_progress").json()["status"] == "in_progress"
    assert_problem(api_patch(client, agent, url(incident), status="resolved"), 422, "resolution_notes")
    assert_problem(api_patch(client, agent, url(incident), status="resolved", resolution_notes="   "), 422,
                   "resolution_notes")
    resolved = api_patch(client, agent, url(incident), status="resolved", resolution_notes="Restarted the pool").json()
    assert resolved["status"] == "resolved" and resolved["resolved_by"] == str(agent.id)
    assert resolved["resolved_at"] is not None and resolved["closed_at"] is None
    assert_problem(api_patch(client, agent, url(incident), resolution_notes=""), 422, "resolution_notes")
    closed = api_patch(client, agent, url(incident), status="closed").json()
    assert closed["closed_by"] == str(agent.id) and closed["closed_at"] is not None
    for change in ({"status": "in_progress"}, {"short_description": "late edit"}, {"status": "cancelled"}):
        body = assert_problem(api_patch(client, agent, url(incident), **change), 409)
        assert body["errors"][0]["allowed"] == []
    cancelled = api_incident(client, agent, domain)
    assert api_patch(client, agent, url(cancelled), status="cancelled").json()["status"] == "cancelled"
    assert_problem(api_patch(client, agent, url(cancelled), status="new"), 409, "status")
    events = [e for e, _ in outbox(database, incident["id"])]
    assert events.count("incident.status_changed") == 3 and events[0] == "incident.created"


def test_reopen_within_the_configured_days_only(client, database, desk):
    domain, agent = desk["domain"], desk["agent"]
    incident = api_incident(client, agent, domain)
    api_patch(client, agent, url(incident), status="in_progress").raise_for_status()
    api_patch(client, agent, url(incident), status="resolved", resolution_notes="Fixed").raise_for_status()
    reopened = api_patch(client, agent, url(incident), status="in_progress").json()
    assert reopened["status"] == "in_progress" and reopened["resolved_at"] is None and reopened["resolved_by"] is None
    api_patch(client, agent, url(incident), status="resolved", resolution_notes="Fixed again").raise_for_status()
    with database.owner_engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE gaas_incident_mgmt.incidents SET resolved_at = now() - interval '8 days' "
                          "WHERE id = :id"), {"id": incident["id"]})
    body = assert_problem(api_patch(client, agent, url(incident), status="in_progress"), 409, "status")
    assert body["errors"][0]["type"] == "reopen_expired" and "7 days" in body["detail"]
    assert api_patch(client, agent, url(incident), status="closed").json()["status"] == "closed"


def test_resolving_needs_the_resolve_permission(client, world, desk):
    domain = desk["domain"]
    editor = world.user(domain)
    role = client.post("/api/v1/roles", json={"name": unique("editor_"), "domain": domain,
                                              "permissions": ["incident.view", "incident.create", "incident.edit"]},
                       headers=desk["admin"].headers).json()
    domain_id = client.get("/api/v1/domains", params={"q": domain}, headers=desk["admin"].headers).json()["items"][0]
    client.post(f"/api/v1/users/{editor.id}/roles", json={"role_id": role["id"], "scope_type": "domain",
                                                          "scope_id": domain_id["id"]},
                headers=desk["admin"].headers).raise_for_status()
    incident = api_incident(client, editor, domain)
    api_patch(client, editor, url(incident), status="in_progress").raise_for_status()
    body = assert_problem(api_patch(client, editor, url(incident), status="resolved", resolution_notes="n"), 403)
    assert body["permission"] == "incident.resolve"
    assert_problem(api_patch(client, editor, url(incident), assigned_group="L2"), 403)


def test_hold_only_while_in_progress(client, desk):
    domain, agent = desk["domain"], desk["agent"]
    incident = api_incident(client, agent, domain)
    assert_problem(api_patch(client, agent, url(incident), hold_reason="awaiting_caller"), 409, "hold_reason")
    held = api_patch(client, agent, url(incident), status="in_progress", hold_reason="awaiting_vendor").json()
    assert held["hold_reason"] == "awaiting_vendor"
    resolved = api_patch(client, agent, url(incident), status="resolved", resolution_notes="Vendor patched").json()
    assert resolved["hold_reason"] is None
    assert_problem(api_patch(client, agent, url(incident), hold_reason="not-a-reason"), 422, "hold_reason")


# ---- assignment and references ------------------------------------------------------------------------

def test_assignment_checks_the_user_and_emits_assigned(client, database, world, desk):
    domain, agent = desk["domain"], desk["agent"]
    colleague = world.user(domain, "service_desk_agent")
    outsider = world.user(world.domain(), "service_desk_agent")
    incident = api_incident(client, agent, domain)
    assert_problem(api_patch(client, agent, url(incident), assigned_to=str(outsider.id)), 422, "assigned_to")
    assigned = api_patch(client, agent, url(incident), assigned_to=str(colleague.id),
                         assigned_group="L2-Network").json()
    assert (assigned["assigned_to"], assigned["assigned_group"]) == (str(colleague.id), "L2-Network")
    events = dict(outbox(database, incident["id"]))
    assert events["incident.assigned"]["assigned_to"] == str(colleague.id)
    assert events["incident.assigned"]["previous_assigned_to"] is None
    # a reporter without incident.assign cannot assign at creation
    assert_problem(client.post("/api/v1/incidents", json={"domain": domain, "short_description": "x", "impact": "low",
                                                          "urgency": "low", "assigned_group": "L1"},
                               headers=desk["owner"].headers), 403)
    mine = client.get("/api/v1/incidents", params={"assigned_to": "me", "open": "true"},
                      headers=colleague.headers).json()["items"]
    assert [i["id"] for i in mine] == [incident["id"]]
    assert_problem(client.get("/api/v1/incidents", params={"assigned_to": "someone"}, headers=agent.headers), 422,
                   "assigned_to")


def test_service_and_ci_references_are_checked_through_their_modules(client, world, desk):
    domain, admin = desk["domain"], desk["admin"]
    service = api_service(client, admin, domain)
    ci = api_ci(client, admin, domain, service_id=service["id"])
    shared = api_ci(client, world.admin(), None, name=unique("shared-dns-"))
    other = world.domain()
    other_admin = world.user(other, "domain_admin")
    foreign_service = api_service(client, other_admin, other)
    foreign_ci = api_ci(client, other_admin, other)
    incident = api_incident(client, admin, domain, service_id=service["id"], ci_id=ci["id"])
    assert (incident["service_id"], incident["ci_id"]) == (service["id"], ci["id"])
    assert api_incident(client, admin, domain, ci_id=shared["id"])["ci_id"] == shared["id"]
    assert_problem(api_patch(client, admin, url(incident), service_id=foreign_service["id"]), 422, "service_id")
    assert_problem(api_patch(client, admin, url(incident), ci_id=foreign_ci["id"]), 422, "ci_id")
    listed = client.get("/api/v1/incidents", params={"service": service["id"]}, headers=admin.headers).json()["items"]
    assert [i["id"] for i in listed] == [incident["id"]]
    problem = api_problem(client, admin, domain)
    linked = api_patch(client, admin, url(incident), problem_id=problem["id"]).json()
    assert linked["problem_id"] == problem["id"] and linked["known_error"] is None


# ---- isolation, listing -----------------------------------------------------------------------------

def test_incidents_are_isolated_by_row_level_security(database, client, world, desk):
    incident = api_incident(client, desk["agent"], desk["domain"])
    other = world.domain()
    stranger = world.user(other, "service_desk_agent")
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                     (str(stranger.id), other))
        assert conn.execute("SELECT count(*) FROM gaas_incident_mgmt.incidents WHERE id = %s",
                            (incident["id"],)).fetchone()[0] == 0
        updated = conn.execute("UPDATE gaas_incident_mgmt.incidents SET short_description = 'x' WHERE id = %s",
                               (incident["id"],)).rowcount
        assert updated == 0
        conn.rollback()
    with database.psycopg_app() as conn:  # no context at all: nothing
        assert conn.execute("SELECT count(*) FROM gaas_incident_mgmt.incidents").fetchone()[0] == 0


def test_list_filters_sorts_and_pages(client, world):
    domain = world.domain()
    agent = world.user(domain, "service_desk_agent")
    made = [api_incident(client, agent, domain, impact=i, urgency="high") for i in LEVELS for _ in range(2)]
    by_priority = client.get("/api/v1/incidents", params={"domain": domain, "sort": "priority", "limit": 4},
                             headers=agent.headers).json()
    rest = client.get("/api/v1/incidents", params={"domain": domain, "sort": "priority", "limit": 4,
                                                   "cursor": by_priority["next_cursor"]}, headers=agent.headers).json()
    priorities = [i["priority"] for i in by_priority["items"] + rest["items"]]
    assert priorities == ["critical", "critical", "high", "high", "medium", "medium"]
    assert rest["next_cursor"] is None
    only = client.get("/api/v1/incidents", params={"domain": domain, "priority": "high"}, headers=agent.headers).json()
    assert {i["id"] for i in only["items"]} == {made[2]["id"], made[3]["id"]}
    status = client.get("/api/v1/incidents", params={"domain": domain, "status": ["new", "cancelled"]},
                        headers=agent.headers).json()
    assert len(status["items"]) == 6
    assert_problem(client.get("/api/v1/incidents", params={"sort": "colour"}, headers=agent.headers), 422, "sort")


def test_timestamps_are_utc_and_sla_due_is_set(client, desk):
    incident = api_incident(client, desk["agent"], desk["domain"], impact="high", urgency="high")
    created = datetime.fromisoformat(incident["created_at"])
    due = datetime.fromisoformat(incident["sla_due"])
    assert created.utcoffset() == timedelta(0) and due - created == timedelta(hours=4)
    assert incident["sla_breached"] is False and incident["sla_policy_id"] is not None
    assert datetime.now(UTC) - created < timedelta(minutes=5)


def test_bulk_creation_is_all_or_nothing_and_audited_per_incident(client, database, world, desk):
    domain, agent = desk["domain"], desk["agent"]
    service = api_service(client, desk["admin"], domain)
    items = [{"domain": domain, "short_description": f"Monitoring alert {i}", "impact": "high",
              "urgency": LEVELS[i % 3], "service_id": service["id"], "assigned_group": "NOC"} for i in range(5)]
    bad = [*items[:2], {**items[2], "assigned_to": str(world.user(world.domain()).id)}, {**items[3], "impact": "x"}]
    request_id = rid()
    refused = client.post("/api/v1/incidents/bulk", json={"items": bad},
                          headers={**agent.headers, "X-Request-ID": request_id})
    assert_problem(refused, 422, "items.3.impact")
    request_id = rid()
    refused = client.post("/api/v1/incidents/bulk", json={"items": bad[:3]},
                          headers={**agent.headers, "X-Request-ID": request_id})
    assert_problem(refused, 422, "items.2.assigned_to")
    assert audit_rows(database, request_id) == []
    request_id = rid()
    created = client.post("/api/v1/incidents/bulk", json={"items": items},
                          headers={**agent.headers, "X-Request-ID": request_id})
    assert created.status_code == 201, created.text
    made = created.json()
    assert [m["priority"] for m in made] == [DEFAULT_MATRIX["high"][LEVELS[i % 3]] for i in range(5)]
    assert len({m["number"] for m in made}) == 5 and all(m["sla_due"] for m in made)
    rows = audit_rows(database, request_id)
    assert sorted(str(r["entity_id"]) for r in rows) == sorted(m["id"] for m in made)
    assert {r["action"] for r in rows} == {"create"}
    events = database.owner_rows("SELECT event_type, count(*) AS n FROM gaas_workflow.outbox_events "
                                 "WHERE request_id = :r GROUP BY 1", r=request_id)
    assert {e["event_type"]: e["n"] for e in events} == {"incident.created": 5, "incident.assigned": 5}
    assert_problem(client.post("/api/v1/incidents/bulk", json={"items": items[:1]}, headers=desk["auditor"].headers),
                   403)
    assert_problem(client.post("/api/v1/incidents/bulk", json={"items": []}, headers=agent.headers), 422, "items")
