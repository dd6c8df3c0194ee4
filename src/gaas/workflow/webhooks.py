"""Webhooks: subscriptions of a URL to event types (with an optional condition), signed bodies,
at-least-once delivery with an idempotency key, exponential backoff, a delivery log, and
automatic disabling after repeated failures.

A webhook sees only events of domains its owner may see (checked when an event is fanned out, with
the owner's current rights), and only its own domain's when it has one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from gaas.core.context import Actor
from gaas.core.errors import Forbidden, NotFound, ValidationProblem
from gaas.core.events import emit
from gaas.core.jsontext import dumps
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import where_viewable
from gaas.core.records import apply_patch, restore, soft_delete, stamp_created
from gaas.core.settings import Settings
from gaas.iam import service as iam
from gaas.workflow import events
from gaas.workflow.expressions import check_condition, evaluate
from gaas.workflow.models import Webhook, WebhookDelivery
from gaas.workflow.notify import notify_users
from gaas.workflow.schemas import WebhookCreate, WebhookUpdate
from gaas.workflow.service import matches_event_type
from gaas.workflow.templates import TEMPLATES

SIGNATURE_HEADER = "X-GaaS-Signature"
WEBHOOK_SORTS = (SortKey("name", Webhook.name), SortKey("created_at", Webhook.created_at))
DELIVERY_SORTS = (SortKey("created_at", WebhookDelivery.created_at),)


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`; receivers compare with hmac.compare_digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# ---- the API ---------------------------------------------------------------------------------------

def _check_condition(condition: str | None) -> None:
    if condition is not None and (reason := check_condition(condition)):
        raise ValidationProblem.field("condition", f"not a valid expression: {reason}", "expression")


def get_webhook(db: Session, actor: Actor, webhook_id: uuid.UUID, *, include_deleted: bool = True) -> Webhook:
    webhook = db.get(Webhook, webhook_id)
    if (webhook is None or (webhook.deleted_at is not None and not include_deleted)
            or not actor.can("webhook.manage", webhook.domain)):
        raise NotFound(f"No webhook {webhook_id}.")
    return webhook


def list_webhooks(db: Session, actor: Actor, *, domain: str | None, active: bool | None, include_deleted: bool,
                  sort: str | None, cursor: str | None, limit: int) -> tuple[list[Webhook], str | None]:
    if not actor.can_anywhere("webhook.manage"):
        raise Forbidden("Webhooks need the 'webhook.manage' permission.", permission="webhook.manage")
    stmt: Select = select(Webhook)
    stmt = where_viewable(stmt, actor, "webhook.manage", Webhook.domain)
    if not include_deleted:
        stmt = stmt.where(Webhook.deleted_at.is_(None))
    if domain is not None:
        stmt = stmt.where(Webhook.domain == domain)
    if active is not None:
        stmt = stmt.where(Webhook.active.is_(active))
    return paginate(stmt, id_column=Webhook.id, sort_keys=WEBHOOK_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def create_webhook(db: Session, actor: Actor, data: WebhookCreate) -> tuple[Webhook, str]:
    iam.require(actor, "webhook.manage", data.domain)
    if data.domain is not None:
        iam.require_active_domain(db, data.domain)
    _check_condition(data.condition)
    secret = data.secret or secrets.token_urlsafe(32)
    webhook = Webhook(domain=data.domain, name=data.name, url=data.url, secret=secret,
                      event_types=list(dict.fromkeys(data.event_types)), condition=data.condition,
                      active=data.active, owner_id=actor.user_id)
    stamp_created(webhook, actor)
    db.add(webhook)
    db.flush()
    return webhook, secret


def update_webhook(db: Session, actor: Actor, webhook_id: uuid.UUID, data: WebhookUpdate,
                   if_match: int | None) -> Webhook:
    webhook = get_webhook(db, actor, webhook_id, include_deleted=False)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "condition" in changes:
        _check_condition(changes["condition"])
    if "event_types" in changes:
        changes["event_types"] = list(dict.fromkeys(changes["event_types"]))
    if changes.get("active") and not webhook.active:
        # Re-enabled: a fresh start, and the deliveries it missed go out again.
        changes.update(consecutive_failures=0, disabled_at=None, disabled_reason=None)
    apply_patch(webhook, actor, changes, header_version=if_match, body_version=data.version)
    db.flush()
    return webhook


def delete_webhook(db: Session, actor: Actor, webhook_id: uuid.UUID, if_match: int | None) -> Webhook:
    webhook = get_webhook(db, actor, webhook_id, include_deleted=False)
    soft_delete(webhook, actor, header_version=if_match)
    db.flush()
    return webhook


def restore_webhook(db: Session, actor: Actor, webhook_id: uuid.UUID) -> Webhook:
    webhook = get_webhook(db, actor, webhook_id)
    restore(webhook, actor)
    db.flush()
    return webhook


def list_deliveries(db: Session, actor: Actor, webhook_id: uuid.UUID, *, status: str | None, cursor: str | None,
                    limit: int) -> tuple[list[WebhookDelivery], str | None]:
    get_webhook(db, actor, webhook_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    return paginate(stmt, id_column=WebhookDelivery.id, sort_keys=DELIVERY_SORTS, sort="-created_at",
                    cursor=cursor, limit=limit, execute=db.scalars)


# ---- fan-out (the worker) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Subscriber:
    id: uuid.UUID
    domain: str | None
    event_types: tuple[str, ...]
    condition: str | None
    # None: every domain (a global owner); else the domains the owner may see right now
    owner_domains: frozenset[str] | None

    def wants(self, event_type: str, domain: str | None) -> bool:
        if not any(matches_event_type(p, event_type) for p in self.event_types):
            return False
        if self.domain is not None and domain != self.domain:
            return False
        if self.owner_domains is None:
            return True
        return domain is not None and domain in self.owner_domains


_WEBHOOKS = text("""
    SELECT w.id, w.domain, w.event_types, w.condition, w.owner_id FROM gaas_workflow.webhooks w
    WHERE w.active AND w.deleted_at IS NULL""")


def subscribers(db: Session) -> list[Subscriber]:
    """Active webhooks with their owners' current sight (the worker reads as the platform); a
    webhook whose owner is no longer active has no subscriber."""
    from gaas.iam import service as iam

    hooks = db.execute(_WEBHOOKS).all()
    sight = iam.sight_of(db, sorted({h.owner_id for h in hooks}))
    return [Subscriber(id=h.id, domain=h.domain, event_types=tuple(h.event_types), condition=h.condition,
                       owner_domains=sight[h.owner_id]) for h in hooks if h.owner_id in sight]


_INSERT_DELIVERIES = text("""
    INSERT INTO gaas_workflow.webhook_deliveries (webhook_id, domain, event_id, idempotency_key, event_type, body,
                                                  next_attempt_at)
    SELECT d.webhook_id, w.domain, d.event_id, d.idempotency_key, d.event_type, d.body, :now
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
         AS d(webhook_id uuid, event_id uuid, idempotency_key text, event_type text, body jsonb)
    JOIN gaas_workflow.webhooks w ON w.id = d.webhook_id
    ON CONFLICT (webhook_id, idempotency_key) DO NOTHING""")


def queue_deliveries(db: Session, rows: list[dict[str, Any]], now: datetime) -> None:
    if rows:
        db.execute(_INSERT_DELIVERIES, {"rows": dumps(rows), "now": now})


def delivery_rows(subs: list[Subscriber], event: dict[str, Any], namespace: dict[str, Any]) -> list[dict[str, Any]]:
    body = {"id": event["key"], "event_id": event["event_id"], "event_type": event["event_type"],
            "occurred_at": event["occurred_at"], "domain": event["domain"], "entity_type": event["entity_type"],
            "entity_id": event["entity_id"], "actor_id": event["actor_id"], "payload": event["payload"]}
    return [{"webhook_id": s.id, "event_id": event["event_id"], "idempotency_key": event["key"],
             "event_type": event["event_type"], "body": body}
            for s in subs if s.wants(event["event_type"], event["domain"]) and evaluate(s.condition, namespace)]


# ---- delivery (the worker) ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float
    max_attempts: int
    base_delay: float
    max_delay: float
    disable_after: int
    blocked: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        blocked = tuple(ipaddress.ip_network(n.strip()) for n in settings.webhook_blocked_networks.split(",")
                        if n.strip())
        return cls(settings.webhook_timeout_seconds, settings.webhook_max_attempts,
                   settings.webhook_retry_base_seconds, settings.webhook_retry_max_seconds,
                   settings.webhook_disable_after, blocked)

    def delay(self, attempts: int) -> float:
        return min(self.base_delay * 2 ** (attempts - 1), self.max_delay)


def _blocked(url: str, policy: DeliveryPolicy) -> str | None:
    if not policy.blocked:
        return None
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        return f"cannot resolve {host}: {exc}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if any(ip in net for net in policy.blocked):
            return f"{host} resolves to {ip}, in a blocked network"
    return None


_CLAIM_DELIVERIES = text("""
    SELECT d.id FROM gaas_workflow.webhook_deliveries d
    JOIN gaas_workflow.webhooks w ON w.id = d.webhook_id AND w.active AND w.deleted_at IS NULL
    WHERE d.status = 'pending' AND d.next_attempt_at <= :now
    ORDER BY d.next_attempt_at LIMIT :limit FOR UPDATE OF d SKIP LOCKED""")
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="gaas-webhook")


@dataclass(frozen=True)
class _Attempt:
    status_code: int | None
    error: str | None
    ms: float


def _post(client: httpx.Client, policy: DeliveryPolicy, url: str, secret: str, delivery: WebhookDelivery
          ) -> _Attempt:
    body = dumps(delivery.body).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
               "Idempotency-Key": delivery.idempotency_key, "X-GaaS-Event": delivery.event_type,
               "X-GaaS-Delivery": str(delivery.id), "User-Agent": "GaaS-Webhooks/1"}
    started = time.perf_counter()
    status_code, error = None, _blocked(url, policy)
    if error is None:
        try:
            response = client.post(url, content=body, headers=headers, timeout=policy.timeout)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    return _Attempt(status_code, error, round((time.perf_counter() - started) * 1000, 1))


def deliver_due(db: Session, client: httpx.Client, policy: DeliveryPolicy, now: datetime, limit: int = 32) -> int:
    """POST due deliveries (in parallel), holding their row locks until the results are recorded in
    this transaction. A crash before the commit leaves them pending, and another worker sends them
    again with the same idempotency keys."""
    ids = list(db.scalars(_CLAIM_DELIVERIES, {"now": now, "limit": limit}))
    if not ids:
        return 0
    deliveries = list(db.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids))))
    hooks = {w.id: w for w in db.scalars(select(Webhook).where(Webhook.id.in_({d.webhook_id for d in deliveries})))}
    futures = [_POOL.submit(_post, client, policy, hooks[d.webhook_id].url, hooks[d.webhook_id].secret, d)
               for d in deliveries]
    for delivery, future in zip(deliveries, futures, strict=True):
        _record(db, hooks[delivery.webhook_id], delivery, future.result(), policy, now)
    db.flush()
    return len(deliveries)


def _record(db: Session, webhook: Webhook, delivery: WebhookDelivery, attempt: _Attempt, policy: DeliveryPolicy,
            now: datetime) -> None:
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.response_status = attempt.status_code
    delivery.attempt_log = [*delivery.attempt_log, {
        "attempt": delivery.attempts, "at": now.isoformat(), "status": attempt.status_code, "error": attempt.error,
        "ms": attempt.ms}][-20:]
    if attempt.error is None:
        delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, None
        if webhook.consecutive_failures:
            db.execute(text("UPDATE gaas_workflow.webhooks SET consecutive_failures = 0 WHERE id = :id"),
                       {"id": webhook.id})
            # What the database now holds, without the ORM writing the row again (which would bump
            # the webhook's version under an administrator editing it).
            set_committed_value(webhook, "consecutive_failures", 0)
        return
    delivery.last_error = attempt.error
    if delivery.attempts >= policy.max_attempts:
        delivery.status = "failed"
    else:
        delivery.next_attempt_at = now + timedelta(seconds=policy.delay(delivery.attempts))
    _count_failure(db, webhook, attempt.error, policy, now)


def _count_failure(db: Session, webhook: Webhook, error: str, policy: DeliveryPolicy, now: datetime) -> None:
    failures = db.scalar(text("UPDATE gaas_workflow.webhooks SET consecutive_failures = consecutive_failures + 1 "
                              "WHERE id = :id RETURNING consecutive_failures"), {"id": webhook.id})
    db.refresh(webhook)
    if failures is None or failures < policy.disable_after or not webhook.active:
        return
    # Disabled like any other edit (audited, versioned); its owner is told.
    webhook.active, webhook.disabled_at = False, now
    webhook.disabled_reason = f"{failures} failed deliveries in a row; last: {error}"[:2000]
    webhook.updated_by = iam.system_actor().user_id
    db.flush()
    emit(db, events.WEBHOOK_DISABLED, domain=webhook.domain, entity_type="webhook", entity_id=webhook.id,
         payload={"name": webhook.name, "url": webhook.url, "failures": failures, "last_error": error})
    from gaas.workflow.expressions import render

    subject, body = TEMPLATES["webhook_disabled"]
    namespace = {"record": {"name": webhook.name, "url": webhook.url},
                 "variables": {"failures": failures, "last_error": error}}
    notify_users(db, [webhook.owner_id], render(subject, namespace), render(body, namespace), domain=webhook.domain,
                 context_type="webhook", context_id=webhook.id)
