"""The demo data's ITSM part: incidents, problems and changes on the demo services and CIs, spread
over the last months, some breached, some at risk, some conflicting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gaas import demo


@pytest.fixture(scope="module")
def loaded(database):
    counts = demo.load_demo()
    assert counts["incidents"] >= 90 and counts["problems"] == 9 and counts["changes"] >= 27
    assert counts["sla_breaches"] > 0
    return counts


def login(client, username: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/token", data={"username": username, "password": "gaas-demo-password"})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.mark.parametrize("domain", ["healthcare", "education", "justice"])
def test_demo_incidents_span_months_with_breaches_and_risks(client, loaded, domain):
    agent = login(client, f"{domain}.service_desk_agent")
    items, cursor = [], None
    while True:
        page = client.get("/api/v1/incidents", params={"limit": 500, **({"cursor": cursor} if cursor else {})},
                          headers=agent).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert {i["domain"] for i in items} == {domain}
    statuses = {i["status"] for i in items}
    assert {"new", "in_progress", "resolved", "closed"} <= statuses
    oldest = min(datetime.fromisoformat(i["created_at"]) for i in items)
    assert datetime.now(UTC) - oldest > timedelta(days=60)
    assert any(i["sla_breached"] for i in items)
    assert all(i["service_id"] or i["ci_id"] for i in items)
    at_risk = client.get("/api/v1/incidents/sla-at-risk", params={"within": "4h"}, headers=agent).json()["items"]
    assert at_risk and all(a["domain"] == domain for a in at_risk)
    known = [i for i in items if i["known_error"]]
    assert known and all("Restart the session store" in i["known_error"]["workaround"] for i in known)
    mine = client.get("/api/v1/incidents", params={"assigned_to": "me", "open": "true"}, headers=agent).json()
    assert mine["items"]


def test_demo_changes_include_a_conflict_a_failure_and_a_calendar(client, loaded):
    manager = login(client, "justice.change_manager")
    changes = client.get("/api/v1/changes", params={"limit": 500}, headers=manager).json()["items"]
    by_name = {c["short_description"]: c for c in changes}
    disk, firmware = by_name["Replace a failed disk"], by_name["Firmware update"]
    conflicts = client.get(f"/api/v1/changes/{disk['id']}/conflicts", headers=manager).json()["conflicts"]
    assert [(c["kind"], c["number"]) for c in conflicts] == [("same_ci", firmware["number"])]
    failed = by_name["Upgrade the portal framework"]
    assert failed["success"] is False and failed["status"] == "implemented"
    caused = client.get(f"/api/v1/changes/{failed['id']}/incidents", headers=manager).json()
    assert [c["short_description"] for c in caused] == ["Portal errors after the framework upgrade"]
    assert {c["status"] for c in changes} >= {"closed", "scheduled", "approved", "submitted", "draft", "implemented"}
    assert {c["type"] for c in changes} == {"normal", "standard", "emergency"}
    assert all(c["suggested_risk"] for c in changes)
    now = datetime.now(UTC)
    calendar = client.get("/api/v1/changes/calendar", params={"from": now.isoformat(),
                                                              "to": (now + timedelta(days=30)).isoformat()},
                          headers=manager).json()
    assert calendar["changes"] and {w["kind"] for w in calendar["windows"]} == {"maintenance", "blackout"}
