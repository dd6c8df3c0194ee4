"""RFC 9457 problem details: every API error, and the exceptions services raise to produce one."""

from __future__ import annotations

import logging
import re
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gaas.core.resilience import TRANSIENT, TRANSIENT_SQLSTATES

log = logging.getLogger("gaas.errors")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/api/problems/"


class Problem(Exception):
    """A failure the client can act on. Services raise subclasses; the API renders them."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra


class ValidationProblem(Problem):
    status = 422
    slug = "validation-error"
    title = "The request is not valid"

    @classmethod
    def field(cls, field: str, message: str, kind: str = "invalid") -> ValidationProblem:
        return cls(f"{field}: {message}", errors=[{"field": field, "message": message, "type": kind}])


class Unauthenticated(Problem):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str = "Valid credentials are required.", **kw: Any) -> None:
        kw.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kw)


class Forbidden(Problem):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(Problem):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(Problem):
    status = 409
    slug = "conflict"
    title = "Conflict"


class StaleVersion(Conflict):
    slug = "stale-version"
    title = "The record was changed by someone else"


class TooManyRequests(Problem):
    status = 429
    slug = "too-many-requests"
    title = "Too many requests"


class Unavailable(Problem):
    status = 503
    slug = "unavailable"
    title = "Service temporarily unavailable"


def problem_body(request: Request, status: int, slug: str, title: str, detail: str, **extra: Any) -> dict:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(request: Request, status: int, slug: str, title: str, detail: str,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(
        problem_body(request, status, slug, title, detail, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _field_name(loc: tuple | list) -> tuple[str, str]:
    """('body', 'email') -> ('email', 'body'); ('path', 'user_id') -> ('user_id', 'path')."""
    parts = [str(p) for p in loc]
    location = parts[0] if parts and parts[0] in {"body", "query", "path", "header", "cookie"} else "body"
    rest = parts[1:] if parts and parts[0] == location else parts
    return (".".join(rest) if rest else location), location


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        field, location = _field_name(err.get("loc", ()))
        kind = err.get("type", "invalid")
        message = err.get("msg", "invalid")
        if kind == "json_invalid":
            field, message = "body", f"malformed JSON: {err.get('ctx', {}).get('error', message)}"
        elif kind == "missing" and field == "body":
            message = "a JSON body is required"
        elif kind == "extra_forbidden":
            message = "unknown field"
        errors.append({"field": field, "location": location, "message": message, "type": kind})
    return errors


# Unique constraint -> the API field it guards. PostgreSQL leaves the "Key (...)" detail out on
# tables with row-level security, so modules declare this for their constraints.
UNIQUE_CONSTRAINT_FIELDS: dict[str, str] = {}


def register_unique_fields(mapping: dict[str, str]) -> None:
    UNIQUE_CONSTRAINT_FIELDS.update(mapping)


_KEY_COLUMNS = re.compile(r"^Key \((?P<columns>[^)]*)\)")


def _integrity_problem(exc: IntegrityError) -> tuple[int, str, list[dict[str, Any]]]:
    """Name the field from PostgreSQL's own diagnostics: 'Key (email)=(...) already exists.'"""
    diag = getattr(exc.orig, "diag", None)
    sqlstate = getattr(exc.orig, "sqlstate", "") or ""
    detail = getattr(diag, "message_detail", None) or ""
    match = _KEY_COLUMNS.match(detail)
    constraint = getattr(diag, "constraint_name", None) or ""
    if constraint in UNIQUE_CONSTRAINT_FIELDS:
        field = UNIQUE_CONSTRAINT_FIELDS[constraint]
    elif match:
        field = match.group("columns")
    else:
        field = getattr(diag, "column_name", None) or constraint or "body"
    if sqlstate == "23505":  # unique_violation
        return 409, "duplicate", [{"field": field, "message": "already exists", "type": "unique"}]
    if sqlstate == "23503":  # foreign_key_violation
        return 422, "unknown-reference", [{"field": field, "message": "refers to nothing", "type": "reference"}]
    return 422, "constraint-violation", [{"field": field, "message": "violates a constraint", "type": "constraint"}]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.slug, exc.title, exc.detail,
                                headers=exc.headers, errors=exc.errors or None, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
        slug = "malformed-json" if status == 400 else "validation-error"
        return problem_response(request, status, slug, "The request is not valid", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Authentication required"}
        return problem_response(request, exc.status_code, f"http-{exc.status_code}",
                                titles.get(exc.status_code, "HTTP error"), str(exc.detail),
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        return problem_response(request, 409, StaleVersion.slug, StaleVersion.title,
                                "Another transaction changed this record first; reload and retry.",
                                errors=[{"field": "version", "message": "stale", "type": "stale"}])

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        status, slug, errors = _integrity_problem(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(request, status, slug, "The data conflicts with existing records", detail,
                                errors=errors)

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        return database_problem(request, exc)


def database_problem(request: Request, exc: DBAPIError) -> JSONResponse:
    """Every database error as a problem: what the client can do about it, never a stack trace."""
    sqlstate = getattr(exc.orig, "sqlstate", "") or ""
    lost = not sqlstate and isinstance(exc.orig, psycopg.OperationalError | psycopg.InternalError
                                       | psycopg.InterfaceError)
    if lost or (isinstance(exc, OperationalError) and sqlstate.startswith(("08", "57P"))):
        # No connection, the server shutting down or restarting, or the driver losing the thread of
        # the protocol when the connection broke mid-command (e.g. during COMMIT).
        log.warning("database unavailable: %s", exc.orig)
        return problem_response(request, 503, Unavailable.slug, Unavailable.title,
                                "The database is not reachable right now; retry shortly.",
                                headers={"Retry-After": "5"})
    if not sqlstate and isinstance(exc.orig, psycopg.DataError):
        # Refused by the driver before reaching the server, e.g. a NUL character in a string.
        return problem_response(request, 422, "invalid-characters", "The request is not valid",
                                f"A value cannot be stored: {exc.orig}",
                                errors=[{"field": "body", "message": str(exc.orig), "type": "invalid_characters"}])
    if sqlstate in TRANSIENT_SQLSTATES:  # rolled back whole: the retry middleware replays the request
        request.state.__setattr__(TRANSIENT, True)
        return problem_response(request, 503, "transient-conflict", "Concurrent update conflict",
                                "The request collided with a concurrent one and was not applied; retry it.",
                                headers={"Retry-After": "1"})
    if sqlstate == "57014":  # query_canceled: statement_timeout or a cancel request
        return problem_response(request, 503, "timeout", "The request took too long",
                                "The database gave up on this request (statement timeout); it was not applied.",
                                headers={"Retry-After": "5"})
    if sqlstate in {"53100", "53200", "53300", "53400"}:  # disk full, out of memory, too many connections
        log.error("database out of resources: %s", exc.orig)
        return problem_response(request, 503, Unavailable.slug, Unavailable.title,
                                "The database is out of resources right now; nothing was applied.",
                                headers={"Retry-After": "30"})
    if sqlstate == "42501":  # insufficient_privilege: RLS WITH CHECK or a missing grant
        log.warning("database refused a write: %s", exc.orig)
        return problem_response(request, 403, Forbidden.slug, Forbidden.title,
                                "The database refused this write for the acting user.")
    if sqlstate in {"22001", "22P02", "22P05", "22003", "22007", "22008", "23502", "23514"}:
        return problem_response(request, 422, "constraint-violation", "The request is not valid",
                                str(getattr(exc.orig, "diag", None) and exc.orig.diag.message_primary),
                                errors=[{"field": getattr(exc.orig.diag, "column_name", None) or "body",
                                         "message": exc.orig.diag.message_primary, "type": "constraint"}])
    log.exception("database error", exc_info=exc)
    return problem_response(request, 500, "internal-error", "Internal error",
                            "The request could not be completed; it was not applied.")
