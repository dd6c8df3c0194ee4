"""The CMDB: CI lists and records, relationships, the impact graph, CI classes and CMDB health."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gaas.catalog import service as catalog
from gaas.cmdb import health
from gaas.cmdb import service as cmdb
from gaas.cmdb.models import CIRelationshipType, CIStatus, Environment
from gaas.cmdb.schemas import CIClassCreate, CIClassUpdate, CICreate, CIRelationshipCreate, CIUpdate
from gaas.core.http import DbSession
from gaas.ui import forms, lists
from gaas.ui.graph import impact_picture
from gaas.ui.lists import Column, Filter, ListSpec, badge
from gaas.ui.pages import register
from gaas.ui.pages.core import history, stale_conflict
from gaas.ui.pages.portfolio import domain_options, enum_options, people
from gaas.ui.web import UI, CheckedForm, CurrentUI, UIRoute, redirect, render

router = APIRouter(route_class=UIRoute, include_in_schema=False)


def class_options(db, ui: UI) -> list[tuple[str, str]]:
    rows, _ = cmdb.list_classes(db, ui.actor, domain=None, include_deleted=False, cursor=None, limit=200)
    return sorted({(c.name, c.label) for c in rows})


def _fetch_cis(db, ui: UI, f: dict[str, str], q, sort, cursor, limit):
    return cmdb.list_cis(db, ui.actor, domain=f.get("domain"), ci_class=f.get("class"),
                         status=CIStatus(f["status"]) if "status" in f else None,
                         environment=Environment(f["environment"]) if "environment" in f else None,
                         service_id=forms.maybe_uuid(f.get("service")), q=q, attributes={}, include_deleted=False,
                         sort=sort, cursor=cursor, limit=limit, health_flag=f.get("health"))


CIS = register(ListSpec(
    name="cis", title="Configuration items", search="Search by name (fuzzy)",
    columns=[Column("number", "Number", "number"), Column("name", "Name", "name"),
             Column("ci_class", "Class"), Column("domain", "Domain", cell=lambda r, x: r.domain or "shared"),
             Column("status", "Status", cell=lambda r, x: badge(r.status)),
             Column("environment", "Environment", cell=lambda r, x: r.environment.value),
             Column("service", "Service", cell=lambda r, x: " · ".join(x["labels"].get(r.service_id, ()))),
             Column("updated_at", "Updated", "updated_at", cell=lambda r, x: r.updated_at.date())],
    filters=[Filter("domain", "Domain", domain_options), Filter("class", "Class", class_options),
             Filter("status", "Status", enum_options(CIStatus)),
             Filter("environment", "Environment", enum_options(Environment)),
             Filter("health", "Health problem", [(f, f.replace("_", " ").capitalize()) for f in health.FLAGS])],
    fetch=_fetch_cis, link=lambda r: f"/cis/{r.id}",
    extras=lambda db, ui, rows: {"labels": catalog.service_labels(db, sorted({r.service_id for r in rows
                                                                             if r.service_id}))},
    new=("/cis/new", "ci.create")))


@router.get("/cis", response_class=HTMLResponse)
def cis(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.page(request, db, ui, CIS)


@router.get("/cis/export.csv")
def cis_csv(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.export(request, db, ui, CIS)


# ---- one CI -------------------------------------------------------------------------------------

CI_FIELDS = ("name", "status", "environment", "service_id", "owner_id", "managed_by")


def _ci_values(form: dict[str, Any], errors: forms.FormErrors) -> dict[str, Any]:
    values = forms.values(form, *CI_FIELDS)
    values["attributes"] = forms.json_field(form, "attributes", errors, default={})
    return values


def _ci_page(request: Request, db, ui: UI, ci, *, values=None, errors=None, conflict=None,
             rel_errors=None, status: int = 200) -> Response:
    rels, _ = cmdb.list_relationships(db, ui.actor, ci_id=ci.id, source_ci_id=None, target_ci_id=None, type_=None,
                                      cursor=None, limit=200)
    ends = [end for rel in rels for end in (rel.source_ci_id, rel.target_ci_id) if end != ci.id]
    found = cmdb.cis_existing(db, ui.actor, ends)
    others: dict[uuid.UUID, Any] = {end: found.get(end) for end in ends}
    cls = cmdb.class_for(db, ci.ci_class, ci.domain)
    if values is None:
        values = {k: getattr(ci, k) for k in CI_FIELDS}
        values["attributes"] = ci.attributes
    import json

    attributes_text = values["attributes"] if isinstance(values["attributes"], str) else \
        json.dumps(values["attributes"], indent=2, ensure_ascii=False)
    service_label = catalog.service_labels(db, [ci.service_id]).get(ci.service_id) if ci.service_id else None
    return render(request, "ci.html", {
        "title": f"{ci.number} · {ci.name}", "ci": ci, "values": values, "attributes_text": attributes_text,
        "errors": errors, "rel_errors": rel_errors, "conflict": conflict, "cls": cls,
        "can_edit": ui.can("ci.edit", ci.domain) if ci.domain else ui.actor.can("ci.edit", None),
        "relationships": rels, "others": others, "rel_types": enum_options(CIRelationshipType),
        "statuses": enum_options(CIStatus), "environments": enum_options(Environment),
        "names": people(db, [ci.owner_id, ci.managed_by]), "service_label": service_label,
        "activity": history(db, "ci", ci.id)}, status=status)


@router.get("/cis/new", response_class=HTMLResponse)
def new_ci(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _new_ci_page(request, db, ui, {"domain": ui.actor.home_domain or "", "environment": "production",
                                          "status": "active", "attributes": "{}"}, None)


def _new_ci_page(request, db, ui, values, errors, status=200):
    return render(request, "ci_new.html", {"title": ui.t("New configuration item"), "values": values,
                                           "errors": errors, "domains": domain_options(db, ui),
                                           "classes": class_options(db, ui), "statuses": enum_options(CIStatus),
                                           "environments": enum_options(Environment)}, status=status)


@router.post("/cis/new", response_class=HTMLResponse)
def create_ci(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    errors = forms.FormErrors()
    values = {**_ci_values(form, errors), **forms.values(form, "domain", "ci_class")}
    if not errors:
        created, errors = forms.attempt(db, lambda: cmdb.create_ci(db, ui.actor, CICreate.model_validate(
            {k: v for k, v in values.items() if v is not None})))
    if errors:
        values["attributes"] = form.get("attributes") or "{}"
        return _new_ci_page(request, db, ui, values, errors, errors.status)
    return redirect(f"/cis/{created.id}", request, flash="Configuration item created.")


@router.get("/cis/{ci_id}", response_class=HTMLResponse)
def ci_page(ci_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _ci_page(request, db, ui, cmdb.get_ci(db, ui.actor, ci_id))


@router.post("/cis/{ci_id}", response_class=HTMLResponse)
def ci_save(ci_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    ci = cmdb.get_ci(db, ui.actor, ci_id)
    errors = forms.FormErrors()
    values = _ci_values(form, errors)
    if not errors:
        body = {**values, "version": forms.version(form)}
        _, errors = forms.attempt(db, lambda: cmdb.update_ci(db, ui.actor, ci_id, CIUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "ci", ci_id, ci, {k: v for k, v in values.items() if k != "attributes"}) \
            if errors.stale else None
        values["attributes"] = form.get("attributes") or "{}"
        return _ci_page(request, db, ui, ci, values=values, errors=errors, conflict=conflict, status=errors.status)
    return redirect(f"/cis/{ci_id}", request, flash="Saved.")


@router.post("/cis/{ci_id}/relationships", response_class=HTMLResponse)
def add_relationship(ci_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                     form: CheckedForm) -> Response:
    ci = cmdb.get_ci(db, ui.actor, ci_id)
    other = forms.text(form, "other_ci_id")
    outgoing = forms.text(form, "direction") != "incoming"
    body = {"source_ci_id": ci_id if outgoing else other, "target_ci_id": other if outgoing else ci_id,
            "relationship_type": forms.text(form, "relationship_type")}
    _, errors = forms.attempt(db, lambda: cmdb.create_relationship(db, ui.actor,
                                                                   CIRelationshipCreate.model_validate(body)))
    if errors:
        for key in ("source_ci_id", "target_ci_id"):
            if key in errors.fields:
                errors.fields.setdefault("other_ci_id", []).extend(errors.fields.pop(key))
        return _ci_page(request, db, ui, ci, rel_errors=errors, status=errors.status)
    return redirect(f"/cis/{ci_id}", request, flash="Relationship added.")


@router.post("/cis/{ci_id}/relationships/{relationship_id}/delete", response_class=HTMLResponse)
def delete_relationship(ci_id: uuid.UUID, relationship_id: uuid.UUID, request: Request, db: DbSession,
                        ui: CurrentUI, form: CheckedForm) -> Response:
    ci = cmdb.get_ci(db, ui.actor, ci_id)
    _, errors = forms.attempt(db, lambda: cmdb.delete_relationship(db, ui.actor, relationship_id))
    if errors:
        return _ci_page(request, db, ui, ci, rel_errors=errors, status=errors.status)
    return redirect(f"/cis/{ci_id}", request, flash="Relationship removed.")


# ---- impact -------------------------------------------------------------------------------------

@router.get("/cis/{ci_id}/impact", response_class=HTMLResponse)
def impact(ci_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    depth = request.query_params.get("depth", "")
    max_depth = int(depth) if depth.isdigit() and 1 <= int(depth) <= cmdb.MAX_IMPACT_DEPTH else 6
    direction = request.query_params.get("direction") == "dependencies"
    report = cmdb.impact(db, ui.actor, ci_id, dependents=not direction, max_depth=max_depth, limit=80)
    focus = request.query_params.get("focus") or None
    picture = impact_picture(report, focus)
    return render(request, "impact.html", {"title": ui.t("Impact of") + " " + report["ci"]["number"],
                                           "r": report, "pic": picture, "focus": focus, "depth": max_depth,
                                           "direction": "dependencies" if direction else "dependents"})


# ---- discovery import ---------------------------------------------------------------------------

IMPORT_FORMATS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json"}


@router.get("/cmdb/import", response_class=HTMLResponse)
def import_page(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return render(request, "cmdb_import.html", {"title": ui.t("Discovery import"), "result": None, "errors": None,
                                                "values": {"source": "", "domain": ui.actor.home_domain or "",
                                                           "dry_run": True},
                                                "domains": domain_options(db, ui)})


@router.post("/cmdb/import", response_class=HTMLResponse)
def run_import(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    """The CMDB's own discovery import (streamed, reconciled, all or nothing unless partial), in a
    savepoint of this request: kept only when the importer says it committed."""
    from gaas.cmdb import importer
    from gaas.core.errors import Problem

    upload = form.get("file")
    values = {"source": forms.text(form, "source") or "", "domain": forms.text(form, "domain") or "",
              "dry_run": forms.checkbox(form, "dry_run"), "partial": forms.checkbox(form, "partial")}
    errors = forms.FormErrors()
    name = (getattr(upload, "filename", "") or "").lower()
    fmt = forms.text(form, "format") or next((f for ext, f in IMPORT_FORMATS.items() if name.endswith(ext)), None)
    if upload is None or not hasattr(upload, "file") or not name:
        errors.add("file", "choose a file of CIs (CSV, NDJSON or JSON)")
    elif fmt is None:
        errors.add("format", "say the format, or name the file .csv, .ndjson or .json")
    result = None
    if not errors:
        savepoint = db.begin_nested()
        try:
            result = importer.import_cis(db, ui.actor, importer.read_rows(upload.file, fmt), source=values["source"],
                                         dry_run=values["dry_run"], partial=values["partial"],
                                         default_domain=values["domain"] or None)
        except Problem as exc:
            savepoint.rollback()
            errors = forms.errors_from(exc)
        else:
            if result.committed:
                savepoint.commit()
            else:
                savepoint.rollback()
    return render(request, "cmdb_import.html", {"title": ui.t("Discovery import"), "result": result,
                                                "errors": errors or None, "values": values,
                                                "domains": domain_options(db, ui)},
                  status=errors.status if errors else 200)


# ---- CMDB health --------------------------------------------------------------------------------

@router.get("/cmdb/health", response_class=HTMLResponse)
def cmdb_health(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    domain = request.query_params.get("domain") or None
    rows = cmdb.health_report(db, ui.actor, domain=domain, ci_class=None)
    totals = {flag: sum(r[flag]["count"] for r in rows) for flag in health.FLAGS}
    total = sum(r["total"] for r in rows)
    return render(request, "cmdb_health.html", {"title": ui.t("CMDB health"), "rows": rows, "flags": health.FLAGS,
                                                "totals": totals, "total": total, "domain": domain,
                                                "domains": domain_options(db, ui)})


# ---- CI classes ---------------------------------------------------------------------------------

@router.get("/cmdb/classes", response_class=HTMLResponse)
def classes(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    rows, _ = cmdb.list_classes(db, ui.actor, domain=None, include_deleted=False, cursor=None, limit=200)
    return render(request, "classes.html", {"title": ui.t("CI classes"), "rows": rows})


CLASS_TEXT = ("label", "description")


def _class_values(form: dict[str, Any], errors: forms.FormErrors) -> dict[str, Any]:
    values: dict[str, Any] = forms.values(form, *CLASS_TEXT)
    values["attribute_schema"] = forms.json_field(form, "attribute_schema", errors, {"type": "object"})
    values["identification"] = forms.json_field(form, "identification", errors, [])
    values["recommended"] = [s.strip() for s in (forms.text(form, "recommended") or "").split(",") if s.strip()]
    values["source_precedence"] = [s.strip() for s in (forms.text(form, "source_precedence") or "").split(",")
                                   if s.strip()]
    values["staleness_days"] = forms.text(form, "staleness_days")
    return values


def _class_page(request, db, ui: UI, cls, values=None, errors=None, conflict=None, status=200, new=False):
    import json

    if values is None:
        values = {k: getattr(cls, k) for k in ("name", "domain", "label", "description", "attribute_schema",
                                                "identification", "recommended", "source_precedence",
                                                "staleness_days")} if cls else {
            "attribute_schema": {"type": "object", "properties": {}}, "identification": [], "recommended": [],
            "source_precedence": [], "staleness_days": 60}
    shown = dict(values)
    for key in ("attribute_schema", "identification"):
        if not isinstance(shown.get(key), str):
            shown[key] = json.dumps(shown.get(key), indent=2)
    for key in ("recommended", "source_precedence"):
        if isinstance(shown.get(key), list):
            shown[key] = ", ".join(shown[key])
    can_edit = ui.actor.can("ci_class.manage", cls.domain) if cls else ui.can("ci_class.manage")
    return render(request, "class.html", {"title": cls.label if cls else ui.t("New CI class"), "cls": cls,
                                          "values": shown, "errors": errors, "conflict": conflict, "new": new,
                                          "can_edit": can_edit, "domains": domain_options(db, ui),
                                          "activity": history(db, "ci_class", cls.id) if cls else []},
                  status=status)


@router.get("/cmdb/classes/new", response_class=HTMLResponse)
def new_class(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _class_page(request, db, ui, None, new=True)


@router.post("/cmdb/classes/new", response_class=HTMLResponse)
def create_class(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    errors = forms.FormErrors()
    values = {**_class_values(form, errors), **forms.values(form, "name", "domain")}
    created = None
    if not errors:
        created, errors = forms.attempt(db, lambda: cmdb.create_class(db, ui.actor, CIClassCreate.model_validate(
            {k: v for k, v in values.items() if v is not None})))
    if errors:
        values.update({k: form.get(k) for k in ("attribute_schema", "identification")})
        return _class_page(request, db, ui, None, values, errors, status=errors.status, new=True)
    return redirect(f"/cmdb/classes/{created.id}", request, flash="Class created.")


@router.get("/cmdb/classes/{class_id}", response_class=HTMLResponse)
def class_page(class_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _class_page(request, db, ui, cmdb.get_class(db, ui.actor, class_id))


@router.post("/cmdb/classes/{class_id}", response_class=HTMLResponse)
def class_save(class_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    cls = cmdb.get_class(db, ui.actor, class_id)
    errors = forms.FormErrors()
    values = _class_values(form, errors)
    if not errors:
        body = {**{k: v for k, v in values.items() if v is not None or k == "description"},
                "version": forms.version(form)}
        _, errors = forms.attempt(db, lambda: cmdb.update_class(db, ui.actor, class_id,
                                                                CIClassUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "ci_class", class_id, cls, {"label": values["label"]}) \
            if errors.stale else None
        values.update({k: form.get(k) for k in ("attribute_schema", "identification")})
        return _class_page(request, db, ui, cls, {**values, "name": cls.name, "domain": cls.domain}, errors,
                           conflict, status=errors.status)
    return redirect(f"/cmdb/classes/{class_id}", request, flash="Saved.")
