"""Bodies the CMDB API reads and writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from gaas.cmdb.models import CIRelationshipType, CIStatus, Environment
from gaas.iam.schemas import DomainCode, Name, Record, Strict

ClassName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,99}$", max_length=100)]
Source = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,99}$", max_length=100)]
AttributeKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]


class CIClassCreate(Strict):
    name: ClassName
    label: Name
    description: str | None = Field(default=None, max_length=5000)
    domain: DomainCode | None = None
    attribute_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    recommended: list[AttributeKey] = Field(default_factory=list, max_length=100)
    identification: list[list[AttributeKey]] = Field(default_factory=list, max_length=20)
    source_precedence: list[Source] = Field(default_factory=list, max_length=50)
    staleness_days: int = Field(default=60, ge=1, le=3650)


class CIClassUpdate(Strict):
    label: Name = None  # may be omitted, never null
    description: str | None = Field(default=None, max_length=5000)
    attribute_schema: dict[str, Any] = None  # may be omitted, never null
    recommended: list[AttributeKey] = Field(default=None, max_length=100)
    identification: list[list[AttributeKey]] = Field(default=None, max_length=20)
    source_precedence: list[Source] = Field(default=None, max_length=50)
    staleness_days: int = Field(default=None, ge=1, le=3650)
    version: int | None = Field(default=None, ge=1)


class CIClassOut(Record):
    id: uuid.UUID
    name: str
    label: str
    description: str | None
    domain: str | None
    attribute_schema: dict[str, Any]
    recommended: list[str]
    identification: list[list[str]]
    source_precedence: list[str]
    staleness_days: int
    is_system: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


class CICreate(Strict):
    domain: DomainCode | None = Field(default=None, description="Omit for shared (global) infrastructure")
    name: Name
    ci_class: ClassName
    status: CIStatus = CIStatus.active
    environment: Environment
    service_id: uuid.UUID | None = None
    owner_id: uuid.UUID
    managed_by: uuid.UUID | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    discovered_by: Source | None = None
    last_discovered_at: datetime | None = None


class CIUpdate(Strict):
    name: Name = None  # may be omitted, never null
    status: CIStatus = None  # may be omitted, never null
    environment: Environment = None  # may be omitted, never null
    service_id: uuid.UUID | None = None
    owner_id: uuid.UUID = None  # may be omitted, never null
    managed_by: uuid.UUID | None = None
    attributes: dict[str, Any] = None  # may be omitted, never null
    version: int | None = Field(default=None, ge=1)


class CIOut(Record):
    id: uuid.UUID
    number: str
    domain: str | None
    name: str
    ci_class: str
    status: CIStatus
    environment: Environment
    service_id: uuid.UUID | None
    owner_id: uuid.UUID
    managed_by: uuid.UUID | None
    attributes: dict[str, Any]
    discovered_by: str | None
    last_discovered_at: datetime | None
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    deleted_at: datetime | None
    version: int


class CIRelationshipCreate(Strict):
    source_ci_id: uuid.UUID
    target_ci_id: uuid.UUID
    relationship_type: CIRelationshipType
    description: str | None = Field(default=None, max_length=5000)


class CIRelationshipOut(Record):
    id: uuid.UUID
    source_ci_id: uuid.UUID
    target_ci_id: uuid.UUID
    relationship_type: CIRelationshipType
    description: str | None
    created_at: datetime
    created_by: uuid.UUID


class PathStep(BaseModel):
    ci_id: uuid.UUID
    relationship_type: CIRelationshipType


class ImpactedCI(BaseModel):
    id: uuid.UUID
    number: str
    name: str
    ci_class: str
    domain: str | None
    status: CIStatus
    service_id: uuid.UUID | None
    depth: int
    path: list[PathStep] = Field(description="From the analysed CI to this one: each hop and the relationship "
                                             "that carries the impact")


class ImpactedService(BaseModel):
    id: uuid.UUID
    number: str
    name: str
    type: str
    domain: str
    sla_target: str | None
    via_ci_count: int = Field(description="Impacted CIs that lead to this service")
    via_ci_ids: list[uuid.UUID] = Field(description="The nearest of them, at most 20")


class WorkOnImpacted(BaseModel):
    count: int = Field(description="All of them, whatever the page shows")
    items: list[dict[str, Any]] = Field(description="The first 50: most urgent incidents, soonest changes")


class ImpactReport(BaseModel):
    ci: CIOut
    direction: str
    max_depth: int
    relationship_types: list[CIRelationshipType]
    total: int = Field(description="Every CI reached")
    computed_with: str = Field(description="'memory' (a fresh in-memory copy of the graph) or 'database'")
    by_depth: dict[str, int] = Field(description="How many CIs at each depth")
    cis: list[ImpactedCI] = Field(description="One page of them, nearest first")
    next_cursor: str | None
    services: list[ImpactedService]
    business_services: list[ImpactedService]
    open_incidents: WorkOnImpacted | None = Field(default=None, description="Open incidents on the impacted CIs "
                                                  "(dependents direction only)")
    upcoming_changes: WorkOnImpacted | None = Field(default=None, description="Approved, scheduled or running "
                                                    "changes on the impacted CIs (dependents direction only)")
