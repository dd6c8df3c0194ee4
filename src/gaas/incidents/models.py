"""gaas_incident_mgmt: incidents, problems, SLA policies and the priority matrix."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Boolean, Date, FetchedValue, ForeignKey, Integer, SmallInteger, String, Text, Time
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from gaas.core.errors import register_unique_fields
from gaas.core.models import Base, BaseTableMixin, pg_enum

SCHEMA = "gaas_incident_mgmt"

register_unique_fields({
    "incidents_number_key": "number",
    "problems_number_key": "number",
    "uq_sla_policy_priority": "priority",
    "uq_priority_matrix_domain": "domain",
})


class Priority(enum.StrEnum):
    # Declaration order is the enum's sort order in PostgreSQL: ascending means most urgent first.
    critical = "critical"
    high = "high"
    medium = "medium"
    low = "low"


class Impact(enum.StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


class Urgency(enum.StrEnum):
    high = "high"
    medium = "medium"
    low = "low"


class IncidentStatus(enum.StrEnum):
    new = "new"
    in_progress = "in_progress"
    resolved = "resolved"
    closed = "closed"
    cancelled = "cancelled"


OPEN_INCIDENT = (IncidentStatus.new, IncidentStatus.in_progress)


class HoldReason(enum.StrEnum):
    """Why an in-progress incident waits (ServiceNow's "On Hold" reasons)."""

    awaiting_caller = "awaiting_caller"
    awaiting_change = "awaiting_change"
    awaiting_problem = "awaiting_problem"
    awaiting_vendor = "awaiting_vendor"


class ProblemStatus(enum.StrEnum):
    new = "new"
    investigating = "investigating"
    root_cause_found = "root_cause_found"
    fix_in_progress = "fix_in_progress"
    resolved = "resolved"
    closed = "closed"


class Problem(BaseTableMixin, Base):
    __tablename__ = "problems"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "problem"

    domain: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(50), unique=True, server_default=FetchedValue())
    short_description: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ProblemStatus] = mapped_column(pg_enum(ProblemStatus, "problem_status", SCHEMA),
                                                  default=ProblemStatus.new)
    priority: Mapped[Priority] = mapped_column(pg_enum(Priority, "incident_priority", SCHEMA))
    assigned_to: Mapped[uuid.UUID | None]
    assigned_group: Mapped[str | None] = mapped_column(String(100))
    root_cause: Mapped[str | None] = mapped_column(Text)
    workaround: Mapped[str | None] = mapped_column(Text)
    service_id: Mapped[uuid.UUID | None]
    ci_id: Mapped[uuid.UUID | None]
    permanent_fix: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[uuid.UUID | None]

    @property
    def known_error(self) -> bool:
        """A problem with a workaround is a known error (ITIL)."""
        return bool(self.workaround and self.workaround.strip())


class Incident(BaseTableMixin, Base):
    __tablename__ = "incidents"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "incident"

    domain: Mapped[str] = mapped_column(String(100))
    number: Mapped[str] = mapped_column(String(50), unique=True, server_default=FetchedValue())
    short_description: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[Priority] = mapped_column(pg_enum(Priority, "incident_priority", SCHEMA))
    impact: Mapped[Impact] = mapped_column(pg_enum(Impact, "incident_impact", SCHEMA))
    urgency: Mapped[Urgency] = mapped_column(pg_enum(Urgency, "incident_urgency", SCHEMA))
    category: Mapped[str | None] = mapped_column(String(100))
    subcategory: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[IncidentStatus] = mapped_column(pg_enum(IncidentStatus, "incident_status", SCHEMA),
                                                   default=IncidentStatus.new)
    assigned_to: Mapped[uuid.UUID | None]
    assigned_group: Mapped[str | None] = mapped_column(String(100))
    service_id: Mapped[uuid.UUID | None]
    ci_id: Mapped[uuid.UUID | None]
    sla_due: Mapped[datetime | None]
    sla_breached: Mapped[bool | None] = mapped_column(Boolean, default=False)
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[uuid.UUID | None]
    problem_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.problems.id"))
    priority_overridden: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(String(50))
    sla_policy_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.sla_policies.id"))
    sla_paused_at: Mapped[datetime | None]
    sla_paused_seconds: Mapped[int] = mapped_column(Integer, default=0)


class LocalTime(TypeDecorator):
    """A TIME column held as "HH:MM:SS" text in Python: readable as is in audit values and events."""

    impl = Time
    cache_ok = True

    def process_bind_param(self, value: str | time | None, dialect: Any) -> time | None:
        return time.fromisoformat(value) if isinstance(value, str) else value

    def process_result_value(self, value: time | None, dialect: Any) -> str | None:
        return value.isoformat() if value is not None else None


class SlaPolicy(BaseTableMixin, Base):
    __tablename__ = "sla_policies"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "sla_policy"

    name: Mapped[str] = mapped_column(String(200))
    priority: Mapped[Priority] = mapped_column(pg_enum(Priority, "incident_priority", SCHEMA))
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    business_timezone: Mapped[str | None] = mapped_column(String(50))
    business_start: Mapped[str | None] = mapped_column(LocalTime)
    business_end: Mapped[str | None] = mapped_column(LocalTime)
    business_days: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger), default=lambda: [1, 2, 3, 4, 5])
    holidays: Mapped[list[date]] = mapped_column(ARRAY(Date), default=list)
    pause_on: Mapped[list[str]] = mapped_column(ARRAY(Text), default=lambda: [HoldReason.awaiting_caller.value])


class PriorityMatrix(BaseTableMixin, Base):
    __tablename__ = "priority_matrices"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "priority_matrix"

    matrix: Mapped[dict[str, Any]] = mapped_column(JSONB)
