"""Passwords (bcrypt) and API tokens (prefix.key.secret, stored as a peppered HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import bcrypt

from gaas.core.errors import ValidationProblem
from gaas.core.settings import get_settings

TOKEN_PREFIX = "gaas"
BCRYPT_MAX_BYTES = 72

# A valid hash to compare against when the user does not exist, so timing does not reveal it.
_DUMMY_HASH: bytes | None = None


MIN_PASSWORD_SCORE = 3  # zxcvbn: 3 means at least 10^8 guesses, "safely unguessable" online


def check_password_policy(password: str, *, field: str, personal: list[str]) -> None:
    """Length is checked by the schemas (12 to 72 bytes); here: not a common or breached-list
    password, not built from the user's own name or e-mail, not guessable (zxcvbn's estimate)."""
    from zxcvbn import zxcvbn

    inputs = [part for value in personal if value for part in (value, *value.replace("@", " ").split())]
    verdict = zxcvbn(password[:100], user_inputs=inputs)
    if verdict["score"] < MIN_PASSWORD_SCORE:
        feedback = verdict["feedback"]
        reason = feedback.get("warning") or "is too easy to guess"
        hint = " ".join(feedback.get("suggestions") or ["Use a longer phrase of unrelated words."])
        raise ValidationProblem.field(field, f"{reason.rstrip('.')}. {hint}", "weak_password")


def hash_password(password: str) -> str:
    raw = password.encode()
    if len(raw) > BCRYPT_MAX_BYTES:
        raise ValidationProblem.field("password", f"must be at most {BCRYPT_MAX_BYTES} bytes in UTF-8")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=get_settings().bcrypt_rounds)).decode()


def verify_password(password: str, password_hash: str | None) -> bool:
    global _DUMMY_HASH
    raw = password.encode()[:BCRYPT_MAX_BYTES]
    if not password_hash:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds=get_settings().bcrypt_rounds))
        bcrypt.checkpw(raw, _DUMMY_HASH)
        return False
    try:
        return bcrypt.checkpw(raw, password_hash.encode())
    except ValueError:
        return False


@dataclass(frozen=True)
class NewToken:
    key: str
    secret: str

    @property
    def text(self) -> str:
        return f"{TOKEN_PREFIX}.{self.key}.{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def new_token() -> NewToken:
    return NewToken(key=secrets.token_hex(8), secret=secrets.token_urlsafe(32))


def hash_secret(secret: str) -> str:
    pepper = get_settings().token_pepper.encode()
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def parse_token(text: str) -> tuple[str, str] | None:
    """'gaas.<key>.<secret>' -> (key, secret); anything else -> None."""
    parts = text.strip().split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2] or len(parts[1]) > 32:
        return None
    return parts[1], parts[2]
