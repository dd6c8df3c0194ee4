"""Demo data: a believable government service portfolio, generated deterministically.

`generate()` is the single generator (fixed seed, stated scale) used by `gaas demo-data` and by
the benchmarks. `load_demo()` writes a small portfolio through the service layer (so it is
audited and validated like any other write); the benchmarks load large ones with COPY.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from gaas.core.ids import new_id

DOMAINS: dict[str, tuple[str, list[str]]] = {
    "healthcare": ("Ministry of Health", ["Patient Records", "Appointment Booking", "Prescription Services",
                                         "Vaccination Registry", "Emergency Dispatch", "Hospital Bed Management"]),
    "education": ("Ministry of Education", ["Student Enrollment", "Exam Results", "School Transport",
                                           "Teacher Payroll", "Scholarship Applications", "Curriculum Library"]),
    "justice": ("Ministry of Justice", ["Case Management", "Court Scheduling", "Legal Aid", "Prison Management",
                                       "Criminal Records Check", "Victim Support"]),
    "transport": ("Transport Agency", ["Driving Licences", "Vehicle Registration", "Road Tolls", "Public Transit Cards",
                                      "Traffic Fines", "Road Works Permits"]),
    "finance": ("Treasury", ["Budget Planning", "Public Procurement", "Grants Management", "Treasury Payments",
                            "Debt Management", "Financial Reporting"]),
    "tax": ("Revenue Authority", ["Income Tax Filing", "VAT Returns", "Customs Declarations", "Tax Refunds",
                                 "Property Tax", "Taxpayer Registry"]),
    "agriculture": ("Ministry of Agriculture", ["Farmer Subsidies", "Livestock Registry", "Crop Insurance",
                                               "Land Parcels", "Veterinary Permits", "Food Safety Inspections"]),
    "housing": ("Housing Authority", ["Social Housing Allocation", "Building Permits", "Rent Support",
                                     "Property Registry", "Housing Inspections", "Homelessness Services"]),
    "environment": ("Environment Agency", ["Air Quality Monitoring", "Waste Permits", "Water Licences",
                                          "Flood Warnings", "Protected Areas", "Emission Reporting"]),
    "labour": ("Ministry of Labour", ["Unemployment Benefits", "Job Matching", "Work Permits", "Pension Claims",
                                     "Workplace Inspections", "Skills Training"]),
}
TECHNICAL = ["API Gateway", "Integration Hub"]
APPLICATION = ["Citizen Portal", "Caseworker Application"]
INFRASTRUCTURE = ["Database Cluster", "Application Servers"]
FIRST = ["Amina", "Kwame", "Sofia", "Mateo", "Aiko", "Lena", "Omar", "Priya", "Jonas", "Zanele", "Ines", "Tariq"]
LAST = ["Odhiambo", "Mensah", "Rossi", "García", "Tanaka", "Novak", "Haddad", "Iyer", "Berg", "Dlamini", "Costa"]
DEMO_ROLES = ("domain_admin", "service_owner", "service_desk_agent", "change_manager", "cmdb_admin",
              "finance_officer", "auditor")


@dataclass(frozen=True)
class ServiceSeed:
    id: uuid.UUID
    domain: str
    name: str
    type: str
    parent_id: uuid.UUID | None
    status: str
    description: str
    cost_people: Decimal
    cost_process: Decimal
    cost_technology: Decimal
    sla_target: Decimal


@dataclass(frozen=True)
class CostSeed:
    id: uuid.UUID
    domain: str
    service_id: uuid.UUID
    category: str
    amount: Decimal
    currency: str
    period_start: date
    period_end: date
    description: str


@dataclass
class Portfolio:
    domains: list[tuple[str, str]]
    services: list[ServiceSeed] = field(default_factory=list)


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randrange(low, high)) * 100


def _months_back(today: date, count: int) -> list[date]:
    year, month = today.year, today.month
    months = []
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        months.append(date(year, month, 1))
    return list(reversed(months))


def generate(*, seed: int = 2026, domains: int = 3, business_per_domain: int = 4) -> Portfolio:
    """Each business service gets 2 technical, 4 application and 8 infrastructure services below
    it: 15 services per business service."""
    rng = random.Random(seed)
    codes = list(DOMAINS)[:domains] if domains <= len(DOMAINS) else \
        list(DOMAINS) + [f"agency{i}" for i in range(len(DOMAINS), domains)]
    portfolio = Portfolio(domains=[(c, DOMAINS[c][0] if c in DOMAINS else f"Agency {c[6:]}") for c in codes])
    for code in codes:
        names = DOMAINS.get(code, ("", DOMAINS["finance"][1]))[1]
        for b in range(business_per_domain):
            base = names[b % len(names)] + ("" if b < len(names) else f" {b // len(names) + 1}")
            _add_subtree(rng, portfolio, code, base)
    return portfolio


def _add_subtree(rng: random.Random, portfolio: Portfolio, domain: str, base: str) -> None:
    def add(name: str, type_: str, parent: uuid.UUID | None, costs: tuple[int, int, int]) -> uuid.UUID:
        status = rng.choices(["active", "design", "deprecated"], weights=[85, 10, 5])[0]
        seed = ServiceSeed(
            id=new_id(), domain=domain, name=name, type=type_, parent_id=parent, status=status,
            description=f"{name}: {type_} service of the {domain} domain",
            cost_people=_money(rng, costs[0] // 2, costs[0] + 1), cost_process=_money(rng, costs[1] // 2, costs[1] + 1),
            cost_technology=_money(rng, costs[2] // 2, costs[2] + 1),
            sla_target=Decimal(rng.choice(["99.00", "99.50", "99.90", "99.95"])))
        portfolio.services.append(seed)
        return seed.id

    business = add(base, "business", None, (900, 300, 200))
    for t in TECHNICAL:
        technical = add(f"{base} {t}", "technical", business, (300, 150, 400))
        for a in APPLICATION:
            app = add(f"{base} {t} {a}", "application", technical, (200, 80, 300))
            for i in INFRASTRUCTURE:
                add(f"{base} {t} {a} {i}", "infrastructure", app, (40, 30, 500))


def cost_entries(portfolio: Portfolio, *, seed: int = 2026, months: int = 12, per_service: int | None = None,
                 today: date | None = None) -> Iterator[CostSeed]:
    """Monthly actuals for every service: 3 categories x `months` (or `per_service` entries
    spread over those months), near each allocation's monthly share. Justice pays some
    technology in EUR, to show reports that never add currencies together."""
    rng = random.Random(seed + 1)
    periods = _months_back(today or date.today(), months)
    slots = [(m, c) for m in periods for c in ("people", "process", "technology")]
    for service in portfolio.services:
        if service.status == "design":
            continue
        chosen = slots if per_service is None else [slots[(i * 7) % len(slots)] for i in range(per_service)]
        for month, category in chosen:
            annual = {"people": service.cost_people, "process": service.cost_process,
                      "technology": service.cost_technology}[category]
            amount = (annual / 12 * Decimal(rng.uniform(0.8, 1.25))).quantize(Decimal("0.01"))
            currency = "EUR" if service.domain == "justice" and category == "technology" and rng.random() < 0.3 \
                else "USD"
            end = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
            yield CostSeed(id=new_id(), domain=service.domain, service_id=service.id, category=category,
                           amount=amount, currency=currency, period_start=month,
                           period_end=date.fromordinal(end.toordinal() - 1),
                           description=f"{category} costs {month:%B %Y}")


def load_demo(*, seed: int = 2026, scale: int = 1,
              password: str = "gaas-demo-password") -> dict[str, int]:  # noqa: S107 - a known demo password
    """Write a portfolio through the service layer, as the system, in one transaction."""
    from gaas.catalog import service as catalog
    from gaas.catalog.schemas import ServiceCreate, StakeholderCreate
    from gaas.core.db import unit_of_work
    from gaas.costs import service as costs
    from gaas.costs.schemas import CostEntryCreate
    from gaas.iam import service as iam
    from gaas.iam.schemas import DomainCreate, UserCreate, UserRoleCreate

    portfolio = generate(seed=seed, domains=3, business_per_domain=2 * scale)
    actor = iam.system_actor()
    rng = random.Random(seed + 2)
    counts = {"domains": 0, "users": 0, "services": 0, "stakeholders": 0, "cis": 0, "ci_relationships": 0,
              "cost_entries": 0, "incidents": 0, "problems": 0, "changes": 0}
    from gaas.iam.security import hash_password

    with unit_of_work(actor) as db:
        if iam.domain_by_code(db, portfolio.domains[0][0]) is not None:
            return counts
        password_hash = hash_password(password)  # once: bcrypt is slow on purpose
        people: dict[str, dict[str, uuid.UUID]] = {}
        for code, name in portfolio.domains:
            domain = iam.create_domain(db, actor, DomainCreate(code=code, name=name))
            counts["domains"] += 1
            people[code] = {}
            for role_name in DEMO_ROLES:
                person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                user = iam.create_user(db, actor, UserCreate(
                    email=f"{code}.{role_name.replace('_', '.')}@example.org", username=f"{code}.{role_name}",
                    name=person, domain=code))
                user.password_hash = password_hash
                role = iam.role_by_name(db, role_name)
                iam.assign_role(db, actor, user.id, UserRoleCreate(role_id=role.id, scope_type="domain",
                                                                   scope_id=domain.id))
                people[code][role_name] = user.id
                counts["users"] += 1
        real_ids: dict[uuid.UUID, uuid.UUID] = {}
        for seed_service in portfolio.services:
            owner = people[seed_service.domain]["service_owner"]
            created = catalog.create_service(db, actor, ServiceCreate(
                domain=seed_service.domain, name=seed_service.name, description=seed_service.description,
                type=seed_service.type, parent_service_id=real_ids.get(seed_service.parent_id) if seed_service.parent_id
                else None, status="active" if seed_service.status == "deprecated" else seed_service.status,
                owner_id=owner, manager_id=people[seed_service.domain]["domain_admin"],
                sla_target=seed_service.sla_target, cost_people=seed_service.cost_people,
                cost_process=seed_service.cost_process, cost_technology=seed_service.cost_technology))
            real_ids[seed_service.id] = created.id
            counts["services"] += 1
            if seed_service.type == "business":
                for user_role, stake in (("service_owner", "owner"), ("domain_admin", "manager"),
                                         ("finance_officer", "stakeholder")):
                    catalog.add_stakeholder(db, actor, created.id, StakeholderCreate(
                        user_id=people[seed_service.domain][user_role], role=stake))
                    counts["stakeholders"] += 1
        for seed_service in portfolio.services:
            if seed_service.status == "deprecated":
                from gaas.catalog.schemas import ServiceUpdate

                service_id = real_ids[seed_service.id]
                current = catalog.get_service(db, actor, service_id)
                catalog.update_service(db, actor, service_id, ServiceUpdate(status="deprecated",
                                                                            version=current.version), None)
        counts.update(_load_infrastructure(db, actor, portfolio, real_ids, people, rng))
        counts.update(_load_itsm(db, actor, portfolio, real_ids, people, random.Random(seed + 3)))
        counts.update(_load_knowledge(db, actor, portfolio, real_ids, people, password_hash, random.Random(seed + 4)))
        batch = [CostEntryCreate(service_id=real_ids[c.service_id], category=c.category, amount=c.amount,
                                 currency=c.currency, period_start=c.period_start, period_end=c.period_end,
                                 description=c.description) for c in cost_entries(portfolio, seed=seed)]
        for start in range(0, len(batch), 1000):
            costs.create_entries(db, actor, batch[start:start + 1000])
        counts["cost_entries"] = len(batch)
    return counts


def _load_infrastructure(db, actor, portfolio: Portfolio, real_ids: dict, people: dict,
                         rng: random.Random) -> dict[str, int]:
    """Per domain: a data-centre core (two switches, a storage array); per business service two
    servers on the core, VMs on them, a database and the applications of its application
    services. Impact on a core switch therefore reaches business services."""
    from gaas.cmdb import service as cmdb
    from gaas.cmdb.schemas import CICreate, CIRelationshipCreate

    made = {"cis": 0, "ci_relationships": 0}

    def add(domain: str, name: str, ci_class: str, attributes: dict, service=None) -> uuid.UUID:
        made["cis"] += 1
        return cmdb.create_ci(db, actor, CICreate(
            domain=domain, name=name, ci_class=ci_class, environment="production", attributes=attributes,
            owner_id=people[domain]["cmdb_admin"], managed_by=people[domain]["cmdb_admin"],
            service_id=real_ids.get(service) if service else None, discovered_by="manual")).id

    def link(source: uuid.UUID, target: uuid.UUID, type_: str) -> None:
        made["ci_relationships"] += 1
        cmdb.create_relationship(db, actor, CIRelationshipCreate(source_ci_id=source, target_ci_id=target,
                                                                 relationship_type=type_))

    children: dict[uuid.UUID, list[ServiceSeed]] = {}
    for seed in portfolio.services:
        children.setdefault(seed.parent_id, []).append(seed)
    for d_index, (code, _) in enumerate(portfolio.domains):
        prefix = code[:3]
        switches = [add(code, f"{prefix}-core-sw-{i}", "network_device",
                        {"hostname": f"{prefix}-core-sw-{i}", "ip": f"10.{100 + d_index}.0.{i}",
                         "serial_number": f"SW{rng.randrange(10**8):08d}", "model": "Nexus 9300"}) for i in (1, 2)]
        storage = add(code, f"{prefix}-san-1", "storage", {"serial_number": f"SAN{rng.randrange(10**8):08d}",
                                                           "capacity_tb": 200, "vendor": "NetApp"})
        business = [s for s in portfolio.services if s.domain == code and s.type == "business"]
        for b_index, top in enumerate(business):
            apps = [a for t in children.get(top.id, []) for a in children.get(t.id, [])]
            infra = [i for a in apps for i in children.get(a.id, [])]
            base = f"{prefix}-{b_index + 1:02d}"
            for s_index in (1, 2):
                host = f"{base}-srv-{s_index}"
                server = add(code, host, "server", {"hostname": host, "ip": f"10.{b_index}.{s_index}.10",
                                                    "os": "Ubuntu 22.04", "cpu_cores": 32, "ram_gb": 256,
                                                    "serial_number": f"SRV{rng.randrange(10**8):08d}"},
                             infra[s_index - 1].id if len(infra) >= s_index else None)
                for switch in switches:
                    link(server, switch, "depends_on")
                link(server, storage, "backed_up_by")
                vms = []
                for v_index in (1, 2):
                    name = f"{host}-vm-{v_index}"
                    vm = add(code, name, "virtual_machine", {
                        "hostname": name, "instance_id": f"vm-{rng.randrange(16**10):010x}", "os": "Ubuntu 22.04",
                        "cpu_cores": 8, "ram_gb": 32})
                    link(vm, server, "runs_on")
                    vms.append(vm)
                database = add(code, f"{host}-pg", "database", {"engine": "PostgreSQL", "version": "16.4",
                                                                 "host": host, "port": 5432},
                               infra[s_index + 1].id if len(infra) > s_index + 1 else None)
                link(database, vms[0], "runs_on")
                for a_index, app_service in enumerate(apps[(s_index - 1) * 2:(s_index - 1) * 2 + 2]):
                    app = add(code, f"{app_service.name} app", "application",
                              {"version": f"{rng.randrange(1, 5)}.{rng.randrange(10)}.0",
                               "repo": f"git.gov.example/{code}/{base}-{s_index}-{a_index}"}, app_service.id)
                    link(app, vms[a_index % 2], "runs_on")
                    link(app, database, "depends_on")
    return made


INCIDENT_TEXTS = [
    ("application", "Citizens cannot log in to the portal"), ("application", "Form submission times out"),
    ("database", "Reports run very slowly"), ("database", "Replication lag on the records database"),
    ("network", "Branch office cannot reach the case system"), ("network", "VPN drops every few minutes"),
    ("application", "PDF export produces blank pages"), ("infrastructure", "Disk almost full on an app server"),
    ("application", "Payment confirmation e-mails not sent"), ("infrastructure", "Backup job failed overnight"),
]
PROBLEM_TEXTS = ["Portal logins fail under peak load", "Nightly backups overrun their window",
                 "Intermittent network drops at branch offices"]


@dataclass
class _Desk:
    """One demo domain's ITSM context while it is loaded."""

    db: object
    actor: object
    code: str
    who: dict[str, uuid.UUID]
    business: list[uuid.UUID]
    servers: list
    apps: list
    now: object
    sunday: object
    rng: random.Random
    made: dict[str, int]


def _load_itsm(db, actor, portfolio: Portfolio, real_ids: dict, people: dict, rng: random.Random) -> dict[str, int]:
    """Per domain, over the last four months: incidents on the demo services and CIs (most closed,
    some open, some breached, some about to breach), problems (one a known error), a standard-change
    template, a weekly maintenance window and a blackout, and changes from closed to draft (one
    failed and caused an incident, two scheduled on the same server at the same time). Education
    keeps office hours for its low and medium priorities."""
    from datetime import UTC, datetime, timedelta

    from gaas.cmdb import service as cmdb
    from gaas.incidents import policies
    from gaas.incidents import service as incidents
    from gaas.incidents.schemas import SlaPolicyCreate

    made = {"incidents": 0, "problems": 0, "changes": 0}
    now = datetime.now(UTC).replace(microsecond=0)
    sunday = (now + timedelta(days=(6 - now.weekday()) % 7)).replace(hour=0, minute=0, second=0)
    for code, _ in portfolio.domains:
        cis = cmdb.list_cis(db, actor, domain=code, ci_class=None, status=None, environment=None, service_id=None,
                            q=None, attributes={}, include_deleted=False, sort=None, cursor=None, limit=500)[0]
        desk = _Desk(db=db, actor=actor, code=code, who=people[code], now=now, sunday=sunday, rng=rng, made=made,
                     business=[real_ids[s.id] for s in portfolio.services if s.domain == code
                               and s.type == "business"],
                     servers=[c for c in cis if c.ci_class == "server"],
                     apps=[c for c in cis if c.ci_class == "application"])
        if code == "education":
            for priority, minutes in (("medium", 16 * 60), ("low", 40 * 60)):
                policies.create_policy(db, actor, SlaPolicyCreate(
                    domain=code, name=f"Office hours {priority}", priority=priority, resolution_minutes=minutes,
                    business_timezone="Europe/Paris", business_start="08:00", business_end="18:00",
                    pause_on=["awaiting_caller", "awaiting_vendor"]))
        known = _demo_problems(desk)
        _demo_incidents(desk, known)
        _demo_changes(desk)
    db.flush()
    made["sla_breaches"] = incidents.mark_sla_breaches(db, batch=100_000)
    return made


def _demo_problems(desk: _Desk):
    """A known error (with a workaround), a resolved problem and a new one; returns the known error."""
    from gaas.incidents import problems
    from gaas.incidents.schemas import ProblemCreate, ProblemUpdate

    db, actor, code = desk.db, desk.actor, desk.code
    known = problems.create_problem(db, actor, ProblemCreate(
        domain=code, short_description=PROBLEM_TEXTS[0], priority="high", service_id=desk.business[0],
        assigned_to=desk.who["service_desk_agent"], root_cause="Session store runs out of connections at peak",
        workaround="Restart the session store service; logins recover within a minute"))
    problems.update_problem(db, actor, known.id, ProblemUpdate(status="root_cause_found", version=known.version),
                            None)
    solved = problems.create_problem(db, actor, ProblemCreate(
        domain=code, short_description=PROBLEM_TEXTS[1], priority="medium", service_id=desk.business[-1]))
    for status, extra in (("investigating", {}), ("root_cause_found", {"root_cause": "Backup window too short"}),
                          ("fix_in_progress", {}), ("resolved", {"permanent_fix": "Incremental backups"})):
        problems.update_problem(db, actor, solved.id, ProblemUpdate(status=status, **extra, version=solved.version),
                                None)
    problems.create_problem(db, actor, ProblemCreate(domain=code, short_description=PROBLEM_TEXTS[2],
                                                     priority="low"))
    desk.made["problems"] += 3
    return known


def _demo_incident(desk: _Desk, opened_at, **fields):
    from gaas.incidents import service as incidents
    from gaas.incidents.schemas import IncidentCreate

    desk.made["incidents"] += 1
    return incidents.create_incident(desk.db, desk.actor, IncidentCreate(domain=desk.code, **fields),
                                     opened_at=opened_at)


def _move_incident(desk: _Desk, incident, at, **changes) -> None:
    from gaas.incidents import service as incidents
    from gaas.incidents.schemas import IncidentUpdate

    incidents.update_incident(desk.db, desk.actor, incident.id, IncidentUpdate(**changes, version=incident.version),
                              None, at=at)


def _demo_incidents(desk: _Desk, known) -> None:
    """Thirty incidents over four months (the older, the likelier closed; the old open ones breach),
    and two opened most of their target ago (at risk)."""
    from datetime import timedelta

    levels = ["high", "medium", "low"]
    rng, now = desk.rng, desk.now
    for index in range(30):
        age = timedelta(hours=rng.randrange(10, 24 * 120))
        category, text = rng.choice(INCIDENT_TEXTS)
        app = rng.choice(desk.apps) if desk.apps else None
        incident = _demo_incident(
            desk, now - age, short_description=text, category=category, impact=rng.choice(levels),
            urgency=rng.choice(levels), service_id=app.service_id if app else None, ci_id=app.id if app else None,
            assigned_group=f"{desk.code.title()}-L2", assigned_to=desk.who["service_desk_agent"] if index % 3 else None,
            problem_id=known.id if index % 10 == 0 else None)
        if age < timedelta(days=2) or index % 7 == 0:
            if index % 2:
                _move_incident(desk, incident, now - age + timedelta(minutes=30), status="in_progress")
            continue
        worked = now - age + timedelta(minutes=rng.randrange(10, 120))
        _move_incident(desk, incident, worked, status="in_progress")
        resolved = worked + timedelta(hours=rng.randrange(1, 60))
        _move_incident(desk, incident, resolved, status="resolved", resolution_notes="Restarted and verified")
        if resolved < now - timedelta(days=3):
            _move_incident(desk, incident, resolved + timedelta(days=3), status="closed")
    for target_hours, impact, urgency in ((4, "high", "high"), (8, "high", "medium")):
        _demo_incident(desk, now - timedelta(hours=target_hours - 1, minutes=rng.randrange(0, 50)),
                       short_description="Service degraded for many users", impact=impact, urgency=urgency,
                       service_id=desk.business[0], assigned_to=desk.who["service_desk_agent"])


PLANS = {"implementation_plan": "Follow the runbook", "rollback_plan": "Restore the snapshot taken first",
         "test_plan": "Smoke tests of the portal"}
APPROVAL_PATH = ["submitted", "under_review", "approved", "scheduled"]


def _demo_change(desk: _Desk, text: str, start, hours: int, cis: list, type_: str = "normal", **extra):
    from datetime import timedelta

    from gaas.changes import service as changes
    from gaas.changes.schemas import ChangeCreate

    desk.made["changes"] += 1
    body = {"domain": desk.code, "short_description": text, "type": type_, "affected_cis": [c.id for c in cis],
            "planned_start": start, "planned_end": start + timedelta(hours=hours),
            "requested_by": desk.who["service_owner"], "assigned_to": desk.who["change_manager"],
            **({} if type_ == "standard" else PLANS), **extra}
    return changes.create_change(desk.db, desk.actor, ChangeCreate(**body), at=min(start - timedelta(days=7), desk.now))


def _walk_change(desk: _Desk, change, statuses: list[str], at, **extra) -> None:
    from gaas.changes import service as changes
    from gaas.changes.schemas import ChangeUpdate

    for status in statuses:
        outcome = {"success": True, "implementation_notes": "Completed as planned", **extra} \
            if status == "implemented" else {}
        changes.update_change(desk.db, desk.actor, change.id, ChangeUpdate(status=status, **outcome,
                                                                           version=change.version), None, at=at)


def _demo_changes(desk: _Desk) -> None:
    """A template, a weekly maintenance window (Sunday 00:00-06:00 UTC) and a blackout; three past
    patch changes, a failed upgrade and the incident it caused, two conflicting changes on one
    server next week, a standard change, an emergency one and a draft."""
    from datetime import timedelta

    from gaas.changes import planning
    from gaas.changes import service as changes
    from gaas.changes.schemas import TemplateCreate, WindowCreate

    db, actor, code, sunday, now = desk.db, desk.actor, desk.code, desk.sunday, desk.now
    template = planning.create_template(db, actor, TemplateCreate(
        domain=code, name="Restart an application pool", short_description="Restart an application pool",
        implementation_plan="Drain the node, restart the pool, re-enable the node",
        rollback_plan="Re-enable the node; the pool restarts by itself", test_plan="Health check is green"))
    planning.create_window(db, actor, WindowCreate(
        domain=code, name="Sunday maintenance", kind="maintenance", start_at=sunday - timedelta(weeks=20),
        end_at=sunday - timedelta(weeks=20) + timedelta(hours=6), recurrence="weekly"))
    planning.create_window(db, actor, WindowCreate(
        domain=code, name="End-of-quarter freeze", kind="blackout", start_at=sunday + timedelta(days=21),
        end_at=sunday + timedelta(days=28)))
    for weeks_ago in (12, 8, 4):
        start = sunday - timedelta(weeks=weeks_ago) + timedelta(hours=1)
        past = _demo_change(desk, f"Monthly patching, week -{weeks_ago}", start, 3, desk.servers[:2])
        _walk_change(desk, past, APPROVAL_PATH, start - timedelta(days=5))
        _walk_change(desk, past, ["implementing"], past.planned_start)
        _walk_change(desk, past, ["implemented", "closed"], past.planned_end)
    start = sunday - timedelta(weeks=2) + timedelta(hours=1)
    failed = _demo_change(desk, "Upgrade the portal framework", start, 4, desk.apps[:1])
    _walk_change(desk, failed, APPROVAL_PATH, start - timedelta(days=5))
    _walk_change(desk, failed, ["implementing"], failed.planned_start)
    _walk_change(desk, failed, ["implemented"], failed.planned_end, success=False,
                 implementation_notes="Errors after the upgrade; rolled back")
    caused = _demo_incident(desk, failed.planned_start + timedelta(hours=1),
                            short_description="Portal errors after the framework upgrade", impact="high",
                            urgency="high", ci_id=desk.apps[0].id if desk.apps else None,
                            assigned_to=desk.who["service_desk_agent"])
    _move_incident(desk, caused, failed.planned_end, status="in_progress")
    _move_incident(desk, caused, failed.planned_end + timedelta(hours=1), status="resolved",
                   resolution_notes="Rolled back by the change")
    changes.link_caused_incident(db, actor, failed.id, caused.id)
    for text, path in (("Replace a failed disk", APPROVAL_PATH), ("Firmware update", APPROVAL_PATH[:3])):
        upcoming = _demo_change(desk, text, sunday + timedelta(weeks=1, hours=1), 2, desk.servers[:1])
        _walk_change(desk, upcoming, path, now)
    standard = _demo_change(desk, "Restart the portal's application pool", sunday + timedelta(hours=2), 1,
                            desk.apps[:1], type_="standard", template_id=template.id)
    _walk_change(desk, standard, ["scheduled"], now)
    emergency = _demo_change(desk, "Emergency security patch", now + timedelta(days=1), 2, desk.servers[1:3],
                             type_="emergency")
    _walk_change(desk, emergency, ["submitted"], now)
    _demo_change(desk, "Decommission the old file share", sunday + timedelta(weeks=6, hours=1), 4, desk.servers[-1:])


# ---- knowledge base -------------------------------------------------------------------------------

GLOBAL_ARTICLES = [
    # (title, category, keywords, audience, body)
    ("Password reset", "Access", ["password", "login"], "everyone",
     "1. Open the self-service portal and choose **Forgot password**.\n2. Enter your e-mail address.\n"
     "3. Follow the link you receive within five minutes.\n\nThe link expires after one hour."),
    ("Unlock a locked account", "Access", ["lockout", "login"], "everyone",
     "After five failed logins your account is locked for 15 minutes.\n\nWait, or ask the service desk to "
     "unlock it: they need your user name, never your password."),
    ("Set up multi-factor authentication", "Security", ["mfa", "2fa", "authenticator"], "everyone",
     "Install an authenticator app, open **My account → Security** and scan the QR code.\n\n"
     "Keep the recovery codes somewhere safe."),
    ("Connect to the VPN from home", "Network", ["vpn", "remote"], "everyone",
     "Start the VPN client, choose the *Government* profile and sign in with MFA.\n\n"
     "If it disconnects every hour, renew the certificate in the client settings."),
    ("Outlook keeps asking for a password", "Email", ["outlook", "email", "password"], "everyone",
     "Close Outlook, remove the saved credentials in the Credential Manager, open Outlook and sign in again."),
    ("Printer shows paper jam", "Printing", ["printer", "jam"], "everyone",
     "Open tray 2 and the rear door, remove the paper gently, close both and press **OK**."),
    ("Report a phishing e-mail", "Security", ["phishing", "email", "security"], "everyone",
     "Do not click links. Use **Report message → Phishing** in Outlook; the security team reviews it."),
    ("Share a large file securely", "Data", ["file", "share", "transfer"], "everyone",
     "Use the government file transfer service: files up to 20 GB, encrypted, deleted after 14 days."),
    ("Wi-Fi drops in meeting rooms", "Network", ["wifi", "wireless"], "everyone",
     "Forget the *GovNet* network and join again; if it still drops, note the room number for the desk."),
    ("Escalate a priority 1 incident", "Service desk", ["p1", "major incident", "escalation"], "agents",
     "Call the duty manager, open a bridge and post updates every 30 minutes in the incident's work notes."),
    ("Restart the session store service", "Service desk", ["session", "restart", "runbook"], "agents",
     "Run `systemctl restart session-store` on both nodes, one after the other; watch the login rate recover."),
    ("Set up the old VPN client (legacy)", "Network", ["vpn", "legacy"], "everyone",
     "The legacy client is no longer supported: use the new VPN client."),
]

DOMAIN_TEMPLATES = [
    ("{service}: cannot log in", "Access", ["login"], "everyone",
     "Check that your account is active, then clear the browser cache and sign in to **{service}** again."),
    ("{service}: error 500 when submitting a form", "Application", ["error 500", "form"], "everyone",
     "Save a copy of your entries, reload the page and submit again. If it fails twice, report it with the time."),
    ("{service}: slow at the end of the month", "Performance", ["slow", "performance"], "everyone",
     "Batch jobs run on the last working day. Work outside 14:00-17:00 or use the export instead."),
    ("{service}: restart the application (runbook)", "Runbook", ["restart", "runbook"], "agents",
     "Drain the node from the load balancer, restart the service, check `/health`, put it back."),
    ("{service}: export data to a spreadsheet", "How-to", ["export", "csv"], "everyone",
     "Open the list, filter it and choose **Export → CSV**; exports are limited to 100,000 rows."),
]


def _demo_person(user_id: uuid.UUID, email: str, domain: str | None):
    """The demo staff acting in the knowledge base (authors and reviewers are real demo users)."""
    from gaas.core.context import Actor, Grant
    from gaas.iam.permissions import PERMISSIONS

    scope = Grant(frozenset(PERMISSIONS), "domain", domain) if domain else Grant(frozenset(PERMISSIONS))
    return Actor(user_id=user_id, email=email, home_domain=domain,
                 visible_domains=frozenset({domain}) if domain else None, grants=(scope,))


def _load_knowledge(db, actor, portfolio: Portfolio, real_ids: dict, people: dict, password_hash: str,
                    rng: random.Random) -> dict[str, int]:
    """A global knowledge manager and a dozen global articles; per domain fifteen articles on its
    services (some for agents only, some linked to services and CIs), a known error from its problem
    with a workaround, a draft and one in review, some retired; a few articles solved incidents."""
    from datetime import UTC, datetime, timedelta

    from gaas.iam import service as iam
    from gaas.iam.schemas import RoleCreate, UserCreate, UserRoleCreate
    from gaas.incidents import problems
    from gaas.incidents import service as incidents
    from gaas.knowledge import service as knowledge
    from gaas.knowledge.schemas import (
        ApproveBody,
        ArticleCreate,
        KnownErrorCreate,
        RetireBody,
        SubmitBody,
    )

    made = {"articles": 0, "known_errors": 0, "retired_articles": 0}
    role = iam.create_role(db, actor, RoleCreate(
        name="knowledge_manager", description="Reviews, publishes and retires knowledge articles everywhere",
        permissions=["knowledge.view", "knowledge_internal.view", "knowledge.write", "knowledge.review",
                     "service.view", "ci.view", "incident.view", "problem.view"]))
    manager_user = iam.create_user(db, actor, UserCreate(email="knowledge.manager@example.org",
                                                         username="knowledge.manager", name="Nadia Okafor"))
    manager_user.password_hash = password_hash
    iam.assign_role(db, actor, manager_user.id, UserRoleCreate(role_id=role.id, scope_type="global"))
    manager = _demo_person(manager_user.id, manager_user.email, None)

    def publish(author, reviewer, data: ArticleCreate, *, retire: str | None = None, stop: str | None = None):
        article = knowledge.create_article(db, author, data)
        made["articles"] += 1
        if stop == "draft":
            return article
        knowledge.submit(db, author, article.id, SubmitBody(version=article.version), None)
        if stop == "review":
            return article
        knowledge.approve(db, reviewer, article.id, ApproveBody(version=article.version), None)
        if retire:
            knowledge.retire(db, reviewer, article.id, RetireBody(version=article.version, reason=retire), None)
            made["retired_articles"] += 1
        return article

    for title, category, keywords, audience, body in GLOBAL_ARTICLES:
        legacy = "legacy" in keywords
        publish(actor, manager, ArticleCreate(domain=None, title=title, body=body, category=category,
                                              keywords=keywords, audience=audience,
                                              summary=body.split("\n")[0][:200]),
                retire="Replaced by the new VPN client" if legacy else None)

    now = datetime.now(UTC)
    for code, _ in portfolio.domains:
        author = _demo_person(people[code]["service_desk_agent"], f"{code}.service.desk.agent@example.org", code)
        reviewer = _demo_person(people[code]["domain_admin"], f"{code}.domain.admin@example.org", code)
        services = [s for s in portfolio.services if s.domain == code and s.type in ("business", "application")]
        for index in range(15):
            template = DOMAIN_TEMPLATES[index % len(DOMAIN_TEMPLATES)]
            seed_service = services[(index // len(DOMAIN_TEMPLATES) + index * 3) % len(services)]
            title, category, keywords, audience, body = template
            data = ArticleCreate(
                domain=code, title=title.format(service=seed_service.name)[:200],
                body=body.format(service=seed_service.name), category=category, keywords=keywords,
                audience=audience, service_ids=[real_ids[seed_service.id]],
                valid_to=now + timedelta(days=rng.randrange(200, 400)) if index % 4 == 0 else None)
            stop = "draft" if index == 13 else "review" if index == 14 else None
            publish(author, reviewer, data, stop=stop, retire="Superseded by the new release" if index == 12 else None)
        known = problems.list_problems(db, actor, domain=code, status=None, priority=None, assigned_to=None,
                                       service_id=None, known_error=True, q=None, include_deleted=False, sort=None,
                                       cursor=None, limit=10)[0]
        for problem in known:
            knowledge.create_known_error(db, reviewer, KnownErrorCreate(problem_id=problem.id, audience="agents"))
            made["known_errors"] += 1
            made["articles"] += 1
            linked = incidents.list_incidents(db, actor, domain=code, problem_id=problem.id, limit=3)[0]
            article = db.scalars(_known_error_of(problem.id)).first()
            for incident in linked:
                knowledge.link_incident(db, author, article.id, incident.id)
    return made


def _known_error_of(problem_id: uuid.UUID):
    from sqlalchemy import select

    from gaas.knowledge.models import Article

    return select(Article).where(Article.problem_id == problem_id, Article.kind == "known_error")
