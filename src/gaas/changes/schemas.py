"""Bodies the change API reads and writes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from gaas.changes.models import ChangeRisk, ChangeStatus, ChangeType, Recurrence, WindowKind
from gaas.iam.schemas import DomainCode, Name, Record, Strict, TimeZone

ShortDescription = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=20000)]
CIList = Annotated[list[uuid.UUID], Field(max_length=500)]


# ---- changes ------------------------------------------------------------------------------------

class ChangeCreate(Strict):
    domain: DomainCode
    short_description: ShortDescription
    description: LongText | None = None
    type: ChangeType
    risk: ChangeRisk | None = Field(default=None, description="The requester's assessment; omitted, the "
                                    "suggested risk is taken")
    requested_by: uuid.UUID | None = Field(default=None, description="Defaults to the caller")
    assigned_to: uuid.UUID | None = None
    service_id: uuid.UUID | None = None
    affected_cis: CIList = Field(default_factory=list)
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    implementation_plan: LongText | None = None
    rollback_plan: LongText | None = None
    test_plan: LongText | None = None
    template_id: uuid.UUID | None = Field(default=None, description="Required for a standard change: it follows "
                                          "this template and inherits its plans")


class ChangeUpdate(Strict):
    short_description: ShortDescription = None  # may be omitted, never null
    description: LongText | None = None
    type: ChangeType = None  # may be omitted, never null
    risk: ChangeRisk = None  # may be omitted, never null
    assigned_to: uuid.UUID | None = None
    service_id: uuid.UUID | None = None
    affected_cis: CIList = None  # may be omitted, never null
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    implementation_plan: LongText | None = None
    rollback_plan: LongText | None = None
    test_plan: LongText | None = None
    template_id: uuid.UUID | None = None
    status: ChangeStatus = None  # may be omitted, never null
    approval_comment: LongText | None = Field(default=None, description="With status approved or rejected: "
                                              "the approver's reason, kept in the audit log and the event")
    success: bool | None = None
    implementation_notes: LongText | None = None
    version: int | None = Field(default=None, ge=1)


class RiskReason(BaseModel):
    factor: str
    value: Any = None
    points: int
    detail: str


class ChangeConflict(BaseModel):
    """One reason a change should not run when planned."""

    kind: str = Field(description="same_ci, impact (one change's CIs depend on the other's), blackout, "
                      "outside_maintenance")
    detail: str
    change_id: uuid.UUID | None = None
    number: str | None = None
    status: ChangeStatus | None = None
    planned_start: datetime | None = None
    planned_end: datetime | None = None
    ci_ids: list[uuid.UUID] = Field(default_factory=list)
    window_id: uuid.UUID | None = None
    window_name: str | None = None
    occurrence_start: datetime | None = None
    occurrence_end: datetime | None = None
    service_id: uuid.UUID | None = None


class ChangeOut(Record):
    id: uuid.UUID
    number: str
    domain: str
    short_description: str
    description: str | None
    type: ChangeType
    status: ChangeStatus
    risk: ChangeRisk
    suggested_risk: ChangeRisk | None
    risk_reasons: list[RiskReason]
    requested_by: uuid.UUID
    assigned_to: uuid.UUID | None
    service_id: uuid.UUID | None
    affected_cis: list[uuid.UUID] | None
    planned_start: datetime | None
    planned_end: datetime | None
    actual_start: datetime | None
    actual_end: datetime | None
    implementation_plan: str | None
    rollback_plan: str | None
    test_plan: str | None
    template_id: uuid.UUID | None
    workflow_id: uuid.UUID | None
    approval_status: str | None
    implementation_notes: str | None
    success: bool | None
    conflicts: list[ChangeConflict] | None
    conflicts_checked_at: datetime | None
    closed_at: datetime | None
    closed_by: uuid.UUID | None
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    updated_by: uuid.UUID
    deleted_at: datetime | None
    version: int


class ConflictReport(BaseModel):
    change_id: uuid.UUID
    number: str
    checked_at: datetime
    conflicts: list[ChangeConflict]


class RiskAssessment(BaseModel):
    change_id: uuid.UUID
    risk: ChangeRisk
    suggested_risk: ChangeRisk
    reasons: list[RiskReason]


class CausedIncidentLink(Strict):
    incident_id: uuid.UUID


class CausedIncidentOut(BaseModel):
    incident_id: uuid.UUID
    number: str | None
    short_description: str | None
    linked_at: datetime
    linked_by: uuid.UUID


# ---- templates -------------------------------------------------------------------------------------

class TemplateCreate(Strict):
    domain: DomainCode
    name: Name
    short_description: ShortDescription
    description: LongText | None = None
    implementation_plan: Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    rollback_plan: Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    test_plan: Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    risk: ChangeRisk = ChangeRisk.low
    service_id: uuid.UUID | None = None
    active: bool = True


class TemplateUpdate(Strict):
    name: Name = None  # may be omitted, never null
    short_description: ShortDescription = None  # may be omitted, never null
    description: LongText | None = None
    implementation_plan: Annotated[str, StringConstraints(min_length=1, max_length=20000)] = None
    rollback_plan: Annotated[str, StringConstraints(min_length=1, max_length=20000)] = None
    test_plan: Annotated[str, StringConstraints(min_length=1, max_length=20000)] = None
    risk: ChangeRisk = None  # may be omitted, never null
    service_id: uuid.UUID | None = None
    active: bool = None  # may be omitted, never null
    version: int | None = Field(default=None, ge=1)


class TemplateOut(Record):
    id: uuid.UUID
    domain: str
    name: str
    short_description: str
    description: str | None
    implementation_plan: str
    rollback_plan: str
    test_plan: str
    risk: ChangeRisk
    service_id: uuid.UUID | None
    active: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


# ---- windows ---------------------------------------------------------------------------------------

class WindowCreate(Strict):
    domain: DomainCode
    name: Name
    kind: WindowKind
    service_id: uuid.UUID | None = Field(default=None, description="Omit for the whole domain")
    description: LongText | None = None
    start_at: datetime
    end_at: datetime
    recurrence: Recurrence = Recurrence.none
    recurrence_until: date | None = None
    timezone: TimeZone = Field(default="UTC", description="Recurring windows repeat at this local time")


class WindowUpdate(Strict):
    name: Name = None  # may be omitted, never null
    kind: WindowKind = None  # may be omitted, never null
    service_id: uuid.UUID | None = None
    description: LongText | None = None
    start_at: datetime = None  # may be omitted, never null
    end_at: datetime = None  # may be omitted, never null
    recurrence: Recurrence = None  # may be omitted, never null
    recurrence_until: date | None = None
    timezone: TimeZone = None  # may be omitted, never null
    version: int | None = Field(default=None, ge=1)


class WindowOut(Record):
    id: uuid.UUID
    domain: str
    name: str
    kind: WindowKind
    service_id: uuid.UUID | None
    description: str | None
    start_at: datetime
    end_at: datetime
    recurrence: Recurrence
    recurrence_until: date | None
    timezone: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


# ---- the calendar ----------------------------------------------------------------------------------

class CalendarChange(BaseModel):
    id: uuid.UUID
    number: str
    domain: str
    short_description: str
    type: ChangeType
    status: ChangeStatus
    risk: ChangeRisk
    service_id: uuid.UUID | None
    planned_start: datetime
    planned_end: datetime
    has_conflicts: bool


class CalendarWindow(BaseModel):
    window_id: uuid.UUID
    name: str
    kind: WindowKind
    domain: str
    service_id: uuid.UUID | None
    start: datetime
    end: datetime


class ChangeCalendar(BaseModel):
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    changes: list[CalendarChange]
    windows: list[CalendarWindow]
    truncated: bool = Field(description="True when more changes fall in the period than one answer holds "
                            "(narrow the period)")
