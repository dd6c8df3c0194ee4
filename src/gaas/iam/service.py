"""Identity and access: the only entry to gaas_iam for the API, the CLI, the worker and
other modules. Every function takes the acting user and checks permissions itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.orm import Session

from gaas.audit import service as audit
from gaas.core.context import SYSTEM_USER_EMAIL, SYSTEM_USER_ID, Actor, Grant, RequestInfo
from gaas.core.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationProblem
from gaas.core.pagination import SortKey, paginate
from gaas.core.queries import contains_pattern, where_viewable
from gaas.core.records import apply_patch, hard_delete, restore, soft_delete, stamp_created
from gaas.core.settings import get_settings
from gaas.iam import security
from gaas.iam.models import ApiToken, Domain, Role, User, UserRole, UserStatus
from gaas.iam.permissions import DEFAULT_ROLES, PERMISSIONS, unknown_permissions
from gaas.iam.schemas import (
    DomainCreate,
    DomainUpdate,
    RoleCreate,
    RoleUpdate,
    TokenCreate,
    UserCreate,
    UserRoleCreate,
    UserUpdate,
)


def system_actor(request: RequestInfo | None = None) -> Actor:
    """The platform acting on its own behalf (CLI administration, bootstrap, worker)."""
    return Actor(
        user_id=SYSTEM_USER_ID,
        email=SYSTEM_USER_EMAIL,
        home_domain=None,
        visible_domains=None,
        grants=(Grant(permissions=frozenset(PERMISSIONS)),),
        request=request or RequestInfo(entry_point="system"),
    )


def require(actor: Actor, permission: str, domain: str | None) -> None:
    if not actor.can(permission, domain):
        where = f"domain '{domain}'" if domain else "the platform (global records)"
        raise Forbidden(f"This needs the '{permission}' permission in {where}.", permission=permission)


# ---- authentication ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginResult:
    ok: bool
    reason: str = ""
    token: str | None = None
    expires_at: datetime | None = None
    locked_until: datetime | None = None
    throttled: bool = False


def authenticate(db: Session, login: str, password: str, info: RequestInfo) -> LoginResult:
    """Check a password login, count failures and lock after too many; always audited.

    The caller commits even when the result is a failure, so the count and the audit row stay.
    """
    settings = get_settings()
    row = db.execute(text("SELECT * FROM gaas_iam.auth_lookup(:login)"), {"login": login.strip()}).mappings().first()
    now = datetime.now(UTC)
    reason = ""
    count_failure = True
    throttled = _address_throttled(db, info)
    if throttled:
        # Password spraying from one address: refuse without looking at the password, and without
        # counting it against the account (the account's owner is not the one guessing).
        security.verify_password(password, None)
        reason, count_failure = "too many failed logins from this address", False
    elif row is None:
        security.verify_password(password, None)
        reason = "unknown user"
    elif row["locked_until"] is not None and row["locked_until"] > now:
        security.verify_password(password, None)
        reason, count_failure = "account locked", False
    elif row["status"] != UserStatus.active.value:
        security.verify_password(password, None)
        reason, count_failure = f"account {row['status']}", False
    elif not security.verify_password(password, row["password_hash"]):
        reason = "wrong password"
    success = reason == ""
    verdict = record_login(db, row["id"] if row else None, login, success, count_failure, reason or None, info)
    if reason and not throttled:
        note_login_failure(db, info)
    # The database has the last word: it re-checks the lock under a row lock.
    if not verdict["ok"]:
        return LoginResult(ok=False, reason=reason or "account locked", locked_until=verdict["locked_until"],
                           throttled=throttled)
    expires = now + timedelta(hours=settings.session_token_hours)
    actor = _build_actor(db, row["id"], row["email"], row["domain"], read_only=False, info=info)
    from gaas.core.db import set_context

    set_context(db, actor)
    token_text, _ = _insert_token(db, actor, user_id=row["id"], user_domain=row["domain"], name="login session",
                                  kind="session", read_only=False, expires_at=expires)
    return LoginResult(ok=True, token=token_text, expires_at=expires)


def record_login(db: Session, user_id: uuid.UUID | None, login: str, ok: bool, count: bool, reason: str | None,
                 info: RequestInfo) -> Any:
    """Record a login attempt (audited; a counted failure may lock the account, re-checked under
    a row lock). Returns the verdict: ok, locked_until."""
    settings = get_settings()
    return db.execute(
        text("SELECT * FROM gaas_iam.record_login(:uid, :login, :ok, :count, :reason, CAST(:ip AS inet),"
             " :ua, :rid, :max, :mins)"),
        {"uid": user_id, "login": login[:255], "ok": ok, "count": count, "reason": reason, "ip": info.ip_address,
         "ua": info.user_agent, "rid": info.request_id, "max": settings.login_max_failures,
         "mins": settings.lockout_minutes},
    ).mappings().one()


def note_login_failure(db: Session, info: RequestInfo) -> None:
    """Count a failed login against the client's address (password spraying is throttled by address)."""
    if info.ip_address:
        db.execute(text("SELECT gaas_iam.note_login_failure(CAST(:ip AS inet), :mins)"),
                   {"ip": info.ip_address, "mins": get_settings().login_address_window_minutes})


def _address_throttled(db: Session, info: RequestInfo) -> bool:
    if not info.ip_address:
        return False
    settings = get_settings()
    return bool(db.execute(text("SELECT gaas_iam.address_throttled(CAST(:ip AS inet), :limit, :mins)"),
                           {"ip": info.ip_address, "limit": settings.login_address_max_failures,
                            "mins": settings.login_address_window_minutes}).scalar_one())


def actor_from_token(db: Session, token_text: str, info: RequestInfo) -> Actor:
    parsed = security.parse_token(token_text)
    if parsed is None:
        raise Unauthenticated("The bearer token is malformed.")
    key, secret = parsed
    row = db.execute(text("SELECT * FROM gaas_iam.token_actor(:key, :hash)"),
                     {"key": key, "hash": security.hash_secret(secret)}).mappings().first()
    if row is None:
        raise Unauthenticated("The bearer token is not valid.")
    if row["revoked"]:
        raise Unauthenticated("The bearer token was revoked.")
    if row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC):
        raise Unauthenticated("The bearer token has expired.")
    if not row["user_active"]:
        raise Unauthenticated("The account is not active.")
    return _actor(row["user_id"], row["email"], row["domain"], row["grants"], read_only=row["read_only"], info=info)


def _build_actor(db: Session, user_id: uuid.UUID, email: str, domain: str | None, *, read_only: bool,
                 info: RequestInfo) -> Actor:
    rows = db.execute(text("SELECT * FROM gaas_iam.actor_grants(:uid)"), {"uid": user_id}).mappings().all()
    return _actor(user_id, email, domain, rows, read_only=read_only, info=info)


def _actor(user_id: uuid.UUID, email: str, domain: str | None, grant_rows: list, *, read_only: bool,
           info: RequestInfo) -> Actor:
    grants = tuple(
        Grant(permissions=frozenset(r["permissions"]), scope_type=r["scope_type"],
              scope_domain=r["scope_domain"], scope_id=uuid.UUID(str(r["scope_id"])) if r["scope_id"] else None)
        for r in grant_rows
    )
    visible: frozenset[str] | None
    if domain is None:
        visible = None
    else:
        visible = frozenset({domain} | {g.scope_domain for g in grants if g.scope_type == "domain" and g.scope_domain})
    return Actor(user_id=user_id, email=email, home_domain=domain, visible_domains=visible, grants=grants,
                 read_only=read_only, request=info)


def revoke_current_session(db: Session, actor: Actor, token_text: str) -> None:
    if actor.read_only:
        raise Forbidden("A read-only token cannot change anything, not even itself; let it expire or revoke it "
                        "with a read-write token.")
    parsed = security.parse_token(token_text)
    if parsed is None:
        return
    token = db.scalar(select(ApiToken).where(ApiToken.key == parsed[0]))
    if token is not None and token.revoked_at is None:
        token.audit_domain = actor.home_domain
        token.revoked_at = datetime.now(UTC)
        token.updated_by = actor.user_id


# ---- domains ----------------------------------------------------------------------------------

DOMAIN_SORTS = (SortKey("code", Domain.code), SortKey("name", Domain.name), SortKey("created_at", Domain.created_at))


def list_domains(db: Session, actor: Actor, *, active: bool | None, q: str | None, include_deleted: bool,
                 sort: str | None, cursor: str | None, limit: int) -> tuple[list[Domain], str | None]:
    if not actor.can_anywhere("domain.view"):
        raise Forbidden("Listing domains needs the 'domain.view' permission.", permission="domain.view")
    stmt = where_viewable(select(Domain), actor, "domain.view", Domain.code)
    if not include_deleted:
        stmt = stmt.where(Domain.deleted_at.is_(None))
    if active is not None:
        stmt = stmt.where(Domain.active.is_(active))
    if q:
        stmt = stmt.where(or_(Domain.code.ilike(contains_pattern(q)), Domain.name.ilike(contains_pattern(q))))
    return paginate(stmt, id_column=Domain.id, sort_keys=DOMAIN_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def get_domain(db: Session, actor: Actor, domain_id: uuid.UUID, *, include_deleted: bool = True) -> Domain:
    """A domain the caller may look at (domain.view there)."""
    domain = _domain(db, domain_id, include_deleted=include_deleted)
    if not actor.can("domain.view", domain.code):
        raise NotFound(f"No domain {domain_id}.")
    return domain


def _domain(db: Session, domain_id: uuid.UUID, *, include_deleted: bool = True) -> Domain:
    """For managing: whether the caller may is checked by the caller (domain.manage)."""
    domain = db.get(Domain, domain_id)
    if domain is None or (domain.deleted_at is not None and not include_deleted):
        raise NotFound(f"No domain {domain_id}.")
    return domain


def domain_by_code(db: Session, code: str) -> Domain | None:
    return db.scalar(select(Domain).where(Domain.code == code, Domain.deleted_at.is_(None)))


def require_active_domain(db: Session, code: str | None, field: str = "domain") -> None:
    """For other modules: a record's domain must exist, be active and visible to the caller."""
    if code is None:
        return
    domain = domain_by_code(db, code)
    if domain is None:
        raise ValidationProblem.field(field, f"no domain '{code}' that you can see", "unknown_domain")
    if not domain.active:
        raise ValidationProblem.field(field, f"domain '{code}' is not active", "inactive_domain")


def create_domain(db: Session, actor: Actor, data: DomainCreate) -> Domain:
    require(actor, "domain.manage", None)
    domain = Domain(**data.model_dump())
    stamp_created(domain, actor)
    db.add(domain)
    db.flush()
    return domain


def update_domain(db: Session, actor: Actor, domain_id: uuid.UUID, data: DomainUpdate, if_match: int | None) -> Domain:
    domain = _domain(db, domain_id, include_deleted=False)
    require(actor, "domain.manage", domain.code)
    apply_patch(domain, actor, data.model_dump(exclude_unset=True, exclude={"version"}),
                header_version=if_match, body_version=data.version)
    db.flush()
    return domain


def delete_domain(db: Session, actor: Actor, domain_id: uuid.UUID, if_match: int | None) -> Domain:
    domain = _domain(db, domain_id)
    require(actor, "domain.manage", None)
    in_use = db.scalar(select(func.count()).select_from(User).where(User.domain == domain.code,
                                                                    User.deleted_at.is_(None)))
    if in_use:
        raise Conflict(f"Domain '{domain.code}' still has {in_use} active user(s); move or delete them first.")
    soft_delete(domain, actor, header_version=if_match)
    db.flush()
    return domain


def restore_domain(db: Session, actor: Actor, domain_id: uuid.UUID) -> Domain:
    domain = _domain(db, domain_id)
    require(actor, "domain.manage", None)
    restore(domain, actor)
    db.flush()
    return domain


# ---- users ------------------------------------------------------------------------------------

USER_SORTS = (SortKey("name", User.name), SortKey("email", User.email), SortKey("created_at", User.created_at))


def _visible_with(actor: Actor, permission: str, column) -> Any:
    """SQL filter: rows whose domain grants `permission` (global rows need it anywhere)."""
    domains = actor.domains_with(permission)
    if domains is None:
        return None
    return or_(column.is_(None), column.in_(sorted(domains)))


def list_users(db: Session, actor: Actor, *, domain: str | None, status: UserStatus | None, q: str | None,
               email: str | None, include_deleted: bool, sort: str | None, cursor: str | None,
               limit: int) -> tuple[list[User], str | None]:
    if not actor.can_anywhere("user.view"):
        raise Forbidden("Listing users needs the 'user.view' permission.", permission="user.view")
    stmt: Select = select(User).where(User.id != SYSTEM_USER_ID)
    scope = _visible_with(actor, "user.view", User.domain)
    if scope is not None:
        stmt = stmt.where(scope)
    if not include_deleted:
        stmt = stmt.where(User.deleted_at.is_(None))
    if domain is not None:
        stmt = stmt.where(User.domain == domain)
    if status is not None:
        stmt = stmt.where(User.status == status)
    if email is not None:
        stmt = stmt.where(User.email == email.strip().lower())
    if q:
        pattern = contains_pattern(q)
        stmt = stmt.where(or_(User.name.ilike(pattern), User.email.ilike(pattern), User.username.ilike(pattern)))
    return paginate(stmt, id_column=User.id, sort_keys=USER_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def get_user(db: Session, actor: Actor, user_id: uuid.UUID, *, include_deleted: bool = True) -> User:
    """A user the caller may see (themselves, or with user.view), else 404."""
    user = db.get(User, user_id)
    if user is None or user.id == SYSTEM_USER_ID or (user.deleted_at is not None and not include_deleted):
        raise NotFound(f"No user {user_id}.")
    if user.id != actor.user_id and not (actor.can("user.view", user.domain)
                                         or (user.domain is None and actor.can_anywhere("user.view"))):
        raise NotFound(f"No user {user_id}.")
    return user


def user_allowed_in_domain(db: Session, user_id: uuid.UUID, domain: str) -> bool:
    """For other modules: an existing, active user whose home or granted domains include `domain`
    (answered by a definer function: the user may be outside the caller's own domains)."""
    return bool(db.scalar(text("SELECT gaas_iam.user_allowed_in_domain(:uid, :domain)"),
                          {"uid": user_id, "domain": domain}))


def user_is_active(db: Session, user_id: uuid.UUID) -> bool:
    """For other modules: an existing, active user (of any domain)."""
    return bool(db.scalar(text("SELECT gaas_iam.user_is_active(:uid)"), {"uid": user_id}))


def sight_of(db: Session, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, frozenset[str] | None]:
    """For work done later on users' behalf (webhook fan-out): the domains each active user may
    see now, None for a global user (every domain). Inactive and deleted users are left out."""
    if not user_ids:
        return {}
    rows = db.execute(text("""
        SELECT u.id, u.domain,
               (SELECT coalesce(array_agg(DISTINCT g.scope_domain) FILTER (WHERE g.scope_domain IS NOT NULL), '{}')
                FROM gaas_iam.actor_grants(u.id) g WHERE g.scope_type = 'domain') AS granted
        FROM gaas_iam.users u
        WHERE u.id = ANY(:ids) AND u.status = 'active' AND u.deleted_at IS NULL"""), {"ids": list(user_ids)})
    return {row.id: None if row.domain is None else frozenset({row.domain, *row.granted}) for row in rows}


def user_names(db: Session, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """For other modules' lists: the names of the users they mention that the caller may see
    (row-level security decides, as a join on users would)."""
    if not user_ids:
        return {}
    return {row.id: row.name for row in db.execute(select(User.id, User.name).where(User.id.in_(user_ids)))}


def create_user(db: Session, actor: Actor, data: UserCreate) -> User:
    require(actor, "user.create", data.domain)
    require_active_domain(db, data.domain)
    values = data.model_dump(exclude={"password"})
    values["email"] = values["email"].lower()
    user = User(**values)
    if data.password:
        security.check_password_policy(data.password, field="password", personal=[data.email, data.name])
        user.password_hash = security.hash_password(data.password)
        user.password_updated_at = datetime.now(UTC)
    stamp_created(user, actor)
    db.add(user)
    db.flush()
    return user


def require_authority_over(db: Session, actor: Actor, user: User, permission: str) -> None:
    """Acting on another user's account (password, tokens, status) is acting with all of their
    rights: the actor must hold `permission` in the user's domain *and* every permission the
    user holds, in each scope they hold it. Otherwise a domain administrator could take over a
    user who also has rights elsewhere."""
    require(actor, permission, user.domain)
    if user.id == actor.user_id:
        return
    rows = db.execute(text("SELECT * FROM gaas_iam.actor_grants(:uid)"), {"uid": user.id}).mappings().all()
    for row in rows:
        if row["scope_type"] == "global" and not actor.is_global:
            raise Forbidden("This user holds roles across the platform; only a global administrator may do this.")
        domain = row["scope_domain"] if row["scope_type"] == "domain" else user.domain
        missing = [p for p in row["permissions"] if not actor.can(p, domain)]
        if missing:
            raise Forbidden(f"This user holds rights you do not have ({', '.join(sorted(missing)[:5])}"
                            f"{'…' if len(missing) > 5 else ''}); ask an administrator who has them.")


def update_user(db: Session, actor: Actor, user_id: uuid.UUID, data: UserUpdate, if_match: int | None) -> User:
    user = get_user(db, actor, user_id, include_deleted=False)
    require_authority_over(db, actor, user, "user.edit")
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "email" in changes:
        changes["email"] = changes["email"].lower()
    if user.id == actor.user_id and changes.get("status") not in (None, UserStatus.active):
        raise Conflict("You cannot deactivate or lock your own account.")
    apply_patch(user, actor, changes, header_version=if_match, body_version=data.version)
    db.flush()
    return user


def update_me(db: Session, actor: Actor, changes: dict[str, Any], body_version: int | None,
              if_match: int | None) -> User:
    if actor.read_only:
        raise Forbidden("A read-only token cannot change anything.")
    user = get_user(db, actor, actor.user_id, include_deleted=False)
    apply_patch(user, actor, changes, header_version=if_match, body_version=body_version)
    db.flush()
    return user


def change_own_password(db: Session, actor: Actor, current_password: str, new_password: str) -> None:
    if actor.read_only:
        raise Forbidden("A read-only token cannot change anything.")
    row = db.execute(text("SELECT password_hash FROM gaas_iam.auth_lookup(:login)"),
                     {"login": actor.email}).first()
    if row is None or not security.verify_password(current_password, row[0]):
        raise ValidationProblem.field("current_password", "does not match", "wrong_password")
    user = get_user(db, actor, actor.user_id, include_deleted=False)
    if new_password == current_password:
        raise ValidationProblem.field("new_password", "must differ from the current password", "unchanged")
    _set_password(db, user, actor, new_password)
    db.flush()


def reset_password(db: Session, actor: Actor, user_id: uuid.UUID, new_password: str) -> User:
    user = get_user(db, actor, user_id, include_deleted=False)
    require_authority_over(db, actor, user, "user.reset_password")
    _set_password(db, user, actor, new_password)
    # A reset also clears a lockout: that is usually why it was asked for.
    user.failed_login_attempts = 0
    user.locked_until = None
    db.flush()
    return user


def _set_password(db: Session, user: User, actor: Actor, password: str) -> None:
    """Set a password and end every login session of the user: whoever knew the old password
    must not stay logged in. (API tokens are separate credentials and stay.)"""
    security.check_password_policy(password, field="new_password", personal=[user.email, user.name])
    user.password_hash = security.hash_password(password)
    user.password_updated_at = datetime.now(UTC)
    user.updated_by = actor.user_id
    sessions = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.kind == "session",
                                                 ApiToken.revoked_at.is_(None))).all()
    now = datetime.now(UTC)
    for token in sessions:
        token.audit_domain = user.domain
        token.revoked_at = now
        token.updated_by = actor.user_id


def unlock_user(db: Session, actor: Actor, user_id: uuid.UUID) -> User:
    user = get_user(db, actor, user_id, include_deleted=False)
    require_authority_over(db, actor, user, "user.edit")
    user.failed_login_attempts = 0
    user.locked_until = None
    if user.status == UserStatus.locked:
        user.status = UserStatus.active
    user.updated_by = actor.user_id
    db.flush()
    return user


def delete_user(db: Session, actor: Actor, user_id: uuid.UUID, if_match: int | None) -> User:
    user = get_user(db, actor, user_id)
    require_authority_over(db, actor, user, "user.delete")
    if user.id == actor.user_id:
        raise Conflict("You cannot delete your own account.")
    soft_delete(user, actor, header_version=if_match)
    db.flush()
    return user


def restore_user(db: Session, actor: Actor, user_id: uuid.UUID) -> User:
    user = get_user(db, actor, user_id)
    require(actor, "user.delete", user.domain)
    restore(user, actor)
    db.flush()
    return user


# ---- roles ------------------------------------------------------------------------------------

ROLE_SORTS = (SortKey("name", Role.name), SortKey("created_at", Role.created_at))


def list_roles(db: Session, actor: Actor, *, domain: str | None, name: str | None, permission: str | None,
               include_deleted: bool, sort: str | None, cursor: str | None,
               limit: int) -> tuple[list[Role], str | None]:
    if not actor.can_anywhere("role.view"):
        raise Forbidden("Listing roles needs the 'role.view' permission.", permission="role.view")
    stmt = select(Role)
    if not include_deleted:
        stmt = stmt.where(Role.deleted_at.is_(None))
    if domain is not None:
        stmt = stmt.where(Role.domain == domain)
    if name is not None:
        stmt = stmt.where(Role.name == name)
    if permission is not None:
        stmt = stmt.where(Role.permissions.contains([permission]))
    return paginate(stmt, id_column=Role.id, sort_keys=ROLE_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def get_role(db: Session, actor: Actor, role_id: uuid.UUID, *, include_deleted: bool = True) -> Role:
    role = db.get(Role, role_id)
    if role is None or (role.deleted_at is not None and not include_deleted) or not actor.can_anywhere("role.view"):
        raise NotFound(f"No role {role_id}.")
    return role


def _check_permissions(actor: Actor, permissions: Iterable[str], domain: str | None) -> list[str]:
    permissions = list(dict.fromkeys(permissions))
    unknown = unknown_permissions(permissions)
    if unknown:
        raise ValidationProblem(
            "Unknown permission(s): " + ", ".join(unknown),
            errors=[{"field": f"permissions[{permissions.index(p)}]", "message": f"unknown permission '{p}'",
                     "type": "unknown_permission"} for p in unknown],
        )
    # No escalation: a role can only carry permissions its author holds where it applies.
    missing = [p for p in permissions if not actor.can(p, domain)]
    if missing:
        raise Forbidden("You cannot grant permissions you do not hold: " + ", ".join(missing))
    return sorted(permissions)


def create_role(db: Session, actor: Actor, data: RoleCreate) -> Role:
    require(actor, "role.manage", data.domain)
    require_active_domain(db, data.domain)
    role = Role(name=data.name, description=data.description, domain=data.domain,
                permissions=_check_permissions(actor, data.permissions, data.domain), is_system=False)
    stamp_created(role, actor)
    db.add(role)
    db.flush()
    return role


def update_role(db: Session, actor: Actor, role_id: uuid.UUID, data: RoleUpdate, if_match: int | None) -> Role:
    role = get_role(db, actor, role_id, include_deleted=False)
    require(actor, "role.manage", role.domain)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "permissions" in changes:
        if role.is_system:
            raise ValidationProblem.field("permissions", "default roles follow the permission catalogue; "
                                          "create a custom role instead", "system_role")
        changes["permissions"] = _check_permissions(actor, changes["permissions"], role.domain)
    apply_patch(role, actor, changes, header_version=if_match, body_version=data.version)
    db.flush()
    return role


def delete_role(db: Session, actor: Actor, role_id: uuid.UUID, if_match: int | None) -> Role:
    role = get_role(db, actor, role_id)
    require(actor, "role.manage", role.domain)
    if role.is_system:
        raise Conflict(f"'{role.name}' is a default role and cannot be deleted.")
    soft_delete(role, actor, header_version=if_match)
    db.flush()
    return role


def restore_role(db: Session, actor: Actor, role_id: uuid.UUID) -> Role:
    role = get_role(db, actor, role_id)
    require(actor, "role.manage", role.domain)
    restore(role, actor)
    db.flush()
    return role


def sync_default_roles(db: Session, actor: Actor) -> int:
    """Create the default roles or bring their permissions in step with the catalogue."""
    changed = 0
    for name, (description, permissions) in DEFAULT_ROLES.items():
        role = db.scalar(select(Role).where(Role.name == name, Role.domain.is_(None)))
        if role is None:
            role = Role(name=name, description=description, domain=None, permissions=permissions, is_system=True)
            stamp_created(role, actor)
            db.add(role)
            changed += 1
        elif sorted(role.permissions) != permissions or role.description != description or not role.is_system:
            role.permissions, role.description, role.is_system = permissions, description, True
            role.updated_by = actor.user_id
            changed += 1
    db.flush()
    return changed


def role_by_name(db: Session, name: str, domain: str | None = None) -> Role | None:
    cond = Role.domain.is_(None) if domain is None else Role.domain == domain
    return db.scalar(select(Role).where(Role.name == name, cond, Role.deleted_at.is_(None)))


# ---- role assignments ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Assignment:
    id: uuid.UUID
    user_id: uuid.UUID
    role_id: uuid.UUID
    role_name: str
    scope_type: str
    scope_id: uuid.UUID | None
    scope_domain: str | None
    created_at: datetime
    created_by: uuid.UUID


def list_user_roles(db: Session, actor: Actor, user_id: uuid.UUID) -> list[Assignment]:
    user = get_user(db, actor, user_id)
    if user.id != actor.user_id and not actor.can_anywhere("role.view"):
        raise NotFound(f"No user {user_id}.")
    rows = db.execute(
        select(UserRole, Role.name, Domain.code)
        .join(Role, Role.id == UserRole.role_id)
        .outerjoin(Domain, (UserRole.scope_type == "domain") & (Domain.id == UserRole.scope_id))
        .where(UserRole.user_id == user_id)
        .order_by(UserRole.created_at, UserRole.id)
    ).all()
    return [_assignment(ur, role_name, code) for ur, role_name, code in rows]


def _assignment(ur: UserRole, role_name: str, scope_domain: str | None) -> Assignment:
    return Assignment(id=ur.id, user_id=ur.user_id, role_id=ur.role_id, role_name=role_name,
                      scope_type=ur.scope_type, scope_id=ur.scope_id, scope_domain=scope_domain,
                      created_at=ur.created_at, created_by=ur.created_by)


def _scope_domain(db: Session, actor: Actor, data: UserRoleCreate, role: Role) -> str | None:
    if data.scope_type == "global":
        if data.scope_id is not None:
            raise ValidationProblem.field("scope_id", "must be empty for a global scope")
        if role.domain is not None:
            raise ValidationProblem.field("scope_type", f"role '{role.name}' belongs to domain '{role.domain}': "
                                          "give it with a domain scope", "domain_role")
        if not actor.is_global:
            raise Forbidden("Only global administrators give roles with a global scope; use a domain scope.")
        return role.domain
    if data.scope_id is None:
        raise ValidationProblem.field("scope_id", f"is required for a {data.scope_type} scope", "missing")
    if data.scope_type == "service":
        # A service scope covers the service and its sub-tree, inside a domain the user already sees.
        from gaas.catalog import service as catalog  # the catalog depends on iam, not the reverse

        service = catalog.service_exists(db, actor, data.scope_id)
        if service is None:
            raise ValidationProblem.field("scope_id", "no service with this id that you can see", "unknown_service")
        if role.domain is not None and role.domain != service.domain:
            raise ValidationProblem.field("scope_id", f"role '{role.name}' belongs to domain '{role.domain}'")
        return service.domain
    domain = db.get(Domain, data.scope_id)
    if domain is None or domain.deleted_at is not None:
        raise ValidationProblem.field("scope_id", "no domain with this id that you can see", "unknown_domain")
    if role.domain is not None and role.domain != domain.code:
        raise ValidationProblem.field("scope_id", f"role '{role.name}' belongs to domain '{role.domain}'")
    return domain.code


def assign_role(db: Session, actor: Actor, user_id: uuid.UUID, data: UserRoleCreate) -> Assignment:
    user = get_user(db, actor, user_id, include_deleted=False)
    role = db.get(Role, data.role_id)
    if role is None or role.deleted_at is not None:
        raise ValidationProblem.field("role_id", "no role with this id that you can see", "unknown_role")
    scope_domain = _scope_domain(db, actor, data, role)
    require(actor, "role.assign", scope_domain)
    if not actor.sees(user.domain):
        raise Forbidden("You cannot change the roles of a user outside your domains.")
    _check_permissions(actor, role.permissions, scope_domain)
    duplicate = db.scalar(select(UserRole.id).where(
        UserRole.user_id == user_id, UserRole.role_id == role.id, UserRole.scope_type == data.scope_type,
        UserRole.scope_id.is_(None) if data.scope_id is None else UserRole.scope_id == data.scope_id))
    if duplicate is not None:
        raise Conflict("The user already has this role in this scope.", existing_id=str(duplicate))
    ur = UserRole(user_id=user_id, role_id=role.id, scope_type=data.scope_type, scope_id=data.scope_id,
                  created_by=actor.user_id)
    db.add(ur)
    db.flush()
    audit.record(db, action="assign_role", entity_type="user", entity_id=user_id, domain=user.domain,
                 changes={"after": {"role": role.name, "role_id": role.id, "scope_type": data.scope_type,
                                    "scope_id": data.scope_id, "assignment_id": ur.id}})
    db.refresh(ur)
    return _assignment(ur, role.name, scope_domain if data.scope_type == "domain" else None)


def unassign_role(db: Session, actor: Actor, user_id: uuid.UUID, assignment_id: uuid.UUID) -> None:
    user = get_user(db, actor, user_id)
    ur = db.get(UserRole, assignment_id)
    if ur is None or ur.user_id != user_id:
        raise NotFound(f"No role assignment {assignment_id} for this user.")
    role = db.get(Role, ur.role_id)
    scope_domain = None
    if ur.scope_type == "domain":
        domain = db.get(Domain, ur.scope_id)
        scope_domain = domain.code if domain else None
    require(actor, "role.assign", scope_domain if ur.scope_type == "domain" else (role.domain if role else None))
    if ur.scope_type == "global" and not actor.is_global:
        raise Forbidden("Only global administrators remove roles with a global scope.")
    if not actor.sees(user.domain):
        raise Forbidden("You cannot change the roles of a user outside your domains.")
    if user.id == actor.user_id and role is not None and "role.assign" in role.permissions:
        raise Conflict("You cannot remove your own role-administration role; ask another administrator.")
    hard_delete(db, ur)
    audit.record(db, action="unassign_role", entity_type="user", entity_id=user_id, domain=user.domain,
                 changes={"before": {"role": role.name if role else None, "role_id": ur.role_id,
                                     "scope_type": ur.scope_type, "scope_id": ur.scope_id,
                                     "assignment_id": ur.id}})


# ---- API tokens -----------------------------------------------------------------------------------

def _insert_token(db: Session, actor: Actor, *, user_id: uuid.UUID, user_domain: str | None, name: str,
                  kind: str, read_only: bool, expires_at: datetime | None) -> tuple[str, ApiToken]:
    new = security.new_token()
    token = ApiToken(user_id=user_id, name=name, kind=kind, key=new.key, read_only=read_only,
                     expires_at=expires_at)
    token.secret_hash = new.secret_hash
    token.audit_domain = user_domain
    stamp_created(token, actor)
    db.add(token)
    db.flush()
    return new.text, token


def create_token(db: Session, actor: Actor, data: TokenCreate,
                 user_id: uuid.UUID | None = None) -> tuple[str, ApiToken]:
    if actor.read_only:
        raise Forbidden("A read-only token cannot create tokens.")
    owner = get_user(db, actor, user_id or actor.user_id, include_deleted=False)
    if owner.id != actor.user_id:
        require_authority_over(db, actor, owner, "token.manage")
    expires = datetime.now(UTC) + timedelta(days=data.expires_in_days) if data.expires_in_days else None
    return _insert_token(db, actor, user_id=owner.id, user_domain=owner.domain, name=data.name, kind="api",
                         read_only=data.read_only, expires_at=expires)


def list_tokens(db: Session, actor: Actor, *, user_id: uuid.UUID | None, kind: str | None,
                include_revoked: bool) -> list[ApiToken]:
    target = user_id or actor.user_id
    if target != actor.user_id:
        owner = get_user(db, actor, target)
        require(actor, "token.manage", owner.domain)
    stmt = select(ApiToken).where(ApiToken.user_id == target).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if kind is not None:
        stmt = stmt.where(ApiToken.kind == kind)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None), ApiToken.deleted_at.is_(None))
    return list(db.scalars(stmt))


def revoke_token(db: Session, actor: Actor, token_id: uuid.UUID) -> ApiToken:
    if actor.read_only:
        raise Forbidden("A read-only token cannot revoke tokens.")
    token = db.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"No token {token_id}.")
    owner = db.get(User, token.user_id)
    if token.user_id != actor.user_id and (owner is None or not actor.can("token.manage", owner.domain)):
        raise NotFound(f"No token {token_id}.")
    if token.revoked_at is not None:
        raise Conflict("The token is already revoked.")
    token.audit_domain = owner.domain if owner else None
    now = datetime.now(UTC)
    token.revoked_at = now
    token.deleted_at = now
    token.updated_by = actor.user_id
    db.flush()
    return token


# ---- bootstrap ------------------------------------------------------------------------------------

def has_platform_admin(db: Session) -> bool:
    stmt = (select(func.count()).select_from(UserRole).join(Role, Role.id == UserRole.role_id)
            .join(User, User.id == UserRole.user_id)
            .where(Role.name == "platform_admin", Role.domain.is_(None), User.deleted_at.is_(None)))
    return bool(db.scalar(stmt))


def create_admin(db: Session, actor: Actor, *, username: str, email: str, password: str) -> User:
    """The first platform administrator: a global user holding platform_admin globally."""
    user = create_user(db, actor, UserCreate(email=email, username=username, name="Platform administrator",
                                             password=password, domain=None))
    role = role_by_name(db, "platform_admin")
    if role is None:
        raise Conflict("The default roles are missing; run 'gaas db upgrade'.")
    assign_role(db, actor, user.id, UserRoleCreate(role_id=role.id, scope_type="global"))
    return user

