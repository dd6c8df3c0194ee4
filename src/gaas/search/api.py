"""Global search API: thin translation from HTTP to gaas.search.service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gaas.core.errors import ValidationProblem
from gaas.core.http import CurrentActor, ReadDbSession
from gaas.search import service
from gaas.search.schemas import SearchPage, SearchResult

router = APIRouter(prefix="/api/v1", tags=["search"])


@router.get("/search", response_model=SearchPage,
            summary="One ranked list across articles, incidents, problems, changes, services and CIs")
def search(
    db: ReadDbSession, actor: CurrentActor,
    q: Annotated[str, Query(min_length=1, max_length=service.MAX_QUERY,
                            description='Words (typos tolerated), "a phrase", -excluded, or a record number')],
    types: Annotated[str | None, Query(max_length=200, description=f"Comma-separated subset of {list(service.TYPES)}"
                                       )] = None,
    limit: Annotated[int, Query(ge=1)] = 20,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> SearchPage:
    if limit > 100:
        raise ValidationProblem.field("limit", "must be at most 100")
    hits, next_cursor, counts = service.search(db, actor, q, types=service.parse_types(types), cursor=cursor,
                                               limit=limit)
    return SearchPage(items=[SearchResult(**vars(h)) for h in hits], next_cursor=next_cursor, limit=limit,
                      counts=counts)
