"""Schemathesis against /api/openapi.json: every documented operation, called with generated
requests as an authenticated user, answers without a server error and with a response that
conforms to the schema it documents.

The schema is loaded from the ASGI application itself (the test database behind it), so what is
fuzzed is exactly what `create_app()` serves. Each operation runs twice, as a global platform
administrator and as an administrator of one domain, with a small, derandomized number of
examples (the fuzzing phase only), so that CI stays bounded and a failure replays the same way.
Only the operations in EXCLUDED are left out, each with its reason.

Generated path ids are replaced by the ids of real records made for this module (one of each
kind): random UUIDs only ever reach 404, while real ones reach the success responses, whose
bodies are what the response schemas describe.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy.orm import sessionmaker

from gaas.core.app import create_app
from tests.support import (
    PASSWORD,
    Person,
    World,
    api_article,
    api_ci,
    api_incident,
    api_problem,
    api_service,
    unique,
)

MAX_EXAMPLES = 3

# Operations that are not fuzzed, each with the reason. Nothing else is left out.
EXCLUDED: dict[tuple[str, str], str] = {
    # Revokes the very token the fuzzer authenticates with: every later call would be a 401.
    ("POST", "/api/v1/auth/logout"): "revokes the caller's own token",
}

CONFIG = SchemathesisConfig.from_dict({
    "seed": 20260109,
    "generation": {"mode": "positive", "max-examples": MAX_EXAMPLES, "deterministic": True},
    # Only the fuzzing phase: the coverage phase's case count is not bounded by max-examples, and
    # the schema carries no examples of its own.
    "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "stateful": {"enabled": False}},
})


class Records:
    """One record of each kind, in one domain, made by the platform administrator; the fuzzer's
    path ids point at them."""

    def __init__(self, world: World) -> None:
        client = self.client = world.client
        self.domain = world.domain()
        self.admin = world.admin()
        self.domain_admin = world.user(self.domain, "domain_admin")
        target = world.user(self.domain, "service_desk_agent")
        admin = self.admin
        get = client.get

        def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(url, json=body, headers=admin.headers)
            assert response.status_code in (200, 201), (url, response.text)
            return response.json()

        domain_row = get("/api/v1/domains", params={"q": self.domain}, headers=admin.headers).json()["items"][0]
        service = api_service(client, admin, self.domain)
        other_service = api_service(client, admin, self.domain)
        relationship = post(f"/api/v1/services/{service['id']}/relationships",
                            {"target_service_id": other_service["id"], "relationship_type": "depends_on"})
        stakeholder = post(f"/api/v1/services/{service['id']}/stakeholders",
                           {"user_id": str(target.id), "role": "stakeholder"})
        ci = api_ci(client, admin, self.domain, "server")
        other_ci = api_ci(client, admin, self.domain)
        ci_link = post("/api/v1/ci-relationships", {"source_ci_id": other_ci["id"], "target_ci_id": ci["id"],
                                                     "relationship_type": "runs_on"})
        ci_class = post("/api/v1/ci-classes", {"name": unique("fuzz_"), "label": "Fuzz", "domain": self.domain,
                                               "attribute_schema": {"type": "object", "properties": {}}})
        incident = api_incident(client, admin, self.domain, service_id=service["id"])
        problem = api_problem(client, admin, self.domain)
        change = post("/api/v1/changes", {"domain": self.domain, "short_description": "Patch", "type": "normal"})
        cost = post("/api/v1/cost-entries", {"service_id": service["id"], "category": "people", "amount": "10.00",
                                             "period_start": "2026-01-01", "period_end": "2026-01-31"})
        role = post("/api/v1/roles", {"name": unique("fuzz_role_"), "domain": self.domain,
                                      "permissions": ["incident.view"]})
        assignment = post(f"/api/v1/users/{target.id}/roles", {"role_id": role["id"], "scope_type": "domain",
                                                              "scope_id": domain_row["id"]})
        token = post("/api/v1/tokens?user_id=" + str(target.id), {"name": "fuzz"})
        policy = post("/api/v1/sla-policies", {"name": unique("fuzz-"), "domain": self.domain, "priority": "low",
                                               "resolution_minutes": 600})
        template = post("/api/v1/change-templates", {
            "domain": self.domain, "name": unique("fuzz-"), "short_description": "Renew",
            "implementation_plan": "do", "rollback_plan": "undo", "test_plan": "check"})
        window = post("/api/v1/change-windows", {
            "domain": self.domain, "name": unique("fuzz-"), "kind": "maintenance",
            "start_at": "2030-01-01T01:00:00Z", "end_at": "2030-01-01T05:00:00Z"})
        definition = post("/api/v1/workflow-definitions", {
            "name": unique("fuzz-"), "domain": self.domain,
            "steps": [{"type": "approval", "approver_role": "change_manager"},
                      {"type": "task", "assignee_role": "service_desk_agent", "instructions": "Do it"}]})
        instance = post("/api/v1/workflow-instances", {"definition_id": definition["id"], "domain": self.domain})
        webhook = post("/api/v1/webhooks", {"name": unique("fuzz-"), "domain": self.domain,
                                            "url": "https://hooks.example.org/gaas", "event_types": ["incident.*"]})
        article = api_article(client, admin, self.domain)
        link = post(f"/api/v1/articles/{article['id']}/links", {"target_type": "service",
                                                                "target_id": service["id"]})
        approval = instance["approvals"][0] if instance.get("approvals") else None

        # Path parameter name -> the id of a real record of that kind.
        self.ids: dict[str, str] = {
            "domain_id": domain_row["id"], "user_id": str(target.id), "assignment_id": assignment["id"],
            "role_id": role["id"], "token_id": token["id"], "service_id": service["id"],
            "relationship_id": relationship["id"], "stakeholder_id": stakeholder["id"], "entry_id": cost["id"],
            "class_id": ci_class["id"], "ci_id": ci["id"], "incident_id": incident["id"],
            "problem_id": problem["id"], "policy_id": policy["id"], "change_id": change["id"],
            "template_id": template["id"], "window_id": window["id"], "definition_id": definition["id"],
            "instance_id": instance["id"], "webhook_id": webhook["id"], "article_id": article["id"],
            "link_id": link["id"],
        }
        if approval is not None:
            self.ids["approval_id"] = approval["id"]
        person = str(target.id)
        # Body field -> a real record the field may refer to.
        self.body_ids: dict[str, str] = {
            "owner_id": person, "user_id": person, "assigned_to": person, "manager_id": person,
            "reviewer_id": person, "service_id": service["id"], "target_service_id": other_service["id"],
            "ci_id": ci["id"], "source_ci_id": other_ci["id"], "target_ci_id": ci["id"],
            "incident_id": incident["id"], "problem_id": problem["id"], "role_id": role["id"],
            "definition_id": definition["id"], "template_id": template["id"],
        }
        self.login = target.email
        self.ci_link = ci_link["id"]

    def path_parameters(self, path: str, generated: dict[str, Any]) -> dict[str, Any]:
        chosen = {name: self.ids.get(name, value) for name, value in generated.items()}
        if path.startswith("/api/v1/ci-relationships/"):
            chosen["relationship_id"] = self.ci_link
        if path == "/api/v1/{resource}/{record_id}/history":
            chosen.update(resource="incidents", record_id=self.ids["incident_id"])
        if path.startswith("/api/now/table/"):
            chosen["table_name"] = "incident"
            if "sys_id" in chosen:
                chosen["sys_id"] = uuid.UUID(self.ids["incident_id"]).hex
        return chosen

    def body(self, path: str, body: Any) -> Any:
        """Generated references replaced by real ones of the same kind (so that more requests get
        past validation to the code that writes, and to the success responses)."""
        if not isinstance(body, dict):
            return body
        chosen = dict(body)
        # The domain and the people the records refer to stay usable for the operations after.
        if path == "/api/v1/domains/{domain_id}" and "active" in body:
            chosen["active"] = True
        if path == "/api/v1/users/{user_id}" and "status" in body:
            chosen["status"] = "active"
        for name in body:
            if name in self.body_ids:
                chosen[name] = self.body_ids[name]
        if "domain" in body:
            chosen["domain"] = self.domain
        if body.get("scope_type") == "domain":
            chosen["scope_id"] = self.ids["domain_id"]
        return chosen

    def current_version(self, path: str, who: Person) -> int | None:
        """The version of the record at `path` (or, for an action such as /submit, its parent)."""
        for candidate in (path, path.rsplit("/", 1)[0]):
            response = self.client.get(candidate, headers=who.headers)
            if response.status_code == 200 and isinstance(response.json(), dict) and "version" in response.json():
                return response.json()["version"]
        return None

    def query(self, query: dict[str, Any] | None) -> dict[str, Any] | None:
        if query and "domain" in query:
            return {**query, "domain": self.domain}
        return query


@pytest.fixture(scope="module")
def records(world: World) -> Records:
    return Records(world)


def _operations() -> list[tuple[str, str]]:
    """Every operation the application documents (its OpenAPI document needs no database)."""
    document = create_app(sessionmaker()).openapi()
    return sorted((method.upper(), path) for path, item in document["paths"].items() for method in item)


OPERATIONS = _operations()
# Deletions last: they would otherwise remove the records the other operations are pointed at.
FUZZED = sorted((op for op in OPERATIONS if op not in EXCLUDED), key=lambda op: (op[0] == "DELETE", op))
CASES = [(*op, caller) for op in FUZZED for caller in ("platform_admin", "domain_admin")]


@pytest.fixture(scope="module")
def api_schema(world: World, records: Records):
    """The schema as the application under test serves it, from /api/openapi.json."""
    return schemathesis.openapi.from_asgi("/api/openapi.json", world.client.app, config=CONFIG)


def _call(case, who: Person, records: Records) -> None:
    if case.path_parameters:
        case.path_parameters = records.path_parameters(case.path, case.path_parameters)
    case.query = records.query(case.query)
    if (case.method.upper(), case.path) == ("POST", "/api/v1/auth/token"):
        case.body = {**(case.body or {}), "username": records.login, "password": PASSWORD}
    else:
        case.body = records.body(case.path, case.body)
    headers = dict(who.headers)
    if case.method.upper() in ("PATCH", "PUT", "POST", "DELETE") and case.path_parameters:
        # Optimistic locking: present the version the record is at (a generated one only ever
        # earns a 409), in the body when the body carries one, else in If-Match.
        version = records.current_version(case.formatted_path, who)
        if version is not None:
            if isinstance(case.body, dict) and "version" in case.body:
                case.body = {**case.body, "version": version}
            else:
                headers["If-Match"] = f'"{version}"'
        if case.headers:
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "if-match"}
    response = case.call(headers=headers)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance], headers=headers)


FUZZ = settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def test_exclusions_name_real_operations() -> None:
    assert set(EXCLUDED) <= set(OPERATIONS)
    assert len(FUZZED) == len(OPERATIONS) - len(EXCLUDED)


@pytest.mark.parametrize(("method", "path", "caller"), CASES, ids=[f"{m} {p} as {c}" for m, p, c in CASES])
def test_operation_answers_within_its_schema(method: str, path: str, caller: str, api_schema,
                                             records: Records) -> None:
    who = records.admin if caller == "platform_admin" else records.domain_admin
    operation = api_schema[path][method]

    @FUZZ
    @given(case=operation.as_strategy())
    def fuzz(case) -> None:
        _call(case, who, records)

    fuzz()
