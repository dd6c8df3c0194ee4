"""API overhead: each operation through `gaas serve` against the same operation raw in psycopg."""

from __future__ import annotations

import random
import uuid

import httpx

from bench.common import BenchDatabase, Figure, print_table, raw, running_server, timed


def run(db: BenchDatabase, *, scale: int, seed: int) -> None:
    rng = random.Random(seed)
    n = scale
    with running_server(db) as http:
        _measure(db, http, rng, n, seed)


def _measure(db: BenchDatabase, http: httpx.Client, rng: random.Random, n: int, seed: int) -> None:
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

    print_table(f"API against raw SQL (scale {n}, seed {seed}, sequential client over loopback)", figures)
    print(f"audit rows written during the run: {audit_rows}")
