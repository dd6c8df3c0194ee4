"""`GET /api/v1/{resource}/{id}/history` for any record: each module registers how to find a
record the caller may see, and the audit log supplies its history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from gaas.core.context import Actor


@dataclass(frozen=True)
class HistorySource:
    entity_type: str
    # Raises NotFound when the caller may not see the record.
    fetch_visible: Callable[[Session, Actor, uuid.UUID], Any]


HISTORY_SOURCES: dict[str, HistorySource] = {}


def register_history(resource: str, entity_type: str,
                     fetch_visible: Callable[[Session, Actor, uuid.UUID], Any]) -> None:
    HISTORY_SOURCES[resource] = HistorySource(entity_type, fetch_visible)
