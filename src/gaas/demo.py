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
              "cost_entries": 0}
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
