"""gaas_change_mgmt: changes, standard-change templates, change windows, and the incidents a
failed change caused."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, FetchedValue, ForeignKey, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from gaas.core.errors import register_unique_fields
from gaas.core.ids import new_id
from gaas.core.models import Base, BaseTableMixin, pg_enum

SCHEMA = "gaas_change_mgmt"

register_unique_fields({
    "changes_number_key": "number",
    "uq_change_incident": "incident_id",
})


class ChangeType(enum.StrEnum):
    standard = "standard"
    normal = "normal"
    emergency = "emergency"


class ChangeStatus(enum.StrEnum):
    draft = "draft"
    submitted = "submitted"
    under_review = "under_review"
    approved = "approved"
    rejected = "rejected"
    scheduled = "scheduled"
    implementing = "implementing"
    implemented = "implemented"
    closed = "closed"
    cancelled = "cancelled"


class ChangeRisk(enum.StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


class WindowKind(enum.StrEnum):
    maintenance = "maintenance"
    blackout = "blackout"


class Recurrence(enum.StrEnum):
    none = "none"
    daily = "daily"
    weekly = "weekly"


# Changes holding a slot on the calendar: the ones conflict detection compares against.
SLOT_STATUSES = (ChangeStatus.approved, ChangeStatus.scheduled, ChangeStatus.implementing)


class ChangeTemplate(BaseTableMixin, Base):
    __tablename__ = "change_templates"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "change_template"

    domain: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    short_description: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    implementation_plan: Mapped[str] = mapped_column(Text)
    rollback_plan: Mapped[str] = mapped_column(Text)
    test_plan: Mapped[str] = mapped_column(Text)
    risk: Mapped[ChangeRisk] = mapped_column(pg_enum(ChangeRisk, "change_risk", SCHEMA), default=ChangeRisk.low)
    service_id: Mapped[uuid.UUID | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Change(BaseTableMixin, Base):
    __tablename__ = "changes"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "change"

    domain: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(50), unique=True, server_default=FetchedValue())
    short_description: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    type: Mapped[ChangeType] = mapped_column(pg_enum(ChangeType, "change_type", SCHEMA))
    status: Mapped[ChangeStatus] = mapped_column(pg_enum(ChangeStatus, "change_status", SCHEMA),
                                                 default=ChangeStatus.draft)
    risk: Mapped[ChangeRisk] = mapped_column(pg_enum(ChangeRisk, "change_risk", SCHEMA))
    requested_by: Mapped[uuid.UUID]
    assigned_to: Mapped[uuid.UUID | None]
    service_id: Mapped[uuid.UUID | None]
    affected_cis: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    planned_start: Mapped[datetime | None]
    planned_end: Mapped[datetime | None]
    actual_start: Mapped[datetime | None]
    actual_end: Mapped[datetime | None]
    implementation_plan: Mapped[str | None] = mapped_column(Text)
    rollback_plan: Mapped[str | None] = mapped_column(Text)
    test_plan: Mapped[str | None] = mapped_column(Text)
    workflow_id: Mapped[uuid.UUID | None]  # the workflow engine's instance, once it exists (issue 6)
    approval_status: Mapped[str | None] = mapped_column(String(50))
    implementation_notes: Mapped[str | None] = mapped_column(Text)
    success: Mapped[bool | None] = mapped_column(Boolean)
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[uuid.UUID | None]
    template_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.change_templates.id"))
    suggested_risk: Mapped[ChangeRisk | None] = mapped_column(pg_enum(ChangeRisk, "change_risk", SCHEMA))
    risk_reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    conflicts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    conflicts_checked_at: Mapped[datetime | None]


class ChangeWindow(BaseTableMixin, Base):
    __tablename__ = "change_windows"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "change_window"

    domain: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[WindowKind] = mapped_column(pg_enum(WindowKind, "change_window_kind", SCHEMA))
    service_id: Mapped[uuid.UUID | None]
    description: Mapped[str | None] = mapped_column(Text)
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    recurrence: Mapped[str] = mapped_column(String(10), default=Recurrence.none.value)
    recurrence_until: Mapped[date | None]
    timezone: Mapped[str] = mapped_column(String(50), default="UTC")


class ChangeIncident(Base):
    """An incident a (failed) change caused."""

    __tablename__ = "change_incidents"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    domain: Mapped[str] = mapped_column(String(100))
    change_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.changes.id", ondelete="CASCADE"))
    incident_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID]
