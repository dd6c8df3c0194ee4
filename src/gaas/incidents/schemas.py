"""Bodies the incident, problem, SLA-policy and priority-matrix API reads and writes."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from gaas.iam.schemas import DomainCode, Name, Record, Strict, TimeZone
from gaas.incidents.models import HoldReason, Impact, IncidentStatus, Priority, ProblemStatus, Urgency

ShortDescription = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100)]
LongText = Annotated[str, StringConstraints(max_length=20000)]


# ---- incidents ----------------------------------------------------------------------------------

class IncidentCreate(Strict):
    domain: DomainCode
    short_description: ShortDescription
    description: LongText | None = None
    impact: Impact
    urgency: Urgency
    priority: Priority | None = Field(default=None, description="Override the matrix (needs "
                                      "incident.override_priority); omit to compute it from impact and urgency")
    category: Label | None = None
    subcategory: Label | None = None
    assigned_to: uuid.UUID | None = None
    assigned_group: Label | None = None
    service_id: uuid.UUID | None = None
    ci_id: uuid.UUID | None = None
    problem_id: uuid.UUID | None = None


class IncidentBulk(Strict):
    items: list[IncidentCreate] = Field(min_length=1, max_length=1000)


class IncidentUpdate(Strict):
    short_description: ShortDescription = None  # may be omitted, never null
    description: LongText | None = None
    impact: Impact = None  # may be omitted, never null
    urgency: Urgency = None  # may be omitted, never null
    priority: Priority | None = Field(default=None, description="A value overrides the matrix; null returns "
                                      "to the matrix's priority")
    category: Label | None = None
    subcategory: Label | None = None
    status: IncidentStatus = None  # may be omitted, never null
    hold_reason: HoldReason | None = None
    assigned_to: uuid.UUID | None = None
    assigned_group: Label | None = None
    service_id: uuid.UUID | None = None
    ci_id: uuid.UUID | None = None
    problem_id: uuid.UUID | None = None
    resolution_notes: LongText | None = None
    solved_by_articles: list[uuid.UUID] | None = Field(
        default=None, max_length=20, description="Published knowledge articles that solved this incident: linked "
        "(links made before stay) and counted for the articles' ranking; see GET /api/v1/articles?incident_id=")
    version: int | None = Field(default=None, ge=1)


class KnownError(BaseModel):
    """The workaround of the known error (a problem with a workaround) this incident is linked to."""

    problem_id: uuid.UUID
    number: str
    workaround: str


class IncidentOut(Record):
    id: uuid.UUID
    number: str
    domain: str
    short_description: str
    description: str | None
    priority: Priority
    priority_overridden: bool
    impact: Impact
    urgency: Urgency
    category: str | None
    subcategory: str | None
    status: IncidentStatus
    hold_reason: HoldReason | None
    assigned_to: uuid.UUID | None
    assigned_group: str | None
    service_id: uuid.UUID | None
    ci_id: uuid.UUID | None
    problem_id: uuid.UUID | None
    known_error: KnownError | None = None
    sla_due: datetime | None
    sla_breached: bool | None
    sla_policy_id: uuid.UUID | None
    sla_paused_at: datetime | None
    sla_paused_seconds: int
    resolution_notes: str | None
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    closed_at: datetime | None
    closed_by: uuid.UUID | None
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    deleted_at: datetime | None
    version: int


class AtRiskIncident(BaseModel):
    """One row of the specification's Query 2 (SLA at risk), with ids beside the names."""

    id: uuid.UUID
    number: str
    short_description: str
    priority: Priority
    domain: str
    service_id: uuid.UUID | None
    service_name: str | None
    sla_due: datetime
    hours_until_breach: float
    assigned_to_id: uuid.UUID | None
    assigned_to: str | None


# ---- problems -----------------------------------------------------------------------------------

class ProblemCreate(Strict):
    domain: DomainCode
    short_description: ShortDescription
    description: LongText | None = None
    priority: Priority
    assigned_to: uuid.UUID | None = None
    assigned_group: Label | None = None
    root_cause: LongText | None = None
    workaround: LongText | None = None
    service_id: uuid.UUID | None = None
    ci_id: uuid.UUID | None = None
    permanent_fix: LongText | None = None


class ProblemUpdate(Strict):
    short_description: ShortDescription = None  # may be omitted, never null
    description: LongText | None = None
    priority: Priority = None  # may be omitted, never null
    status: ProblemStatus = None  # may be omitted, never null
    assigned_to: uuid.UUID | None = None
    assigned_group: Label | None = None
    root_cause: LongText | None = None
    workaround: LongText | None = None
    service_id: uuid.UUID | None = None
    ci_id: uuid.UUID | None = None
    permanent_fix: LongText | None = None
    resolve_incidents: bool = Field(default=False, description="With status=resolved: also resolve every open "
                                    "incident linked to this problem, in the same transaction")
    incident_resolution_notes: LongText | None = Field(default=None, description="Resolution notes for those "
                                                       "incidents (default: the permanent fix)")
    version: int | None = Field(default=None, ge=1)


class ProblemOut(Record):
    id: uuid.UUID
    number: str
    domain: str
    short_description: str
    description: str | None
    status: ProblemStatus
    priority: Priority
    assigned_to: uuid.UUID | None
    assigned_group: str | None
    root_cause: str | None
    workaround: str | None
    known_error: bool
    service_id: uuid.UUID | None
    ci_id: uuid.UUID | None
    permanent_fix: str | None
    resolved_at: datetime | None
    resolved_by: uuid.UUID | None
    closed_at: datetime | None
    closed_by: uuid.UUID | None
    open_incidents: int = Field(default=0, description="Linked incidents still new or in progress: "
                                "resolving with resolve_incidents=true resolves them too")
    resolved_incidents: list[str] = Field(default_factory=list, description="In the response to a resolution "
                                          "with resolve_incidents=true only: the incidents resolved with it")
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    deleted_at: datetime | None
    version: int


class IncidentLink(Strict):
    incident_id: uuid.UUID


# ---- SLA policies -------------------------------------------------------------------------------

Weekday = Annotated[int, Field(ge=1, le=7)]


class SlaPolicyCreate(Strict):
    """Business hours are the four business_* fields (all three of timezone, start and end, or none:
    around the clock). Times are local to the time zone, a window within one day."""

    domain: DomainCode | None = Field(default=None, description="Omit for a platform default")
    name: Name
    priority: Priority
    resolution_minutes: int = Field(ge=1, le=525600)
    business_timezone: TimeZone | None = None
    business_start: time | None = Field(default=None, description="Local opening time, e.g. 08:00")
    business_end: time | None = Field(default=None, description="Local closing time, e.g. 18:00")
    business_days: list[Weekday] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1, max_length=7,
                                         description="ISO weekdays, Monday = 1")
    holidays: list[date] = Field(default_factory=list, max_length=1000)
    pause_on: list[HoldReason] = Field(default_factory=lambda: [HoldReason.awaiting_caller], max_length=10)


class SlaPolicyUpdate(Strict):
    name: Name = None  # may be omitted, never null
    resolution_minutes: int = Field(default=None, ge=1, le=525600)
    business_timezone: TimeZone | None = None
    business_start: time | None = None
    business_end: time | None = None
    business_days: list[Weekday] = Field(default=None, min_length=1, max_length=7)
    holidays: list[date] = Field(default=None, max_length=1000)
    pause_on: list[HoldReason] = Field(default=None, max_length=10)
    version: int | None = Field(default=None, ge=1)


class SlaPolicyOut(Record):
    id: uuid.UUID
    domain: str | None
    name: str
    priority: Priority
    resolution_minutes: int
    business_timezone: str | None
    business_start: str | None
    business_end: str | None
    business_days: list[int]
    holidays: list[date]
    pause_on: list[str]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


# ---- priority matrix ----------------------------------------------------------------------------

class MatrixRow(Strict):
    high: Priority
    medium: Priority
    low: Priority


class Matrix(Strict):
    """Impact (outer key) x urgency (inner key) -> priority."""

    high: MatrixRow
    medium: MatrixRow
    low: MatrixRow

    def lookup(self, impact: Impact, urgency: Urgency) -> Priority:
        return getattr(getattr(self, impact.value), urgency.value)


class PriorityMatrixPut(Strict):
    matrix: Matrix
    version: int | None = Field(default=None, ge=1, description="Required when the domain has its own matrix")


class PriorityMatrixOut(BaseModel):
    domain: str | None
    inherited: bool = Field(description="True when the domain uses the platform default")
    matrix: Matrix
    version: int
    updated_at: datetime


def matrix_dict(matrix: Matrix) -> dict[str, Any]:
    return matrix.model_dump(mode="json")
