"""Bringing a database to the current schema: the application role, the Alembic migrations,
the default roles and the first administrator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Engine, create_engine, pool, text
from sqlalchemy.engine import URL

from gaas.core.db import unit_of_work
from gaas.core.settings import Settings, get_settings


def alembic_config(owner_url: URL | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("gaas") / "migrations"))
    if owner_url is not None:
        cfg.attributes["owner_url"] = owner_url
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        has_table = conn.execute(text("SELECT to_regclass('public.alembic_version') IS NOT NULL")).scalar()
        if not has_table:
            return None
        return MigrationContext.configure(conn, opts={"version_table_schema": "public"}).get_current_revision()


def ensure_app_role(owner_url: URL, settings: Settings) -> None:
    """Create the application role if it is missing: a login role that is not a superuser,
    cannot create roles or databases, and cannot bypass row-level security."""
    role, password = settings.app_role, settings.app_role_password()
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
            if not exists:
                raw.execute(sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"
                ).format(sql.Identifier(role), sql.Literal(password)))
            database = conn.execute(text("SELECT current_database()")).scalar_one()
            raw.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database),
                                                                            sql.Identifier(role)))
            conn.commit()
    finally:
        engine.dispose()


class SetupError(RuntimeError):
    """The database roles are not what the platform's security model needs."""


def check_owner_role(owner_url: URL) -> None:
    """Tables force row-level security and a few SECURITY DEFINER functions (login, token
    lookup) run as the owner: it must be a superuser or hold BYPASSRLS, or nobody could log in."""
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles "
                                    "WHERE rolname = current_user")).one()
    finally:
        engine.dispose()
    if not (row.rolsuper or row.rolbypassrls):
        raise SetupError(f"The owner role '{row.rolname}' (GAAS_DATABASE_URL) must be a superuser or have "
                         "BYPASSRLS: ALTER ROLE ... BYPASSRLS, run as a superuser.")


def check_app_role(engine: Engine) -> None:
    """Refuse to serve as a role that row-level security would not bind."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT r.rolname, r.rolsuper, r.rolbypassrls,"
            " (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "   WHERE c.relowner = r.oid AND n.nspname LIKE 'gaas\\_%') AS owned"
            " FROM pg_roles r WHERE r.rolname = current_user")).one()
    if row.rolsuper or row.rolbypassrls or row.owned:
        raise SetupError(f"GAAS_APP_DATABASE_URL connects as '{row.rolname}', which is a superuser, bypasses "
                         "row-level security or owns tables: domain isolation would not hold. Use the "
                         "application role that `gaas db upgrade` creates.")


def upgrade_database(owner_url: URL | None = None, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    owner_url = owner_url or settings.owner_url()
    check_owner_role(owner_url)
    ensure_app_role(owner_url, settings)
    command.upgrade(alembic_config(owner_url), "head")
    _grant_version_table(owner_url, settings.app_role)
    _sync_reference_data(owner_url)


def _grant_version_table(owner_url: URL, role: str) -> None:
    """/api/ready compares the database's revision with the code's, as the app role; and the
    leakproof marks (see migrations.helpers) come back after a dump and restore."""
    from gaas.migrations.helpers import LEAKPROOF_SQL

    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.connection.dbapi_connection.execute(
                sql.SQL("GRANT SELECT ON public.alembic_version TO {}").format(sql.Identifier(role)))
            conn.connection.dbapi_connection.execute(LEAKPROOF_SQL)
    finally:
        engine.dispose()


def _sync_reference_data(owner_url: URL) -> None:
    """Default roles and CI classes follow the code; run as the system actor."""
    from gaas.cmdb import service as cmdb
    from gaas.iam import service as iam
    from gaas.workflow import service as workflow

    engine = create_engine(owner_url, poolclass=pool.NullPool)
    try:
        from sqlalchemy.orm import sessionmaker

        with unit_of_work(iam.system_actor(), sessionmaker(bind=engine, expire_on_commit=False)) as db:
            iam.sync_default_roles(db, iam.system_actor())
            cmdb.sync_default_classes(db, iam.system_actor())
            workflow.sync_default_definitions(db, iam.system_actor())
    finally:
        engine.dispose()


@dataclass(frozen=True)
class AdminBootstrap:
    created: bool
    password: str | None = None  # set only when generated here, to be shown once


def ensure_admin(settings: Settings | None = None, username: str = "admin") -> AdminBootstrap:
    """Create the platform administrator `admin` when the database has none."""
    from gaas.iam import service as iam

    settings = settings or get_settings()
    with unit_of_work(iam.system_actor()) as db:
        if iam.has_platform_admin(db):
            return AdminBootstrap(created=False)
        password = settings.admin_password or secrets.token_urlsafe(15)
        iam.create_admin(db, iam.system_actor(), username=username, email=settings.admin_email,
                         password=password)
    return AdminBootstrap(created=True, password=None if settings.admin_password else password)


def ensure_audit_partitions(settings: Settings | None = None) -> int:
    from gaas.iam import service as iam

    settings = settings or get_settings()
    with unit_of_work(iam.system_actor()) as db:
        return int(db.execute(text("SELECT gaas_audit.ensure_audit_log_partitions(1, :n)"),
                              {"n": settings.audit_partitions_ahead}).scalar_one())
