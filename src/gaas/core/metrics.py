"""Prometheus metrics at /metrics: request latency by route and status, database pool use, and
figures sampled from the database at scrape time (outbox depth and lag; modules add theirs with
`register_sampler`). One registry per application; `GAAS_METRICS_TOKEN`, when set, is required
as a bearer token (the figures name domains)."""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gaas.metrics")
Sampler = Callable[[Session], Iterable[Metric]]
_SAMPLERS: list[Sampler] = []
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def register_sampler(sampler: Sampler) -> Sampler:
    """A function that reads figures at scrape time, in a read-only system transaction."""
    if sampler not in _SAMPLERS:
        _SAMPLERS.append(sampler)
    return sampler


class Metrics:
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "gaas_http_request_duration_seconds", "HTTP request latency by route template and status.",
            ["method", "route", "status"], buckets=BUCKETS, registry=self.registry)
        self.database = _DatabaseCollector(factory)
        self.registry.register(self.database)

    def render(self) -> bytes:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        # Several API processes (`gaas serve --workers N`): their request figures are summed from
        # the shared directory; pool and database figures are this process's and the database's.
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        combined.register(self.database)
        return generate_latest(combined)


class _DatabaseCollector(Collector):
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        pool = self.factory.kw["bind"].pool
        in_use = GaugeMetricFamily("gaas_db_pool_connections", "Database pool connections by state.",
                                   labels=["state"])
        for state, count in (("in_use", pool.checkedout()), ("idle", pool.checkedin()),
                             ("overflow", max(pool.overflow(), 0))):
            in_use.add_metric([state], count)
        yield in_use
        yield from self._sampled()

    def _sampled(self) -> Iterator[Metric]:
        from gaas.core.db import set_context
        from gaas.iam.service import system_actor

        up = GaugeMetricFamily("gaas_db_up", "1 when the database answered this scrape.")
        try:
            with self.factory() as session:
                session.connection(execution_options={"postgresql_readonly": True})
                set_context(session, system_actor())
                metrics = [metric for sampler in _SAMPLERS for metric in sampler(session)]
                session.rollback()
        except Exception as exc:  # a scrape must still answer when the database does not
            log.warning("metrics sampling failed: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics


class MetricsMiddleware:
    """Times every HTTP request by its route template (never the raw path: ids would explode
    the label set); unmatched paths are one label."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.request_seconds.labels(scope.get("method", ""), route, str(status)).observe(
                time.perf_counter() - started)


def metrics_endpoint(request: Request) -> Response:
    from gaas.core.errors import problem_response
    from gaas.core.settings import get_settings

    token = get_settings().metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return problem_response(request, 401, "unauthenticated", "Authentication required",
                                    "Send 'Authorization: Bearer <GAAS_METRICS_TOKEN>'.",
                                    headers={"WWW-Authenticate": "Bearer"})
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
