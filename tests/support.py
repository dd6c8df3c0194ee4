"""Plain factory helpers and assertions shared by the tests."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from gaas.core.app import create_app
from gaas.core.db import unit_of_work
from gaas.iam import service as iam
from gaas.iam.schemas import DomainCreate, TokenCreate, UserCreate, UserRoleCreate

PASSWORD = "correct horse battery"


@dataclass
class Database:
    name: str
    owner_url: URL
    app_url: URL
    app_engine: Engine
    owner_engine: Engine
    factory: sessionmaker[Session]

    def psycopg_app(self) -> psycopg.Connection:
        """A raw connection as the application role: what the platform itself connects as."""
        return psycopg.connect(self.app_url.set(drivername="postgresql").render_as_string(hide_password=False))

    def owner_rows(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """Read as the owner (bypasses RLS): to check what really is in the database."""
        with self.owner_engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(query), params).mappings()]


class StrictClient(TestClient):
    """A test client for which any 5xx response fails the test on the spot."""

    def request(self, *args: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response = super().request(*args, **kwargs)
        assert response.status_code < 500, f"server error {response.status_code}: {response.text}"
        return response


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@dataclass
class Person:
    id: uuid.UUID
    email: str
    domain: str | None
    token: str
    password: str = PASSWORD

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """Makes domains, users with roles, and tokens, through the service layer as the system."""

    database: Database
    client: StrictClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = StrictClient(create_app(self.database.factory))

    def session(self):
        return unit_of_work(iam.system_actor(), self.database.factory)

    def domain(self, code: str | None = None, **kw: Any) -> str:
        code = code or unique("d")
        with self.session() as db:
            iam.create_domain(db, iam.system_actor(), DomainCreate(code=code, name=kw.pop("name", code.title()), **kw))
        return code

    def user(self, domain: str | None, *roles: str, password: str = PASSWORD, read_only: bool = False,
             **kw: Any) -> Person:
        """A user of `domain` holding `roles` scoped to that domain (or globally for a global user)."""
        actor = iam.system_actor()
        name = unique("u")
        with self.session() as db:
            user = iam.create_user(db, actor, UserCreate(email=f"{name}@example.org", username=name, name=name.title(),
                                                         password=password, domain=domain, **kw))
            for role_name in roles:
                role = iam.role_by_name(db, role_name)
                if domain is None:
                    scope = UserRoleCreate(role_id=role.id, scope_type="global")
                else:
                    scope = UserRoleCreate(role_id=role.id, scope_type="domain",
                                           scope_id=iam.domain_by_code(db, domain).id)
                iam.assign_role(db, actor, user.id, scope)
            token, _ = iam.create_token(db, actor, TokenCreate(name="test", read_only=read_only), user.id)
        return Person(id=user.id, email=user.email, domain=domain, token=token, password=password)

    def admin(self) -> Person:
        return self.user(None, "platform_admin")


def audit_rows(database: Database, request_id: str) -> list[dict[str, Any]]:
    return database.owner_rows(
        "SELECT action, entity_type, entity_id, changes, user_id, user_email, domain, request_id, ip_address,"
        " user_agent FROM gaas_audit.audit_log WHERE request_id = :rid ORDER BY timestamp, id",
        rid=request_id,
    )


def rid() -> str:
    return "t-" + secrets.token_hex(8)


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """An RFC 9457 body with the given status, naming `field` among its errors when given."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    assert "Traceback" not in response.text
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, f"expected an error naming {field!r}, got {fields}: {body}"
    return body


# ---- ITSM factories (incidents, problems, changes) through the API ------------------------------

def api_service(client: TestClient, who: Person, domain: str, type_: str = "business", parent: str | None = None,
                **extra: Any) -> dict[str, Any]:
    body = {"domain": domain, "name": unique(f"{type_}-"), "type": type_, "owner_id": str(who.id),
            "status": "active", **({"parent_service_id": parent} if parent else {}), **extra}
    response = client.post("/api/v1/services", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def api_ci(client: TestClient, who: Person, domain: str | None, ci_class: str = "application",
           **extra: Any) -> dict[str, Any]:
    attributes = extra.pop("attributes", None)
    if attributes is None:
        attributes = {"hostname": unique("h")} if ci_class in ("server", "virtual_machine", "network_device") else {}
    body = {"domain": domain, "name": extra.pop("name", unique(f"{ci_class}-")), "ci_class": ci_class,
            "environment": "production", "owner_id": str(who.id), "attributes": attributes, **extra}
    response = client.post("/api/v1/cis", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def api_link(client: TestClient, who: Person, source: dict, target: dict, type_: str = "depends_on") -> None:
    response = client.post("/api/v1/ci-relationships", json={
        "source_ci_id": source["id"], "target_ci_id": target["id"], "relationship_type": type_}, headers=who.headers)
    assert response.status_code == 201, response.text


def api_incident(client: TestClient, who: Person, domain: str, **extra: Any) -> dict[str, Any]:
    body = {"domain": domain, "short_description": unique("Portal down "), "impact": "medium",
            "urgency": "medium", **extra}
    response = client.post("/api/v1/incidents", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def api_problem(client: TestClient, who: Person, domain: str, **extra: Any) -> dict[str, Any]:
    body = {"domain": domain, "short_description": unique("Recurring outage "), "priority": "high", **extra}
    response = client.post("/api/v1/problems", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def api_patch(client: TestClient, who: Person, url: str, **changes: Any) -> httpx.Response:
    """PATCH with the record's current version (read first)."""
    current = client.get(url, headers=who.headers)
    assert current.status_code == 200, current.text
    return client.patch(url, json={**changes, "version": current.json()["version"]}, headers=who.headers)


# ---- knowledge factories (articles) through the API --------------------------------------------

def api_article(client: TestClient, who: Person, domain: str | None, **extra: Any) -> dict[str, Any]:
    body = {"domain": domain, "title": extra.pop("title", unique("How to fix ")),
            "body": extra.pop("body", "Restart the service.\n\nThen check the logs."), **extra}
    response = client.post("/api/v1/articles", json=body, headers=who.headers)
    assert response.status_code == 201, response.text
    return response.json()


def api_publish(client: TestClient, author: Person, reviewer: Person, article: dict[str, Any]) -> dict[str, Any]:
    """Submit the article's open draft (as `author`) and approve it (as `reviewer`)."""
    url = f"/api/v1/articles/{article['id']}"
    version = client.get(url, params={"count_view": "false"}, headers=author.headers).json()["version"]
    submitted = client.post(f"{url}/submit", json={"version": version}, headers=author.headers)
    assert submitted.status_code == 200, submitted.text
    approved = client.post(f"{url}/approve", json={"version": submitted.json()["version"]}, headers=reviewer.headers)
    assert approved.status_code == 200, approved.text
    return approved.json()
