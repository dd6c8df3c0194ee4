"""Scrape-time figures of the incident module for /metrics."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.orm import Session


def sla_metrics(session: Session) -> list[Metric]:
    breached = GaugeMetricFamily("gaas_incidents_sla_breached_open", "Open incidents past their SLA, per domain.",
                                 labels=["domain"])
    for row in session.execute(text(
            "SELECT domain, count(*) AS n FROM gaas_incident_mgmt.incidents WHERE status IN ('new', 'in_progress') "
            "AND sla_breached AND deleted_at IS NULL GROUP BY domain")):
        breached.add_metric([row.domain], row.n)
    return [breached]
