"""Real endpoints for the workflow tests (no mocks): an HTTP receiver for webhooks that checks
signatures and drops duplicate idempotency keys, and an SMTP sink (aiosmtpd) in this process.
Also a controllable clock and the worker as the tests drive it. (No tests here.)"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from gaas.core.settings import Settings, get_settings
from gaas.workflow.worker import Worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]


@dataclass
class Receiver:
    """Records every request; answers 500 to the first `fail[path]` requests of a path; a path in
    `hold` waits (while its request is open) until the event is set. `accepted` holds each
    idempotency key once: what a receiver that checks the key would act on."""

    requests: list[Received] = field(default_factory=list)
    accepted: dict[tuple[str, str], Received] = field(default_factory=dict)  # (path, key)
    duplicates: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    hold: dict[str, threading.Event] = field(default_factory=dict)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with receiver.lock:
                    receiver.requests.append(got)
                    failing = receiver.fail.get(self.path, 0) > 0
                    if failing:
                        receiver.fail[self.path] -= 1
                receiver.arrived.set()
                if self.path in receiver.hold:
                    receiver.hold[self.path].wait(30)
                if failing:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"try again")
                    return
                with receiver.lock:
                    if (got.path, got.key) in receiver.accepted:
                        receiver.duplicates.append(got.key)
                    else:
                        receiver.accepted[got.path, got.key] = got
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        for event in self.hold.values():
            event.set()
        self.server.shutdown()

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


def signature_ok(secret: str, received: Received) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), received.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, received.headers["x-gaas-signature"])


class SmtpSink:
    """aiosmtpd in this process: every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[Any]:
        return [m for m in self.messages if m["To"] == address]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def worker_settings(**overrides: Any) -> Settings:
    return get_settings().model_copy(update=overrides)


def make_worker(database: Any, clock: Clock | None = None, **overrides: Any) -> Worker:
    return Worker(database.factory, worker_settings(**overrides), clock=clock or Clock(), concurrency=1)
