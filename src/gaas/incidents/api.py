"""Incident, problem, SLA-policy and priority-matrix API: thin translation to the services."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gaas.core.errors import ValidationProblem
from gaas.core.history import register_history
from gaas.core.http import CurrentActor, DbSession, IfMatch, PageLimit, set_etag
from gaas.core.pagination import Page
from gaas.incidents import policies, problems, service
from gaas.incidents.models import IncidentStatus, Priority, ProblemStatus
from gaas.incidents.schemas import (
    AtRiskIncident,
    IncidentBulk,
    IncidentCreate,
    IncidentLink,
    IncidentOut,
    IncidentUpdate,
    PriorityMatrixOut,
    PriorityMatrixPut,
    ProblemCreate,
    ProblemOut,
    ProblemUpdate,
    SlaPolicyCreate,
    SlaPolicyOut,
    SlaPolicyUpdate,
)

router = APIRouter(prefix="/api/v1")
Cursor = Annotated[str | None, Query(max_length=500)]
Sort = Annotated[str | None, Query(max_length=50)]
DomainQuery = Annotated[str | None, Query(max_length=100)]

register_history("incidents", "incident", lambda db, actor, id_: service.get_incident(db, actor, id_))
register_history("problems", "problem", lambda db, actor, id_: problems.get_problem(db, actor, id_))
register_history("sla-policies", "sla_policy", lambda db, actor, id_: policies.get_policy(db, actor, id_))

_DURATION = re.compile(r"^(?P<n>\d{1,5})(?P<unit>[mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str, field: str) -> timedelta:
    """'30m', '4h', '2d'."""
    match = _DURATION.match(value.strip())
    if not match:
        raise ValidationProblem.field(field, "a duration such as 30m, 4h or 2d", "duration")
    return timedelta(**{_UNITS[match["unit"]]: int(match["n"])})


def _incident(db, response: Response, incident) -> IncidentOut:
    set_etag(response, incident.version)
    return service.incidents_out(db, [incident])[0]


def _problem(db, response: Response, problem, resolved: list[str] | None = None) -> ProblemOut:
    set_etag(response, problem.version)
    out = problems.problem_out(db, [problem])[0]
    return out.model_copy(update={"resolved_incidents": resolved or []})


def _policy(response: Response, policy) -> SlaPolicyOut:
    set_etag(response, policy.version)
    return policies.policy_out(policy)


# ---- incidents ------------------------------------------------------------------------------------

@router.get("/incidents", response_model=Page[IncidentOut], tags=["incidents"],
            summary="List incidents; assigned_to=me&open=true is the agent's queue")
def list_incidents(
    db: DbSession, actor: CurrentActor, limit: PageLimit,
    domain: DomainQuery = None,
    status_: Annotated[list[IncidentStatus] | None, Query(alias="status")] = None,
    open: Annotated[bool, Query(description="Only new and in-progress incidents")] = False,
    priority: Priority | None = None,
    assigned_to: Annotated[str | None, Query(max_length=36, description="A user id, or 'me'")] = None,
    assigned_group: Annotated[str | None, Query(max_length=100)] = None,
    service_id: Annotated[uuid.UUID | None, Query(alias="service")] = None,
    ci_id: Annotated[uuid.UUID | None, Query(alias="ci")] = None,
    problem_id: Annotated[uuid.UUID | None, Query(alias="problem")] = None,
    sla_breached: bool | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Words in the short description")] = None,
    include_deleted: bool = False, sort: Sort = None, cursor: Cursor = None,
) -> Page[IncidentOut]:
    assignee = None
    if assigned_to is not None:
        try:
            assignee = actor.user_id if assigned_to == "me" else uuid.UUID(assigned_to)
        except ValueError as exc:
            raise ValidationProblem.field("assigned_to", "a user id or 'me'") from exc
    rows, next_cursor = service.list_incidents(
        db, actor, domain=domain, status=status_, open_only=open, priority=priority, assigned_to=assignee,
        assigned_group=assigned_group, service_id=service_id, ci_id=ci_id, problem_id=problem_id,
        sla_breached=sla_breached, q=q, include_deleted=include_deleted, sort=sort, cursor=cursor, limit=limit)
    return Page[IncidentOut](items=service.incidents_out(db, rows), next_cursor=next_cursor, limit=limit)


@router.post("/incidents", response_model=IncidentOut, status_code=status.HTTP_201_CREATED, tags=["incidents"],
             summary="Report an incident; its priority comes from the domain's matrix and its SLA from the policy")
def create_incident(body: IncidentCreate, db: DbSession, actor: CurrentActor, response: Response) -> IncidentOut:
    return _incident(db, response, service.create_incident(db, actor, body))


@router.post("/incidents/bulk", response_model=list[IncidentOut], status_code=status.HTTP_201_CREATED,
             tags=["incidents"], summary="Report many incidents in one transaction (monitoring, imports): all or "
             "nothing, every bad item reported")
def create_incidents(body: IncidentBulk, db: DbSession, actor: CurrentActor) -> list[IncidentOut]:
    return service.incidents_out(db, service.create_incidents(db, actor, body.items))


@router.get("/incidents/sla-at-risk", response_model=Page[AtRiskIncident], tags=["incidents"],
            summary="Open incidents whose SLA falls due within a duration (the specification's Query 2)")
def sla_at_risk(db: DbSession, actor: CurrentActor, limit: PageLimit,
                within: Annotated[str, Query(max_length=10, description="e.g. 30m, 4h, 2d")] = "4h",
                domain: DomainQuery = None, cursor: Cursor = None) -> Page[AtRiskIncident]:
    rows, next_cursor = service.at_risk(db, actor, parse_duration(within, "within"), domain=domain, cursor=cursor,
                                        limit=limit)
    return Page[AtRiskIncident](items=rows, next_cursor=next_cursor, limit=limit)


@router.get("/incidents/{incident_id}", response_model=IncidentOut, tags=["incidents"])
def get_incident(incident_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> IncidentOut:
    return _incident(db, response, service.get_incident(db, actor, incident_id))


@router.patch("/incidents/{incident_id}", response_model=IncidentOut, tags=["incidents"],
              summary="Edit, assign, put on hold, resolve, close, reopen or cancel an incident")
def update_incident(incident_id: uuid.UUID, body: IncidentUpdate, db: DbSession, actor: CurrentActor,
                    response: Response, if_match: IfMatch) -> IncidentOut:
    return _incident(db, response, service.update_incident(db, actor, incident_id, body, if_match))


@router.delete("/incidents/{incident_id}", response_model=IncidentOut, tags=["incidents"])
def delete_incident(incident_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                    if_match: IfMatch) -> IncidentOut:
    return _incident(db, response, service.delete_incident(db, actor, incident_id, if_match))


@router.post("/incidents/{incident_id}/restore", response_model=IncidentOut, tags=["incidents"])
def restore_incident(incident_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> IncidentOut:
    return _incident(db, response, service.restore_incident(db, actor, incident_id))


# ---- problems -------------------------------------------------------------------------------------

@router.get("/problems", response_model=Page[ProblemOut], tags=["problems"])
def list_problems(
    db: DbSession, actor: CurrentActor, limit: PageLimit, domain: DomainQuery = None,
    status_: Annotated[ProblemStatus | None, Query(alias="status")] = None, priority: Priority | None = None,
    assigned_to: uuid.UUID | None = None, service_id: Annotated[uuid.UUID | None, Query(alias="service")] = None,
    known_error: Annotated[bool | None, Query(description="Only problems with (or without) a workaround")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None, include_deleted: bool = False, sort: Sort = None,
    cursor: Cursor = None,
) -> Page[ProblemOut]:
    rows, next_cursor = problems.list_problems(
        db, actor, domain=domain, status=status_, priority=priority, assigned_to=assigned_to, service_id=service_id,
        known_error=known_error, q=q, include_deleted=include_deleted, sort=sort, cursor=cursor, limit=limit)
    return Page[ProblemOut](items=problems.problem_out(db, rows), next_cursor=next_cursor, limit=limit)


@router.post("/problems", response_model=ProblemOut, status_code=status.HTTP_201_CREATED, tags=["problems"])
def create_problem(body: ProblemCreate, db: DbSession, actor: CurrentActor, response: Response) -> ProblemOut:
    return _problem(db, response, problems.create_problem(db, actor, body))


@router.get("/problems/{problem_id}", response_model=ProblemOut, tags=["problems"])
def get_problem(problem_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> ProblemOut:
    return _problem(db, response, problems.get_problem(db, actor, problem_id))


@router.patch("/problems/{problem_id}", response_model=ProblemOut, tags=["problems"],
              summary="Edit a problem or move it along; resolving may resolve its open incidents too")
def update_problem(problem_id: uuid.UUID, body: ProblemUpdate, db: DbSession, actor: CurrentActor,
                   response: Response, if_match: IfMatch) -> ProblemOut:
    problem, resolved = problems.update_problem(db, actor, problem_id, body, if_match)
    return _problem(db, response, problem, resolved)


@router.delete("/problems/{problem_id}", response_model=ProblemOut, tags=["problems"])
def delete_problem(problem_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                   if_match: IfMatch) -> ProblemOut:
    return _problem(db, response, problems.delete_problem(db, actor, problem_id, if_match))


@router.post("/problems/{problem_id}/restore", response_model=ProblemOut, tags=["problems"])
def restore_problem(problem_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> ProblemOut:
    return _problem(db, response, problems.restore_problem(db, actor, problem_id))


@router.get("/problems/{problem_id}/incidents", response_model=Page[IncidentOut], tags=["problems"])
def list_linked_incidents(problem_id: uuid.UUID, db: DbSession, actor: CurrentActor, limit: PageLimit,
                          cursor: Cursor = None) -> Page[IncidentOut]:
    rows, next_cursor = problems.list_linked_incidents(db, actor, problem_id, cursor=cursor, limit=limit)
    return Page[IncidentOut](items=service.incidents_out(db, rows), next_cursor=next_cursor, limit=limit)


@router.post("/problems/{problem_id}/incidents", response_model=IncidentOut, status_code=status.HTTP_201_CREATED,
             tags=["problems"], summary="Link an incident to this problem")
def link_incident(problem_id: uuid.UUID, body: IncidentLink, db: DbSession, actor: CurrentActor,
                  response: Response) -> IncidentOut:
    return _incident(db, response, problems.link_incident(db, actor, problem_id, body.incident_id))


@router.delete("/problems/{problem_id}/incidents/{incident_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["problems"], summary="Unlink an incident from this problem")
def unlink_incident(problem_id: uuid.UUID, incident_id: uuid.UUID, db: DbSession, actor: CurrentActor) -> None:
    problems.unlink_incident(db, actor, problem_id, incident_id)


# ---- SLA policies and the priority matrix ---------------------------------------------------------

@router.get("/sla-policies", response_model=Page[SlaPolicyOut], tags=["sla"])
def list_policies(db: DbSession, actor: CurrentActor, limit: PageLimit, domain: DomainQuery = None,
                  priority: Priority | None = None, include_deleted: bool = False, sort: Sort = None,
                  cursor: Cursor = None) -> Page[SlaPolicyOut]:
    rows, next_cursor = policies.list_policies(db, actor, domain=domain, priority=priority,
                                               include_deleted=include_deleted, sort=sort, cursor=cursor, limit=limit)
    return Page[SlaPolicyOut](items=[policies.policy_out(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.post("/sla-policies", response_model=SlaPolicyOut, status_code=status.HTTP_201_CREATED, tags=["sla"],
             summary="A domain's resolution target for one priority (or a platform default, without domain)")
def create_policy(body: SlaPolicyCreate, db: DbSession, actor: CurrentActor, response: Response) -> SlaPolicyOut:
    return _policy(response, policies.create_policy(db, actor, body))


@router.get("/sla-policies/{policy_id}", response_model=SlaPolicyOut, tags=["sla"])
def get_policy(policy_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> SlaPolicyOut:
    return _policy(response, policies.get_policy(db, actor, policy_id))


@router.patch("/sla-policies/{policy_id}", response_model=SlaPolicyOut, tags=["sla"])
def update_policy(policy_id: uuid.UUID, body: SlaPolicyUpdate, db: DbSession, actor: CurrentActor,
                  response: Response, if_match: IfMatch) -> SlaPolicyOut:
    return _policy(response, policies.update_policy(db, actor, policy_id, body, if_match))


@router.delete("/sla-policies/{policy_id}", response_model=SlaPolicyOut, tags=["sla"])
def delete_policy(policy_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                  if_match: IfMatch) -> SlaPolicyOut:
    return _policy(response, policies.delete_policy(db, actor, policy_id, if_match))


@router.post("/sla-policies/{policy_id}/restore", response_model=SlaPolicyOut, tags=["sla"])
def restore_policy(policy_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> SlaPolicyOut:
    return _policy(response, policies.restore_policy(db, actor, policy_id))


@router.get("/priority-matrix", response_model=PriorityMatrixOut, tags=["sla"],
            summary="The priority matrix a domain uses (without domain: the platform default)")
def get_matrix(db: DbSession, actor: CurrentActor, response: Response,
               domain: DomainQuery = None) -> PriorityMatrixOut:
    out = policies.get_matrix(db, actor, domain)
    set_etag(response, out.version)
    return out


@router.put("/priority-matrix", response_model=PriorityMatrixOut, tags=["sla"],
            summary="Set a domain's own priority matrix (without domain: the platform default)")
def put_matrix(body: PriorityMatrixPut, db: DbSession, actor: CurrentActor, response: Response, if_match: IfMatch,
               domain: DomainQuery = None) -> PriorityMatrixOut:
    out = policies.put_matrix(db, actor, domain, body, if_match)
    set_etag(response, out.version)
    return out


@router.delete("/priority-matrix", response_model=PriorityMatrixOut, tags=["sla"],
               summary="A domain goes back to the platform default matrix")
def reset_matrix(db: DbSession, actor: CurrentActor, response: Response, if_match: IfMatch,
                 domain: Annotated[str, Query(max_length=100)]) -> PriorityMatrixOut:
    out = policies.reset_matrix(db, actor, domain, if_match)
    set_etag(response, out.version)
    return out
