"""CMDB API: thin translation from HTTP to gaas.cmdb.service."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, Response, UploadFile, status

from gaas.cmdb import importer, service
from gaas.cmdb.models import CIRelationshipType, CIStatus, Environment
from gaas.cmdb.schemas import (
    CIClassCreate,
    CIClassOut,
    CIClassUpdate,
    CICreate,
    CIOut,
    CIRelationshipCreate,
    CIRelationshipOut,
    CIUpdate,
    ImpactReport,
)
from gaas.core.errors import ValidationProblem
from gaas.core.history import register_history
from gaas.core.http import CurrentActor, DbSession, IfMatch, PageLimit, PreRenderedJSON, set_etag
from gaas.core.pagination import Page

router = APIRouter(prefix="/api/v1", tags=["cmdb"])
Cursor = Annotated[str | None, Query(max_length=500)]

register_history("cis", "ci", lambda db, actor, id_: service.get_ci(db, actor, id_))
register_history("ci-classes", "ci_class", lambda db, actor, id_: service.get_class(db, actor, id_))


def _ci(response: Response, ci) -> CIOut:
    set_etag(response, ci.version)
    return CIOut.model_validate(ci)


def _class(response: Response, cls) -> CIClassOut:
    set_etag(response, cls.version)
    return CIClassOut.model_validate(cls)


def _attribute_filters(request: Request) -> dict[str, str]:
    """`?attr.os=Ubuntu 22.04` -> {"os": "Ubuntu 22.04"}"""
    filters = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("attr."):
            name = key[5:]
            if not name or len(name) > 100 or len(value) > 500:
                raise ValidationProblem.field(key, "attribute filters are attr.<name>=<value>")
            filters[name] = value
    return filters


# ---- classes ------------------------------------------------------------------------------------

@router.get("/ci-classes", response_model=Page[CIClassOut])
def list_classes(db: DbSession, actor: CurrentActor, limit: PageLimit,
                 domain: Annotated[str | None, Query(max_length=100)] = None, include_deleted: bool = False,
                 cursor: Cursor = None) -> Page[CIClassOut]:
    rows, next_cursor = service.list_classes(db, actor, domain=domain, include_deleted=include_deleted,
                                             cursor=cursor, limit=limit)
    return Page[CIClassOut](items=[CIClassOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/ci-classes", response_model=CIClassOut, status_code=status.HTTP_201_CREATED)
def create_class(body: CIClassCreate, db: DbSession, actor: CurrentActor, response: Response) -> CIClassOut:
    return _class(response, service.create_class(db, actor, body))


@router.get("/ci-classes/{class_id}", response_model=CIClassOut)
def get_class(class_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> CIClassOut:
    return _class(response, service.get_class(db, actor, class_id))


@router.patch("/ci-classes/{class_id}", response_model=CIClassOut)
def update_class(class_id: uuid.UUID, body: CIClassUpdate, db: DbSession, actor: CurrentActor, response: Response,
                 if_match: IfMatch) -> CIClassOut:
    return _class(response, service.update_class(db, actor, class_id, body, if_match))


@router.delete("/ci-classes/{class_id}", response_model=CIClassOut)
def delete_class(class_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                 if_match: IfMatch) -> CIClassOut:
    return _class(response, service.delete_class(db, actor, class_id, if_match))


@router.post("/ci-classes/{class_id}/restore", response_model=CIClassOut)
def restore_class(class_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> CIClassOut:
    return _class(response, service.restore_class(db, actor, class_id))


# ---- configuration items ------------------------------------------------------------------------------

@router.get("/cis", response_model=Page[CIOut], summary="List and search configuration items; "
            "filter attributes with attr.<name>=<value>")
def list_cis(request: Request, db: DbSession, actor: CurrentActor, limit: PageLimit,
             domain: Annotated[str | None, Query(max_length=100)] = None,
             ci_class: Annotated[str | None, Query(alias="class", max_length=100)] = None,
             status: CIStatus | None = None, environment: Environment | None = None,
             service_id: Annotated[uuid.UUID | None, Query(alias="service")] = None,
             q: Annotated[str | None, Query(max_length=200, description="Fuzzy name search")] = None,
             include_deleted: bool = False, sort: Annotated[str | None, Query(max_length=50)] = None,
             health: Annotated[str | None, Query(max_length=50, description="Only CIs with this health problem "
                                                 "(see /cmdb/health)")] = None,
             cursor: Cursor = None) -> Page[CIOut]:
    rows, next_cursor = service.list_cis(db, actor, domain=domain, ci_class=ci_class, status=status,
                                         environment=environment, service_id=service_id, q=q,
                                         attributes=_attribute_filters(request), include_deleted=include_deleted,
                                         sort=sort, cursor=cursor, limit=limit, health_flag=health)
    return Page[CIOut](items=[CIOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/cis", response_model=CIOut, status_code=status.HTTP_201_CREATED)
def create_ci(body: CICreate, db: DbSession, actor: CurrentActor, response: Response) -> CIOut:
    return _ci(response, service.create_ci(db, actor, body))


@router.get("/cis/{ci_id}", response_model=CIOut)
def get_ci(ci_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> CIOut:
    return _ci(response, service.get_ci(db, actor, ci_id))


@router.patch("/cis/{ci_id}", response_model=CIOut, summary="Edit a CI (attributes are replaced as a whole)")
def update_ci(ci_id: uuid.UUID, body: CIUpdate, db: DbSession, actor: CurrentActor, response: Response,
              if_match: IfMatch) -> CIOut:
    return _ci(response, service.update_ci(db, actor, ci_id, body, if_match))


@router.delete("/cis/{ci_id}", response_model=CIOut)
def delete_ci(ci_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response, if_match: IfMatch) -> CIOut:
    return _ci(response, service.delete_ci(db, actor, ci_id, if_match))


@router.post("/cis/{ci_id}/restore", response_model=CIOut)
def restore_ci(ci_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> CIOut:
    return _ci(response, service.restore_ci(db, actor, ci_id))


def _types(relationship_types: str | None) -> list[CIRelationshipType] | None:
    if not relationship_types:
        return None
    try:
        return [CIRelationshipType(t.strip()) for t in relationship_types.split(",") if t.strip()]
    except ValueError as exc:
        raise ValidationProblem.field("relationship_types", f"use any of {[t.value for t in CIRelationshipType]}",
                                      "enum") from exc


def _json(report: dict) -> Response:
    """Large reports are serialised directly (documented by the route's response_model)."""
    return PreRenderedJSON(json.dumps(report, separators=(",", ":")))


@router.get("/cis/{ci_id}/impact", response_model=ImpactReport, response_class=PreRenderedJSON,
            summary="Everything affected if this CI fails, each at its shortest depth with the path that explains "
                    "it, and the services and business services reached")
def impact(ci_id: uuid.UUID, db: DbSession, actor: CurrentActor,
           max_depth: Annotated[int, Query(ge=1, le=service.MAX_IMPACT_DEPTH)] = 10,
           relationship_types: Annotated[str | None, Query(max_length=200, description="Comma-separated; default "
                                                           "depends_on,runs_on,part_of")] = None,
           limit: Annotated[int, Query(ge=1, le=service.IMPACT_PAGE_MAX)] = 1000, cursor: Cursor = None) -> Response:
    return _json(service.impact(db, actor, ci_id, dependents=True, max_depth=max_depth,
                                relationship_types=_types(relationship_types), limit=limit, cursor=cursor))


@router.get("/cis/{ci_id}/dependencies", response_model=ImpactReport, response_class=PreRenderedJSON,
            summary="What this CI needs: the opposite direction of impact")
def dependencies(ci_id: uuid.UUID, db: DbSession, actor: CurrentActor,
                 max_depth: Annotated[int, Query(ge=1, le=service.MAX_IMPACT_DEPTH)] = 10,
                 relationship_types: Annotated[str | None, Query(max_length=200)] = None,
                 limit: Annotated[int, Query(ge=1, le=service.IMPACT_PAGE_MAX)] = 1000,
                 cursor: Cursor = None) -> Response:
    return _json(service.impact(db, actor, ci_id, dependents=False, max_depth=max_depth,
                                relationship_types=_types(relationship_types), limit=limit, cursor=cursor))


# ---- relationships ------------------------------------------------------------------------------------

@router.get("/ci-relationships", response_model=Page[CIRelationshipOut])
def list_relationships(db: DbSession, actor: CurrentActor, limit: PageLimit,
                       ci: Annotated[uuid.UUID | None, Query(description="Either end")] = None,
                       source_ci_id: uuid.UUID | None = None, target_ci_id: uuid.UUID | None = None,
                       type: CIRelationshipType | None = None,
                       cursor: Cursor = None) -> Page[CIRelationshipOut]:
    rows, next_cursor = service.list_relationships(db, actor, ci_id=ci, source_ci_id=source_ci_id,
                                                   target_ci_id=target_ci_id, type_=type, cursor=cursor, limit=limit)
    return Page[CIRelationshipOut](items=[CIRelationshipOut.model_validate(r) for r in rows],
                                   next_cursor=next_cursor, limit=limit)


@router.post("/ci-relationships", response_model=CIRelationshipOut, status_code=status.HTTP_201_CREATED)
def create_relationship(body: CIRelationshipCreate, db: DbSession, actor: CurrentActor) -> CIRelationshipOut:
    return CIRelationshipOut.model_validate(service.create_relationship(db, actor, body))


@router.delete("/ci-relationships/{relationship_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_relationship(relationship_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> None:
    service.delete_relationship(db, actor, relationship_id)


@router.get("/cmdb/health", summary="CMDB health per domain and class: completeness, staleness, orphans, "
            "duplicates, broken links; each with the link that lists the CIs")
def cmdb_health(db: DbSession, actor: CurrentActor, domain: Annotated[str | None, Query(max_length=100)] = None,
                ci_class: Annotated[str | None, Query(alias="class", max_length=100)] = None) -> list[dict]:
    return service.health_report(db, actor, domain=domain, ci_class=ci_class)


FORMATS = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "json"}


@router.post("/cmdb/import", summary="Discovery import: reconcile a file of CIs and relationships from a source",
             responses={422: {"description": "Bad rows (each with its line, field and reason); nothing written "
                                             "unless partial=true"}})
def import_cis(
    db: DbSession, actor: CurrentActor,
    file: Annotated[UploadFile, File(description="CSV, NDJSON (one JSON object a line) or a JSON array")],
    source: Annotated[str, Query(max_length=100, description="Who discovered these, e.g. aws-auto-discovery")],
    domain: Annotated[str | None, Query(max_length=100, description="Domain of rows that name none")] = None,
    format: Annotated[str | None, Query(pattern="^(csv|ndjson|json)$")] = None,
    dry_run: bool = False,
    partial: Annotated[bool, Query(description="Commit the good rows even if some are bad")] = False,
) -> dict:
    name = (file.filename or "").lower()
    fmt = format or next((f for suffix, f in FORMATS.items() if name.endswith(suffix)), None)
    if fmt is None:
        raise ValidationProblem.field("format", "say format=csv|ndjson|json, or name the file .csv/.ndjson/.json")
    result = importer.import_cis(db, actor, importer.read_rows(file.file, fmt), source=source, dry_run=dry_run,
                                 partial=partial, default_domain=domain)
    if not result.committed:
        db.rollback()  # a dry run, or bad rows without partial: nothing is written
    report = {k: v for k, v in vars(result).items() if k != "errors"}
    if result.rejected and not partial and not dry_run:
        raise ValidationProblem(f"{result.rejected} row(s) are not valid; nothing was written (partial=true commits "
                                "the good rows).",
                                errors=[{**e, "field": f"line {e['line']}: {e['field']}"} for e in result.errors],
                                report=report)
    return {**report, "errors": result.errors}
