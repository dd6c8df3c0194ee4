"""Soft delete and restore from any record page, through the owning module's service (the
record's version guards the delete, as If-Match does in the API)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gaas.core.errors import NotFound
from gaas.core.http import DbSession
from gaas.ui import forms
from gaas.ui.web import CheckedForm, CurrentUI, UIRoute, redirect

router = APIRouter(route_class=UIRoute, include_in_schema=False)


def operations() -> dict[str, tuple[Callable[..., Any], Callable[..., Any]]]:
    """URL segment -> (delete(db, actor, id, if_match), restore(db, actor, id))."""
    from gaas.catalog import service as catalog
    from gaas.changes import service as changes
    from gaas.cmdb import service as cmdb
    from gaas.incidents import problems
    from gaas.incidents import service as incidents
    from gaas.knowledge import service as knowledge

    return {
        "services": (catalog.delete_service, catalog.restore_service),
        "cis": (cmdb.delete_ci, cmdb.restore_ci),
        "incidents": (incidents.delete_incident, incidents.restore_incident),
        "problems": (problems.delete_problem, problems.restore_problem),
        "changes": (changes.delete_change, changes.restore_change),
        "articles": (knowledge.delete_article, knowledge.restore_article),
    }


def _operation(kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    found = operations().get(kind)
    if found is None:
        raise NotFound("There is no page at this address.")
    return found


@router.post("/{kind}/{record_id}/delete")
def delete(kind: str, record_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
           form: CheckedForm) -> Response:
    remove, _ = _operation(kind)
    remove(db, ui.actor, record_id, forms.version(form))
    return redirect(f"/{kind}/{record_id}", request, flash="Deleted.")


@router.post("/{kind}/{record_id}/restore")
def restore(kind: str, record_id: uuid.UUID, request: Request, db: DbSession, ui: CurrentUI,
            form: CheckedForm) -> Response:
    _, bring_back = _operation(kind)
    bring_back(db, ui.actor, record_id)
    return redirect(f"/{kind}/{record_id}", request, flash="Restored.")
