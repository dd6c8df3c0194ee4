"""gaas_servicenow: the external keys of records imported from ServiceNow (migration 0009)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gaas.core.ids import new_id
from gaas.core.models import Base

SCHEMA = "gaas_servicenow"


class ExternalKey(Base):
    """(source family, sys_id) -> the GaaS record it became. Bookkeeping of the import, not a
    record of its own: the records it points to carry their own audit trail."""

    __tablename__ = "external_keys"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    domain: Mapped[str | None] = mapped_column(String(100))
    source_table: Mapped[str] = mapped_column(String(80))
    sys_id: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[uuid.UUID | None]
    display_value: Mapped[str | None] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    imported_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
