"""Problems through the battery, then the problem manager's lifecycle, known errors shown on their
incidents, linking, and resolving the linked incidents with the problem."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest

from tests.battery import ResourceBattery
from tests.support import (
    Person,
    World,
    api_incident,
    api_patch,
    api_problem,
    assert_problem,
    audit_rows,
    rid,
    unique,
)


class TestProblems(ResourceBattery):
    path = "/api/v1/problems"
    entity_type = "problem"
    table = "gaas_incident_mgmt.problems"
    history_resource = "problems"
    list_filter = "q"
    update: ClassVar[dict[str, Any]] = {"short_description": "Memory leak in the portal", "assigned_group": "L3-App"}
    bad_inputs = [
        ({"priority": "whenever"}, "priority"),
        ({"short_description": "x" * 201}, "short_description"),
        ({"assigned_to": str(uuid.uuid4())}, "assigned_to"),
        ({"service_id": str(uuid.uuid4())}, "service_id"),
        ({"ci_id": str(uuid.uuid4())}, "ci_id"),
        ({"status": "resolved"}, "status"),
        ({"root_cause": 42}, "root_cause"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "auditor")

    def body(self, domain: str) -> dict[str, Any]:
        return {"domain": domain, "short_description": unique("Portal outages every Monday "), "priority": "high",
                "description": "Five incidents in a month", "assigned_group": "L2-App"}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["short_description"]


@pytest.fixture(scope="module")
def team(world: World):
    domain = world.domain()
    return {"domain": domain, "agent": world.user(domain, "service_desk_agent"),
            "manager": world.user(domain, "domain_admin")}


def purl(problem: dict) -> str:
    return f"/api/v1/problems/{problem['id']}"


def iurl(incident: dict) -> str:
    return f"/api/v1/incidents/{incident['id']}"


def test_lifecycle_needs_root_cause_then_permanent_fix(client, team):
    agent = team["agent"]
    problem = api_problem(client, agent, team["domain"])
    body = assert_problem(api_patch(client, agent, purl(problem), status="resolved"), 409, "status")
    assert body["errors"][0]["allowed"] == ["investigating", "root_cause_found"]
    assert api_patch(client, agent, purl(problem), status="investigating").json()["status"] == "investigating"
    assert_problem(api_patch(client, agent, purl(problem), status="root_cause_found"), 422, "root_cause")
    found = api_patch(client, agent, purl(problem), status="root_cause_found",
                      root_cause="Connection pool too small").json()
    assert found["status"] == "root_cause_found"
    assert_problem(api_patch(client, agent, purl(problem), root_cause="  "), 422, "root_cause")
    api_patch(client, agent, purl(problem), status="fix_in_progress").raise_for_status()
    assert_problem(api_patch(client, agent, purl(problem), status="resolved"), 422, "permanent_fix")
    resolved = api_patch(client, agent, purl(problem), status="resolved", permanent_fix="Pool sized to load").json()
    assert resolved["resolved_by"] == str(agent.id) and resolved["resolved_at"]
    # the fix did not hold: back to work, the resolution stamps go
    again = api_patch(client, agent, purl(problem), status="fix_in_progress").json()
    assert again["resolved_at"] is None and again["resolved_by"] is None
    api_patch(client, agent, purl(problem), status="resolved").raise_for_status()
    closed = api_patch(client, agent, purl(problem), status="closed").json()
    assert closed["closed_by"] == str(agent.id)
    assert_problem(api_patch(client, agent, purl(problem), short_description="late"), 409)
    assert_problem(api_patch(client, agent, purl(problem), status="fix_in_progress"), 409, "status")


def test_a_workaround_makes_a_known_error_shown_on_every_linked_incident(client, database, team):
    agent, domain = team["agent"], team["domain"]
    problem = api_problem(client, agent, domain)
    first = api_incident(client, agent, domain, problem_id=problem["id"])
    second = api_incident(client, agent, domain)
    linked = client.post(f"{purl(problem)}/incidents", json={"incident_id": second["id"]}, headers=agent.headers)
    assert linked.status_code == 201 and linked.json()["problem_id"] == problem["id"]
    assert_problem(client.post(f"{purl(problem)}/incidents", json={"incident_id": second["id"]},
                               headers=agent.headers), 409, "incident_id")
    assert client.get(iurl(first), headers=agent.headers).json()["known_error"] is None
    assert client.get(purl(problem), headers=agent.headers).json()["known_error"] is False
    request_id = rid()
    known = client.patch(purl(problem), json={"workaround": "Restart the app pool at 07:00", "version": 1},
                         headers={**agent.headers, "X-Request-ID": request_id}).json()
    assert known["known_error"] is True and known["open_incidents"] == 2
    events = database.owner_rows("SELECT event_type FROM gaas_workflow.outbox_events WHERE request_id = :r",
                                 r=request_id)
    assert {e["event_type"] for e in events} == {"problem.updated", "problem.known_error"}
    for incident in (first, second):
        shown = client.get(iurl(incident), headers=agent.headers).json()["known_error"]
        assert shown == {"problem_id": problem["id"], "number": problem["number"],
                         "workaround": "Restart the app pool at 07:00"}
    listed = client.get("/api/v1/problems/" + problem["id"] + "/incidents", headers=agent.headers).json()["items"]
    assert {i["id"] for i in listed} == {first["id"], second["id"]}
    assert all(i["known_error"] for i in listed)
    known_errors = client.get("/api/v1/problems", params={"domain": domain, "known_error": "true"},
                              headers=agent.headers).json()["items"]
    assert problem["id"] in {p["id"] for p in known_errors}
    assert client.delete(f"{purl(problem)}/incidents/{second['id']}", headers=agent.headers).status_code == 204
    assert client.get(iurl(second), headers=agent.headers).json()["known_error"] is None
    assert_problem(client.delete(f"{purl(problem)}/incidents/{second['id']}", headers=agent.headers), 404)


def test_resolving_a_problem_resolves_its_open_incidents_in_the_same_transaction(client, database, world, team):
    agent, domain = team["agent"], team["domain"]
    problem = api_problem(client, agent, domain, root_cause="Disk full on the log server")
    fresh = api_incident(client, agent, domain, problem_id=problem["id"])
    working = api_incident(client, agent, domain, problem_id=problem["id"])
    api_patch(client, agent, iurl(working), status="in_progress", hold_reason="awaiting_problem").raise_for_status()
    done = api_incident(client, agent, domain, problem_id=problem["id"])
    api_patch(client, agent, iurl(done), status="in_progress").raise_for_status()
    api_patch(client, agent, iurl(done), status="resolved", resolution_notes="Freed space by hand").raise_for_status()
    for status in ("root_cause_found", "fix_in_progress"):
        api_patch(client, agent, purl(problem), status=status).raise_for_status()
    assert client.get(purl(problem), headers=agent.headers).json()["open_incidents"] == 2
    assert_problem(api_patch(client, agent, purl(problem), resolve_incidents=True), 422, "resolve_incidents")

    # someone without incident rights cannot take the incidents along: nothing at all changes
    problem_only = world.user(domain)
    role = client.post("/api/v1/roles", json={"name": unique("problems_"), "domain": domain,
                                              "permissions": ["problem.view", "problem.manage", "incident.view"]},
                       headers=team["manager"].headers).json()
    domain_id = client.get("/api/v1/domains", params={"q": domain}, headers=team["manager"].headers).json()["items"]
    client.post(f"/api/v1/users/{problem_only.id}/roles", json={"role_id": role["id"], "scope_type": "domain",
                                                                "scope_id": domain_id[0]["id"]},
                headers=team["manager"].headers).raise_for_status()
    before = client.get(purl(problem), headers=agent.headers).json()
    request_id = rid()
    refused = client.patch(purl(problem), json={"status": "resolved", "permanent_fix": "Log rotation",
                                                "resolve_incidents": True, "version": before["version"]},
                           headers={**problem_only.headers, "X-Request-ID": request_id})
    assert_problem(refused, 403)
    assert client.get(purl(problem), headers=agent.headers).json() == before
    assert audit_rows(database, request_id) == []

    request_id = rid()
    resolved = client.patch(purl(problem), json={"status": "resolved", "permanent_fix": "Log rotation",
                                                 "resolve_incidents": True, "version": before["version"]},
                            headers={**agent.headers, "X-Request-ID": request_id}).json()
    assert resolved["status"] == "resolved"
    assert sorted(resolved["resolved_incidents"]) == sorted([fresh["number"], working["number"]])
    assert resolved["open_incidents"] == 0
    for incident in (fresh, working):
        now = client.get(iurl(incident), headers=agent.headers).json()
        assert now["status"] == "resolved" and now["hold_reason"] is None
        assert now["resolution_notes"] == f"Resolved with problem {problem['number']}: Log rotation"
    assert client.get(iurl(done), headers=agent.headers).json()["resolution_notes"] == "Freed space by hand"
    rows = audit_rows(database, request_id)
    assert {r["request_id"] for r in rows} == {request_id}
    assert [r["entity_type"] for r in rows].count("incident") == 3  # new → in_progress → resolved, and one more
    # Once resolved, the offer is over: asking again is refused (it would depend on who asks) and changes nothing.
    current = client.get(purl(problem), headers=agent.headers).json()
    again = client.patch(purl(problem), json={"status": "resolved", "resolve_incidents": True,
                                              "version": current["version"]}, headers=agent.headers)
    assert_problem(again, 422, "resolve_incidents")
    assert client.get(purl(problem), headers=agent.headers).json() == current


def test_links_stay_within_the_domain_and_closed_problems_take_no_incidents(client, world, team):
    agent, domain = team["agent"], team["domain"]
    other = world.domain()
    foreign = api_incident(client, world.user(other, "service_desk_agent"), other)
    problem = api_problem(client, agent, domain, root_cause="r", permanent_fix="f")
    assert_problem(client.post(f"{purl(problem)}/incidents", json={"incident_id": foreign["id"]},
                               headers=agent.headers), 422, "incident_id")
    for status in ("root_cause_found", "fix_in_progress", "resolved", "closed"):
        api_patch(client, agent, purl(problem), status=status).raise_for_status()
    incident = api_incident(client, agent, domain)
    assert_problem(client.post(f"{purl(problem)}/incidents", json={"incident_id": incident["id"]},
                               headers=agent.headers), 422, "problem_id")
    assert_problem(client.post("/api/v1/incidents", json={"domain": domain, "short_description": "x", "impact": "low",
                                                          "urgency": "low", "problem_id": problem["id"]},
                               headers=agent.headers), 422, "problem_id")
    # a closed incident can still be linked to an open problem (problem analysis collects history)
    open_problem = api_problem(client, agent, domain)
    api_patch(client, agent, iurl(incident), status="cancelled").raise_for_status()
    linked = client.post(f"/api/v1/problems/{open_problem['id']}/incidents", json={"incident_id": incident["id"]},
                         headers=agent.headers)
    assert linked.status_code == 201 and linked.json()["status"] == "cancelled"
