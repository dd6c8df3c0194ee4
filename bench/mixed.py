"""A working day compressed: simulated service-desk agents against `gaas serve --workers N` with
the demo data. Each agent loops for the whole run: look at their queue, open an incident, update
one, search, log a new one, with a think time between actions (0.2 to 1 s: a busy agent, not a
load generator). Prints per action and overall: throughput, median, p95, p99, errors (any 5xx or
transport failure), and the API processes' memory after warm-up and at the end."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx

from bench.common import ADMIN_PASSWORD, BenchDatabase, Figure, console, free_port, print_table

DEMO_PASSWORD = "gaas-demo-password"
AGENT_PASSWORD = "a busy agent's long passphrase"
WORDS = ["login", "printer", "network", "password", "vpn", "email", "slow", "outage", "access", "database"]
ACTIONS = (("queue", 35), ("open", 25), ("update", 15), ("search", 15), ("create", 10))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _api_processes(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return pids or [parent]


class Agent:
    def __init__(self, client: httpx.AsyncClient, token: str, domain: str, services: list[str], rng: random.Random):
        self.client, self.domain, self.services, self.rng = client, domain, services, rng
        self.headers = {"Authorization": f"Bearer {token}"}
        self.known: list[str] = []

    async def act(self, action: str) -> httpx.Response:
        if action == "queue" or (action in ("open", "update") and not self.known):
            response = await self.client.get("/api/v1/incidents", headers=self.headers,
                                             params={"domain": self.domain, "open": "true", "limit": 25})
            if response.status_code == 200:
                self.known = [i["id"] for i in response.json()["items"]] or self.known
            return response
        if action == "open":
            return await self.client.get(f"/api/v1/incidents/{self.rng.choice(self.known)}", headers=self.headers)
        if action == "update":
            incident = await self.client.get(f"/api/v1/incidents/{self.rng.choice(self.known)}", headers=self.headers)
            if incident.status_code != 200:
                return incident
            body = incident.json()
            return await self.client.patch(f"/api/v1/incidents/{body['id']}", headers={
                **self.headers, "If-Match": f'"{body["version"]}"'}, json={
                "description": f"Called the user back at {time.strftime('%H:%M:%S')}."})
        if action == "search":
            return await self.client.get("/api/v1/search", headers=self.headers,
                                         params={"q": self.rng.choice(WORDS), "limit": 10})
        created = await self.client.post("/api/v1/incidents", headers=self.headers, json={
            "domain": self.domain, "short_description": f"{self.rng.choice(WORDS).title()} problem reported by phone",
            "impact": self.rng.choice(["low", "medium", "high"]), "urgency": self.rng.choice(["low", "medium"]),
            "service_id": self.rng.choice(self.services)})
        if created.status_code == 201:
            self.known.append(created.json()["id"])
        return created


async def _agent_loop(agent: Agent, until: float, samples: dict, errors: list, conflicts: list) -> None:
    names, weights = zip(*ACTIONS, strict=True)
    while time.monotonic() < until:
        action = agent.rng.choices(names, weights)[0]
        start = time.perf_counter()
        try:
            response = await agent.act(action)
            status = response.status_code
        except httpx.HTTPError as exc:
            status, response = 0, exc
        samples[action].append(time.perf_counter() - start)
        if status == 0 or status >= 500:
            errors.append((action, status, str(response)[:200]))
        elif status == 409:
            conflicts.append(action)  # two agents updated one incident: the API said so, as it must
        await asyncio.sleep(agent.rng.uniform(0.2, 1.0))


def run(db: BenchDatabase, *, agents: int, seconds: int, workers: int, seed: int) -> None:
    env = db.env()
    subprocess.run([sys.executable, "-m", "gaas.cli", "db", "upgrade"], env=env, check=True, capture_output=True)
    with console.status("Loading the demo data"):
        loaded = subprocess.run([sys.executable, "-m", "gaas.cli", "demo-data"],
                                env={**env, "GAAS_DEMO_PASSWORD": DEMO_PASSWORD}, capture_output=True, text=True)
    if loaded.returncode != 0:
        raise SystemExit(f"gaas demo-data failed:\n{loaded.stdout[-2000:]}{loaded.stderr[-3000:]}")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gaas.cli", "serve", "--port", str(port), "--workers",
                               str(workers)], env={**env, "GAAS_LOG_FORMAT": "json"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(_drive(f"http://127.0.0.1:{port}", server.pid, agents=agents, seconds=seconds, workers=workers,
                           seed=seed))
    finally:
        server.terminate()
        server.wait(30)


async def _drive(base: str, server_pid: int, *, agents: int, seconds: int, workers: int, seed: int) -> None:
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=agents, max_keepalive_connections=agents)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        for _ in range(300):
            try:
                if (await client.get("/api/ready")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        team = await _staff(client, agents, rng)
        warm_until = time.monotonic() + 10
        samples: dict[str, list[float]] = defaultdict(list)
        errors: list = []
        conflicts: list = []
        await asyncio.gather(*(_agent_loop(a, warm_until, defaultdict(list), [], []) for a in team))
        processes = _api_processes(server_pid)
        memory_start = sum(_rss_kib(p) for p in processes)
        started = time.perf_counter()
        until = time.monotonic() + seconds
        await asyncio.gather(*(_agent_loop(a, until, samples, errors, conflicts) for a in team))
        elapsed = time.perf_counter() - started
        memory_end = sum(_rss_kib(p) for p in _api_processes(server_pid))
    _report(samples, errors, conflicts, elapsed, memory_start, memory_end, agents=agents, seconds=seconds,
            workers=workers)


async def _staff(client: httpx.AsyncClient, agents: int, rng: random.Random) -> list[Agent]:
    """`agents` service-desk agents spread over the demo domains, each logged in."""
    token = (await client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
             ).json()["access_token"]
    admin = {"Authorization": f"Bearer {token}"}
    roles = (await client.get("/api/v1/roles", headers=admin, params={"limit": 100})).json()["items"]
    agent_role = next(r["id"] for r in roles if r["name"] == "service_desk_agent")
    domains = [d["code"] for d in (await client.get("/api/v1/domains", headers=admin)).json()["items"]
               if d["code"] in ("healthcare", "education", "justice")]
    services = {d: [s["id"] for s in (await client.get("/api/v1/services", headers=admin, params={
        "domain": d, "limit": 50})).json()["items"]] for d in domains}
    team = []
    for n in range(agents):
        domain = domains[n % len(domains)]
        user = (await client.post("/api/v1/users", headers=admin, json={
            "email": f"agent{n}.{rng.randrange(10**6)}@{domain}.example.org", "name": f"Agent {n}", "domain": domain,
            "password": AGENT_PASSWORD})).json()
        await client.post(f"/api/v1/users/{user['id']}/roles", headers=admin,
                          json={"role_id": agent_role, "scope_type": "domain", "scope_id": None})
        login = await client.post("/api/v1/auth/token", data={"username": user["email"], "password": AGENT_PASSWORD})
        team.append(Agent(client, login.json()["access_token"], domain, services[domain], random.Random(rng.random())))
    return team


def _report(samples, errors, conflicts, elapsed, memory_start, memory_end, *, agents, seconds, workers) -> None:
    every = [s for values in samples.values() for s in values]
    figures = [Figure(f"{action} ({agents} agents)", len(values), values, "", [])
               for action, values in sorted(samples.items())]
    figures.append(Figure(f"all actions ({agents} agents, {seconds} s)", len(every), every, "", []))
    print_table(f"Mixed load: {agents} simulated agents, {workers} API processes, {seconds} s", figures)
    p99 = Figure.ms(every, 0.99)
    growth = 100 * (memory_end - memory_start) / memory_start if memory_start else 0.0
    console.print(f"throughput {len(every) / elapsed:.1f} actions/s; errors {len(errors)}; "
                  f"409 conflicts reported {len(conflicts)}")
    for action, status, detail in errors[:10]:
        console.print(f"  error: {action} -> {status} {detail}")
    console.print(f"API memory {memory_start / 1024:.0f} MiB after warm-up, {memory_end / 1024:.0f} MiB at the end "
                  f"({growth:+.1f}%)")
    print(f"target: zero errors and p99 under 250 ms: errors {len(errors)}, p99 {p99:.0f} ms "
          f"{'met' if not errors and p99 < 250 else 'MISSED'}")
    print(f"target: API memory growth within 10%: {growth:+.1f}% {'met' if growth <= 10 else 'MISSED'}")
