"""HTTP Basic authentication (for clients of the ServiceNow-compatible API, which send a user
name and password on every request), through the same checks as a password login: per-address
throttling, the account's lock and status, failed attempts counted towards a lockout and
audited (gaas_iam.record_login).

bcrypt on every request would cost a quarter of a second each; a successful check is therefore
remembered in this process for a few minutes, keyed by an HMAC of the login, the password and the
stored hash, so a changed password (or a reset) is never served from memory. The account's status,
lock and the address throttle are read from the database on every request, and the first
successful check of a password is recorded as a login (audited, failures reset).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from gaas.core.context import Actor, RequestInfo
from gaas.core.settings import get_settings
from gaas.iam import security
from gaas.iam.models import UserStatus
from gaas.iam.service import _address_throttled, _build_actor, note_login_failure, record_login

REMEMBER_SECONDS = 300
_MAX_REMEMBERED = 10_000
_remembered: dict[str, float] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class BasicResult:
    actor: Actor | None
    reason: str = ""
    throttled: bool = False
    locked: bool = False
    recorded: bool = False  # a login row was written: commit it even when refusing


def _key(login: str, password: str, password_hash: str) -> str:
    pepper = get_settings().token_pepper.encode()
    message = "\0".join((login.strip().lower(), password, password_hash)).encode()
    return hmac.new(pepper, message, hashlib.sha256).hexdigest()


def _remembered_ok(key: str) -> bool:
    with _lock:
        expiry = _remembered.get(key)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            _remembered.pop(key, None)
            return False
        return True


def _remember(key: str) -> None:
    with _lock:
        if len(_remembered) >= _MAX_REMEMBERED:
            now = time.monotonic()
            for stale in [k for k, v in _remembered.items() if v < now] or list(_remembered)[: _MAX_REMEMBERED // 10]:
                _remembered.pop(stale, None)
        _remembered[key] = time.monotonic() + REMEMBER_SECONDS


def forget_all() -> None:
    with _lock:
        _remembered.clear()


def actor_from_password(db: Session, login: str, password: str, info: RequestInfo) -> BasicResult:
    """The acting user for a Basic-authenticated request, or why not. Refusals that count (a
    wrong password, an unknown user) are recorded like failed logins, and the caller must commit
    them before answering 401 (`recorded`)."""
    if _address_throttled(db, info):
        security.verify_password(password, None)
        return BasicResult(None, "too many failed logins from this address", throttled=True)
    row = db.execute(text("SELECT * FROM gaas_iam.auth_lookup(:login)"), {"login": login.strip()}).mappings().first()
    now = datetime.now(UTC)
    if row is not None and row["locked_until"] is not None and row["locked_until"] > now:
        return BasicResult(None, "account locked", locked=True)
    if row is not None and row["status"] != UserStatus.active.value:
        return BasicResult(None, f"account {row['status']}")
    key = _key(login, password, row["password_hash"] or "") if row is not None else ""
    if row is not None and row["password_hash"] and _remembered_ok(key):
        actor = _build_actor(db, row["id"], row["email"], row["domain"], read_only=False, info=info)
        return BasicResult(actor)
    ok = row is not None and security.verify_password(password, row["password_hash"])
    if row is None:
        security.verify_password(password, None)
    reason = None if ok else ("unknown user" if row is None else "wrong password")
    verdict = record_login(db, row["id"] if row else None, login, ok, True, reason, info)
    if not ok:
        note_login_failure(db, info)
    if not verdict["ok"]:
        return BasicResult(None, reason or "account locked", locked=verdict["locked_until"] is not None,
                           recorded=True)
    _remember(key)
    actor = _build_actor(db, row["id"], row["email"], row["domain"], read_only=False, info=info)
    return BasicResult(actor, recorded=True)
