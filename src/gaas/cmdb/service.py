"""The CMDB's rules: classes with JSON-Schema-validated attributes, configuration items,
relationships and impact analysis. The only entry to gaas_cmdb."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import Float, Select, literal, or_, select, text, union_all
from sqlalchemy.orm import Session, aliased

from gaas.audit import service as audit
from gaas.catalog import service as catalog
from gaas.cmdb import events, health
from gaas.cmdb import graph as impact_graph
from gaas.cmdb.classes import DEFAULT_CLASSES
from gaas.cmdb.models import (
    IMPACT_TYPES,
    CIClass,
    CIRelationship,
    CIRelationshipType,
    CIStatus,
    ConfigurationItem,
    Environment,
    ci_search_names,
)
from gaas.cmdb.schemas import (
    CIClassCreate,
    CIClassUpdate,
    CICreate,
    CIOut,
    CIRelationshipCreate,
    CIUpdate,
)
from gaas.core.context import Actor
from gaas.core.errors import Conflict, Forbidden, NotFound, ValidationProblem
from gaas.core.events import emit
from gaas.core.pagination import SortKey, decode_offset, encode_offset, paginate
from gaas.core.queries import where_equal, where_viewable
from gaas.core.records import apply_patch, hard_delete, restore, rows_by_id, soft_delete, stamp_created
from gaas.core.settings import get_settings
from gaas.iam import service as iam

CI_SORTS = (SortKey("number", ConfigurationItem.number), SortKey("name", ConfigurationItem.name),
            SortKey("created_at", ConfigurationItem.created_at), SortKey("updated_at", ConfigurationItem.updated_at))
CLASS_SORTS = (SortKey("name", CIClass.name),)
# Identification rules may name these record fields besides attributes.
RECORD_KEYS = frozenset({"domain", "name", "environment"})
MAX_IMPACT_DEPTH = 25
DEFAULT_STALENESS_DAYS = 60


def require(actor: Actor, permission: str, domain: str | None) -> None:
    if not actor.can(permission, domain):
        where = f"domain '{domain}'" if domain else "shared (global) infrastructure"
        raise Forbidden(f"This needs the '{permission}' permission in {where}.", permission=permission)


# ---- classes ------------------------------------------------------------------------------------

def sync_default_classes(db: Session, actor: Actor) -> int:
    """Create the default classes, or bring them in step with the code."""
    changed = 0
    for name, (label, schema, recommended, identification, precedence) in DEFAULT_CLASSES.items():
        cls = db.scalar(select(CIClass).where(CIClass.name == name, CIClass.domain.is_(None)))
        values = {"label": label, "attribute_schema": schema, "recommended": recommended,
                  "identification": identification, "source_precedence": precedence, "is_system": True}
        if cls is None:
            cls = CIClass(name=name, domain=None, **values)
            stamp_created(cls, actor)
            db.add(cls)
            changed += 1
        elif any(getattr(cls, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(cls, k, v)
            cls.updated_by = actor.user_id
            changed += 1
    db.flush()
    return changed


def class_for(db: Session, name: str, domain: str | None) -> CIClass | None:
    """The class a CI of `domain` uses: its domain's own class of that name, else the global one."""
    rows = db.scalars(select(CIClass).where(CIClass.name == name, CIClass.deleted_at.is_(None),
                                            or_(CIClass.domain.is_(None), CIClass.domain == domain))).all()
    return next((c for c in rows if c.domain is not None), rows[0] if rows else None)


def _check_class_definition(schema: dict[str, Any], recommended: list[str],
                            identification: list[list[str]]) -> None:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationProblem.field("attribute_schema", f"not a valid JSON Schema: {exc.message}") from exc
    if schema.get("type") != "object":
        raise ValidationProblem.field("attribute_schema", "must describe an object (\"type\": \"object\")")
    known = set(schema.get("properties", {})) | RECORD_KEYS
    for key in recommended:
        if key not in schema.get("properties", {}):
            raise ValidationProblem.field("recommended", f"'{key}' is not a property of the schema")
    for index, rule in enumerate(identification):
        if not rule:
            raise ValidationProblem.field(f"identification.{index}", "an identification rule names attributes")
        for key in rule:
            if key not in known:
                raise ValidationProblem.field(f"identification.{index}", f"'{key}' is not a property of the schema "
                                              f"nor one of {sorted(RECORD_KEYS)}")


def list_classes(db: Session, actor: Actor, *, domain: str | None, include_deleted: bool, cursor: str | None,
                 limit: int) -> tuple[list[CIClass], str | None]:
    stmt = select(CIClass)
    if not include_deleted:
        stmt = stmt.where(CIClass.deleted_at.is_(None))
    stmt = where_equal(stmt, (CIClass.domain, domain))
    return paginate(stmt, id_column=CIClass.id, sort_keys=CLASS_SORTS, sort=None, cursor=cursor, limit=limit,
                    execute=db.scalars)


def get_class(db: Session, actor: Actor, class_id: uuid.UUID) -> CIClass:
    cls = db.get(CIClass, class_id)
    if cls is None:
        raise NotFound(f"No CI class {class_id}.")
    return cls


def create_class(db: Session, actor: Actor, data: CIClassCreate) -> CIClass:
    require(actor, "ci_class.manage", data.domain)
    iam.require_active_domain(db, data.domain)
    _check_class_definition(data.attribute_schema, data.recommended, data.identification)
    cls = CIClass(**data.model_dump(), is_system=False)
    stamp_created(cls, actor)
    db.add(cls)
    db.flush()
    if cls.domain is not None:
        rekey_class(db, cls)  # it now governs that domain's CIs of this name
    return cls


def update_class(db: Session, actor: Actor, class_id: uuid.UUID, data: CIClassUpdate, if_match: int | None) -> CIClass:
    cls = get_class(db, actor, class_id)
    require(actor, "ci_class.manage", cls.domain)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    _check_class_definition(changes.get("attribute_schema", cls.attribute_schema),
                            changes.get("recommended", cls.recommended),
                            changes.get("identification", cls.identification))
    rules_changed = "identification" in changes and changes["identification"] != cls.identification
    apply_patch(cls, actor, changes, header_version=if_match, body_version=data.version)
    db.flush()
    if rules_changed:
        rekey_class(db, cls)
    return cls


def rekey_class(db: Session, cls: CIClass) -> int:
    """Recompute the identity keys of the CIs a class governs after its rules change, so that
    imports keep matching them."""
    stmt = select(ConfigurationItem).where(ConfigurationItem.ci_class == cls.name,
                                           ConfigurationItem.deleted_at.is_(None))
    if cls.domain is not None:
        stmt = stmt.where(ConfigurationItem.domain == cls.domain)
    changed, keyer = 0, identity_keyer(cls)
    for ci in db.scalars(stmt.execution_options(yield_per=1000)):
        if cls.domain is None and class_for(db, ci.ci_class, ci.domain) is not cls:
            continue  # a domain's own class of that name governs it
        keys = keyer(ci.domain, ci.name, ci.environment, ci.attributes)
        if keys != ci.identity_keys:
            ci.identity_keys = keys
            changed += 1
    db.flush()
    return changed


def delete_class(db: Session, actor: Actor, class_id: uuid.UUID, if_match: int | None) -> CIClass:
    cls = get_class(db, actor, class_id)
    require(actor, "ci_class.manage", cls.domain)
    if cls.is_system:
        raise Conflict(f"'{cls.name}' is a default class and cannot be deleted.")
    in_use = db.scalar(select(ConfigurationItem.number).where(ConfigurationItem.ci_class == cls.name,
                                                              ConfigurationItem.deleted_at.is_(None)).limit(1))
    if in_use:
        raise Conflict(f"CIs of class '{cls.name}' exist (e.g. {in_use}); retire or reclassify them first.")
    soft_delete(cls, actor, header_version=if_match)
    db.flush()
    return cls


def restore_class(db: Session, actor: Actor, class_id: uuid.UUID) -> CIClass:
    cls = get_class(db, actor, class_id)
    require(actor, "ci_class.manage", cls.domain)
    restore(cls, actor)
    db.flush()
    return cls


def identity_keys(cls: CIClass | None, *, domain: str | None, name: str, environment: str,
                  attributes: dict[str, Any]) -> list[str]:
    """One key per identification rule whose values are all present: the same key means the same CI."""
    if cls is None:
        return []
    return identity_keyer(cls)(domain, name, environment, attributes)


IdentityKeyer = Callable[[str | None, str, str, dict[str, Any]], list[str]]


def identity_keyer(cls: CIClass) -> IdentityKeyer:
    """identity_keys for one class, its rules read once: an import or a re-key calls it per CI."""
    rules = [(f"{cls.name}|{index}|", tuple(rule)) for index, rule in enumerate(cls.identification)]

    def keyer(domain: str | None, name: str, environment: str, attributes: dict[str, Any]) -> list[str]:
        record = {"domain": domain, "name": name, "environment": str(environment)}
        keys = []
        for head, rule in rules:
            values = [record[k] if k in RECORD_KEYS else attributes.get(k) for k in rule]
            if all(v is not None and v != "" for v in values):
                keys.append(head + _json_values(values))
        return keys

    return keyer


_PLAIN_TEXT = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII but " and \: JSON writes it as it is


def _json_values(values: list[Any]) -> str:
    """The key's canonical JSON. Plain strings (nearly every key) are written directly, in
    exactly the standard library's rendering, which stored keys were made with."""
    if all(type(v) is str and _PLAIN_TEXT.fullmatch(v) for v in values):
        return '["' + '","'.join(values) + '"]'
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


_VALIDATORS: dict[str, tuple[Callable[[Any], Any], Draft202012Validator]] = {}


# Keywords of JSON Schema 2020-12 that the compiled (draft 4-7) validator would silently ignore.
_NEWER_KEYWORDS = frozenset({"dependentRequired", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems",
                             "prefixItems", "minContains", "maxContains", "$dynamicRef", "$dynamicAnchor"})


def _keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        found |= set(schema)
        for value in schema.values():
            found |= _keywords(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _keywords(value)
    return found


def _validators(schema: dict[str, Any]) -> tuple[Callable[[Any], Any], Draft202012Validator]:
    """Per schema: a compiled check for the common case (valid attributes, e.g. an import of a
    million CIs) and the full validator that names every broken attribute. The compiled one is
    used only for schemas within its drafts. Cached by the schema's text, not the class's
    version: a rolled-back edit may have used the same version number for another schema."""
    key = json.dumps(schema, sort_keys=True)  # not orjson: a schema may hold integers beyond 64 bits
    entry = _VALIDATORS.get(key)
    if entry is None:
        full = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

        def slow(value: Any, full: Draft202012Validator = full) -> None:
            if not full.is_valid(value):
                raise fastjsonschema.JsonSchemaException("invalid")

        fast: Callable[[Any], Any] = slow
        if not _keywords(schema) & _NEWER_KEYWORDS:
            with contextlib.suppress(fastjsonschema.JsonSchemaDefinitionException):
                fast = fastjsonschema.compile(schema)
        entry = (fast, full)
        if len(_VALIDATORS) > 1000:
            _VALIDATORS.clear()
        _VALIDATORS[key] = entry
    return entry


def validate_attributes(cls: CIClass, attributes: dict[str, Any]) -> None:
    """422 naming each attribute that breaks the class's JSON Schema."""
    attribute_validator(cls)(attributes)


def attribute_validator(cls: CIClass) -> Callable[[dict[str, Any]], None]:
    """validate_attributes for one class, its schema compiled once: an import calls it per row."""
    fast, validator = _validators(cls.attribute_schema)
    name = cls.name

    def validate(attributes: dict[str, Any]) -> None:
        try:
            fast(attributes)
            return
        except fastjsonschema.JsonSchemaException:
            pass
        errors = []
        for error in sorted(validator.iter_errors(attributes), key=lambda e: list(e.path)):
            path = [str(p) for p in error.path]
            if error.validator == "required":
                missing = error.message.split("'")[1] if "'" in error.message else ""
                path = [missing] if missing else path
            field = ".".join(["attributes", *path])
            errors.append({"field": field, "message": error.message, "type": f"schema_{error.validator}"})
        if errors:
            raise ValidationProblem(f"The attributes do not fit class '{name}'.", errors=errors)

    return validate


# ---- configuration items ----------------------------------------------------------------------------

def get_ci(db: Session, actor: Actor, ci_id: uuid.UUID, *, include_deleted: bool = True) -> ConfigurationItem:
    ci = db.get(ConfigurationItem, ci_id)
    if ci is None or (ci.deleted_at is not None and not include_deleted) or not _can_view(actor, ci.domain):
        raise NotFound(f"No configuration item {ci_id}.")
    return ci


def _can_view(actor: Actor, domain: str | None) -> bool:
    return actor.can("ci.view", domain) or (domain is None and actor.can_anywhere("ci.view"))


def ci_exists(db: Session, actor: Actor, ci_id: uuid.UUID) -> ConfigurationItem | None:
    """For other modules: the live CI the caller can see."""
    ci = db.get(ConfigurationItem, ci_id)
    return ci if ci is not None and _live_and_visible(actor, ci) else None


def cis_existing(db: Session, actor: Actor, ci_ids: list[uuid.UUID]) -> dict[uuid.UUID, ConfigurationItem]:
    """For other modules: ci_exists for many CIs in one query (a change names up to 500)."""
    return rows_by_id(db, ConfigurationItem, ci_ids, lambda ci: _live_and_visible(actor, ci))


def _live_and_visible(actor: Actor, ci: ConfigurationItem) -> bool:
    return ci.deleted_at is None and (actor.sees(ci.domain) or ci.domain is None)


def _check_people_and_service(db: Session, actor: Actor, domain: str | None, values: dict[str, Any]) -> None:
    for field in ("owner_id", "managed_by"):
        user_id = values.get(field)
        if user_id is None:
            continue
        ok = iam.user_allowed_in_domain(db, user_id, domain) if domain else iam.user_is_active(db, user_id)
        if not ok:
            raise ValidationProblem.field(field, "no active user allowed in this domain has this id", "unknown_user")
    if values.get("service_id") is not None and catalog.service_exists(db, actor, values["service_id"],
                                                                      domain=domain) is None:
        raise ValidationProblem.field("service_id", "no such service in the CI's domain", "unknown_service")


def create_ci(db: Session, actor: Actor, data: CICreate) -> ConfigurationItem:
    require(actor, "ci.create", data.domain)
    iam.require_active_domain(db, data.domain)
    cls = class_for(db, data.ci_class, data.domain)
    if cls is None:
        raise ValidationProblem.field("ci_class", f"no class '{data.ci_class}'", "unknown_class")
    validate_attributes(cls, data.attributes)
    values = data.model_dump()
    _check_people_and_service(db, actor, data.domain, values)
    ci = ConfigurationItem(**values, identity_keys=identity_keys(cls, domain=data.domain, name=data.name,
                                                                environment=data.environment,
                                                                attributes=data.attributes),
                           attribute_sources=_manual_sources(data.attributes, {}))
    stamp_created(ci, actor)
    db.add(ci)
    db.flush()
    emit(db, events.CI_CREATED, domain=ci.domain, entity_type="ci", entity_id=ci.id,
         payload={"number": ci.number, "name": ci.name, "ci_class": ci.ci_class, "service_id": ci.service_id})
    return ci


def update_ci(db: Session, actor: Actor, ci_id: uuid.UUID, data: CIUpdate, if_match: int | None) -> ConfigurationItem:
    ci = get_ci(db, actor, ci_id, include_deleted=False)
    require(actor, "ci.edit", ci.domain)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "attributes" in changes:
        cls = class_for(db, ci.ci_class, ci.domain)
        if cls is not None:
            validate_attributes(cls, changes["attributes"])
    _check_people_and_service(db, actor, ci.domain, changes)
    old_status = ci.status
    if "attributes" in changes:
        changes["attribute_sources"] = _manual_sources(
            {k: v for k, v in changes["attributes"].items() if ci.attributes.get(k) != v}, ci.attribute_sources or {})
    apply_patch(ci, actor, changes, header_version=if_match, body_version=data.version)
    keys = identity_keys(class_for(db, ci.ci_class, ci.domain), domain=ci.domain, name=ci.name,
                         environment=ci.environment, attributes=ci.attributes)
    if keys != ci.identity_keys:
        ci.identity_keys = keys
    modified = db.is_modified(ci)
    db.flush()
    if modified:
        emit(db, events.CI_UPDATED, domain=ci.domain, entity_type="ci", entity_id=ci.id,
             payload={"number": ci.number, "changed": sorted(changes)})
        if ci.status != old_status:
            emit(db, events.CI_STATUS_CHANGED, domain=ci.domain, entity_type="ci", entity_id=ci.id,
                 payload={"number": ci.number, "from": old_status, "to": ci.status})
    return ci


def _manual_sources(changed: dict[str, Any], sources: dict[str, Any]) -> dict[str, Any]:
    """Attributes set through the API or UI are the 'manual' source's: the strongest by default."""
    now = datetime.now(UTC).isoformat()
    return {**sources, **{key: {"source": "manual", "at": now} for key in changed}}


def delete_ci(db: Session, actor: Actor, ci_id: uuid.UUID, if_match: int | None) -> ConfigurationItem:
    ci = get_ci(db, actor, ci_id)
    require(actor, "ci.delete", ci.domain)
    soft_delete(ci, actor, header_version=if_match)
    db.flush()
    emit(db, events.CI_DELETED, domain=ci.domain, entity_type="ci", entity_id=ci.id, payload={"number": ci.number})
    return ci


def restore_ci(db: Session, actor: Actor, ci_id: uuid.UUID) -> ConfigurationItem:
    ci = get_ci(db, actor, ci_id)
    require(actor, "ci.delete", ci.domain)
    restore(ci, actor)
    db.flush()
    return ci


def _attribute_filter(key: str, value: str):
    """`attributes @> {"key": value}`, served by the GIN index; a value that reads as a JSON number
    or boolean also matches that typed value."""
    candidates = [{key: value}]
    try:
        typed = json.loads(value)
        if isinstance(typed, int | float | bool):
            candidates.append({key: typed})
    except ValueError:
        pass
    return or_(*(ConfigurationItem.attributes.contains(c) for c in candidates))


def list_cis(db: Session, actor: Actor, *, domain: str | None, ci_class: str | None, status: CIStatus | None,
             environment: Environment | None, service_id: uuid.UUID | None, q: str | None,
             attributes: dict[str, str], include_deleted: bool, sort: str | None, cursor: str | None,
             limit: int, health_flag: str | None = None) -> tuple[list[ConfigurationItem], str | None]:
    if not actor.can_anywhere("ci.view"):
        raise Forbidden("Listing CIs needs the 'ci.view' permission.", permission="ci.view")
    stmt: Select = select(ConfigurationItem)
    stmt = where_viewable(stmt, actor, "ci.view", ConfigurationItem.domain, global_rows=True)
    if not include_deleted:
        stmt = stmt.where(ConfigurationItem.deleted_at.is_(None))
    stmt = where_equal(stmt, (ConfigurationItem.domain, domain), (ConfigurationItem.ci_class, ci_class),
                       (ConfigurationItem.status, status), (ConfigurationItem.environment, environment),
                       (ConfigurationItem.service_id, service_id))
    for key, value in attributes.items():
        stmt = stmt.where(_attribute_filter(key, value))
    if health_flag is not None:
        if health_flag not in health.FLAGS:
            raise ValidationProblem.field("health", f"use one of {list(health.FLAGS)}", "enum")
        flagged = text(health.flagged_ids_sql(health_flag)).bindparams(default_staleness=DEFAULT_STALENESS_DAYS)
        stmt = stmt.where(ConfigurationItem.id.in_(flagged.columns(id=ConfigurationItem.id.type)))
    if q:
        return _search(db, stmt, q.strip(), cursor, limit)
    return paginate(stmt, id_column=ConfigurationItem.id, sort_keys=CI_SORTS, sort=sort, cursor=cursor, limit=limit,
                    execute=db.scalars)


SEARCH_MAX_DISTANCE = 0.6  # 1 - word similarity: closer than this counts as a match


def _search(db: Session, stmt: Select, q: str, cursor: str | None, limit: int):
    """Fuzzy name search, nearest first: `q <<-> name` (one minus word similarity). Indexed names
    are walked nearest-first through the GiST trigram index on ci_search_names, so only the
    nearest are ever scored; the CIs an import created that the worker has not indexed yet
    (usually none; after a large import, for as long as the worker takes) are scored directly.
    Far names are dropped."""
    offset = decode_offset(cursor)
    wanted = offset + limit + 1
    indexed_distance = literal(q).op("<<->", return_type=Float)(ci_search_names.c.name)
    indexed = (stmt.join(ci_search_names, ci_search_names.c.ci_id == ConfigurationItem.id)
               .add_columns(indexed_distance.label("distance")).order_by(indexed_distance).limit(wanted))
    pending_distance = literal(q).op("<<->", return_type=Float)(ConfigurationItem.name)
    pending = (stmt.where(text(unindexed_names("gaas_cmdb.configuration_items")),
                          pending_distance < SEARCH_MAX_DISTANCE)
               .add_columns(pending_distance.label("distance")).order_by(pending_distance).limit(wanted))
    both = union_all(indexed, pending).subquery()
    found = aliased(ConfigurationItem, both)
    rows = db.execute(select(found, both.c.distance).order_by(both.c.distance, both.c.id)
                      .offset(offset).limit(limit + 1)).all()
    close = [row[0] for row in rows if row.distance < SEARCH_MAX_DISTANCE]
    more = len(rows) > limit and len(close) == len(rows)
    return (close[:limit], encode_offset(offset + limit)) if more else (close[:limit], None)


def unindexed_names(ci_table: str) -> str:
    """SQL over `ci_table` (the CI table or its alias): the CIs an import created that the worker
    has not put in ci_search_names yet, for searches to score directly (CI list, global search)."""
    return (f"{ci_table}.id IN (SELECT unnest(p.ci_ids) FROM gaas_cmdb.ci_search_names_pending p) "
            f"AND NOT EXISTS (SELECT 1 FROM gaas_cmdb.ci_search_names n WHERE n.ci_id = {ci_table}.id)")


def index_pending_search_names(db: Session, *, batches: int = 100) -> int:
    """The worker's job: fold CIs that imports created into the search-name index, a few import
    batches per transaction (each pending row goes as it is indexed). Returns how many CIs were
    taken off the pending list (0: none was pending)."""
    return db.execute(text("""
        WITH taken AS (
            DELETE FROM gaas_cmdb.ci_search_names_pending
            WHERE id IN (SELECT id FROM gaas_cmdb.ci_search_names_pending ORDER BY id LIMIT :batches
                         FOR UPDATE SKIP LOCKED)
            RETURNING ci_ids
        ), indexed AS (
            INSERT INTO gaas_cmdb.ci_search_names (ci_id, domain, name)
            SELECT c.id, c.domain, c.name FROM gaas_cmdb.configuration_items c
            WHERE c.id IN (SELECT unnest(ci_ids) FROM taken)
            -- A row already there was written by a rename since (the trigger): it is newer than
            -- what this statement's snapshot read.
            ON CONFLICT (ci_id) DO NOTHING
        )
        SELECT coalesce(sum(cardinality(ci_ids)), 0) FROM taken"""), {"batches": batches}).scalar_one()


def drain_pending_search_names(db: Session) -> int:
    """Index every CI left pending, in this transaction (`gaas import cis`, the bench): what the
    worker's job does a few import batches at a time. Returns the CIs taken off the list."""
    total = 0
    while taken := index_pending_search_names(db):
        total += taken
    return total


# ---- relationships ------------------------------------------------------------------------------------

def _writable_ci(db: Session, actor: Actor, ci_id: uuid.UUID, field: str) -> ConfigurationItem:
    ci = ci_exists(db, actor, ci_id)
    if ci is None:
        raise ValidationProblem.field(field, "no such configuration item", "unknown_ci")
    if not actor.can("ci.edit", ci.domain):
        raise Forbidden(f"Linking {ci.number} needs the 'ci.edit' permission in its domain.", permission="ci.edit")
    return ci


def create_relationship(db: Session, actor: Actor, data: CIRelationshipCreate) -> CIRelationship:
    if data.source_ci_id == data.target_ci_id:
        raise ValidationProblem.field("target_ci_id", "a CI cannot relate to itself", "self")
    source = _writable_ci(db, actor, data.source_ci_id, "source_ci_id")
    target = _writable_ci(db, actor, data.target_ci_id, "target_ci_id")
    duplicate = db.scalar(select(CIRelationship.id).where(
        CIRelationship.source_ci_id == source.id, CIRelationship.target_ci_id == target.id,
        CIRelationship.relationship_type == data.relationship_type))
    if duplicate is not None:
        raise Conflict("This relationship already exists.", existing_id=str(duplicate),
                       errors=[{"field": "target_ci_id", "message": "duplicate", "type": "unique"}])
    rel = CIRelationship(**data.model_dump(), created_by=actor.user_id)
    db.add(rel)
    db.flush()
    audit.record(db, action="add_relationship", entity_type="ci", entity_id=source.id, domain=source.domain,
                 changes={"after": {"relationship_id": rel.id, "type": data.relationship_type,
                                    "target_ci_id": target.id, "target": target.number}})
    db.refresh(rel)
    return rel


def list_relationships(db: Session, actor: Actor, *, ci_id: uuid.UUID | None, source_ci_id: uuid.UUID | None,
                       target_ci_id: uuid.UUID | None, type_: CIRelationshipType | None, cursor: str | None,
                       limit: int) -> tuple[list[CIRelationship], str | None]:
    if not actor.can_anywhere("ci.view"):
        raise Forbidden("Listing relationships needs the 'ci.view' permission.", permission="ci.view")
    stmt = where_equal(select(CIRelationship), (CIRelationship.source_ci_id, source_ci_id),
                       (CIRelationship.target_ci_id, target_ci_id), (CIRelationship.relationship_type, type_))
    viewable = actor.domains_with("ci.view")
    if viewable is not None:  # both ends in domains where the caller may view CIs (or shared ones)
        for end in (CIRelationship.source_ci_id, CIRelationship.target_ci_id):
            stmt = stmt.where(select(ConfigurationItem.id).where(
                ConfigurationItem.id == end, or_(ConfigurationItem.domain.is_(None),
                                                 ConfigurationItem.domain.in_(sorted(viewable)))).exists())
    if ci_id is not None:
        stmt = stmt.where(or_(CIRelationship.source_ci_id == ci_id, CIRelationship.target_ci_id == ci_id))
    return paginate(stmt, id_column=CIRelationship.id, sort_keys=(SortKey("created_at", CIRelationship.created_at),),
                    sort=None, cursor=cursor, limit=limit, execute=db.scalars)


def delete_relationship(db: Session, actor: Actor, relationship_id: uuid.UUID) -> None:
    rel = db.get(CIRelationship, relationship_id)
    if rel is None:
        raise NotFound(f"No relationship {relationship_id}.")
    # Either end may be deleted or retired already: those are the links health asks to clean up.
    source, target = db.get(ConfigurationItem, rel.source_ci_id), db.get(ConfigurationItem, rel.target_ci_id)
    for end in (source, target):
        if end is None or not actor.can("ci.edit", end.domain):
            raise Forbidden("Removing this link needs the 'ci.edit' permission on both of its CIs.",
                            permission="ci.edit")
    hard_delete(db, rel)
    audit.record(db, action="remove_relationship", entity_type="ci", entity_id=source.id, domain=source.domain,
                 changes={"before": {"relationship_id": rel.id, "type": rel.relationship_type,
                                     "target_ci_id": rel.target_ci_id}})


# ---- impact analysis ------------------------------------------------------------------------------------

_STEP_DEPENDENTS = text("""
    SELECT r.source_ci_id, r.target_ci_id, r.relationship_type::text, c.service_id
    FROM gaas_cmdb.ci_relationships r
    JOIN gaas_cmdb.configuration_items c ON c.id = r.source_ci_id AND c.deleted_at IS NULL
    WHERE r.target_ci_id = ANY(:frontier) AND r.relationship_type::text = ANY(:types)
      AND (CAST(:all_domains AS boolean) OR c.domain IS NULL OR c.domain = ANY(:view_domains))
    ORDER BY r.source_ci_id, r.target_ci_id, r.relationship_type""")
_STEP_DEPENDENCIES = text("""
    SELECT r.target_ci_id, r.source_ci_id, r.relationship_type::text, c.service_id
    FROM gaas_cmdb.ci_relationships r
    JOIN gaas_cmdb.configuration_items c ON c.id = r.target_ci_id AND c.deleted_at IS NULL
    WHERE r.source_ci_id = ANY(:frontier) AND r.relationship_type::text = ANY(:types)
      AND (CAST(:all_domains AS boolean) OR c.domain IS NULL OR c.domain = ANY(:view_domains))
    ORDER BY r.target_ci_id, r.source_ci_id, r.relationship_type""")
_DETAILS = text("""SELECT id, number, name, ci_class, domain, status::text, service_id
                   FROM gaas_cmdb.configuration_items WHERE id = ANY(:ids)""")
IMPACT_PAGE_MAX = 5000


Reached = dict[uuid.UUID, tuple[int, uuid.UUID | None, str | None, uuid.UUID | None]]


def _walk(db: Session, root: uuid.UUID | list[uuid.UUID], *, dependents: bool, types: list[str], max_depth: int,
          view_domains: frozenset[str] | None) -> Reached:
    """Breadth-first, one query per level: each CI once, at its shortest depth, with the CI and
    relationship it was first reached through, and the service it supports. Row-level security
    hides what the caller may not see, so the walk never passes through it."""
    step = _STEP_DEPENDENTS if dependents else _STEP_DEPENDENCIES
    frontier = list(dict.fromkeys(root if isinstance(root, list) else [root]))
    reached: Reached = {r: (0, None, None, None) for r in frontier}
    for depth in range(1, max_depth + 1):
        if not frontier:
            break
        next_frontier = []
        params = {"frontier": frontier, "types": types, "all_domains": view_domains is None,
                  "view_domains": sorted(view_domains or ())}
        for found, via, type_, service_id in db.execute(step, params):
            if found not in reached:
                reached[found] = (depth, via, type_, service_id)
                next_frontier.append(found)
        frontier = next_frontier
    return reached


def merge_pending_index_entries(db: Session) -> int:
    """Merge what bulk writes appended to the GIN pending lists of CI names and attributes into the
    indexes (the worker, every minute): queries were exact before, and are quicker after. Returns
    the pending-list pages merged."""
    return int(db.scalar(text("SELECT gaas_cmdb.merge_pending_index_entries()")) or 0)


def _fresh_graph(db: Session) -> impact_graph.ImpactGraph | None:
    """The in-memory graph when the CMDB is large enough to need it and the copy is fresh;
    otherwise None (and, if large, a new copy is started in the background). Once a copy exists
    the size is not asked again: a fresh copy answers exactly, however small the CMDB became."""
    if impact_graph.CACHE.graph is not None:
        return impact_graph.CACHE.fresh_graph(db, build_graph)
    size = db.execute(text("SELECT greatest(reltuples, 0) FROM pg_class "  # an estimate: no count(*)
                           "WHERE oid = 'gaas_cmdb.configuration_items'::regclass")).scalar_one()
    if size < get_settings().impact_graph_min_cis:
        return None
    return impact_graph.CACHE.fresh_graph(db, build_graph)


def build_graph(factory=None) -> impact_graph.ImpactGraph:
    """A new in-memory copy of the graph, from one REPEATABLE READ snapshot, read globally."""
    from gaas.core.db import session_factory, set_context

    with (factory or session_factory())() as session:
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        set_context(session, iam.system_actor())
        try:
            return impact_graph.build(session)
        finally:
            session.rollback()


def impact(db: Session, actor: Actor, ci_id: uuid.UUID, *, dependents: bool = True, max_depth: int = 10,
           relationship_types: list[CIRelationshipType] | None = None, limit: int = 1000,
           cursor: str | None = None) -> dict[str, Any]:
    """What fails with this CI (dependents), or what it needs (dependencies): how many CIs at each
    depth, one page of them (by depth) with the path that explains each, and every service and
    business service reached. A plain structure shaped like ImpactReport: a core switch reaches
    hundreds of thousands of CIs, too many for a model each."""
    root = get_ci(db, actor, ci_id, include_deleted=False)
    if not 1 <= max_depth <= MAX_IMPACT_DEPTH:
        raise ValidationProblem.field("max_depth", f"must be between 1 and {MAX_IMPACT_DEPTH}")
    if not 1 <= limit <= IMPACT_PAGE_MAX:
        raise ValidationProblem.field("limit", f"must be between 1 and {IMPACT_PAGE_MAX}")
    types = relationship_types or list(IMPACT_TYPES)
    type_names = [t.value for t in types]
    graph = _fresh_graph(db)
    walk = graph.walk(root.id, dependents=dependents, types=type_names, max_depth=max_depth,
                      visible=impact_graph.visibility(actor)) if graph is not None else None
    computed_with = "memory" if walk is not None else "database"
    if walk is None:
        # Row-level security bounds the walk to visible domains; ci.view narrows it to where one may look.
        walk = impact_graph.SqlWalk(root.id, _walk(db, root.id, dependents=dependents, types=type_names,
                                                   max_depth=max_depth, view_domains=actor.domains_with("ci.view")))
    by_service = walk.by_service()
    if root.service_id:
        count, sample = by_service.get(root.service_id, (0, []))
        by_service[root.service_id] = (count + 1, [root.id, *sample][:impact_graph.SAMPLES])
    offset = decode_offset(cursor)
    page = walk.page(offset, limit)
    details = {row.id: row for row in db.execute(_DETAILS, {"ids": page})} if page else {}
    cis = [{"id": str(i), "number": details[i].number, "name": details[i].name, "ci_class": details[i].ci_class,
            "domain": details[i].domain, "status": details[i].status,
            "service_id": str(details[i].service_id) if details[i].service_id else None,
            "depth": walk.depth(i), "path": walk.path(i)} for i in page if i in details]
    services, business = catalog.services_with_business_ancestors(db, actor, list(by_service))

    def as_service(entry: dict, origins: list[uuid.UUID]) -> dict[str, Any]:
        count = sum(by_service.get(origin, (0, []))[0] for origin in origins)
        sample = [str(c) for origin in origins for c in by_service.get(origin, (0, []))[1]]
        return {**{k: str(entry[k]) if k == "id" else entry[k]
                   for k in ("id", "number", "name", "type", "domain", "sla_target")},
                "via_ci_count": count, "via_ci_ids": sample[:impact_graph.SAMPLES]}

    work = _work_on(db, actor, walk.reached_ids()) if dependents else {}
    return {
        "ci": CIOut.model_validate(root).model_dump(mode="json"),
        "direction": "dependents" if dependents else "dependencies", "max_depth": max_depth,
        "relationship_types": [t.value for t in types], "total": walk.total, "computed_with": computed_with,
        "by_depth": {str(d): n for d, n in sorted(walk.by_depth.items())},
        "cis": cis, "next_cursor": encode_offset(offset + limit) if offset + limit < walk.total else None,
        "services": [as_service(s, [s["id"]]) for s in services],
        "business_services": [as_service(b, b["via"]) for b in business],
        **work,
    }


def _work_on(db: Session, actor: Actor, ci_ids: Collection[uuid.UUID]) -> dict[str, Any]:
    """The open incidents and the approved, scheduled or running changes on the impacted CIs
    (the failing one included), through their modules: what is already known to be wrong, and
    what is about to be touched."""
    from gaas.changes.impact import upcoming_changes_on
    from gaas.incidents.impact import open_incidents_on

    incidents, incident_items = open_incidents_on(db, actor, ci_ids)
    changes, change_items = upcoming_changes_on(db, actor, ci_ids)
    return {"open_incidents": {"count": incidents, "items": incident_items},
            "upcoming_changes": {"count": changes, "items": change_items}}


@dataclass(frozen=True)
class ImpactSet:
    """What fails with any of a set of CIs: for change conflict detection and change risk."""

    cis: frozenset[uuid.UUID]  # the given (visible, live) CIs and everything depending on them
    services: list[dict[str, Any]]  # services those CIs support: id, number, name, type, domain, sla_target
    business_services: list[dict[str, Any]]  # business services above or among them, with `via`


def impact_of(db: Session, actor: Actor, ci_ids: list[uuid.UUID], *,
              max_depth: int = MAX_IMPACT_DEPTH, with_services: bool = True) -> ImpactSet:
    """The union of the given CIs' impact (dependents over depends_on, runs_on, part_of), as far
    as the caller may see. CIs that do not exist or are not visible are ignored: callers check
    their references first."""
    roots = db.execute(text("SELECT id, service_id FROM gaas_cmdb.configuration_items "
                            "WHERE id = ANY(:ids) AND deleted_at IS NULL"), {"ids": list(set(ci_ids))}).all()
    roots = [r for r in roots if r.id]
    if not roots:
        return ImpactSet(frozenset(), [], [])
    types = [t.value for t in IMPACT_TYPES]
    reached: set[uuid.UUID] = {r.id for r in roots}
    service_ids: set[uuid.UUID] = {r.service_id for r in roots if r.service_id}
    graph = _fresh_graph(db)
    if graph is not None and all(r.id in graph.index for r in roots):
        visible = impact_graph.visibility(actor)
        for root in roots:
            walk = graph.walk(root.id, dependents=True, types=types, max_depth=max_depth, visible=visible)
            if walk is not None:
                reached.update(graph.ids[n] for n in walk.order)
                service_ids.update(s for s in (graph.service_of[n] for n in walk.order) if s is not None)
    else:
        walked = _walk(db, [r.id for r in roots], dependents=True, types=types, max_depth=max_depth,
                       view_domains=actor.domains_with("ci.view"))
        reached.update(walked)
        service_ids.update(entry[3] for entry in walked.values() if entry[3] is not None)
    if not with_services:  # only the CIs are wanted: skip the walk up the service hierarchy
        return ImpactSet(frozenset(reached), [], [])
    services, business = catalog.services_with_business_ancestors(db, actor, sorted(service_ids))
    return ImpactSet(frozenset(reached), services, business)


# ---- health -------------------------------------------------------------------------------------------

def health_report(db: Session, actor: Actor, *, domain: str | None, ci_class: str | None) -> list[dict[str, Any]]:
    """Per domain and class: totals and each health figure, with the link that lists the CIs."""
    if not actor.can_anywhere("ci.view"):
        raise Forbidden("CMDB health needs the 'ci.view' permission.", permission="ci.view")
    rows = []
    for row in health.summary(db, domain=domain, ci_class=ci_class, default_staleness=DEFAULT_STALENESS_DAYS):
        if not _can_view(actor, row["domain"]):
            continue
        base = f"/api/v1/cis?class={row['ci_class']}" + (f"&domain={row['domain']}" if row["domain"] else "")
        figures = {flag: {"count": row[flag], "list": f"{base}&health={flag}"} for flag in health.FLAGS}
        complete = row["total"] - row["missing_required"]
        rows.append({"domain": row["domain"], "ci_class": row["ci_class"], "total": row["total"],
                     "completeness_pct": round(100 * complete / row["total"], 1) if row["total"] else None,
                     **figures})
    return rows
