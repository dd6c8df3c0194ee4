"""Engines, sessions and the per-transaction security context.

One request (or CLI command, or worker task) is one transaction. The acting user and the
domains they may see are handed to PostgreSQL with ``set_config(..., true)``, which lasts
until the transaction ends: safe behind PgBouncer in transaction mode, and row-level
security policies read them (gaas_iam.sees_domain, sees_row, writes_domain).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from gaas.core.context import Actor, RequestInfo
from gaas.core.settings import Settings, get_settings


def make_engine(url, settings: Settings | None = None, **kwargs) -> Engine:
    settings = settings or get_settings()
    connect_args = dict(kwargs.pop("connect_args", {}))
    if not settings.db_prepared_statements:
        # Behind PgBouncer in transaction mode (before 1.21) a server-side prepared statement may
        # be looked for on another server connection: let psycopg send every query in full.
        connect_args["prepare_threshold"] = None
    return create_engine(
        url,
        pool_size=kwargs.pop("pool_size", settings.db_pool_size),
        max_overflow=kwargs.pop("max_overflow", settings.db_max_overflow),
        pool_pre_ping=True,
        connect_args=connect_args,
        **kwargs,
    )


@lru_cache
def app_engine() -> Engine:
    """The application role's engine: not a superuser, owns nothing, obeys row-level security."""
    return make_engine(get_settings().app_url())


@lru_cache
def session_factory() -> sessionmaker[Session]:
    return sessionmaker(bind=app_engine(), expire_on_commit=False, autoflush=True)


@lru_cache
def replica_session_factory() -> sessionmaker[Session] | None:
    """Sessions on the read replica (GAAS_DATABASE_REPLICA_URL), or None when there is none."""
    url = get_settings().replica_url()
    return sessionmaker(bind=make_engine(url), expire_on_commit=False) if url is not None else None


def set_context(session: Session, actor: Actor | None) -> None:
    """Tell PostgreSQL who acts in this transaction. Always sets every key, so nothing leaks
    from an earlier transaction on a pooled connection."""
    if actor is None:
        user_id, domains, read_only = "", "", "false"
    else:
        user_id = str(actor.user_id)
        domains = "*" if actor.visible_domains is None else ",".join(sorted(actor.visible_domains))
        read_only = "true" if actor.read_only else "false"
    session.execute(
        text(
            "SELECT set_config('gaas.user_id', :user_id, true),"
            " set_config('gaas.domains', :domains, true),"
            " set_config('gaas.read_only', :read_only, true)"
        ),
        {"user_id": user_id, "domains": domains, "read_only": read_only},
    )
    session.info["actor"] = actor
    if actor is not None:
        session.info["request"] = actor.request


def request_info(session: Session) -> RequestInfo:
    return session.info.get("request") or RequestInfo()


@contextmanager
def unit_of_work(actor: Actor | None, factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """A transaction acting as `actor` outside HTTP (CLI, worker): commit on success, else roll back."""
    session = (factory or session_factory())()
    try:
        with session.begin():
            set_context(session, actor)
            yield session
    finally:
        session.close()
