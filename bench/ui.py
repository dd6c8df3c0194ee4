"""Web interface: the server time of every main page with the demo data loaded (`gaas demo-data`),
through `gaas serve` over loopback, logged in as a domain administrator (who sees every section).

Server time is the page's own `Server-Timing: app;dur=` (the request's queries and the template),
so the figure is what the server spends, not the network. The same-run baseline is `GET /api/v1/me`
over the API (authentication and one query), timed the same way from the client. The issue's
target: every page under 300 ms server time.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx

from bench.common import BenchDatabase, Figure, console, print_table, running_server, timed

TARGET_MS = 300.0
USER = "healthcare.domain_admin"
PASSWORD = "gaas-demo-password"  # the demo users' password (gaas demo-data)


def _login(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=60, follow_redirects=False)
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"username": USER, "password": PASSWORD, "csrf": csrf, "next": "/"},
                           headers={"Origin": base_url})
    assert response.status_code == 303, response.text
    return client


def _first(client: httpx.Client, path: str, pattern: str) -> str:
    return re.search(pattern, client.get(path).text).group(1)


def pages(client: httpx.Client) -> list[tuple[str, str]]:
    uid = r"([0-9a-f-]{36})"
    service = _first(client, "/services?q=Patient", rf'href="/services/{uid}"')
    core = _first(client, "/cis?q=hea-core-sw-1", rf'href="/cis/{uid}"')
    incident = _first(client, "/incidents", rf'href="/incidents/{uid}"')
    change = _first(client, "/changes", rf'href="/changes/{uid}"')
    article = _first(client, "/articles", rf'href="/articles/{uid}"')
    return [("home (by role)", "/"), ("service list", "/services"),
            ("service tree", "/services/tree?domain=healthcare"), ("service record", f"/services/{service}"),
            ("cost charts", "/costs"), ("CI list", "/cis"), ("CI record", f"/cis/{core}"),
            ("impact graph (core switch)", f"/cis/{core}/impact"), ("CMDB health", "/cmdb/health"),
            ("incident list", "/incidents"), ("incident record", f"/incidents/{incident}"),
            ("incident form", "/incidents/new"), ("problem list", "/problems"), ("change list", "/changes"),
            ("change record (conflicts)", f"/changes/{change}"), ("change calendar (month)", "/changes/calendar"),
            ("approvals", "/approvals"), ("articles", "/articles"), ("article", f"/articles/{article}"),
            ("search", "/search?q=portal"), ("audit log", "/audit"), ("users", "/admin/users"),
            ("notifications", "/notifications")]


def run(db: BenchDatabase, *, repeat: int) -> None:
    with running_server(db) as api:
        console.print("Loading the demo data (gaas demo-data)…")
        subprocess.run([sys.executable, "-m", "gaas.cli", "demo-data"], env=db.env(), check=True,
                       capture_output=True)
        client = _login(str(api.base_url).rstrip("/"))
        baseline = timed("baseline GET /api/v1/me", repeat, lambda i: api.get("/api/v1/me").raise_for_status())
        figures: list[Figure] = []
        verdicts = []
        for name, path in pages(client):
            client.get(path).raise_for_status()  # warm: templates compiled, plans cached
            server: list[float] = []

            def get(i: int, path: str = path, server: list[float] = server) -> None:
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
                server.append(float(response.headers["server-timing"].split("dur=")[1]) / 1000)

            timed(name, repeat, get)
            figure = Figure(f"{name} · server time", repeat, server, "API GET /me round trip", baseline)
            figures.append(figure)
            p95 = Figure.ms(server, 0.95)
            verdicts.append((name, p95, p95 < TARGET_MS))
            time.sleep(0.01)
        print_table("Web interface: server time per page with the demo data (median, p95)", figures)
        for name, p95, ok in verdicts:
            console.print(f"{'met   ' if ok else 'MISSED'} {name}: p95 {p95:.1f} ms (target < {TARGET_MS:.0f} ms)")
        console.print(f"target: every page under {TARGET_MS:.0f} ms server time — "
                      f"{'met' if all(ok for *_, ok in verdicts) else 'NOT met'}")
