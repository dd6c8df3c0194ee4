"""The SLA rules, one by one: due date by priority, business hours across a weekend (and a
holiday, and daylight-saving time), pause and resume, priority change, reopen, breach marking
exactly once (also under concurrent runs and from the CLI), and the specification's Query 2
against GET /incidents/sla-at-risk."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from gaas.cli import app as cli
from gaas.core.db import unit_of_work
from gaas.iam import service as iam
from gaas.incidents import service as incidents
from gaas.incidents.schemas import IncidentCreate, IncidentUpdate
from gaas.incidents.sla import Calendar, add_working_time, working_seconds_between
from tests.support import World, api_incident, api_patch, api_service, assert_problem

PARIS = ZoneInfo("Europe/Paris")
OFFICE = Calendar(zone=PARIS, start=time(9), end=time(17), days=frozenset({1, 2, 3, 4, 5}))


@pytest.fixture(scope="module")
def desk(world: World):
    domain = world.domain()
    return {"domain": domain, "admin": world.user(domain, "domain_admin"),
            "agent": world.user(domain, "service_desk_agent")}


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def owner_sql(database, sql: str, **params) -> None:
    with database.owner_engine.begin() as conn:
        conn.execute(text(sql), params)


# ---- the clock arithmetic ----------------------------------------------------------------------------

def test_working_time_skips_nights_weekends_and_holidays():
    friday_3pm = paris(2026, 3, 6, 15)
    # 8 working hours from Friday 15:00: 2 h on Friday, 6 h on Monday -> Monday 15:00
    assert add_working_time(OFFICE, friday_3pm, 8 * 3600) == paris(2026, 3, 9, 15)
    assert working_seconds_between(OFFICE, friday_3pm, paris(2026, 3, 9, 15)) == 8 * 3600
    # opened on Saturday: the clock starts Monday 09:00
    assert add_working_time(OFFICE, paris(2026, 3, 7, 11), 3600) == paris(2026, 3, 9, 10)
    # with Monday a holiday, it runs into Tuesday
    holiday = Calendar(zone=PARIS, start=time(9), end=time(17), days=OFFICE.days,
                       holidays=frozenset({date(2026, 3, 9)}))
    assert add_working_time(holiday, friday_3pm, 8 * 3600) == paris(2026, 3, 10, 15)
    # across the spring DST change (29 March 2026) local office hours stay 09:00-17:00
    assert add_working_time(OFFICE, paris(2026, 3, 27, 16), 2 * 3600) == paris(2026, 3, 30, 10)
    # around the clock is plain addition
    assert add_working_time(Calendar(), friday_3pm, 3600) == friday_3pm + timedelta(hours=1)
    assert working_seconds_between(OFFICE, paris(2026, 3, 7, 0), paris(2026, 3, 8, 23)) == 0


# ---- due date by priority ----------------------------------------------------------------------------

@pytest.mark.parametrize(("impact", "urgency", "priority", "hours"), [
    ("high", "high", "critical", 4), ("high", "medium", "high", 8), ("medium", "medium", "medium", 24),
    ("low", "low", "low", 72)])
def test_due_date_by_priority_from_the_default_policies(client, desk, impact, urgency, priority, hours):
    incident = api_incident(client, desk["agent"], desk["domain"], impact=impact, urgency=urgency)
    assert incident["priority"] == priority
    due = datetime.fromisoformat(incident["sla_due"]) - datetime.fromisoformat(incident["created_at"])
    assert due == timedelta(hours=hours)


def test_a_domain_policy_with_business_hours_across_a_weekend(client, database, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    created = client.post("/api/v1/sla-policies", json={
        "domain": domain, "name": "Office hours high", "priority": "high", "resolution_minutes": 480,
        "business_timezone": "Europe/Paris", "business_start": "09:00", "business_end": "17:00",
        "holidays": ["2026-03-10"]}, headers=admin.headers)
    assert created.status_code == 201, created.text
    assert_problem(client.post("/api/v1/sla-policies", json={"domain": domain, "name": "twin", "priority": "high",
                                                             "resolution_minutes": 60}, headers=admin.headers),
                   409, "priority")
    with unit_of_work(iam.system_actor(), database.factory) as db:
        incident = incidents.create_incident(db, iam.system_actor(), IncidentCreate(
            domain=domain, short_description="Payroll export fails", impact="high", urgency="medium"),
            opened_at=paris(2026, 3, 6, 15))
        assert incident.sla_due == paris(2026, 3, 9, 15)  # Friday 15:00 + 8 working hours
        assert incident.sla_policy_id == uuid.UUID(created.json()["id"])
        other = incidents.create_incident(db, iam.system_actor(), IncidentCreate(
            domain=domain, short_description="Monday report", impact="high", urgency="medium"),
            opened_at=paris(2026, 3, 9, 13))
        assert other.sla_due == paris(2026, 3, 11, 13)  # 4 h on Monday, Tuesday a holiday, 4 h on Wednesday
        sunday = incidents.create_incident(db, iam.system_actor(), IncidentCreate(
            domain=domain, short_description="Sunday report", impact="high", urgency="medium"),
            opened_at=paris(2026, 3, 8, 12))
        assert sunday.sla_due == paris(2026, 3, 9, 17)  # the clock starts on Monday at opening
        # medium has no domain policy: the platform default, around the clock
        medium = incidents.create_incident(db, iam.system_actor(), IncidentCreate(
            domain=domain, short_description="Slow search", impact="medium", urgency="medium"),
            opened_at=paris(2026, 3, 6, 15))
        assert medium.sla_due == paris(2026, 3, 7, 15)


# ---- pause, resume, priority change, reopen -----------------------------------------------------------

def _update(database, incident_id, at: datetime, **changes):
    with unit_of_work(iam.system_actor(), database.factory) as db:
        current = incidents.get_incident(db, iam.system_actor(), incident_id)
        incidents.update_incident(db, iam.system_actor(), incident_id,
                                  IncidentUpdate(**changes, version=current.version), None, at=at)
        return incidents.get_incident(db, iam.system_actor(), incident_id)


def test_pause_and_resume_push_the_due_date_back(database, desk):
    start = datetime(2026, 5, 4, 8, tzinfo=UTC)
    with unit_of_work(iam.system_actor(), database.factory) as db:
        incident_id = incidents.create_incident(db, iam.system_actor(), IncidentCreate(
            domain=desk["domain"], short_description="Printer queue stuck", impact="high", urgency="medium"),
            opened_at=start).id
    working = _update(database, incident_id, start + timedelta(hours=1), status="in_progress")
    assert working.sla_due == start + timedelta(hours=8)
    # waiting on a vendor does not stop the clock by default...
    vendor = _update(database, incident_id, start + timedelta(hours=2), hold_reason="awaiting_vendor")
    assert vendor.sla_due == start + timedelta(hours=8) and vendor.sla_paused_at is None
    # ...waiting on the caller does: no due date meanwhile (neither at risk nor breached)
    paused = _update(database, incident_id, start + timedelta(hours=3), hold_reason="awaiting_caller")
    assert paused.sla_due is None and paused.sla_paused_at == start + timedelta(hours=3)
    resumed = _update(database, incident_id, start + timedelta(hours=5), hold_reason=None)
    assert resumed.sla_paused_at is None and resumed.sla_paused_seconds == 2 * 3600
    assert resumed.sla_due == start + timedelta(hours=10)
    # a second pause adds up
    _update(database, incident_id, start + timedelta(hours=6), hold_reason="awaiting_caller")
    resolved = _update(database, incident_id, start + timedelta(hours=6, minutes=30), status="resolved",
                       resolution_notes="Caller confirmed")
    assert resolved.sla_paused_seconds == 2 * 3600 + 1800 and resolved.hold_reason is None
    assert resolved.sla_due == start + timedelta(hours=10, minutes=30)
    # time spent resolved before a reopen does not count against the desk
    reopened = _update(database, incident_id, start + timedelta(hours=9, minutes=30), status="in_progress")
    assert reopened.sla_paused_seconds == 2 * 3600 + 1800 + 3 * 3600
    assert reopened.sla_due == start + timedelta(hours=13, minutes=30)


def test_pause_in_business_hours_counts_working_time_only(client, database, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    client.post("/api/v1/sla-policies", json={
        "domain": domain, "name": "Office", "priority": "medium", "resolution_minutes": 16 * 60,
        "business_timezone": "Europe/Paris", "business_start": "09:00", "business_end": "17:00"},
        headers=admin.headers).raise_for_status()
    with unit_of_work(iam.system_actor(), database.factory) as db:
        incident_id = incidents.create_incident(db, iam.system_actor(), IncidentCreate(
            domain=domain, short_description="VPN drops", impact="medium", urgency="medium"),
            opened_at=paris(2026, 3, 5, 9)).id  # Thursday 09:00: due Friday 17:00
    _update(database, incident_id, paris(2026, 3, 5, 10), status="in_progress")
    _update(database, incident_id, paris(2026, 3, 6, 16), hold_reason="awaiting_caller")  # Friday 16:00
    resumed = _update(database, incident_id, paris(2026, 3, 9, 10), hold_reason=None)  # Monday 10:00
    assert resumed.sla_paused_seconds == 2 * 3600  # Friday 16-17 and Monday 09-10
    assert resumed.sla_due == paris(2026, 3, 9, 11)  # the hour left on Friday, after Monday 10:00


def test_priority_change_recomputes_the_due_date(client, desk):
    agent = desk["agent"]
    incident = api_incident(client, agent, desk["domain"], impact="medium", urgency="medium")
    created = datetime.fromisoformat(incident["created_at"])
    assert datetime.fromisoformat(incident["sla_due"]) == created + timedelta(hours=24)
    raised = api_patch(client, agent, f"/api/v1/incidents/{incident['id']}", impact="high", urgency="high").json()
    assert raised["priority"] == "critical"
    assert datetime.fromisoformat(raised["sla_due"]) == created + timedelta(hours=4)
    lowered = api_patch(client, agent, f"/api/v1/incidents/{incident['id']}", urgency="low").json()
    assert lowered["priority"] == "medium"
    assert datetime.fromisoformat(lowered["sla_due"]) == created + timedelta(hours=24)


# ---- breach marking -------------------------------------------------------------------------------------

def test_breach_marking_happens_exactly_once_with_event_and_audit(client, database, world):
    domain = world.domain()
    agent = world.user(domain, "service_desk_agent")
    late = [api_incident(client, agent, domain) for _ in range(3)]
    paused = api_incident(client, agent, domain)
    api_patch(client, agent, f"/api/v1/incidents/{paused['id']}", status="in_progress",
              hold_reason="awaiting_caller").raise_for_status()
    solved = api_incident(client, agent, domain)
    api_patch(client, agent, f"/api/v1/incidents/{solved['id']}", status="in_progress").raise_for_status()
    api_patch(client, agent, f"/api/v1/incidents/{solved['id']}", status="resolved",
              resolution_notes="done").raise_for_status()
    on_time = api_incident(client, agent, domain)
    ids = [i["id"] for i in [*late, solved]]
    owner_sql(database, "UPDATE gaas_incident_mgmt.incidents SET sla_due = now() - interval '1 minute' "
                        "WHERE id = ANY(CAST(:ids AS uuid[]))", ids=ids)

    def run() -> int:
        with unit_of_work(iam.system_actor(), database.factory) as db:
            return incidents.mark_sla_breaches(db)

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(run())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    marked_here = database.owner_rows("SELECT id, sla_breached, version FROM gaas_incident_mgmt.incidents "
                                      "WHERE domain = :d", d=domain)
    breached = {str(r["id"]) for r in marked_here if r["sla_breached"]}
    assert breached == {i["id"] for i in late}
    assert all(r["version"] == 2 for r in marked_here if r["sla_breached"])
    run()  # a later run finds nothing more of ours to mark
    events = database.owner_rows("SELECT entity_id, payload FROM gaas_workflow.outbox_events "
                                 "WHERE event_type = 'incident.sla_breached' AND domain = :d", d=domain)
    assert sorted(str(e["entity_id"]) for e in events) == sorted(i["id"] for i in late)
    assert {e["payload"]["number"] for e in events} == {i["number"] for i in late}
    audit = database.owner_rows("SELECT entity_id, changes, user_email FROM gaas_audit.audit_log "
                                "WHERE entity_type = 'incident' AND domain = :d AND changes->'after' ? 'sla_breached'"
                                " AND changes->'after'->>'sla_breached' = 'true'", d=domain)
    assert sorted(str(a["entity_id"]) for a in audit) == sorted(i["id"] for i in late)
    assert {a["user_email"] for a in audit} == {"system@gaas.local"}
    shown = client.get(f"/api/v1/incidents/{late[0]['id']}", headers=agent.headers).json()
    assert shown["sla_breached"] is True and shown["version"] == 2
    listed = client.get("/api/v1/incidents", params={"domain": domain, "sla_breached": "true"},
                        headers=agent.headers).json()["items"]
    assert {i["id"] for i in listed} == breached
    assert client.get(f"/api/v1/incidents/{on_time['id']}", headers=agent.headers).json()["sla_breached"] is False
    # a breach stays a fact: lowering the priority later does not erase it
    lowered = api_patch(client, agent, f"/api/v1/incidents/{late[0]['id']}", urgency="low").json()
    assert lowered["sla_breached"] is True


def test_gaas_sla_check_marks_and_reports(database, client, world):
    domain = world.domain()
    agent = world.user(domain, "service_desk_agent")
    incident = api_incident(client, agent, domain)
    owner_sql(database, "UPDATE gaas_incident_mgmt.incidents SET sla_due = now() - interval '1 hour' WHERE id = :id",
              id=incident["id"])
    result = CliRunner().invoke(cli, ["sla", "check", "--batch", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "breached" in result.output
    assert client.get(f"/api/v1/incidents/{incident['id']}", headers=agent.headers).json()["sla_breached"] is True
    again = CliRunner().invoke(cli, ["sla", "check"], catch_exceptions=False)
    assert "0 incident" in again.output


# ---- the specification's Query 2 ------------------------------------------------------------------

# Verbatim from the specification; it runs against our schemas through the search path.
QUERY_2 = """
SELECT
    i.number,
    i.short_description,
    i.priority,
    s.name as service_name,
    i.sla_due,
    EXTRACT(EPOCH FROM (i.sla_due - NOW())) / 3600 as hours_until_breach,
    u.name as assigned_to
FROM incidents i
LEFT JOIN services s ON i.service_id = s.id
LEFT JOIN users u ON i.assigned_to = u.id
WHERE i.status IN ('new', 'in_progress')
  AND i.sla_due <= NOW() + INTERVAL '4 hours'
  AND i.sla_breached = FALSE
  AND i.deleted_at IS NULL
ORDER BY i.sla_due ASC;
"""


def test_query_2_returns_the_same_incidents_as_sla_at_risk(client, database, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    agent = world.user(domain, "service_desk_agent")
    service = api_service(client, admin, domain)
    due_in = {"soon": "1 hour", "later": "3 hours 30 minutes", "outside": "5 hours", "overdue": "-20 minutes",
              "breached": "-2 hours", "resolved": "1 hour", "deleted": "2 hours", "unassigned": "2 hours"}
    made = {}
    for name in due_in:
        extra = {} if name == "unassigned" else {"assigned_to": str(agent.id), "service_id": service["id"]}
        made[name] = api_incident(client, admin, domain, short_description=f"{name} incident", impact="low",
                                  urgency="low", **extra)
        owner_sql(database, "UPDATE gaas_incident_mgmt.incidents SET sla_due = now() + CAST(:d AS interval) "
                            "WHERE id = :id", d=due_in[name], id=made[name]["id"])
    owner_sql(database, "UPDATE gaas_incident_mgmt.incidents SET sla_breached = TRUE WHERE id = :id",
              id=made["breached"]["id"])
    url = f"/api/v1/incidents/{made['resolved']['id']}"
    api_patch(client, admin, url, status="in_progress").raise_for_status()
    api_patch(client, admin, url, status="resolved", resolution_notes="ok").raise_for_status()
    client.delete(f"/api/v1/incidents/{made['deleted']['id']}", headers=admin.headers).raise_for_status()
    owner_sql(database, "UPDATE gaas_incident_mgmt.incidents SET sla_due = now() + interval '1 hour' WHERE id = :id",
              id=made["resolved"]["id"])  # resolving fixed its due date; put it back in the window

    with database.owner_engine.begin() as conn:
        conn.execute(text("SET LOCAL search_path = gaas_incident_mgmt, gaas_service_catalog, gaas_iam"))
        raw = [dict(r) for r in conn.execute(text(QUERY_2)).mappings()]
    ours = {i["number"] for i in made.values()}
    raw = [r for r in raw if r["number"] in ours]
    api = []
    cursor = None
    while True:
        page = client.get("/api/v1/incidents/sla-at-risk", params={"within": "4h", "limit": 2, "domain": domain,
                                                                   **({"cursor": cursor} if cursor else {})},
                          headers=agent.headers).json()
        api += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    expected = ["overdue", "soon", "unassigned", "later"]
    assert [r["number"] for r in raw] == [made[n]["number"] for n in expected]
    assert [(a["number"], a["short_description"], a["priority"], a["service_name"], a["assigned_to"]) for a in api] \
        == [(r["number"], r["short_description"], r["priority"], r["service_name"], r["assigned_to"]) for r in raw]
    assert [datetime.fromisoformat(a["sla_due"]) for a in api] == [r["sla_due"] for r in raw]
    for a, r in zip(api, raw, strict=True):
        assert abs(a["hours_until_breach"] - float(r["hours_until_breach"])) < 0.05
    assert api[0]["hours_until_breach"] < 0 < api[-1]["hours_until_breach"]
    assert api[0]["assigned_to"] is not None and api[2]["assigned_to"] is None
    narrower = client.get("/api/v1/incidents/sla-at-risk", params={"within": "90m", "domain": domain},
                          headers=agent.headers).json()["items"]
    assert [a["number"] for a in narrower] == [made["overdue"]["number"], made["soon"]["number"]]
    assert_problem(client.get("/api/v1/incidents/sla-at-risk", params={"within": "soon"}, headers=agent.headers),
                   422, "within")
    assert_problem(client.get("/api/v1/incidents/sla-at-risk", params={"within": "45d"}, headers=agent.headers),
                   422, "within")
    stranger = world.user(world.domain(), "service_desk_agent")
    seen = client.get("/api/v1/incidents/sla-at-risk", headers=stranger.headers).json()["items"]
    assert not {a["number"] for a in seen} & ours
