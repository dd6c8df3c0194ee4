"""gaas_iam: domains, users, roles, role assignments and API tokens."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, deferred, mapped_column

from gaas.core.errors import register_unique_fields
from gaas.core.ids import new_id
from gaas.core.models import AuditedMixin, Base, BaseTableMixin, pg_enum

SCHEMA = "gaas_iam"

register_unique_fields({
    "users_email_key": "email",
    "users_username_key": "username",
    "uq_domains_code": "code",
    "uq_role_name_domain": "name",
    "uq_user_role_scope": "role_id",
    "uq_api_tokens_key": "key",
})


class UserStatus(enum.StrEnum):
    active = "active"
    inactive = "inactive"
    locked = "locked"
    pending_verification = "pending_verification"


class Domain(AuditedMixin, Base):
    __tablename__ = "domains"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "domain"

    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def audit_domain(self) -> str:
        return self.code


class User(BaseTableMixin, Base):
    __tablename__ = "users"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "user"
    __audit_redact__ = frozenset({"password_hash"})

    email: Mapped[str] = mapped_column(String(255), unique=True)
    username: Mapped[str | None] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # The application role has no SELECT on this column: it is written, never read back.
    password_hash: Mapped[str | None] = deferred(mapped_column(String(255)), raiseload=True)
    password_updated_at: Mapped[datetime | None]
    status: Mapped[UserStatus] = mapped_column(pg_enum(UserStatus, "user_status", SCHEMA), default=UserStatus.active)
    phone: Mapped[str | None] = mapped_column(String(50))
    language: Mapped[str | None] = mapped_column(String(10), default="en")
    timezone: Mapped[str | None] = mapped_column(String(50), default="UTC")
    last_login_at: Mapped[datetime | None]
    failed_login_attempts: Mapped[int | None] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]


class Role(BaseTableMixin, Base):
    __tablename__ = "roles"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "role"

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    permissions: Mapped[list[str]] = mapped_column(JSONB, default=list)
    is_system: Mapped[bool] = mapped_column(Boolean, default=False)


class UserRole(Base):
    """A role given to a user in a scope. Assignments are created and removed, never edited;
    both are audited explicitly by the service."""

    __tablename__ = "user_roles"
    __table_args__ = {"schema": SCHEMA}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"))
    role_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.roles.id", ondelete="CASCADE"))
    scope_type: Mapped[str] = mapped_column(String(50), default="global")
    scope_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[uuid.UUID]


class ApiToken(AuditedMixin, Base):
    __tablename__ = "api_tokens"
    __table_args__ = {"schema": SCHEMA}
    __audit_entity__ = "api_token"
    __audit_redact__ = frozenset({"secret_hash"})

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="api")
    key: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = deferred(mapped_column(String(128)), raiseload=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    # Set by the service: the audit row of a token belongs to its user's domain.
    audit_domain = None
