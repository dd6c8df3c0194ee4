"""The web interface's machinery: the session cookie, CSRF, the acting user, templates, errors
rendered as pages, and the security headers of every UI response.

A UI request is an API request in another dress: the same per-request transaction (core.http's
get_db), the same identity service (a session token like the API's, kept in an HttpOnly cookie),
the same RLS context (core.db.set_context), the same service functions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gaas.core.context import Actor, RequestInfo
from gaas.core.db import set_context
from gaas.core.errors import Unauthenticated
from gaas.core.http import DbSession
from gaas.core.settings import get_settings
from gaas.ui.i18n import Translator

log = logging.getLogger("gaas.ui")
HERE = Path(__file__).parent
SESSION_COOKIE = "gaas_session"
LOGIN_CSRF_COOKIE = "gaas_login_csrf"
FILTERS_COOKIE = "gaas_filters"
# The messages a redirect may show (?flash=...): no other text from a link is ever displayed.
FLASHES = frozenset({
    "All marked as read.",
    "Change requested.",
    "Class created.",
    "Configuration item created.",
    "Created.",
    "Decision recorded.",
    "Deleted.",
    "Restored.",
    "Done.",
    "Thank you for your feedback.",
    "Draft saved.",
    "Incident reported.",
    "Matrix saved.",
    "Password changed",
    "Problem recorded.",
    "Profile saved.",
    "Relationship added.",
    "Relationship removed.",
    "Saved.",
    "Service created.",
    "Task completed.",
    "User created.",
    "Workflow saved.",
})

# No inline script or style anywhere: htmx reads its configuration from a meta tag, the few
# behaviours we add live in static/app.js, every picture is SVG with attributes, not styles.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeadersMiddleware:
    """Security headers on every response outside /api (pages, fragments, redirects, static files);
    an address outside /api that nothing answers gets a page, not the API's problem+json."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or path.startswith("/api") or path == "/metrics":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        started = time.perf_counter()

        def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
            present = {k.lower() for k, _ in headers}
            headers = headers + [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            # The page's server time (query, render), for bench/ui.py and the browser's devtools.
            headers.append((b"server-timing", f"app;dur={1000 * (time.perf_counter() - started):.1f}".encode()))
            if not path.startswith("/static/"):
                headers.append((b"cache-control", b"no-store"))
            return headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] in (404, 405) and content_type.startswith(b"application/problem+json"):
                    held["start"] = message
                    return
                message["headers"] = secured(list(message.get("headers", [])))
            elif message["type"] == "http.response.body" and "start" in held:
                if message.get("more_body"):
                    return
                status = held["start"]["status"]
                page = not_found_page(Request(scope), status)
                body = page.body
                headers = [(b"content-type", b"text/html; charset=utf-8"),
                           (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": status, "headers": secured(headers)})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, send_with_headers)


def not_found_page(request: Request, status: int) -> HTMLResponse:
    t = Translator(None)
    title = "Not found" if status == 404 else "Method not allowed"
    detail = "There is no page at this address." if status == 404 else "This page does not take that request."
    return render(request, "error.html", {"status": status, "title": t(title), "detail": t(detail), "errors": [],
                                          "request_id": getattr(request.state, "request_id", None)}, status=status)


# ---- errors as pages ---------------------------------------------------------------------------

class LoginRequired(Exception):
    """No valid session: go to the login page (and come back afterwards)."""


class CsrfRejected(Exception):
    """A form without this session's CSRF token, or posted from another origin."""


class UIRoute(APIRoute):
    """A UI route: whatever goes wrong becomes a page (or an htmx fragment), never JSON or a trace.

    Problems are translated by the application's own problem handlers (so the status and the
    wording are the API's), then shown as HTML. The transaction was already rolled back by get_db.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except LoginRequired:
                return login_redirect(request)
            except CsrfRejected:
                return await error_page(request, 403, "Not allowed",
                                        "The form was stale or came from another site. Reload the page and try again.")
            except ValidationError as exc:
                return await error_page(request, 422, "The request is not valid",
                                        "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
            except Exception as exc:  # every other failure: the API's mapping, as a page
                body = await _problem_of(request, exc)
                return await error_page(request, body["status"], body["title"], body["detail"],
                                        errors=body.get("errors") or [])

        return handler


async def _problem_of(request: Request, exc: Exception) -> dict[str, Any]:
    """The problem+json body the API would answer for this exception."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            try:
                response = await handler(request, exc)
                return json.loads(response.body)
            except Exception:  # pragma: no cover - a handler that fails is reported below
                log.exception("problem handler failed")
                break
    log.exception("unhandled error in UI request %s", getattr(request.state, "request_id", "?"), exc_info=exc)
    return {"status": 500, "title": "Internal error",
            "detail": "The request could not be completed; it was not applied."}


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = "/login" + (f"?next={quote(target)}" if target not in ("/", "/login") else "")
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    response = RedirectResponse(url, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def error_page(request: Request, status: int, title: str, detail: str,
                     errors: list[dict[str, Any]] | None = None) -> Response:
    ui: UI | None = getattr(request.state, "ui", None)
    t = ui.t if ui else Translator(None)
    context = {"status": status, "title": t(title), "detail": detail, "errors": errors or [],
               "request_id": getattr(request.state, "request_id", None)}
    template = "fragments/error.html" if request.headers.get("hx-request") else "error.html"
    response = render(request, template, context, status=status)
    if request.headers.get("hx-request"):
        # htmx swaps only 2xx answers by default: show the error where the fragment would go.
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        response.status_code = 200
    return response


# ---- the acting user ---------------------------------------------------------------------------

@dataclass
class UI:
    """Who is looking, in which language and time zone: handed to every page."""

    actor: Actor
    user: Any
    token: str
    t: Translator
    tz: ZoneInfo
    csrf: str
    extra: dict[str, Any] = field(default_factory=dict)

    def can(self, permission: str, domain: str | None = None) -> bool:
        return self.actor.can(permission, domain) if domain is not None else self.actor.can_anywhere(permission)

    @property
    def domains(self) -> list[str] | None:
        return None if self.actor.visible_domains is None else sorted(self.actor.visible_domains)


def _csrf_for(session_token: str) -> str:
    key = get_settings().token_pepper.encode()
    return hmac.new(key, b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()[:40]


def ui_request_info(request: Request) -> RequestInfo:
    client = request.client.host if request.client else None
    return RequestInfo(request_id=getattr(request.state, "request_id", None),
                       ip_address=client if client and client != "testclient" else None,
                       user_agent=request.headers.get("user-agent"), entry_point="ui")


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def current_ui(request: Request, db: DbSession) -> UI:
    from gaas.iam import service as iam

    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired()
    try:
        actor = iam.actor_from_token(db, token, ui_request_info(request))
    except Unauthenticated as exc:
        raise LoginRequired() from exc
    set_context(db, actor)
    user = iam.get_user(db, actor, actor.user_id)
    ui = UI(actor=actor, user=user, token=token, t=Translator(user.language), tz=zone(user.timezone),
            csrf=_csrf_for(token))
    request.state.ui = ui
    return ui


CurrentUI = Annotated[UI, Depends(current_ui)]


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def form_data(request: Request) -> dict[str, Any]:
    """The posted form as a dict (repeated names become lists)."""
    form = await request.form()
    data: dict[str, Any] = {}
    for key in form:
        values = form.getlist(key)
        data[key] = values if len(values) > 1 else values[0]
    return data


async def checked_form(request: Request, ui: CurrentUI) -> dict[str, Any]:
    """Every state-changing UI request carries the session's CSRF token (form field or header)."""
    data = await form_data(request)
    presented = data.pop("csrf", None) or request.headers.get("x-csrf-token") or ""
    if not _same_origin(request) or not isinstance(presented, str) \
            or not hmac.compare_digest(presented, ui.csrf):
        raise CsrfRejected()
    return data


CheckedForm = Annotated[dict[str, Any], Depends(checked_form)]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


# ---- templates ---------------------------------------------------------------------------------

def _dt(value: datetime | str | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(tz)
    return f"{local.strftime(fmt)} {local.tzname()}" if fmt.endswith("%M") else local.strftime(fmt)


def money(value: Decimal | str | float | int | None, currency: str | None = None) -> str:
    if value is None or value == "":
        return ""
    amount = Decimal(str(value))
    text = f"{amount:,.2f}"
    return f"{text} {currency}" if currency else text


def label(value: Any) -> str:
    """Enum values and snake_case as words: in_progress -> In progress."""
    if value is None:
        return ""
    text = str(getattr(value, "value", value)).replace("_", " ")
    return text[:1].upper() + text[1:]


def query(request: Request, **changes: Any) -> str:
    """The current query string with some parameters changed (None removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = str(value)
    return ("?" + urlencode(params)) if params else "?"


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), extensions=["jinja2.ext.do"],
                      autoescape=select_autoescape(["html", "svg"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, label=label, tojson_attr=lambda v: json.dumps(v, default=str))
    env.globals.update(uuid=uuid, date=date)
    return env


templates = _env()


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200,
           headers: dict[str, str] | None = None) -> HTMLResponse:
    ui: UI | None = getattr(request.state, "ui", None)
    t = ui.t if ui else Translator(request.headers.get("accept-language", "en").split(",")[0].strip() or None)
    tz = ui.tz if ui else ZoneInfo("UTC")

    def dt(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return _dt(value, tz, fmt)

    values = {"request": request, "ui": ui, "_": t, "lang": t.language, "dt": dt,
              "qs": lambda **kw: query(request, **kw), "path": request.url.path,
              "is_htmx": bool(request.headers.get("hx-request")),
              "flash": request.query_params.get("flash") if request.query_params.get("flash") in FLASHES else None,
              **(context or {})}
    html = templates.get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers=headers)


def fragment(request: Request, template: str, context: dict[str, Any] | None = None) -> HTMLResponse:
    return render(request, template, context)


def redirect(url: str, request: Request | None = None, *, flash: str | None = None) -> Response:
    """After a successful POST: see the result (303), or tell htmx to go there."""
    if flash:
        assert flash in FLASHES, flash
        url += ("&" if "?" in url else "?") + urlencode({"flash": flash})
    if request is not None and request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def secure_cookies(request: Request) -> bool:
    """Secure cookies over HTTPS (or always/never, by GAAS_UI_SECURE_COOKIES)."""
    forced = get_settings().ui_secure_cookies
    return forced if forced is not None else request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, token: str, expires_at: datetime) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=int((expires_at - datetime.now(UTC)).total_seconds()),
                        path="/", httponly=True, samesite="lax", secure=secure_cookies(request))
