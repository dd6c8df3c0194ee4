"""Bodies of the global search API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class SearchResult(BaseModel):
    type: str = Field(description="article, incident, problem, change, service or ci")
    id: uuid.UUID
    number: str | None
    title: str
    snippet: str | None = Field(description="HTML: escaped text with the matching words in <mark>")
    domain: str | None
    status: str | None
    score: float = Field(description="0..1, comparable across types")
    updated_at: datetime
    url: str = Field(description="The record in the API")


class SearchPage(BaseModel):
    items: list[SearchResult]
    next_cursor: str | None = None
    limit: int
    counts: dict[str, int] = Field(description="Ranked hits per type (up to the paging depth)")
