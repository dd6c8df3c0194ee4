"""Generic queries over users (for the ServiceNow Table API): the fields that may be filtered and
sorted on, under exactly the visibility rules of service.list_users; and the names of users a
page of records refers to."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from gaas.core.context import SYSTEM_USER_ID, Actor
from gaas.core.errors import Forbidden
from gaas.core.filtering import Expr, Field, run_query
from gaas.iam.models import User, UserStatus
from gaas.iam.service import _visible_with

USER_FIELDS: dict[str, Field] = {
    "id": Field.uuid_(User.id),
    "email": Field.text_(User.email),
    "username": Field.text_(User.username),
    "name": Field.text_(User.name),
    "domain": Field.text_(User.domain),
    "status": Field.enum_(User.status, UserStatus),
    "phone": Field.text_(User.phone),
    "language": Field.text_(User.language),
    "timezone": Field.text_(User.timezone),
    "last_login_at": Field.time_(User.last_login_at),
    "locked_until": Field.time_(User.locked_until),
    "created_at": Field.time_(User.created_at),
    "updated_at": Field.time_(User.updated_at),
    "version": Field.int_(User.version),
}


def _viewable(actor: Actor) -> Select:
    if not actor.can_anywhere("user.view"):
        raise Forbidden("Listing users needs the 'user.view' permission.", permission="user.view")
    stmt: Select = select(User).where(User.id != SYSTEM_USER_ID, User.deleted_at.is_(None))
    scope = _visible_with(actor, "user.view", User.domain)
    return stmt if scope is None else stmt.where(scope)


def query_users(db: Session, actor: Actor, *, where: Expr | None = None, order: Sequence[tuple[str, bool]] = (),
                offset: int = 0, limit: int = 50, count: bool = True) -> tuple[list[User], int | None]:
    """Users the caller may list (as service.list_users), filtered by an expression over
    USER_FIELDS, in `order` then by id, with offset paging and the total."""
    return run_query(db, _viewable(actor), fields=USER_FIELDS, id_column=User.id, where=where, order=order,
                     offset=offset, limit=limit, count=count, default_order=User.created_at.asc())


@dataclass(frozen=True)
class UserRef:
    id: uuid.UUID
    name: str
    username: str | None
    email: str

    @property
    def login(self) -> str:
        return self.username or self.email


def user_refs(db: Session, user_ids: Sequence[uuid.UUID | None]) -> dict[uuid.UUID, UserRef]:
    """Name, user name and e-mail of the users among `user_ids` that row-level security lets the
    caller see (one query; as service.user_names)."""
    ids = sorted({i for i in user_ids if i is not None})
    if not ids:
        return {}
    rows = db.execute(select(User.id, User.name, User.username, User.email).where(User.id.in_(ids)))
    return {r.id: UserRef(r.id, r.name, r.username, r.email) for r in rows}


def find_login(db: Session, login: str) -> UserRef | None:
    """The live user whose e-mail or user name is `login`, if the caller may see them."""
    text_ = login.strip().lower()
    row = db.execute(select(User.id, User.name, User.username, User.email).where(
        or_(User.email == text_, User.username == text_), User.deleted_at.is_(None))).first()
    return UserRef(row.id, row.name, row.username, row.email) if row else None
