"""Standard-change templates and change windows: what change management prepares before changes
come. Part of the changes module."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gaas.catalog import service as catalog
from gaas.changes.models import ChangeTemplate, ChangeWindow, WindowKind
from gaas.changes.schemas import TemplateCreate, TemplateUpdate, WindowCreate, WindowUpdate
from gaas.core.context import Actor
from gaas.core.errors import Forbidden, NotFound, ValidationProblem
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import where_equal, where_viewable
from gaas.core.records import apply_patch, restore, soft_delete, stamp_created
from gaas.iam import service as iam
from gaas.iam.service import require as _require

MANAGE = "change.approve"  # change managers keep the standard-change catalogue and the windows
TEMPLATE_SORTS = (SortKey("name", ChangeTemplate.name), SortKey("created_at", ChangeTemplate.created_at))
WINDOW_SORTS = (SortKey("start_at", ChangeWindow.start_at), SortKey("name", ChangeWindow.name))


def _check_service(db: Session, actor: Actor, domain: str, service_id: uuid.UUID | None) -> None:
    if service_id is not None and catalog.service_exists(db, actor, service_id, domain=domain) is None:
        raise ValidationProblem.field("service_id", f"no such service in domain '{domain}'", "unknown_service")


# ---- templates -------------------------------------------------------------------------------------

def get_template(db: Session, actor: Actor, template_id: uuid.UUID) -> ChangeTemplate:
    template = db.get(ChangeTemplate, template_id)
    if template is None or not actor.can("change.view", template.domain):
        raise NotFound(f"No change template {template_id}.")
    return template


def list_templates(db: Session, actor: Actor, *, domain: str | None, active: bool | None, include_deleted: bool,
                   sort: str | None, cursor: str | None, limit: int) -> tuple[list[ChangeTemplate], str | None]:
    if not actor.can_anywhere("change.view"):
        raise Forbidden("Listing templates needs the 'change.view' permission.", permission="change.view")
    stmt = where_equal(select(ChangeTemplate), (ChangeTemplate.domain, domain), (ChangeTemplate.active, active))
    stmt = where_viewable(stmt, actor, "change.view", ChangeTemplate.domain)
    if not include_deleted:
        stmt = stmt.where(ChangeTemplate.deleted_at.is_(None))
    return paginate(stmt, id_column=ChangeTemplate.id, sort_keys=TEMPLATE_SORTS, sort=sort, cursor=cursor,
                    limit=limit, execute=db.scalars)


def create_template(db: Session, actor: Actor, data: TemplateCreate) -> ChangeTemplate:
    _require(actor, MANAGE, data.domain)
    iam.require_active_domain(db, data.domain)
    _check_service(db, actor, data.domain, data.service_id)
    template = ChangeTemplate(**data.model_dump())
    stamp_created(template, actor)
    db.add(template)
    db.flush()
    return template


def update_template(db: Session, actor: Actor, template_id: uuid.UUID, data: TemplateUpdate,
                    if_match: int | None) -> ChangeTemplate:
    """Changes that already follow the template keep the plans they inherited."""
    template = get_template(db, actor, template_id)
    if template.deleted_at is not None:
        raise NotFound(f"No change template {template_id}.")
    _require(actor, MANAGE, template.domain)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "service_id" in changes:
        _check_service(db, actor, template.domain, changes["service_id"])
    apply_patch(template, actor, changes, header_version=if_match, body_version=data.version)
    db.flush()
    return template


def delete_template(db: Session, actor: Actor, template_id: uuid.UUID, if_match: int | None) -> ChangeTemplate:
    template = get_template(db, actor, template_id)
    _require(actor, MANAGE, template.domain)
    soft_delete(template, actor, header_version=if_match)
    db.flush()
    return template


def restore_template(db: Session, actor: Actor, template_id: uuid.UUID) -> ChangeTemplate:
    template = get_template(db, actor, template_id)
    _require(actor, MANAGE, template.domain)
    restore(template, actor)
    db.flush()
    return template


def usable_template(db: Session, actor: Actor, template_id: uuid.UUID, domain: str) -> ChangeTemplate:
    """For standard changes: an active template of the change's domain."""
    template = db.get(ChangeTemplate, template_id)
    if template is None or template.deleted_at is not None or template.domain != domain \
            or not actor.can("change.view", domain):
        raise ValidationProblem.field("template_id", f"no such standard-change template in domain '{domain}'",
                                      "unknown_template")
    if not template.active:
        raise ValidationProblem.field("template_id", f"template '{template.name}' is retired", "inactive_template")
    return template


# ---- windows ---------------------------------------------------------------------------------------

def get_window(db: Session, actor: Actor, window_id: uuid.UUID) -> ChangeWindow:
    window = db.get(ChangeWindow, window_id)
    if window is None or not actor.can("change.view", window.domain):
        raise NotFound(f"No change window {window_id}.")
    return window


def list_windows(db: Session, actor: Actor, *, domain: str | None, kind: WindowKind | None,
                 service_id: uuid.UUID | None, include_deleted: bool, sort: str | None, cursor: str | None,
                 limit: int) -> tuple[list[ChangeWindow], str | None]:
    if not actor.can_anywhere("change.view"):
        raise Forbidden("Listing change windows needs the 'change.view' permission.", permission="change.view")
    stmt = where_equal(select(ChangeWindow), (ChangeWindow.domain, domain), (ChangeWindow.kind, kind),
                       (ChangeWindow.service_id, service_id))
    stmt = where_viewable(stmt, actor, "change.view", ChangeWindow.domain)
    if not include_deleted:
        stmt = stmt.where(ChangeWindow.deleted_at.is_(None))
    return paginate(stmt, id_column=ChangeWindow.id, sort_keys=WINDOW_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def _check_window(values: dict[str, Any]) -> None:
    start, end = values["start_at"], values["end_at"]
    if end <= start:
        raise ValidationProblem.field("end_at", "must be after start_at", "range")
    step = {"daily": 1, "weekly": 7}.get(str(values["recurrence"]))
    if step and (end - start).total_seconds() > step * 86400:
        raise ValidationProblem.field("end_at", f"a {values['recurrence']} window lasts at most {step} day(s)",
                                      "range")
    until = values.get("recurrence_until")
    if until is not None and until < start.date():
        raise ValidationProblem.field("recurrence_until", "must not be before start_at", "range")


def _aware(value: datetime, field: str) -> None:
    if value.tzinfo is None:
        raise ValidationProblem.field(field, "give the time zone (e.g. 2026-06-01T22:00:00Z)", "naive_datetime")


def create_window(db: Session, actor: Actor, data: WindowCreate) -> ChangeWindow:
    _require(actor, MANAGE, data.domain)
    iam.require_active_domain(db, data.domain)
    _aware(data.start_at, "start_at")
    _aware(data.end_at, "end_at")
    values = data.model_dump()
    _check_window(values)
    _check_service(db, actor, data.domain, data.service_id)
    window = ChangeWindow(**{**values, "recurrence": str(data.recurrence)})
    stamp_created(window, actor)
    db.add(window)
    db.flush()
    return window


def update_window(db: Session, actor: Actor, window_id: uuid.UUID, data: WindowUpdate,
                  if_match: int | None) -> ChangeWindow:
    window = get_window(db, actor, window_id)
    if window.deleted_at is not None:
        raise NotFound(f"No change window {window_id}.")
    _require(actor, MANAGE, window.domain)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    for field in ("start_at", "end_at"):
        if field in changes:
            _aware(changes[field], field)
    if "recurrence" in changes:
        changes["recurrence"] = str(changes["recurrence"])
    current = {"start_at": window.start_at, "end_at": window.end_at, "recurrence": window.recurrence,
               "recurrence_until": window.recurrence_until}
    _check_window({**current, **changes})
    if "service_id" in changes:
        _check_service(db, actor, window.domain, changes["service_id"])
    apply_patch(window, actor, changes, header_version=if_match, body_version=data.version)
    db.flush()
    return window


def delete_window(db: Session, actor: Actor, window_id: uuid.UUID, if_match: int | None) -> ChangeWindow:
    window = get_window(db, actor, window_id)
    _require(actor, MANAGE, window.domain)
    soft_delete(window, actor, header_version=if_match)
    db.flush()
    return window


def restore_window(db: Session, actor: Actor, window_id: uuid.UUID) -> ChangeWindow:
    window = get_window(db, actor, window_id)
    _require(actor, MANAGE, window.domain)
    restore(window, actor)
    db.flush()
    return window
