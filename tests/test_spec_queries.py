"""The specification's example queries, run raw on the migrated database with the demo data,
return what the API returns."""

from __future__ import annotations

import pytest

from gaas import demo
from tests.support import World

QUERY_1 = """
WITH RECURSIVE service_tree AS (
    SELECT id, name, type, parent_service_id, 0 as depth,
           ARRAY[name] as path
    FROM gaas_service_catalog.services
    WHERE domain = :domain
      AND parent_service_id IS NULL
      AND deleted_at IS NULL

    UNION ALL

    SELECT s.id, s.name, s.type, s.parent_service_id, st.depth + 1,
           st.path || s.name
    FROM gaas_service_catalog.services s
    JOIN service_tree st ON s.parent_service_id = st.id
    WHERE s.deleted_at IS NULL
)
-- qualified: the specification's unqualified `type, name` are ambiguous after USING (id)
SELECT st.depth, st.type, st.name, services.total_cost
FROM service_tree st
JOIN gaas_service_catalog.services USING (id)
ORDER BY st.path
"""

QUERY_3 = """
SELECT
    domain,
    SUM(cost_people) as total_people_cost,
    SUM(cost_process) as total_process_cost,
    SUM(cost_technology) as total_technology_cost,
    SUM(total_cost) as total_cost,
    ROUND(100.0 * SUM(cost_people) / NULLIF(SUM(total_cost), 0), 1) as people_pct,
    ROUND(100.0 * SUM(cost_process) / NULLIF(SUM(total_cost), 0), 1) as process_pct,
    ROUND(100.0 * SUM(cost_technology) / NULLIF(SUM(total_cost), 0), 1) as technology_pct
FROM gaas_service_catalog.services
WHERE deleted_at IS NULL
  AND status = 'active'
GROUP BY domain
ORDER BY total_cost DESC
"""


@pytest.fixture(scope="module")
def demo_loaded(database):
    counts = demo.load_demo()
    assert counts["domains"] == 3 and counts["services"] == 90 and counts["cost_entries"] > 2000
    assert counts["cis"] > 60 and counts["ci_relationships"] > counts["cis"]
    assert demo.load_demo()["domains"] == 0  # loading twice does nothing
    return counts


@pytest.mark.parametrize("domain", ["healthcare", "education", "justice"])
def test_query_1_matches_the_tree_endpoint(client, database, world: World, demo_loaded, domain):
    raw = database.owner_rows(QUERY_1, domain=domain)
    api = client.get("/api/v1/services/tree", params={"domain": domain}, headers=world.admin().headers).json()
    assert len(raw) == 30
    assert [(r["depth"], r["type"], r["name"], str(r["total_cost"])) for r in raw] == [
        (n["depth"], n["type"], n["name"], n["own"]["total"]) for n in api]


def test_query_3_matches_the_ppt_balance_endpoint(client, database, world: World, demo_loaded):
    raw = database.owner_rows(QUERY_3)
    api = client.get("/api/v1/reports/ppt-balance", headers=world.admin().headers).json()
    assert [r["domain"] for r in raw][:3] and len(raw) >= 3
    as_text = [{k: (None if v is None else str(v)) for k, v in row.items()} for row in raw]
    assert as_text == api


def test_demo_users_can_log_in_and_see_their_domain_only(client, demo_loaded):
    login = client.post("/api/v1/auth/token", data={"username": "healthcare.service_owner",
                                                   "password": "gaas-demo-password"})
    assert login.status_code == 200
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    services = client.get("/api/v1/services", params={"limit": 500}, headers=headers).json()["items"]
    assert {s["domain"] for s in services} == {"healthcare"}
    report = client.get("/api/v1/reports/costs", params={"group_by": "category", "date_from": "2020-01-01",
                                                        "date_to": "2030-01-01"}, headers=headers).json()
    assert {r["domain"] for r in report["rows"]} == {"healthcare"}
    justice = client.post("/api/v1/auth/token", data={"username": "justice.finance_officer",
                                                     "password": "gaas-demo-password"}).json()["access_token"]
    rows = client.get("/api/v1/reports/costs", params={"group_by": "category", "date_from": "2020-01-01",
                                                      "date_to": "2030-01-01"},
                      headers={"Authorization": f"Bearer {justice}"}).json()["rows"]
    assert {r["currency"] for r in rows} == {"USD", "EUR"}


def test_demo_core_switch_failure_reaches_business_services(client, demo_loaded):
    login = client.post("/api/v1/auth/token", data={"username": "justice.cmdb_admin",
                                                   "password": "gaas-demo-password"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {login}"}
    switch = client.get("/api/v1/cis", params={"q": "jus-core-sw-1"}, headers=headers).json()["items"][0]
    report = client.get(f"/api/v1/cis/{switch['id']}/impact", headers=headers).json()
    classes = {c["ci_class"] for c in report["cis"]}
    assert {"server", "virtual_machine", "database", "application"} <= classes
    assert {b["name"] for b in report["business_services"]} == {"Case Management", "Court Scheduling"}
    assert all(b["sla_target"] for b in report["business_services"])
