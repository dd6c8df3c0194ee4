"""The web interface: server-rendered pages (Jinja2) with htmx, served by `gaas serve` at `/`.

Pages call the same service functions as the API, in the same per-request transaction, with the
acting user's row-level-security context; see web.py for the machinery and pages/ for the pages.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install_ui(app: FastAPI) -> None:
    """Mount the pages, their static files and their security headers (after every API router)."""
    from gaas.ui.pages import router
    from gaas.ui.web import SecurityHeadersMiddleware

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    app.add_middleware(SecurityHeadersMiddleware)
