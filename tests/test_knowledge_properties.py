"""Property test: random sequences of API calls over one article's lifecycle (edit, submit, withdraw,
approve, reject, retire, discard; by writers and reviewers; sometimes with a stale version) never
reach a state the rules forbid, a reviewer never approves their own work, and every refused call
changes nothing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import World, api_article

URL = "/api/v1/articles"
ACTIONS = ("edit", "submit", "withdraw", "approve", "reject", "retire", "discard")
PEOPLE = ("writer_a", "writer_b", "reviewer_a", "reviewer_b")


@pytest.fixture(scope="module")
def cast(world: World):
    domain = world.domain()
    return {"domain": domain,
            "writer_a": world.user(domain, "service_desk_agent"), "writer_b": world.user(domain, "service_desk_agent"),
            "reviewer_a": world.user(domain, "domain_admin"), "reviewer_b": world.user(domain, "domain_admin")}


def snapshot(database, article_id: str) -> tuple:
    article = database.owner_rows(
        "SELECT status::text, title, body, version, published_version, latest_version, pending_version, retired_at"
        " FROM gaas_knowledge.articles WHERE id = :id", id=article_id)[0]
    versions = database.owner_rows(
        "SELECT version_number, status::text, title, body, contributors, reviewed_by, version"
        " FROM gaas_knowledge.article_versions WHERE article_id = :id ORDER BY version_number", id=article_id)
    return article, versions


def check_invariants(article: dict, versions: list[dict]) -> None:
    open_ = [v for v in versions if v["status"] in ("draft", "review")]
    published = [v for v in versions if v["status"] == "published"]
    assert len(open_) <= 1 and len(published) <= 1
    assert article["latest_version"] == max(v["version_number"] for v in versions)
    assert article["pending_version"] == (open_[0]["version_number"] if open_ else None)
    if article["status"] in ("draft", "review"):
        assert article["published_version"] is None and not published
        assert open_ and open_[0]["status"] == article["status"]
    else:
        assert published and article["published_version"] == published[0]["version_number"]
        assert (article["title"], article["body"]) == (published[0]["title"], published[0]["body"])
        assert (article["status"] == "retired") == (article["retired_at"] is not None)
    for version in versions:
        assert version["reviewed_by"] is None or version["reviewed_by"] not in version["contributors"]
        if version["status"] == "superseded":
            assert published and version["version_number"] < published[0]["version_number"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(PEOPLE), st.booleans()),
                      min_size=1, max_size=14))
def test_no_sequence_breaks_the_lifecycle(client, database, cast, steps):
    article = api_article(client, cast["writer_a"], cast["domain"])
    url = f"{URL}/{article['id']}"
    for n, (action, who, stale) in enumerate(steps):
        person = cast[who]
        before = snapshot(database, article["id"])
        version = before[0]["version"] - (1 if stale and before[0]["version"] > 1 else 0)
        body = {"version": version}
        if action == "edit":
            response = client.patch(url, json={"body": f"step {n} by {who}", **body}, headers=person.headers)
        elif action == "reject":
            response = client.post(f"{url}/reject", json={"comment": "not yet", **body}, headers=person.headers)
        elif action == "discard":
            response = client.post(f"{url}/discard-draft", json=body, headers=person.headers)
        else:
            response = client.post(f"{url}/{action}", json=body, headers=person.headers)
        after = snapshot(database, article["id"])
        check_invariants(*after)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert after == before, (action, who, response.text)
            continue
        assert not (stale and version != before[0]["version"]), "a stale version was accepted"
        if action in ("approve", "reject"):  # only a reviewer who did not write the version
            open_before = [v for v in before[1] if v["status"] == "review"]
            assert who.startswith("reviewer") and open_before
            assert person.id not in open_before[0]["contributors"]
        if action == "edit" and after != before:
            assert after[0]["version"] == before[0]["version"] + 1
