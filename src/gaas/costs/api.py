"""Cost API: cost entries and the cost report."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gaas.core.history import register_history
from gaas.core.http import CurrentActor, DbSession, IfMatch, PageLimit, ReadDbSession, set_etag
from gaas.core.pagination import Page
from gaas.costs import service
from gaas.costs.models import CostCategory
from gaas.costs.schemas import CostEntryBulk, CostEntryCreate, CostEntryOut, CostEntryUpdate, CostReport, Period

router = APIRouter(prefix="/api/v1", tags=["costs"])

register_history("cost-entries", "cost_entry", lambda db, actor, id_: service.get_entry(db, actor, id_))


def _one(response: Response, entry) -> CostEntryOut:
    set_etag(response, entry.version)
    return CostEntryOut.model_validate(entry)


@router.get("/cost-entries", response_model=Page[CostEntryOut])
def list_entries(
    db: DbSession, actor: CurrentActor, limit: PageLimit,
    domain: Annotated[str | None, Query(max_length=100)] = None,
    service_id: uuid.UUID | None = None, ci_id: uuid.UUID | None = None,
    category: CostCategory | None = None,
    currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$")] = None,
    period_from: Annotated[date | None, Query(description="period_start on or after")] = None,
    period_to: Annotated[date | None, Query(description="period_start before")] = None,
    include_deleted: bool = False,
    sort: Annotated[str | None, Query(max_length=50)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Page[CostEntryOut]:
    rows, next_cursor = service.list_entries(db, actor, domain=domain, service_id=service_id, ci_id=ci_id,
                                             category=category, currency=currency, period_from=period_from,
                                             period_to=period_to, include_deleted=include_deleted, sort=sort,
                                             cursor=cursor, limit=limit)
    return Page[CostEntryOut](items=[CostEntryOut.model_validate(r) for r in rows], next_cursor=next_cursor,
                              limit=limit)


@router.post("/cost-entries", response_model=CostEntryOut, status_code=status.HTTP_201_CREATED)
def create_entry(body: CostEntryCreate, db: DbSession, actor: CurrentActor, response: Response) -> CostEntryOut:
    return _one(response, service.create_entry(db, actor, body))


@router.post("/cost-entries/bulk", response_model=list[CostEntryOut], status_code=status.HTTP_201_CREATED,
             summary="Create many cost entries in one transaction: all or nothing, every bad item reported")
def create_entries(body: CostEntryBulk, db: DbSession, actor: CurrentActor) -> list[CostEntryOut]:
    return [CostEntryOut.model_validate(e) for e in service.create_entries(db, actor, body.items)]


@router.get("/cost-entries/{entry_id}", response_model=CostEntryOut)
def get_entry(entry_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> CostEntryOut:
    return _one(response, service.get_entry(db, actor, entry_id))


@router.patch("/cost-entries/{entry_id}", response_model=CostEntryOut)
def update_entry(entry_id: uuid.UUID, body: CostEntryUpdate, db: DbSession, actor: CurrentActor,
                 response: Response, if_match: IfMatch) -> CostEntryOut:
    return _one(response, service.update_entry(db, actor, entry_id, body, if_match))


@router.delete("/cost-entries/{entry_id}", response_model=CostEntryOut)
def delete_entry(entry_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response,
                 if_match: IfMatch) -> CostEntryOut:
    return _one(response, service.delete_entry(db, actor, entry_id, if_match))


@router.post("/cost-entries/{entry_id}/restore", response_model=CostEntryOut)
def restore_entry(entry_id: uuid.UUID, db: DbSession, actor: CurrentActor, response: Response) -> CostEntryOut:
    return _one(response, service.restore_entry(db, actor, entry_id))


class ReportPage(CostReport):
    next_cursor: str | None = None


@router.get("/reports/costs", response_model=ReportPage, tags=["reports"],
            summary="Allocated PPT costs against actual cost entries, per period and currency")
def cost_report(
    db: ReadDbSession, actor: CurrentActor,
    domain: Annotated[str | None, Query(max_length=100)] = None,
    service_id: uuid.UUID | None = None,
    date_from: Annotated[date | None, Query(description="Default: 1 January of this year")] = None,
    date_to: Annotated[date | None, Query(description="Exclusive. Default: a year after date_from")] = None,
    period: Period = "month",
    group_by: Annotated[str, Query(max_length=50, description="Comma-separated: service, category, period")]
    = "service,category,period",
    limit: Annotated[int, Query(ge=1, le=10000, description="Rows per page; grouped by service, a page holds "
                                                        "whole services (about this many rows)")] = 1000,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> ReportPage:
    today = date.today()
    start = date_from or date(today.year, 1, 1)
    end = date_to or date(start.year + 1, start.month, 1 if start.day == 1 else start.day)
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    report, next_cursor = service.cost_report(db, actor, domain=domain, service_id=service_id, date_from=start,
                                              date_to=end, period=period, group_by=groups, cursor=cursor,
                                              limit=limit)
    return ReportPage(**report.model_dump(), next_cursor=next_cursor)
