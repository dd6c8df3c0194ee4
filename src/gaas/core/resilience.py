"""Transient database conflicts are retried, not passed on to the client.

A transaction that loses a serialization conflict (40001) or is chosen as a deadlock victim
(40P01) was rolled back whole, so running the request again is safe and is what the client
would do anyway. The problem handler marks such a response as retryable (`TRANSIENT` in the
request state) and answers 503 with Retry-After; this middleware, sitting inside the request-id
middleware, replays the request (with its buffered body) up to `attempts` times before letting
that 503 through. Requests with large or streamed bodies (imports) are not buffered and not
replayed: their 503 reaches the client, who may retry.
"""

from __future__ import annotations

import asyncio
import logging
import random

from starlette.types import ASGIApp, Message, Receive, Scope, Send

TRANSIENT = "gaas_transient_conflict"
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
MAX_REPLAYED_BODY = 1024 * 1024
log = logging.getLogger("gaas.resilience")


class RetryTransientMiddleware:
    def __init__(self, app: ASGIApp, attempts: int = 4) -> None:
        self.app = app
        self.attempts = attempts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _replayable(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        for attempt in range(1, self.attempts + 1):
            if not await self._attempt(scope, body, receive, send, last=attempt == self.attempts):
                return
            log.info("transient database conflict on %s %s, attempt %d: retrying", scope.get("method"),
                     scope.get("path"), attempt)
            await asyncio.sleep(random.uniform(0.005, 0.02) * attempt)  # jitter: let the winner finish

    async def _attempt(self, scope: Scope, body: bytes, receive: Receive, send: Send, *, last: bool) -> bool:
        """Run the request once; True if its response was a transient conflict and was held back."""
        state = scope.setdefault("state", {})
        state.pop(TRANSIENT, None)
        discarded = False

        async def send_unless_retried(message: Message) -> None:
            nonlocal discarded
            if message["type"] == "http.response.start" and state.get(TRANSIENT) and not last:
                discarded = True
            if not discarded:
                await send(message)

        await self.app(scope, _replay(body, receive), send_unless_retried)
        return discarded


def _replayable(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE") and b"content-length" not in headers:
        return True
    length = headers.get(b"content-length")
    return length is not None and length.isdigit() and int(length) <= MAX_REPLAYED_BODY


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the client's disconnect, as usual

    return replayed
