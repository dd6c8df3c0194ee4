"""Administration: domains, users (and their roles and scopes), roles, SLA policies, the priority
matrix, change windows; and the audit log. Simple records share one form template driven by a
field list; every write goes through the owning module's service."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from gaas.changes import planning
from gaas.changes.models import ChangeRisk, Recurrence, WindowKind
from gaas.changes.schemas import TemplateCreate, TemplateUpdate, WindowCreate, WindowUpdate
from gaas.core.errors import NotFound
from gaas.core.http import DbSession
from gaas.iam import service as iam
from gaas.iam.models import UserStatus
from gaas.iam.permissions import PERMISSIONS
from gaas.iam.schemas import (
    DomainCreate,
    DomainUpdate,
    PasswordReset,
    RoleCreate,
    RoleUpdate,
    UserCreate,
    UserRoleCreate,
    UserUpdate,
)
from gaas.incidents import policies
from gaas.incidents.models import HoldReason, Priority
from gaas.incidents.schemas import PriorityMatrixPut, SlaPolicyCreate, SlaPolicyUpdate
from gaas.ui import forms, lists
from gaas.ui.lists import Column, Filter, ListSpec, badge
from gaas.ui.pages import register
from gaas.ui.pages.core import history, recent_audit, stale_conflict
from gaas.ui.pages.portfolio import domain_options, enum_options
from gaas.ui.web import UI, CheckedForm, CurrentUI, UIRoute, redirect, render

router = APIRouter(route_class=UIRoute, include_in_schema=False)


@dataclass
class F:
    """One form field: name, label, kind (text, textarea, select, checkbox, number, datetime, many)."""

    name: str
    label: str
    kind: str = "text"
    options: list[tuple[str, str]] | Callable[[Any, UI], list[tuple[str, str]]] | None = None
    required: bool = False
    hint: str = ""
    create_only: bool = False
    blank: str | None = None


@dataclass
class Kind:
    """An administered record type: how to read, list, create and update it."""

    slug: str
    title: str
    entity: str
    fields: list[F]
    get: Callable[[Any, UI, uuid.UUID], Any]
    create: Callable[[Any, UI, dict[str, Any]], Any]
    update: Callable[[Any, UI, uuid.UUID, dict[str, Any]], Any]
    permission: str
    columns: list[tuple[str, str]] = field(default_factory=list)
    rows: Callable[[Any, UI], list[Any]] | None = None
    heading: Callable[[Any], str] = lambda r: getattr(r, "name", str(r.id))
    delete: Callable[[Any, UI, uuid.UUID, int | None], Any] | None = None
    restore: Callable[[Any, UI, uuid.UUID], Any] | None = None


@router.get("/admin", response_class=HTMLResponse)
def admin_index(request: Request, ui: CurrentUI) -> Response:
    return render(request, "admin.html", {"title": ui.t("Administration"), "kinds": KINDS})


@router.get("/admin/users/export.csv")
def users_csv(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return lists.export(request, db, ui, USERS)


# ---- the generic record pages -------------------------------------------------------------------

def _field_value(record: Any, name: str) -> Any:
    value = getattr(record, name, None)
    return getattr(value, "value", value)


def _form_values(kind: Kind, form: dict[str, Any], *, creating: bool, ui: UI) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in kind.fields:
        if f.create_only and not creating:
            continue
        if f.kind == "checkbox":
            values[f.name] = forms.checkbox(form, f.name)
        elif f.kind == "many":
            values[f.name] = forms.many(form, f.name)
        elif f.kind == "datetime":
            from gaas.ui.pages.itsm import _local_to_utc

            values[f.name] = _local_to_utc(forms.text(form, f.name), ui)
        else:
            values[f.name] = forms.text(form, f.name)
    return values


def _record_page(request, db, ui: UI, kind: Kind, record, *, values=None, errors=None, conflict=None,
                 status=200, extra: dict[str, Any] | None = None) -> Response:
    creating = record is None
    if values is None:
        values = {f.name: _field_value(record, f.name) for f in kind.fields} if record is not None else {}
        for f in kind.fields:
            if f.kind == "datetime" and values.get(f.name) is not None:
                values[f.name] = values[f.name].astimezone(ui.tz).strftime("%Y-%m-%dT%H:%M")
            if f.kind == "many" and values.get(f.name) is not None:
                values[f.name] = [str(getattr(v, "value", v)) for v in values[f.name]]
    fields = [(f, f.options(db, ui) if callable(f.options) else f.options) for f in kind.fields
              if not (f.create_only and not creating)]
    return render(request, "admin_record.html", {
        "title": (ui.t("New") + " " + ui.t(kind.title).lower()) if creating else kind.heading(record), "kind": kind,
        "record": record, "values": values, "errors": errors, "conflict": conflict, "fields": fields,
        "action": f"/admin/{kind.slug}/" + ("new" if creating else str(record.id)),
        "activity": history(db, kind.entity, record.id) if record is not None else [], **(extra or {})},
        status=status)


def _kind(slug: str) -> Kind:
    kind = KINDS.get(slug)
    if kind is None:
        raise NotFound(f"No administration page '{slug}'.")
    return kind


# ---- domains, roles, SLA policies, change windows -------------------------------------------------

def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


KINDS: dict[str, Kind] = {}


def _kind_register(kind: Kind) -> Kind:
    KINDS[kind.slug] = kind
    return kind


_kind_register(Kind(
    slug="domains", title="Domains", entity="domain", permission="domain.manage",
    fields=[F("code", "Code", required=True, create_only=True, hint="Lower case, e.g. healthcare"),
            F("name", "Name", required=True), F("description", "Description", "textarea"),
            F("active", "Active", "checkbox")],
    get=lambda db, ui, id_: iam.get_domain(db, ui.actor, id_),
    create=lambda db, ui, v: iam.create_domain(db, ui.actor, DomainCreate.model_validate(_clean(v))),
    update=lambda db, ui, id_, v: iam.update_domain(db, ui.actor, id_, DomainUpdate.model_validate(v), None),
    columns=[("code", "Code"), ("name", "Name"), ("active", "Active")],
    delete=lambda db, ui, id_, v: iam.delete_domain(db, ui.actor, id_, v),
    restore=lambda db, ui, id_: iam.restore_domain(db, ui.actor, id_),
    rows=lambda db, ui: iam.list_domains(db, ui.actor, active=None, q=None, include_deleted=False, sort="code",
                                         cursor=None, limit=500)[0],
    heading=lambda r: f"{r.code} · {r.name}"))

_kind_register(Kind(
    slug="roles", title="Roles", entity="role", permission="role.manage",
    fields=[F("name", "Name", required=True, create_only=True, hint="Lower case, e.g. night_operator"),
            F("domain", "Domain", "select", domain_options, create_only=True, blank="(every domain)"),
            F("description", "Description", "textarea"),
            F("permissions", "Permissions", "many", [(p, f"{p} — {d}") for p, d in PERMISSIONS.items()])],
    get=lambda db, ui, id_: iam.get_role(db, ui.actor, id_),
    create=lambda db, ui, v: iam.create_role(db, ui.actor, RoleCreate.model_validate(_clean(v))),
    update=lambda db, ui, id_, v: iam.update_role(db, ui.actor, id_, RoleUpdate.model_validate(v), None),
    columns=[("name", "Name"), ("domain", "Domain"), ("is_system", "Default"), ("description", "Description")],
    delete=lambda db, ui, id_, v: iam.delete_role(db, ui.actor, id_, v),
    restore=lambda db, ui, id_: iam.restore_role(db, ui.actor, id_),
    rows=lambda db, ui: iam.list_roles(db, ui.actor, domain=None, name=None, permission=None, include_deleted=False,
                                       sort="name", cursor=None, limit=500)[0]))

_kind_register(Kind(
    slug="sla", title="SLA policies", entity="sla_policy", permission="sla.manage",
    fields=[F("domain", "Domain", "select", domain_options, create_only=True, blank="(platform default)"),
            F("name", "Name", required=True),
            F("priority", "Priority", "select", enum_options(Priority), required=True, create_only=True),
            F("resolution_minutes", "Resolution target (minutes)", "number", required=True),
            F("business_timezone", "Business hours time zone", hint="Empty: around the clock"),
            F("business_start", "Opens at", "time"), F("business_end", "Closes at", "time"),
            F("business_days", "Business days", "many", [(str(i), d) for i, d in enumerate(
                ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"], start=1)]),
            F("pause_on", "Pause the clock on hold for", "many", enum_options(HoldReason))],
    get=lambda db, ui, id_: policies.get_policy(db, ui.actor, id_),
    create=lambda db, ui, v: policies.create_policy(db, ui.actor, SlaPolicyCreate.model_validate(_clean(v))),
    update=lambda db, ui, id_, v: policies.update_policy(db, ui.actor, id_, SlaPolicyUpdate.model_validate(v), None),
    columns=[("name", "Name"), ("domain", "Domain"), ("priority", "Priority"),
             ("resolution_minutes", "Minutes")],
    delete=lambda db, ui, id_, v: policies.delete_policy(db, ui.actor, id_, v),
    restore=lambda db, ui, id_: policies.restore_policy(db, ui.actor, id_),
    rows=lambda db, ui: policies.list_policies(db, ui.actor, domain=None, priority=None, include_deleted=False,
                                               sort="priority", cursor=None, limit=500)[0]))

_kind_register(Kind(
    slug="windows", title="Change windows", entity="change_window", permission="change.approve",
    fields=[F("domain", "Domain", "select", domain_options, required=True, create_only=True),
            F("name", "Name", required=True), F("kind", "Kind", "select", enum_options(WindowKind), required=True),
            F("start_at", "Starts", "datetime", required=True), F("end_at", "Ends", "datetime", required=True),
            F("recurrence", "Repeats", "select", enum_options(Recurrence)),
            F("recurrence_until", "Repeats until", "date"),
            F("timezone", "Time zone of the repetition", hint="e.g. Europe/Paris"),
            F("description", "Description", "textarea")],
    get=lambda db, ui, id_: planning.get_window(db, ui.actor, id_),
    create=lambda db, ui, v: planning.create_window(db, ui.actor, WindowCreate.model_validate(_clean(v))),
    update=lambda db, ui, id_, v: planning.update_window(db, ui.actor, id_, WindowUpdate.model_validate(_clean(v)),
                                                         None),
    columns=[("name", "Name"), ("domain", "Domain"), ("kind", "Kind"), ("recurrence", "Repeats"),
             ("start_at", "Starts")],
    delete=lambda db, ui, id_, v: planning.delete_window(db, ui.actor, id_, v),
    restore=lambda db, ui, id_: planning.restore_window(db, ui.actor, id_),
    rows=lambda db, ui: planning.list_windows(db, ui.actor, domain=None, kind=None, service_id=None,
                                              include_deleted=False, sort="start_at", cursor=None, limit=500)[0]))


_kind_register(Kind(
    slug="templates", title="Standard-change templates", entity="change_template", permission="change.approve",
    fields=[F("domain", "Domain", "select", domain_options, required=True, create_only=True),
            F("name", "Name", required=True), F("short_description", "Short description", required=True),
            F("risk", "Risk", "select", enum_options(ChangeRisk)), F("active", "Active", "checkbox"),
            F("implementation_plan", "Implementation plan", "textarea", required=True),
            F("rollback_plan", "Rollback plan", "textarea", required=True),
            F("test_plan", "Test plan", "textarea", required=True), F("description", "Description", "textarea")],
    get=lambda db, ui, id_: planning.get_template(db, ui.actor, id_),
    create=lambda db, ui, v: planning.create_template(db, ui.actor, TemplateCreate.model_validate(_clean(v))),
    update=lambda db, ui, id_, v: planning.update_template(db, ui.actor, id_, TemplateUpdate.model_validate(
        {k: val for k, val in v.items() if val is not None or k == "description"}), None),
    columns=[("name", "Name"), ("domain", "Domain"), ("risk", "Risk"), ("active", "Active")],
    rows=lambda db, ui: planning.list_templates(db, ui.actor, domain=None, active=None, include_deleted=False,
                                                sort="name", cursor=None, limit=500)[0],
    delete=lambda db, ui, id_, v: planning.delete_template(db, ui.actor, id_, v),
    restore=lambda db, ui, id_: planning.restore_template(db, ui.actor, id_)))


def _policy_values(values: dict[str, Any]) -> dict[str, Any]:
    if "business_days" in values:
        values["business_days"] = [int(d) for d in values["business_days"] if str(d).isdigit()] or None
    return values


@router.get("/admin/{slug}", response_class=HTMLResponse)
def kind_list(slug: str, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    if slug == "users":
        return lists.page(request, db, ui, USERS)
    if slug == "matrix":
        return matrix_page(request, db, ui)
    kind = _kind(slug)
    return render(request, "admin_list.html", {"title": ui.t(kind.title), "kind": kind,
                                               "rows": kind.rows(db, ui) if kind.rows else []})


@router.get("/admin/{slug}/new", response_class=HTMLResponse)
def kind_new(slug: str, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    if slug == "users":
        return _user_new(request, db, ui, {"domain": ui.actor.home_domain or "", "language": "en",
                                           "timezone": ui.user.timezone or "UTC", "status": "active"}, None)
    kind = _kind(slug)
    return _record_page(request, db, ui, kind, None, values={"active": True, "recurrence": "none",
                                                             "timezone": ui.user.timezone or "UTC"})


@router.post("/admin/{slug}/new", response_class=HTMLResponse)
def kind_create(slug: str, request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    if slug == "users":
        return user_create(request, db, ui, form)
    kind = _kind(slug)
    values = _form_values(kind, form, creating=True, ui=ui)
    if slug == "sla":
        values = _policy_values(values)
    created, errors = forms.attempt(db, lambda: kind.create(db, ui, values))
    if errors:
        return _record_page(request, db, ui, kind, None, values=values, errors=errors, status=errors.status)
    return redirect(f"/admin/{slug}/{created.id}", request, flash="Created.")


@router.get("/admin/{slug}/{record_id}", response_class=HTMLResponse)
def kind_record(slug: str, record_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    if slug == "users":
        return _user_page(request, db, ui, iam.get_user(db, ui.actor, record_id))
    kind = _kind(slug)
    return _record_page(request, db, ui, kind, kind.get(db, ui, record_id))


@router.post("/admin/{slug}/{record_id}", response_class=HTMLResponse)
def kind_save(slug: str, record_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
              form: CheckedForm) -> Response:
    if slug == "users":
        return user_save(record_id, request, db, ui, form)
    kind = _kind(slug)
    record = kind.get(db, ui, record_id)
    values = _form_values(kind, form, creating=False, ui=ui)
    if slug == "sla":
        values = _policy_values(values)
    if slug == "roles" and record.is_system:
        values.pop("permissions", None)
    body = {**values, "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: kind.update(db, ui, record_id, body))
    if errors:
        scalars = {k: v for k, v in values.items() if not isinstance(v, list)}
        conflict = stale_conflict(db, ui, kind.entity, record_id, record, scalars) if errors.stale else None
        return _record_page(request, db, ui, kind, record, values=values, errors=errors, conflict=conflict,
                            status=errors.status)
    return redirect(f"/admin/{slug}/{record_id}", request, flash="Saved.")


@router.post("/admin/{slug}/{record_id}/{action}", response_class=HTMLResponse)
def kind_delete_restore(slug: str, record_id: uuid.UUID, action: str, request: Request, db: DbSession,
                        ui: CurrentUI, form: CheckedForm) -> Response:
    """Soft delete (with the version read) or restore an administered record, users included."""
    if action not in ("delete", "restore"):
        raise NotFound("There is no page at this address.")
    if slug == "users":
        if action == "delete":
            iam.delete_user(db, ui.actor, record_id, forms.version(form))
        else:
            iam.restore_user(db, ui.actor, record_id)
    else:
        kind = _kind(slug)
        if kind.delete is None or kind.restore is None:
            raise NotFound("There is no page at this address.")
        if action == "delete":
            kind.delete(db, ui, record_id, forms.version(form))
        else:
            kind.restore(db, ui, record_id)
    return redirect(f"/admin/{slug}/{record_id}", request, flash="Deleted." if action == "delete" else "Restored.")


# ---- users --------------------------------------------------------------------------------------

def _fetch_users(db, ui: UI, f: dict[str, str], q, sort, cursor, limit):
    return iam.list_users(db, ui.actor, domain=f.get("domain"), status=UserStatus(f["status"]) if "status" in f
                          else None, q=q, email=None, include_deleted=False, sort=sort, cursor=cursor, limit=limit)


USERS = register(ListSpec(
    name="users", title="Users", url="/admin/users", search="Search name, e-mail or user name",
    columns=[Column("name", "Name", "name"), Column("email", "E-mail", "email"), Column("username", "User name"),
             Column("domain", "Domain", cell=lambda r, x: r.domain or "global"),
             Column("status", "Status", cell=lambda r, x: badge(r.status)),
             Column("last_login_at", "Last login", cell=lambda r, x: x["dt"](r.last_login_at))],
    filters=[Filter("domain", "Domain", domain_options), Filter("status", "Status", enum_options(UserStatus))],
    fetch=_fetch_users, link=lambda r: f"/admin/users/{r.id}",
    extras=lambda db, ui, rows: {"dt": lambda v: v.astimezone(ui.tz).strftime("%Y-%m-%d %H:%M") if v else ""},
    new=("/admin/users/new", "user.create")))


USER_FIELDS = ("email", "username", "name", "status", "phone", "language", "timezone")


def _user_new(request, db, ui: UI, values, errors, status=200) -> Response:
    return render(request, "user_new.html", {"title": ui.t("New user"), "values": values, "errors": errors,
                                             "domains": domain_options(db, ui),
                                             "statuses": enum_options(UserStatus)}, status=status)


def user_create(request, db, ui: UI, form) -> Response:
    values = {**forms.values(form, *USER_FIELDS, "domain"), "password": form.get("password") or None}
    created, errors = forms.attempt(db, lambda: iam.create_user(db, ui.actor, UserCreate.model_validate(
        _clean(values))))
    if errors:
        values.pop("password")
        return _user_new(request, db, ui, values, errors, errors.status)
    return redirect(f"/admin/users/{created.id}", request, flash="User created.")


def _user_page(request, db, ui: UI, user, *, values=None, errors=None, conflict=None, role_errors=None,
               status=200) -> Response:
    assignments = iam.list_user_roles(db, ui.actor, user.id)
    roles, _ = iam.list_roles(db, ui.actor, domain=None, name=None, permission=None, include_deleted=False,
                              sort="name", cursor=None, limit=500) if ui.can("role.view") else ([], None)
    domains, _ = iam.list_domains(db, ui.actor, active=None, q=None, include_deleted=False, sort="code", cursor=None,
                                  limit=500)
    domain_ids = {str(d.id): d.code for d in domains}
    if values is None:
        values = {k: _field_value(user, k) for k in USER_FIELDS}
    return render(request, "user.html", {
        "title": user.name, "u": user, "values": values, "errors": errors, "conflict": conflict,
        "role_errors": role_errors, "assignments": assignments, "roles": roles,
        "domain_choices": [(i, c) for i, c in domain_ids.items()], "statuses": enum_options(UserStatus),
        "can_edit": ui.can("user.edit", user.domain) if user.domain else ui.can("user.edit"),
        "activity": history(db, "user", user.id)}, status=status)


def user_save(user_id: uuid.UUID, request, db, ui: UI, form) -> Response:
    user = iam.get_user(db, ui.actor, user_id)
    action = forms.text(form, "action") or "save"
    role_errors = None
    if action == "assign":
        scope = forms.text(form, "scope_type") or "domain"
        scope_id = {"global": None, "service": forms.text(form, "scope_service")}.get(
            scope, forms.text(form, "scope_id"))
        body = {"role_id": forms.text(form, "role_id"), "scope_type": scope, "scope_id": scope_id}
        _, role_errors = forms.attempt(db, lambda: iam.assign_role(db, ui.actor, user_id,
                                                                   UserRoleCreate.model_validate(body)))
    elif action == "unassign":
        _, role_errors = forms.attempt(db, lambda: iam.unassign_role(
            db, ui.actor, user_id, forms.maybe_uuid(forms.text(form, "assignment_id"))))
    elif action == "unlock":
        _, role_errors = forms.attempt(db, lambda: iam.unlock_user(db, ui.actor, user_id))
    elif action == "password":
        _, role_errors = forms.attempt(db, lambda: iam.reset_password(
            db, ui.actor, user_id, PasswordReset.model_validate({"new_password": form.get("new_password") or ""})
            .new_password))
    else:
        values = forms.values(form, *USER_FIELDS)
        body = {**_clean({k: v for k, v in values.items() if k not in ("username", "phone")}),
                "username": values["username"], "phone": values["phone"], "version": forms.version(form)}
        _, errors = forms.attempt(db, lambda: iam.update_user(db, ui.actor, user_id, UserUpdate.model_validate(body),
                                                              None))
        if errors:
            conflict = stale_conflict(db, ui, "user", user_id, user, values) if errors.stale else None
            return _user_page(request, db, ui, user, values=values, errors=errors, conflict=conflict,
                              status=errors.status)
    if role_errors:
        return _user_page(request, db, ui, user, role_errors=role_errors, status=role_errors.status)
    return redirect(f"/admin/users/{user_id}", request, flash="Saved.")


# ---- the priority matrix ------------------------------------------------------------------------

def matrix_page(request, db, ui: UI, *, errors=None, values=None, status=200) -> Response:
    domain = request.query_params.get("domain") or None
    out = policies.get_matrix(db, ui.actor, domain)
    return render(request, "matrix.html", {"title": ui.t("Priority matrix"), "out": out, "domain": domain,
                                           "domains": domain_options(db, ui), "errors": errors,
                                           "values": values or out.matrix.model_dump(mode="json"),
                                           "priorities": enum_options(Priority), "levels": ["high", "medium", "low"],
                                           "can_edit": ui.can("sla.manage", domain) if domain else
                                           ui.actor.can("sla.manage", None)}, status=status)


@router.post("/admin/matrix", response_class=HTMLResponse)
def matrix_save(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    domain = forms.text(form, "domain")
    matrix = {impact: {urgency: forms.text(form, f"m_{impact}_{urgency}") for urgency in ("high", "medium", "low")}
              for impact in ("high", "medium", "low")}
    body = {"matrix": matrix, "version": forms.version(form)}
    _, errors = forms.attempt(db, lambda: policies.put_matrix(db, ui.actor, domain,
                                                              PriorityMatrixPut.model_validate(body), None))
    if errors:
        request.scope["query_string"] = f"domain={domain or ''}".encode()
        return matrix_page(request, db, ui, errors=errors, values=matrix, status=errors.status)
    return redirect(f"/admin/matrix?domain={domain or ''}", request, flash="Matrix saved.")


# ---- the audit log ------------------------------------------------------------------------------

@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    params = request.query_params
    filters = {k: params.get(k) or None for k in ("entity_type", "action", "domain")}
    cursor = params.get("cursor") or None
    error = None
    rows, next_cursor = [], None
    try:
        with db.begin_nested():
            rows, next_cursor = recent_audit(db, ui, limit=50, filters={k: v for k, v in filters.items() if v},
                                             cursor=cursor)
    except ValueError as exc:
        error = str(exc)
    return render(request, "audit.html", {"title": ui.t("Audit log"), "rows": rows, "next_cursor": next_cursor,
                                          "filters": filters, "cursor": cursor, "error": error,
                                          "domains": domain_options(db, ui)})
