"""Cost entries (battery, bulk, rules) and the cost report."""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from psycopg import sql
from starlette.testclient import TestClient

from gaas.core import db
from gaas.core.app import create_app
from gaas.core.settings import get_settings
from tests.battery import ResourceBattery
from tests.conftest import APP_PASSWORD, APP_ROLE, _admin_conn
from tests.support import Person, World, assert_problem, audit_rows, rid


def _service(world: World, domain: str, **costs: str) -> uuid.UUID:
    from gaas.catalog import service as catalog
    from gaas.catalog.schemas import ServiceCreate
    from gaas.iam import service as iam

    actor = iam.system_actor()
    with world.session() as db:
        owner = iam.list_users(db, actor, domain=domain, status=None, q=None, email=None, include_deleted=False,
                               sort=None, cursor=None, limit=1)[0][0]
        return catalog.create_service(db, actor, ServiceCreate(domain=domain, name=f"Costed {uuid.uuid4().hex[:6]}",
                                                               type="business", owner_id=owner.id, status="active",
                                                               **costs)).id


class TestCostEntries(ResourceBattery):
    path = "/api/v1/cost-entries"
    entity_type = "cost_entry"
    table = "gaas_cost_mgmt.cost_entries"
    history_resource = "cost-entries"
    list_filter = "service_id"
    update: ClassVar[dict[str, Any]] = {"amount": "99.99", "description": "corrected invoice"}
    services: ClassVar[dict[str, uuid.UUID]] = {}
    bad_inputs = [
        ({"amount": -1}, "amount"),
        ({"amount": "12.345"}, "amount"),
        ({"amount": "lots"}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": "usd"}, "currency"),
        ({"period_start": "2026-03-01", "period_end": "2026-02-28"}, "period_end"),
        ({"period_start": "2026-02-30"}, "period_start"),
        ({"category": "food"}, "category"),
        ({"service_id": str(uuid.uuid4())}, "service_id"),
        ({"service_id": None}, "service_id"),
        ({"domain": "elsewhere"}, "domain"),
        ({"ci_id": str(uuid.uuid4())}, "ci_id"),
    ]

    def writer(self, world: World, domain: str) -> Person:
        person = world.user(domain, "finance_officer")
        if domain not in self.services:
            self.services[domain] = _service(world, domain)
        return person

    def non_writer(self, world: World, domain: str) -> Person:
        return world.user(domain, "auditor")

    def body(self, domain: str) -> dict[str, Any]:
        return {"service_id": str(self.services[domain]), "category": "technology", "amount": "1250.00",
                "currency": "EUR", "period_start": "2026-01-01", "period_end": "2026-01-31",
                "description": "Cloud invoice 2026-01"}

    def filter_value(self, record: dict[str, Any]) -> str:
        return record["service_id"]


@pytest.fixture(scope="module")
def finance(world: World):
    domain = world.domain()
    officer = world.user(domain, "finance_officer")
    return {"domain": domain, "officer": officer, "service": _service(world, domain)}


def test_amounts_are_exact_decimals(client, finance):
    body = {"service_id": str(finance["service"]), "category": "people", "amount": "0.10",
            "period_start": "2026-02-01", "period_end": "2026-02-28"}
    entries = [client.post("/api/v1/cost-entries", json=body, headers=finance["officer"].headers).json()
               for _ in range(3)]
    assert [e["amount"] for e in entries] == ["0.10"] * 3
    assert entries[0]["currency"] == "USD" and entries[0]["domain"] == finance["domain"]


def test_bulk_is_all_or_nothing_and_names_every_bad_item(client, database, finance):
    good = {"service_id": str(finance["service"]), "category": "process", "amount": "10.00",
            "period_start": "2025-05-01", "period_end": "2025-05-31"}
    request_id = rid()
    response = client.post("/api/v1/cost-entries/bulk", json={"items": [
        good, {**good, "amount": "-5"}, good, {**good, "service_id": str(uuid.uuid4())}, {**good, "currency": "ABC"}]},
        headers={**finance["officer"].headers, "X-Request-ID": request_id})
    body = assert_problem(response, 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"items.1.amount", "items.4.currency"} <= fields  # caught by the schema
    assert audit_rows(database, request_id) == []
    response = client.post("/api/v1/cost-entries/bulk", json={"items": [good, {**good, "service_id": str(uuid.uuid4())},
                                                                         good]}, headers=finance["officer"].headers)
    assert [e["field"] for e in assert_problem(response, 422)["errors"]] == ["items.1.service_id"]
    request_id = rid()
    created = client.post("/api/v1/cost-entries/bulk", json={"items": [good] * 4},
                          headers={**finance["officer"].headers, "X-Request-ID": request_id})
    assert created.status_code == 201 and len(created.json()) == 4
    rows = audit_rows(database, request_id)
    assert [r["action"] for r in rows] == ["create"] * 4
    events = database.owner_rows("SELECT event_type FROM gaas_workflow.outbox_events WHERE request_id = :r",
                                 r=request_id)
    assert [e["event_type"] for e in events] == ["cost_entry.created"] * 4


def test_entries_land_in_yearly_partitions(client, database, finance):
    body = {"service_id": str(finance["service"]), "category": "people", "amount": "1.00",
            "period_start": "2024-06-01", "period_end": "2024-06-30"}
    entry = client.post("/api/v1/cost-entries", json=body, headers=finance["officer"].headers).json()
    where = database.owner_rows("SELECT tableoid::regclass::text AS part FROM gaas_cost_mgmt.cost_entries"
                                " WHERE id = :id", id=entry["id"])
    assert where == [{"part": "gaas_cost_mgmt.cost_entries_2024"}]
    moved = client.patch(f"/api/v1/cost-entries/{entry['id']}", json={"period_start": "2025-06-01",
                                                                     "period_end": "2025-06-30", "version": 1},
                         headers=finance["officer"].headers)
    assert moved.status_code == 200, moved.text
    where = database.owner_rows("SELECT tableoid::regclass::text AS part FROM gaas_cost_mgmt.cost_entries"
                                " WHERE id = :id", id=entry["id"])
    assert where == [{"part": "gaas_cost_mgmt.cost_entries_2025"}]
    assert_problem(client.patch(f"/api/v1/cost-entries/{entry['id']}", json={"period_end": "2025-01-01",
                                                                            "version": 2},
                                headers=finance["officer"].headers), 422, "period_end")


def test_cost_report_sets_actual_against_allocation_per_currency(client, world):
    domain = world.domain()
    officer = world.user(domain, "finance_officer")
    service = _service(world, domain, cost_people="1200.00", cost_process="0", cost_technology="2400.00")
    entries = [("people", "100.00", "USD", "2026-01-01"), ("people", "50.00", "USD", "2026-01-15"),
               ("technology", "300.00", "USD", "2026-02-01"), ("technology", "70.00", "EUR", "2026-02-01")]
    for category, amount, currency, start in entries:
        client.post("/api/v1/cost-entries", json={"service_id": str(service), "category": category, "amount": amount,
                                                  "currency": currency, "period_start": start,
                                                  "period_end": start}, headers=officer.headers).raise_for_status()
    params = {"domain": domain, "date_from": "2026-01-01", "date_to": "2026-04-01", "period": "month"}
    report = client.get("/api/v1/reports/costs", params=params, headers=officer.headers).json()
    rows = {(r["category"], r["period"], r["currency"]): r for r in report["rows"]}
    jan_people = rows[("people", "2026-01-01", "USD")]
    assert (jan_people["allocated"], jan_people["actual"], jan_people["entries"]) == ("100.00", "150.00", 2)
    assert jan_people["variance"] == "50.00" and jan_people["service_number"].startswith("SRV")
    eur = rows[("technology", "2026-02-01", "EUR")]
    assert (eur["allocated"], eur["actual"]) == (None, "70.00")  # never added to the USD figures
    assert rows[("technology", "2026-02-01", "USD")]["actual"] == "300.00"
    march = rows[("technology", "2026-03-01", "USD")]  # allocated, nothing spent
    assert (march["allocated"], Decimal(march["actual"]), march["entries"]) == ("200.00", 0, 0)

    quarter = client.get("/api/v1/reports/costs", params={**params, "period": "quarter", "group_by": "category"},
                         headers=officer.headers).json()["rows"]
    totals = {(r["category"], r["currency"]): (r["allocated"], r["actual"]) for r in quarter}
    assert totals[("people", "USD")] == ("300.00", "150.00")  # a quarter of 1200
    assert totals[("technology", "USD")] == ("600.00", "300.00")
    assert totals[("technology", "EUR")] == (None, "70.00")

    partial = client.get("/api/v1/reports/costs", params={**params, "date_from": "2026-02-01", "period": "quarter",
                                                          "group_by": "period"}, headers=officer.headers).json()
    usd = [r for r in partial["rows"] if r["currency"] == "USD"]
    assert [(r["period"], r["allocated"]) for r in usd] == [("2026-01-01", "600.00")]  # Feb and Mar only

    by_domain = client.get("/api/v1/reports/costs", params={**params, "group_by": "category,period", "limit": 2},
                           headers=officer.headers).json()
    assert len(by_domain["rows"]) == 2 and by_domain["next_cursor"]
    rest = client.get("/api/v1/reports/costs", params={**params, "group_by": "category,period", "limit": 100,
                                                       "cursor": by_domain["next_cursor"]}, headers=officer.headers)
    assert len(by_domain["rows"]) + len(rest.json()["rows"]) == len(report["rows"])  # one service: same rows


def test_cost_report_pages_by_whole_services(client, world):
    domain = world.domain()
    officer = world.user(domain, "finance_officer")
    services = sorted(_service(world, domain, cost_people="120.00") for _ in range(5))
    for service in services[:3]:
        client.post("/api/v1/cost-entries", json={"service_id": str(service), "category": "people", "amount": "9.00",
                                                  "period_start": "2026-01-10", "period_end": "2026-01-10"},
                    headers=officer.headers).raise_for_status()
    params = {"domain": domain, "date_from": "2026-01-01", "date_to": "2026-03-01", "period": "month"}
    whole = client.get("/api/v1/reports/costs", params=params, headers=officer.headers).json()
    assert whole["next_cursor"] is None and len(whole["rows"]) == 5 * 3 * 2
    seen, cursor, pages = [], None, 0
    while True:
        page = client.get("/api/v1/reports/costs", params={**params, "limit": 12, **({"cursor": cursor} if cursor
                                                                                     else {})},
                          headers=officer.headers).json()
        pages += 1
        assert len({r["service_id"] for r in page["rows"]}) == 2 or page["next_cursor"] is None
        seen += page["rows"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == whole["rows"]
    assert [r["service_id"] for r in seen[::6]] == [str(s) for s in services]
    assert_problem(client.get("/api/v1/reports/costs", params={**params, "cursor": "bm9wZQ"},
                              headers=officer.headers), 422, "cursor")


def test_cost_report_validation_and_permissions(client, world, finance):
    headers = finance["officer"].headers
    assert_problem(client.get("/api/v1/reports/costs", params={"group_by": "service,colour"}, headers=headers),
                   422, "group_by")
    assert_problem(client.get("/api/v1/reports/costs", params={"date_from": "2026-05-01", "date_to": "2026-01-01"},
                              headers=headers), 422, "date_to")
    assert_problem(client.get("/api/v1/reports/costs", params={"period": "week"}, headers=headers), 422, "period")
    agent = world.user(finance["domain"], "service_desk_agent")
    assert_problem(client.get("/api/v1/reports/costs", headers=agent.headers), 403)
    assert_problem(client.get("/api/v1/reports/ppt-balance", headers=agent.headers), 403)


def test_ppt_balance_reports_active_services_per_domain(client, world):
    domain = world.domain()
    officer = world.user(domain, "finance_officer")
    _service(world, domain, cost_people="600.00", cost_process="300.00", cost_technology="100.00")
    _service(world, domain, cost_people="400.00", cost_process="0", cost_technology="600.00")
    rows = client.get("/api/v1/reports/ppt-balance", params={"domain": domain}, headers=officer.headers).json()
    assert rows == [{"domain": domain, "total_people_cost": "1000.00", "total_process_cost": "300.00",
                     "total_technology_cost": "700.00", "total_cost": "2000.00", "people_pct": "50.0",
                     "process_pct": "15.0", "technology_pct": "35.0"}]
    assert Decimal(rows[0]["people_pct"]) + Decimal(rows[0]["process_pct"]) + Decimal(rows[0]["technology_pct"]) == 100


def test_reports_read_from_the_replica_when_one_is_configured(world, database, pg_server, template_db, monkeypatch):
    domain = world.domain()
    officer = world.user(domain, "finance_officer")
    _service(world, domain, cost_people="500.00", cost_process="0", cost_technology="0")
    primary = world.client.get("/api/v1/reports/ppt-balance", params={"domain": domain}, headers=officer.headers)
    assert [r["total_cost"] for r in primary.json()] == ["500.00"]
    # The "replica": a database with the same schema that has not (yet) received this domain's data.
    name = f"gaas_replica_{secrets.token_hex(3)}"
    with _admin_conn(pg_server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                      sql.Identifier(template_db)))
    replica = pg_server.set(database=name, username=APP_ROLE, password=APP_PASSWORD)
    monkeypatch.setenv("GAAS_DATABASE_REPLICA_URL", replica.render_as_string(hide_password=False))
    get_settings.cache_clear()
    db.replica_session_factory.cache_clear()
    try:
        with TestClient(create_app(database.factory)) as client:
            report = client.get("/api/v1/reports/ppt-balance", params={"domain": domain}, headers=officer.headers)
            assert report.status_code == 200 and report.json() == []  # read where the replica is
            me = client.get("/api/v1/me", headers=officer.headers)  # everything else: the primary
            assert me.status_code == 200 and me.json()["email"] == officer.email
    finally:
        factory = db.replica_session_factory()
        if factory is not None:
            factory.kw["bind"].dispose()
        monkeypatch.delenv("GAAS_DATABASE_REPLICA_URL")
        get_settings.cache_clear()
        db.replica_session_factory.cache_clear()
        with _admin_conn(pg_server) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
