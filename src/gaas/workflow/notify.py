"""Notifications: in-app (one row per recipient, read through /api/v1/notifications) and e-mail
(queued in the same transaction, sent by the worker over SMTP, retried with backoff; a message
that keeps failing ends `failed` with its last error, listed by /api/v1/email-messages)."""

from __future__ import annotations

import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import make_msgid

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.errors import NotFound
from gaas.core.ids import new_id
from gaas.core.pagination import SortKey, paginate
from gaas.core.settings import Settings, get_settings
from gaas.iam.models import User
from gaas.workflow.models import EmailMessage, Notification


def notify_users(db: Session, user_ids: list[uuid.UUID], subject: str, body: str, *, domain: str | None,
                 context_type: str | None = None, context_id: uuid.UUID | None = None,
                 instance_id: uuid.UUID | None = None, email: bool = True,
                 settings: Settings | None = None) -> list[Notification]:
    """One in-app notification per (distinct, active) user and, when SMTP is configured, one
    e-mail each. Runs as the platform: the rows belong to other users."""
    settings = settings or get_settings()
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return []
    users = db.execute(select(User.id, User.email).where(User.id.in_(ids), User.status == "active",
                                                         User.deleted_at.is_(None))).all()
    subject = " ".join(subject.split())[:300] or "(no subject)"
    made = [Notification(id=new_id(), user_id=user_id, domain=domain, subject=subject, body=body,
                         context_type=context_type, context_id=context_id, instance_id=instance_id)
            for user_id, _ in users]
    db.add_all(made)
    db.flush()  # the e-mails refer to them
    if email and settings.smtp_host:
        db.add_all([EmailMessage(domain=domain, notification_id=note.id, to_address=address, subject=subject,
                                 body=body, message_id=make_msgid(domain="gaas"))
                    for note, (_, address) in zip(made, users, strict=True) if address])
        db.flush()
    return made


# ---- the API: one's own notifications ------------------------------------------------------------

NOTIFICATION_SORTS = (SortKey("created_at", Notification.created_at),)


def list_notifications(db: Session, actor: Actor, *, unread: bool = False, cursor: str | None = None,
                       limit: int = 50) -> tuple[list[Notification], str | None]:
    stmt = select(Notification).where(Notification.user_id == actor.user_id)
    if unread:
        stmt = stmt.where(Notification.read_at.is_(None))
    return paginate(stmt, id_column=Notification.id, sort_keys=NOTIFICATION_SORTS, sort="-created_at",
                    cursor=cursor, limit=limit, execute=db.scalars)


def mark_read(db: Session, actor: Actor, notification_id: uuid.UUID, now: datetime) -> Notification:
    note = db.get(Notification, notification_id)
    if note is None or note.user_id != actor.user_id:
        raise NotFound(f"No notification {notification_id}.")
    if note.read_at is None:
        note.read_at = now
        db.flush()
    return note


def mark_all_read(db: Session, actor: Actor, now: datetime) -> int:
    return db.execute(update(Notification).where(Notification.user_id == actor.user_id,
                                                 Notification.read_at.is_(None)).values(read_at=now)).rowcount


EMAIL_SORTS = (SortKey("created_at", EmailMessage.created_at),)


def list_emails(db: Session, actor: Actor, *, status: str | None, domain: str | None, cursor: str | None,
                limit: int) -> tuple[list[EmailMessage], str | None]:
    """For workflow managers: e-mails of their domains, e.g. the failed ones."""
    from gaas.iam import service as iam

    allowed = actor.domains_with("workflow.manage")
    if not actor.can_anywhere("workflow.manage"):
        iam.require(actor, "workflow.manage", domain)
    stmt = select(EmailMessage)
    if allowed is not None:
        stmt = stmt.where(EmailMessage.domain.in_(sorted(allowed)))
    if status:
        stmt = stmt.where(EmailMessage.status == status)
    if domain:
        stmt = stmt.where(EmailMessage.domain == domain)
    return paginate(stmt, id_column=EmailMessage.id, sort_keys=EMAIL_SORTS, sort="-created_at", cursor=cursor,
                    limit=limit, execute=db.scalars)


# ---- sending (the worker) ------------------------------------------------------------------------

@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: str
    username: str | None
    password: str | None
    sender: str
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        if not settings.smtp_host:
            return None
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_tls, settings.smtp_username,
                   settings.smtp_password, settings.smtp_from, settings.smtp_timeout_seconds)


def _send(config: SmtpConfig, message: EmailMessage) -> None:
    mime = MimeMessage()
    mime["From"] = config.sender
    mime["To"] = message.to_address
    mime["Subject"] = message.subject
    # The same Message-ID on every attempt: a mail system that got it twice can tell.
    mime["Message-ID"] = message.message_id
    mime.set_content(message.body)
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if config.tls == "ssl" else smtplib.SMTP
    kwargs = {"context": context} if config.tls == "ssl" else {}
    with smtp_class(config.host, config.port, timeout=config.timeout, **kwargs) as smtp:
        if config.tls == "starttls":
            smtp.starttls(context=context)
        if config.username:
            smtp.login(config.username, config.password or "")
        smtp.send_message(mime)


_CLAIM_EMAIL = text("""
    SELECT id FROM gaas_workflow.email_messages
    WHERE status = 'pending' AND next_attempt_at <= :now
    ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED""")


def send_due_email(db: Session, now: datetime, settings: Settings) -> int:
    """Send one due e-mail, holding its row lock until the result is recorded: a crash before
    the commit leaves it pending for another worker (at least once; the Message-ID repeats)."""
    config = SmtpConfig.from_settings(settings)
    if config is None:
        return 0
    email_id = db.scalar(_CLAIM_EMAIL, {"now": now})
    if email_id is None:
        return 0
    message = db.get(EmailMessage, email_id)
    assert message is not None
    message.attempts += 1
    try:
        _send(config, message)
    except (OSError, smtplib.SMTPException) as exc:
        message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if message.attempts >= settings.email_max_attempts:
            message.status = "failed"
        else:
            delay = settings.email_retry_base_seconds * 2 ** (message.attempts - 1)
            message.next_attempt_at = now + timedelta(seconds=delay)
    else:
        message.status = "sent"
        message.sent_at = now
        message.last_error = None
    db.flush()
    return 1
