"""Cost entries (actual spending) and the cost report: the only entry to gaas_cost_mgmt."""

from __future__ import annotations

import base64
import uuid
from datetime import date
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    null,
    or_,
    select,
    true,
    union,
    values,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Session

from gaas.catalog import service as catalog
from gaas.cmdb import service as cmdb
from gaas.core.context import Actor
from gaas.core.errors import Forbidden, NotFound, ValidationProblem
from gaas.core.events import emit
from gaas.core.pagination import SortKey, decode_offset, encode_offset, paginate
from gaas.core.queries import where_equal, where_in_range, where_viewable
from gaas.core.records import apply_patch, restore, soft_delete, stamp_created
from gaas.core.settings import get_settings
from gaas.costs import events
from gaas.costs.models import CostCategory, CostEntry
from gaas.costs.schemas import CostEntryCreate, CostEntryUpdate, CostReport, CostReportRow, Period

COST_SORTS = (SortKey("period_start", CostEntry.period_start), SortKey("amount", CostEntry.amount),
              SortKey("created_at", CostEntry.created_at))


def _service(db: Session, actor: Actor, service_id: uuid.UUID | None, cache: dict[uuid.UUID, Any]) -> Any:
    """The live service the caller can see, looked up once per request however many entries name it."""
    if service_id is None:
        return None
    if service_id not in cache:
        cache[service_id] = catalog.service_exists(db, actor, service_id)
    return cache[service_id]


def _require(db: Session, actor: Actor, permission: str, entry_domain: str, service: Any) -> None:
    allowed = (catalog.can(db, actor, permission, service) if service is not None
               else actor.can(permission, entry_domain))
    if not allowed:
        raise Forbidden(f"This needs the '{permission}' permission in domain '{entry_domain}'.",
                        permission=permission)


def _new_entry(db: Session, actor: Actor, data: CostEntryCreate, cache: dict[uuid.UUID, Any]) -> CostEntry:
    """Validate one entry: its domain is its service's (or its CI's), checked by those modules."""
    if data.service_id is None and data.ci_id is None:
        raise ValidationProblem.field("service_id", "a cost entry is for a service, a CI or both", "missing")
    domains: list[tuple[str, str | None]] = []
    service = None
    if data.service_id is not None:
        service = _service(db, actor, data.service_id, cache)
        if service is None:
            raise ValidationProblem.field("service_id", "no such service", "unknown_service")
        domains.append(("service_id", service.domain))
    if data.ci_id is not None:
        ci = cmdb.ci_exists(db, actor, data.ci_id)
        if ci is None:
            raise ValidationProblem.field("ci_id", "no such configuration item", "unknown_ci")
        domains.append(("ci_id", ci.domain or data.domain or (service.domain if service else None)))
    domain = data.domain or domains[0][1]
    if domain is None:
        raise ValidationProblem.field("domain", "a shared CI's cost needs the domain that pays it", "missing")
    for field, value in domains:
        if value != domain:
            raise ValidationProblem.field("domain" if data.domain else field,
                                          f"the {field.removesuffix('_id')} is in domain '{value}'", "domain_mismatch")
    _require(db, actor, "cost.manage", domain, service)
    entry = CostEntry(**data.model_dump(exclude={"metadata", "domain"}), domain=domain, metadata_=data.metadata)
    stamp_created(entry, actor)
    return entry


def _emit_created(db: Session, entry: CostEntry) -> None:
    emit(db, events.COST_ENTRY_CREATED, domain=entry.domain, entity_type="cost_entry", entity_id=entry.id,
         payload={"service_id": entry.service_id, "category": entry.category, "amount": entry.amount,
                  "currency": entry.currency, "period_start": entry.period_start})


def create_entry(db: Session, actor: Actor, data: CostEntryCreate) -> CostEntry:
    entry = _new_entry(db, actor, data, {})
    db.add(entry)
    db.flush()
    _emit_created(db, entry)
    return entry


def create_entries(db: Session, actor: Actor, items: list[CostEntryCreate]) -> list[CostEntry]:
    """Bulk create in one transaction: every bad item is reported (items.N.field), none is written."""
    entries: list[CostEntry] = []
    errors: list[dict[str, Any]] = []
    cache: dict[uuid.UUID, Any] = {}
    for index, item in enumerate(items):
        try:
            entries.append(_new_entry(db, actor, item, cache))
        except ValidationProblem as problem:
            errors += [{**e, "field": f"items.{index}.{e['field']}"} for e in problem.errors]
    if errors:
        raise ValidationProblem(f"{len(errors)} item(s) are not valid; nothing was written.", errors=errors)
    db.add_all(entries)
    db.flush()
    for entry in entries:
        _emit_created(db, entry)
    return entries


def get_entry(db: Session, actor: Actor, entry_id: uuid.UUID, *, include_deleted: bool = True) -> CostEntry:
    entry = db.scalar(select(CostEntry).where(CostEntry.id == entry_id))
    if entry is None or (entry.deleted_at is not None and not include_deleted) \
            or not actor.can("cost.view", entry.domain):
        raise NotFound(f"No cost entry {entry_id}.")
    return entry


def list_entries(db: Session, actor: Actor, *, domain: str | None, service_id: uuid.UUID | None,
                 ci_id: uuid.UUID | None, category: CostCategory | None, currency: str | None,
                 period_from: date | None, period_to: date | None, include_deleted: bool, sort: str | None,
                 cursor: str | None, limit: int) -> tuple[list[CostEntry], str | None]:
    if not actor.can_anywhere("cost.view"):
        raise Forbidden("Cost entries need the 'cost.view' permission.", permission="cost.view")
    stmt: Select = select(CostEntry)
    stmt = where_viewable(stmt, actor, "cost.view", CostEntry.domain)
    if not include_deleted:
        stmt = stmt.where(CostEntry.deleted_at.is_(None))
    stmt = where_equal(stmt, (CostEntry.domain, domain), (CostEntry.service_id, service_id),
                       (CostEntry.ci_id, ci_id), (CostEntry.category, category), (CostEntry.currency, currency))
    stmt = where_in_range(stmt, CostEntry.period_start, period_from, period_to)
    return paginate(stmt, id_column=CostEntry.id, sort_keys=COST_SORTS, sort=sort or "-period_start",
                    cursor=cursor, limit=limit, execute=db.scalars)


def update_entry(db: Session, actor: Actor, entry_id: uuid.UUID, data: CostEntryUpdate,
                 if_match: int | None) -> CostEntry:
    entry = get_entry(db, actor, entry_id, include_deleted=False)
    _require(db, actor, "cost.manage", entry.domain, _service(db, actor, entry.service_id, {}))
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "metadata" in changes:
        changes["metadata_"] = changes.pop("metadata")
    start = changes.get("period_start", entry.period_start)
    end = changes.get("period_end", entry.period_end)
    if end < start:
        raise ValidationProblem.field("period_end", "must be on or after period_start", "period")
    apply_patch(entry, actor, changes, header_version=if_match, body_version=data.version)
    modified = db.is_modified(entry)
    db.flush()
    if modified:
        emit(db, events.COST_ENTRY_UPDATED, domain=entry.domain, entity_type="cost_entry", entity_id=entry.id,
             payload={"changed": sorted(k.rstrip("_") for k in changes)})
    return entry


def delete_entry(db: Session, actor: Actor, entry_id: uuid.UUID, if_match: int | None) -> CostEntry:
    entry = get_entry(db, actor, entry_id)
    _require(db, actor, "cost.manage", entry.domain, _service(db, actor, entry.service_id, {}))
    soft_delete(entry, actor, header_version=if_match)
    db.flush()
    emit(db, events.COST_ENTRY_DELETED, domain=entry.domain, entity_type="cost_entry", entity_id=entry.id,
         payload={"amount": entry.amount, "currency": entry.currency})
    return entry


def restore_entry(db: Session, actor: Actor, entry_id: uuid.UUID) -> CostEntry:
    entry = get_entry(db, actor, entry_id)
    _require(db, actor, "cost.manage", entry.domain, _service(db, actor, entry.service_id, {}))
    restore(entry, actor)
    db.flush()
    return entry


# ---- the cost report ------------------------------------------------------------------------------

GROUPS = ("service", "category", "period")
_NIL = uuid.UUID(int=0)


def _month_starts(date_from: date, date_to: date) -> list[date]:
    """First days of the months that begin in [date_from, date_to) (date_from's own month too)."""
    months, current = [], date(date_from.year, date_from.month, 1)
    while current < date_to:
        months.append(current)
        current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return months


def _periods(date_from: date, date_to: date, period: Period, by_period: bool) -> list[tuple[date, int]]:
    """(period start, months of the range it covers): a partly covered period gets its share."""
    size = {"month": 1, "quarter": 3, "year": 12}[period]
    counts: dict[date, int] = {}
    for month in _month_starts(date_from, date_to):
        start = date(month.year, (month.month - 1) // size * size + 1, 1) if by_period else date_from
        counts[start] = counts.get(start, 0) + 1
    return sorted(counts.items())


def _service_page(db: Session, actor: Actor, entries_in_range, *, domain: str | None,
                  service_id: uuid.UUID | None, after: uuid.UUID | None,
                  count: int) -> tuple[list[uuid.UUID], bool]:
    """The next `count` services (by id) that have an allocation or entries in the range."""
    allocated = catalog.allocations_query(actor, domain=domain, service_id=service_id, by_service=True).subquery()
    spent = entries_in_range(select(CostEntry.service_id.label("service_id"))
                             .where(CostEntry.service_id.isnot(None)))
    ids = union(select(allocated.c.service_id), spent).subquery()
    stmt = select(ids.c.service_id).order_by(ids.c.service_id).limit(count + 1)
    if after is not None:
        stmt = stmt.where(ids.c.service_id > after)
    found = list(db.scalars(stmt))
    return found[:count], len(found) > count


def _encode_service_cursor(last: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"s:{last}".encode()).decode().rstrip("=")


def _decode_service_cursor(cursor: str | None) -> uuid.UUID | None:
    if not cursor:
        return None
    try:
        kind, value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":", 1)
        if kind != "s":
            raise ValueError(kind)
        return uuid.UUID(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationProblem.field("cursor", "not a cursor this report issued") from exc


def cost_report(db: Session, actor: Actor, *, domain: str | None, service_id: uuid.UUID | None,
                date_from: date, date_to: date, period: Period, group_by: list[str], cursor: str | None,
                limit: int) -> tuple[CostReport, str | None]:
    """Allocated (services' annual PPT, spread over the periods) against actual (cost entries by
    period_start), one row per currency: amounts in different currencies are never added."""
    if not actor.can_anywhere("cost.view"):
        raise Forbidden("Cost reports need the 'cost.view' permission.", permission="cost.view")
    if date_to <= date_from:
        raise ValidationProblem.field("date_to", "must be after date_from", "period")
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown:
        raise ValidationProblem.field("group_by", f"unknown grouping {unknown}; use any of {list(GROUPS)}")
    by_service, by_category, by_period = (g in group_by for g in GROUPS)
    currency = get_settings().allocation_currency
    categories = [("people",), ("process",), ("technology",)] if by_category else [("all",)]
    period_rows = _periods(date_from, date_to, period, by_period)
    allowed = actor.domains_with("cost.view")

    def entries_in_range(stmt):
        stmt = stmt.where(CostEntry.deleted_at.is_(None), CostEntry.period_start >= date_from,
                          CostEntry.period_start < date_to)
        if allowed is not None:
            stmt = stmt.where(CostEntry.domain.in_(sorted(allowed)))
        if domain is not None:
            stmt = stmt.where(CostEntry.domain == domain)
        if service_id is not None:
            stmt = stmt.where(CostEntry.service_id == service_id)
        return stmt

    # By service, a page is a run of whole services (keyset on the service id), so the database
    # only spreads and joins the allocations of the services on this page.
    page_services: list[uuid.UUID] | None = None
    next_cursor = None
    offset = 0
    if by_service:
        after = _decode_service_cursor(cursor)
        per_service = max(1, len(categories) * len(period_rows))
        page_services, more = _service_page(db, actor, entries_in_range, domain=domain, service_id=service_id,
                                            after=after, count=max(1, limit // per_service))
        if more:
            next_cursor = _encode_service_cursor(page_services[-1])
    else:
        offset = decode_offset(cursor)

    a = catalog.allocations_query(actor, domain=domain, service_id=service_id, by_service=by_service,
                                  service_ids=page_services).subquery("a")
    cat = values(column("category", String), name="cat").data(categories)
    if by_category:
        amount = case((cat.c.category == "people", a.c.people), (cat.c.category == "process", a.c.process),
                      else_=a.c.technology)
    else:
        amount = a.c.people + a.c.process + a.c.technology
    periods = values(column("period", Date), column("months", Integer), name="p").data(period_rows)
    alloc = (select(a.c.domain,
                    (a.c.service_id if by_service else cast(null(), PG_UUID)).label("service_id"),
                    cat.c.category.label("category"), periods.c.period.label("period"),
                    literal(currency, String).label("currency"),
                    func.round(amount * periods.c.months / 12, 2).label("allocated"))
             .select_from(a).join(cat, true()).join(periods, true())).cte("alloc")

    e = CostEntry
    actual_keys = [
        e.domain.label("domain"),
        (e.service_id if by_service else cast(null(), PG_UUID)).label("service_id"),
        (cast(e.category, String) if by_category else literal("all", String)).label("category"),
        (cast(func.date_trunc(period, e.period_start), Date) if by_period
         else cast(literal(date_from), Date)).label("period"),
        e.currency.label("currency"),
    ]
    actual = entries_in_range(select(*actual_keys, func.sum(e.amount).label("actual"),
                                     func.count().label("entries")))
    if page_services is not None:
        # Entries without a service (a CI's) come first, on the first page.
        on_page = e.service_id.in_(page_services)
        actual = actual.where(or_(on_page, e.service_id.is_(None)) if cursor is None else on_page)
    actual = actual.group_by(*actual_keys).cte("actual")

    nil = literal(_NIL, PG_UUID)
    joined = alloc.join(actual, and_(
        alloc.c.domain == actual.c.domain,
        func.coalesce(alloc.c.service_id, nil) == func.coalesce(actual.c.service_id, nil),
        alloc.c.category == actual.c.category, alloc.c.period == actual.c.period,
        alloc.c.currency == actual.c.currency), full=True)
    keys = [func.coalesce(alloc.c[k], actual.c[k]).label(k)
            for k in ("domain", "service_id", "category", "period", "currency")]
    stmt = (select(*keys, alloc.c.allocated, func.coalesce(actual.c.actual, 0).label("actual"),
                   func.coalesce(actual.c.entries, 0).label("entries"))
            .select_from(joined)
            .order_by(keys[0], keys[1].asc().nulls_first(), keys[2], keys[3], keys[4]))
    if page_services is None:
        stmt = stmt.limit(limit + 1).offset(offset)
    rows = list(db.execute(stmt).mappings())
    if page_services is None:
        next_cursor = encode_offset(offset + limit) if len(rows) > limit else None
        rows = rows[:limit]
    labels = catalog.service_labels(db, [r["service_id"] for r in rows if r["service_id"]]) if by_service else {}
    report_rows = []
    for r in rows:
        number, name = labels.get(r["service_id"], (None, None))
        report_rows.append(CostReportRow(
            domain=r["domain"], service_id=r["service_id"], service_number=number, service_name=name,
            category=r["category"] if by_category else None, period=r["period"] if by_period else None,
            currency=r["currency"], allocated=r["allocated"], actual=r["actual"],
            variance=(r["actual"] - r["allocated"]) if r["allocated"] is not None else None, entries=r["entries"]))
    report = CostReport(period=period, date_from=date_from, date_to=date_to, allocation_currency=currency,
                        group_by=list(group_by), rows=report_rows)
    return report, next_cursor
