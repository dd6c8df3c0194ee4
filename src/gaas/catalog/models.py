"""gaas_service_catalog: services (the 5-level portfolio), their relationships and stakeholders."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Computed, FetchedValue, ForeignKey, Numeric, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gaas.core.errors import register_unique_fields
from gaas.core.ids import new_id
from gaas.core.models import Base, BaseTableMixin, pg_enum

SCHEMA = "gaas_service_catalog"

register_unique_fields({
    "services_number_key": "number",
    "uq_service_relationship": "target_service_id",
    "uq_service_user_role": "user_id",
})


class ServiceType(enum.StrEnum):
    business = "business"
    technical = "technical"
    application = "application"
    infrastructure = "infrastructure"

    @property
    def level(self) -> int:
        return list(ServiceType).index(self) + 1


class ServiceStatus(enum.StrEnum):
    design = "design"
    active = "active"
    deprecated = "deprecated"
    retired = "retired"


class RelationshipType(enum.StrEnum):
    depends_on = "depends_on"
    provides_data_to = "provides_data_to"
    consumes_data_from = "consumes_data_from"
    integrates_with = "integrates_with"
    replaces = "replaces"
    parent_of = "parent_of"


class StakeholderRole(enum.StrEnum):
    owner = "owner"
    manager = "manager"
    stakeholder = "stakeholder"
    contributor = "contributor"


class Service(BaseTableMixin, Base):
    __tablename__ = "services"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "service"

    domain: Mapped[str] = mapped_column(String(100))
    # Filled by the database from a sequence (SRV0000001).
    number: Mapped[str] = mapped_column(String(50), unique=True, server_default=FetchedValue())
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[ServiceType] = mapped_column(pg_enum(ServiceType, "service_type", SCHEMA))
    parent_service_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.services.id"))
    status: Mapped[ServiceStatus] = mapped_column(pg_enum(ServiceStatus, "service_status", SCHEMA),
                                                  default=ServiceStatus.design)
    owner_id: Mapped[uuid.UUID]
    manager_id: Mapped[uuid.UUID | None]
    sla_target: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    cost_people: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), default=Decimal(0))
    cost_process: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), default=Decimal(0))
    cost_technology: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), default=Decimal(0))
    total_cost: Mapped[Decimal | None] = mapped_column(
        Numeric(12, 2),
        Computed("coalesce(cost_people, 0) + coalesce(cost_process, 0) + coalesce(cost_technology, 0)"),
    )
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)


class ServiceRelationship(Base):
    __tablename__ = "service_relationships"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    source_service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.services.id", ondelete="CASCADE"))
    target_service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.services.id", ondelete="CASCADE"))
    relationship_type: Mapped[RelationshipType] = mapped_column(
        pg_enum(RelationshipType, "service_relationship_type", SCHEMA))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID]


class ServiceStakeholder(Base):
    __tablename__ = "service_stakeholders"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.services.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID]
    role: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID]
