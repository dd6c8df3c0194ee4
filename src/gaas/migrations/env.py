"""Alembic environment: runs as the owner role (GAAS_DATABASE_URL, or the embedded database)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from gaas.core.settings import get_settings

VERSION_TABLE_SCHEMA = "public"


def run_migrations_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is None:
        url = context.config.attributes.get("owner_url") or get_settings().owner_url()
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connectable)


def _run(connection) -> None:
    # Fail fast instead of queueing behind a long lock while holding our own (Polar's lesson).
    connection.execute(text("SET lock_timeout = '10s'"))
    connection.commit()  # end the implicit transaction so Alembic's own ones commit
    context.configure(connection=connection, version_table_schema=VERSION_TABLE_SCHEMA,
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


run_migrations_online()
