"""Change API: thin translation to gaas.changes.service (and its planning part)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gaas.changes import planning, service
from gaas.changes.models import ChangeRisk, ChangeStatus, ChangeType, WindowKind
from gaas.changes.schemas import (
    CausedIncidentLink,
    CausedIncidentOut,
    ChangeCalendar,
    ChangeCreate,
    ChangeOut,
    ChangeUpdate,
    ConflictReport,
    RiskAssessment,
    TemplateCreate,
    TemplateOut,
    TemplateUpdate,
    WindowCreate,
    WindowOut,
    WindowUpdate,
)
from gaas.core.errors import ValidationProblem
from gaas.core.history import register_history
from gaas.core.http import CurrentActor, DbSession, IfMatch, PageLimit, set_etag
from gaas.core.pagination import Page

router = APIRouter(prefix="/api/v1", tags=["changes"])
Cursor = Annotated[str | None, Query(max_length=500)]
Sort = Annotated[str | None, Query(max_length=50)]
DomainQuery = Annotated[str | None, Query(max_length=100)]

register_history("changes", "change", lambda db, actor, id_: service.get_change(db, actor, id_))
register_history("change-templates", "change_template", lambda db, actor, id_: planning.get_template(db, actor, id_))
register_history("change-windows", "change_window", lambda db, actor, id_: planning.get_window(db, actor, id_))


def _change(response: Response, change) -> ChangeOut:
    set_etag(response, change.version)
    return ChangeOut.model_validate(change)


def _template(response: Response, template) -> TemplateOut:
    set_etag(response, template.version)
    return TemplateOut.model_validate(template)


def _window(response: Response, window) -> WindowOut:
    set_etag(response, window.version)
    return WindowOut.model_validate(window)


# ---- changes --------------------------------------------------------------------------------------

@router.get("/changes", response_model=Page[ChangeOut])
def list_changes(
    db: DbSession, actor: CurrentActor, limit: PageLimit, domain: DomainQuery = None,
    status_: Annotated[list[ChangeStatus] | None, Query(alias="status")] = None,
    type_: Annotated[ChangeType | None, Query(alias="type")] = None, risk: ChangeRisk | None = None,
    service_id: Annotated[uuid.UUID | None, Query(alias="service")] = None,
    ci_id: Annotated[uuid.UUID | None, Query(alias="ci", description="Changes whose affected CIs include it")] = None,
    requested_by: uuid.UUID | None = None,
    assigned_to: Annotated[str | None, Query(max_length=36, description="A user id, or 'me'")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None, include_deleted: bool = False, sort: Sort = None,
    cursor: Cursor = None,
) -> Page[ChangeOut]:
    assignee = None
    if assigned_to is not None:
        try:
            assignee = actor.user_id if assigned_to == "me" else uuid.UUID(assigned_to)
        except ValueError as exc:
            raise ValidationProblem.field("assigned_to", "a user id or 'me'") from exc
    rows, next_cursor = service.list_changes(
        db, actor, domain=domain, status=status_, type_=type_, risk=risk, service_id=service_id, ci_id=ci_id,
        requested_by=requested_by, assigned_to=assignee, q=q, include_deleted=include_deleted, sort=sort,
        cursor=cursor, limit=limit)
    return Page[ChangeOut](items=[ChangeOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/changes", response_model=ChangeOut, status_code=status.HTTP_201_CREATED,
             summary="Request a change (a draft); its suggested risk comes from the affected CIs' impact")
def create_change(body: ChangeCreate, db: DbSession, actor: CurrentActor, response: Response) -> ChangeOut:
    return _change(response, service.create_change(db, actor, body))


@router.get("/changes/calendar", response_model=ChangeCalendar, response_model_by_alias=True,
            summary="Changes planned in a period, and the change windows' occurrences in it")
def change_calendar(db: DbSession, actor: CurrentActor,
                    from_: Annotated[datetime, Query(alias="from")], to: datetime, domain: DomainQuery = None,
                    service_id: Annotated[uuid.UUID | None, Query(alias="service")] = None) -> ChangeCalendar:
    return service.calendar(db, actor, from_, to, domain=domain, service_id=service_id)


@router.get("/changes/{change_id}", response_model=ChangeOut)
def get_change(change_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> ChangeOut:
    return _change(response, service.get_change(db, actor, change_id))


@router.patch("/changes/{change_id}", response_model=ChangeOut,
              summary="Edit, submit, review, approve or reject, schedule or reschedule, implement, close or "
                      "cancel a change")
def update_change(change_id: uuid.UUID, body: ChangeUpdate, db: DbSession, actor: CurrentActor, response: Response,
                  if_match: IfMatch) -> ChangeOut:
    return _change(response, service.update_change(db, actor, change_id, body, if_match))


@router.delete("/changes/{change_id}", response_model=ChangeOut)
def delete_change(change_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                  if_match: IfMatch) -> ChangeOut:
    return _change(response, service.delete_change(db, actor, change_id, if_match))


@router.post("/changes/{change_id}/restore", response_model=ChangeOut)
def restore_change(change_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> ChangeOut:
    return _change(response, service.restore_change(db, actor, change_id))


@router.get("/changes/{change_id}/conflicts", response_model=ConflictReport,
            summary="Other changes on the same CIs or on CIs in each other's impact set at the same time; "
                    "blackout windows; missed maintenance windows")
def change_conflicts(change_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> ConflictReport:
    return service.conflict_report(db, actor, change_id)


@router.get("/changes/{change_id}/risk", response_model=RiskAssessment,
            summary="The risk the CMDB suggests now, with its reasons, beside the requester's")
def change_risk(change_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> RiskAssessment:
    return service.risk_assessment(db, actor, change_id)


@router.get("/changes/{change_id}/incidents", response_model=list[CausedIncidentOut],
            summary="The incidents this (failed) change caused")
def caused_incidents(change_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> list[CausedIncidentOut]:
    return service.caused_incidents(db, actor, change_id)


@router.post("/changes/{change_id}/incidents", status_code=status.HTTP_204_NO_CONTENT,
             summary="Record that this failed change caused an incident")
def link_caused_incident(change_id: uuid.UUID, body: CausedIncidentLink, db: DbSession, actor: CurrentActor) -> None:
    service.link_caused_incident(db, actor, change_id, body.incident_id)


@router.delete("/changes/{change_id}/incidents/{incident_id}", status_code=status.HTTP_204_NO_CONTENT)
def unlink_caused_incident(change_id: uuid.UUID, incident_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> None:
    service.unlink_caused_incident(db, actor, change_id, incident_id)


# ---- standard-change templates ----------------------------------------------------------------------

@router.get("/change-templates", response_model=Page[TemplateOut])
def list_templates(db: DbSession, actor: CurrentActor, limit: PageLimit, domain: DomainQuery = None,
                   active: bool | None = None, include_deleted: bool = False, sort: Sort = None,
                   cursor: Cursor = None) -> Page[TemplateOut]:
    rows, next_cursor = planning.list_templates(db, actor, domain=domain, active=active,
                                                include_deleted=include_deleted, sort=sort, cursor=cursor, limit=limit)
    return Page[TemplateOut](items=[TemplateOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/change-templates", response_model=TemplateOut, status_code=status.HTTP_201_CREATED,
             summary="A standard change: pre-approved work with known plans")
def create_template(body: TemplateCreate, db: DbSession, actor: CurrentActor, response: Response) -> TemplateOut:
    return _template(response, planning.create_template(db, actor, body))


@router.get("/change-templates/{template_id}", response_model=TemplateOut)
def get_template(template_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> TemplateOut:
    return _template(response, planning.get_template(db, actor, template_id))


@router.patch("/change-templates/{template_id}", response_model=TemplateOut)
def update_template(template_id: uuid.UUID, body: TemplateUpdate, db: DbSession, actor: CurrentActor,
                    response: Response, if_match: IfMatch) -> TemplateOut:
    return _template(response, planning.update_template(db, actor, template_id, body, if_match))


@router.delete("/change-templates/{template_id}", response_model=TemplateOut)
def delete_template(template_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                    if_match: IfMatch) -> TemplateOut:
    return _template(response, planning.delete_template(db, actor, template_id, if_match))


@router.post("/change-templates/{template_id}/restore", response_model=TemplateOut)
def restore_template(template_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> TemplateOut:
    return _template(response, planning.restore_template(db, actor, template_id))


# ---- change windows ----------------------------------------------------------------------------------

@router.get("/change-windows", response_model=Page[WindowOut])
def list_windows(db: DbSession, actor: CurrentActor, limit: PageLimit, domain: DomainQuery = None,
                 kind: WindowKind | None = None, service_id: Annotated[uuid.UUID | None, Query(alias="service")] = None,
                 include_deleted: bool = False, sort: Sort = None, cursor: Cursor = None) -> Page[WindowOut]:
    rows, next_cursor = planning.list_windows(db, actor, domain=domain, kind=kind, service_id=service_id,
                                              include_deleted=include_deleted, sort=sort, cursor=cursor, limit=limit)
    return Page[WindowOut](items=[WindowOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/change-windows", response_model=WindowOut, status_code=status.HTTP_201_CREATED,
             summary="A maintenance or blackout window for a domain, or one of its services")
def create_window(body: WindowCreate, db: DbSession, actor: CurrentActor, response: Response) -> WindowOut:
    return _window(response, planning.create_window(db, actor, body))


@router.get("/change-windows/{window_id}", response_model=WindowOut)
def get_window(window_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> WindowOut:
    return _window(response, planning.get_window(db, actor, window_id))


@router.patch("/change-windows/{window_id}", response_model=WindowOut)
def update_window(window_id: uuid.UUID, body: WindowUpdate, db: DbSession, actor: CurrentActor, response: Response,
                  if_match: IfMatch) -> WindowOut:
    return _window(response, planning.update_window(db, actor, window_id, body, if_match))


@router.delete("/change-windows/{window_id}", response_model=WindowOut)
def delete_window(window_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                  if_match: IfMatch) -> WindowOut:
    return _window(response, planning.delete_window(db, actor, window_id, if_match))


@router.post("/change-windows/{window_id}/restore", response_model=WindowOut)
def restore_window(window_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> WindowOut:
    return _window(response, planning.restore_window(db, actor, window_id))
