"""The service portfolio: the battery, then the hierarchy, lifecycle and ownership rules."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest
from sqlalchemy import event

from tests.battery import ResourceBattery
from tests.support import Person, World, assert_problem, audit_rows, rid, unique


class TestServices(ResourceBattery):
    path = "/api/v1/services"
    entity_type = "service"
    table = "gaas_service_catalog.services"
    history_resource = "services"
    list_filter = "q"
    update: ClassVar[dict[str, Any]] = {"name": "Renamed service", "cost_people": "1234.50"}
    owners: ClassVar[dict[str, uuid.UUID]] = {}
    bad_inputs = [
        ({"type": "galactic"}, "type"),
        ({"cost_people": -1}, "cost_people"),
        ({"cost_process": "12.345"}, "cost_process"),
        ({"sla_target": 101}, "sla_target"),
        ({"name": "n" * 201}, "name"),
        ({"colour": "red"}, "colour"),
        ({"owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"manager_id": "not-a-uuid"}, "manager_id"),
        ({"parent_service_id": str(uuid.uuid4())}, "parent_service_id"),
        ({"status": "retired"}, "status"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"domain": None}, "domain"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        person = world.user(domain, "domain_admin")
        self.owners.setdefault(domain, person.id)
        return person

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "auditor")

    def body(self, domain: str) -> dict[str, Any]:
        return {"domain": domain, "name": unique("Citizen Portal "), "type": "business",
                "owner_id": str(self.owners[domain]), "description": "Online services for citizens",
                "sla_target": "99.90", "cost_people": "1000.00", "cost_process": "200.00",
                "cost_technology": "300.00"}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["name"]


@pytest.fixture(scope="module")
def portfolio(world: World):
    health, justice = world.domain(), world.domain()
    return {"health": health, "justice": justice, "admin": world.user(health, "domain_admin"),
            "owner": world.user(health, "service_owner"), "justice_admin": world.user(justice, "domain_admin")}


def make(client, who: Person, domain: str, type_: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"domain": domain, "name": unique(f"{type_} "), "type": type_, "owner_id": str(who.id),
            "parent_service_id": parent, **extra}
    response = client.post("/api/v1/services", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def patch(client, who: Person, service: dict[str, Any], **changes: Any):
    current = client.get(f"/api/v1/services/{service['id']}", headers=who.headers).json()
    return client.patch(f"/api/v1/services/{service['id']}", json={**changes, "version": current["version"]},
                        headers=who.headers)


def test_numbers_come_from_a_sequence_and_total_is_generated(client, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    first = make(client, admin, health, "business", cost_people="10.00", cost_process="2.50")
    second = make(client, admin, health, "business")
    assert first["number"].startswith("SRV") and len(first["number"]) == 10
    assert int(second["number"][3:]) > int(first["number"][3:])
    assert first["total_cost"] == "12.50"  # technology omitted counts as 0, not NULL
    assert second["total_cost"] == "0.00"


@pytest.mark.parametrize(("parent_type", "child_type", "allowed"), [
    ("business", "business", True), ("business", "technical", True), ("business", "application", False),
    ("technical", "business", False), ("technical", "application", True), ("application", "infrastructure", True),
    ("infrastructure", "application", False), ("infrastructure", "infrastructure", True),
])
def test_a_child_is_the_same_level_or_one_below(client, database, portfolio, parent_type, child_type, allowed):
    admin, health = portfolio["admin"], portfolio["health"]
    parent = make(client, admin, health, parent_type)
    request_id = rid()
    response = client.post("/api/v1/services", json={"domain": health, "name": unique("c"), "type": child_type,
                                                     "owner_id": str(admin.id), "parent_service_id": parent["id"]},
                           headers={**admin.headers, "X-Request-ID": request_id})
    if allowed:
        assert response.status_code == 201, response.text
    else:
        assert_problem(response, 422, "type")
        assert audit_rows(database, request_id) == []


def test_parent_must_be_in_the_same_domain(client, database, portfolio):
    root = portfolio["justice_admin"]
    justice_parent = make(client, root, portfolio["justice"], "business")
    admin = portfolio["admin"]
    response = client.post("/api/v1/services", json={
        "domain": portfolio["health"], "name": "x", "type": "technical", "owner_id": str(admin.id),
        "parent_service_id": justice_parent["id"]}, headers=admin.headers)
    assert_problem(response, 422, "parent_service_id")  # invisible to healthcare: "no such service"


def test_cross_domain_parent_visible_to_a_global_admin_is_refused(client, world, portfolio):
    root = world.admin()
    justice_parent = make(client, root, portfolio["justice"], "business")
    response = client.post("/api/v1/services", json={
        "domain": portfolio["health"], "name": "x", "type": "technical", "owner_id": str(root.id),
        "parent_service_id": justice_parent["id"]}, headers=root.headers)
    assert "same domain" in assert_problem(response, 422, "parent_service_id")["detail"]


def test_re_parenting_cannot_make_a_cycle(client, database, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    a = make(client, admin, health, "technical")
    b = make(client, admin, health, "technical", a["id"])
    c = make(client, admin, health, "technical", b["id"])
    for target in (c, b):
        request_id = rid()
        response = client.patch(f"/api/v1/services/{a['id']}", json={"parent_service_id": target["id"], "version": 1},
                                headers={**admin.headers, "X-Request-ID": request_id})
        assert "cycle" in assert_problem(response, 422, "parent_service_id")["detail"]
        assert audit_rows(database, request_id) == []
    assert_problem(client.patch(f"/api/v1/services/{a['id']}", json={"parent_service_id": a["id"], "version": 1},
                                headers=admin.headers), 422, "parent_service_id")
    # Moving a leaf elsewhere is fine, and making a node a root again too.
    assert patch(client, admin, c, parent_service_id=a["id"]).status_code == 200
    assert patch(client, admin, b, parent_service_id=None).json()["parent_service_id"] is None


def test_changing_type_must_fit_parent_and_children(client, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    top = make(client, admin, health, "business")
    mid = make(client, admin, health, "technical", top["id"])
    make(client, admin, health, "application", mid["id"])
    assert_problem(patch(client, admin, mid, type="infrastructure"), 422, "type")  # child application too high
    assert_problem(patch(client, admin, mid, type="application"), 422, "type")  # two below its parent
    assert_problem(patch(client, admin, mid, type="business"), 422, "type")  # its application child: two below
    leaf = make(client, admin, health, "technical", top["id"])
    assert patch(client, admin, leaf, type="business").status_code == 200  # business under business is fine


def test_lifecycle(client, database, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    service = make(client, admin, health, "business")
    assert service["status"] == "design"
    request_id = rid()
    response = client.patch(f"/api/v1/services/{service['id']}", json={"status": "active", "version": 1},
                            headers={**admin.headers, "X-Request-ID": request_id})
    assert response.json()["status"] == "active"
    rows = audit_rows(database, request_id)
    assert rows[0]["changes"] == {"before": {"status": "design"}, "after": {"status": "active"}}
    events = database.owner_rows("SELECT event_type, payload FROM gaas_workflow.outbox_events"
                                 " WHERE request_id = :r ORDER BY occurred_at", r=request_id)
    assert [e["event_type"] for e in events] == ["service.updated", "service.status_changed"]
    assert events[1]["payload"] == {"number": service["number"], "from": "design", "to": "active"}

    child = make(client, admin, health, "technical", service["id"], status="active")
    assert_problem(patch(client, admin, service, status="retired"), 409, "status")  # deprecate first
    assert patch(client, admin, service, status="deprecated").status_code == 200
    body = assert_problem(patch(client, admin, service, status="retired"), 409, "status")
    assert "active children" in body["detail"]
    assert patch(client, admin, child, status="deprecated").status_code == 200
    assert patch(client, admin, service, status="retired").json()["status"] == "retired"
    body = assert_problem(patch(client, admin, service, status="active"), 409, "status")
    assert body["errors"][0]["allowed"] == []
    # A retired service takes no new children.
    response = client.post("/api/v1/services", json={"domain": health, "name": "late", "type": "technical",
                                                     "owner_id": str(admin.id), "parent_service_id": service["id"]},
                           headers=admin.headers)
    assert_problem(response, 422, "parent_service_id")


def test_owner_and_manager_must_be_active_users_allowed_in_the_domain(client, world, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    outsider = portfolio["justice_admin"]
    inactive = world.user(health, status="inactive")
    for field, value in (("owner_id", outsider.id), ("owner_id", inactive.id), ("manager_id", outsider.id),
                         ("owner_id", uuid.uuid4())):
        body = {"domain": health, "name": "x", "type": "business", "owner_id": str(admin.id), field: str(value)}
        assert_problem(client.post("/api/v1/services", json=body, headers=admin.headers), 422, field)
    # A global user, and a user of another domain granted this one, are allowed.
    globe = world.user(None)
    assert make(client, admin, health, "business", manager_id=str(globe.id))["manager_id"] == str(globe.id)


def test_delete_needs_no_children_and_restore_needs_a_parent(client, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    top = make(client, admin, health, "business")
    child = make(client, admin, health, "technical", top["id"])
    assert_problem(client.delete(f"/api/v1/services/{top['id']}", headers=admin.headers), 409)
    assert client.delete(f"/api/v1/services/{child['id']}", headers=admin.headers).status_code == 200
    assert client.delete(f"/api/v1/services/{top['id']}", headers=admin.headers).status_code == 200
    assert_problem(client.post(f"/api/v1/services/{child['id']}/restore", headers=admin.headers), 409)
    assert client.post(f"/api/v1/services/{top['id']}/restore", headers=admin.headers).status_code == 200
    assert client.post(f"/api/v1/services/{child['id']}/restore", headers=admin.headers).status_code == 200


def test_filters_and_fuzzy_search(client, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    top = make(client, admin, health, "business", name=f"Vaccination Registry {unique('')}")
    make(client, admin, health, "technical", top["id"], name="Registry API")
    found = client.get("/api/v1/services", params={"q": "vacination registy", "domain": health},
                       headers=admin.headers).json()["items"]
    assert found[0]["id"] == top["id"]
    children = client.get("/api/v1/services", params={"parent": top["id"]}, headers=admin.headers).json()["items"]
    assert [c["name"] for c in children] == ["Registry API"]
    technical = client.get("/api/v1/services", params={"type": "technical", "domain": health, "limit": 500},
                           headers=admin.headers).json()["items"]
    assert technical and all(s["type"] == "technical" for s in technical)
    mine = client.get("/api/v1/services", params={"owner": str(admin.id), "status": "design", "limit": 500},
                      headers=admin.headers).json()["items"]
    assert top["id"] in [s["id"] for s in mine]


def test_relationships(client, database, world, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    a, b = make(client, admin, health, "application"), make(client, admin, health, "application")
    url = f"/api/v1/services/{a['id']}/relationships"
    request_id = rid()
    created = client.post(url, json={"target_service_id": b["id"], "relationship_type": "depends_on"},
                          headers={**admin.headers, "X-Request-ID": request_id})
    assert created.status_code == 201
    assert [r["action"] for r in audit_rows(database, request_id)] == ["add_relationship"]
    assert_problem(client.post(url, json={"target_service_id": b["id"], "relationship_type": "depends_on"},
                               headers=admin.headers), 409, "target_service_id")
    assert_problem(client.post(url, json={"target_service_id": a["id"], "relationship_type": "depends_on"},
                               headers=admin.headers), 422, "target_service_id")
    assert_problem(client.post(url, json={"target_service_id": b["id"], "relationship_type": "parent_of"},
                               headers=admin.headers), 422, "relationship_type")
    assert_problem(client.post(url, json={"target_service_id": b["id"], "relationship_type": "likes"},
                               headers=admin.headers), 422, "relationship_type")
    hidden = make(client, portfolio["justice_admin"], portfolio["justice"], "application")
    assert_problem(client.post(url, json={"target_service_id": hidden["id"], "relationship_type": "depends_on"},
                               headers=admin.headers), 422, "target_service_id")
    incoming = client.get(f"/api/v1/services/{b['id']}/relationships", params={"direction": "incoming"},
                          headers=admin.headers).json()
    assert [r["id"] for r in incoming] == [created.json()["id"]]
    assert client.get(f"/api/v1/services/{b['id']}/relationships", params={"direction": "outgoing"},
                      headers=admin.headers).json() == []
    assert client.delete(f"{url}/{created.json()['id']}", headers=admin.headers).status_code == 204
    assert client.get(url, headers=admin.headers).json() == []


def test_stakeholders(client, database, world, portfolio):
    admin, health = portfolio["admin"], portfolio["health"]
    service = make(client, admin, health, "business")
    url = f"/api/v1/services/{service['id']}/stakeholders"
    person = world.user(health)
    request_id = rid()
    added = client.post(url, json={"user_id": str(person.id), "role": "contributor"},
                        headers={**admin.headers, "X-Request-ID": request_id})
    assert added.status_code == 201
    assert audit_rows(database, request_id)[0]["changes"]["after"]["role"] == "contributor"
    assert_problem(client.post(url, json={"user_id": str(person.id), "role": "contributor"}, headers=admin.headers),
                   409, "user_id")
    assert client.post(url, json={"user_id": str(person.id), "role": "stakeholder"},
                       headers=admin.headers).status_code == 201
    assert_problem(client.post(url, json={"user_id": str(person.id), "role": "boss"}, headers=admin.headers),
                   422, "role")
    assert_problem(client.post(url, json={"user_id": str(portfolio["justice_admin"].id), "role": "stakeholder"},
                               headers=admin.headers), 422, "user_id")
    assert len(client.get(url, headers=admin.headers).json()) == 2
    assert client.delete(f"{url}/{added.json()['id']}", headers=admin.headers).status_code == 204
    assert [s["role"] for s in client.get(url, headers=admin.headers).json()] == ["stakeholder"]


def test_tree_rolls_costs_up_in_one_round_trip(client, database, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    top = make(client, admin, domain, "business", cost_people="100.00", cost_process="10.00", cost_technology="1.00")
    tech = make(client, admin, domain, "technical", top["id"], cost_people="20.00", cost_technology="5.00")
    app1 = make(client, admin, domain, "application", tech["id"], cost_technology="7.50")
    app2 = make(client, admin, domain, "application", tech["id"], cost_process="3.00")
    infra = make(client, admin, domain, "infrastructure", app1["id"], cost_technology="1000.00")
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(database.app_engine, "before_cursor_execute", count)
    try:
        nodes = client.get(f"/api/v1/services/{top['id']}/tree", headers=admin.headers).json()
    finally:
        event.remove(database.app_engine, "before_cursor_execute", count)
    tree_queries = [s for s in statements if "WITH RECURSIVE tree" in s]
    assert len(tree_queries) == 1
    by_id = {n["id"]: n for n in nodes}
    assert {n["id"]: n["depth"] for n in nodes} == {top["id"]: 0, tech["id"]: 1, app1["id"]: 2, app2["id"]: 2,
                                                    infra["id"]: 3}
    assert [n["path"] for n in nodes] == sorted(n["path"] for n in nodes)  # path order
    assert by_id[top["id"]]["rolled_up"] == {"people": "120.00", "process": "13.00", "technology": "1013.50",
                                             "total": "1146.50"}
    assert by_id[tech["id"]]["rolled_up"]["technology"] == "1012.50"
    assert by_id[infra["id"]]["rolled_up"] == by_id[infra["id"]]["own"]
    assert by_id[infra["id"]]["path"] == [top["name"], tech["name"], app1["name"], infra["name"]]
    whole = client.get("/api/v1/services/tree", params={"domain": domain}, headers=admin.headers).json()
    assert [n["id"] for n in whole] == [n["id"] for n in nodes]
    other = world.user(world.domain(), "domain_admin")
    assert_problem(client.get(f"/api/v1/services/{top['id']}/tree", headers=other.headers), 404)
    assert client.get("/api/v1/services/tree", params={"domain": domain}, headers=other.headers).json() == []


def test_service_scoped_roles_reach_the_sub_tree_only(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    mine = make(client, admin, domain, "business")
    child = make(client, admin, domain, "technical", mine["id"])
    theirs = make(client, admin, domain, "business")
    root = world.admin()
    person = world.user(domain)
    owner_role = client.get("/api/v1/roles", params={"name": "service_owner"}, headers=root.headers).json()["items"][0]
    response = client.post(f"/api/v1/users/{person.id}/roles", json={
        "role_id": owner_role["id"], "scope_type": "service", "scope_id": mine["id"]}, headers=root.headers)
    assert response.status_code == 201, response.text
    assert patch(client, person, child, description="owned through the parent").status_code == 200
    assert_problem(client.patch(f"/api/v1/services/{theirs['id']}", json={"description": "not mine", "version": 1},
                                headers=person.headers), 404)  # not even visible
    response = client.post("/api/v1/services", json={"domain": domain, "name": "new child", "type": "technical",
                                                     "owner_id": str(person.id), "parent_service_id": mine["id"]},
                           headers=person.headers)
    assert response.status_code == 201, response.text


def test_tree_json_escapes_any_name(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    tricky = 'Records "Main" \\ back\\slash, tab\t, ünïcödé ✓ </script>'
    top = make(client, admin, domain, "business", name=tricky, cost_people="0.10")
    nodes = client.get(f"/api/v1/services/{top['id']}/tree", headers=admin.headers).json()
    assert nodes[0]["name"] == tricky and nodes[0]["path"] == [tricky]
    assert nodes[0]["own"]["people"] == "0.10" and nodes[0]["parent_service_id"] is None
