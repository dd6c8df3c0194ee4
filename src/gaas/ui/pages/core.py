"""Login, logout, profile, the home page by role, pickers and saved filters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from gaas.core.http import DbSession
from gaas.iam import service as iam
from gaas.iam.schemas import MeUpdate, PasswordChange
from gaas.ui import forms, lists
from gaas.ui.i18n import LANGUAGE_NAMES, available_languages
from gaas.ui.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    UI,
    CheckedForm,
    CurrentUI,
    UIRoute,
    _same_origin,
    form_data,
    new_login_csrf,
    redirect,
    render,
    secure_cookies,
    set_session_cookie,
    ui_request_info,
)

router = APIRouter(route_class=UIRoute, include_in_schema=False)


# ---- login and logout -------------------------------------------------------------------------

def _safe_next(value: str | None) -> str:
    """Only a path of this site: no scheme, no host, no backslash or control character a browser
    might read as '//elsewhere'."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value \
            or any(ord(c) < 0x21 or c == "\x7f" for c in value):
        return "/"
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    return "/" if parts.scheme or parts.netloc else value


def _login_page(request: Request, *, message: str = "", username: str = "", status: int = 200) -> Response:
    token = new_login_csrf()
    response = render(request, "login.html", {"csrf": token, "message": message, "username": username,
                                              "next": _safe_next(request.query_params.get("next")
                                                                 or getattr(request.state, "next", None))},
                      status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="strict",
                        secure=secure_cookies(request))
    return response


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _login_page(request)


async def login_form(request: Request) -> dict[str, Any]:
    return await form_data(request)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, db: DbSession, data: Annotated[dict[str, Any], Depends(login_form)]) -> Response:
    from gaas.ui.i18n import Translator

    t = Translator(request.headers.get("accept-language", "en").split(",")[0].strip() or None)
    request.state.next = data.get("next")
    username = str(data.get("username") or "")[:255]
    password = str(data.get("password") or "")[:1024]
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not cookie or data.get("csrf") != cookie or not _same_origin(request):
        return _login_page(request, message=t("The login form had expired. Please try again."), username=username,
                           status=403)
    if not username or not password:
        return _login_page(request, message=t("Enter your user name and password."), username=username, status=422)
    result = iam.authenticate(db, username, password, ui_request_info(request))
    db.commit()  # failures too: the failed-attempt count, the lock and the audit row must stay
    if not result.ok:
        message = t("Too many failed logins: the account is locked for a while.") if result.locked_until \
            else t("Wrong user name or password.")
        return _login_page(request, message=message, username=username, status=401)
    response = redirect(_safe_next(data.get("next")))
    set_session_cookie(request, response, result.token, result.expires_at)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    iam.revoke_current_session(db, ui.actor, ui.token)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ---- profile ------------------------------------------------------------------------------------

def _profile(request: Request, ui: UI, *, values: dict[str, Any] | None = None, errors=None,
             password_errors=None, conflict=None, status: int = 200) -> Response:
    from zoneinfo import available_timezones

    user = ui.user
    languages = sorted(set(available_languages()) | ({user.language} if user.language else set()))
    return render(request, "profile.html", {
        "title": ui.t("My profile"), "values": values or {"name": user.name, "phone": user.phone,
                                                          "language": user.language, "timezone": user.timezone},
        "errors": errors, "password_errors": password_errors, "conflict": conflict,
        "languages": [(code, LANGUAGE_NAMES.get(code, code)) for code in languages],
        "timezones": sorted(available_timezones() | {"UTC"}), "version": user.version,
    }, status=status)


@router.get("/profile", response_class=HTMLResponse)
def profile(request: Request, ui: CurrentUI) -> Response:
    return _profile(request, ui)


@router.post("/profile", response_class=HTMLResponse)
def profile_save(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    values = forms.values(form, "name", "phone", "language", "timezone")
    version = forms.version(form)

    def save():
        body = MeUpdate.model_validate({**values, "version": version})
        return iam.update_me(db, ui.actor, body.model_dump(exclude_unset=True, exclude={"version"}), body.version,
                             None)

    _, errors = forms.attempt(db, save)
    if errors:
        conflict = stale_conflict(db, ui, "user", ui.user.id, ui.user, values) if errors.stale else None
        return _profile(request, ui, values=values, errors=errors, conflict=conflict, status=errors.status)
    return redirect("/profile", request, flash="Profile saved.")


@router.post("/profile/password", response_class=HTMLResponse)
def password_save(request: Request, db: DbSession, ui: CurrentUI, form: CheckedForm) -> Response:
    def save():
        body = PasswordChange.model_validate({"current_password": form.get("current_password") or "",
                                              "new_password": form.get("new_password") or ""})
        iam.change_own_password(db, ui.actor, body.current_password, body.new_password)

    _, errors = forms.attempt(db, save)
    if errors:
        return _profile(request, ui, password_errors=errors, status=errors.status)
    # Changing the password ends every login session, this one too: log in again.
    response = redirect("/login?flash=Password+changed", request)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def stale_conflict(db, ui: UI, entity_type: str, entity_id: uuid.UUID, record: Any,
                   mine: dict[str, Any]) -> dict[str, Any]:
    """What the other person saved: their current values beside the ones in the form, and who
    changed the record last (from the audit trail)."""
    from gaas.audit import service as audit
    from gaas.audit.models import AuditLog

    db.refresh(record)
    rows = []
    for name, value in mine.items():
        theirs = getattr(record, name, None)
        theirs_text = "" if theirs is None else str(getattr(theirs, "value", theirs))
        mine_text = "" if value is None else str(value)
        if theirs_text != mine_text:
            rows.append((name, theirs_text, mine_text))
    last = db.scalars(audit.audit_query(entity_type=entity_type, entity_id=entity_id)
                      .order_by(AuditLog.timestamp.desc()).limit(1)).first()
    return {"rows": rows, "by": last.user_email if last else None, "at": last.timestamp if last else None,
            "version": record.version}


# ---- saved filters ------------------------------------------------------------------------------

@router.post("/filters/save")
def save_filter(request: Request, ui: CurrentUI, form: CheckedForm) -> Response:
    from gaas.ui.pages import LISTS

    name = (forms.text(form, "name") or "")[:60]
    list_name = forms.text(form, "list") or ""
    if list_name not in LISTS or not name:
        raise StarletteHTTPException(422, "Name the filter.")
    spec = LISTS[list_name]
    fields = ["q", "sort", *(f.name for f in spec.filters)]
    if any(forms.text(form, k) for k in fields):  # the filter form's current values (sent along by htmx)
        pairs = [(k, forms.text(form, k)) for k in fields if forms.text(form, k)]
    else:  # without script: the address the page was loaded with
        pairs = [(k, v) for k, v in parse_qsl(form.get("query") or "") if k not in ("cursor", "flash")][:20]
    query = urlencode(pairs)[:500]
    items = [i for i in lists.saved_filters(request, ui, list_name) if i["name"] != name]
    items.append({"name": name, "query": query})
    response = redirect(f"{LISTS[list_name].url}?{query}")
    lists.store_saved(request, response, ui, list_name, items)
    return response


@router.post("/filters/delete")
def delete_filter(request: Request, ui: CurrentUI, form: CheckedForm) -> Response:
    from gaas.ui.pages import LISTS

    list_name = forms.text(form, "list") or ""
    if list_name not in LISTS:
        raise StarletteHTTPException(404, "No such list.")
    items = [i for i in lists.saved_filters(request, ui, list_name) if i["name"] != forms.text(form, "name")]
    response = redirect(LISTS[list_name].url)
    lists.store_saved(request, response, ui, list_name, items)
    return response


# ---- pickers: search as you type ------------------------------------------------------------------

@router.get("/pick/{kind}", response_class=HTMLResponse)
def pick(kind: str, request: Request, db: DbSession, ui: CurrentUI) -> Response:
    """<option>s for a picker's select: the current value first, then what the search finds."""
    from gaas.catalog import service as catalog
    from gaas.cmdb import service as cmdb

    params = request.query_params
    field = params.get("field", kind)
    q = (params.get(f"_q_{field}") or "").strip()
    domain = (params.get("domain") or "").strip() or None
    options: list[tuple[str, str]] = []
    if q:
        with db.begin_nested():
            if kind == "services":
                rows, _ = catalog.list_services(db, ui.actor, domain=domain, q=q, limit=15)
                options = [(str(r.id), f"{r.number} · {r.name} ({r.domain})") for r in rows]
            elif kind == "cis":
                rows, _ = cmdb.list_cis(db, ui.actor, domain=None, ci_class=None, status=None, environment=None,
                                        service_id=None, q=q, attributes={}, include_deleted=False, sort=None,
                                        cursor=None, limit=15)
                options = [(str(r.id), f"{r.number} · {r.name} ({r.domain or ui.t('shared')})") for r in rows
                           if domain is None or r.domain in (None, domain)]
            elif kind == "users":
                rows, _ = iam.list_users(db, ui.actor, domain=None, status=None, q=q, email=None,
                                         include_deleted=False, sort=None, cursor=None, limit=15)
                options = [(str(r.id), f"{r.name} <{r.email}>") for r in rows
                           if domain is None or r.domain in (None, domain)]
            elif kind == "incidents":
                from gaas.incidents import service as incidents

                rows, _ = incidents.list_incidents(db, ui.actor, domain=domain, q=q, sort="-created_at", limit=15)
                options = [(str(r.id), f"{r.number} · {r.short_description}") for r in rows]
            elif kind == "problems":
                from gaas.incidents import problems

                rows, _ = problems.list_problems(db, ui.actor, domain=domain, status=None, priority=None,
                                                 assigned_to=None, service_id=None, known_error=None, q=q,
                                                 include_deleted=False, sort=None, cursor=None, limit=15)
                options = [(str(r.id), f"{r.number} · {r.short_description}") for r in rows
                           if r.status.value != "closed"]
            else:
                raise StarletteHTTPException(404, "No such picker.")
    current = params.get("current") or ""
    return render(request, "fragments/options.html", {"options": options, "current": current,
                                                      "found": len(options), "searched": bool(q)})


# ---- home ---------------------------------------------------------------------------------------

def sla_state(due: datetime | None, breached: bool | None, now: datetime) -> tuple[str, str]:
    """(css class, text): the colour deepens as the deadline nears."""
    if breached:
        return "sla-breached", "breached"
    if due is None:
        return "sla-none", "—"
    left = due - now
    minutes = int(left.total_seconds() // 60)
    if minutes < 0:
        return "sla-breached", f"overdue {_span(-minutes)}"
    css = "sla-ok" if left > timedelta(hours=4) else ("sla-warn" if left > timedelta(hours=1) else "sla-danger")
    return css, f"{_span(minutes)} left"


def _span(minutes: int) -> str:
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    return f"{days}d {hours}h" if days else (f"{hours}h {mins}m" if hours else f"{mins}m")


def _queue(db, ui: UI) -> dict[str, Any]:
    from gaas.incidents import service as incidents

    mine, _ = incidents.list_incidents(db, ui.actor, assigned_to=ui.actor.user_id, open_only=True,
                                       sort="priority", limit=25)
    # The agent's groups: the assignment groups of the incidents they work (there are no group
    # records); without any, the open unassigned incidents of their domains.
    recent, _ = incidents.list_incidents(db, ui.actor, assigned_to=ui.actor.user_id, sort="-updated_at", limit=50)
    groups = sorted({i.assigned_group for i in [*mine, *recent] if i.assigned_group})
    candidates = []
    for group in groups[:5]:
        rows, _ = incidents.list_incidents(db, ui.actor, assigned_group=group, open_only=True, sort="priority",
                                           limit=50)
        candidates += rows
    if not groups:
        candidates, _ = incidents.list_incidents(db, ui.actor, open_only=True, sort="priority", limit=100)
    unassigned = [i for i in candidates if i.assigned_to is None][:25]
    now = datetime.now(UTC)
    return {"mine": [(i, *sla_state(i.sla_due, i.sla_breached, now)) for i in mine], "groups": groups,
            "unassigned": [(i, *sla_state(i.sla_due, i.sla_breached, now)) for i in unassigned]}


@router.get("/home/queue", response_class=HTMLResponse)
def home_queue(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    return render(request, "fragments/queue.html", {"queue": _queue(db, ui)})


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: DbSession, ui: CurrentUI) -> Response:
    sections: dict[str, Any] = {}
    if ui.can("incident.edit"):
        sections["queue"] = _queue(db, ui)
    if ui.can("change.approve"):
        sections["changes"] = _change_manager(db, ui)
    if ui.can("service.edit") or ui.can("service.create"):
        sections["services"] = _owner(db, ui)
    if ui.can("cost.view"):
        from gaas.catalog import service as catalog

        sections["ppt"] = catalog.ppt_balance(db, ui.actor)
    if ui.can("audit.view"):
        sections["audit"] = recent_audit(db, ui, limit=15)
    return render(request, "home.html", {"title": ui.t("Home"), "sections": sections})


def _change_manager(db, ui: UI) -> dict[str, Any]:
    from gaas.changes import service as changes
    from gaas.changes.models import ChangeStatus

    waiting, _ = changes.list_changes(db, ui.actor, status=[ChangeStatus.submitted, ChangeStatus.under_review],
                                      sort="created_at", limit=20)
    local_now = datetime.now(ui.tz)
    week_start = (local_now - timedelta(days=local_now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    week = changes.calendar(db, ui.actor, week_start, week_start + timedelta(days=7))
    return {"waiting": waiting, "week": week, "week_start": week_start}


def _owner(db, ui: UI) -> list[dict[str, Any]]:
    from gaas.catalog import service as catalog

    services, _ = catalog.list_services(db, ui.actor, owner_id=ui.actor.user_id, roots_only=False, sort="number",
                                        limit=12)
    rows = []
    for s in services:
        entry: dict[str, Any] = {"service": s, "incidents": None, "changes": None, "breached": None}
        if ui.can("incident.view", s.domain):
            from gaas.incidents import service as incidents

            open_incidents, more = incidents.list_incidents(db, ui.actor, service_id=s.id, open_only=True, limit=50)
            entry["incidents"] = f"{len(open_incidents)}{'+' if more else ''}"
            entry["breached"] = sum(1 for i in open_incidents if i.sla_breached)
        if ui.can("change.view", s.domain):
            from gaas.changes import service as changes
            from gaas.changes.models import ChangeStatus

            active, more = changes.list_changes(db, ui.actor, service_id=s.id, status=[
                ChangeStatus.submitted, ChangeStatus.under_review, ChangeStatus.approved, ChangeStatus.scheduled,
                ChangeStatus.implementing], limit=50)
            entry["changes"] = f"{len(active)}{'+' if more else ''}"
        rows.append(entry)
    return rows


def recent_audit(db, ui: UI, *, limit: int, filters: dict[str, Any] | None = None,
                 cursor: str | None = None) -> tuple[list[Any], str | None]:
    """The audit log as GET /api/v1/audit-log reads it: the reader's audit.view scope, newest first."""
    from gaas.audit import service as audit
    from gaas.audit.models import AuditLog
    from gaas.core.pagination import SortKey, paginate

    audit.require_audit_view(ui.actor)
    stmt = audit.audit_query(**(filters or {}))
    scope = audit.audit_scope(ui.actor)
    if scope is not None:
        stmt = stmt.where(scope)
    return paginate(stmt, id_column=AuditLog.id, sort_keys=(SortKey("timestamp", AuditLog.timestamp),),
                    sort="-timestamp", cursor=cursor, limit=limit, execute=db.scalars)


def history(db, entity_type: str, entity_id: uuid.UUID, limit: int = 30) -> list[Any]:
    """A record's activity stream (the caller has already been shown the record), newest first."""
    from gaas.audit import service as audit
    from gaas.audit.models import AuditLog

    return list(db.scalars(audit.audit_query(entity_type=entity_type, entity_id=entity_id)
                           .order_by(AuditLog.timestamp.desc(), AuditLog.id.desc()).limit(limit)))
