"""The service portfolio: services (list, record, forms, lifecycle), the expandable tree with PPT
cost bars, and the cost charts and cost entries."""

from __future__ import annotations

import json
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gaas.catalog import service as catalog
from gaas.catalog.models import RelationshipType, ServiceStatus, ServiceType, StakeholderRole
from gaas.catalog.schemas import RelationshipCreate, ServiceCreate, ServiceUpdate, StakeholderCreate
from gaas.core.errors import Problem
from gaas.core.http import DbSession
from gaas.costs import service as costs
from gaas.costs.models import CostCategory
from gaas.costs.schemas import CostEntryCreate, CostEntryUpdate
from gaas.iam import service as iam
from gaas.ui import forms, lists
from gaas.ui.lists import Column, Filter, ListSpec, badge, link
from gaas.ui.pages import register
from gaas.ui.pages.core import history, stale_conflict
from gaas.ui.web import UI, CheckedForm, CurrentUI, UIRoute, redirect, render

router = APIRouter(route_class=UIRoute, include_in_schema=False)
TREE_FULL_LIMIT = 2000


def domain_options(db, ui: UI) -> list[tuple[str, str]]:
    if not ui.actor.can_anywhere("domain.view"):  # a picker needs no more than the domains one works in
        return [(code, code) for code in sorted(ui.actor.visible_domains or ())]
    rows, _ = iam.list_domains(db, ui.actor, active=None, q=None, include_deleted=False, sort="code", cursor=None,
                               limit=200)
    return [(d.code, d.code) for d in rows if ui.actor.sees(d.code)]


def enum_options(enum_cls) -> list[tuple[str, str]]:
    return [(m.value, m.value.replace("_", " ").capitalize()) for m in enum_cls]


def people(db, ids) -> dict[uuid.UUID, str]:
    return iam.user_names(db, sorted({i for i in ids if i}))


# ---- services list ------------------------------------------------------------------------------

def _fetch_services(db, ui: UI, f: dict[str, str], q, sort, cursor, limit):
    return catalog.list_services(db, ui.actor, domain=f.get("domain"), type_=ServiceType(f["type"]) if "type" in f
                                 else None, status=ServiceStatus(f["status"]) if "status" in f else None,
                                 q=q, sort=sort, cursor=cursor, limit=limit)


SERVICES = register(ListSpec(
    name="services", title="Services", search="Search services (fuzzy)",
    columns=[Column("number", "Number", "number"), Column("name", "Name", "name"), Column("domain", "Domain"),
             Column("type", "Type", cell=lambda r, x: badge(r.type)),
             Column("status", "Status", cell=lambda r, x: badge(r.status)),
             Column("owner", "Owner", cell=lambda r, x: x.get("people", {}).get(r.owner_id, "")),
             Column("total_cost", "Annual cost", cell=lambda r, x: f"{r.total_cost:,.2f}")],
    filters=[Filter("domain", "Domain", domain_options), Filter("type", "Type", enum_options(ServiceType)),
             Filter("status", "Status", enum_options(ServiceStatus))],
    fetch=_fetch_services, link=lambda r: f"/services/{r.id}",
    extras=lambda db, ui, rows: {"people": people(db, [r.owner_id for r in rows])},
    new=("/services/new", "service.create")))


@router.get("/services", response_class=HTMLResponse)
def services(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.page(request, db, ui, SERVICES)


@router.get("/services/export.csv")
def services_csv(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.export(request, db, ui, SERVICES)


# ---- the tree -----------------------------------------------------------------------------------

def nest(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tree's flat, path-ordered nodes as nested dicts (children in order)."""
    by_id: dict[str, dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    for node in nodes:
        node["children"] = []
        by_id[node["id"]] = node
        parent = by_id.get(node["parent_service_id"] or "")
        (parent["children"] if parent is not None else roots).append(node)
    return roots


def bar_scale(nodes: list[dict[str, Any]]) -> Decimal:
    totals = [Decimal(n["rolled_up"]["total"]) for n in nodes if n["depth"] == 0]
    return max(totals, default=Decimal(0)) or Decimal(1)


@router.get("/services/tree", response_class=HTMLResponse)
def tree(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    domain = request.query_params.get("domain") or None
    root = request.query_params.get("root") or None
    root_id = forms.maybe_uuid(root)
    if root is not None and not isinstance(root_id, uuid.UUID):
        root_id = None
    nodes = json.loads(catalog.tree_json(db, ui.actor, root_id=root_id, domain=None if root_id else domain))
    limited = len(nodes) > TREE_FULL_LIMIT
    if limited:
        nodes = [n for n in nodes if n["depth"] <= 1]
    return render(request, "tree.html", {
        "title": ui.t("Service tree"), "roots": nest(nodes), "scale": bar_scale(nodes), "domain": domain,
        "domains": domain_options(db, ui), "limited": limited, "count": len(nodes), "root": root_id})


# ---- one service --------------------------------------------------------------------------------

SERVICE_FIELDS = ("name", "description", "type", "parent_service_id", "owner_id", "manager_id", "sla_target",
                  "cost_people", "cost_process", "cost_technology")


def _service_values(form: dict[str, Any]) -> dict[str, Any]:
    values = forms.values(form, *SERVICE_FIELDS)
    for key in ("cost_people", "cost_process", "cost_technology"):
        if values[key] is None:
            values[key] = "0"
    return values


def _service_page(request: Request, db, ui: UI, service, *, values=None, errors=None, conflict=None,
                  related_errors=None, status: int = 200) -> Response:
    can_edit = catalog.can(db, ui.actor, "service.edit", service)
    related: dict[str, Any] = {}
    related["children"], _ = catalog.list_services(db, ui.actor, parent_id=service.id, limit=50)
    if ui.can("ci.view", service.domain):
        from gaas.cmdb import service as cmdb

        related["cis"], _ = cmdb.list_cis(db, ui.actor, domain=None, ci_class=None, status=None, environment=None,
                                          service_id=service.id, q=None, attributes={}, include_deleted=False,
                                          sort=None, cursor=None, limit=50)
    if ui.can("incident.view", service.domain):
        from gaas.incidents import service as incidents

        related["incidents"], _ = incidents.list_incidents(db, ui.actor, service_id=service.id, sort="-created_at",
                                                           limit=20)
    if ui.can("change.view", service.domain):
        from gaas.changes import service as changes

        related["changes"], _ = changes.list_changes(db, ui.actor, service_id=service.id, sort="-created_at",
                                                     limit=20)
    relationships = catalog.list_relationships(db, ui.actor, service.id)
    stakeholders = catalog.list_stakeholders(db, ui.actor, service.id)
    other_ids = {r.target_service_id for r in relationships} | {r.source_service_id for r in relationships}
    labels = catalog.service_labels(db, sorted(other_ids | ({service.parent_service_id} if service.parent_service_id
                                                            else set())))
    names = people(db, [service.owner_id, service.manager_id, *[s.user_id for s in stakeholders]])
    nodes = json.loads(catalog.tree_json(db, ui.actor, root_id=service.id))
    if values is None:
        values = {k: getattr(service, k) for k in SERVICE_FIELDS}
    moves = sorted(m.value for m in catalog.TRANSITIONS[service.status]) if can_edit else []
    return render(request, "service.html", {
        "title": f"{service.number} · {service.name}", "s": service, "values": values, "errors": errors,
        "conflict": conflict, "can_edit": can_edit, "moves": moves, "related": related,
        "relationships": relationships, "stakeholders": stakeholders, "labels": labels, "names": names,
        "subtree": nest(nodes), "scale": bar_scale(nodes), "types": enum_options(ServiceType),
        "related_errors": related_errors, "relationship_types": [o for o in enum_options(RelationshipType)
                                                                 if o[0] != "parent_of"],
        "stakeholder_roles": enum_options(StakeholderRole),
        "activity": history(db, "service", service.id)}, status=status)


@router.get("/services/new", response_class=HTMLResponse)
def new_service(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return render(request, "service_new.html", {"title": ui.t("New service"), "values": {
        "domain": ui.actor.home_domain or "", "type": "business", "status": "design",
        "parent_service_id": request.query_params.get("parent") or ""}, "errors": None,
        "domains": domain_options(db, ui), "types": enum_options(ServiceType)})


@router.post("/services/new", response_class=HTMLResponse)
def create_service(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    values = {**_service_values(form), **forms.values(form, "domain", "status")}
    created, errors = forms.attempt(db, lambda: catalog.create_service(db, ui.actor, ServiceCreate.model_validate(
        {k: v for k, v in values.items() if v is not None})))
    if errors:
        return render(request, "service_new.html", {"title": ui.t("New service"), "values": values,
                                                    "errors": errors, "domains": domain_options(db, ui),
                                                    "types": enum_options(ServiceType)}, status=errors.status)
    return redirect(f"/services/{created.id}", request, flash="Service created.")


@router.get("/services/{service_id}", response_class=HTMLResponse)
def service_page(service_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _service_page(request, db, ui, catalog.get_service(db, ui.actor, service_id))


@router.post("/services/{service_id}", response_class=HTMLResponse)
def service_save(service_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                 form: CheckedForm) -> Response:
    service = catalog.get_service(db, ui.actor, service_id)
    values = {"status": forms.text(form, "status")} if "status" in form else _service_values(form)
    body = {**values, "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: catalog.update_service(db, ui.actor, service_id,
                                                                 ServiceUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "service", service_id, service, values) if errors.stale else None
        return _service_page(request, db, ui, service, values=None if "status" in form else values, errors=errors,
                             conflict=conflict, status=errors.status)
    return redirect(f"/services/{service_id}", request, flash="Saved.")


@router.post("/services/{service_id}/related/{action}", response_class=HTMLResponse)
def service_related(service_id: uuid.UUID, action: str, request: Request, db: DbSession, ui: CurrentUI,
                    form: CheckedForm) -> Response:
    """Add or remove a relationship or a stakeholder (each audited on the service by the catalog)."""
    service = catalog.get_service(db, ui.actor, service_id)
    operations = {
        "add-relationship": lambda: catalog.add_relationship(
            db, ui.actor, service_id,
            RelationshipCreate.model_validate(forms.values(form, "target_service_id", "relationship_type",
                                                           "description"))),
        "remove-relationship": lambda: catalog.remove_relationship(db, ui.actor, service_id,
                                                                   forms.maybe_uuid(forms.text(form, "id"))),
        "add-stakeholder": lambda: catalog.add_stakeholder(db, ui.actor, service_id, StakeholderCreate.model_validate(
            forms.values(form, "user_id", "role"))),
        "remove-stakeholder": lambda: catalog.remove_stakeholder(db, ui.actor, service_id,
                                                                 forms.maybe_uuid(forms.text(form, "id"))),
    }
    if action not in operations:
        from gaas.core.errors import NotFound

        raise NotFound("There is no page at this address.")
    _, errors = forms.attempt(db, operations[action])
    if errors:
        return _service_page(request, db, ui, service, related_errors=errors, status=errors.status)
    return redirect(f"/services/{service_id}", request, flash="Saved.")


# ---- costs --------------------------------------------------------------------------------------

def _month_start(d: date, back: int = 0) -> date:
    month = d.month - back
    year = d.year + (month - 1) // 12
    month = (month - 1) % 12 + 1
    return date(year, month, 1)


@router.get("/costs", response_class=HTMLResponse)
def cost_charts(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    domain = request.query_params.get("domain") or None
    balance = catalog.ppt_balance(db, ui.actor, domain)
    today = date.today()
    start, end = _month_start(today, 11), _month_start(today, -1)
    report, _ = costs.cost_report(db, ui.actor, domain=domain, service_id=None, date_from=start, date_to=end,
                                  period="month", group_by=["period"], cursor=None, limit=1000)
    series = _time_series(report.rows, report.allocation_currency)
    top = []
    if ui.can("service.view"):
        nodes = [n for n in json.loads(catalog.tree_json(db, ui.actor, domain=domain)) if n["depth"] == 0]
        nodes.sort(key=lambda n: Decimal(n["rolled_up"]["total"]), reverse=True)
        top = nodes[:12]
    return render(request, "costs.html", {
        "title": ui.t("Costs"), "balance": balance, "series": series, "currency": report.allocation_currency,
        "top": top, "scale": max((Decimal(n["rolled_up"]["total"]) for n in top), default=Decimal(1)) or 1,
        "domain": domain, "domains": domain_options(db, ui), "start": start, "end": end})


def _time_series(rows, currency: str) -> dict[str, Any]:
    """Allocated against actual per month, in the allocation currency (other currencies listed apart)."""
    points = [r for r in rows if r.currency == currency]
    others = [r for r in rows if r.currency != currency and r.actual]
    top = max([float(r.allocated or 0) for r in points] + [float(r.actual or 0) for r in points] + [1.0])
    return {"points": points, "others": others, "max": top}


def _fetch_entries(db, ui: UI, f: dict[str, str], q, sort, cursor, limit):
    return costs.list_entries(db, ui.actor, domain=f.get("domain"), service_id=None, ci_id=None,
                              category=CostCategory(f["category"]) if "category" in f else None,
                              currency=f.get("currency"), period_from=None, period_to=None, include_deleted=False,
                              sort=sort, cursor=cursor, limit=limit)


COST_ENTRIES = register(ListSpec(
    name="cost-entries", title="Cost entries", url="/costs/entries",
    columns=[Column("period_start", "Period", "period_start"), Column("domain", "Domain"),
             Column("service", "Service", cell=lambda r, x: link(f"/services/{r.service_id}",
                                                                  x["labels"].get(r.service_id, ("", ""))[1])
                    if r.service_id else ""),
             Column("category", "Category", cell=lambda r, x: badge(r.category)),
             Column("amount", "Amount", "amount", cell=lambda r, x: f"{r.amount:,.2f}"),
             Column("currency", "Currency"), Column("description", "Description")],
    filters=[Filter("domain", "Domain", domain_options), Filter("category", "Category", enum_options(CostCategory)),
             Filter("currency", "Currency", [("USD", "USD"), ("EUR", "EUR")])],
    fetch=_fetch_entries,
    extras=lambda db, ui, rows: {"labels": catalog.service_labels(db, sorted({r.service_id for r in rows
                                                                             if r.service_id}))},
    link=lambda r: f"/costs/entries/{r.id}", new=("/costs/entries/new", "cost.manage"),
    default_sort="-period_start"))


@router.get("/costs/entries", response_class=HTMLResponse)
def cost_entries(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.page(request, db, ui, COST_ENTRIES)


@router.get("/costs/entries/export.csv")
def cost_entries_csv(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.export(request, db, ui, COST_ENTRIES)


BULK_COLUMNS = ("service_id", "category", "amount", "currency", "period_start", "period_end", "description")


@router.get("/costs/entries/bulk", response_class=HTMLResponse)
def bulk_entries_page(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return render(request, "cost_bulk.html", {"title": ui.t("Record many cost entries"), "errors": None,
                                              "bad_rows": [], "created": None, "columns": BULK_COLUMNS})


@router.post("/costs/entries/bulk", response_class=HTMLResponse)
def bulk_entries(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    """A CSV of cost entries through the API's bulk creation: all or nothing, every bad line named."""
    import csv
    import io
    import re

    upload = form.get("file")
    errors = forms.FormErrors()
    bad_rows: list[tuple[int, str, str]] = []
    created = None
    rows: list[dict[str, Any]] = []
    if upload is None or not hasattr(upload, "file"):
        errors.add("file", "choose a CSV file")
    else:
        text_stream = io.TextIOWrapper(upload.file, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.DictReader(text_stream)
        missing = [c for c in BULK_COLUMNS[:-1] if c not in (reader.fieldnames or [])]
        if missing:
            errors.add("file", "the header must name " + ", ".join(BULK_COLUMNS) + f" (missing: {', '.join(missing)})")
        else:
            rows = [{k: (v.strip() or None) if isinstance(v, str) else v for k, v in row.items() if k in BULK_COLUMNS}
                    for row in reader]
            if not rows:
                errors.add("file", "the file has no rows")
            elif len(rows) > 5000:
                errors.add("file", "at most 5,000 rows at a time")
    if not errors:
        from pydantic import ValidationError

        from gaas.costs.schemas import CostEntryBulk

        try:
            with db.begin_nested():
                created = costs.create_entries(db, ui.actor, CostEntryBulk.model_validate({"items": rows}).items)
        except ValidationError as exc:
            bad_rows = [(int(e["loc"][1]) + 2, str(e["loc"][2]) if len(e["loc"]) > 2 else "", e["msg"])
                        for e in exc.errors() if len(e["loc"]) > 1 and str(e["loc"][1]).isdigit()]
        except Problem as exc:
            for item in exc.errors:
                match = re.match(r"^items\.(\d+)\.(.+)$", str(item.get("field", "")))
                if match:
                    bad_rows.append((int(match[1]) + 2, match[2], item.get("message", "invalid")))
                else:
                    errors.general.append(item.get("message", exc.detail))
            if not exc.errors:
                errors.general.append(exc.detail)
    status = 422 if (errors or bad_rows) else 200
    return render(request, "cost_bulk.html", {"title": ui.t("Record many cost entries"), "errors": errors or None,
                                              "bad_rows": bad_rows, "created": len(created) if created else None,
                                              "columns": BULK_COLUMNS}, status=status)


ENTRY_FIELDS = ("category", "amount", "currency", "period_start", "period_end", "description")


def _entry_page(request, db, ui: UI, entry, values, errors=None, conflict=None, status=200) -> Response:
    label = catalog.service_labels(db, [entry.service_id]).get(entry.service_id) if entry and entry.service_id \
        else None
    return render(request, "cost_entry.html", {
        "title": ui.t("Cost entry") if entry else ui.t("New cost entry"), "e": entry, "values": values,
        "errors": errors, "conflict": conflict, "categories": enum_options(CostCategory),
        "service_label": label, "activity": history(db, "cost_entry", entry.id) if entry else []}, status=status)


@router.get("/costs/entries/new", response_class=HTMLResponse)
def new_entry(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _entry_page(request, db, ui, None, {"currency": "USD", "category": "technology",
                                               "service_id": request.query_params.get("service") or ""})


@router.post("/costs/entries/new", response_class=HTMLResponse)
def create_entry(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    values = forms.values(form, "service_id", *ENTRY_FIELDS)
    created, errors = forms.attempt(db, lambda: costs.create_entry(db, ui.actor, CostEntryCreate.model_validate(
        {k: v for k, v in values.items() if v is not None})))
    if errors:
        return _entry_page(request, db, ui, None, values, errors, status=errors.status)
    return redirect(f"/costs/entries/{created.id}", request, flash="Saved.")


@router.get("/costs/entries/{entry_id}", response_class=HTMLResponse)
def entry_page(entry_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    entry = costs.get_entry(db, ui.actor, entry_id)
    return _entry_page(request, db, ui, entry, {k: getattr(entry, k) for k in ENTRY_FIELDS})


@router.post("/costs/entries/{entry_id}", response_class=HTMLResponse)
def entry_save(entry_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    entry = costs.get_entry(db, ui.actor, entry_id)
    values = forms.values(form, *ENTRY_FIELDS)
    body = {**{k: v for k, v in values.items() if v is not None or k == "description"},
            "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: costs.update_entry(db, ui.actor, entry_id,
                                                             CostEntryUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "cost_entry", entry_id, entry, values) if errors.stale else None
        return _entry_page(request, db, ui, entry, values, errors, conflict, status=errors.status)
    return redirect(f"/costs/entries/{entry_id}", request, flash="Saved.")


