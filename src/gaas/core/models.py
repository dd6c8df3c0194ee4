"""Declarative base and the base-table pattern every module's tables reuse."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, Enum, Integer, MetaData, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from gaas.core.ids import new_id

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def pg_enum(cls: type[enum.Enum], name: str, schema: str) -> Enum:
    """A PostgreSQL enum type created by the migrations, stored by value."""
    return Enum(cls, name=name, schema=schema, values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), uuid.UUID: UUID(as_uuid=True)}


class AuditedMixin:
    """id, soft delete, who/when created and updated, optimistic-lock version.

    Subclasses set ``__audit_entity__`` so every change is written to the audit log
    (gaas.audit.service listens to the session's flushes).
    """

    __audit_entity__: str = ""
    # Columns that are bookkeeping, not content: never repeated in audit before/after values.
    __audit_ignore__: frozenset[str] = frozenset({"created_at", "updated_at", "created_by", "updated_by", "version"})
    # Columns whose values must never be copied into the audit log.
    __audit_redact__: frozenset[str] = frozenset()

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
    updated_by: Mapped[uuid.UUID] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict:  # noqa: N805
        # SQLAlchemy adds "AND version = :old" to every UPDATE and raises StaleDataError when a
        # concurrent writer got there first: the database-level half of optimistic locking.
        return {"version_id_col": cls.version}


class BaseTableMixin(AuditedMixin):
    """The specification's base-table pattern: AuditedMixin plus the domain column RLS reads."""

    domain: Mapped[str | None] = mapped_column(String(100))
