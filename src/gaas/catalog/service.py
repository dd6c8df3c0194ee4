"""The service portfolio's rules: the 5-level hierarchy, lifecycle, ownership, relationships,
stakeholders, the rolled-up tree and the PPT balance. The only entry to gaas_service_catalog."""

from __future__ import annotations

import uuid
from decimal import Decimal
from string import Template
from typing import Any

from sqlalchemy import Numeric, Select, func, literal, or_, select, text
from sqlalchemy.orm import Session

from gaas.audit import service as audit
from gaas.catalog import events
from gaas.catalog.models import (
    RelationshipType,
    Service,
    ServiceRelationship,
    ServiceStakeholder,
    ServiceStatus,
    ServiceType,
)
from gaas.catalog.schemas import (
    PptBalance,
    RelationshipCreate,
    ServiceCreate,
    ServiceUpdate,
    StakeholderCreate,
)
from gaas.core.context import Actor
from gaas.core.errors import Conflict, Forbidden, NotFound, ValidationProblem
from gaas.core.events import emit
from gaas.core.pagination import SortKey, decode_offset, encode_offset, paginate
from gaas.core.queries import contains_pattern, where_equal, where_viewable
from gaas.core.records import apply_patch, hard_delete, restore, soft_delete, stamp_created
from gaas.iam import service as iam

# Where each status may go next. Retired is final; a deprecation can be reversed.
TRANSITIONS: dict[ServiceStatus, frozenset[ServiceStatus]] = {
    ServiceStatus.design: frozenset({ServiceStatus.active, ServiceStatus.retired}),
    ServiceStatus.active: frozenset({ServiceStatus.deprecated}),
    ServiceStatus.deprecated: frozenset({ServiceStatus.active, ServiceStatus.retired}),
    ServiceStatus.retired: frozenset(),
}
MAX_DEPTH = 50

SERVICE_SORTS = (SortKey("number", Service.number), SortKey("name", Service.name),
                 SortKey("created_at", Service.created_at), SortKey("updated_at", Service.updated_at))


# ---- reading ------------------------------------------------------------------------------------

def ancestors(db: Session, service_id: uuid.UUID) -> tuple[uuid.UUID, ...]:
    """The service and every ancestor up to its root (for service-scoped permissions)."""
    rows = db.execute(text("""
        WITH RECURSIVE up AS (
            SELECT id, parent_service_id, 0 AS depth FROM gaas_service_catalog.services WHERE id = :id
            UNION ALL
            SELECT s.id, s.parent_service_id, up.depth + 1 FROM gaas_service_catalog.services s
            JOIN up ON s.id = up.parent_service_id WHERE up.depth < :max
        ) SELECT id FROM up"""), {"id": service_id, "max": MAX_DEPTH}).scalars().all()
    return tuple(rows)


def _path_for(db: Session, actor: Actor, service: Service | None) -> tuple[uuid.UUID, ...]:
    if service is None or not any(g.scope_type == "service" for g in actor.grants):
        return ()
    return ancestors(db, service.id)


def can(db: Session, actor: Actor, permission: str, service: Service) -> bool:
    return actor.can(permission, service.domain, _path_for(db, actor, service))


def require(db: Session, actor: Actor, permission: str, service: Service) -> None:
    if not can(db, actor, permission, service):
        raise Forbidden(f"This needs the '{permission}' permission on {service.number}.", permission=permission)


def get_service(db: Session, actor: Actor, service_id: uuid.UUID, *, include_deleted: bool = True) -> Service:
    """A service the caller may see (row-level security, then service.view), else 404."""
    service = db.get(Service, service_id)
    if service is None or (service.deleted_at is not None and not include_deleted):
        raise NotFound(f"No service {service_id}.")
    if not can(db, actor, "service.view", service):
        raise NotFound(f"No service {service_id}.")
    return service


def service_exists(db: Session, actor: Actor, service_id: uuid.UUID, domain: str | None = None) -> Service | None:
    """For other modules: the live service the caller can see (and of `domain` when given)."""
    service = db.get(Service, service_id)
    if service is None or service.deleted_at is not None or not actor.sees(service.domain):
        return None
    if domain is not None and service.domain != domain:
        return None
    return service


def _relevance(q: str):
    return func.greatest(func.word_similarity(q, Service.name), func.similarity(Service.name, q),
                         func.word_similarity(q, func.coalesce(Service.description, "")) * 0.8)


def list_services(db: Session, actor: Actor, *, domain: str | None = None, type_: ServiceType | None = None,
                  status: ServiceStatus | None = None, owner_id: uuid.UUID | None = None,
                  parent_id: uuid.UUID | None = None, roots_only: bool = False, q: str | None = None,
                  include_deleted: bool = False, sort: str | None = None, cursor: str | None = None,
                  limit: int = 50) -> tuple[list[Service], str | None]:
    if not actor.can_anywhere("service.view"):
        raise Forbidden("Listing services needs the 'service.view' permission.", permission="service.view")
    stmt: Select = select(Service)
    allowed = actor.domains_with("service.view")
    if allowed is not None and not any(g.scope_type == "service" for g in actor.grants):
        stmt = stmt.where(Service.domain.in_(sorted(allowed)))
    if not include_deleted:
        stmt = stmt.where(Service.deleted_at.is_(None))
    stmt = where_equal(stmt, (Service.domain, domain), (Service.type, type_), (Service.status, status),
                       (Service.owner_id, owner_id), (Service.parent_service_id, parent_id))
    if roots_only:
        stmt = stmt.where(Service.parent_service_id.is_(None))
    if q:
        return _search(db, stmt, q.strip(), cursor, limit)
    return paginate(stmt, id_column=Service.id, sort_keys=SERVICE_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


def _search(db: Session, stmt: Select, q: str, cursor: str | None, limit: int) -> tuple[list[Service], str | None]:
    """Fuzzy name/description search ranked by trigram similarity (the GIN trigram indexes
    serve `%`, `<%` and ILIKE); a relevance ranking pages by offset."""
    offset = decode_offset(cursor)
    # Typos in short queries score ~0.45 word similarity; the default threshold (0.6) is for long text.
    db.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', '0.4', true)"))
    like = contains_pattern(q)
    matches = or_(Service.name.ilike(like), Service.description.ilike(like), Service.name.op("%")(q),
                  literal(q).op("<%")(Service.name), literal(q).op("<%")(Service.description))
    stmt = stmt.where(matches).order_by(_relevance(q).desc(), Service.id).offset(offset).limit(limit + 1)
    rows = list(db.scalars(stmt))
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_offset(offset + limit)


# ---- hierarchy rules ------------------------------------------------------------------------------

def _lock_hierarchy(db: Session, domain: str) -> None:
    """Serialise hierarchy changes within one domain, so two concurrent re-parents cannot
    build a cycle between them (parents are always in the same domain)."""
    db.execute(text("SELECT pg_advisory_xact_lock(hashtext('gaas.services.hierarchy'), hashtext(:d))"),
               {"d": domain})


def _check_parent(db: Session, actor: Actor, *, service_id: uuid.UUID | None, domain: str, type_: ServiceType,
                  parent_id: uuid.UUID, field: str) -> Service:
    parent = db.get(Service, parent_id)
    if parent is None or parent.deleted_at is not None or not actor.sees(parent.domain):
        raise ValidationProblem.field("parent_service_id", "no such service", "unknown_service")
    if parent.domain != domain:
        raise ValidationProblem.field("parent_service_id", f"the parent is in domain '{parent.domain}'; "
                                      f"a parent must be in the same domain ('{domain}')", "cross_domain")
    if parent.status == ServiceStatus.retired:
        raise ValidationProblem.field("parent_service_id", f"{parent.number} is retired", "retired_parent")
    if service_id is not None and (parent.id == service_id or service_id in ancestors(db, parent.id)):
        raise ValidationProblem.field("parent_service_id", f"{parent.number} is this service or one of its "
                                      "descendants: that would make a cycle", "cycle")
    if type_.level - parent.type.level not in (0, 1):
        raise ValidationProblem.field(field, f"a {type_.value} service cannot be under a {parent.type.value} "
                                      f"service ({parent.number}): a child is the same level or one below",
                                      "level")
    return parent


def _check_children_levels(db: Session, service: Service, new_type: ServiceType) -> None:
    bad = db.scalars(select(Service).where(Service.parent_service_id == service.id, Service.deleted_at.is_(None),
                                           ~Service.type.in_(_allowed_child_types(new_type))).limit(1)).first()
    if bad is not None:
        raise ValidationProblem.field("type", f"child {bad.number} is a {bad.type.value} service, which cannot "
                                      f"be under a {new_type.value} service", "level")


def _allowed_child_types(parent_type: ServiceType) -> list[ServiceType]:
    return [t for t in ServiceType if t.level - parent_type.level in (0, 1)]


def _check_person(db: Session, user_id: uuid.UUID | None, domain: str, field: str) -> None:
    if user_id is not None and not iam.user_allowed_in_domain(db, user_id, domain):
        raise ValidationProblem.field(field, f"no active user allowed in domain '{domain}' has this id",
                                      "unknown_user")


def _check_transition(current: ServiceStatus, new: ServiceStatus) -> None:
    if new != current and new not in TRANSITIONS[current]:
        allowed = sorted(s.value for s in TRANSITIONS[current])
        raise Conflict(f"A {current.value} service cannot become {new.value}; allowed: {allowed or 'none'}.",
                       errors=[{"field": "status", "message": f"{current.value} → {new.value} is not allowed",
                                "type": "transition", "allowed": allowed}])


# ---- writing --------------------------------------------------------------------------------------

def create_service(db: Session, actor: Actor, data: ServiceCreate) -> Service:
    parent = db.get(Service, data.parent_service_id) if data.parent_service_id else None
    if not actor.can("service.create", data.domain, _path_for(db, actor, parent)):
        raise Forbidden(f"This needs the 'service.create' permission in domain '{data.domain}'.",
                        permission="service.create")
    iam.require_active_domain(db, data.domain)
    if data.status not in (ServiceStatus.design, ServiceStatus.active):
        raise ValidationProblem.field("status", "a new service starts in design or active", "transition")
    _check_person(db, data.owner_id, data.domain, "owner_id")
    _check_person(db, data.manager_id, data.domain, "manager_id")
    if data.parent_service_id is not None:
        _lock_hierarchy(db, data.domain)
        _check_parent(db, actor, service_id=None, domain=data.domain, type_=data.type,
                      parent_id=data.parent_service_id, field="type")
    values = data.model_dump(exclude={"metadata"})
    service = Service(**values, metadata_=data.metadata)
    stamp_created(service, actor)
    db.add(service)
    db.flush()
    emit(db, events.SERVICE_CREATED, domain=service.domain, entity_type="service", entity_id=service.id,
         payload={"number": service.number, "name": service.name, "type": service.type, "status": service.status,
                  "parent_service_id": service.parent_service_id, "owner_id": service.owner_id})
    return service


def update_service(db: Session, actor: Actor, service_id: uuid.UUID, data: ServiceUpdate,
                   if_match: int | None) -> Service:
    service = get_service(db, actor, service_id, include_deleted=False)
    require(db, actor, "service.edit", service)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "metadata" in changes:
        changes["metadata_"] = changes.pop("metadata")
    new_type = changes.get("type", service.type)
    new_parent = changes.get("parent_service_id", service.parent_service_id)
    if "type" in changes or "parent_service_id" in changes:
        _lock_hierarchy(db, service.domain)
        if new_parent is not None:
            _check_parent(db, actor, service_id=service.id, domain=service.domain, type_=new_type,
                          parent_id=new_parent, field="parent_service_id" if "parent_service_id" in changes
                          else "type")
        if new_type != service.type:
            _check_children_levels(db, service, new_type)
    old_status = service.status
    if "status" in changes:
        _check_transition(service.status, changes["status"])
        if changes["status"] == ServiceStatus.retired:
            _check_no_active_children(db, service)
    if "owner_id" in changes:
        _check_person(db, changes["owner_id"], service.domain, "owner_id")
    if "manager_id" in changes:
        _check_person(db, changes["manager_id"], service.domain, "manager_id")
    apply_patch(service, actor, changes, header_version=if_match, body_version=data.version)
    if db.is_modified(service):
        db.flush()
        emit(db, events.SERVICE_UPDATED, domain=service.domain, entity_type="service", entity_id=service.id,
             payload={"number": service.number, "changed": sorted(k.rstrip("_") for k in changes)})
        if service.status != old_status:
            emit(db, events.SERVICE_STATUS_CHANGED, domain=service.domain, entity_type="service",
                 entity_id=service.id, payload={"number": service.number, "from": old_status,
                                                "to": service.status})
    else:
        db.flush()
    return service


def _check_no_active_children(db: Session, service: Service) -> None:
    active = db.scalars(select(Service.number).where(Service.parent_service_id == service.id,
                                                     Service.deleted_at.is_(None),
                                                     Service.status == ServiceStatus.active)).all()
    if active:
        raise Conflict(f"{service.number} still has active children: {', '.join(active)}.",
                       errors=[{"field": "status", "message": "retire or re-parent the active children first",
                                "type": "active_children"}])


def delete_service(db: Session, actor: Actor, service_id: uuid.UUID, if_match: int | None) -> Service:
    service = get_service(db, actor, service_id)
    require(db, actor, "service.delete", service)
    children = db.scalar(select(func.count()).select_from(Service).where(
        Service.parent_service_id == service.id, Service.deleted_at.is_(None)))
    if children:
        raise Conflict(f"{service.number} has {children} child service(s); delete or move them first.")
    soft_delete(service, actor, header_version=if_match)
    db.flush()
    emit(db, events.SERVICE_DELETED, domain=service.domain, entity_type="service", entity_id=service.id,
         payload={"number": service.number})
    return service


def restore_service(db: Session, actor: Actor, service_id: uuid.UUID) -> Service:
    service = get_service(db, actor, service_id)
    require(db, actor, "service.delete", service)
    if service.parent_service_id is not None:
        parent = db.get(Service, service.parent_service_id)
        if parent is None or parent.deleted_at is not None:
            raise Conflict("Its parent service is deleted; restore the parent first.")
    restore(service, actor)
    db.flush()
    emit(db, events.SERVICE_RESTORED, domain=service.domain, entity_type="service", entity_id=service.id,
         payload={"number": service.number})
    return service


# ---- relationships and stakeholders -----------------------------------------------------------------

def list_relationships(db: Session, actor: Actor, service_id: uuid.UUID, *, direction: str = "both",
                       type_: RelationshipType | None = None) -> list[ServiceRelationship]:
    get_service(db, actor, service_id)
    conditions = []
    if direction in ("both", "outgoing"):
        conditions.append(ServiceRelationship.source_service_id == service_id)
    if direction in ("both", "incoming"):
        conditions.append(ServiceRelationship.target_service_id == service_id)
    stmt = select(ServiceRelationship).where(or_(*conditions))
    if type_ is not None:
        stmt = stmt.where(ServiceRelationship.relationship_type == type_)
    return list(db.scalars(stmt.order_by(ServiceRelationship.created_at, ServiceRelationship.id)))


def add_relationship(db: Session, actor: Actor, service_id: uuid.UUID, data: RelationshipCreate) -> ServiceRelationship:
    source = get_service(db, actor, service_id, include_deleted=False)
    require(db, actor, "service.edit", source)
    if data.relationship_type == RelationshipType.parent_of:
        # The hierarchy has one source of truth, parent_service_id, with its level and cycle rules.
        raise ValidationProblem.field("relationship_type", "the hierarchy is set with the child's "
                                      "parent_service_id; parent_of is not written separately", "derived")
    if data.target_service_id == source.id:
        raise ValidationProblem.field("target_service_id", "a service cannot relate to itself", "self")
    target = service_exists(db, actor, data.target_service_id)
    if target is None:
        raise ValidationProblem.field("target_service_id", "no such service", "unknown_service")
    duplicate = db.scalar(select(ServiceRelationship.id).where(
        ServiceRelationship.source_service_id == source.id,
        ServiceRelationship.target_service_id == target.id,
        ServiceRelationship.relationship_type == data.relationship_type))
    if duplicate is not None:
        raise Conflict("This relationship already exists.", existing_id=str(duplicate),
                       errors=[{"field": "target_service_id", "message": "duplicate", "type": "unique"}])
    relationship = ServiceRelationship(source_service_id=source.id, target_service_id=target.id,
                                       relationship_type=data.relationship_type, description=data.description,
                                       created_by=actor.user_id)
    db.add(relationship)
    db.flush()
    audit.record(db, action="add_relationship", entity_type="service", entity_id=source.id, domain=source.domain,
                 changes={"after": {"relationship_id": relationship.id, "type": data.relationship_type,
                                    "target_service_id": target.id, "target": target.number}})
    db.refresh(relationship)
    return relationship


def _remove_child(db: Session, actor: Actor, service_id: uuid.UUID, row: Any, row_id: uuid.UUID, *, owner: str,
                  label: str, action: str, fields: tuple[str, ...]) -> None:
    """Remove a relationship or stakeholder row of a service, audited on the service."""
    service = get_service(db, actor, service_id)
    if row is None or getattr(row, owner) != service.id:
        raise NotFound(f"No {label} {row_id} on this service.")
    require(db, actor, "service.edit", service)
    hard_delete(db, row)
    audit.record(db, action=action, entity_type="service", entity_id=service.id, domain=service.domain,
                 changes={"before": {f: getattr(row, f) for f in fields}})


def remove_relationship(db: Session, actor: Actor, service_id: uuid.UUID, relationship_id: uuid.UUID) -> None:
    _remove_child(db, actor, service_id, db.get(ServiceRelationship, relationship_id), relationship_id,
                  owner="source_service_id", label="relationship", action="remove_relationship",
                  fields=("id", "relationship_type", "target_service_id"))


def list_stakeholders(db: Session, actor: Actor, service_id: uuid.UUID) -> list[ServiceStakeholder]:
    get_service(db, actor, service_id)
    return list(db.scalars(select(ServiceStakeholder).where(ServiceStakeholder.service_id == service_id)
                           .order_by(ServiceStakeholder.role, ServiceStakeholder.created_at)))


def add_stakeholder(db: Session, actor: Actor, service_id: uuid.UUID, data: StakeholderCreate) -> ServiceStakeholder:
    service = get_service(db, actor, service_id, include_deleted=False)
    require(db, actor, "service.edit", service)
    _check_person(db, data.user_id, service.domain, "user_id")
    duplicate = db.scalar(select(ServiceStakeholder.id).where(
        ServiceStakeholder.service_id == service.id, ServiceStakeholder.user_id == data.user_id,
        ServiceStakeholder.role == data.role.value))
    if duplicate is not None:
        raise Conflict("This user already has this role on the service.", existing_id=str(duplicate),
                       errors=[{"field": "user_id", "message": "duplicate", "type": "unique"}])
    stakeholder = ServiceStakeholder(service_id=service.id, user_id=data.user_id, role=data.role.value,
                                     created_by=actor.user_id)
    db.add(stakeholder)
    db.flush()
    audit.record(db, action="add_stakeholder", entity_type="service", entity_id=service.id, domain=service.domain,
                 changes={"after": {"stakeholder_id": stakeholder.id, "user_id": data.user_id,
                                    "role": data.role}})
    db.refresh(stakeholder)
    return stakeholder


def remove_stakeholder(db: Session, actor: Actor, service_id: uuid.UUID, stakeholder_id: uuid.UUID) -> None:
    _remove_child(db, actor, service_id, db.get(ServiceStakeholder, stakeholder_id), stakeholder_id,
                  owner="service_id", label="stakeholder", action="remove_stakeholder",
                  fields=("id", "user_id", "role"))


# ---- the tree -----------------------------------------------------------------------------------

_TREE_SQL = Template("""
WITH RECURSIVE tree AS (
    SELECT s.id, s.parent_service_id, s.number, s.name, s.domain, s.type, s.status, 0 AS depth,
           ARRAY[s.name]::text[] AS path, ARRAY[s.id] AS id_path,
           coalesce(s.cost_people, 0) AS cp, coalesce(s.cost_process, 0) AS cpr,
           coalesce(s.cost_technology, 0) AS ct
    FROM gaas_service_catalog.services s
    WHERE $root AND s.deleted_at IS NULL
    UNION ALL
    -- children share their parent's domain: the walk stays on idx_services_domain_parent
    SELECT c.id, c.parent_service_id, c.number, c.name, c.domain, c.type, c.status, t.depth + 1,
           t.path || c.name::text, t.id_path || c.id,
           coalesce(c.cost_people, 0), coalesce(c.cost_process, 0), coalesce(c.cost_technology, 0)
    FROM tree t
    JOIN gaas_service_catalog.services c ON c.parent_service_id = t.id AND c.domain = t.domain
    WHERE c.deleted_at IS NULL AND t.depth < $max_depth
),
rolled AS (
    -- every node adds its own costs to itself and to each of its ancestors
    SELECT a.ancestor_id, sum(t.cp) AS rp, sum(t.cpr) AS rpr, sum(t.ct) AS rt
    FROM tree t CROSS JOIN LATERAL unnest(t.id_path) AS a(ancestor_id)
    GROUP BY a.ancestor_id
)
-- The database writes the JSON (money as strings, like the rest of the API), so a 10,000-node
-- tree costs one query and no per-node work in Python. Concatenation is about twice as fast as
-- json_build_object here; every text value goes through to_json() for escaping, and the rest
-- (uuids, enum labels, numbers) cannot contain a quote.
SELECT '[' || coalesce(string_agg(concat(
    '{"id":"', t.id, '","number":', to_json(t.number), ',"name":', to_json(t.name),
    ',"domain":', to_json(t.domain), ',"type":"', t.type, '","status":"', t.status,
    '","parent_service_id":', coalesce('"' || t.parent_service_id || '"', 'null'),
    ',"depth":', t.depth, ',"path":', to_json(t.path),
    ',"own":{"people":"', t.cp, '","process":"', t.cpr, '","technology":"', t.ct,
    '","total":"', t.cp + t.cpr + t.ct,
    '"},"rolled_up":{"people":"', r.rp, '","process":"', r.rpr, '","technology":"', r.rt,
    '","total":"', r.rp + r.rpr + r.rt, '"}}'), ',' ORDER BY t.path, t.id_path), '') || ']'
FROM tree t
JOIN rolled r ON r.ancestor_id = t.id
""")  # a Template: the JSON text is full of braces
# The planner underestimates the recursive walk and would hash the whole services table per
# level; with SSD-like page costs it follows the index. JIT only adds latency to this query,
# and the roll-up's hash aggregate should not spill to disk.
_TREE_SETTINGS = text("SELECT set_config('random_page_cost', '1.1', true), set_config('jit', 'off', true),"
                      " set_config('work_mem', '64MB', true)")


def tree_json(db: Session, actor: Actor, *, root_id: uuid.UUID | None = None, domain: str | None = None) -> str:
    """The specification's Query 1 with rolled-up PPT costs, as a JSON array of TreeNode, in path
    order: one SQL round trip for the whole tree."""
    params: dict[str, Any] = {}
    if root_id is not None:
        get_service(db, actor, root_id, include_deleted=False)
        root = "s.id = :root"
        params["root"] = root_id
    else:
        if not actor.can_anywhere("service.view"):
            raise Forbidden("The service tree needs the 'service.view' permission.", permission="service.view")
        root = "s.parent_service_id IS NULL"
        if domain is not None:
            root += " AND s.domain = :domain"
            params["domain"] = domain
    db.execute(_TREE_SETTINGS)
    return db.execute(text(_TREE_SQL.substitute(root=root, max_depth=MAX_DEPTH)), params).scalar_one()


# ---- reports ------------------------------------------------------------------------------------

def ppt_balance(db: Session, actor: Actor, domain: str | None = None) -> list[PptBalance]:
    """The specification's Query 3: People/Process/Technology split of active services per domain."""
    if not actor.can_anywhere("cost.view"):
        raise Forbidden("Cost reports need the 'cost.view' permission.", permission="cost.view")
    hundred = literal(Decimal("100.0"), Numeric)
    stmt = (
        select(
            Service.domain,
            func.sum(Service.cost_people).label("total_people_cost"),
            func.sum(Service.cost_process).label("total_process_cost"),
            func.sum(Service.cost_technology).label("total_technology_cost"),
            func.sum(Service.total_cost).label("total_cost"),
            func.round(hundred * func.sum(Service.cost_people) / func.nullif(func.sum(Service.total_cost), 0), 1)
            .label("people_pct"),
            func.round(hundred * func.sum(Service.cost_process) / func.nullif(func.sum(Service.total_cost), 0), 1)
            .label("process_pct"),
            func.round(hundred * func.sum(Service.cost_technology) / func.nullif(func.sum(Service.total_cost), 0), 1)
            .label("technology_pct"),
        )
        .where(Service.deleted_at.is_(None), Service.status == ServiceStatus.active)
        .group_by(Service.domain)
        .order_by(func.sum(Service.total_cost).desc(), Service.domain)
    )
    stmt = where_viewable(stmt, actor, "cost.view", Service.domain)
    if domain is not None:
        stmt = stmt.where(Service.domain == domain)
    return [PptBalance(**row._mapping) for row in db.execute(stmt)]


def allocations_query(actor: Actor, *, domain: str | None, service_id: uuid.UUID | None,
                      by_service: bool, service_ids: list[uuid.UUID] | None = None) -> Select:
    """Annual PPT allocations of live, in-use services (active or deprecated), per service or per
    domain: a query other modules' reports embed to set actual spending against.
    Columns: domain, [service_id,] people, process, technology."""
    columns = [Service.domain]
    if by_service:
        columns.append(Service.id.label("service_id"))
    stmt = (select(*columns,
                   func.sum(func.coalesce(Service.cost_people, 0)).label("people"),
                   func.sum(func.coalesce(Service.cost_process, 0)).label("process"),
                   func.sum(func.coalesce(Service.cost_technology, 0)).label("technology"))
            .where(Service.deleted_at.is_(None),
                   Service.status.in_([ServiceStatus.active, ServiceStatus.deprecated]))
            .group_by(*columns))
    stmt = where_viewable(stmt, actor, "cost.view", Service.domain)
    if domain is not None:
        stmt = stmt.where(Service.domain == domain)
    if service_id is not None:
        stmt = stmt.where(Service.id == service_id)
    if service_ids is not None:
        stmt = stmt.where(Service.id.in_(service_ids))
    return stmt


def services_with_business_ancestors(db: Session, actor: Actor,
                                     service_ids: list[uuid.UUID]) -> tuple[list[dict], list[dict]]:
    """For impact analysis: the live services given (that the caller may see) and, walking up the
    hierarchy from each, every business service above or among them, with SLA targets.
    Each business service lists the given services (`via`) that lead to it."""
    if not service_ids:
        return [], []
    rows = db.execute(text("""
        WITH RECURSIVE up AS (
            SELECT s.id AS origin, s.id, s.parent_service_id, 0 AS depth
            FROM gaas_service_catalog.services s WHERE s.id = ANY(:ids) AND s.deleted_at IS NULL
            UNION ALL
            SELECT up.origin, p.id, p.parent_service_id, up.depth + 1
            FROM up JOIN gaas_service_catalog.services p ON p.id = up.parent_service_id
            WHERE p.deleted_at IS NULL AND up.depth < :max
        )
        SELECT up.origin, up.depth, s.id, s.number, s.name, s.type::text AS type, s.domain,
               s.sla_target::text AS sla_target
        FROM up JOIN gaas_service_catalog.services s ON s.id = up.id
        ORDER BY s.number"""), {"ids": list(service_ids), "max": MAX_DEPTH}).mappings().all()
    direct: dict[uuid.UUID, dict] = {}
    business: dict[uuid.UUID, dict] = {}
    for row in rows:
        if not actor.can("service.view", row["domain"]):
            continue
        entry = {k: row[k] for k in ("id", "number", "name", "type", "domain", "sla_target")}
        if row["depth"] == 0:
            direct[row["id"]] = entry
        if row["type"] == "business":
            business.setdefault(row["id"], {**entry, "via": set()})["via"].add(row["origin"])
    return list(direct.values()), [{**b, "via": sorted(b["via"])} for b in business.values()]


def service_labels(db: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    """For other modules' reports: number and name of the services they mention."""
    if not ids:
        return {}
    rows = db.execute(select(Service.id, Service.number, Service.name).where(Service.id.in_(ids)))
    return {r.id: (r.number, r.name) for r in rows}
