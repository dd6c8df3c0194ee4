"""Identity API: thin translation from HTTP to gaas.iam.service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials

from gaas.core.context import Actor
from gaas.core.errors import TooManyRequests, Unauthenticated
from gaas.core.history import register_history
from gaas.core.http import CurrentActor, DbSession, IfMatch, PageLimit, bearer, request_info, set_etag
from gaas.core.pagination import Page
from gaas.core.settings import get_settings
from gaas.iam import service
from gaas.iam.models import UserStatus
from gaas.iam.schemas import (
    AccessToken,
    DomainCreate,
    DomainOut,
    DomainUpdate,
    Me,
    MeUpdate,
    PasswordChange,
    PasswordReset,
    RoleCreate,
    RoleOut,
    RoleUpdate,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserRoleCreate,
    UserRoleOut,
    UserUpdate,
)

router = APIRouter(prefix="/api/v1")

Cursor = Annotated[str | None, Query(max_length=500, description="next_cursor of the previous page")]
Sort = Annotated[str | None, Query(max_length=50, description="Field to order by; prefix '-' to reverse")]
IncludeDeleted = Annotated[bool, Query(description="Also list soft-deleted records")]

register_history("users", "user", lambda db, actor, id_: service.get_user(db, actor, id_))
register_history("roles", "role", lambda db, actor, id_: service.get_role(db, actor, id_))
register_history("domains", "domain", lambda db, actor, id_: service.get_domain(db, actor, id_))


def _one(response: Response, record, schema):
    set_etag(response, record.version)
    return schema.model_validate(record)


# ---- authentication ---------------------------------------------------------------------------

@router.post("/auth/token", response_model=AccessToken, tags=["auth"],
             summary="Log in with a password (OAuth2 password form); returns a bearer token")
def login(
    request: Request,
    db: DbSession,
    username: Annotated[str, Form(max_length=255, description="E-mail or user name")],
    password: Annotated[str, Form(max_length=1024)],
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> AccessToken:
    result = service.authenticate(db, username, password, request_info(request))
    # Commit failures too: the failed-attempt count, the lock and the audit row must stay.
    db.commit()
    if not result.ok:
        if result.throttled:
            minutes = get_settings().login_address_window_minutes
            raise TooManyRequests("Too many failed logins from your address: wait before trying again.",
                                  headers={"Retry-After": str(60 * minutes)})
        if result.locked_until is not None:
            raise Unauthenticated("Too many failed logins: the account is locked for a while.",
                                  locked_until=result.locked_until.isoformat())
        raise Unauthenticated("Wrong user name or password.")
    return AccessToken(access_token=result.token, expires_at=result.expires_at)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"],
             summary="Revoke the token this request was made with")
def logout(db: DbSession, actor: CurrentActor,
           credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> None:
    service.revoke_current_session(db, actor, credentials.credentials)


def _me(db, actor: Actor) -> Me:
    user = service.get_user(db, actor, actor.user_id)
    permissions = [{"permissions": sorted(g.permissions), "scope_type": g.scope_type,
                    "scope_domain": g.scope_domain, "scope_id": str(g.scope_id) if g.scope_id else None}
                   for g in actor.grants]
    visible = None if actor.visible_domains is None else sorted(actor.visible_domains)
    return Me(**UserOut.model_validate(user).model_dump(), visible_domains=visible, permissions=permissions)


@router.get("/me", response_model=Me, tags=["auth"], summary="Who am I, and what may I do")
def me(db: DbSession, actor: CurrentActor, response: Response) -> Me:
    result = _me(db, actor)
    set_etag(response, result.version)
    return result


@router.patch("/me", response_model=Me, tags=["auth"], summary="Edit my profile (name, phone, language, time zone)")
def update_me(body: MeUpdate, db: DbSession, actor: CurrentActor, response: Response, if_match: IfMatch) -> Me:
    service.update_me(db, actor, body.model_dump(exclude_unset=True, exclude={"version"}), body.version, if_match)
    result = _me(db, actor)
    set_etag(response, result.version)
    return result


@router.post("/me/password", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"], summary="Change my password")
def change_password(body: PasswordChange, db: DbSession, actor: CurrentActor) -> None:
    service.change_own_password(db, actor, body.current_password, body.new_password)


# ---- domains ----------------------------------------------------------------------------------

@router.get("/domains", response_model=Page[DomainOut], tags=["domains"])
def list_domains(db: DbSession, actor: CurrentActor, limit: PageLimit, active: bool | None = None,
                 q: Annotated[str | None, Query(max_length=200)] = None, include_deleted: IncludeDeleted = False,
                 sort: Sort = None, cursor: Cursor = None) -> Page[DomainOut]:
    rows, next_cursor = service.list_domains(db, actor, active=active, q=q, include_deleted=include_deleted,
                                             sort=sort, cursor=cursor, limit=limit)
    return Page[DomainOut](items=[DomainOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/domains", response_model=DomainOut, status_code=status.HTTP_201_CREATED, tags=["domains"])
def create_domain(body: DomainCreate, db: DbSession, actor: CurrentActor, response: Response) -> DomainOut:
    return _one(response, service.create_domain(db, actor, body), DomainOut)


@router.get("/domains/{domain_id}", response_model=DomainOut, tags=["domains"])
def get_domain(domain_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> DomainOut:
    return _one(response, service.get_domain(db, actor, domain_id), DomainOut)


@router.patch("/domains/{domain_id}", response_model=DomainOut, tags=["domains"])
def update_domain(domain_id: uuid.UUID, body: DomainUpdate, db: DbSession, actor: CurrentActor,
                  response: Response, if_match: IfMatch) -> DomainOut:
    return _one(response, service.update_domain(db, actor, domain_id, body, if_match), DomainOut)


@router.delete("/domains/{domain_id}", response_model=DomainOut, tags=["domains"])
def delete_domain(domain_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                  if_match: IfMatch) -> DomainOut:
    return _one(response, service.delete_domain(db, actor, domain_id, if_match), DomainOut)


@router.post("/domains/{domain_id}/restore", response_model=DomainOut, tags=["domains"])
def restore_domain(domain_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> DomainOut:
    return _one(response, service.restore_domain(db, actor, domain_id), DomainOut)


# ---- users ------------------------------------------------------------------------------------

@router.get("/users", response_model=Page[UserOut], tags=["users"])
def list_users(db: DbSession, actor: CurrentActor, limit: PageLimit,
               domain: Annotated[str | None, Query(max_length=100)] = None, status: UserStatus | None = None,
               q: Annotated[str | None, Query(max_length=200, description="Part of name, e-mail or user name")] = None,
               email: Annotated[str | None, Query(max_length=255)] = None, include_deleted: IncludeDeleted = False,
               sort: Sort = None, cursor: Cursor = None) -> Page[UserOut]:
    rows, next_cursor = service.list_users(db, actor, domain=domain, status=status, q=q, email=email,
                                           include_deleted=include_deleted, sort=sort, cursor=cursor, limit=limit)
    return Page[UserOut](items=[UserOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, tags=["users"])
def create_user(body: UserCreate, db: DbSession, actor: CurrentActor, response: Response) -> UserOut:
    return _one(response, service.create_user(db, actor, body), UserOut)


@router.get("/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(user_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> UserOut:
    return _one(response, service.get_user(db, actor, user_id), UserOut)


@router.patch("/users/{user_id}", response_model=UserOut, tags=["users"])
def update_user(user_id: uuid.UUID, body: UserUpdate, db: DbSession, actor: CurrentActor, response: Response,
                if_match: IfMatch) -> UserOut:
    return _one(response, service.update_user(db, actor, user_id, body, if_match), UserOut)


@router.delete("/users/{user_id}", response_model=UserOut, tags=["users"])
def delete_user(user_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                if_match: IfMatch) -> UserOut:
    return _one(response, service.delete_user(db, actor, user_id, if_match), UserOut)


@router.post("/users/{user_id}/restore", response_model=UserOut, tags=["users"])
def restore_user(user_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> UserOut:
    return _one(response, service.restore_user(db, actor, user_id), UserOut)


@router.post("/users/{user_id}/unlock", response_model=UserOut, tags=["users"],
             summary="Clear a lockout after failed logins")
def unlock_user(user_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> UserOut:
    return _one(response, service.unlock_user(db, actor, user_id), UserOut)


@router.post("/users/{user_id}/password", response_model=UserOut, tags=["users"],
             summary="Set another user's password (administrators)")
def reset_password(user_id: uuid.UUID, body: PasswordReset, db: DbSession, actor: CurrentActor,
                   response: Response) -> UserOut:
    return _one(response, service.reset_password(db, actor, user_id, body.new_password), UserOut)


@router.get("/users/{user_id}/roles", response_model=list[UserRoleOut], tags=["users"])
def list_user_roles(user_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> list[UserRoleOut]:
    return [UserRoleOut.model_validate(a) for a in service.list_user_roles(db, actor, user_id)]


@router.post("/users/{user_id}/roles", response_model=UserRoleOut, status_code=status.HTTP_201_CREATED,
             tags=["users"])
def assign_role(user_id: uuid.UUID, body: UserRoleCreate, db: DbSession, actor: CurrentActor) -> UserRoleOut:
    return UserRoleOut.model_validate(service.assign_role(db, actor, user_id, body))


@router.delete("/users/{user_id}/roles/{assignment_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
def unassign_role(user_id: uuid.UUID, assignment_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> None:
    service.unassign_role(db, actor, user_id, assignment_id)


# ---- roles ------------------------------------------------------------------------------------

@router.get("/roles", response_model=Page[RoleOut], tags=["roles"])
def list_roles(db: DbSession, actor: CurrentActor, limit: PageLimit,
               domain: Annotated[str | None, Query(max_length=100)] = None,
               name: Annotated[str | None, Query(max_length=100)] = None,
               permission: Annotated[str | None, Query(max_length=100)] = None,
               include_deleted: IncludeDeleted = False, sort: Sort = None, cursor: Cursor = None) -> Page[RoleOut]:
    rows, next_cursor = service.list_roles(db, actor, domain=domain, name=name, permission=permission,
                                           include_deleted=include_deleted, sort=sort, cursor=cursor, limit=limit)
    return Page[RoleOut](items=[RoleOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.get("/permissions", tags=["roles"], summary="The permission catalogue roles are built from")
def list_permissions(actor: CurrentActor) -> dict[str, str]:
    from gaas.iam.permissions import PERMISSIONS

    return PERMISSIONS


@router.post("/roles", response_model=RoleOut, status_code=status.HTTP_201_CREATED, tags=["roles"])
def create_role(body: RoleCreate, db: DbSession, actor: CurrentActor, response: Response) -> RoleOut:
    return _one(response, service.create_role(db, actor, body), RoleOut)


@router.get("/roles/{role_id}", response_model=RoleOut, tags=["roles"])
def get_role(role_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> RoleOut:
    return _one(response, service.get_role(db, actor, role_id), RoleOut)


@router.patch("/roles/{role_id}", response_model=RoleOut, tags=["roles"])
def update_role(role_id: uuid.UUID, body: RoleUpdate, db: DbSession, actor: CurrentActor, response: Response,
                if_match: IfMatch) -> RoleOut:
    return _one(response, service.update_role(db, actor, role_id, body, if_match), RoleOut)


@router.delete("/roles/{role_id}", response_model=RoleOut, tags=["roles"])
def delete_role(role_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                if_match: IfMatch) -> RoleOut:
    return _one(response, service.delete_role(db, actor, role_id, if_match), RoleOut)


@router.post("/roles/{role_id}/restore", response_model=RoleOut, tags=["roles"])
def restore_role(role_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> RoleOut:
    return _one(response, service.restore_role(db, actor, role_id), RoleOut)


# ---- tokens -----------------------------------------------------------------------------------

@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"],
            summary="My API tokens (or another user's, with token.manage)")
def list_tokens(db: DbSession, actor: CurrentActor, user_id: uuid.UUID | None = None,
                kind: Annotated[str | None, Query(pattern="^(api|session)$")] = None,
                include_revoked: bool = False) -> list[TokenOut]:
    tokens = service.list_tokens(db, actor, user_id=user_id, kind=kind, include_revoked=include_revoked)
    return [TokenOut.model_validate(t) for t in tokens]


@router.post("/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, tags=["tokens"],
             summary="Create an API token; the whole token is shown only in this response")
def create_token(body: TokenCreate, db: DbSession, actor: CurrentActor,
                 user_id: Annotated[uuid.UUID | None, Query(description="For another user (token.manage)")] = None,
                 ) -> TokenCreated:
    text, token = service.create_token(db, actor, body, user_id)
    return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=text)


@router.delete("/tokens/{token_id}", response_model=TokenOut, tags=["tokens"], summary="Revoke a token")
def revoke_token(token_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> TokenOut:
    return TokenOut.model_validate(service.revoke_token(db, actor, token_id))
