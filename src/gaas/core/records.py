"""Operations every audited record shares: stamping who changed it, applying a validated
patch, optimistic locking, soft delete and restore."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import delete, inspect, select
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.errors import Conflict, Forbidden, StaleVersion
from gaas.core.models import AuditedMixin

T = TypeVar("T")


def expected_version(header_version: int | None, body_version: int | None, current: int) -> None:
    """Optimistic locking: the client must present the version it read, and it must be current."""
    presented = header_version if header_version is not None else body_version
    if presented is None:
        raise StaleVersion("Send the version you read (If-Match header or 'version' field).",
                           errors=[{"field": "version", "message": "required", "type": "missing"}],
                           current_version=current)
    if presented != current:
        raise StaleVersion(f"You edited version {presented}; the record is now at version {current}.",
                           errors=[{"field": "version", "message": "stale", "type": "stale"}],
                           current_version=current)


def stamp_created(obj: AuditedMixin, actor: Actor) -> None:
    obj.created_by = actor.user_id
    obj.updated_by = actor.user_id


def apply_patch(obj: AuditedMixin, actor: Actor, changes: dict[str, Any], *,
                header_version: int | None, body_version: int | None) -> None:
    """Check the presented version, then set only the given fields."""
    expected_version(header_version, body_version, obj.version)
    for key, value in changes.items():
        setattr(obj, key, value)
    obj.updated_by = actor.user_id


def soft_delete(obj: AuditedMixin, actor: Actor, *, header_version: int | None = None) -> None:
    if obj.deleted_at is not None:
        raise Conflict("The record is already deleted.")
    if header_version is not None:
        expected_version(header_version, None, obj.version)
    obj.deleted_at = datetime.now(UTC)
    obj.updated_by = actor.user_id


def restore(obj: AuditedMixin, actor: Actor) -> None:
    if obj.deleted_at is None:
        raise Conflict("The record is not deleted.")
    obj.deleted_at = None
    obj.updated_by = actor.user_id


def delete_announced(db: Session, obj: Any, actor: Actor, *, if_match: int | None, event_type: str,
                     entity_type: str) -> None:
    """Soft-delete a numbered record and announce it (`{"number": …}`) in the same transaction."""
    soft_delete(obj, actor, header_version=if_match)
    _announce(db, obj, event_type, entity_type)


def restore_announced(db: Session, obj: Any, actor: Actor, *, event_type: str, entity_type: str) -> None:
    restore(obj, actor)
    _announce(db, obj, event_type, entity_type)


def _announce(db: Session, obj: Any, event_type: str, entity_type: str) -> None:
    from gaas.core.events import emit

    db.flush()
    emit(db, event_type, domain=obj.domain, entity_type=entity_type, entity_id=obj.id, payload={"number": obj.number})


def hard_delete(db: Session, obj: Any) -> None:
    """Delete one association row (a role assignment, a relationship) and make sure it went:
    row-level security turns a forbidden DELETE into "0 rows", which must not pass for success."""
    mapper = inspect(obj).mapper
    key = mapper.primary_key[0]
    removed = db.execute(delete(mapper.local_table).where(key == getattr(obj, key.key))).rowcount
    if removed != 1:
        raise Forbidden("The database refused to remove this for you.")
    db.expunge(obj)


def rows_by_id(db: Session, model: type[T], ids: Iterable[Any], keep: Callable[[T], bool]) -> dict[Any, T]:
    """For a module's "many at once" lookups: the rows with these ids, in one query, that `keep`
    accepts (live and visible to the caller), by id."""
    wanted = set(ids)
    if not wanted:
        return {}
    return {row.id: row for row in db.scalars(select(model).where(model.id.in_(wanted))) if keep(row)}
