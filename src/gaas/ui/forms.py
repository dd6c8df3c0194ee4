"""Forms: posted values into the API's own bodies, and the API's own errors next to each field.

A write runs inside a SAVEPOINT of the request's transaction: when the service refuses it, only
the write is undone; the page is then rendered again in the same transaction (the acting user's
context stays set) with the errors beside the fields they name.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from gaas.core.errors import Problem, StaleVersion

T = TypeVar("T")


@dataclass
class FormErrors:
    fields: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    status: int = 422
    stale: bool = False
    title: str = ""

    def __bool__(self) -> bool:
        return bool(self.fields or self.general or self.stale)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, []).append(message)

    def for_field(self, name: str) -> list[str]:
        return self.fields.get(name, [])


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)] or ["body"]
    return parts[0] if len(parts) == 1 else ".".join(parts)


def errors_from(exc: Exception) -> FormErrors:
    errors = FormErrors()
    if isinstance(exc, ValidationError):
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            message = err.get("msg", "invalid")
            if err.get("type") == "missing":
                message = "is required"
            errors.add(loc[0] if loc else "body", message.removeprefix("Value error, "))
        return errors
    if isinstance(exc, StaleDataError):
        errors.stale, errors.status = True, 409
        errors.general.append("Another transaction changed this record first.")
        return errors
    if isinstance(exc, IntegrityError):
        from gaas.core.errors import _integrity_problem  # the API's own naming of the field

        status, _, items = _integrity_problem(exc)
        errors.status = status
        for item in items:
            errors.add(item["field"], item["message"])
        return errors
    if isinstance(exc, Problem):
        errors.status, errors.title = exc.status, exc.title
        errors.stale = isinstance(exc, StaleVersion)
        named = False
        for item in exc.errors:
            name = str(item.get("field") or "")
            if name and name not in ("body", "version"):
                base = name.split(".")[0].split("[")[0]
                errors.add(base, item.get("message", "invalid"))
                named = True
        if not named or exc.status in (403, 404, 409):
            errors.general.append(exc.detail)
        return errors
    raise exc


def attempt(db: Session, action: Callable[[], T]) -> tuple[T | None, FormErrors | None]:
    """Run a service call in a savepoint; on a refusal, undo only it and return the errors."""
    try:
        with db.begin_nested():
            return action(), None
    except (ValidationError, Problem, IntegrityError, StaleDataError) as exc:
        return None, errors_from(exc)


def build(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    return model.model_validate(data)


# ---- reading posted values -------------------------------------------------------------------

def text(data: dict[str, Any], name: str) -> str | None:
    """A text field: blank is None."""
    value = data.get(name)
    if isinstance(value, list):
        value = value[-1]
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def values(data: dict[str, Any], *names: str, present_only: bool = False) -> dict[str, Any]:
    """The named text fields (blank -> None); with present_only, only those the form sent."""
    return {n: text(data, n) for n in names if not present_only or n in data}


def checkbox(data: dict[str, Any], name: str) -> bool:
    return data.get(name) in ("on", "true", "1", "yes")


def many(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in items if str(v).strip()]


def json_field(data: dict[str, Any], name: str, errors: FormErrors, default: Any = None) -> Any:
    raw = text(data, name)
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        errors.add(name, f"not valid JSON: {exc}")
        return default


def version(data: dict[str, Any]) -> int | None:
    raw = text(data, "version")
    return int(raw) if raw and raw.isdigit() else None


def maybe_uuid(value: str | None) -> uuid.UUID | str | None:
    """A UUID when it parses (else the text itself, which the body model then names as invalid)."""
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return value
