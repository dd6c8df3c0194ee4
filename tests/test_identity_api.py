"""The identity resources through the shared battery, plus their own rules."""

from __future__ import annotations

from typing import Any

from tests.battery import ResourceBattery
from tests.support import Person, World, assert_problem, audit_rows, rid, unique


class TestUsers(ResourceBattery):
    path = "/api/v1/users"
    entity_type = "user"
    table = "gaas_iam.users"
    history_resource = "users"
    list_filter = "email"
    update = {"name": "Renamed Person", "timezone": "Europe/Paris"}
    bad_inputs = [
        ({"name": 42}, "name"),                              # wrong type
        ({"name": "x" * 201}, "name"),                       # over-long string
        ({"email": "not-an-email"}, "email"),                # bad format
        ({"status": "flying"}, "status"),                    # bad enum value
        ({"colour": "blue"}, "colour"),                      # unknown field
        ({"domain": "Not A Code"}, "domain"),                # bad pattern
        ({"timezone": "Mars/Olympus"}, "timezone"),          # not a real time zone
        ({"password": "short"}, "password"),                 # too short
        ({"name": None}, "name"),                            # null for a required field
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "auditor")

    def body(self, domain: str) -> dict[str, Any]:
        name = unique("p")
        return {"email": f"{name}@example.org", "username": name, "name": name.title(), "domain": domain,
                "password": "a long enough password"}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["email"]


class TestRoles(ResourceBattery):
    path = "/api/v1/roles"
    entity_type = "role"
    table = "gaas_iam.roles"
    history_resource = "roles"
    list_filter = "name"
    update = {"description": "Night shift"}
    bad_inputs = [
        ({"permissions": ["incident.fly"]}, "permissions[0]"),      # not in the catalogue
        ({"permissions": "incident.view"}, "permissions"),          # wrong type
        ({"permissions": ["Incident View"]}, "permissions.0"),      # malformed permission
        ({"name": "Has Spaces"}, "name"),
        ({"name": "r" * 101}, "name"),
        ({"is_system": True}, "is_system"),                         # unknown (read-only) field
        ({"domain": 7}, "domain"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "service_desk_agent")

    def body(self, domain: str) -> dict[str, Any]:
        return {"name": unique("night_"), "domain": domain, "description": "Nights",
                "permissions": ["incident.edit", "incident.view"]}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["name"]


class TestDomains(ResourceBattery):
    path = "/api/v1/domains"
    entity_type = "domain"
    table = "gaas_iam.domains"
    history_resource = "domains"
    list_filter = "q"
    update = {"name": "Renamed domain"}
    bad_inputs = [
        ({"code": "UPPER"}, "code"),
        ({"code": "x"}, "code"),
        ({"name": ""}, "name"),
        ({"active": "sometimes"}, "active"),
        ({"parent": "none"}, "parent"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        return world.user(None, "platform_admin")

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "domain_admin")

    def body(self, domain: str) -> dict[str, Any]:
        return {"code": unique("dom"), "name": "A domain", "description": "For tests"}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["code"]

    def test_permission_denied(self, client, database, world, me, home):
        # A domain administrator may not create, edit or delete domains, not even their own.
        admin = world.user(home, "domain_admin")
        assert assert_problem(client.post(self.path, json=self.body(home), headers=admin.headers), 403)["permission"]
        own = client.get(self.path, headers=admin.headers).json()["items"][0]
        assert own["code"] == home
        url = f"{self.path}/{own['id']}"
        assert_problem(client.patch(url, json={"name": "Mine", "version": own["version"]}, headers=admin.headers), 403)
        assert_problem(client.delete(url, headers=admin.headers), 403)
        assert client.get(url, headers=admin.headers).json() == own

    def test_other_domain_record_is_invisible_and_unwritable(self, client, world, me, home, elsewhere):
        # Domains are created by global administrators; a domain user sees only their own domains.
        stranger = world.user(elsewhere, "domain_admin")
        listed = client.get(self.path, headers=stranger.headers).json()["items"]
        assert [d["code"] for d in listed] == [elsewhere]
        home_id = client.get(self.path, params={"q": home}, headers=me.headers).json()["items"][0]["id"]
        assert_problem(client.get(f"{self.path}/{home_id}", headers=stranger.headers), 404)
        assert_problem(client.patch(f"{self.path}/{home_id}", json={"name": "x", "version": 1},
                                    headers=stranger.headers), 404)
        assert_problem(client.post(self.path, json=self.body(home), headers=stranger.headers), 403)


# ---- rules beyond the battery --------------------------------------------------------------------

def test_email_is_unique_across_domains(client, world):
    first, second = world.domain(), world.domain()
    admin_a, admin_b = world.user(first, "domain_admin"), world.user(second, "domain_admin")
    email = f"{unique('dup')}@example.org"
    assert client.post("/api/v1/users", json={"email": email, "name": "A", "domain": first},
                       headers=admin_a.headers).status_code == 201
    response = client.post("/api/v1/users", json={"email": email.upper(), "name": "B", "domain": second},
                           headers=admin_b.headers)
    assert_problem(response, 409, "email")


def test_domain_admin_cannot_create_global_users_or_roles(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    response = client.post("/api/v1/users", json={"email": f"{unique('g')}@example.org", "name": "G"},
                           headers=admin.headers)
    assert assert_problem(response, 403)["permission"] == "user.create"
    response = client.post("/api/v1/roles", json={"name": unique("glob_"), "permissions": []},
                           headers=admin.headers)
    assert_problem(response, 403)


def test_no_escalation_through_roles(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    # domain_admin lacks domain.manage, so cannot put it in a role ...
    response = client.post("/api/v1/roles", json={"name": unique("esc_"), "domain": domain,
                                                  "permissions": ["domain.manage"]}, headers=admin.headers)
    assert_problem(response, 403)
    # ... nor give a global-scope role, nor the platform_admin role in its domain.
    victim = world.user(domain)
    roles = client.get("/api/v1/roles", params={"name": "platform_admin"}, headers=admin.headers).json()["items"]
    platform_admin = roles[0]["id"]
    response = client.post(f"/api/v1/users/{victim.id}/roles", json={"role_id": platform_admin},
                           headers=admin.headers)
    assert_problem(response, 403)
    domains = client.get("/api/v1/domains", headers=admin.headers).json()["items"]
    response = client.post(f"/api/v1/users/{victim.id}/roles",
                           json={"role_id": platform_admin, "scope_type": "domain", "scope_id": domains[0]["id"]},
                           headers=admin.headers)
    assert_problem(response, 403)


def test_default_roles_are_seeded_and_protected(client, world):
    admin = world.admin()
    names = {r["name"] for r in client.get("/api/v1/roles", params={"limit": 100}, headers=admin.headers)
             .json()["items"] if r["is_system"]}
    assert names == {"platform_admin", "domain_admin", "service_owner", "service_desk_agent", "change_manager",
                     "cmdb_admin", "finance_officer", "auditor"}
    auditor = client.get("/api/v1/roles", params={"name": "auditor"}, headers=admin.headers).json()["items"][0]
    assert "audit.view" in auditor["permissions"]
    assert all(p.endswith(".view") for p in auditor["permissions"])
    assert_problem(client.delete(f"/api/v1/roles/{auditor['id']}", headers=admin.headers), 409)
    response = client.patch(f"/api/v1/roles/{auditor['id']}", json={"permissions": [], "version": auditor["version"]},
                            headers=admin.headers)
    assert_problem(response, 422, "permissions")


def test_role_assignment_scopes_and_audit(client, database, world):
    home, other = world.domain(), world.domain()
    admin = world.admin()
    person = world.user(home)
    agent = client.get("/api/v1/roles", params={"name": "service_desk_agent"}, headers=admin.headers).json()["items"][0]
    other_id = client.get("/api/v1/domains", params={"q": other}, headers=admin.headers).json()["items"][0]["id"]

    # A domain scope on another domain widens what the user sees.
    request_id = rid()
    response = client.post(f"/api/v1/users/{person.id}/roles",
                           json={"role_id": agent["id"], "scope_type": "domain", "scope_id": other_id},
                           headers={**admin.headers, "X-Request-ID": request_id})
    assert response.status_code == 201, response.text
    assignment = response.json()
    assert assignment["scope_domain"] == other
    rows = audit_rows(database, request_id)
    assert [(r["action"], r["entity_type"], r["entity_id"]) for r in rows] == [("assign_role", "user", person.id)]
    assert rows[0]["changes"]["after"]["role"] == "service_desk_agent"
    assert rows[0]["changes"]["after"]["scope_id"] == other_id

    me = client.get("/api/v1/me", headers=person.headers).json()
    assert me["visible_domains"] == sorted([home, other])
    duplicate = client.post(f"/api/v1/users/{person.id}/roles",
                            json={"role_id": agent["id"], "scope_type": "domain", "scope_id": other_id},
                            headers=admin.headers)
    assert_problem(duplicate, 409)
    missing_scope = client.post(f"/api/v1/users/{person.id}/roles",
                                json={"role_id": agent["id"], "scope_type": "domain"}, headers=admin.headers)
    assert_problem(missing_scope, 422, "scope_id")
    listed = client.get(f"/api/v1/users/{person.id}/roles", headers=admin.headers).json()
    assert [a["id"] for a in listed] == [assignment["id"]]

    request_id = rid()
    removed = client.delete(f"/api/v1/users/{person.id}/roles/{assignment['id']}",
                            headers={**admin.headers, "X-Request-ID": request_id})
    assert removed.status_code == 204
    assert [r["action"] for r in audit_rows(database, request_id)] == ["unassign_role"]
    assert client.get("/api/v1/me", headers=person.headers).json()["visible_domains"] == [home]


def test_list_pagination_is_keyset_stable_and_bounded(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    for i in range(7):
        client.post("/api/v1/users", json={"email": f"{unique('pg')}@example.org", "name": f"Page {i % 3}",
                                           "domain": domain}, headers=admin.headers)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"domain": domain, "limit": 3, "sort": "name"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/users", params=params, headers=admin.headers).json()
        seen += [u["id"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = client.get("/api/v1/users", params={"domain": domain, "limit": 100, "sort": "name"},
                            headers=admin.headers).json()["items"]
    assert seen == [u["id"] for u in everything]
    assert len(seen) == len(set(seen)) == 8
    assert_problem(client.get("/api/v1/users", params={"limit": 100000}, headers=admin.headers), 422, "limit")
    assert_problem(client.get("/api/v1/users", params={"sort": "password_hash"}, headers=admin.headers), 422, "sort")
    assert_problem(client.get("/api/v1/users", params={"cursor": "garbage"}, headers=admin.headers), 422, "cursor")


def test_user_cannot_delete_self_and_me_endpoint(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    assert_problem(client.delete(f"/api/v1/users/{admin.id}", headers=admin.headers), 409)
    me = client.get("/api/v1/me", headers=admin.headers)
    assert me.json()["email"] == admin.email
    assert me.headers["etag"] == f'"{me.json()["version"]}"'
    updated = client.patch("/api/v1/me", json={"timezone": "Africa/Nairobi", "version": me.json()["version"]},
                           headers=admin.headers)
    assert updated.status_code == 200
    assert updated.json()["timezone"] == "Africa/Nairobi"
    assert_problem(client.patch("/api/v1/me", json={"domain": "elsewhere"}, headers=admin.headers), 422, "domain")


def test_search_wildcards_are_literal(client, world):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    assert client.get("/api/v1/users", params={"q": "%", "domain": domain}, headers=admin.headers).json()["items"] == []
    assert client.get("/api/v1/users", params={"q": "_", "domain": domain}, headers=admin.headers).json()["items"] == []
    assert client.get("/api/v1/users", params={"q": admin.email[:6], "domain": domain},
                      headers=admin.headers).json()["items"]


def test_domains_are_shown_only_to_holders_of_domain_view(client, world):
    domain = world.domain()
    role = unique("no_domain_view_")
    made = client.post("/api/v1/roles", json={"name": role, "permissions": ["incident.view"]},
                       headers=world.admin().headers)
    assert made.status_code == 201, made.text
    stranger, viewer = world.user(domain, role), world.user(domain, "service_desk_agent")
    listed = client.get("/api/v1/domains", headers=viewer.headers)
    assert listed.status_code == 200, listed.text
    [own] = [d for d in listed.json()["items"] if d["code"] == domain]
    assert client.get(f"/api/v1/domains/{own['id']}", headers=viewer.headers).json()["code"] == domain
    assert assert_problem(client.get("/api/v1/domains", headers=stranger.headers), 403)["permission"] == "domain.view"
    assert_problem(client.get(f"/api/v1/domains/{own['id']}", headers=stranger.headers), 404)
