"""gaas_cmdb: CI classes, configuration items and their relationships."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, FetchedValue, ForeignKey, Integer, String, Table, Text, Uuid, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gaas.core.errors import register_unique_fields
from gaas.core.ids import new_id
from gaas.core.models import Base, BaseTableMixin, pg_enum

SCHEMA = "gaas_cmdb"

register_unique_fields({
    "configuration_items_number_key": "number",
    "uq_ci_relationship": "target_ci_id",
    "uq_ci_class_name": "name",
})


class CIStatus(enum.StrEnum):
    active = "active"
    inactive = "inactive"
    retired = "retired"
    maintenance = "maintenance"


class Environment(enum.StrEnum):
    production = "production"
    staging = "staging"
    development = "development"
    test = "test"


class CIRelationshipType(enum.StrEnum):
    runs_on = "runs_on"
    depends_on = "depends_on"
    connects_to = "connects_to"
    manages = "manages"
    part_of = "part_of"
    backed_up_by = "backed_up_by"
    replicates_to = "replicates_to"


# If the target fails, the source is impacted (an app runs_on a server, a VM part_of a cluster).
IMPACT_TYPES = (CIRelationshipType.depends_on, CIRelationshipType.runs_on, CIRelationshipType.part_of)


class CIClass(BaseTableMixin, Base):
    __tablename__ = "ci_classes"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "ci_class"

    name: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    attribute_schema: Mapped[dict[str, Any]] = mapped_column(JSONB)
    recommended: Mapped[list[str]] = mapped_column(JSONB, default=list)
    identification: Mapped[list[list[str]]] = mapped_column(JSONB, default=list)
    source_precedence: Mapped[list[str]] = mapped_column(JSONB, default=list)
    staleness_days: Mapped[int] = mapped_column(Integer, default=60)
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)


class ConfigurationItem(BaseTableMixin, Base):
    __tablename__ = "configuration_items"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "ci"

    number: Mapped[str] = mapped_column(String(50), unique=True, server_default=FetchedValue())
    name: Mapped[str] = mapped_column(String(200))
    ci_class: Mapped[str] = mapped_column(String(100))
    status: Mapped[CIStatus] = mapped_column(pg_enum(CIStatus, "ci_status", SCHEMA), default=CIStatus.active)
    environment: Mapped[Environment] = mapped_column(pg_enum(Environment, "environment_type", SCHEMA))
    service_id: Mapped[uuid.UUID | None]
    owner_id: Mapped[uuid.UUID]
    managed_by: Mapped[uuid.UUID | None]
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    discovered_by: Mapped[str | None] = mapped_column(String(100))
    last_discovered_at: Mapped[datetime | None]
    # Reconciliation bookkeeping (see the migration): not content, so not repeated in the audit log.
    identity_keys: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    attribute_sources: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    __audit_ignore__ = BaseTableMixin.__audit_ignore__ | {"identity_keys", "attribute_sources"}


class CIRelationship(Base):
    __tablename__ = "ci_relationships"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    source_ci_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.configuration_items.id", ondelete="CASCADE"))
    target_ci_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.configuration_items.id", ondelete="CASCADE"))
    relationship_type: Mapped[CIRelationshipType] = mapped_column(
        pg_enum(CIRelationshipType, "ci_relationship_type", SCHEMA))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID]


# Fuzzy name search (migration 0011): each CI's name under a GiST trigram index, kept by triggers;
# the CIs an import created and the worker has not folded in yet: service.unindexed_names.
ci_search_names = Table(
    "ci_search_names", Base.metadata,
    Column("ci_id", Uuid, primary_key=True),
    Column("domain", String(100)),
    Column("name", String(200), nullable=False),
    schema=SCHEMA,
)
