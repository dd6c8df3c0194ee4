"""Service-portfolio API: thin translation from HTTP to gaas.catalog.service."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from gaas.catalog import service
from gaas.catalog.models import RelationshipType, ServiceStatus, ServiceType
from gaas.catalog.schemas import (
    PptBalance,
    RelationshipCreate,
    RelationshipOut,
    ServiceCreate,
    ServiceOut,
    ServiceUpdate,
    StakeholderCreate,
    StakeholderOut,
    TreeNode,
)
from gaas.core.history import register_history
from gaas.core.http import CurrentActor, DbSession, IfMatch, PageLimit, PreRenderedJSON, ReadDbSession, set_etag
from gaas.core.pagination import Page

router = APIRouter(prefix="/api/v1", tags=["services"])

register_history("services", "service", lambda db, actor, id_: service.get_service(db, actor, id_))


def _one(response: Response, record) -> ServiceOut:
    set_etag(response, record.version)
    return ServiceOut.model_validate(record)


@router.get("/services", response_model=Page[ServiceOut], summary="List and search services")
def list_services(
    db: DbSession, actor: CurrentActor, limit: PageLimit,
    domain: Annotated[str | None, Query(max_length=100)] = None,
    type: ServiceType | None = None,
    status: ServiceStatus | None = None,
    owner: Annotated[uuid.UUID | None, Query(description="owner_id")] = None,
    parent: Annotated[uuid.UUID | None, Query(description="parent_service_id")] = None,
    roots: Annotated[bool, Query(description="Only services without a parent")] = False,
    q: Annotated[str | None, Query(max_length=200, description="Fuzzy search in name and description, "
                                                              "ranked by similarity")] = None,
    include_deleted: bool = False,
    sort: Annotated[str | None, Query(max_length=50)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[ServiceOut]:
    rows, next_cursor = service.list_services(db, actor, domain=domain, type_=type, status=status, owner_id=owner,
                                              parent_id=parent, roots_only=roots, q=q,
                                              include_deleted=include_deleted, sort=sort, cursor=cursor,
                                              limit=limit)
    return Page[ServiceOut](items=[ServiceOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/services", response_model=ServiceOut, status_code=status.HTTP_201_CREATED)
def create_service(body: ServiceCreate, db: DbSession, actor: CurrentActor, response: Response) -> ServiceOut:
    return _one(response, service.create_service(db, actor, body))


@router.get("/services/tree", response_model=list[TreeNode], response_class=PreRenderedJSON,
            summary="Every service tree of a domain (or of all visible domains), with rolled-up PPT costs")
def domain_tree(db: DbSession, actor: CurrentActor,
                domain: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    return PreRenderedJSON(service.tree_json(db, actor, domain=domain))


@router.get("/services/{service_id}", response_model=ServiceOut)
def get_service(service_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> ServiceOut:
    return _one(response, service.get_service(db, actor, service_id))


@router.patch("/services/{service_id}", response_model=ServiceOut,
              summary="Edit, re-parent or move a service through its lifecycle")
def update_service(service_id: uuid.UUID, body: ServiceUpdate, db: DbSession, actor: CurrentActor,
                   response: Response, if_match: IfMatch) -> ServiceOut:
    return _one(response, service.update_service(db, actor, service_id, body, if_match))


@router.delete("/services/{service_id}", response_model=ServiceOut)
def delete_service(service_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                   if_match: IfMatch) -> ServiceOut:
    return _one(response, service.delete_service(db, actor, service_id, if_match))


@router.post("/services/{service_id}/restore", response_model=ServiceOut)
def restore_service(service_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> ServiceOut:
    return _one(response, service.restore_service(db, actor, service_id))


@router.get("/services/{service_id}/tree", response_model=list[TreeNode], response_class=PreRenderedJSON,
            summary="A service and its sub-tree, with rolled-up PPT costs")
def service_tree(service_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> Response:
    return PreRenderedJSON(service.tree_json(db, actor, root_id=service_id))


@router.get("/services/{service_id}/relationships", response_model=list[RelationshipOut])
def list_relationships(service_id: uuid.UUID, db: DbSession, actor: CurrentActor,
                       direction: Literal["both", "outgoing", "incoming"] = "both",
                       type: RelationshipType | None = None) -> list[RelationshipOut]:
    rows = service.list_relationships(db, actor, service_id, direction=direction, type_=type)
    return [RelationshipOut.model_validate(r) for r in rows]


@router.post("/services/{service_id}/relationships", response_model=RelationshipOut,
             status_code=status.HTTP_201_CREATED)
def add_relationship(service_id: uuid.UUID, body: RelationshipCreate, db: DbSession,
                     actor: CurrentActor) -> RelationshipOut:
    return RelationshipOut.model_validate(service.add_relationship(db, actor, service_id, body))


@router.delete("/services/{service_id}/relationships/{relationship_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_relationship(service_id: uuid.UUID, relationship_id: uuid.UUID, db: DbSession,
                        actor: CurrentActor) -> None:
    service.remove_relationship(db, actor, service_id, relationship_id)


@router.get("/services/{service_id}/stakeholders", response_model=list[StakeholderOut])
def list_stakeholders(service_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> list[StakeholderOut]:
    return [StakeholderOut.model_validate(s) for s in service.list_stakeholders(db, actor, service_id)]


@router.post("/services/{service_id}/stakeholders", response_model=StakeholderOut,
             status_code=status.HTTP_201_CREATED)
def add_stakeholder(service_id: uuid.UUID, body: StakeholderCreate, db: DbSession,
                    actor: CurrentActor) -> StakeholderOut:
    return StakeholderOut.model_validate(service.add_stakeholder(db, actor, service_id, body))


@router.delete("/services/{service_id}/stakeholders/{stakeholder_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_stakeholder(service_id: uuid.UUID, stakeholder_id: uuid.UUID, db: DbSession,
                       actor: CurrentActor) -> None:
    service.remove_stakeholder(db, actor, service_id, stakeholder_id)


@router.get("/reports/ppt-balance", response_model=list[PptBalance], tags=["reports"],
            summary="People/Process/Technology split of active services, per domain")
def ppt_balance(db: ReadDbSession, actor: CurrentActor,
                domain: Annotated[str | None, Query(max_length=100)] = None) -> list[PptBalance]:
    return service.ppt_balance(db, actor, domain)
