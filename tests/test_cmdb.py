"""The CMDB: configuration items and classes through the battery, then relationships,
attribute validation and filters, and impact analysis."""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar

import pytest

from tests.battery import ResourceBattery
from tests.support import Person, World, api_patch, assert_problem, audit_rows, rid, unique


class TestCIs(ResourceBattery):
    path = "/api/v1/cis"
    entity_type = "ci"
    table = "gaas_cmdb.configuration_items"
    history_resource = "cis"
    list_filter = "q"
    update: ClassVar[dict[str, Any]] = {"name": "renamed-host", "status": "maintenance"}
    owners: ClassVar[dict[str, uuid.UUID]] = {}
    bad_inputs = [
        ({"attributes": {"hostname": "h", "ip": "999.1.1.1"}}, "attributes.ip"),
        ({"attributes": {"ip": "10.0.0.1"}}, "attributes.hostname"),
        ({"attributes": {"hostname": "h", "cpu_cores": "eight"}}, "attributes.cpu_cores"),
        ({"ci_class": "spaceship"}, "ci_class"),
        ({"environment": "moon"}, "environment"),
        ({"status": "exploded"}, "status"),
        ({"owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"service_id": str(uuid.uuid4())}, "service_id"),
        ({"attributes": "not an object"}, "attributes"),
        ({"name": "x" * 201}, "name"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        person = world.user(domain, "cmdb_admin")
        self.owners.setdefault(domain, person.id)
        return person

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "auditor")

    def body(self, domain: str) -> dict[str, Any]:
        return {"domain": domain, "name": unique("web-"), "ci_class": "server", "environment": "production",
                "owner_id": str(self.owners[domain]),
                "attributes": {"hostname": unique("web"), "ip": "10.0.1.50", "os": "Ubuntu 22.04", "cpu_cores": 8}}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["name"]


class TestCIClasses(ResourceBattery):
    path = "/api/v1/ci-classes"
    entity_type = "ci_class"
    table = "gaas_cmdb.ci_classes"
    history_resource = "ci-classes"
    list_filter = "domain"
    update: ClassVar[dict[str, Any]] = {"label": "Printers and scanners", "staleness_days": 30}
    bad_inputs = [
        ({"attribute_schema": {"type": "array"}}, "attribute_schema"),
        ({"attribute_schema": {"type": "object", "properties": {"x": {"type": "nonsense"}}}}, "attribute_schema"),
        ({"identification": [["colour"]]}, "identification.0"),
        ({"recommended": ["colour"]}, "recommended"),
        ({"name": "Bad Name"}, "name"),
        ({"staleness_days": 0}, "staleness_days"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "cmdb_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "service_desk_agent")

    def body(self, domain: str) -> dict[str, Any]:
        return {"name": unique("printer_"), "label": "Printer", "domain": domain,
                "attribute_schema": {"type": "object", "properties": {"serial": {"type": "string"},
                                                                      "ip": {"type": "string", "format": "ipv4"}},
                                     "required": ["serial"]},
                "recommended": ["ip"], "identification": [["serial"]]}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["domain"]


@pytest.fixture(scope="module")
def infra(world: World):
    domain = world.domain()
    admin = world.user(domain, "cmdb_admin")
    return {"domain": domain, "admin": admin}


def ci(client, who: Person, domain: str | None, ci_class: str = "server", **extra: Any) -> dict[str, Any]:
    attributes = extra.pop("attributes", None)
    if attributes is None:
        attributes = {"hostname": unique("h")} if ci_class in ("server", "virtual_machine", "network_device") else {}
    body = {"domain": domain, "name": extra.pop("name", unique(f"{ci_class}-")), "ci_class": ci_class,
            "environment": "production", "owner_id": str(who.id), "attributes": attributes, **extra}
    response = client.post("/api/v1/cis", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def link(client, who: Person, source: dict, target: dict, type_: str = "depends_on") -> dict:
    response = client.post("/api/v1/ci-relationships", json={"source_ci_id": source["id"], "target_ci_id": target["id"],
                                                             "relationship_type": type_}, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_default_classes_ship(client, infra):
    names = {c["name"] for c in client.get("/api/v1/ci-classes", params={"limit": 100},
                                           headers=infra["admin"].headers).json()["items"] if c["is_system"]}
    assert names == {"server", "virtual_machine", "database", "application", "network_device", "storage",
                     "load_balancer", "container_cluster"}


def test_numbers_and_attribute_containment(client, infra):
    admin, domain = infra["admin"], infra["domain"]
    ubuntu = ci(client, admin, domain, attributes={"hostname": unique("u"), "os": "Ubuntu 22.04", "cpu_cores": 8})
    ci(client, admin, domain, attributes={"hostname": unique("r"), "os": "RHEL 9", "cpu_cores": 4})
    assert ubuntu["number"].startswith("CI") and len(ubuntu["number"]) == 9
    found = client.get("/api/v1/cis", params={"attr.os": "Ubuntu 22.04", "domain": domain},
                       headers=admin.headers).json()["items"]
    assert [c["id"] for c in found] == [ubuntu["id"]]
    found = client.get("/api/v1/cis", params={"attr.cpu_cores": "8", "domain": domain},
                       headers=admin.headers).json()["items"]
    assert [c["id"] for c in found] == [ubuntu["id"]]
    assert client.get("/api/v1/cis", params={"attr.os": "Windows"}, headers=admin.headers).json()["items"] == []


def test_fuzzy_name_search_finds_partial_hostnames(client, infra):
    admin, domain = infra["admin"], infra["domain"]
    target = ci(client, admin, domain, name="hc-prod-db-cluster-01", ci_class="database",
                attributes={"engine": "PostgreSQL"})
    for query in ("db-cluster", "hc prod db clustr", "cluster-01"):
        items = client.get("/api/v1/cis", params={"q": query, "domain": domain}, headers=admin.headers).json()["items"]
        assert items and items[0]["id"] == target["id"], query


def test_relationship_rules(client, database, world, infra):
    admin, domain = infra["admin"], infra["domain"]
    app, server = ci(client, admin, domain, "application"), ci(client, admin, domain)
    request_id = rid()
    created = client.post("/api/v1/ci-relationships", json={"source_ci_id": app["id"], "target_ci_id": server["id"],
                                                             "relationship_type": "runs_on"},
                          headers={**admin.headers, "X-Request-ID": request_id})
    assert created.status_code == 201
    assert [r["action"] for r in audit_rows(database, request_id)] == ["add_relationship"]
    body = {"source_ci_id": app["id"], "target_ci_id": server["id"], "relationship_type": "runs_on"}
    assert_problem(client.post("/api/v1/ci-relationships", json=body, headers=admin.headers), 409, "target_ci_id")
    assert_problem(client.post("/api/v1/ci-relationships", json={**body, "target_ci_id": app["id"]},
                               headers=admin.headers), 422, "target_ci_id")
    assert_problem(client.post("/api/v1/ci-relationships", json={**body, "relationship_type": "loves"},
                               headers=admin.headers), 422, "relationship_type")
    other = world.domain()
    foreign = ci(client, world.user(other, "cmdb_admin"), other)
    assert_problem(client.post("/api/v1/ci-relationships", json={**body, "target_ci_id": foreign["id"]},
                               headers=admin.headers), 422, "target_ci_id")
    # A global administrator who sees both domains may link across them.
    root = world.admin()
    assert client.post("/api/v1/ci-relationships", json={**body, "target_ci_id": foreign["id"]},
                       headers=root.headers).status_code == 201
    listed = client.get("/api/v1/ci-relationships", params={"ci": server["id"]}, headers=admin.headers).json()
    assert [r["id"] for r in listed["items"]] == [created.json()["id"]]
    assert client.delete(f"/api/v1/ci-relationships/{created.json()['id']}", headers=admin.headers).status_code == 204
    reader = world.user(domain, "auditor")
    rel = link(client, admin, app, server)
    assert_problem(client.delete(f"/api/v1/ci-relationships/{rel['id']}", headers=reader.headers), 403)


def test_impact_reaches_business_services_with_paths(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    from tests.test_catalog import make

    business = make(client, admin, domain, "business", sla_target="99.90")
    technical = make(client, admin, domain, "technical", business["id"])
    switch = ci(client, admin, domain, "network_device", name="core-switch-1")
    server = ci(client, admin, domain, name="srv-1")
    vm = ci(client, admin, domain, "virtual_machine", name="vm-1")
    database = ci(client, admin, domain, "database", name="db-1", attributes={"engine": "PostgreSQL"},
                  service_id=technical["id"])
    app = ci(client, admin, domain, "application", name="portal", service_id=technical["id"])
    link(client, admin, server, switch, "depends_on")
    link(client, admin, vm, server, "runs_on")
    link(client, admin, database, vm, "runs_on")
    link(client, admin, app, database, "depends_on")
    link(client, admin, app, vm, "runs_on")      # a diamond: app is reached at depth 3 first
    link(client, admin, switch, app, "depends_on")  # and a cycle back to the start
    report = client.get(f"/api/v1/cis/{switch['id']}/impact", headers=admin.headers).json()
    depths = {c["name"]: c["depth"] for c in report["cis"]}
    assert depths == {"srv-1": 1, "vm-1": 2, "db-1": 3, "portal": 3}
    portal = next(c for c in report["cis"] if c["name"] == "portal")
    assert [s["ci_id"] for s in portal["path"]] == [server["id"], vm["id"], app["id"]]
    assert [s["relationship_type"] for s in portal["path"]] == ["depends_on", "runs_on", "runs_on"]
    assert [s["id"] for s in report["services"]] == [technical["id"]]
    assert [(b["id"], b["sla_target"]) for b in report["business_services"]] == [(business["id"], "99.90")]
    assert set(report["business_services"][0]["via_ci_ids"]) == {database["id"], app["id"]}
    assert (report["total"], report["by_depth"]) == (4, {"1": 1, "2": 1, "3": 2})
    first = client.get(f"/api/v1/cis/{switch['id']}/impact", params={"limit": 3}, headers=admin.headers).json()
    rest = client.get(f"/api/v1/cis/{switch['id']}/impact", params={"limit": 3, "cursor": first["next_cursor"]},
                      headers=admin.headers).json()
    assert [c["depth"] for c in first["cis"] + rest["cis"]] == [1, 2, 3, 3] and rest["next_cursor"] is None
    assert first["business_services"] == report["business_services"]  # resolved over the whole set
    shallow = client.get(f"/api/v1/cis/{switch['id']}/impact", params={"max_depth": 1}, headers=admin.headers).json()
    assert [c["name"] for c in shallow["cis"]] == ["srv-1"]
    only_runs = client.get(f"/api/v1/cis/{vm['id']}/impact", params={"relationship_types": "runs_on"},
                           headers=admin.headers).json()
    assert {c["name"] for c in only_runs["cis"]} == {"db-1", "portal"}
    needs = client.get(f"/api/v1/cis/{app['id']}/dependencies", headers=admin.headers).json()
    assert {c["name"]: c["depth"] for c in needs["cis"]} == {"db-1": 1, "vm-1": 1, "srv-1": 2, "core-switch-1": 3}
    assert_problem(client.get(f"/api/v1/cis/{app['id']}/impact", params={"relationship_types": "likes"},
                              headers=admin.headers), 422, "relationship_types")
    outsider = world.user(world.domain(), "cmdb_admin")
    assert_problem(client.get(f"/api/v1/cis/{app['id']}/impact", headers=outsider.headers), 404)


def test_cost_entries_can_name_a_ci(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    server = ci(client, admin, domain)
    entry = client.post("/api/v1/cost-entries", json={"ci_id": server["id"], "category": "technology",
                                                      "amount": "80.00", "period_start": "2026-01-01",
                                                      "period_end": "2026-01-31"}, headers=admin.headers)
    assert entry.status_code == 201, entry.text
    assert entry.json()["domain"] == domain and entry.json()["service_id"] is None


def test_health_counts_and_links_to_the_offending_cis(client, world):
    domain = world.domain()
    admin = world.user(domain, "cmdb_admin")
    full = {"ip": "10.1.1.1", "os": "Ubuntu", "location": "DC1"}
    old = "2026-01-01T00:00:00Z"
    complete = ci(client, admin, domain, attributes={"hostname": "a", "serial_number": "S-1", **full},
                  last_discovered_at="2099-01-01T00:00:00Z", discovered_by="cmdb-scan")
    sparse = ci(client, admin, domain, attributes={"hostname": "b", "serial_number": "S-2"})
    stale = ci(client, admin, domain, attributes={"hostname": "c", "serial_number": "S-3", **full},
               last_discovered_at=old, discovered_by="cmdb-scan")
    twin_a = ci(client, admin, domain, attributes={"hostname": "d1", "serial_number": "DUP", **full})
    twin_b = ci(client, admin, domain, attributes={"hostname": "d2", "serial_number": "DUP", **full})
    retired = ci(client, admin, domain, attributes={"hostname": "e", "serial_number": "S-5", **full})
    for member in (complete, sparse, stale, twin_a):
        link(client, admin, member, retired, "depends_on")
    version = client.get(f"/api/v1/cis/{retired['id']}", headers=admin.headers).json()["version"]
    client.patch(f"/api/v1/cis/{retired['id']}", json={"status": "retired", "version": version},
                 headers=admin.headers).raise_for_status()

    rows = client.get("/api/v1/cmdb/health", params={"domain": domain}, headers=admin.headers).json()
    assert [(r["domain"], r["ci_class"], r["total"]) for r in rows] == [(domain, "server", 5)]
    row = rows[0]

    def listed(flag: str) -> set[str]:
        url = row[flag]["list"]
        items = client.get(url, headers=admin.headers).json()["items"]
        assert len(items) == row[flag]["count"], flag
        return {item["name"] for item in items}

    assert listed("missing_recommended") == {sparse["name"]}
    assert listed("stale") == {stale["name"]}
    assert listed("duplicate") == {twin_a["name"], twin_b["name"]}
    assert listed("orphan") == {twin_b["name"]}
    assert listed("broken_links") == {complete["name"], sparse["name"], stale["name"], twin_a["name"]}
    assert listed("missing_required") == set()
    assert row["completeness_pct"] == 100.0
    assert_problem(client.get("/api/v1/cis", params={"health": "haunted"}, headers=admin.headers), 422, "health")


def test_impact_and_links_stay_within_ci_view(client, world):
    home, other = world.domain(), world.domain()
    root = world.admin()
    mine = ci(client, root, home, name="mine")
    hidden = ci(client, root, other, name="hidden")
    link(client, root, hidden, mine, "depends_on")
    person = world.user(other)  # sees `other` (home domain) but holds no CMDB rights there
    role = client.get("/api/v1/roles", params={"name": "cmdb_admin"}, headers=root.headers).json()["items"][0]
    home_id = client.get("/api/v1/domains", params={"q": home}, headers=root.headers).json()["items"][0]["id"]
    client.post(f"/api/v1/users/{person.id}/roles", json={"role_id": role["id"], "scope_type": "domain",
                                                          "scope_id": home_id}, headers=root.headers)
    report = client.get(f"/api/v1/cis/{mine['id']}/impact", headers=person.headers).json()
    assert report["total"] == 0
    assert client.get("/api/v1/ci-relationships", params={"ci": mine["id"]}, headers=person.headers).json()[
        "items"] == []
    assert client.get(f"/api/v1/cis/{mine['id']}/impact", headers=root.headers).json()["total"] == 1


def test_links_to_deleted_cis_can_be_removed(client, infra):
    admin, domain = infra["admin"], infra["domain"]
    a, b = ci(client, admin, domain), ci(client, admin, domain)
    rel = link(client, admin, a, b)
    client.delete(f"/api/v1/cis/{b['id']}", headers=admin.headers).raise_for_status()
    assert client.delete(f"/api/v1/ci-relationships/{rel['id']}", headers=admin.headers).status_code == 204


def test_newer_schema_keywords_are_enforced_and_rules_rekey(client, infra):
    admin, domain = infra["admin"], infra["domain"]
    cls = client.post("/api/v1/ci-classes", json={
        "name": "badge_reader", "label": "Badge reader", "domain": domain,
        "attribute_schema": {"type": "object", "properties": {"serial": {"type": "string"},
                                                              "site": {"type": "string"}},
                             "dependentRequired": {"serial": ["site"]}},
        "identification": [["serial"]]}, headers=admin.headers).json()
    body = {"domain": domain, "name": "reader-1", "ci_class": "badge_reader", "environment": "production",
            "owner_id": str(admin.id), "attributes": {"serial": "B1"}}
    assert_problem(client.post("/api/v1/cis", json=body, headers=admin.headers), 422, "attributes")
    reader = client.post("/api/v1/cis", json={**body, "attributes": {"serial": "B1", "site": "HQ"}},
                         headers=admin.headers).json()
    client.patch(f"/api/v1/ci-classes/{cls['id']}", json={"identification": [["site", "serial"]], "version": 1},
                 headers=admin.headers).raise_for_status()
    rows = [{"ci_class": "badge_reader", "name": "reader-1", "attributes": {"serial": "B1", "site": "HQ"}}]
    response = client.post("/api/v1/cmdb/import", params={"source": "cmdb-scan", "domain": domain},
                           files={"file": ("r.ndjson", "\n".join(json.dumps(r) for r in rows).encode())},
                           headers=admin.headers).json()
    assert (response["created"], response["updated"] + response["unchanged"]) == (0, 1)  # still matched
    assert client.get(f"/api/v1/cis/{reader['id']}", headers=admin.headers).status_code == 200


def test_nul_in_attributes_is_a_422(client, infra):
    admin, domain = infra["admin"], infra["domain"]
    assert_problem(client.post("/api/v1/cis", json={"domain": domain, "name": "n", "ci_class": "application",
                                                    "environment": "test", "owner_id": str(admin.id),
                                                    "attributes": {"repo": "a\u0000b"}}, headers=admin.headers), 422)


def test_impact_shows_the_open_incidents_and_coming_changes_on_what_would_fail(client, world):
    from tests.test_changes import PLANS, make_change, move, window

    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    manager, owner = world.user(domain, "change_manager"), world.user(domain, "service_owner")
    switch = ci(client, admin, domain, "network_device", name="edge-switch")
    server = ci(client, admin, domain, name="app-server")
    bystander = ci(client, admin, domain, name="unrelated")
    link(client, admin, server, switch, "depends_on")

    def incident(on: dict, **extra) -> dict:
        created = client.post("/api/v1/incidents", headers=admin.headers, json={
            "domain": domain, "short_description": f"Trouble on {on['name']}", "impact": "high", "urgency": "high",
            "ci_id": on["id"], **extra})
        assert created.status_code == 201, created.text
        return created.json()

    open_on_server = incident(server)
    incident(bystander)
    closed = incident(server)
    assert api_patch(client, admin, f"/api/v1/incidents/{closed['id']}", status="cancelled").status_code == 200
    coming = make_change(client, owner, domain, affected_cis=[switch["id"]], **window(), **PLANS)
    move(client, owner, coming, "submitted")
    move(client, manager, coming, "under_review", "approved", "scheduled")
    make_change(client, owner, domain, affected_cis=[server["id"]], **window(), **PLANS)  # a draft: not coming yet

    report = client.get(f"/api/v1/cis/{switch['id']}/impact", headers=admin.headers).json()
    assert report["open_incidents"]["count"] == 1
    assert [(i["id"], i["ci_id"], i["priority"]) for i in report["open_incidents"]["items"]] == [
        (open_on_server["id"], server["id"], "critical")]
    assert report["upcoming_changes"]["count"] == 1
    assert [(c["id"], c["status"]) for c in report["upcoming_changes"]["items"]] == [(coming["id"], "scheduled")]
    # what the switch needs is another question: no work items there
    needs = client.get(f"/api/v1/cis/{server['id']}/dependencies", headers=admin.headers).json()
    assert needs.get("open_incidents") is None
    # someone who may see CIs but not incidents or changes sees none of them
    role = f"ci_reader_{uuid.uuid4().hex[:8]}"
    made = client.post("/api/v1/roles", headers=world.admin().headers, json={"name": role, "permissions": ["ci.view"]})
    assert made.status_code == 201, made.text
    viewer = world.user(domain, role)
    seen = client.get(f"/api/v1/cis/{switch['id']}/impact", headers=viewer.headers).json()
    assert (seen["open_incidents"]["count"], seen["upcoming_changes"]["count"]) == (0, 0)


def test_a_rolled_back_schema_edit_is_not_remembered(client, database, infra):
    """Compiled schemas are remembered by their text, not the class's version: an edit that was
    rolled back had version 2 too, and the committed version 2 must be checked by its own schema."""
    from gaas.cmdb import service
    from gaas.cmdb.schemas import CIClassUpdate
    from gaas.core import db as gaas_db
    from gaas.iam.service import system_actor

    admin, domain = infra["admin"], infra["domain"]
    cls = client.post("/api/v1/ci-classes", json={
        "name": unique("kiosk_"), "label": "Kiosk", "domain": domain,
        "attribute_schema": {"type": "object", "properties": {"serial": {"type": "string"}}},
        "identification": [["serial"]]}, headers=admin.headers).json()
    integer_serials = {"type": "object", "properties": {"serial": {"type": "integer"}}}
    actor = system_actor()
    with database.factory() as session:
        gaas_db.set_context(session, actor)
        edited = service.update_class(session, actor, uuid.UUID(cls["id"]),
                                      CIClassUpdate(attribute_schema=integer_serials, version=1), None)
        assert edited.version == 2
        with pytest.raises(Exception) as refused:
            service.validate_attributes(edited, {"serial": "K-1"})
        assert refused.value.errors[0]["field"] == "attributes.serial"
        session.rollback()
    text_serials = {"type": "object", "properties": {"serial": {"type": "string", "minLength": 2}}}
    patched = client.patch(f"/api/v1/ci-classes/{cls['id']}", json={"attribute_schema": text_serials, "version": 1},
                           headers=admin.headers).json()
    assert patched["version"] == 2
    body = {"domain": domain, "name": unique("kiosk-"), "ci_class": cls["name"], "environment": "production",
            "owner_id": str(admin.id)}
    created = client.post("/api/v1/cis", json={**body, "attributes": {"serial": "K-1"}}, headers=admin.headers)
    assert created.status_code == 201, created.text
    assert_problem(client.post("/api/v1/cis", json={**body, "attributes": {"serial": "K"}}, headers=admin.headers),
                   422, "attributes.serial")


def test_a_schema_with_integers_beyond_64_bits_still_validates(client, infra):
    admin, domain = infra["admin"], infra["domain"]
    cls = client.post("/api/v1/ci-classes", json={
        "name": unique("meter_"), "label": "Meter", "domain": domain,
        "attribute_schema": {"type": "object", "properties": {"reading": {"type": "integer", "maximum": 2 ** 70}}},
        "identification": [["reading"]]}, headers=admin.headers)
    assert cls.status_code == 201, cls.text
    body = {"domain": domain, "name": unique("meter-"), "ci_class": cls.json()["name"], "environment": "production",
            "owner_id": str(admin.id)}
    created = client.post("/api/v1/cis", json={**body, "attributes": {"reading": 2 ** 65}}, headers=admin.headers)
    assert created.status_code == 201, created.text
    assert_problem(client.post("/api/v1/cis", json={**body, "attributes": {"reading": 2 ** 71}},
                               headers=admin.headers), 422, "attributes.reading")
