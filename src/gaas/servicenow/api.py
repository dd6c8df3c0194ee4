"""ServiceNow's Table API under /api/now/table/{table}: a translation over the modules' service
and query functions, with the caller as the actor (Basic authentication or a bearer token), in
ServiceNow's response shapes: {"result": ...} and {"error": {"message", "detail"}, "status": "failure"}."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from gaas.core.context import Actor
from gaas.core.db import set_context
from gaas.core.errors import NotFound, Problem, TooManyRequests, Unauthenticated
from gaas.core.http import DbSession, IfMatch, request_info
from gaas.core.settings import get_settings
from gaas.iam import basic_auth
from gaas.iam import service as iam
from gaas.servicenow import query as encoded
from gaas.servicenow.codes import parse_sys_id
from gaas.servicenow.mapping import TABLES, Lookups, Render, Table, WriteError, imported_target

log = logging.getLogger("gaas.servicenow")
MAX_LIMIT = 10_000  # ServiceNow's own default page size, and GaaS's ceiling for it
REALM = 'Basic realm="GaaS", Bearer'


class BadRequest(Problem):
    status = 400
    slug = "bad-request"
    title = "Bad request"


def error_response(status: int, message: str, detail: str | None, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "detail": detail}, "status": "failure"}, status_code=status,
                        headers=headers)


async def _problem_of(request: Request, exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """What the application's own handlers answer for this exception (status, problem body, headers)."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            response = await handler(request, exc)
            headers = {k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "www-authenticate")}
            return response.status_code, json.loads(response.body), headers
    log.exception("unhandled error in ServiceNow request %s", getattr(request.state, "request_id", "?"), exc_info=exc)
    return 500, {"title": "Internal error", "detail": "The request could not be completed; it was not applied."}, {}


class ServiceNowRoute(APIRoute):
    """Every failure under /api/now in ServiceNow's error shape, with the status and wording the
    rest of the API would give it (a 422 becomes ServiceNow's 400). The transaction was already
    rolled back by get_db."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except Exception as exc:
                status, body, headers = await _problem_of(request, exc)
                detail = body.get("detail") or body.get("title") or ""
                errors = body.get("errors") or []
                reasons = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors) or None
                if status == 404:
                    return error_response(404, "No Record found",
                                          "Record doesn't exist or ACL restricts the record retrieval")
                if status == 401:
                    headers["WWW-Authenticate"] = REALM
                    return error_response(401, "User Not Authenticated", detail, headers)
                if status == 422:
                    status = 400
                return error_response(status, detail, reasons or body.get("title"), headers)

        return handler


router = APIRouter(prefix="/api/now", route_class=ServiceNowRoute, tags=["servicenow"])


# ---- authentication --------------------------------------------------------------------------------------

def servicenow_actor(request: Request, db: DbSession) -> Actor:
    """Basic authentication (through the identity service's password checks, lockout and address
    throttling) or a bearer token: the same actor, permissions and domains as the rest of the API."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    info = request_info(request)
    if scheme.lower() == "bearer" and credentials.strip():
        actor = iam.actor_from_token(db, credentials.strip(), info)
    elif scheme.lower() == "basic" and credentials.strip():
        try:
            login, _, password = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthenticated("The Basic credentials are malformed.") from exc
        result = basic_auth.actor_from_password(db, login, password, info)
        if result.actor is None:
            db.commit()  # the failed attempt, the lock and the audit row stay
            if result.throttled:
                minutes = get_settings().login_address_window_minutes
                raise TooManyRequests("Too many failed logins from your address: wait before trying again.",
                                      headers={"Retry-After": str(60 * minutes)})
            if result.locked:
                raise Unauthenticated("Too many failed logins: the account is locked for a while.")
            raise Unauthenticated("Wrong user name or password.")
        if result.recorded:
            db.commit()  # the login is recorded even if this request fails later
        actor = result.actor
    else:
        raise Unauthenticated("Required to provide Auth information (Basic or Bearer).")
    set_context(db, actor)
    return actor


# ---- parameters ------------------------------------------------------------------------------------------

def _table(name: str) -> Table:
    table = TABLES.get(name)
    if table is None:
        raise BadRequest(f"Invalid table {name}",
                         errors=[{"field": "table", "message": f"GaaS serves {', '.join(TABLES)}",
                                  "type": "unknown_table"}])
    return table


def _flag(request: Request, name: str, default: str = "false", allowed: tuple[str, ...] = ("true", "false")) -> str:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    value = value.strip().lower()
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}",
                         errors=[{"field": name, "message": f"one of {', '.join(allowed)}", "type": "invalid"}])
    return value


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    value = request.query_params.get(name)
    if value is None or value.strip() in ("", "None"):
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a whole number", errors=[{"field": name, "message": "a whole number",
                                                                     "type": "invalid"}]) from exc
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low} and {high}",
                         errors=[{"field": name, "message": f"between {low} and {high}", "type": "range"}])
    return number


def _render(request: Request, db, actor: Actor, table: Table) -> Render:
    fields_param = request.query_params.get("sysparm_fields") or ""
    fields = [f.strip() for f in fields_param.split(",") if f.strip()] or None
    if fields:
        unknown = [f for f in fields if f not in table.columns]
        if unknown:
            raise BadRequest(f"{table.name} in GaaS has no field(s) {', '.join(unknown)}",
                             errors=[{"field": f, "message": f"not a field of {table.name} in GaaS",
                                      "type": "unknown_field"} for f in unknown])
    return Render(db, actor, str(request.base_url).rstrip("/"),
                  display=_flag(request, "sysparm_display_value", allowed=("true", "false", "all")),
                  exclude_links=_flag(request, "sysparm_exclude_reference_link") == "true", fields=fields)


def _sys_id(value: str) -> uuid.UUID:
    try:
        return parse_sys_id(value)
    except ValueError as exc:
        raise NotFound(f"No record {value}.") from exc


def _record(db, actor: Actor, table: Table, value: str) -> Any:
    """The record a path's sys_id names: a GaaS id, or the ServiceNow sys_id of an imported record
    (kept as its external key), so that scripts holding ServiceNow's sys_ids keep working."""
    record_id = _sys_id(value)
    try:
        return table.get(db, actor, record_id)
    except NotFound:
        target = imported_target(db, table.name, record_id.hex)
        if target is None:
            raise
        return table.get(db, actor, target)


def _links(request: Request, offset: int, limit: int, total: int) -> str:
    base = str(request.url.remove_query_params(["sysparm_offset", "sysparm_limit"])).split("?", 1)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("sysparm_offset", "sysparm_limit")]

    def url(at: int) -> str:
        return f"{base[0]}?{urlencode([*kept, ('sysparm_offset', str(at)), ('sysparm_limit', str(limit))])}"

    last = max((total - 1) // limit, 0) * limit
    links = [f'<{url(0)}>;rel="first"']
    if offset > 0:
        links.append(f'<{url(max(offset - limit, 0))}>;rel="prev"')
    if offset + limit < total:
        links.append(f'<{url(offset + limit)}>;rel="next"')
    links.append(f'<{url(last)}>;rel="last"')
    return ",".join(links)


def _body(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise WriteError("The body must be a JSON object of fields.",
                         errors=[{"field": "body", "message": "not an object", "type": "invalid"}])
    return payload


# ---- the Table API ---------------------------------------------------------------------------------------

ServiceNowActor = Annotated[Actor, Depends(servicenow_actor)]


@router.get("/table/{table_name}", summary="Query a table (ServiceNow Table API)")
def list_records(table_name: str, request: Request, db: DbSession, actor: ServiceNowActor) -> Response:
    table = _table(table_name)
    render = _render(request, db, actor, table)
    limit = _int(request, "sysparm_limit", MAX_LIMIT, 1, MAX_LIMIT)
    offset = _int(request, "sysparm_offset", 0, 0, 10_000_000)
    parsed = encoded.parse(request.query_params.get("sysparm_query"))
    lookups = Lookups(db, actor)
    where = table.where(parsed, lookups)
    order = table.order(parsed)
    rows, total = table.query(db, actor, where=where, order=order, offset=offset, limit=limit, count=True)
    render.prepare(table, rows)
    headers = {"X-Total-Count": str(total or 0)}
    if _flag(request, "sysparm_suppress_pagination_header") != "true" and total:
        headers["Link"] = _links(request, offset, limit, total)
    return JSONResponse({"result": [render.record(table, r) for r in rows]}, headers=headers)


@router.get("/table/{table_name}/{sys_id}", summary="Read one record by sys_id")
def get_record(table_name: str, sys_id: str, request: Request, db: DbSession, actor: ServiceNowActor) -> Response:
    table = _table(table_name)
    render = _render(request, db, actor, table)
    record = _record(db, actor, table, sys_id)
    render.prepare(table, [record])
    return JSONResponse({"result": render.record(table, record)})


@contextmanager
def _named(table: Table) -> Iterator[None]:
    """A service's refusal names ServiceNow's fields."""
    try:
        yield
    except Problem as exc:
        table.rename(exc)
        raise


def _refuse(table: Table, action: str) -> BadRequest:
    reason = table.read_only_reason or f"{table.name} cannot be {action} through the Table API in GaaS"
    return BadRequest(f"{table.name}: {reason}.",
                      errors=[{"field": "table", "message": reason, "type": "read_only"}])


@router.post("/table/{table_name}", status_code=201, summary="Create a record")
def create_record(table_name: str, request: Request, db: DbSession, actor: ServiceNowActor,
                  payload: Annotated[Any, Body()] = None) -> Response:
    table = _table(table_name)
    if table.create is None:
        raise _refuse(table, "created")
    render = _render(request, db, actor, table)
    with _named(table):
        record = table.create(db, actor, _body(payload), Lookups(db, actor))
    record = table.get(db, actor, record.id)
    render.prepare(table, [record])
    return JSONResponse({"result": render.record(table, record)}, status_code=201,
                        headers={"Location": render.link(table.name, record.id.hex)})


def _update(table_name: str, sys_id: str, request: Request, db, actor: Actor, payload: Any,
            if_match: int | None) -> Response:
    table = _table(table_name)
    if table.update is None:
        raise _refuse(table, "updated")
    render = _render(request, db, actor, table)
    record = _record(db, actor, table, sys_id)
    with _named(table):
        record = table.update(db, actor, record, _body(payload), Lookups(db, actor), if_match)
    render.prepare(table, [record])
    return JSONResponse({"result": render.record(table, record)})


@router.put("/table/{table_name}/{sys_id}", summary="Update a record (the fields given)")
def put_record(table_name: str, sys_id: str, request: Request, db: DbSession, actor: ServiceNowActor,
               if_match: IfMatch, payload: Annotated[Any, Body()] = None) -> Response:
    return _update(table_name, sys_id, request, db, actor, payload, if_match)


@router.patch("/table/{table_name}/{sys_id}", summary="Update a record (the fields given)")
def patch_record(table_name: str, sys_id: str, request: Request, db: DbSession, actor: ServiceNowActor,
                 if_match: IfMatch, payload: Annotated[Any, Body()] = None) -> Response:
    return _update(table_name, sys_id, request, db, actor, payload, if_match)


@router.delete("/table/{table_name}/{sys_id}", status_code=204, summary="Delete a record")
def delete_record(table_name: str, sys_id: str, db: DbSession, actor: ServiceNowActor) -> Response:
    table = _table(table_name)
    if table.delete is None:
        raise _refuse(table, "deleted")
    record = _record(db, actor, table, sys_id)
    with _named(table):
        table.delete(db, actor, record)
    return Response(status_code=204)


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                  include_in_schema=False)
def elsewhere(rest: str) -> Response:
    """Anything else under /api/now: ServiceNow's answer for a URI that is not a resource."""
    return error_response(400, "Requested URI does not represent any resource",
                          f"GaaS serves the Table API only: /api/now/table/{{{', '.join(TABLES)}}}")
