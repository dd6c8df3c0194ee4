"""Knowledge articles: create/read/list, bad input naming its field, the review lifecycle with a
reviewer who is not the author, versions kept and compared, stale versions, retirement by hand
and by validity date, audience and domain visibility, sanitised bodies, links, feedback, views,
known errors from problems, and the audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gaas.core.db import unit_of_work
from gaas.iam import service as iam
from gaas.knowledge import service as knowledge
from tests.support import (
    World,
    api_article,
    api_patch,
    api_problem,
    api_publish,
    api_service,
    assert_problem,
    audit_rows,
    rid,
    unique,
)

URL = "/api/v1/articles"


@pytest.fixture(scope="module")
def kb(world: World):
    domain = world.domain()
    other = world.domain()
    return {
        "domain": domain,
        "other": other,
        "agent": world.user(domain, "service_desk_agent"),  # writes, reads agent-only articles
        "agent2": world.user(domain, "service_desk_agent"),
        "editor": world.user(domain, "domain_admin"),  # writes and reviews
        "reviewer": world.user(domain, "domain_admin"),
        "reader": world.user(domain, "finance_officer"),  # reads, not an agent
        "auditor": world.user(domain, "auditor"),
        "stranger": world.user(other, "domain_admin"),
        "admin": world.admin(),
        "admin2": world.admin(),
    }


def get(client, who, article, **params):
    return client.get(f"{URL}/{article['id']}", params={"count_view": "false", **params}, headers=who.headers)


# ---- create, read, list, bad input ------------------------------------------------------------------

def test_create_get_list_and_audit(client, database, kb):
    request_id = rid()
    body = {"domain": kb["domain"], "title": unique("Printer jams on tray 2 "), "body": "# Fix\n\nOpen **tray 2**.",
            "summary": "Clear the paper path", "category": "Printing", "keywords": ["Printer", "tray"],
            "audience": "everyone"}
    response = client.post(URL, json=body, headers={**kb["agent"].headers, "X-Request-ID": request_id})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["number"].startswith("KB") and len(created["number"]) == 9
    assert created["status"] == "draft" and created["version"] == 1 and response.headers["etag"] == '"1"'
    assert created["latest_version"] == 1 and created["pending_version"] == 1 and created["published_version"] is None
    assert created["body_html"] == "<h1>Fix</h1>\n<p>Open <strong>tray 2</strong>.</p>\n"
    assert created["keywords"] == ["printer", "tray"]
    assert created["author_id"] == str(kb["agent"].id)
    assert created["pending"]["status"] == "draft"

    assert get(client, kb["agent"], created).json()["id"] == created["id"]
    # A draft is for writers and reviewers only.
    assert_problem(get(client, kb["reader"], created), 404)
    listed = client.get(URL, params={"status": "draft", "domain": kb["domain"]}, headers=kb["agent"].headers).json()
    assert created["id"] in [a["id"] for a in listed["items"]]
    listed = client.get(URL, params={"domain": kb["domain"]}, headers=kb["reader"].headers).json()
    assert created["id"] not in [a["id"] for a in listed["items"]]

    rows = audit_rows(database, request_id)
    assert [(r["action"], r["entity_type"]) for r in rows] == [("create", "article"), ("create", "article_version")]
    assert rows[0]["changes"]["after"]["title"] == body["title"]
    assert "body_html" not in rows[0]["changes"]["after"]


@pytest.mark.parametrize(("change", "field"), [
    ({"title": "x" * 201}, "title"),
    ({"title": ""}, "title"),
    ({"body": ""}, "body"),
    ({"audience": "robots"}, "audience"),
    ({"keywords": ["k"] * 31}, "keywords"),
    ({"valid_to": "2001-01-01T00:00:00Z"}, "valid_to"),
    ({"valid_to": "2999-01-01T00:00:00"}, "valid_to"),
    ({"colour": "red"}, "colour"),
    ({"service_ids": [str(uuid.uuid4())]}, "service_ids"),
    ({"problem_ids": ["nope"]}, "problem_ids.0"),
])
def test_bad_input_names_the_field_and_writes_nothing(client, database, kb, change, field):
    request_id = rid()
    body = {"domain": kb["domain"], "title": unique("Bad "), "body": "text", **change}
    response = client.post(URL, json=body, headers={**kb["agent"].headers, "X-Request-ID": request_id})
    assert_problem(response, 422, field)
    assert audit_rows(database, request_id) == []


def test_domain_is_required_and_global_articles_need_a_global_writer(client, kb):
    assert_problem(client.post(URL, json={"title": "t", "body": "b"}, headers=kb["agent"].headers), 422, "domain")
    response = client.post(URL, json={"domain": None, "title": "t", "body": "b"}, headers=kb["agent"].headers)
    assert assert_problem(response, 403)["permission"] == "knowledge.write"
    assert_problem(client.post(URL, json={"domain": kb["other"], "title": "t", "body": "b"},
                               headers=kb["agent"].headers), 403)
    assert_problem(client.post(URL, json={"domain": kb["domain"], "title": "t", "body": "b"},
                               headers=kb["reader"].headers), 403)


def _elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """The tags and attributes a browser would build from `html`."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict[str, str | None]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collect().feed(html)
    return found


def test_script_in_a_body_is_rendered_inert(client, kb):
    body = ('Hello <script>alert("x")</script> and <img src=x onerror="alert(1)">\n\n'
            '[click](javascript:alert(1)) <a href="javascript:alert(2)">a</a> <iframe src="https://evil"></iframe>\n\n'
            '[fine](https://example.org) ![logo](https://example.org/a.png "x")')
    article = api_article(client, kb["agent"], kb["domain"], body=body)
    elements = _elements(article["body_html"])
    tags = {tag for tag, _ in elements}
    assert tags <= {"p", "a", "img"}, tags
    for tag, attrs in elements:
        assert not any(name.startswith("on") or name == "style" for name in attrs), (tag, attrs)
        for url in (attrs.get("href"), attrs.get("src")):
            assert url is None or url.startswith("https://"), (tag, attrs)
    assert ("a", {"href": "https://example.org", "rel": "noopener noreferrer nofollow"}) in elements
    assert "&lt;script&gt;" in article["body_html"]  # shown as text, never run
    assert article["body"] == body  # the Markdown is kept as written


# ---- lifecycle and versions ---------------------------------------------------------------------

def test_review_needs_another_reviewer_and_publishing_makes_it_readable(client, database, kb):
    article = api_article(client, kb["editor"], kb["domain"], title=unique("VPN drops every hour "))
    url = f"{URL}/{article['id']}"
    # Only a draft can be approved after submission; approving a draft is refused.
    assert_problem(client.post(f"{url}/approve", json={"version": 1}, headers=kb["reviewer"].headers), 409, "status")
    submitted = client.post(f"{url}/submit", json={"version": 1}, headers=kb["editor"].headers)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "review" and submitted.json()["version"] == 2
    # The author holds knowledge.review but cannot review their own version.
    request_id = rid()
    own = client.post(f"{url}/approve", json={"version": 2},
                      headers={**kb["editor"].headers, "X-Request-ID": request_id})
    assert_problem(own, 403, "reviewed_by")
    assert audit_rows(database, request_id) == []
    # An agent without knowledge.review cannot either.
    assert_problem(client.post(f"{url}/approve", json={"version": 2}, headers=kb["agent"].headers), 403)
    # A draft in review cannot be edited.
    assert_problem(client.patch(url, json={"title": "Changed", "version": 2}, headers=kb["editor"].headers), 409,
                   "status")
    request_id = rid()
    approved = client.post(f"{url}/approve", json={"version": 2, "comment": "Clear and correct"},
                           headers={**kb["reviewer"].headers, "X-Request-ID": request_id})
    assert approved.status_code == 200, approved.text
    out = approved.json()
    assert out["status"] == "published" and out["published_version"] == 1 and out["pending_version"] is None
    assert out["published_by"] == str(kb["reviewer"].id)
    assert get(client, kb["reader"], article).status_code == 200
    actions = [(r["action"], r["entity_type"]) for r in audit_rows(database, request_id)]
    assert ("update", "article") in actions and ("update", "article_version") in actions
    version = client.get(f"{url}/versions/1", headers=kb["reader"].headers).json()
    assert version["status"] == "published" and version["reviewed_by"] == str(kb["reviewer"].id)
    assert version["review_comment"] == "Clear and correct"


def test_reject_needs_a_comment_and_returns_the_draft(client, kb):
    article = api_article(client, kb["agent"], kb["domain"])
    url = f"{URL}/{article['id']}"
    client.post(f"{url}/submit", json={"version": 1, "reviewer_id": str(kb["reviewer"].id)},
                headers=kb["agent"].headers)
    assert_problem(client.post(f"{url}/reject", json={"version": 2}, headers=kb["reviewer"].headers), 422, "comment")
    rejected = client.post(f"{url}/reject", json={"version": 2, "comment": "Add the error message"},
                           headers=kb["reviewer"].headers)
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "draft"
    assert rejected.json()["pending"]["review_comment"] == "Add the error message"
    # The author fixes it and withdraws a second submission; then it goes through.
    edited = client.patch(url, json={"body": "Error 0x80070005: run as administrator.", "version": 3},
                          headers=kb["agent"].headers)
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 4 and edited.json()["latest_version"] == 1
    again = client.post(f"{url}/submit", json={"version": 4}, headers=kb["agent"].headers).json()
    withdrawn = client.post(f"{url}/withdraw", json={"version": again["version"]}, headers=kb["agent"].headers)
    assert withdrawn.json()["status"] == "draft"
    published = api_publish(client, kb["agent"], kb["reviewer"], article)
    assert published["status"] == "published"


def test_reviewer_asked_for_must_not_be_an_author(client, kb):
    article = api_article(client, kb["agent"], kb["domain"])
    response = client.post(f"{URL}/{article['id']}/submit", json={"version": 1, "reviewer_id": str(kb["agent"].id)},
                           headers=kb["agent"].headers)
    assert_problem(response, 422, "reviewer_id")
    response = client.post(f"{URL}/{article['id']}/submit", json={"version": 1, "reviewer_id": str(uuid.uuid4())},
                           headers=kb["agent"].headers)
    assert_problem(response, 422, "reviewer_id")


def test_a_co_author_cannot_approve_either(client, kb):
    article = api_article(client, kb["agent"], kb["domain"])
    # The reviewer edits the draft: now a contributor of this version.
    assert api_patch(client, kb["reviewer"], f"{URL}/{article['id']}", body="Better text").status_code == 200
    version = get(client, kb["agent"], article).json()["version"]
    client.post(f"{URL}/{article['id']}/submit", json={"version": version}, headers=kb["agent"].headers)
    version += 1
    assert_problem(client.post(f"{URL}/{article['id']}/approve", json={"version": version},
                               headers=kb["reviewer"].headers), 403, "reviewed_by")
    ok = client.post(f"{URL}/{article['id']}/approve", json={"version": version}, headers=kb["editor"].headers)
    assert ok.status_code == 200


def test_editing_a_published_article_opens_a_new_version_while_the_old_one_stays(client, database, kb):
    title = unique("Reset a forgotten password ")
    article = api_article(client, kb["agent"], kb["domain"], title=title, body="Use the self-service portal.")
    published = api_publish(client, kb["agent"], kb["reviewer"], article)
    url = f"{URL}/{article['id']}"
    request_id = rid()
    edited = client.patch(url, json={"title": title + " (2026)", "body": "Use the new portal.",
                                     "change_note": "new portal", "version": published["version"]},
                          headers={**kb["agent2"].headers, "X-Request-ID": request_id})
    assert edited.status_code == 200, edited.text
    out = edited.json()
    assert out["version"] == published["version"] + 1
    assert out["title"] == title and out["published_version"] == 1 and out["latest_version"] == 2
    assert out["pending"]["version_number"] == 2 and out["pending"]["contributors"] == [str(kb["agent2"].id)]
    rows = {(r["action"], r["entity_type"]): r["changes"] for r in audit_rows(database, request_id)}
    assert set(rows) == {("create", "article_version"), ("update", "article")}
    assert rows[("update", "article")]["after"] == {"latest_version": 2, "pending_version": 2}
    # Readers still get version 1.
    assert get(client, kb["reader"], article).json()["title"] == title
    # Editing again changes the same draft.
    again = client.patch(url, json={"summary": "Portal", "version": out["version"]}, headers=kb["agent"].headers)
    assert again.json()["latest_version"] == 2
    # Publishing version 2 supersedes version 1; both are kept.
    api_publish(client, kb["agent"], kb["reviewer"], article)
    now = get(client, kb["reader"], article).json()
    assert now["title"] == title + " (2026)" and now["published_version"] == 2
    versions = client.get(f"{url}/versions", headers=kb["agent"].headers).json()
    assert [(v["version_number"], v["status"]) for v in versions] == [(1, "superseded"), (2, "published")]
    assert versions[1]["contributors"] == [str(kb["agent2"].id), str(kb["agent"].id)]
    diff = client.get(f"{url}/versions/2/diff", headers=kb["reader"].headers).json()
    assert diff["against"] == 1
    changed = {c["field"]: c for c in diff["changes"]}
    assert set(changed) == {"title", "body", "summary"}
    assert "-Use the self-service portal." in changed["body"]["diff"]
    assert "+Use the new portal." in changed["body"]["diff"]
    assert changed["title"]["before"] == title
    assert_problem(client.get(f"{url}/versions/2/diff", params={"against": 9}, headers=kb["agent"].headers), 422,
                   "against")


def test_an_unchanged_edit_makes_no_version_and_a_draft_can_be_discarded(client, kb):
    article = api_article(client, kb["agent"], kb["domain"], title=unique("Same "))
    published = api_publish(client, kb["agent"], kb["reviewer"], article)
    url = f"{URL}/{article['id']}"
    same = client.patch(url, json={"title": published["title"], "version": published["version"]},
                        headers=kb["agent"].headers)
    assert same.status_code == 200 and same.json()["version"] == published["version"]
    assert same.json()["latest_version"] == 1
    edited = client.patch(url, json={"title": "Different", "version": published["version"]},
                          headers=kb["agent"].headers).json()
    discarded = client.post(f"{url}/discard-draft", json={"version": edited["version"]}, headers=kb["agent"].headers)
    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["pending_version"] is None and discarded.json()["title"] == published["title"]
    versions = client.get(f"{url}/versions", headers=kb["agent"].headers).json()
    assert [v["status"] for v in versions] == ["published", "discarded"]
    # A never-published article's only draft cannot be discarded.
    fresh = api_article(client, kb["agent"], kb["domain"])
    assert_problem(client.post(f"{URL}/{fresh['id']}/discard-draft", json={"version": 1},
                               headers=kb["agent"].headers), 409)


def test_stale_version_is_409_and_changes_nothing(client, database, kb):
    article = api_article(client, kb["agent"], kb["domain"])
    url = f"{URL}/{article['id']}"
    first = client.patch(url, json={"title": "First", "version": 1}, headers=kb["agent"].headers)
    assert first.status_code == 200
    request_id = rid()
    stale = client.patch(url, json={"title": "Second", "version": 1},
                         headers={**kb["agent"].headers, "X-Request-ID": request_id})
    assert assert_problem(stale, 409, "version")["current_version"] == 2
    assert assert_problem(client.patch(url, json={"title": "Second"}, headers=kb["agent"].headers), 409,
                          "version")["current_version"] == 2
    assert_problem(client.post(f"{url}/submit", headers={**kb["agent"].headers, "If-Match": '"1"'}, json={}), 409,
                   "version")
    assert get(client, kb["agent"], article).json()["title"] == "First"
    assert audit_rows(database, request_id) == []
    ok = client.post(f"{url}/submit", headers={**kb["agent"].headers, "If-Match": '"2"'}, json={})
    assert ok.status_code == 200, ok.text


def test_retire_by_hand_and_delete_rules(client, kb):
    article = api_article(client, kb["agent"], kb["domain"])
    url = f"{URL}/{article['id']}"
    assert_problem(client.post(f"{url}/retire", json={"version": 1}, headers=kb["reviewer"].headers), 409, "status")
    published = api_publish(client, kb["agent"], kb["reviewer"], article)
    assert_problem(client.post(f"{url}/retire", json={"version": published["version"]}, headers=kb["agent"].headers),
                   403)
    retired = client.post(f"{url}/retire", json={"version": published["version"], "reason": "Old portal"},
                          headers=kb["reviewer"].headers)
    assert retired.status_code == 200, retired.text
    assert retired.json()["status"] == "retired" and retired.json()["retirement_reason"] == "Old portal"
    assert_problem(get(client, kb["reader"], article), 404)
    assert get(client, kb["agent"], article).status_code == 200
    # A writer cannot delete a once-published article; a reviewer can, and restore it.
    assert_problem(client.delete(url, headers=kb["agent"].headers), 403)
    deleted = client.delete(url, headers=kb["reviewer"].headers)
    assert deleted.status_code == 200 and deleted.json()["deleted_at"] is not None
    assert article["id"] not in [a["id"] for a in client.get(URL, headers=kb["reviewer"].headers).json()["items"]]
    restored = client.post(f"{url}/restore", headers=kb["reviewer"].headers)
    assert restored.status_code == 200 and restored.json()["deleted_at"] is None
    # A new version brings a retired article back.
    reopened = client.patch(url, json={"body": "New portal steps", "version": restored.json()["version"]},
                            headers=kb["agent"].headers)
    assert reopened.status_code == 200
    back = api_publish(client, kb["agent"], kb["reviewer"], article)
    assert back["status"] == "published" and back["retired_at"] is None and back["published_version"] == 2
    # A never-published draft may be deleted by its writer.
    draft = api_article(client, kb["agent"], kb["domain"])
    assert client.delete(f"{URL}/{draft['id']}", headers=kb["agent"].headers).status_code == 200


def test_validity_date_retires_the_article(client, database, kb):
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    article = api_article(client, kb["agent"], kb["domain"], valid_to=soon)
    api_publish(client, kb["agent"], kb["reviewer"], article)
    with database.owner_engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("UPDATE gaas_knowledge.articles SET valid_to = now() - interval '1 minute' "
                          "WHERE id = :id"), {"id": article["id"]})
    with unit_of_work(iam.system_actor(), database.factory) as db:
        assert knowledge.retire_expired(db) >= 1
    with unit_of_work(iam.system_actor(), database.factory) as db:
        assert knowledge.retire_expired(db) == 0  # exactly once
    now = get(client, kb["agent"], article).json()
    assert now["status"] == "retired" and now["retirement_reason"].startswith("valid_to passed")
    rows = database.owner_rows("SELECT action, user_id, changes FROM gaas_audit.audit_log WHERE entity_id = :id "
                               "AND action = 'update' ORDER BY timestamp DESC LIMIT 1", id=article["id"])
    assert rows[0]["changes"]["after"]["status"] == "retired"
    assert str(rows[0]["user_id"]) == "00000000-0000-7000-8000-000000000000"
    # An expired article cannot be published again until valid_to moves.
    edited = api_patch(client, kb["agent"], f"{URL}/{article['id']}", body="v2")
    client.post(f"{URL}/{article['id']}/submit", json={"version": edited.json()["version"]},
                headers=kb["agent"].headers)
    assert_problem(client.post(f"{URL}/{article['id']}/approve", json={"version": edited.json()["version"] + 1},
                               headers=kb["reviewer"].headers), 409, "valid_to")


# ---- who reads what ---------------------------------------------------------------------------------

def test_agent_only_article_is_invisible_to_a_non_agent(client, kb):
    title = unique("Internal runbook for the payroll batch ")
    article = api_article(client, kb["agent"], kb["domain"], title=title, audience="agents")
    api_publish(client, kb["agent"], kb["reviewer"], article)
    assert get(client, kb["agent2"], article).status_code == 200
    assert get(client, kb["auditor"], article).status_code == 200
    assert_problem(get(client, kb["reader"], article), 404)
    listed = client.get(URL, params={"domain": kb["domain"]}, headers=kb["reader"].headers).json()["items"]
    assert article["id"] not in [a["id"] for a in listed]
    found = client.get("/api/v1/search", params={"q": title, "types": "articles"}, headers=kb["reader"].headers)
    assert article["id"] not in [h["id"] for h in found.json()["items"]]
    found = client.get("/api/v1/search", params={"q": title, "types": "articles"}, headers=kb["agent2"].headers)
    assert article["id"] in [h["id"] for h in found.json()["items"]]
    suggested = client.get(f"{URL}/suggest", params={"text": title}, headers=kb["reader"].headers).json()
    assert article["id"] not in [s["id"] for s in suggested]
    suggested = client.get(f"{URL}/suggest", params={"text": title}, headers=kb["agent2"].headers).json()
    assert article["id"] in [s["id"] for s in suggested]


def test_another_domains_article_is_invisible_and_a_global_one_is_for_all(client, kb):
    title = unique("Badge reader offline ")
    article = api_article(client, kb["agent"], kb["domain"], title=title)
    api_publish(client, kb["agent"], kb["reviewer"], article)
    url = f"{URL}/{article['id']}"
    stranger = kb["stranger"]
    assert_problem(get(client, stranger, article), 404)
    assert_problem(client.patch(url, json={"title": "x", "version": 3}, headers=stranger.headers), 404)
    assert_problem(client.delete(url, headers=stranger.headers), 404)
    assert_problem(client.get(f"{url}/versions", headers=stranger.headers), 404)
    assert_problem(client.get(f"/api/v1/articles/{article['id']}/history", headers=stranger.headers), 404)
    found = client.get("/api/v1/search", params={"q": title}, headers=stranger.headers).json()["items"]
    assert article["id"] not in [h["id"] for h in found]
    suggested = client.get(f"{URL}/suggest", params={"text": title}, headers=stranger.headers).json()
    assert article["id"] not in [s["id"] for s in suggested]

    admin = kb["admin"]
    shared = api_article(client, admin, None, title=unique("Global: change your password "))
    api_publish(client, admin, kb["admin2"], shared)
    for person in (kb["reader"], stranger, kb["agent"]):
        assert get(client, person, shared).status_code == 200
    # Domain writers cannot edit a global article.
    assert_problem(client.patch(f"{URL}/{shared['id']}", json={"title": "x", "version": 3},
                                headers=kb["editor"].headers), 403)


def test_read_only_token_reads_but_cannot_write(client, world, kb):
    viewer = world.user(kb["domain"], "service_desk_agent", read_only=True)
    article = api_article(client, kb["agent"], kb["domain"], audience="agents")
    api_publish(client, kb["agent"], kb["reviewer"], article)
    assert get(client, viewer, article).status_code == 200
    assert_problem(client.post(URL, json={"domain": kb["domain"], "title": "t", "body": "b"},
                               headers=viewer.headers), 403)
    assert_problem(client.put(f"{URL}/{article['id']}/feedback", json={"helpful": True}, headers=viewer.headers),
                   403)


# ---- known errors, links, feedback, views, solved incidents ---------------------------------------

def test_known_error_is_published_from_a_problem_in_one_call(client, database, kb):
    problem = api_problem(client, kb["editor"], kb["domain"], short_description=unique("Mail queue stalls "),
                          description="Outgoing mail waits for hours.")
    bare = client.post(f"{URL}/known-errors", json={"problem_id": problem["id"]}, headers=kb["editor"].headers)
    assert_problem(bare, 422, "problem_id")  # no workaround yet
    assert api_patch(client, kb["editor"], f"/api/v1/problems/{problem['id']}",
                     workaround="Restart the mail relay every morning.").status_code == 200
    request_id = rid()
    response = client.post(f"{URL}/known-errors", json={"problem_id": problem["id"], "audience": "agents"},
                           headers={**kb["editor"].headers, "X-Request-ID": request_id})
    assert response.status_code == 201, response.text
    article = response.json()
    assert article["kind"] == "known_error" and article["status"] == "published"
    assert article["title"] == f"Known error: {problem['short_description']}"
    assert "Restart the mail relay every morning." in article["body_html"]
    assert article["problem"]["number"] == problem["number"] and article["problem"]["status"] == "new"
    assert article["problem"]["known_error"] is True
    assert [(link["target_type"], link["number"]) for link in article["links"]] == [("problem", problem["number"])]
    assert {r["entity_type"] for r in audit_rows(database, request_id)} >= {"article", "article_version"}
    # It follows the problem's status.
    assert api_patch(client, kb["editor"], f"/api/v1/problems/{problem['id']}", status="investigating"
                     ).status_code == 200
    assert get(client, kb["agent"], article).json()["problem"]["status"] == "investigating"
    # Listed under the problem; one per problem.
    listed = client.get(URL, params={"problem_id": problem["id"]}, headers=kb["agent"].headers).json()["items"]
    assert [a["id"] for a in listed] == [article["id"]]
    again = client.post(f"{URL}/known-errors", json={"problem_id": problem["id"]}, headers=kb["editor"].headers)
    assert assert_problem(again, 409, "problem_id")["existing_id"] == article["id"]
    # An agent (who may not review) gets it into review instead of published.
    second = api_problem(client, kb["editor"], kb["domain"], workaround="Use the web mail.")
    queued = client.post(f"{URL}/known-errors", json={"problem_id": second["id"]}, headers=kb["agent"].headers)
    assert queued.status_code == 201 and queued.json()["status"] == "review"
    assert_problem(client.post(f"{URL}/known-errors", json={"problem_id": str(uuid.uuid4())},
                               headers=kb["editor"].headers), 422, "problem_id")


def test_links_to_services_cis_and_problems_stay_in_the_domain(client, kb):
    service = api_service(client, kb["editor"], kb["domain"])
    foreign = api_service(client, kb["stranger"], kb["other"])
    article = api_article(client, kb["agent"], kb["domain"], service_ids=[service["id"]])
    assert [(link["target_type"], link["number"]) for link in article["links"]] == [("service", service["number"])]
    assert_problem(client.post(f"{URL}/{article['id']}/links", json={"target_type": "service",
                                                                      "target_id": foreign["id"]},
                               headers=kb["agent"].headers), 422, "target_id")
    assert_problem(client.post(f"{URL}/{article['id']}/links", json={"target_type": "service",
                                                                      "target_id": service["id"]},
                               headers=kb["agent"].headers), 409, "target_id")
    problem = api_problem(client, kb["editor"], kb["domain"])
    added = client.post(f"{URL}/{article['id']}/links", json={"target_type": "problem", "target_id": problem["id"]},
                        headers=kb["agent"].headers)
    assert added.status_code == 201, added.text
    listed = client.get(URL, params={"service_id": service["id"]}, headers=kb["agent"].headers).json()["items"]
    assert [a["id"] for a in listed] == [article["id"]]
    assert client.delete(f"{URL}/{article['id']}/links/{added.json()['id']}",
                         headers=kb["agent"].headers).status_code == 204
    assert [link["target_type"] for link in get(client, kb["agent"], article).json()["links"]] == ["service"]


def test_feedback_and_views_are_counted(client, database, kb):
    article = api_article(client, kb["agent"], kb["domain"])
    api_publish(client, kb["agent"], kb["reviewer"], article)
    url = f"{URL}/{article['id']}"
    for _ in range(3):
        client.get(url, headers=kb["reader"].headers)
    assert get(client, kb["reader"], article).json()["stats"]["views"] == 3  # count_view=false does not count
    assert_problem(client.put(f"{url}/feedback", json={}, headers=kb["reader"].headers), 422)
    first = client.put(f"{url}/feedback", json={"helpful": True, "comment": "Worked"}, headers=kb["reader"].headers)
    assert first.status_code == 201, first.text
    assert client.put(f"{url}/feedback", json={"helpful": False}, headers=kb["agent2"].headers).status_code == 201
    stats = get(client, kb["agent"], article).json()["stats"]
    assert (stats["helpful"], stats["not_helpful"]) == (1, 1)
    changed = client.put(f"{url}/feedback", json={"helpful": True}, headers=kb["agent2"].headers)
    assert changed.status_code == 200 and changed.json()["version"] == 2
    stats = get(client, kb["agent"], article).json()["stats"]
    assert (stats["helpful"], stats["not_helpful"]) == (2, 0)
    everyone = client.get(f"{url}/feedback", headers=kb["agent"].headers).json()
    assert len(everyone) == 2
    own = client.get(f"{url}/feedback", headers=kb["reader"].headers).json()
    assert [f["comment"] for f in own] == ["Worked"]
    # The counters are the database's: the application role cannot write them.
    import psycopg

    with database.psycopg_app() as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE gaas_knowledge.article_stats SET view_count = 1000000")


def test_an_article_that_solved_incidents_counts_them(client, kb):
    from tests.support import api_incident

    article = api_article(client, kb["agent"], kb["domain"])
    api_publish(client, kb["agent"], kb["reviewer"], article)
    incident = api_incident(client, kb["agent"], kb["domain"])
    url = f"{URL}/{article['id']}/solved-incidents"
    linked = client.post(url, json={"incident_id": incident["id"]}, headers=kb["agent"].headers)
    assert linked.status_code == 201, linked.text
    assert client.post(url, json={"incident_id": incident["id"]}, headers=kb["agent"].headers).status_code == 200
    assert get(client, kb["agent"], article).json()["stats"]["solved"] == 1
    assert [r["incident_id"] for r in client.get(url, headers=kb["agent"].headers).json()] == [incident["id"]]
    listed = client.get(URL, params={"incident_id": incident["id"]}, headers=kb["agent"].headers).json()["items"]
    assert [a["id"] for a in listed] == [article["id"]]
    # Linking edits the incident: a reader of incidents may not.
    assert assert_problem(client.post(url, json={"incident_id": incident["id"]}, headers=kb["reader"].headers),
                          403)["permission"] == "incident.edit"
    assert_problem(client.post(url, json={"incident_id": str(uuid.uuid4())}, headers=kb["agent"].headers), 422,
                   "incident_id")
    draft = api_article(client, kb["agent"], kb["domain"])
    assert_problem(client.post(f"{URL}/{draft['id']}/solved-incidents", json={"incident_id": incident["id"]},
                               headers=kb["agent"].headers), 422, "article_id")
    assert client.delete(f"{url}/{incident['id']}", headers=kb["agent"].headers).status_code == 204
    assert get(client, kb["agent"], article).json()["stats"]["solved"] == 0


def test_the_incident_api_takes_the_articles_that_solved_it(client, database, kb):
    from tests.support import api_incident, api_patch

    solving, other = (api_article(client, kb["agent"], kb["domain"]) for _ in range(2))
    for article in (solving, other):
        api_publish(client, kb["agent"], kb["reviewer"], article)
    draft = api_article(client, kb["agent"], kb["domain"])
    incident = api_incident(client, kb["agent"], kb["domain"])
    url = f"/api/v1/incidents/{incident['id']}"
    api_patch(client, kb["agent"], url, status="in_progress").raise_for_status()
    # a draft named among good ones: 422 naming that entry, and neither the move nor a link is written
    refused = api_patch(client, kb["agent"], url, status="resolved", resolution_notes="Cleared the cache",
                        solved_by_articles=[solving["id"], draft["id"]])
    assert assert_problem(refused, 422, "solved_by_articles[1]")["errors"][0]["type"] == "not_published"
    assert client.get(url, headers=kb["agent"].headers).json()["status"] == "in_progress"
    assert get(client, kb["agent"], solving).json()["stats"]["solved"] == 0
    resolved = api_patch(client, kb["agent"], url, status="resolved", resolution_notes="Cleared the cache",
                         solved_by_articles=[solving["id"]])
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved"
    # later links add to the earlier ones; naming one twice counts it once
    again = api_patch(client, kb["agent"], url, solved_by_articles=[other["id"], solving["id"], other["id"]])
    assert again.status_code == 200, again.text
    listed = client.get(URL, params={"incident_id": incident["id"]}, headers=kb["agent"].headers).json()["items"]
    assert sorted(a["id"] for a in listed) == sorted([solving["id"], other["id"]])
    assert [get(client, kb["agent"], a).json()["stats"]["solved"] for a in (solving, other)] == [1, 1]
    assert_problem(api_patch(client, kb["agent"], url, solved_by_articles=[str(uuid.uuid4())]), 422,
                   "solved_by_articles[0]")
    # linking edits the incident: a reader of incidents may not
    assert assert_problem(api_patch(client, kb["reader"], url, solved_by_articles=[other["id"]]),
                          403)["permission"] == "incident.edit"


def test_cli_retires_expired_articles_and_reindexes(client, database, kb):
    from sqlalchemy import text
    from typer.testing import CliRunner

    from gaas.cli import app

    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    article = api_article(client, kb["agent"], kb["domain"], valid_to=soon)
    api_publish(client, kb["agent"], kb["reviewer"], article)
    with database.owner_engine.begin() as conn:
        conn.execute(text("UPDATE gaas_knowledge.articles SET valid_to = now() - interval '1 second' WHERE id = :id"),
                     {"id": article["id"]})
    result = CliRunner().invoke(app, ["knowledge", "retire-expired", "--batch", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "article(s) retired" in result.output
    assert get(client, kb["agent"], article).json()["status"] == "retired"
    result = CliRunner().invoke(app, ["search", "reindex", "--domain", kb["domain"]], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "articles" in result.output and "reindexed" in result.output
