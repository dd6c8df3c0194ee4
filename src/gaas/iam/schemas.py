"""Bodies the identity API reads and writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from gaas.iam.models import UserStatus

DOMAIN_CODE = r"^[a-z][a-z0-9_-]{1,99}$"
USERNAME = r"^[a-z0-9][a-z0-9._-]{1,99}$"


class Strict(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped.

    In PATCH bodies, `field: T = None` (without `| None`) means "may be omitted, never null":
    pydantic does not validate the default, but rejects an explicit null with the field's name.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Record(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def _timezone(value: str | None) -> str | None:
    if value is not None and value not in _TIMEZONES:
        raise ValueError("not an IANA time zone name (e.g. Europe/Paris)")
    return value


_TIMEZONES = available_timezones() | {"UTC"}

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
DomainCode = Annotated[str, StringConstraints(pattern=DOMAIN_CODE, max_length=100)]
Username = Annotated[str, StringConstraints(pattern=USERNAME, max_length=100, to_lower=True)]
# bcrypt reads at most 72 bytes; the service also checks the UTF-8 length.
Password = Annotated[str, StringConstraints(min_length=12, max_length=72, strip_whitespace=False)]
TimeZone = Annotated[str, StringConstraints(max_length=50), AfterValidator(_timezone)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", max_length=10)]
Phone = Annotated[str, StringConstraints(pattern=r"^[0-9+() .-]{3,50}$", max_length=50)]
Email = Annotated[EmailStr, StringConstraints(max_length=255)]


# ---- domains ---------------------------------------------------------------------------------

class DomainCreate(Strict):
    code: DomainCode
    name: Name
    description: str | None = Field(default=None, max_length=5000)
    active: bool = True


class DomainUpdate(Strict):
    name: Name = None  # may be omitted, never null
    description: str | None = Field(default=None, max_length=5000)
    active: bool = None  # may be omitted, never null
    version: int | None = Field(default=None, ge=1)


class DomainOut(Record):
    id: uuid.UUID
    code: str
    name: str
    description: str | None
    active: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


# ---- users -----------------------------------------------------------------------------------

class UserCreate(Strict):
    email: Email
    username: Username | None = None
    name: Name
    password: Password | None = None
    domain: DomainCode | None = Field(default=None, description="Home domain; omit for a global user")
    status: UserStatus = UserStatus.active
    phone: Phone | None = None
    language: Language = "en"
    timezone: TimeZone = "UTC"


class UserUpdate(Strict):
    email: Email = None  # may be omitted, never null
    username: Username | None = None
    name: Name = None  # may be omitted, never null
    status: UserStatus = None  # may be omitted, never null
    phone: Phone | None = None
    language: Language = None  # may be omitted, never null
    timezone: TimeZone = None  # may be omitted, never null
    version: int | None = Field(default=None, ge=1)


class MeUpdate(Strict):
    name: Name = None  # may be omitted, never null
    phone: Phone | None = None
    language: Language = None  # may be omitted, never null
    timezone: TimeZone = None  # may be omitted, never null
    version: int | None = Field(default=None, ge=1)


class PasswordChange(Strict):
    current_password: Annotated[str, StringConstraints(max_length=128, strip_whitespace=False)]
    new_password: Password


class PasswordReset(Strict):
    new_password: Password


class UserOut(Record):
    id: uuid.UUID
    email: str
    username: str | None
    name: str
    domain: str | None
    status: UserStatus
    phone: str | None
    language: str | None
    timezone: str | None
    last_login_at: datetime | None
    failed_login_attempts: int | None
    locked_until: datetime | None
    password_updated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


# ---- roles -----------------------------------------------------------------------------------

Permission = Annotated[str, StringConstraints(pattern=r"^[a-z_]+\.[a-z_]+$", max_length=100)]


class RoleCreate(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,99}$", max_length=100)]
    description: str | None = Field(default=None, max_length=5000)
    domain: DomainCode | None = None
    permissions: list[Permission] = Field(default_factory=list, max_length=500)


class RoleUpdate(Strict):
    description: str | None = Field(default=None, max_length=5000)
    permissions: list[Permission] = Field(default=None, max_length=500)
    version: int | None = Field(default=None, ge=1)


class RoleOut(Record):
    id: uuid.UUID
    name: str
    description: str | None
    domain: str | None
    permissions: list[str]
    is_system: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    version: int


class UserRoleCreate(Strict):
    role_id: uuid.UUID
    scope_type: Literal["global", "domain", "service"] = "global"
    scope_id: uuid.UUID | None = None


class UserRoleOut(Record):
    id: uuid.UUID
    user_id: uuid.UUID
    role_id: uuid.UUID
    role_name: str
    scope_type: str
    scope_id: uuid.UUID | None
    scope_domain: str | None
    created_at: datetime
    created_by: uuid.UUID


# ---- tokens ----------------------------------------------------------------------------------

class TokenCreate(Strict):
    name: Name
    read_only: bool = False
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)


class TokenOut(Record):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    kind: str
    key: str
    read_only: bool
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    version: int


class TokenCreated(TokenOut):
    token: str = Field(description="The whole token, shown this once: store it now")


class AccessToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class Me(UserOut):
    visible_domains: list[str] | None = Field(description="None: every domain")
    permissions: list[dict]


def lower_email(value: str) -> str:
    return value.strip().lower()

