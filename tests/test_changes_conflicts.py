"""Change conflict detection: the same CI at the same time, overlap through the impact set (both
ways), blackout windows, maintenance windows (domain-wide, per service, recurring), and no
conflict left after a reschedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support import World, api_ci, api_link, api_patch, api_service, assert_problem, audit_rows, rid, unique
from tests.test_changes import PLANS, curl, iso, make_change, move

BASE = (datetime.now(UTC) + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)


def slot(day: int, hour: int, hours: int = 2) -> dict[str, str]:
    start = BASE + timedelta(days=day, hours=hour)
    return {"planned_start": iso(start), "planned_end": iso(start + timedelta(hours=hours))}


@pytest.fixture
def stack(client, world: World):
    """app runs_on vm runs_on server depends_on switch, in a fresh domain."""
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    switch = api_ci(client, admin, domain, "network_device", name=unique("sw-"))
    server = api_ci(client, admin, domain, "server", name=unique("srv-"))
    vm = api_ci(client, admin, domain, "virtual_machine", name=unique("vm-"))
    app = api_ci(client, admin, domain, "application", name=unique("app-"))
    other = api_ci(client, admin, domain, "application", name=unique("unrelated-"))
    api_link(client, admin, server, switch, "depends_on")
    api_link(client, admin, vm, server, "runs_on")
    api_link(client, admin, app, vm, "runs_on")
    return {"domain": domain, "admin": admin, "switch": switch, "server": server, "vm": vm, "app": app,
            "other": other}


def scheduled(client, stack, cis: list[dict], when: dict) -> dict:
    change = make_change(client, stack["admin"], stack["domain"], affected_cis=[c["id"] for c in cis], **when,
                         **PLANS)
    return move(client, stack["admin"], change, "submitted", "under_review", "approved", "scheduled")


def conflicts_of(client, stack, change: dict) -> list[dict]:
    response = client.get(f"{curl(change)}/conflicts", headers=stack["admin"].headers)
    assert response.status_code == 200, response.text
    return response.json()["conflicts"]


def test_same_ci_overlap(client, stack):
    first = scheduled(client, stack, [stack["server"]], slot(1, 22))
    second = make_change(client, stack["admin"], stack["domain"], affected_cis=[stack["server"]["id"]],
                         **slot(1, 23), **PLANS)
    submitted = move(client, stack["admin"], second, "submitted")  # overlaps are reported, not refused
    [conflict] = submitted["conflicts"]
    assert (conflict["kind"], conflict["number"], conflict["ci_ids"]) == ("same_ci", first["number"],
                                                                         [stack["server"]["id"]])
    assert conflict["status"] == "scheduled" and submitted["conflicts_checked_at"]
    assert conflicts_of(client, stack, second) == submitted["conflicts"]
    # the first change sees the second only once the second holds a slot (approved onwards)
    assert conflicts_of(client, stack, first) == []
    move(client, stack["admin"], second, "under_review", "approved")
    assert [c["number"] for c in conflicts_of(client, stack, first)] == [second["number"]]
    # back to back is not an overlap; another CI is not a conflict
    later = make_change(client, stack["admin"], stack["domain"], affected_cis=[stack["server"]["id"]],
                        planned_start=slot(1, 22)["planned_end"], planned_end=slot(2, 2)["planned_end"])
    assert [c["number"] for c in conflicts_of(client, stack, later)] == [second["number"]]
    elsewhere = make_change(client, stack["admin"], stack["domain"], affected_cis=[stack["other"]["id"]],
                            **slot(1, 22))
    assert conflicts_of(client, stack, elsewhere) == []


def test_overlap_through_the_impact_set_both_ways(client, stack):
    on_switch = scheduled(client, stack, [stack["switch"]], slot(3, 1))
    # the app runs (via vm and server) on the switch: changing the app while the switch changes
    on_app = make_change(client, stack["admin"], stack["domain"], affected_cis=[stack["app"]["id"]], **slot(3, 2))
    [conflict] = conflicts_of(client, stack, on_app)
    assert (conflict["kind"], conflict["number"]) == ("impact", on_switch["number"])
    assert conflict["ci_ids"] == [stack["app"]["id"]] and "depend on CI(s)" in conflict["detail"]
    # and the other way round: a change on the switch meets a scheduled change on the vm
    on_vm = scheduled(client, stack, [stack["vm"]], slot(4, 1))
    switch_again = make_change(client, stack["admin"], stack["domain"], affected_cis=[stack["switch"]["id"]],
                               **slot(4, 2))
    [conflict] = conflicts_of(client, stack, switch_again)
    assert (conflict["kind"], conflict["number"], conflict["ci_ids"]) == ("impact", on_vm["number"],
                                                                         [stack["vm"]["id"]])
    assert "depend on this change's CIs" in conflict["detail"]
    # an unrelated CI at the same time is no conflict
    unrelated = make_change(client, stack["admin"], stack["domain"], affected_cis=[stack["other"]["id"]],
                            **slot(4, 2))
    assert conflicts_of(client, stack, unrelated) == []


def test_blackout_stops_normal_changes_and_is_recorded_for_emergencies(client, database, stack):
    admin, domain = stack["admin"], stack["domain"]
    freeze = client.post("/api/v1/change-windows", json={
        "domain": domain, "name": "Tax deadline freeze", "kind": "blackout", **{
            "start_at": slot(5, 0)["planned_start"], "end_at": slot(6, 0)["planned_start"]}}, headers=admin.headers)
    assert freeze.status_code == 201, freeze.text
    change = make_change(client, admin, domain, affected_cis=[stack["app"]["id"]], **slot(5, 10), **PLANS)
    before = client.get(curl(change), headers=admin.headers).json()
    request_id = rid()
    refused = client.patch(curl(change), json={"status": "submitted", "version": before["version"]},
                           headers={**admin.headers, "X-Request-ID": request_id})
    body = assert_problem(refused, 409, "planned_start")
    assert body["errors"][0]["type"] == "blackout" and "Tax deadline freeze" in body["detail"]
    assert body["conflicts"][0]["window_id"] == freeze.json()["id"]
    assert client.get(curl(change), headers=admin.headers).json() == before  # nothing was written
    assert audit_rows(database, request_id) == []
    assert [c["kind"] for c in conflicts_of(client, stack, change)] == ["blackout"]
    emergency = make_change(client, admin, domain, type="emergency", affected_cis=[stack["app"]["id"]],
                            **slot(5, 10), **PLANS)
    submitted = move(client, admin, emergency, "submitted")
    assert [c["kind"] for c in submitted["conflicts"]] == ["blackout"]
    # a service-specific blackout only concerns changes on that service
    service = api_service(client, admin, domain)
    api_patch(client, admin, f"/api/v1/cis/{stack['other']['id']}", service_id=service["id"]).raise_for_status()
    client.post("/api/v1/change-windows", json={
        "domain": domain, "name": "Service freeze", "kind": "blackout", "service_id": service["id"],
        "start_at": slot(8, 0)["planned_start"], "end_at": slot(9, 0)["planned_start"]},
        headers=admin.headers).raise_for_status()
    touching = make_change(client, admin, domain, affected_cis=[stack["other"]["id"]], **slot(8, 3))
    assert [c["window_name"] for c in conflicts_of(client, stack, touching)] == ["Service freeze"]
    not_touching = make_change(client, admin, domain, affected_cis=[stack["app"]["id"]], **slot(8, 3))
    assert conflicts_of(client, stack, not_touching) == []


def test_outside_maintenance_windows(client, stack):
    admin, domain = stack["admin"], stack["domain"]
    nightly = client.post("/api/v1/change-windows", json={
        "domain": domain, "name": "Nightly", "kind": "maintenance", "start_at": iso(BASE + timedelta(hours=1)),
        "end_at": iso(BASE + timedelta(hours=5)), "recurrence": "daily"}, headers=admin.headers)
    assert nightly.status_code == 201, nightly.text
    daytime = make_change(client, admin, domain, affected_cis=[stack["app"]["id"]], **slot(10, 12), **PLANS)
    [conflict] = conflicts_of(client, stack, daytime)
    assert conflict["kind"] == "outside_maintenance" and "Nightly" in conflict["detail"]
    assert_problem(api_patch(client, admin, curl(daytime), status="submitted"), 409, "planned_start")
    at_night = make_change(client, admin, domain, affected_cis=[stack["app"]["id"]], **slot(10, 2), **PLANS)
    assert conflicts_of(client, stack, at_night) == []
    straddling = make_change(client, admin, domain, affected_cis=[stack["app"]["id"]], **slot(10, 4), **PLANS)
    assert [c["kind"] for c in conflicts_of(client, stack, straddling)] == ["outside_maintenance"]
    # a service with its own (weekly) window must use it rather than the domain's nightly one
    service = api_service(client, admin, domain)
    api_patch(client, admin, f"/api/v1/cis/{stack['other']['id']}", service_id=service["id"]).raise_for_status()
    client.post("/api/v1/change-windows", json={
        "domain": domain, "name": "Service Sunday", "kind": "maintenance", "service_id": service["id"],
        "start_at": iso(BASE + timedelta(days=11, hours=8)), "end_at": iso(BASE + timedelta(days=11, hours=12)),
        "recurrence": "weekly"}, headers=admin.headers).raise_for_status()
    nightly_on_service = make_change(client, admin, domain, affected_cis=[stack["other"]["id"]], **slot(10, 2))
    [conflict] = conflicts_of(client, stack, nightly_on_service)
    assert (conflict["kind"], conflict["service_id"], conflict["window_name"]) == (
        "outside_maintenance", service["id"], "Service Sunday")
    next_week = make_change(client, admin, domain, affected_cis=[stack["other"]["id"]], **slot(18, 9))
    assert conflicts_of(client, stack, next_week) == []
    # both CIs: the service's CI inside its own window, the app (no service) inside the domain's
    both = make_change(client, admin, domain, affected_cis=[stack["other"]["id"], stack["app"]["id"]],
                       **slot(18, 9))
    [conflict] = conflicts_of(client, stack, both)
    assert (conflict["kind"], conflict["service_id"], conflict["window_name"]) == (
        "outside_maintenance", None, "Nightly")


def test_no_conflict_after_reschedule(client, database, stack):
    admin, domain = stack["admin"], stack["domain"]
    holder = scheduled(client, stack, [stack["server"]], slot(12, 1))
    change = make_change(client, admin, domain, affected_cis=[stack["app"]["id"], stack["server"]["id"]],
                         **slot(12, 2), **PLANS)
    approved = move(client, admin, change, "submitted", "under_review", "approved")
    assert {c["kind"] for c in approved["conflicts"]} == {"same_ci"}
    assert approved["conflicts"][0]["number"] == holder["number"]
    request_id = rid()
    moved = client.patch(curl(change), json={**slot(13, 1), "version": approved["version"]},
                         headers={**admin.headers, "X-Request-ID": request_id})
    assert moved.status_code == 200, moved.text
    assert moved.json()["conflicts"] == [] and moved.json()["status"] == "approved"
    assert conflicts_of(client, stack, change) == []
    events = database.owner_rows("SELECT event_type FROM gaas_workflow.outbox_events WHERE request_id = :r",
                                 r=request_id)
    assert {e["event_type"] for e in events} == {"change.updated", "change.rescheduled"}
    # rescheduling into a blackout is refused and changes nothing
    client.post("/api/v1/change-windows", json={
        "domain": domain, "name": "Freeze", "kind": "blackout", "start_at": slot(14, 0)["planned_start"],
        "end_at": slot(15, 0)["planned_start"]}, headers=admin.headers).raise_for_status()
    current = client.get(curl(change), headers=admin.headers).json()
    assert_problem(api_patch(client, admin, curl(change), **slot(14, 3)), 409, "planned_start")
    assert client.get(curl(change), headers=admin.headers).json() == current
    assert move(client, admin, change, "scheduled")["conflicts"] == []


def test_conflicts_need_sight_of_the_change(client, world, stack):
    change = make_change(client, stack["admin"], stack["domain"], affected_cis=[stack["app"]["id"]], **slot(20, 1))
    stranger = world.user(world.domain(), "change_manager")
    assert_problem(client.get(f"{curl(change)}/conflicts", headers=stranger.headers), 404)


def test_recurring_windows_keep_their_local_time_across_daylight_saving():
    from gaas.changes.windows import containing, occurrences

    paris_winter = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # Sunday 01:00 in Paris (UTC+1)
    found = list(occurrences(paris_winter, paris_winter + timedelta(hours=2), "weekly", None, "Europe/Paris",
                             datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 4, 10, tzinfo=UTC)))
    # summer time starts on 29 March at 02:00 local: 01:00 that night is still winter time
    assert [begins for begins, _ in found] == [datetime(2026, 3, 22, 0, tzinfo=UTC),
                                               datetime(2026, 3, 29, 0, tzinfo=UTC),
                                               datetime(2026, 4, 4, 23, tzinfo=UTC)]  # 01:00 in summer time
    assert all(ends - begins == timedelta(hours=2) for begins, ends in found)
    until = list(occurrences(paris_winter, paris_winter + timedelta(hours=2), "daily", datetime(2026, 3, 3).date(),
                             "UTC", paris_winter, paris_winter + timedelta(days=30)))
    assert len(until) == 3

    class Window:
        start_at, end_at, recurrence, recurrence_until, timezone = (paris_winter, paris_winter + timedelta(hours=2),
                                                                    "weekly", None, "Europe/Paris")

    inside = datetime(2026, 4, 4, 23, 30, tzinfo=UTC)
    assert containing(Window, inside, inside + timedelta(hours=1)) is not None
    assert containing(Window, inside, inside + timedelta(hours=2)) is None
