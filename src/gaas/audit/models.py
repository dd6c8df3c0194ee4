"""gaas_audit: the append-only audit log, partitioned by month on `timestamp`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, func
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gaas.core.ids import new_id
from gaas.core.models import Base

SCHEMA = "gaas_audit"


class AuditLog(Base):
    __tablename__ = "audit_log"
    # No RETURNING: a writer may add rows it is not allowed to read back (RLS SELECT policy).
    __table_args__ = {"schema": SCHEMA, "implicit_returning": False}

    # The partition key is part of the primary key, as PostgreSQL requires.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    timestamp: Mapped[datetime] = mapped_column(primary_key=True, server_default=func.clock_timestamp())
    user_id: Mapped[uuid.UUID | None]
    user_email: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(100))
    entity_id: Mapped[uuid.UUID | None]
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    ip_address: Mapped[str | None] = mapped_column(INET)
    user_agent: Mapped[str | None] = mapped_column(Text)
    domain: Mapped[str | None] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(64))
