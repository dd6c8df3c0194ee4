"""Bodies the service-portfolio API reads and writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from gaas.catalog.models import RelationshipType, ServiceStatus, ServiceType, StakeholderRole
from gaas.iam.schemas import DomainCode, Name, Record, Strict

Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]


class ServiceCreate(Strict):
    domain: DomainCode
    name: Name
    description: str | None = Field(default=None, max_length=10000)
    type: ServiceType
    parent_service_id: uuid.UUID | None = None
    status: ServiceStatus = ServiceStatus.design
    owner_id: uuid.UUID
    manager_id: uuid.UUID | None = None
    sla_target: Percent | None = None
    cost_people: Money = Decimal(0)
    cost_process: Money = Decimal(0)
    cost_technology: Money = Decimal(0)
    metadata: dict[str, Any] | None = None


class ServiceUpdate(Strict):
    name: Name = None  # may be omitted, never null
    description: str | None = Field(default=None, max_length=10000)
    type: ServiceType = None  # may be omitted, never null
    parent_service_id: uuid.UUID | None = None
    status: ServiceStatus = None  # may be omitted, never null
    owner_id: uuid.UUID = None  # may be omitted, never null
    manager_id: uuid.UUID | None = None
    sla_target: Percent | None = None
    cost_people: Money = None  # may be omitted, never null
    cost_process: Money = None  # may be omitted, never null
    cost_technology: Money = None  # may be omitted, never null
    metadata: dict[str, Any] | None = None
    version: int | None = Field(default=None, ge=1)


class ServiceOut(Record):
    id: uuid.UUID
    number: str
    domain: str
    name: str
    description: str | None
    type: ServiceType
    parent_service_id: uuid.UUID | None
    status: ServiceStatus
    owner_id: uuid.UUID
    manager_id: uuid.UUID | None
    sla_target: Decimal | None
    cost_people: Decimal | None
    cost_process: Decimal | None
    cost_technology: Decimal | None
    total_cost: Decimal | None
    metadata: dict[str, Any] | None = Field(validation_alias="metadata_")
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    deleted_at: datetime | None
    version: int


class RelationshipCreate(Strict):
    target_service_id: uuid.UUID
    relationship_type: RelationshipType
    description: str | None = Field(default=None, max_length=5000)


class RelationshipOut(Record):
    id: uuid.UUID
    source_service_id: uuid.UUID
    target_service_id: uuid.UUID
    relationship_type: RelationshipType
    description: str | None
    created_at: datetime
    created_by: uuid.UUID


class StakeholderCreate(Strict):
    user_id: uuid.UUID
    role: StakeholderRole


class StakeholderOut(Record):
    id: uuid.UUID
    service_id: uuid.UUID
    user_id: uuid.UUID
    role: StakeholderRole
    created_at: datetime
    created_by: uuid.UUID


class Costs(BaseModel):
    people: Decimal
    process: Decimal
    technology: Decimal
    total: Decimal


class TreeNode(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str
    name: str
    domain: str
    type: ServiceType
    status: ServiceStatus
    parent_service_id: uuid.UUID | None
    depth: int
    path: list[str]
    own: Costs
    rolled_up: Costs


class PptBalance(BaseModel):
    domain: str
    total_people_cost: Decimal | None
    total_process_cost: Decimal | None
    total_technology_cost: Decimal | None
    total_cost: Decimal | None
    people_pct: Decimal | None
    process_pct: Decimal | None
    technology_pct: Decimal | None
