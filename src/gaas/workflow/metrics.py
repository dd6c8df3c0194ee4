"""Scrape-time figures of the workflow engine for /metrics: webhook deliveries waiting or given
up on, webhooks disabled after repeated failures, and how late each periodic worker job is."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.orm import Session


def workflow_metrics(session: Session) -> list[Metric]:
    deliveries = GaugeMetricFamily("gaas_webhook_deliveries", "Webhook deliveries not delivered, by status "
                                   "(pending: queued or backing off; failed: given up).", labels=["status"])
    for status in ("pending", "failed"):
        deliveries.add_metric([status], session.execute(text(
            "SELECT count(*) FROM gaas_workflow.webhook_deliveries WHERE status = :s"), {"s": status}).scalar_one())
    disabled = GaugeMetricFamily("gaas_webhooks_disabled", "Webhooks switched off after repeated failures.")
    disabled.add_metric([], session.execute(text(
        "SELECT count(*) FROM gaas_workflow.webhooks WHERE NOT active AND deleted_at IS NULL")).scalar_one())
    overdue = GaugeMetricFamily("gaas_worker_job_overdue_seconds", "How long each periodic worker job has been "
                                "due (0 when on time): a growing figure means no worker is running.", labels=["job"])
    for row in session.execute(text("SELECT name, greatest(extract(epoch FROM now() - next_run_at), 0) AS late "
                                    "FROM gaas_workflow.worker_jobs")):
        overdue.add_metric([row.name], float(row.late))
    return [deliveries, disabled, overdue]
