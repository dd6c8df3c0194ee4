"""Bodies the cost API reads and writes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator

from gaas.catalog.schemas import Money
from gaas.core.currency import ISO_4217
from gaas.costs.models import CostCategory
from gaas.iam.schemas import DomainCode, Record, Strict


def _currency(value: str) -> str:
    if value not in ISO_4217:
        raise ValueError("not an ISO 4217 currency code (e.g. USD, EUR, KES)")
    return value


Currency = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_currency)]


class CostEntryCreate(Strict):
    domain: DomainCode | None = Field(default=None, description="Taken from the service (or CI) when omitted")
    service_id: uuid.UUID | None = None
    ci_id: uuid.UUID | None = None
    category: CostCategory
    amount: Money
    currency: Currency = "USD"
    period_start: date
    period_end: date
    description: str | None = Field(default=None, max_length=5000)
    metadata: dict[str, Any] | None = None

    @field_validator("period_end")
    @classmethod
    def _period(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("period_start")
        if start is not None and value < start:
            raise ValueError("must be on or after period_start")
        return value


class CostEntryBulk(Strict):
    items: list[CostEntryCreate] = Field(min_length=1, max_length=5000)


class CostEntryUpdate(Strict):
    category: CostCategory = None  # may be omitted, never null
    amount: Money = None  # may be omitted, never null
    currency: Currency = None  # may be omitted, never null
    period_start: date = None  # may be omitted, never null
    period_end: date = None  # may be omitted, never null
    description: str | None = Field(default=None, max_length=5000)
    metadata: dict[str, Any] | None = None
    version: int | None = Field(default=None, ge=1)


class CostEntryOut(Record):
    id: uuid.UUID
    domain: str
    service_id: uuid.UUID | None
    ci_id: uuid.UUID | None
    category: CostCategory
    amount: Decimal
    currency: str
    period_start: date
    period_end: date
    description: str | None
    metadata: dict[str, Any] | None = Field(validation_alias="metadata_")
    created_at: datetime
    created_by: uuid.UUID
    updated_at: datetime
    deleted_at: datetime | None
    version: int


Period = Literal["month", "quarter", "year"]


class CostReportRow(BaseModel):
    domain: str
    service_id: uuid.UUID | None = None
    service_number: str | None = None
    service_name: str | None = None
    category: CostCategory | None = None
    period: date | None = None
    currency: str
    allocated: Decimal | None = Field(description="Share of the services' annual allocation for this period "
                                                  "(in the platform's allocation currency only)")
    actual: Decimal
    variance: Decimal | None = Field(description="actual - allocated")
    entries: int


class CostReport(BaseModel):
    period: Period
    date_from: date
    date_to: date
    allocation_currency: str
    group_by: list[str]
    rows: list[CostReportRow]
