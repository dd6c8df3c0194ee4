"""ITSM at scale: 1,000,000 incidents and 100,000 changes over two years in 10 domains, on a CMDB
of 100,000 CIs (fixed seed), loaded with COPY. Measures incident creation through the API against
raw single-row INSERTs into the same table, the SLA-at-risk view against the specification's
Query 2, an agent's open incidents against a raw SELECT, conflict detection for a change touching
50 CIs against the raw overlap query, and the breach job against a raw UPDATE."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from rich.progress import Progress

from bench.common import BenchDatabase, Figure, console, print_table, raw, running_server, timed
from gaas.core.ids import new_id

SYSTEM = uuid.UUID("00000000-0000-7000-8000-000000000000")
LEVELS = ("high", "medium", "low")
MATRIX = {"high": {"high": "critical", "medium": "high", "low": "medium"},
          "medium": {"high": "high", "medium": "medium", "low": "low"},
          "low": {"high": "medium", "medium": "low", "low": "low"}}
TARGET_HOURS = {"critical": 4, "high": 8, "medium": 24, "low": 72}
BULK = 100  # incidents per bulk request
TEXTS = ["Citizens cannot log in", "Form submission times out", "Reports run slowly", "Replication lag",
         "Branch office cannot reach the case system", "VPN drops", "PDF export blank", "Disk almost full",
         "Confirmation e-mails not sent", "Backup job failed", "Printer queue stuck", "Password reset fails"]
INCIDENT_COLUMNS = ("id", "domain", "short_description", "description", "priority", "impact", "urgency", "category",
                    "status", "assigned_to", "assigned_group", "service_id", "ci_id", "sla_due", "sla_breached",
                    "resolution_notes", "resolved_at", "resolved_by", "closed_at", "closed_by", "sla_policy_id",
                    "created_at", "updated_at", "created_by", "updated_by")
CHANGE_COLUMNS = ("id", "domain", "short_description", "type", "status", "risk", "suggested_risk", "requested_by",
                  "assigned_to", "service_id", "affected_cis", "planned_start", "planned_end", "actual_start",
                  "actual_end", "implementation_plan", "rollback_plan", "test_plan", "approval_status",
                  "implementation_notes", "success", "closed_at", "closed_by", "created_at", "updated_at",
                  "created_by", "updated_by")
CI_COLUMNS = ("id", "domain", "name", "ci_class", "environment", "owner_id", "attributes", "service_id",
              "created_by", "updated_by")
REL_COLUMNS = ("id", "source_ci_id", "target_ci_id", "relationship_type", "created_by")

# Verbatim from the specification; it runs against our schemas through the search path.
QUERY_2 = """
SELECT i.number, i.short_description, i.priority, s.name as service_name, i.sla_due,
       EXTRACT(EPOCH FROM (i.sla_due - NOW())) / 3600 as hours_until_breach, u.name as assigned_to
FROM incidents i
LEFT JOIN services s ON i.service_id = s.id
LEFT JOIN users u ON i.assigned_to = u.id
WHERE i.status IN ('new', 'in_progress')
  AND i.sla_due <= NOW() + INTERVAL '4 hours'
  AND i.sla_breached = FALSE
  AND i.deleted_at IS NULL
ORDER BY i.sla_due ASC"""


def copy(conn: psycopg.Connection, table: str, columns, rows, total: int, label: str) -> None:
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
            for n, row in enumerate(rows, 1):
                cp.write_row(row)
                if n % 10_000 == 0:
                    progress.update(task, completed=n)


class World:
    """What the load creates and the measurements use."""

    def __init__(self, domains: list[str]) -> None:
        self.domains = domains
        self.agents: dict[str, list[uuid.UUID]] = {}
        self.services: dict[str, list[uuid.UUID]] = {}
        self.apps: dict[str, list[tuple[uuid.UUID, uuid.UUID]]] = {}  # (ci id, service id)
        self.cis: dict[str, list[uuid.UUID]] = {}
        self.policies: dict[str, uuid.UUID] = {}


def _person(http: httpx.Client, domain: str, role: str, label: str) -> tuple[uuid.UUID, dict[str, str]]:
    """A user of `domain` with `role` there, and a token for them (created by the administrator)."""
    user = http.post("/api/v1/users", json={"email": f"{label}@{domain}.example.org", "name": label.title(),
                                            "domain": domain})
    user.raise_for_status()
    user_id = user.json()["id"]
    role_id = http.get("/api/v1/roles", params={"name": role}).json()["items"][0]["id"]
    domain_id = http.get("/api/v1/domains", params={"q": domain}).json()["items"][0]["id"]
    http.post(f"/api/v1/users/{user_id}/roles", json={"role_id": role_id, "scope_type": "domain",
                                                      "scope_id": domain_id}).raise_for_status()
    token = http.post("/api/v1/tokens", params={"user_id": user_id}, json={"name": "bench"})
    token.raise_for_status()
    return uuid.UUID(user_id), {"Authorization": f"Bearer {token.json()['token']}"}


def load_people_and_services(conn: psycopg.Connection, world: World, rng: random.Random) -> None:
    for domain in world.domains:
        conn.execute("INSERT INTO gaas_iam.domains (code, name, created_by, updated_by) VALUES (%s, %s, %s, %s)",
                     (domain, domain.upper(), SYSTEM, SYSTEM))
        world.agents[domain] = [conn.execute(
            "INSERT INTO gaas_iam.users (email, name, domain, created_by, updated_by) VALUES (%s, %s, %s, %s, %s)"
            " RETURNING id", (f"agent{i}@{domain}.example.org", f"Agent {i} of {domain}", domain, SYSTEM, SYSTEM)
        ).fetchone()[0] for i in range(50)]
        services = []
        for b in range(10):
            business = conn.execute(
                "INSERT INTO gaas_service_catalog.services (domain, name, type, status, owner_id, sla_target,"
                " created_by, updated_by) VALUES (%s, %s, 'business', 'active', %s, %s, %s, %s) RETURNING id",
                (domain, f"Business service {b}", world.agents[domain][0], rng.choice(["99.00", "99.50", "99.90"]),
                 SYSTEM, SYSTEM)).fetchone()[0]
            for a in range(4):
                services.append(conn.execute(
                    "INSERT INTO gaas_service_catalog.services (domain, name, type, status, owner_id,"
                    " parent_service_id, created_by, updated_by) VALUES (%s, %s, 'technical', 'active', %s, %s, %s,"
                    " %s) RETURNING id", (domain, f"Technical service {b}.{a}", world.agents[domain][0], business,
                                         SYSTEM, SYSTEM)).fetchone()[0])
        world.services[domain] = services
    world.policies = dict(conn.execute("SELECT priority::text, id FROM gaas_incident_mgmt.sla_policies "
                                       "WHERE domain IS NULL AND deleted_at IS NULL").fetchall())


def load_cmdb(conn: psycopg.Connection, world: World, cis_per_domain: int, rng: random.Random) -> int:
    """Per domain: core and distribution switches, servers, VMs, databases and applications
    (applications support the domain's services), about three impact relationships per CI."""
    layers = {"core": 2, "distribution": max(2, cis_per_domain // 500), "server": cis_per_domain // 10,
              "vm": cis_per_domain * 4 // 10, "database": cis_per_domain // 10}
    layers["application"] = cis_per_domain - sum(layers.values())
    cls = {"core": "network_device", "distribution": "network_device", "server": "server",
           "vm": "virtual_machine", "database": "database", "application": "application"}
    ids: dict[str, dict[str, list[uuid.UUID]]] = {}

    def cis():
        for domain in world.domains:
            ids[domain] = {layer: [] for layer in layers}
            owner = world.agents[domain][0]
            for layer, count in layers.items():
                for i in range(count):
                    ci_id = new_id()
                    ids[domain][layer].append(ci_id)
                    name = f"{domain}-{layer[:3]}-{i:05d}"
                    attributes = {"hostname": name} if cls[layer] in ("network_device", "server",
                                                                        "virtual_machine") else {}
                    service = rng.choice(world.services[domain]) if layer == "application" else None
                    if service is not None:
                        world.apps.setdefault(domain, []).append((ci_id, service))
                    yield (ci_id, domain, name, cls[layer], "production", owner, json.dumps(attributes), service,
                           SYSTEM, SYSTEM)

    copy(conn, "gaas_cmdb.configuration_items", CI_COLUMNS, cis(), cis_per_domain * len(world.domains),
         "COPY CIs")
    for domain in world.domains:
        world.cis[domain] = [c for layer in layers for c in ids[domain][layer]]
    count = [0]

    def rels():
        for domain in world.domains:
            by = ids[domain]
            for source_layer, target_layer, type_, fan in (("distribution", "core", "depends_on", 2),
                                                           ("server", "distribution", "depends_on", 2),
                                                           ("vm", "server", "runs_on", 1),
                                                           ("database", "vm", "runs_on", 1),
                                                           ("application", "vm", "runs_on", 1),
                                                           ("application", "database", "depends_on", 2)):
                for source in by[source_layer]:
                    for target in rng.sample(by[target_layer], fan):
                        count[0] += 1
                        yield new_id(), source, target, type_, SYSTEM

    copy(conn, "gaas_cmdb.ci_relationships", REL_COLUMNS, rels(), cis_per_domain * len(world.domains) * 3,
         "COPY CI relationships")
    return count[0]


def incident_rows(world: World, total: int, now: datetime, rng: random.Random):
    """Two years of incidents: recent ones often open (the overdue ones already marked breached, as
    the job would have), older ones closed, resolved or cancelled."""
    per_domain = total // len(world.domains)
    for domain in world.domains:
        agents, apps = world.agents[domain], world.apps[domain]
        for _ in range(per_domain):
            created = now - timedelta(seconds=rng.randrange(0, 730 * 86400))
            impact, urgency = rng.choice(LEVELS), rng.choice(LEVELS)
            priority = MATRIX[impact][urgency]
            due = created + timedelta(hours=TARGET_HOURS[priority])
            ci_id, service_id = rng.choice(apps)
            agent = rng.choice(agents)
            age = now - created
            open_ = rng.random() < (0.6 if age < timedelta(days=10) else 0.004)
            notes = resolved_at = resolved_by = closed_at = closed_by = None
            if open_:
                status = rng.choice(("new", "in_progress"))
            else:
                status = rng.choices(("closed", "resolved", "cancelled"), (85, 5, 10))[0]
                if status != "cancelled":
                    notes, resolved_by = "Fixed and verified", agent
                    resolved_at = created + timedelta(hours=rng.uniform(0.5, TARGET_HOURS[priority] * 1.3))
                    resolved_at = min(resolved_at, now)
                if status == "closed":
                    closed_at, closed_by = resolved_at, agent
            text = rng.choice(TEXTS)
            yield (new_id(), domain, text, f"{text}: reported by a caller" if rng.random() < 0.1 else None, priority,
                   impact, urgency, "application", status, agent, f"{domain.upper()}-L2", service_id, ci_id, due,
                   open_ and due < now, notes, resolved_at, resolved_by, closed_at, closed_by,
                   world.policies[priority], created, closed_at or resolved_at or created, SYSTEM, SYSTEM)


def change_rows(world: World, total: int, now: datetime, rng: random.Random):
    """Changes over the last two years and the next two months: the past ones closed (a few failed
    or cancelled), the coming ones between draft and scheduled, the current ones implementing."""
    per_domain = total // len(world.domains)
    plans = ("Follow the runbook", "Restore the snapshot", "Smoke tests")
    for domain in world.domains:
        agents, cis = world.agents[domain], world.cis[domain]
        for _ in range(per_domain):
            start = now + timedelta(seconds=rng.randrange(-700 * 86400, 60 * 86400))
            start = start.replace(minute=0, second=0, microsecond=0)
            end = start + timedelta(hours=rng.choice((1, 2, 3, 4, 6)))
            affected = rng.sample(cis, rng.randrange(1, 5))
            actual_start = actual_end = success = notes = closed_at = closed_by = None
            if end < now:
                status = rng.choices(("closed", "cancelled"), (95, 5))[0]
                approval = "approved"
                if status == "closed":
                    actual_start, actual_end = start, end
                    success = rng.random() > 0.05
                    notes = "Done" if success else "Rolled back"
                    closed_at, closed_by = end + timedelta(days=1), agents[0]
            elif start <= now:
                status, approval, actual_start = "implementing", "approved", start
            else:
                status = rng.choices(("draft", "submitted", "under_review", "approved", "scheduled"),
                                     (10, 10, 10, 20, 50))[0]
                approval = {"draft": None, "submitted": "pending", "under_review": "pending"}.get(status, "approved")
            risk = rng.choice(("low", "medium", "high"))
            yield (new_id(), domain, f"Change to {len(affected)} CI(s)", "normal", status, risk, risk,
                   rng.choice(agents), rng.choice(agents), rng.choice(world.services[domain]), affected, start, end,
                   actual_start, actual_end, *plans, approval, notes, success, closed_at, closed_by,
                   start - timedelta(days=7), start - timedelta(days=7), SYSTEM, SYSTEM)


def run(db: BenchDatabase, *, incidents: int, changes: int, cis: int, domains: int, repeat: int, scale: int,
        seed: int) -> None:
    with running_server(db) as http:
        rng = random.Random(seed)
        conn = raw(db.owner_url)
        world = World([f"d{i:02d}" for i in range(domains)])
        load_people_and_services(conn, world, rng)
        agent_id, agent = _person(http, world.domains[0], "service_desk_agent", "bench-agent")
        _, manager = _person(http, world.domains[0], "change_manager", "bench-manager")
        world.agents[world.domains[0]].append(agent_id)
        rels = load_cmdb(conn, world, cis // domains, rng)
        now = datetime.now(UTC)
        copy(conn, "gaas_incident_mgmt.incidents", INCIDENT_COLUMNS, incident_rows(world, incidents, now, rng),
             incidents, f"COPY {incidents:,} incidents")
        copy(conn, "gaas_change_mgmt.changes", CHANGE_COLUMNS, change_rows(world, changes, now, rng), changes,
             f"COPY {changes:,} changes")
        with console.status("ANALYZE, and the worker's merge of the GIN pending lists"):
            conn.execute("ANALYZE")
            conn.execute("SELECT gaas_cmdb.merge_pending_index_entries()")
        measure(db, http, conn, world, agent_id=agent_id, agent=agent, manager=manager, repeat=repeat, scale=scale,
                incidents=incidents, changes=changes, cis=cis, rels=rels, seed=seed, rng=rng)


def warm_timed(label: str, n: int, op) -> list[float]:
    """`timed`, after one untimed call: steady state, not the first request's statement compilation."""
    op(-1)
    return timed(label, n, op)


def wait_for_graph(http: httpx.Client, headers: dict[str, str], ci_id: uuid.UUID, cis: int) -> str:
    """A CMDB this large is walked in memory once the server's copy is built: measure after that."""
    from gaas.core.settings import Settings

    if cis < Settings().impact_graph_min_cis:
        return "database"
    started = time.perf_counter()
    while time.perf_counter() - started < 600:
        if http.get(f"/api/v1/cis/{ci_id}/impact", headers=headers, timeout=300).json()["computed_with"] == "memory":
            return "memory"
        time.sleep(2)
    return "database (the in-memory copy was not ready)"


def measure(db, http: httpx.Client, conn, world: World, *, agent_id, agent, manager, repeat: int, scale: int,
            incidents: int, changes: int, cis: int, rels: int, seed: int, rng: random.Random) -> None:
    domain = world.domains[0]
    figures = []

    # 1. creating incidents: through the API against raw single-row INSERTs into the same table
    apps = world.apps[domain]

    def raw_insert(i: int) -> None:
        ci_id, service_id = apps[i % len(apps)]
        conn.execute(
            "INSERT INTO gaas_incident_mgmt.incidents (domain, short_description, priority, impact, urgency, category,"
            " assigned_to, assigned_group, service_id, ci_id, sla_due, sla_breached, sla_policy_id, created_by,"
            " updated_by) VALUES (%s, %s, 'high', 'high', 'medium', 'application', %s, 'L2', %s, %s,"
            " now() + interval '8 hours', false, %s, %s, %s)",
            (domain, f"Raw incident {i}", agent_id, service_id, ci_id, world.policies["high"], agent_id, agent_id))

    def api_create(i: int) -> None:
        ci_id, service_id = apps[(i * 7) % len(apps)]
        response = http.post("/api/v1/incidents", headers=agent, json={
            "domain": domain, "short_description": f"API incident {i}", "impact": "high", "urgency": "medium",
            "category": "application", "assigned_to": str(agent_id), "assigned_group": "L2",
            "service_id": str(service_id), "ci_id": str(ci_id)})
        assert response.status_code == 201, response.text

    def api_bulk(i: int) -> None:
        items = []
        for j in range(BULK):
            ci_id, service_id = apps[(i * BULK + j) % len(apps)]
            items.append({"domain": domain, "short_description": f"Alert {i}.{j}", "impact": "high",
                          "urgency": "medium", "category": "application", "assigned_group": "NOC",
                          "service_id": str(service_id), "ci_id": str(ci_id)})
        response = http.post("/api/v1/incidents/bulk", headers=agent, json={"items": items})
        assert response.status_code == 201, response.text

    api_create(-1)  # warm the connection pool and caches
    raw_samples = timed("raw INSERT incidents", scale, raw_insert)
    api_samples = timed("API POST /incidents", scale, api_create)
    figures.append(Figure(f"API POST /incidents, one per request (+audit row, events; {incidents:,} in the table)",
                          scale, api_samples, "raw single-row INSERT (owner, autocommit)", raw_samples))
    batches = max(3, scale // 10)
    bulk_samples = [t / BULK for t in timed("API POST /incidents/bulk", batches, api_bulk) for _ in range(BULK)]
    figures.append(Figure(f"API POST /incidents/bulk, {BULK} per request (per incident, +audit rows, events)",
                          batches * BULK, bulk_samples, "raw single-row INSERT (owner, autocommit)", raw_samples))

    # The reads below measure steady state: let the writes above settle first (autovacuum would
    # otherwise pick the table up in the middle of a measurement).
    with console.status("VACUUM ANALYZE incidents"):
        conn.execute("VACUUM ANALYZE gaas_incident_mgmt.incidents")

    # 2. the SLA-at-risk view against the specification's Query 2
    def query_2(i: int) -> None:
        with conn.transaction():
            conn.execute("SET LOCAL search_path = gaas_incident_mgmt, gaas_service_catalog, gaas_iam")
            conn.execute(QUERY_2).fetchall()

    with conn.transaction():
        conn.execute("SET LOCAL search_path = gaas_incident_mgmt, gaas_service_catalog, gaas_iam")
        at_risk_total = len(conn.execute(QUERY_2).fetchall())
    risk_api = warm_timed("API sla-at-risk", repeat, lambda i: http.get(
        "/api/v1/incidents/sla-at-risk", params={"within": "4h"}, headers=agent).raise_for_status())
    figures.append(Figure(f"GET /incidents/sla-at-risk?within=4h, an agent of one domain (page of 50; "
                          f"{at_risk_total:,} at risk in all domains)", repeat, risk_api,
                          "spec Query 2 raw (all domains, all rows)", warm_timed("raw Query 2", repeat, query_2)))

    # 3. the agent's open incidents (those created above included)
    open_mine = conn.execute("SELECT count(*) FROM gaas_incident_mgmt.incidents WHERE assigned_to = %s AND status IN"
                             " ('new', 'in_progress')", (agent_id,)).fetchone()[0]
    mine_api = warm_timed("API my open incidents", repeat, lambda i: http.get(
        "/api/v1/incidents", params={"assigned_to": "me", "open": "true"}, headers=agent).raise_for_status())
    mine_raw = warm_timed("raw my open incidents", repeat, lambda i: conn.execute(
        "SELECT * FROM gaas_incident_mgmt.incidents WHERE assigned_to = %s AND status IN ('new', 'in_progress')"
        " AND deleted_at IS NULL ORDER BY number LIMIT 50", (agent_id,)).fetchall())
    figures.append(Figure(f"GET /incidents?assigned_to=me&open=true ({open_mine} open of {incidents:,})", repeat,
                          mine_api, "raw SELECT by assignee, LIMIT 50", mine_raw))

    # 4. conflict detection for a change touching 50 CIs: in the window of a scheduled change, sharing
    # its CIs (so there is something to find), the rest at random
    graph = wait_for_graph(http, manager, world.cis[domain][0], cis)
    start, end, shared = conn.execute(
        "SELECT planned_start, planned_end, affected_cis FROM gaas_change_mgmt.changes WHERE domain = %s AND"
        " status = 'scheduled' AND planned_start > now() + interval '1 day' ORDER BY planned_start LIMIT 1",
        (domain,)).fetchone()
    touched = list(dict.fromkeys([*shared, *rng.sample(world.cis[domain], 50)]))[:50]
    created = http.post("/api/v1/changes", headers=manager, json={
        "domain": domain, "short_description": "Bench change on 50 CIs", "type": "normal",
        "affected_cis": [str(c) for c in touched], "planned_start": start.isoformat(),
        "planned_end": end.isoformat()})
    assert created.status_code == 201, created.text
    change_id = created.json()["id"]
    report = http.get(f"/api/v1/changes/{change_id}/conflicts", headers=manager).json()
    conflicts_api = warm_timed("API change conflicts", repeat, lambda i: http.get(
        f"/api/v1/changes/{change_id}/conflicts", headers=manager).raise_for_status())
    overlap_raw = warm_timed("raw overlap query", repeat, lambda i: conn.execute(
        "SELECT id, affected_cis FROM gaas_change_mgmt.changes WHERE status IN ('approved', 'scheduled',"
        " 'implementing') AND deleted_at IS NULL AND planned_start < %s AND planned_end > %s AND affected_cis && %s",
        (end, start, touched)).fetchall())
    figures.append(Figure(f"GET /changes/{{id}}/conflicts, 50 CIs ({len(report['conflicts'])} conflicts; "
                          f"impact walked in {graph}; {changes:,} changes)", repeat, conflicts_api,
                          "raw overlap query on the same CIs only", overlap_raw))

    # 5. the breach job
    due = max(100, scale * 5)
    ids = [r[0] for r in conn.execute(
        "SELECT id FROM gaas_incident_mgmt.incidents WHERE status IN ('new', 'in_progress') AND sla_breached = FALSE"
        " ORDER BY sla_due DESC LIMIT %s", (2 * due,)).fetchall()]
    conn.execute("UPDATE gaas_incident_mgmt.incidents SET sla_due = now() - interval '1 minute' WHERE id = ANY(%s)",
                 (ids,))
    started = time.perf_counter()
    conn.execute("UPDATE gaas_incident_mgmt.incidents SET sla_breached = TRUE, version = version + 1 "
                 "WHERE id = ANY(%s)", (ids[due:],))
    raw_seconds = time.perf_counter() - started
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "gaas.cli", "sla", "check"], env=db.env(), check=True,
                         capture_output=True, text=True).stdout
    job_seconds = time.perf_counter() - started
    marked = int(out.split()[0])
    figures.append(Figure(f"gaas sla check: {marked:,} breaches marked with audit rows and events (per incident, "
                          "process start included)", marked, [job_seconds / max(marked, 1)] * max(marked, 1),
                          "raw UPDATE of as many (per incident)", [raw_seconds / due] * due))

    print_table(f"ITSM at scale: {incidents:,} incidents, {changes:,} changes, {cis:,} CIs and {rels:,} "
                f"relationships in {len(world.domains)} domains (seed {seed})", figures)
    def ratio(samples: list[float]) -> float:
        return (sum(raw_samples) / len(raw_samples)) / (sum(samples) / len(samples))

    p95 = {name: Figure.ms(samples, 0.95) for name, samples in
           (("risk", risk_api), ("mine", mine_api), ("conflicts", conflicts_api))}
    single, bulk = ratio(api_samples), ratio(bulk_samples)
    print(f"target: incident create throughput API/raw >= 0.25: bulk {bulk:.3f} "
          f"{'met' if bulk >= 0.25 else 'MISSED'}; one incident per request {single:.3f} "
          f"{'met' if single >= 0.25 else 'MISSED'}")
    print(f"target: sla-at-risk p95 under 20 ms: {p95['risk']:.1f} ms {'met' if p95['risk'] < 20 else 'MISSED'}")
    print(f"target: my open incidents p95 under 30 ms: {p95['mine']:.1f} ms {'met' if p95['mine'] < 30 else 'MISSED'}")
    print(f"target: conflicts for 50 CIs p95 under 100 ms: {p95['conflicts']:.1f} ms "
          f"{'met' if p95['conflicts'] < 100 else 'MISSED'}")
