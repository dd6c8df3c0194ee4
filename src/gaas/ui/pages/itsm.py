"""Incidents, problems and changes: lists, records with their lifecycle buttons, forms with the
incident helpers (live priority, pickers, knowledge suggestions), the change calendar and the
approvals queue."""

from __future__ import annotations

import calendar as cal
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gaas.catalog import service as catalog
from gaas.changes import service as changes
from gaas.changes.models import ChangeRisk, ChangeStatus, ChangeType
from gaas.changes.schemas import ChangeCreate, ChangeUpdate
from gaas.cmdb import service as cmdb
from gaas.core.errors import Problem
from gaas.core.http import DbSession
from gaas.incidents import policies, problems
from gaas.incidents import service as incidents
from gaas.incidents.models import HoldReason, Impact, IncidentStatus, Priority, ProblemStatus, Urgency
from gaas.incidents.schemas import IncidentCreate, IncidentUpdate, ProblemCreate, ProblemUpdate
from gaas.ui import forms, lists
from gaas.ui.lists import Column, Filter, ListSpec, badge
from gaas.ui.pages import register
from gaas.ui.pages.core import history, sla_state, stale_conflict
from gaas.ui.pages.portfolio import domain_options, enum_options, people
from gaas.ui.web import UI, CheckedForm, CurrentUI, UIRoute, redirect, render, zone

router = APIRouter(route_class=UIRoute, include_in_schema=False)


def _sla_cell(row, extras):
    css, text = sla_state(row.sla_due, row.sla_breached, extras["now"])
    from markupsafe import Markup

    return Markup('<span class="sla {}">{}</span>').format(css, text) if row.status in (
        IncidentStatus.new, IncidentStatus.in_progress) else ""


def _labels(db, ui: UI, rows) -> dict[str, Any]:
    return {"people": people(db, [r.assigned_to for r in rows]), "now": datetime.now(UTC),
            "services": catalog.service_labels(db, sorted({r.service_id for r in rows if r.service_id}))}


# ---- incidents ----------------------------------------------------------------------------------

def _fetch_incidents(db, ui: UI, f: dict[str, str], q, sort, cursor, limit):
    assigned = f.get("assigned")
    return incidents.list_incidents(
        db, ui.actor, domain=f.get("domain"), status=[IncidentStatus(f["status"])] if "status" in f else None,
        open_only=f.get("open") == "open", priority=Priority(f["priority"]) if "priority" in f else None,
        assigned_to=ui.actor.user_id if assigned == "me" else None,
        sla_breached={"yes": True, "no": False}.get(f.get("breached", "")), q=q, sort=sort, cursor=cursor,
        limit=limit)


INCIDENTS = register(ListSpec(
    name="incidents", title="Incidents", search="Search short descriptions",
    columns=[Column("number", "Number", "number"), Column("short_description", "Short description"),
             Column("priority", "Priority", "priority", cell=lambda r, x: badge(r.priority)),
             Column("status", "Status", cell=lambda r, x: badge(r.status)), Column("domain", "Domain"),
             Column("assigned", "Assigned to", cell=lambda r, x: x["people"].get(r.assigned_to, "")),
             Column("service", "Service", cell=lambda r, x: x["services"].get(r.service_id, ("", ""))[1]),
             Column("sla", "SLA", cell=_sla_cell, csv=lambda r, x: r.sla_due.isoformat() if r.sla_due else ""),
             Column("created_at", "Opened", "created_at", cell=lambda r, x: r.created_at.date())],
    filters=[Filter("domain", "Domain", domain_options), Filter("status", "Status", enum_options(IncidentStatus)),
             Filter("open", "Open only", [("open", "Open")]), Filter("priority", "Priority", enum_options(Priority)),
             Filter("assigned", "Assigned", [("me", "To me")]),
             Filter("breached", "SLA breached", [("yes", "Yes"), ("no", "No")])],
    fetch=_fetch_incidents, link=lambda r: f"/incidents/{r.id}", extras=_labels,
    new=("/incidents/new", "incident.create"), default_sort="-created_at"))


@router.get("/incidents", response_class=HTMLResponse)
def incident_list(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.page(request, db, ui, INCIDENTS)


@router.get("/incidents/export.csv")
def incident_csv(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.export(request, db, ui, INCIDENTS)


@router.get("/incidents/priority", response_class=HTMLResponse)
def live_priority(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    """The priority the domain's matrix gives impact and urgency, shown while the form is filled in."""
    params = request.query_params
    priority = _matrix_priority(db, ui, params.get("domain"), params.get("impact"), params.get("urgency"))
    return render(request, "fragments/priority.html", {"priority": priority})


@router.get("/incidents/suggestions", response_class=HTMLResponse)
def suggestions(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    """Knowledge articles that may answer what is being typed (once the knowledge module exists)."""
    text = (request.query_params.get("short_description") or "").strip()
    articles = knowledge_suggestions(db, ui, text, request.query_params.get("domain") or None)
    return render(request, "fragments/suggestions.html", {"articles": articles, "text": text})


def knowledge_suggestions(db, ui: UI, text: str, domain: str | None, *, service_id=None,
                          ci_id=None) -> list[Any] | None:
    """Published articles relevant to the text (the knowledge module's suggestion ranking), or None
    when the reader may not read knowledge at all."""
    from gaas.knowledge import search as knowledge_search

    if not ui.can("knowledge.view"):
        return None
    if len(text) < 3:
        return []
    with db.begin_nested():
        return knowledge_search.suggest(db, ui.actor, text, domain=domain, service_id=service_id, ci_id=ci_id,
                                        limit=5)


INCIDENT_TEXT = ("short_description", "description", "impact", "urgency", "category", "subcategory",
                 "assigned_to", "assigned_group", "service_id", "ci_id", "problem_id")


def _matrix_priority(db, ui: UI, domain: str | None, impact: str | None, urgency: str | None) -> Priority | None:
    try:
        with db.begin_nested():
            return policies.get_matrix(db, ui.actor, domain or None).matrix.lookup(Impact(impact or ""),
                                                                                  Urgency(urgency or ""))
    except (ValueError, Problem):
        return None


def _incident_form_context(db, ui: UI) -> dict[str, Any]:
    return {"impacts": enum_options(Impact), "urgencies": enum_options(Urgency),
            "priorities": enum_options(Priority), "domains": domain_options(db, ui),
            "holds": enum_options(HoldReason)}


@router.get("/incidents/new", response_class=HTMLResponse)
def new_incident(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    values = {"domain": ui.actor.home_domain or "", "impact": "medium", "urgency": "medium"}
    return render(request, "incident_new.html", {"title": ui.t("Report an incident"), "values": values,
                                                 "errors": None, **_incident_form_context(db, ui),
                                                 "priority": _matrix_priority(db, ui, values["domain"], "medium",
                                                                              "medium")})


@router.post("/incidents/new", response_class=HTMLResponse)
def create_incident(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    values = forms.values(form, "domain", *INCIDENT_TEXT)
    created, errors = forms.attempt(db, lambda: incidents.create_incident(db, ui.actor, IncidentCreate.model_validate(
        {k: v for k, v in values.items() if v is not None})))
    if errors:
        return render(request, "incident_new.html", {"title": ui.t("Report an incident"), "values": values,
                                                     "errors": errors, **_incident_form_context(db, ui),
                                                     "priority": _matrix_priority(db, ui, values["domain"],
                                                                                  values["impact"],
                                                                                  values["urgency"])},
                      status=errors.status)
    return redirect(f"/incidents/{created.id}", request, flash="Incident reported.")


def _incident_page(request, db, ui: UI, incident, *, values=None, errors=None, conflict=None, status=200):
    out = incidents.incidents_out(db, [incident])[0]
    can_edit = ui.can("incident.edit", incident.domain)
    moves = sorted(m.value for m in incidents.TRANSITIONS[incident.status]
                   if (incident.status, m) not in incidents.RESOLVER_MOVES
                   or ui.can("incident.resolve", incident.domain)) if can_edit else []
    if values is None:
        values = {k: getattr(incident, k) for k in INCIDENT_TEXT}
        values["resolution_notes"] = incident.resolution_notes
    related: dict[str, Any] = {}
    if incident.problem_id and ui.can("problem.view", incident.domain):
        related["problem"] = db.get(problems.Problem, incident.problem_id)
    related["articles"] = knowledge_suggestions(db, ui, incident.short_description, incident.domain,
                                                service_id=incident.service_id, ci_id=incident.ci_id)
    if ui.can("knowledge.view"):
        from gaas.knowledge import service as knowledge

        related["solved_by"] = knowledge.articles_for_incident(db, ui.actor, incident.id)
    related["changes"] = []
    labels = catalog.service_labels(db, [incident.service_id]) if incident.service_id else {}
    ci = cmdb.ci_exists(db, ui.actor, incident.ci_id) if incident.ci_id else None
    css, left = sla_state(incident.sla_due, incident.sla_breached, datetime.now(UTC))
    return render(request, "incident.html", {
        "title": f"{incident.number} · {incident.short_description}", "i": incident, "out": out, "values": values,
        "errors": errors, "conflict": conflict, "can_edit": can_edit, "moves": moves, "related": related,
        "service_label": labels.get(incident.service_id), "ci": ci, "sla_css": css, "sla_left": left,
        "names": people(db, [incident.assigned_to, incident.created_by, incident.resolved_by]),
        "activity": history(db, "incident", incident.id), **_incident_form_context(db, ui)}, status=status)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(incident_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _incident_page(request, db, ui, incidents.get_incident(db, ui.actor, incident_id))


@router.post("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_save(incident_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                  form: CheckedForm) -> Response:
    incident = incidents.get_incident(db, ui.actor, incident_id)
    if "status" in form or "assign_me" in form:
        values: dict[str, Any] = {}
        if "status" in form:
            values["status"] = forms.text(form, "status")
            for key in ("resolution_notes", "hold_reason"):
                if key in form:
                    values[key] = forms.text(form, key)
        if "assign_me" in form:
            values["assigned_to"] = str(ui.actor.user_id)
        shown = None
    else:
        values = forms.values(form, *INCIDENT_TEXT, "resolution_notes")
        values.pop("problem_id", None) if "problem_id" not in form else None
        override = forms.text(form, "priority")
        if override:
            values["priority"] = override
        elif incident.priority_overridden:
            values["priority"] = None
        shown = values
    body = {**values, "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: incidents.update_incident(db, ui.actor, incident_id,
                                                                    IncidentUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "incident", incident_id, incident, shown or values) if errors.stale else None
        return _incident_page(request, db, ui, incident, values=shown, errors=errors, conflict=conflict,
                              status=errors.status)
    return redirect(f"/incidents/{incident_id}", request, flash="Saved.")


@router.post("/incidents/{incident_id}/solved-by/{article_id}", response_class=HTMLResponse)
def solved_by(incident_id: uuid.UUID, article_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
              form: CheckedForm) -> Response:
    """Record that a knowledge article solved this incident (it ranks higher in later suggestions)."""
    from gaas.knowledge import service as knowledge

    incident = incidents.get_incident(db, ui.actor, incident_id)
    _, errors = forms.attempt(db, lambda: knowledge.link_incident(db, ui.actor, article_id, incident_id))
    if errors:
        return _incident_page(request, db, ui, incident, errors=errors, status=errors.status)
    return redirect(f"/incidents/{incident_id}", request, flash="Saved.")


# ---- problems -----------------------------------------------------------------------------------

def _fetch_problems(db, ui: UI, f: dict[str, str], q, sort, cursor, limit):
    return problems.list_problems(
        db, ui.actor, domain=f.get("domain"), status=ProblemStatus(f["status"]) if "status" in f else None,
        priority=Priority(f["priority"]) if "priority" in f else None, assigned_to=None, service_id=None,
        known_error={"yes": True, "no": False}.get(f.get("known_error", "")), q=q, include_deleted=False,
        sort=sort, cursor=cursor, limit=limit)


PROBLEMS = register(ListSpec(
    name="problems", title="Problems", search="Search short descriptions",
    columns=[Column("number", "Number", "number"), Column("short_description", "Short description"),
             Column("priority", "Priority", "priority", cell=lambda r, x: badge(r.priority)),
             Column("status", "Status", cell=lambda r, x: badge(r.status)), Column("domain", "Domain"),
             Column("known_error", "Known error", cell=lambda r, x: "yes" if (r.workaround or "").strip() else ""),
             Column("assigned", "Assigned to", cell=lambda r, x: x["people"].get(r.assigned_to, ""))],
    filters=[Filter("domain", "Domain", domain_options), Filter("status", "Status", enum_options(ProblemStatus)),
             Filter("priority", "Priority", enum_options(Priority)),
             Filter("known_error", "Known error", [("yes", "Yes"), ("no", "No")])],
    fetch=_fetch_problems, link=lambda r: f"/problems/{r.id}", extras=_labels,
    new=("/problems/new", "problem.manage")))


@router.get("/problems", response_class=HTMLResponse)
def problem_list(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.page(request, db, ui, PROBLEMS)


@router.get("/problems/export.csv")
def problem_csv(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.export(request, db, ui, PROBLEMS)


PROBLEM_TEXT = ("short_description", "description", "priority", "assigned_to", "assigned_group", "root_cause",
                "workaround", "service_id", "ci_id", "permanent_fix")


@router.get("/problems/new", response_class=HTMLResponse)
def new_problem(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return render(request, "problem_new.html", {"title": ui.t("New problem"), "errors": None,
                                                "values": {"domain": ui.actor.home_domain or "", "priority": "high"},
                                                "domains": domain_options(db, ui),
                                                "priorities": enum_options(Priority)})


@router.post("/problems/new", response_class=HTMLResponse)
def create_problem(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    values = forms.values(form, "domain", *PROBLEM_TEXT)
    created, errors = forms.attempt(db, lambda: problems.create_problem(db, ui.actor, ProblemCreate.model_validate(
        {k: v for k, v in values.items() if v is not None})))
    if errors:
        return render(request, "problem_new.html", {"title": ui.t("New problem"), "errors": errors, "values": values,
                                                    "domains": domain_options(db, ui),
                                                    "priorities": enum_options(Priority)}, status=errors.status)
    return redirect(f"/problems/{created.id}", request, flash="Problem recorded.")


def _problem_page(request, db, ui: UI, problem, *, values=None, errors=None, conflict=None, status=200,
                  link_errors=None):
    out = problems.problem_out(db, [problem])[0]
    can_edit = ui.can("problem.manage", problem.domain)
    moves = sorted(m.value for m in problems.TRANSITIONS[problem.status]) if can_edit else []
    linked, _ = problems.list_linked_incidents(db, ui.actor, problem.id, cursor=None, limit=50)
    if values is None:
        values = {k: getattr(problem, k) for k in PROBLEM_TEXT}
    return render(request, "problem.html", {
        "title": f"{problem.number} · {problem.short_description}", "p": problem, "out": out, "values": values,
        "errors": errors, "conflict": conflict, "can_edit": can_edit, "moves": moves, "linked": linked,
        "priorities": enum_options(Priority), "names": people(db, [problem.assigned_to]), "link_errors": link_errors,
        "activity": history(db, "problem", problem.id)}, status=status)


@router.get("/problems/{problem_id}", response_class=HTMLResponse)
def problem_page(problem_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _problem_page(request, db, ui, problems.get_problem(db, ui.actor, problem_id))


@router.post("/problems/{problem_id}", response_class=HTMLResponse)
def problem_save(problem_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                 form: CheckedForm) -> Response:
    problem = problems.get_problem(db, ui.actor, problem_id)
    if "status" in form:
        values: dict[str, Any] = {"status": forms.text(form, "status")}
        if forms.checkbox(form, "resolve_incidents"):
            values["resolve_incidents"] = True
        shown = None
    else:
        values = forms.values(form, *PROBLEM_TEXT)
        shown = values
    body = {**values, "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: problems.update_problem(db, ui.actor, problem_id,
                                                                  ProblemUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "problem", problem_id, problem, values) if errors.stale else None
        return _problem_page(request, db, ui, problem, values=shown, errors=errors, conflict=conflict,
                             status=errors.status)
    return redirect(f"/problems/{problem_id}", request, flash="Saved.")


@router.post("/problems/{problem_id}/incidents", response_class=HTMLResponse)
def problem_incidents(problem_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
                      form: CheckedForm) -> Response:
    problem = problems.get_problem(db, ui.actor, problem_id)
    unlink = forms.text(form, "unlink")
    if unlink:
        _, errors = forms.attempt(db, lambda: problems.unlink_incident(db, ui.actor, problem_id,
                                                                       forms.maybe_uuid(unlink)))
    else:
        incident_id = forms.maybe_uuid(forms.text(form, "incident_id"))
        if not isinstance(incident_id, uuid.UUID):
            errors = forms.FormErrors()
            errors.add("incident_id", "choose an incident")
        else:
            _, errors = forms.attempt(db, lambda: problems.link_incident(db, ui.actor, problem_id, incident_id))
    if errors:
        return _problem_page(request, db, ui, problem, link_errors=errors, status=errors.status)
    return redirect(f"/problems/{problem_id}", request, flash="Saved.")


# ---- changes ------------------------------------------------------------------------------------

def _fetch_changes(db, ui: UI, f: dict[str, str], q, sort, cursor, limit):
    return changes.list_changes(
        db, ui.actor, domain=f.get("domain"), status=[ChangeStatus(f["status"])] if "status" in f else None,
        type_=ChangeType(f["type"]) if "type" in f else None, risk=ChangeRisk(f["risk"]) if "risk" in f else None,
        q=q, sort=sort, cursor=cursor, limit=limit)


CHANGES = register(ListSpec(
    name="changes", title="Changes", search="Search short descriptions",
    columns=[Column("number", "Number", "number"), Column("short_description", "Short description"),
             Column("type", "Type", cell=lambda r, x: badge(r.type)),
             Column("status", "Status", cell=lambda r, x: badge(r.status)),
             Column("risk", "Risk", cell=lambda r, x: badge(r.risk)), Column("domain", "Domain"),
             Column("planned_start", "Planned start", cell=lambda r, x: x["dt"](r.planned_start)),
             Column("conflicts", "Conflicts", cell=lambda r, x: badge("conflict") if r.conflicts else "")],
    filters=[Filter("domain", "Domain", domain_options), Filter("status", "Status", enum_options(ChangeStatus)),
             Filter("type", "Type", enum_options(ChangeType)), Filter("risk", "Risk", enum_options(ChangeRisk))],
    fetch=_fetch_changes, link=lambda r: f"/changes/{r.id}",
    extras=lambda db, ui, rows: {"dt": lambda v: v.astimezone(ui.tz).strftime("%Y-%m-%d %H:%M") if v else ""},
    new=("/changes/new", "change.create"), default_sort="-created_at"))


@router.get("/changes", response_class=HTMLResponse)
def change_list(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.page(request, db, ui, CHANGES)


@router.get("/changes/export.csv")
def change_csv(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.export(request, db, ui, CHANGES)


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return approvals_page(request, db, ui)


def approvals_page(request: Request, db, ui: UI, *, errors=None, status: int = 200) -> Response:
    """Changes waiting for a decision I may take, and my workflow approvals and tasks."""
    from gaas.ui.pages.workflow import my_workflow_work

    waiting, _ = changes.list_changes(db, ui.actor, status=[ChangeStatus.submitted, ChangeStatus.under_review],
                                      sort="created_at", limit=100) if ui.can("change.view") else ([], None)
    mine = [c for c in waiting if ui.can("change.approve", c.domain)]
    return render(request, "approvals.html", {"title": ui.t("Approvals"), "rows": mine, "errors": errors,
                                              **my_workflow_work(db, ui)}, status=status)


# ---- change forms and record ------------------------------------------------------------------------

CHANGE_TEXT = ("short_description", "description", "type", "risk", "assigned_to", "service_id",
               "implementation_plan", "rollback_plan", "test_plan", "template_id")


def _local_to_utc(value: str | None, ui: UI) -> str | None:
    """<input type=datetime-local> gives the user's local wall time: read it in their time zone."""
    if not value:
        return None
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        return value  # the body model names it as invalid
    if local.tzinfo is None:
        local = local.replace(tzinfo=ui.tz)
    return local.astimezone(UTC).isoformat()


def _change_values(form: dict[str, Any], ui: UI, *, creating: bool) -> dict[str, Any]:
    values = forms.values(form, *CHANGE_TEXT, "planned_start", "planned_end", present_only=not creating)
    for key in ("planned_start", "planned_end"):
        if key in values:
            values[key] = _local_to_utc(values[key], ui)
    if "affected_cis" in form or creating:
        values["affected_cis"] = forms.many(form, "affected_cis")
    return values


def _change_form_context(db, ui: UI) -> dict[str, Any]:
    from gaas.changes import planning

    templates, _ = planning.list_templates(db, ui.actor, domain=None, active=True, include_deleted=False, sort="name",
                                           cursor=None, limit=200) if ui.can("change.view") else ([], None)
    return {"types": enum_options(ChangeType), "risks": enum_options(ChangeRisk), "domains": domain_options(db, ui),
            "templates": [(str(t.id), f"{t.name} ({t.domain})") for t in templates]}


@router.get("/changes/new", response_class=HTMLResponse)
def new_change(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    values = {"domain": ui.actor.home_domain or "", "type": "normal", "affected_cis": []}
    return render(request, "change_new.html", {"title": ui.t("Request a change"), "values": values, "errors": None,
                                               "ci_labels": {}, **_change_form_context(db, ui)})


@router.post("/changes/new", response_class=HTMLResponse)
def create_change(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    values = {**_change_values(form, ui, creating=True), "domain": forms.text(form, "domain")}
    created, errors = forms.attempt(db, lambda: changes.create_change(db, ui.actor, ChangeCreate.model_validate(
        {k: v for k, v in values.items() if v is not None})))
    if errors:
        values["planned_start"], values["planned_end"] = forms.text(form, "planned_start"), forms.text(form,
                                                                                                       "planned_end")
        return render(request, "change_new.html", {"title": ui.t("Request a change"), "values": values,
                                                   "errors": errors, "ci_labels": _ci_labels(db, ui, values),
                                                   **_change_form_context(db, ui)}, status=errors.status)
    return redirect(f"/changes/{created.id}", request, flash="Change requested.")


def _ci_labels(db, ui: UI, values: dict[str, Any]) -> dict[str, str]:
    given = values.get("affected_cis") or []
    parsed = {str(ci_id): forms.maybe_uuid(str(ci_id)) for ci_id in given}
    found = cmdb.cis_existing(db, ui.actor, [p for p in parsed.values() if isinstance(p, uuid.UUID)])
    labels = {}
    for text_id, ci_id in parsed.items():
        ci = found.get(ci_id) if isinstance(ci_id, uuid.UUID) else None
        labels[text_id] = f"{ci.number} · {ci.name}" if ci else text_id
    return labels


def _local_input(value: datetime | None, ui: UI) -> str:
    return value.astimezone(ui.tz).strftime("%Y-%m-%dT%H:%M") if value else ""


def _change_page(request, db, ui: UI, change, *, values=None, errors=None, conflict=None, status=200,
                 approval_errors=None):
    can_edit = changes.EDITABLE[change.status] and (ui.can("change.edit", change.domain)
                                                   or change.requested_by == ui.actor.user_id)
    type_moves = changes.TRANSITIONS[change.type][change.status]
    moves = []
    for move in sorted(m.value for m in type_moves):
        needed = "change.approve" if move in ("under_review", "approved", "rejected") or (
            move == "scheduled" and change.status == ChangeStatus.approved) else (
            "change.implement" if move in ("implementing", "implemented") else None)
        if needed is None or ui.can(needed, change.domain):
            moves.append(move)
    if values is None:
        values = {k: getattr(change, k) for k in CHANGE_TEXT}
        values["affected_cis"] = [str(c) for c in change.affected_cis or []]
        values["planned_start"] = _local_input(change.planned_start, ui)
        values["planned_end"] = _local_input(change.planned_end, ui)
    conflicts = changes.conflict_report(db, ui.actor, change.id).conflicts \
        if change.status not in (ChangeStatus.closed, ChangeStatus.cancelled, ChangeStatus.draft) else \
        [c for c in (change.conflicts or [])]
    caused = changes.caused_incidents(db, ui.actor, change.id) if change.success is False else []
    from gaas.ui.pages.workflow import record_workflows
    return render(request, "change.html", {
        "title": f"{change.number} · {change.short_description}", "c": change, "values": values, "errors": errors,
        "approval_errors": approval_errors, "conflict": conflict, "can_edit": bool(can_edit), "moves": moves,
        "conflicts": conflicts, "caused": caused, "ci_labels": _ci_labels(db, ui, values),
        "editable": sorted(changes.EDITABLE[change.status]),
        "service_label": catalog.service_labels(db, [change.service_id]).get(change.service_id)
        if change.service_id else None,
        "names": people(db, [change.requested_by, change.assigned_to, change.closed_by]),
        "workflows": record_workflows(db, ui, "change", change.id),
        "activity": history(db, "change", change.id), **_change_form_context(db, ui)}, status=status)


@router.get("/changes/calendar", response_class=HTMLResponse)
def change_calendar(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    view = "week" if request.query_params.get("view") == "week" else "month"
    today = datetime.now(ui.tz).date()
    try:
        anchor = date.fromisoformat(request.query_params.get("date") or today.isoformat())
    except ValueError:
        anchor = today
    domain = request.query_params.get("domain") or None
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        days = [first + timedelta(days=i) for i in range(7)]
        prev, nxt = first - timedelta(days=7), first + timedelta(days=7)
    else:
        first_of_month = anchor.replace(day=1)
        first = first_of_month - timedelta(days=first_of_month.weekday())
        last_day = anchor.replace(day=cal.monthrange(anchor.year, anchor.month)[1])
        end = last_day + timedelta(days=6 - last_day.weekday())
        days = [first + timedelta(days=i) for i in range((end - first).days + 1)]
        prev = (first_of_month - timedelta(days=1)).replace(day=1)
        nxt = last_day + timedelta(days=1)
    tz = zone(ui.user.timezone)
    start = datetime.combine(days[0], datetime.min.time(), tz)
    stop = datetime.combine(days[-1] + timedelta(days=1), datetime.min.time(), tz)
    data = changes.calendar(db, ui.actor, start, stop, domain=domain)
    cells = []
    for day in days:
        day_start = datetime.combine(day, datetime.min.time(), tz)
        day_end = day_start + timedelta(days=1)
        cells.append({
            "date": day, "in_month": view == "week" or day.month == anchor.month, "today": day == today,
            "changes": [c for c in data.changes if c.planned_start < day_end and c.planned_end > day_start],
            "windows": [w for w in data.windows if w.start < day_end and w.end > day_start]})
    return render(request, "calendar.html", {
        "title": ui.t("Change calendar"), "view": view, "cells": cells, "anchor": anchor, "prev": prev, "next": nxt,
        "data": data, "domain": domain, "domains": domain_options(db, ui),
        "weeks": [cells[i:i + 7] for i in range(0, len(cells), 7)]})


@router.get("/changes/{change_id}", response_class=HTMLResponse)
def change_page(change_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return _change_page(request, db, ui, changes.get_change(db, ui.actor, change_id))


@router.post("/changes/{change_id}", response_class=HTMLResponse)
def change_save(change_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    change = changes.get_change(db, ui.actor, change_id)
    shown = None
    if "status" in form:
        values: dict[str, Any] = {"status": forms.text(form, "status")}
        for key in ("approval_comment", "implementation_notes"):
            if forms.text(form, key):
                values[key] = forms.text(form, key)
        if "success" in form:
            values["success"] = forms.text(form, "success") == "yes"
    else:
        editable = changes.EDITABLE[change.status]
        values = {k: v for k, v in _change_values(form, ui, creating=False).items() if k in editable}
        shown = {**values, "planned_start": forms.text(form, "planned_start"),
                 "planned_end": forms.text(form, "planned_end")}
    body = {**values, "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: changes.update_change(db, ui.actor, change_id,
                                                                ChangeUpdate.model_validate(body), None))
    if errors:
        conflict = stale_conflict(db, ui, "change", change_id, change,
                                  {k: v for k, v in values.items() if k in ("short_description", "description",
                                                                            "risk", "assigned_to")}) \
            if errors.stale else None
        return _change_page(request, db, ui, change, values=shown, errors=None if "status" in form else errors,
                            approval_errors=errors if "status" in form else None, conflict=conflict,
                            status=errors.status)
    return redirect(f"/changes/{change_id}", request, flash="Saved.")
