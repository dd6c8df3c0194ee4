"""Generic queries over knowledge articles (for the ServiceNow Table API): the fields that may be
filtered and sorted on, under exactly the visibility rules of service.list_articles."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gaas.core.context import Actor
from gaas.core.errors import Forbidden
from gaas.core.filtering import Expr, Field, run_query
from gaas.knowledge.models import Article, ArticleKind, ArticleStatus, Audience
from gaas.knowledge.service import REVIEW, VIEW, WRITE, readable_filter

A = Article
ARTICLE_FIELDS: dict[str, Field] = {
    "id": Field.uuid_(A.id),
    "number": Field.text_(A.number),
    "domain": Field.text_(A.domain),
    "title": Field.text_(A.title),
    "summary": Field.text_(A.summary, sortable=False),
    "body": Field.text_(A.body_text, sortable=False),
    "category": Field.text_(A.category),
    "status": Field.enum_(A.status, ArticleStatus),
    "kind": Field.enum_(A.kind, ArticleKind),
    "audience": Field.enum_(A.audience, Audience),
    "author_id": Field.uuid_(A.author_id),
    "problem_id": Field.uuid_(A.problem_id),
    "valid_to": Field.time_(A.valid_to),
    "published_at": Field.time_(A.published_at),
    "created_at": Field.time_(A.created_at),
    "created_by": Field.uuid_(A.created_by),
    "updated_at": Field.time_(A.updated_at),
    "updated_by": Field.uuid_(A.updated_by),
    "version": Field.int_(A.version),
}


def query_articles(db: Session, actor: Actor, *, where: Expr | None = None,
                   order: Sequence[tuple[str, bool]] = (), offset: int = 0, limit: int = 50,
                   count: bool = True) -> tuple[list[Article], int | None]:
    """Articles the caller may read (as service.list_articles), filtered by an expression over
    ARTICLE_FIELDS, in `order` then by id, with offset paging and the total."""
    if not (actor.can_anywhere(VIEW) or actor.can_anywhere(WRITE) or actor.can_anywhere(REVIEW)):
        raise Forbidden("Reading knowledge needs the 'knowledge.view' permission.", permission=VIEW)
    stmt: Select = select(A).where(readable_filter(actor), A.deleted_at.is_(None))
    return run_query(db, stmt, fields=ARTICLE_FIELDS, id_column=A.id, where=where, order=order, offset=offset,
                     limit=limit, count=count, default_order=A.created_at.asc())
