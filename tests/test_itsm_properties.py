"""Property-based tests: random sequences of API calls over incidents, problems and changes never
reach a state or field combination the rules forbid, and every refused call changes nothing (the
records, their audit rows and their events are exactly as before). The server never answers 5xx
(StrictClient fails the test on the spot)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from gaas.changes.service import TRANSITIONS as CHANGE_TRANSITIONS
from gaas.incidents.problems import TRANSITIONS as PROBLEM_TRANSITIONS
from gaas.incidents.service import TRANSITIONS as INCIDENT_TRANSITIONS
from tests.support import World, api_ci, api_incident, api_problem

PROPERTY_SETTINGS = settings(max_examples=20, deadline=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MATRIX = {"high": {"high": "critical", "medium": "high", "low": "medium"},
          "medium": {"high": "high", "medium": "medium", "low": "low"},
          "low": {"high": "medium", "medium": "low", "low": "low"}}
LEVELS = ["high", "medium", "low"]
TEXTS = st.sampled_from([None, "", "   ", "Done: restarted the service"])


@pytest.fixture(scope="module")
def desk(world: World, client):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    agent = world.user(domain, "service_desk_agent")
    outsider = world.user(world.domain(), "service_desk_agent")
    cis = [api_ci(client, admin, domain, name=f"prop-ci-{i}-{uuid.uuid4().hex[:6]}") for i in range(3)]
    return {"domain": domain, "admin": admin, "agent": agent, "outsider": outsider, "cis": cis,
            "problem": api_problem(client, admin, domain)}


@pytest.fixture(scope="module")
def owner(database):
    """One owner connection (it bypasses row-level security) reading committed state."""
    with database.owner_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


def snapshot(owner, table: str, ids: list[str]) -> tuple:
    """The rows as stored, and how many audit rows and events exist for them, in one query."""
    result = owner.execute(text(f"""
        SELECT (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY t.id), '[]') FROM {table} t
                WHERE t.id = ANY(CAST(:ids AS uuid[]))) AS rows,
               (SELECT count(*) FROM gaas_audit.audit_log WHERE entity_id = ANY(CAST(:ids AS uuid[]))) AS audits,
               (SELECT count(*) FROM gaas_workflow.outbox_events
                WHERE entity_id = ANY(CAST(:ids AS uuid[]))) AS events"""), {"ids": ids}).one()
    return result.rows, result.audits, result.events


def row(owner, table: str, record_id: str) -> dict[str, Any]:
    return owner.execute(text(f"SELECT to_jsonb(t) FROM {table} t WHERE id = :id"), {"id": record_id}).scalar_one()


def pick(moves, index: int, current: str) -> str:
    """One allowed move: mostly the first onward one (index 0-1), sometimes another (2), giving up
    (cancelled) only on 3, so that sequences get somewhere."""
    onward = sorted(m for m in moves if m != "cancelled")
    if (index == 3 and "cancelled" in moves) or not onward:
        return "cancelled" if "cancelled" in moves else current
    return onward[-1] if index == 2 else onward[0]


def blank(value: str | None) -> bool:
    return value is None or not value.strip()


def call(client, method: str, url: str, who, body: dict | None = None):
    response = client.request(method, url, json=body, headers=who.headers)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response


# ---- incidents ------------------------------------------------------------------------------------

incident_ops = st.one_of(
    *[st.tuples(st.just("advance"), st.integers(0, 3), st.just("Fixed it"))] * 4,
    st.tuples(st.just("status"), st.sampled_from(["new", "in_progress", "resolved", "closed", "cancelled"]), TEXTS),
    st.tuples(st.just("hold"), st.sampled_from([None, "awaiting_caller", "awaiting_vendor", "awaiting_change"])),
    st.tuples(st.just("grade"), st.sampled_from(LEVELS), st.sampled_from(LEVELS)),
    st.tuples(st.just("priority"), st.sampled_from([None, "critical", "high", "medium", "low"]), st.booleans()),
    st.tuples(st.just("assign"), st.sampled_from(["agent", "outsider", None])),
    st.tuples(st.just("problem"), st.sampled_from(["ours", "unknown", None])),
    st.tuples(st.just("notes"), TEXTS),
    st.tuples(st.just("stale"), st.just(None)),
    st.tuples(st.just("delete"), st.booleans()),
    # steer towards the deeper states: one of the moves allowed from where the incident is
    st.tuples(st.just("advance"), st.integers(0, 3), TEXTS),
)


def check_incident(inc: dict, desk) -> None:
    status = inc["status"]
    if status in ("resolved", "closed"):
        assert not blank(inc["resolution_notes"]) and inc["resolved_at"] and inc["resolved_by"]
    else:
        assert inc["resolved_at"] is None
    assert (status == "closed") == (inc["closed_at"] is not None and inc["closed_by"] is not None)
    assert inc["hold_reason"] is None or status == "in_progress"
    if inc["sla_paused_at"] is not None:
        assert inc["hold_reason"] == "awaiting_caller" and inc["sla_due"] is None
    elif status in ("new", "in_progress"):
        assert inc["sla_due"] is not None
    computed = MATRIX[inc["impact"]][inc["urgency"]]
    assert (inc["priority"] == computed) != inc["priority_overridden"]
    assert inc["assigned_to"] in (None, str(desk["agent"].id))
    assert inc["problem_id"] in (None, desk["problem"]["id"])
    assert inc["sla_breached"] is False and inc["sla_paused_seconds"] >= 0


@PROPERTY_SETTINGS
@given(ops=st.lists(incident_ops, min_size=4, max_size=14))
def test_no_sequence_of_incident_calls_breaks_the_rules(client, owner, desk, ops):
    table = "gaas_incident_mgmt.incidents"
    incident = api_incident(client, desk["agent"], desk["domain"])
    url = f"/api/v1/incidents/{incident['id']}"
    ids = [incident["id"], desk["problem"]["id"]]
    for op in ops:
        before = row(owner, table, incident["id"])
        snap = snapshot(owner, table, ids)
        who, method, body = desk["agent"], "PATCH", {"version": before["version"]}
        kind = op[0]
        if kind == "status":
            body.update(status=op[1], **({"resolution_notes": op[2]} if op[2] is not None else {}))
        elif kind == "hold":
            body["hold_reason"] = op[1]
        elif kind == "grade":
            body.update(impact=op[1], urgency=op[2])
        elif kind == "priority":
            body["priority"] = op[1]
            who = desk["admin"] if op[2] else desk["agent"]  # the agent may not override
        elif kind == "assign":
            body["assigned_to"] = str(desk[op[1]].id) if op[1] else None
        elif kind == "problem":
            body["problem_id"] = {"ours": desk["problem"]["id"], "unknown": str(uuid.uuid4()), None: None}[op[1]]
        elif kind == "notes":
            body["resolution_notes"] = op[1]
        elif kind == "stale":
            body = {"short_description": "stale edit", "version": before["version"] - 1}
        elif kind == "delete":
            who, method, body = desk["admin"], "DELETE" if op[1] else "POST", None
            url_for = url if op[1] else f"{url}/restore"
        elif kind == "advance":
            body.update(status=pick(INCIDENT_TRANSITIONS[before["status"]], op[1], before["status"]),
                        resolution_notes=op[2] or "Fixed it")
        response = call(client, method, url_for if kind == "delete" else url, who, body)
        after = row(owner, table, incident["id"])
        if response.status_code >= 400:
            assert snapshot(owner, table, ids) == snap, (op, response.text)
            continue
        check_incident(after, desk)
        event(f"incident reached {after['status']}")
        allowed = INCIDENT_TRANSITIONS[before["status"]] | {before["status"]}
        assert after["status"] in allowed, (before["status"], after["status"])
        assert after["version"] in (before["version"], before["version"] + 1)
        if before["status"] in ("closed", "cancelled"):  # a record now: only its problem link and deletion move
            bookkeeping = ("problem_id", "version", "updated_at", "updated_by", "deleted_at")
            assert {k: v for k, v in after.items() if k not in bookkeeping} \
                == {k: v for k, v in before.items() if k not in bookkeeping}


# ---- problems -------------------------------------------------------------------------------------

problem_ops = st.one_of(
    *[st.tuples(st.just("advance"), st.integers(0, 3), st.booleans(), st.booleans())] * 3,
    st.tuples(st.just("status"), st.sampled_from(["new", "investigating", "root_cause_found", "fix_in_progress",
                                                 "resolved", "closed"]), st.booleans()),
    st.tuples(st.just("root_cause"), TEXTS),
    st.tuples(st.just("permanent_fix"), TEXTS),
    st.tuples(st.just("workaround"), TEXTS),
    st.tuples(st.just("link"), st.booleans()),
    st.tuples(st.just("incident"), st.sampled_from(["in_progress", "cancelled"])),
)


@settings(PROPERTY_SETTINGS, max_examples=25)
@given(ops=st.lists(problem_ops, min_size=4, max_size=16))
def test_no_sequence_of_problem_calls_breaks_the_rules(client, owner, desk, ops):
    table = "gaas_incident_mgmt.problems"
    agent, domain = desk["agent"], desk["domain"]
    problem = api_problem(client, agent, domain)
    url = f"/api/v1/problems/{problem['id']}"
    incidents = [api_incident(client, agent, domain, problem_id=problem["id"]) for _ in range(2)]
    ids = [problem["id"], *(i["id"] for i in incidents)]
    for op in ops:
        before = row(owner, table, problem["id"])
        snap = snapshot(owner, "gaas_incident_mgmt.incidents", ids[1:]), snapshot(owner, table, ids[:1])
        kind = op[0]
        if kind == "link":
            target = incidents[0]
            response = call(client, "POST" if op[1] else "DELETE",
                            f"{url}/incidents" + ("" if op[1] else f"/{target['id']}"), agent,
                            {"incident_id": target["id"]} if op[1] else None)
        elif kind == "incident":
            current = row(owner, "gaas_incident_mgmt.incidents", incidents[1]["id"])
            response = call(client, "PATCH", f"/api/v1/incidents/{incidents[1]['id']}", agent,
                            {"status": op[1], "version": current["version"]})
        elif kind == "advance":
            body = {"version": before["version"], "status": pick(PROBLEM_TRANSITIONS[before["status"]], op[1],
                                                                 before["status"]),
                    "root_cause": "Pool too small", "permanent_fix": "Bigger pool"}
            if op[2] and body["status"] == "resolved":
                body["resolve_incidents"] = True
            if op[3]:
                body.pop("permanent_fix")
            response = call(client, "PATCH", url, agent, body)
        else:
            body: dict[str, Any] = {"version": before["version"]}
            if kind == "status":
                body["status"] = op[1]
                if op[2]:
                    body["resolve_incidents"] = True
            else:
                body[kind] = op[1]
            response = call(client, "PATCH", url, agent, body)
        after = row(owner, table, problem["id"])
        if response.status_code >= 400:
            assert (snapshot(owner, "gaas_incident_mgmt.incidents", ids[1:]),
                    snapshot(owner, table, ids[:1])) == snap, (op, response.text)
            event(f"problem refused {kind} {response.status_code} {response.json()['detail'][:40]}")
            continue
        status = after["status"]
        event(f"problem reached {status}")
        assert status in PROBLEM_TRANSITIONS[before["status"]] | {before["status"]}
        if status in ("root_cause_found", "fix_in_progress", "resolved", "closed"):
            assert not blank(after["root_cause"])
        if status in ("resolved", "closed"):
            assert not blank(after["permanent_fix"]) and after["resolved_at"] and after["resolved_by"]
        else:
            assert after["resolved_at"] is None
        assert (status == "closed") == (after["closed_at"] is not None)
        if kind == "status" and op[2] and status == "resolved":
            linked = owner.execute(text("SELECT status::text FROM gaas_incident_mgmt.incidents "
                                        "WHERE problem_id = :p"), {"p": problem["id"]}).scalars().all()
            assert all(status not in ("new", "in_progress") for status in linked)
        if before["status"] == "closed":
            assert after == before


# ---- changes --------------------------------------------------------------------------------------

def _when(offset: int | None, length: int) -> dict[str, str | None]:
    if offset is None:
        return {"planned_start": None, "planned_end": None}
    start = datetime(2027, 1, 4, tzinfo=UTC) + timedelta(hours=offset)
    return {"planned_start": start.isoformat(), "planned_end": (start + timedelta(hours=length)).isoformat()}


STATUSES = ["draft", "submitted", "under_review", "approved", "rejected", "scheduled", "implementing",
            "implemented", "closed", "cancelled"]
change_ops = st.one_of(
    *[st.tuples(st.just("advance"), st.integers(0, 2), st.booleans())] * 6,
    st.tuples(st.just("status"), st.sampled_from(STATUSES), st.sampled_from([None, True, False]), TEXTS),
    st.tuples(st.just("type"), st.sampled_from(["normal", "emergency", "standard"])),
    st.tuples(st.just("cis"), st.lists(st.integers(0, 2), max_size=3)),
    st.tuples(st.just("window"), st.one_of(st.none(), st.integers(0, 400)), st.integers(-2, 6)),
    st.tuples(st.just("plan"), st.sampled_from(["implementation_plan", "rollback_plan", "test_plan"]), TEXTS),
    st.tuples(st.just("risk"), st.sampled_from(["low", "medium", "high"])),
    st.tuples(st.just("approve"), st.sampled_from(["approved", "rejected"]), st.sampled_from([None, "CAB ok"])),
    st.tuples(st.just("advance"), st.integers(0, 3), st.booleans()),
)
APPROVAL = {"draft": (None, "rejected"), "submitted": ("pending",), "under_review": ("pending",),
            "approved": ("approved",), "rejected": ("rejected",), "scheduled": ("approved",),
            "implementing": ("approved",), "implemented": ("approved",), "closed": ("approved",)}


@pytest.fixture(scope="module")
def template(client, desk):
    response = client.post("/api/v1/change-templates", json={
        "domain": desk["domain"], "name": "Patch", "short_description": "Monthly patch",
        "implementation_plan": "runbook", "rollback_plan": "snapshot", "test_plan": "smoke test"},
        headers=desk["admin"].headers)
    assert response.status_code == 201, response.text
    return response.json()


def check_change(change: dict, template: dict) -> None:
    status, type_ = change["status"], change["type"]
    if type_ == "standard":
        assert status not in ("submitted", "under_review", "approved", "rejected")
        assert change["template_id"] == template["id"]
        assert [change[p] for p in ("implementation_plan", "rollback_plan", "test_plan")] == [
            template["implementation_plan"], template["rollback_plan"], template["test_plan"]]
    else:
        assert change["template_id"] is None
    if type_ == "emergency":
        assert status != "under_review"
    if status not in ("draft", "rejected", "cancelled"):
        assert change["planned_start"] and change["planned_end"]
        assert datetime.fromisoformat(change["planned_start"]) < datetime.fromisoformat(change["planned_end"])
        assert not any(blank(change[p]) for p in ("implementation_plan", "rollback_plan", "test_plan"))
    if status != "cancelled":
        assert change["approval_status"] in APPROVAL[status]
    if status in ("implementing", "implemented", "closed"):
        assert change["actual_start"] is not None
    if status in ("implemented", "closed"):
        assert change["success"] is not None and change["actual_end"] and not blank(change["implementation_notes"])
    elif status != "cancelled":
        assert change["success"] is None and change["actual_end"] is None
    assert (status == "closed") == (change["closed_at"] is not None and change["closed_by"] is not None)
    assert change["suggested_risk"] in ("low", "medium", "high")


@settings(PROPERTY_SETTINGS, max_examples=30)
@given(ops=st.lists(change_ops, min_size=6, max_size=20), prepared=st.booleans())
def test_no_sequence_of_change_calls_breaks_the_rules(client, owner, desk, template, ops, prepared):
    table = "gaas_change_mgmt.changes"
    admin, cis = desk["admin"], [c["id"] for c in desk["cis"]]
    ready = {"affected_cis": cis[:2], **_when(24, 2), "implementation_plan": "runbook", "rollback_plan": "restore",
             "test_plan": "smoke"} if prepared else {}
    created = client.post("/api/v1/changes", json={"domain": desk["domain"], "short_description": "Property change",
                                                   "type": "normal", **ready}, headers=admin.headers)
    assert created.status_code == 201, created.text
    change = created.json()
    url = f"/api/v1/changes/{change['id']}"
    frozen_scope = None
    for op in ops:
        before = row(owner, table, change["id"])
        snap = snapshot(owner, table, [change["id"]])
        body: dict[str, Any] = {"version": before["version"]}
        kind = op[0]
        if kind == "status":
            body["status"] = op[1]
            if op[2] is not None:
                body["success"] = op[2]
            if op[3] is not None:
                body["implementation_notes"] = op[3]
        elif kind == "type":
            body["type"] = op[1]
            if op[1] == "standard":
                body["template_id"] = template["id"]
        elif kind == "cis":
            body["affected_cis"] = [cis[i] for i in op[1]]
        elif kind == "window":
            body.update(_when(op[1], op[2]))
        elif kind == "plan":
            body[op[1]] = op[2]
        elif kind == "risk":
            body["risk"] = op[1]
        elif kind == "approve":
            body.update(status=op[1], **({"approval_comment": op[2]} if op[2] else {}))
        elif kind == "advance":
            body["status"] = pick(CHANGE_TRANSITIONS[before["type"]][before["status"]], op[1], before["status"])
            if body["status"] == "implemented":
                body.update(success=op[2], implementation_notes="Went as planned" if op[2] else "Rolled back")
        response = call(client, "PATCH", url, admin, body)
        after = row(owner, table, change["id"])
        if response.status_code >= 400:
            assert snapshot(owner, table, [change["id"]]) == snap, (op, response.text)
            event(f"change refused {kind} {response.status_code} {response.json()['detail'][:40]}")
            continue
        check_change(after, template)
        event(f"{after['type']} change reached {after['status']}")
        if after["status"] != before["status"]:
            assert after["status"] in CHANGE_TRANSITIONS[after["type"]][before["status"]]
        if after["type"] != before["type"]:
            assert before["status"] == "draft"
        if after["status"] in ("approved", "scheduled", "implementing", "implemented", "closed"):
            scope = (after["affected_cis"], after["service_id"], after["risk"], after["implementation_plan"],
                     after["rollback_plan"], after["test_plan"])
            if before["status"] in ("approved", "scheduled", "implementing", "implemented", "closed"):
                assert scope == frozen_scope, "the approved scope changed"
            frozen_scope = scope
        if before["status"] in ("closed", "cancelled"):
            assert after == before
