"""Every page of the web interface, one module per area; LISTS names the record lists."""

from __future__ import annotations

from fastapi import APIRouter

from gaas.ui.lists import ListSpec
from gaas.ui.web import UIRoute

LISTS: dict[str, ListSpec] = {}


def register(spec: ListSpec) -> ListSpec:
    LISTS[spec.name] = spec
    return spec


router = APIRouter(route_class=UIRoute, include_in_schema=False)

from gaas.ui.pages import admin, cmdb, core, itsm, knowledge, portfolio, records, workflow  # noqa: E402

for module in (core, records, portfolio, cmdb, itsm, knowledge, workflow, admin):
    router.include_router(module.router)

