"""HTTP plumbing shared by every router: request ids, the per-request transaction, the acting
user, versions/ETags and list parameters."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Annotated

import structlog
from fastapi import Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gaas.core.context import Actor, RequestInfo
from gaas.core.db import set_context
from gaas.core.errors import Unauthenticated, ValidationProblem
from gaas.core.settings import get_settings

log = logging.getLogger("gaas.http")
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


# API answers are never sniffed into another type, framed, or sent on as a referrer.
_API_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer"))


class RequestIdMiddleware:
    """Accept a sane client X-Request-ID or make one; expose it to handlers and on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_OK.match(incoming) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope.get("path", "")
        api = path.startswith("/api") or path == "/metrics"

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                if api:  # the web interface sets its own, stricter ones (ui.web.SecurityHeadersMiddleware)
                    present = {name.lower() for name, _ in headers}
                    headers.extend((name, value) for name, value in _API_HEADERS if name not in present)
                message["headers"] = headers
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)  # every log line of this request
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Last line of defence: an unexpected error still answers problem+json, with the
            # request id to quote, and never a stack trace. It is logged with that id.
            log.exception("unhandled error in request %s", request_id)
            if started:
                raise
            body = json.dumps({"type": "/api/problems/internal-error", "title": "Internal error", "status": 500,
                               "detail": "The request could not be completed; it was not applied.",
                               "instance": scope.get("path", ""), "request_id": request_id}).encode()
            await send_with_id({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]})
            await send_with_id({"type": "http.response.body", "body": body})
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


def request_info(request: Request) -> RequestInfo:
    client = request.client.host if request.client else None
    return RequestInfo(
        request_id=getattr(request.state, "request_id", None),
        ip_address=client if client and client != "testclient" else None,
        user_agent=request.headers.get("user-agent"),
    )


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request, committed before the response is sent (scope='function')."""
    factory = request.app.state.session_factory
    session: Session = factory()
    try:
        session.begin()
        # No context yet: set_config(..., true) never outlives a transaction, so a fresh one
        # starts with none and RLS shows nothing until current_actor sets it.
        session.info["request"] = request_info(request)
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_db, scope="function")]

bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/token or /api/v1/tokens")


def current_actor(
    request: Request,
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    from gaas.iam import service as iam

    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("Send 'Authorization: Bearer <token>'.")
    actor = iam.actor_from_token(db, credentials.credentials, request_info(request))
    set_context(db, actor)
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


def get_read_db(request: Request, actor: CurrentActor) -> Iterator[Session]:
    """For reports and search: a read-only transaction on the replica when one is configured
    (it may lag the primary by a moment), else on the primary. The caller is authenticated on
    the primary first; the same row-level security context is set on the replica."""
    factory = request.app.state.replica_factory
    if factory is None:
        factory = request.app.state.session_factory
    session: Session = factory()
    try:
        session.connection(execution_options={"postgresql_readonly": True})
        session.info["request"] = request_info(request)
        set_context(session, actor)
        yield session
    finally:
        session.rollback()
        session.close()


ReadDbSession = Annotated[Session, Depends(get_read_db, scope="function")]


def limit_param(
    limit: Annotated[int | None, Query(ge=1, description="Page size (bounded by the server)")] = None,
) -> int:
    settings = get_settings()
    if limit is None:
        return settings.page_size_default
    if limit > settings.page_size_max:
        raise ValidationProblem.field("limit", f"must be at most {settings.page_size_max}")
    return limit


PageLimit = Annotated[int, Depends(limit_param)]


def if_match_version(if_match: Annotated[str | None, Header()] = None) -> int | None:
    """Parse If-Match: "3" (or W/"3") into version 3."""
    if if_match is None:
        return None
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    value = value.strip('"')
    if not value.isdigit():
        raise ValidationProblem.field("If-Match", "must be the ETag of the record, e.g. \"3\"")
    return int(value)


IfMatch = Annotated[int | None, Depends(if_match_version)]


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


class PreRenderedJSON(JSONResponse):
    """A body already serialised to JSON (by the database, or at once for a large report), sent
    as it is. A JSONResponse, so that OpenAPI documents the route's response_model for it (a
    plain Response would be documented as a string, or with no content at all)."""

    def render(self, content: str | bytes) -> bytes:  # type: ignore[override]
        return content.encode("utf-8") if isinstance(content, str) else content
