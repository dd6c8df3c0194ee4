"""The ASGI application: routers, problem details, request ids, health and readiness."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from gaas import __version__
from gaas.core.db import replica_session_factory, session_factory
from gaas.core.errors import install_problem_handlers, problem_response
from gaas.core.events import outbox_metrics
from gaas.core.http import RequestIdMiddleware
from gaas.core.metrics import Metrics, MetricsMiddleware, metrics_endpoint, register_sampler
from gaas.core.resilience import RetryTransientMiddleware

OPENAPI_TAGS = [
    {"name": "auth", "description": "Log in, who am I"},
    {"name": "domains", "description": "Government domains (tenants)"},
    {"name": "users", "description": "Users and their roles"},
    {"name": "roles", "description": "Roles and the permission catalogue"},
    {"name": "tokens", "description": "API tokens"},
    {"name": "services", "description": "The service portfolio: hierarchy, relationships, stakeholders"},
    {"name": "costs", "description": "Cost entries"},
    {"name": "cmdb", "description": "Configuration items, classes, relationships, impact analysis"},
    {"name": "incidents", "description": "Incidents: priority matrix, lifecycle, assignment, SLA"},
    {"name": "problems", "description": "Problems, known errors and their incidents"},
    {"name": "sla", "description": "SLA policies and the priority matrix"},
    {"name": "changes", "description": "Changes: lifecycle, approval, conflicts, risk, calendar"},
    {"name": "reports", "description": "PPT balance and cost reports"},
    {"name": "workflow", "description": "Workflow definitions and instances (with their timeline)"},
    {"name": "approvals", "description": "Approvals and workflow tasks"},
    {"name": "notifications", "description": "In-app notifications and e-mail delivery"},
    {"name": "webhooks", "description": "Event subscriptions, signed deliveries and their log"},
    {"name": "knowledge", "description": "Knowledge articles: review, versions, known errors, feedback, suggestions"},
    {"name": "search", "description": "One ranked search across articles, incidents, problems, changes, services, CIs"},
    {"name": "audit", "description": "Audit log and record history"},
    {"name": "servicenow", "description": "ServiceNow Table API compatibility (/api/now/table/{table})"},
]


def create_app(factory: sessionmaker[Session] | None = None) -> FastAPI:
    app = FastAPI(
        title="GaaS",
        version=__version__,
        summary="IT service management for government agencies",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.session_factory = factory or session_factory()
    app.state.replica_factory = replica_session_factory()
    install_problem_handlers(app)
    app.state.metrics = Metrics(app.state.session_factory)
    register_sampler(outbox_metrics)
    from gaas.incidents.metrics import sla_metrics
    from gaas.workflow.metrics import workflow_metrics

    register_sampler(sla_metrics)
    register_sampler(workflow_metrics)
    app.add_middleware(RetryTransientMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, so a replayed request keeps its id

    from gaas.audit.api import router as audit_router
    from gaas.catalog.api import router as catalog_router
    from gaas.changes.api import router as changes_router
    from gaas.cmdb.api import router as cmdb_router
    from gaas.costs.api import router as costs_router
    from gaas.iam.api import router as iam_router
    from gaas.incidents.api import router as incidents_router
    from gaas.knowledge.api import router as knowledge_router
    from gaas.search.api import router as search_router
    from gaas.servicenow.api import router as servicenow_router
    from gaas.workflow.api import router as workflow_router

    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)

    @app.get("/api/health", tags=["operations"], summary="The process is up")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/ready", tags=["operations"], summary="The database is reachable and migrated")
    def ready(request: Request) -> JSONResponse:
        from gaas.core.bootstrap import head_revision

        session: Session = request.app.state.session_factory()
        try:
            current = session.execute(text("SELECT version_num FROM public.alembic_version")).scalar()
        except Exception:
            return problem_response(request, 503, "not-ready", "Not ready", "The database is not reachable.",
                                    headers={"Retry-After": "5"})
        finally:
            session.close()
        head = head_revision()
        if current != head:
            return problem_response(request, 503, "not-ready", "Not ready",
                                    f"The database is at revision {current}, the code expects {head}.",
                                    headers={"Retry-After": "30"})
        return JSONResponse({"status": "ready", "revision": current})

    app.include_router(iam_router)
    app.include_router(catalog_router)
    app.include_router(costs_router)
    app.include_router(cmdb_router)
    app.include_router(incidents_router)
    app.include_router(changes_router)
    app.include_router(workflow_router)
    app.include_router(knowledge_router)
    app.include_router(search_router)
    app.include_router(servicenow_router)  # /api/now: ServiceNow's Table API, in its own error shape
    app.include_router(audit_router)  # last: its /{resource}/{id}/history route is generic
    from gaas.ui import install_ui

    install_ui(app)  # the web interface at /, after every API route
    return app
