"""The demo data's knowledge base: 50+ articles across the demo domains and global ones, known
errors from the demo problems, some retired, some for agents only; found by the demo users."""

from __future__ import annotations

import pytest

from gaas import demo


@pytest.fixture(scope="module")
def loaded(database):
    counts = demo.load_demo()
    assert counts["articles"] >= 50 and counts["known_errors"] >= 3 and counts["retired_articles"] >= 3
    return counts


def login(client, username: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/token", data={"username": username, "password": "gaas-demo-password"})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_demo_articles_span_domains_statuses_and_audiences(database, loaded):
    rows = database.owner_rows("SELECT coalesce(domain, 'global') AS d, status::text AS s, kind::text AS k,"
                               " audience::text AS a, count(*) AS n FROM gaas_knowledge.articles"
                               " GROUP BY 1, 2, 3, 4")
    total = sum(r["n"] for r in rows)
    assert total >= 50
    assert {r["d"] for r in rows} == {"global", "healthcare", "education", "justice"}
    assert {r["s"] for r in rows} == {"draft", "review", "published", "retired"}
    assert sum(r["n"] for r in rows if r["k"] == "known_error") >= 3
    assert sum(r["n"] for r in rows if r["s"] == "retired") >= 3
    assert {r["a"] for r in rows} == {"agents", "everyone"}
    solved = database.owner_rows("SELECT sum(solved_count) AS n FROM gaas_knowledge.article_stats")[0]["n"]
    assert solved > 0


def test_demo_users_search_and_get_suggestions(client, loaded):
    agent = login(client, "healthcare.service_desk_agent")
    found = client.get("/api/v1/search", params={"q": "pasword reset"}, headers=agent).json()["items"]
    assert found and found[0]["title"] == "Password reset"
    suggested = client.get("/api/v1/articles/suggest", params={"text": "users cannot log in, portal login fails"},
                           headers=agent).json()
    assert suggested
    finance = login(client, "healthcare.finance_officer")
    titles = {a["title"] for a in client.get("/api/v1/articles", params={"limit": 500},
                                             headers=finance).json()["items"]}
    assert "Password reset" in titles and "Escalate a priority 1 incident" not in titles  # agents only
    assert not any(t.startswith("Known error") for t in titles)
    manager = login(client, "knowledge.manager")
    queue = client.get("/api/v1/articles", params={"in_review": "true", "limit": 500}, headers=manager).json()
    assert len(queue["items"]) >= 3
