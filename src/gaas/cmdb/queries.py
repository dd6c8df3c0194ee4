"""Generic queries over configuration items and relationships (for the ServiceNow Table API and
reports): the fields that may be filtered and sorted on, under exactly the visibility rules of
service.list_cis and service.list_relationships; and labels for a page of CI references."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from gaas.cmdb.models import CIRelationship, CIRelationshipType, CIStatus, ConfigurationItem, Environment
from gaas.core.context import Actor
from gaas.core.errors import Forbidden
from gaas.core.filtering import TEXT, Expr, Field, field_names, run_query
from gaas.core.queries import where_viewable

C = ConfigurationItem
CI_FIELDS: dict[str, Field] = {
    "id": Field.uuid_(C.id),
    "number": Field.text_(C.number),
    "domain": Field.text_(C.domain),
    "name": Field.text_(C.name),
    "ci_class": Field.text_(C.ci_class),
    "status": Field.enum_(C.status, CIStatus),
    "environment": Field.enum_(C.environment, Environment),
    "service_id": Field.uuid_(C.service_id),
    "owner_id": Field.uuid_(C.owner_id),
    "managed_by": Field.uuid_(C.managed_by),
    "discovered_by": Field.text_(C.discovered_by),
    "last_discovered_at": Field.time_(C.last_discovered_at),
    "created_at": Field.time_(C.created_at),
    "created_by": Field.uuid_(C.created_by),
    "updated_at": Field.time_(C.updated_at),
    "updated_by": Field.uuid_(C.updated_by),
    "version": Field.int_(C.version),
}
# Any attribute may be queried as text: "attributes.ip".
_ATTRIBUTE = re.compile(r"^attributes\.([A-Za-z0-9_]{1,100})$")

R = CIRelationship
RELATIONSHIP_FIELDS: dict[str, Field] = {
    "id": Field.uuid_(R.id),
    "source_ci_id": Field.uuid_(R.source_ci_id),
    "target_ci_id": Field.uuid_(R.target_ci_id),
    "relationship_type": Field.enum_(R.relationship_type, CIRelationshipType),
    "description": Field.text_(R.description, sortable=False),
    "created_at": Field.time_(R.created_at),
    "created_by": Field.uuid_(R.created_by),
}


def _viewable_cis(actor: Actor):
    if not actor.can_anywhere("ci.view"):
        raise Forbidden("Listing CIs needs the 'ci.view' permission.", permission="ci.view")
    stmt = select(C).where(C.deleted_at.is_(None))
    stmt = where_viewable(stmt, actor, "ci.view", C.domain, global_rows=True)
    return stmt


def query_cis(db: Session, actor: Actor, *, where: Expr | None = None, order: Sequence[tuple[str, bool]] = (),
              offset: int = 0, limit: int = 50, count: bool = True) -> tuple[list[ConfigurationItem], int | None]:
    """CIs the caller may list (as service.list_cis), filtered by an expression over CI_FIELDS and
    `attributes.<key>` (as text), in `order` then by id, with offset paging and the total."""
    stmt = _viewable_cis(actor)
    fields = dict(CI_FIELDS)
    for name in field_names(where) | {n for n, _ in order}:
        match = _ATTRIBUTE.match(name)
        if match:
            fields[name] = Field(C.attributes[match.group(1)].astext, TEXT, Field.text_(C.name).parse, True, True)
    return run_query(db, stmt, fields=fields, id_column=C.id, where=where, order=order, offset=offset,
                     limit=limit, count=count, default_order=C.created_at.asc())


def query_relationships(db: Session, actor: Actor, *, where: Expr | None = None,
                        order: Sequence[tuple[str, bool]] = (), offset: int = 0, limit: int = 50,
                        count: bool = True) -> tuple[list[CIRelationship], int | None]:
    """Relationships whose both ends the caller may view (as service.list_relationships)."""
    if not actor.can_anywhere("ci.view"):
        raise Forbidden("Listing relationships needs the 'ci.view' permission.", permission="ci.view")
    stmt = select(R)
    viewable = actor.domains_with("ci.view")
    if viewable is not None:
        for end in (R.source_ci_id, R.target_ci_id):
            stmt = stmt.where(select(C.id).where(C.id == end, or_(C.domain.is_(None),
                                                                 C.domain.in_(sorted(viewable)))).exists())
    return run_query(db, stmt, fields=RELATIONSHIP_FIELDS, id_column=R.id, where=where, order=order,
                     offset=offset, limit=limit, count=count, default_order=R.created_at.asc())


def get_relationship(db: Session, actor: Actor, relationship_id: uuid.UUID) -> CIRelationship | None:
    """One relationship whose both ends the caller may view, else None."""
    rel = db.scalar(select(R).where(R.id == relationship_id))
    if rel is None:
        return None
    for end in (rel.source_ci_id, rel.target_ci_id):
        ci = db.get(C, end)
        if ci is None or not (actor.can("ci.view", ci.domain) or (ci.domain is None and actor.can_anywhere("ci.view"))):
            return None
    return rel


def ci_labels(db: Session, actor: Actor, ci_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str, str]]:
    """(number, name, class) of the CIs among `ci_ids` the caller can see (one query)."""
    ids = sorted({i for i in ci_ids if i is not None})
    if not ids:
        return {}
    rows = db.execute(select(C.id, C.number, C.name, C.ci_class, C.domain).where(C.id.in_(ids)))
    return {r.id: (r.number, r.name, r.ci_class) for r in rows if actor.sees(r.domain) or r.domain is None}
