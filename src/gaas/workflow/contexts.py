"""The records a workflow runs for, and how the engine reaches them without knowing their modules.

A module registers its record type once (`register_context_type`): how to load a record, its
fields for templates and conditions, who its assignee and requester are, and how to write one of
its fields *through its own service* (so a `set_field` step obeys the same rules, audit and
events as the API). It may also register an outcome handler (`register_outcome_handler`), called
in the transaction of the instance's final step, e.g. to move a change to approved or rejected.

Service, incident and change are registered here, lazily, from their modules' service functions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.jsontext import jsonable


@dataclass(frozen=True)
class ContextType:
    """How the engine reads and writes one kind of record."""

    # (db, actor, id) -> the record; raises gaas.core.errors.NotFound when it does not exist
    load: Callable[[Session, Actor, uuid.UUID], Any]
    # (db, actor, record, field, value): the module's own update, with all its rules
    set_field: Callable[[Session, Actor, Any, str, Any], None] | None = None
    assignee_field: str | None = "assigned_to"
    requester_field: str | None = "created_by"


@dataclass(frozen=True)
class Outcome:
    """What the owning module learns when an instance ends."""

    instance_id: uuid.UUID
    definition_name: str
    context_type: str | None
    context_id: uuid.UUID | None
    outcome: str  # approved, rejected, completed, cancelled, failed
    comment: str | None
    decided_by: uuid.UUID | None


OutcomeHandler = Callable[[Session, Actor, Outcome], None]

_CONTEXT_TYPES: dict[str, ContextType] = {}
_OUTCOME_HANDLERS: dict[str, list[OutcomeHandler]] = {}
_builtins_loaded = False


def register_context_type(name: str, context_type: ContextType) -> None:
    _CONTEXT_TYPES[name] = context_type


def register_outcome_handler(context_type: str, handler: OutcomeHandler) -> None:
    """`handler(db, actor, outcome)` runs in the transaction that ends an instance for a record of
    `context_type`, acting as the platform; an exception rolls that transaction back."""
    handlers = _OUTCOME_HANDLERS.setdefault(context_type, [])
    if handler not in handlers:
        handlers.append(handler)


def context_type(name: str | None) -> ContextType | None:
    _load_builtins()
    return _CONTEXT_TYPES.get(name) if name else None


def outcome_handlers(name: str | None) -> list[OutcomeHandler]:
    _load_builtins()
    return list(_OUTCOME_HANDLERS.get(name, [])) if name else []


def record_fields(record: Any) -> dict[str, Any]:
    """A record's column values as JSON-friendly data, for templates and conditions."""
    if record is None:
        return {}
    if isinstance(record, dict):
        return record
    mapper = inspect(record).mapper
    return {attr.key: jsonable(getattr(record, attr.key)) for attr in mapper.column_attrs}


def _update_through(update: Callable[..., Any], schema: type) -> Callable[[Session, Actor, Any, str, Any], None]:
    """A set_field that calls the module's update with a one-field body at the record's version."""
    def set_field(db: Session, actor: Actor, record: Any, field: str, value: Any) -> None:
        update(db, actor, record.id, schema.model_validate({field: value, "version": record.version}), None)
    return set_field


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    from gaas.catalog import service as catalog
    from gaas.catalog.schemas import ServiceUpdate
    from gaas.changes import service as changes
    from gaas.changes.schemas import ChangeUpdate
    from gaas.incidents import service as incidents
    from gaas.incidents.schemas import IncidentUpdate

    _CONTEXT_TYPES.setdefault("service", ContextType(
        load=lambda db, actor, id_: catalog.get_service(db, actor, id_, include_deleted=False),
        set_field=_update_through(catalog.update_service, ServiceUpdate),
        assignee_field="manager_id", requester_field="owner_id"))
    _CONTEXT_TYPES.setdefault("incident", ContextType(
        load=lambda db, actor, id_: incidents.get_incident(db, actor, id_, include_deleted=False),
        set_field=_update_through(incidents.update_incident, IncidentUpdate)))
    _CONTEXT_TYPES.setdefault("change", ContextType(
        load=lambda db, actor, id_: changes.get_change(db, actor, id_, include_deleted=False),
        set_field=_update_through(changes.update_change, ChangeUpdate),
        requester_field="requested_by"))
