"""gaas_cost_mgmt: actual cost entries, partitioned by year of period_start."""

from __future__ import annotations

import enum
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gaas.core.models import Base, BaseTableMixin, pg_enum

SCHEMA = "gaas_cost_mgmt"


class CostCategory(enum.StrEnum):
    people = "people"
    process = "process"
    technology = "technology"


class CostEntry(BaseTableMixin, Base):
    __tablename__ = "cost_entries"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "cost_entry"

    domain: Mapped[str] = mapped_column(String(100))
    # The partition key is part of the primary key, as PostgreSQL requires.
    period_start: Mapped[date] = mapped_column(primary_key=True)
    period_end: Mapped[date]
    service_id: Mapped[uuid.UUID | None]
    ci_id: Mapped[uuid.UUID | None]
    category: Mapped[CostCategory] = mapped_column(pg_enum(CostCategory, "cost_category", SCHEMA))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    description: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
