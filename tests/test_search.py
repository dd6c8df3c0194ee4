"""Global search and suggestions: typos, record numbers, partial hostnames, one ranking across types,
highlighted and escaped snippets, domain and permission rules, per-domain language, and the
full-text index kept by the database (RLS tested with raw SQL as the application role)."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from gaas.core.db import unit_of_work
from gaas.iam import service as iam
from gaas.search import service as search
from tests.support import (
    World,
    api_article,
    api_ci,
    api_incident,
    api_problem,
    api_publish,
    api_service,
    assert_problem,
)

SEARCH = "/api/v1/search"
SUGGEST = "/api/v1/articles/suggest"


@pytest.fixture(scope="module")
def s(world: World, client):
    domain, other = world.domain(), world.domain()
    people = {
        "domain": domain, "other": other,
        "agent": world.user(domain, "service_desk_agent"),
        "reviewer": world.user(domain, "domain_admin"),
        "reader": world.user(domain, "finance_officer"),
        "stranger": world.user(other, "domain_admin"),
        "stranger_reviewer": world.user(other, "domain_admin"),
    }
    tag = uuid.uuid4().hex[:6]
    people["tag"] = tag
    articles = {}
    for key, title, body in (
        ("password", f"Password reset {tag}", "Open the self-service portal and choose *Forgot password*."),
        ("vpn", f"VPN disconnects every hour {tag}", "Renew the certificate in the VPN client settings."),
        ("printer", f"Printer shows paper jam {tag}",
         "The printer shows <script>alert(1)</script> and a jam when tray < 2 & toner > 5: open tray 2."),
    ):
        article = api_article(client, people["agent"], domain, title=title, body=body, keywords=["howto"])
        articles[key] = api_publish(client, people["agent"], people["reviewer"], article)
    foreign = api_article(client, people["stranger"], other, title=f"Password reset for judges {tag}",
                          body="Ask the court clerk.")
    articles["foreign"] = api_publish(client, people["stranger"], people["stranger_reviewer"], foreign)
    people["articles"] = articles
    return people


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["items"]]


def test_a_misspelt_query_finds_the_article(client, s):
    for query in (f"pasword reset {s['tag']}", "pasword reset", "Pasword rest", "password resett"):
        found = client.get(SEARCH, params={"q": query, "types": "articles"}, headers=s["agent"].headers)
        assert s["articles"]["password"]["id"] in ids(found), query
    top = client.get(SEARCH, params={"q": f"pasword reset {s['tag']}"}, headers=s["agent"].headers).json()["items"][0]
    assert top["id"] == s["articles"]["password"]["id"] and top["type"] == "article"
    assert top["url"] == f"/api/v1/articles/{top['id']}" and 0 < top["score"] <= 1


def test_a_record_number_finds_its_record(client, s):
    incident = api_incident(client, s["agent"], s["domain"])
    problem = api_problem(client, s["reviewer"], s["domain"])
    service = api_service(client, s["reviewer"], s["domain"])
    ci = api_ci(client, s["reviewer"], s["domain"], "server")
    article = s["articles"]["vpn"]
    for record, kind in ((incident, "incident"), (problem, "problem"), (service, "service"), (ci, "ci"),
                         (article, "article")):
        number = record["number"]
        prefix = number.rstrip("0123456789")
        short = prefix.lower() + str(int(number[len(prefix):]))  # inc42 for INC0000042
        for query in (number, number.lower(), short):
            items = client.get(SEARCH, params={"q": query}, headers=s["reviewer"].headers).json()["items"]
            assert items and items[0]["id"] == record["id"] and items[0]["type"] == kind, (query, items[:2])
            assert items[0]["score"] == 1.0


def test_a_partial_or_misspelt_hostname_finds_the_ci(client, s):
    host = f"web-{s['tag']}-prod-07"
    ci = api_ci(client, s["reviewer"], s["domain"], "server", name=host, attributes={"hostname": host})
    for query in (f"{s['tag']}-prod", f"web {s['tag']} prd 07"):
        found = client.get(SEARCH, params={"q": query, "types": "cis"}, headers=s["reviewer"].headers)
        assert ci["id"] in ids(found), query


def test_one_ranking_across_types_with_highlighted_escaped_snippets(client, s):
    tag = s["tag"]
    incident = api_incident(client, s["agent"], s["domain"], short_description=f"Printer jam on floor 3 {tag}",
                            description="The <b>printer</b> on floor 3 shows a paper jam.")
    response = client.get(SEARCH, params={"q": f"printer jam {tag}"}, headers=s["agent"].headers)
    items = response.json()["items"]
    by_id = {item["id"]: item for item in items}
    assert s["articles"]["printer"]["id"] in by_id and incident["id"] in by_id
    assert response.json()["counts"]["incident"] >= 1 and response.json()["counts"]["article"] >= 1
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    snippet = by_id[s["articles"]["printer"]["id"]]["snippet"]
    assert "<mark>printer</mark>" in snippet and "<script" not in snippet
    assert "tray &lt; 2 &amp; toner &gt; 5" in snippet  # the text is escaped; only <mark> is markup
    assert "<b>" not in by_id[incident["id"]]["snippet"]
    only = client.get(SEARCH, params={"q": f"printer jam {tag}", "types": "incidents"}, headers=s["agent"].headers)
    assert {item["type"] for item in only.json()["items"]} == {"incident"}


def test_search_respects_domains_and_permissions(client, s, world):
    tag = s["tag"]
    incident = api_incident(client, s["agent"], s["domain"], short_description=f"Password reset loops {tag}")
    mine = ids(client.get(SEARCH, params={"q": f"password reset {tag}"}, headers=s["agent"].headers))
    assert s["articles"]["password"]["id"] in mine and incident["id"] in mine
    assert s["articles"]["foreign"]["id"] not in mine
    theirs = ids(client.get(SEARCH, params={"q": f"password reset {tag}"}, headers=s["stranger"].headers))
    assert s["articles"]["foreign"]["id"] in theirs
    assert s["articles"]["password"]["id"] not in theirs and incident["id"] not in theirs
    # A record number of another domain finds nothing.
    assert incident["id"] not in ids(client.get(SEARCH, params={"q": incident["number"]},
                                                 headers=s["stranger"].headers))
    # A user with no rights in the domain sees nothing at all.
    nobody = world.user(s["domain"])
    assert ids(client.get(SEARCH, params={"q": f"password reset {tag}"}, headers=nobody.headers)) == []


def test_bad_search_input_is_a_problem_naming_the_field(client, s):
    assert_problem(client.get(SEARCH, params={"q": ""}, headers=s["agent"].headers), 422, "q")
    assert_problem(client.get(SEARCH, headers=s["agent"].headers), 422, "q")
    assert_problem(client.get(SEARCH, params={"q": "x", "types": "articles,spaceships"}, headers=s["agent"].headers),
                   422, "types")
    assert_problem(client.get(SEARCH, params={"q": "x", "limit": 1000}, headers=s["agent"].headers), 422, "limit")
    assert_problem(client.get(SEARCH, params={"q": "x", "cursor": "garbage"}, headers=s["agent"].headers), 422,
                   "cursor")
    assert_problem(client.get(SEARCH, params={"q": "x" * 201}, headers=s["agent"].headers), 422, "q")
    # Query syntax never breaks the server: quotes, operators, stop words, punctuation only.
    for odd in ('"unclosed', "a & | ! <-> :*", "the", "!!!", "'; DROP TABLE x; --", "\\", "ﬁ ß 日本"):
        assert client.get(SEARCH, params={"q": odd}, headers=s["agent"].headers).status_code == 200, odd
        assert client.get(SUGGEST, params={"text": odd}, headers=s["agent"].headers).status_code == 200, odd


def test_paging_walks_the_ranking_without_repeats(client, s):
    tag = s["tag"]
    for i in range(5):
        api_incident(client, s["agent"], s["domain"], short_description=f"Scanner offline {tag} number {i}")
    seen, cursor = [], None
    while True:
        params = {"q": f"scanner offline {tag}", "types": "incidents", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(SEARCH, params=params, headers=s["agent"].headers).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5


# ---- suggestions ------------------------------------------------------------------------------------

def test_suggestions_follow_the_text_as_it_is_typed(client, s):
    tag = s["tag"]
    typed = ""
    for word in ("vpn ", "keeps ", "disconnecting ", tag[:3]):
        typed += word
    suggested = client.get(SUGGEST, params={"text": typed}, headers=s["agent"].headers).json()
    assert suggested and suggested[0]["id"] == s["articles"]["vpn"]["id"], suggested
    partial = client.get(SUGGEST, params={"text": "cannot reset my passw"}, headers=s["agent"].headers).json()
    assert s["articles"]["password"]["id"] in [x["id"] for x in partial]
    assert "<mark>" in (suggested[0]["snippet"] or "")


def test_a_retired_article_is_not_suggested(client, s):
    tag = s["tag"]
    article = api_article(client, s["agent"], s["domain"], title=f"Fax server queue full {tag}",
                          body="Purge the fax queue.")
    published = api_publish(client, s["agent"], s["reviewer"], article)
    text = f"fax server queue is full {tag}"
    assert article["id"] in [x["id"] for x in client.get(SUGGEST, params={"text": text},
                                                         headers=s["agent"].headers).json()]
    retired = client.post(f"/api/v1/articles/{article['id']}/retire", json={"version": published["version"]},
                          headers=s["reviewer"].headers)
    assert retired.status_code == 200
    assert article["id"] not in [x["id"] for x in client.get(SUGGEST, params={"text": text},
                                                             headers=s["agent"].headers).json()]
    assert article["id"] not in ids(client.get(SEARCH, params={"q": text}, headers=s["agent"].headers))
    # Nor a draft, nor another domain's article.
    draft = api_article(client, s["agent"], s["domain"], title=f"Fax toner low {tag}")
    foreign_text = f"password reset for judges {tag}"
    suggestions = client.get(SUGGEST, params={"text": foreign_text}, headers=s["agent"].headers).json()
    assert s["articles"]["foreign"]["id"] not in [x["id"] for x in suggestions]
    suggestions = client.get(SUGGEST, params={"text": f"fax toner low {tag}"}, headers=s["agent"].headers).json()
    assert draft["id"] not in [x["id"] for x in suggestions]


def test_articles_that_solved_incidents_and_fit_the_service_rank_first(client, s):
    tag = s["tag"]
    service = api_service(client, s["reviewer"], s["domain"])
    plain = api_publish(client, s["agent"], s["reviewer"], api_article(
        client, s["agent"], s["domain"], title=f"Disk full on the file server {tag}", body="Clean old files."))
    proven = api_publish(client, s["agent"], s["reviewer"], api_article(
        client, s["agent"], s["domain"], title=f"Disk full on the file server {tag} ", body="Clean old files.",
        service_ids=[service["id"]]))
    text = f"disk full file server {tag}"
    before = client.get(SUGGEST, params={"text": text}, headers=s["agent"].headers).json()
    assert {x["id"] for x in before[:2]} == {plain["id"], proven["id"]}
    for _ in range(3):
        incident = api_incident(client, s["agent"], s["domain"])
        linked = client.post(f"/api/v1/articles/{proven['id']}/solved-incidents", json={"incident_id": incident["id"]},
                             headers=s["agent"].headers)
        assert linked.status_code == 201
    after = client.get(SUGGEST, params={"text": text}, headers=s["agent"].headers).json()
    assert after[0]["id"] == proven["id"] and after[0]["solved"] == 3
    assert after[0]["score"] > after[1]["score"]
    by_service = client.get(SUGGEST, params={"text": text, "service_id": service["id"]},
                            headers=s["agent"].headers).json()
    assert by_service[0]["id"] == proven["id"]
    assert_problem(client.get(SUGGEST, params={"text": "x", "limit": 50}, headers=s["agent"].headers), 422, "limit")


# ---- the database's side ---------------------------------------------------------------------------

def test_language_per_domain_and_reindex(client, database, world, s):
    domain = world.domain()
    admin = world.user(domain, "domain_admin")
    second = world.user(domain, "domain_admin")
    url = "/api/v1/search/language"
    assert client.get(url, params={"domain": domain}, headers=admin.headers).json() == {
        "domain": domain, "language": "english", "inherited": True, "version": None}
    assert_problem(client.put(url, params={"domain": domain}, json={"language": "klingon"}, headers=admin.headers),
                   422, "language")
    assert_problem(client.put(url, params={"domain": domain}, json={"language": "french"},
                              headers=s["agent"].headers), 404)
    assert_problem(client.put(url, json={"language": "french"}, headers=admin.headers), 403)  # platform default
    article = api_publish(client, admin, second, api_article(client, admin, domain, title="Les imprimantes bloquées",
                                                             body="Redémarrer les imprimantes."))
    # English stemming does not know French verbs.
    assert article["id"] not in ids(client.get(SEARCH, params={"q": "redémarrez", "types": "articles"},
                                               headers=admin.headers))
    put = client.put(url, params={"domain": domain}, json={"language": "french"}, headers=admin.headers)
    assert put.status_code == 200 and put.json()["language"] == "french"
    totals = search.reindex(lambda: unit_of_work(iam.system_actor(), database.factory), domain, batch=2)
    assert totals["articles"] == 1
    assert article["id"] in ids(client.get(SEARCH, params={"q": "redémarrez", "types": "articles"},
                                           headers=admin.headers))
    vector = database.owner_rows("SELECT search_vector::text AS v FROM gaas_knowledge.articles WHERE id = :id",
                                 id=article["id"])[0]["v"]
    assert "'redémarr'" in vector and "'imprim'" in vector  # French stems
    again = client.put(url, params={"domain": domain}, json={"language": "simple", "version": 1},
                       headers=admin.headers)
    assert again.status_code == 200 and again.json()["version"] == 2
    assert_problem(client.put(url, params={"domain": domain}, json={"language": "english", "version": 1},
                              headers=admin.headers), 409, "version")


def test_vectors_are_kept_by_the_database_weighted_title_first(database, s):
    rows = database.owner_rows("SELECT search_vector::text AS v FROM gaas_knowledge.articles WHERE id = :id",
                               id=s["articles"]["vpn"]["id"])
    vector = rows[0]["v"]
    number = s["articles"]["vpn"]["number"].lower()
    assert f"'{number}':1A" in vector  # the record number, as written (simple), weight A
    assert re.search(r"'vpn':\d+A", vector) and re.search(r"'disconnect':\d+A", vector)  # title: A, stemmed
    assert re.search(r"'certif':\d+[ ,]", vector) and re.search(r"'renew':\d+[ ,]", vector)  # body: D
    for table in ("gaas_incident_mgmt.incidents", "gaas_incident_mgmt.problems", "gaas_change_mgmt.changes",
                  "gaas_service_catalog.services"):
        assert database.owner_rows(f"SELECT count(*) AS n FROM {table} WHERE search_vector IS NULL")[0]["n"] == 0


def test_row_level_security_on_knowledge_tables_with_raw_sql(database, s):
    agent, stranger = s["agent"], s["stranger"]
    foreign_id = s["articles"]["foreign"]["id"]
    mine_id = s["articles"]["vpn"]["id"]
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                     (str(agent.id), s["domain"]))
        seen = {r[0] for r in conn.execute("SELECT id::text FROM gaas_knowledge.articles").fetchall()}
        assert mine_id in seen and foreign_id not in seen
        for table in ("article_versions", "article_stats", "article_links", "article_feedback"):
            column = "article_id"
            assert conn.execute(f"SELECT count(*) FROM gaas_knowledge.{table} WHERE {column} = %s",
                                (foreign_id,)).fetchone()[0] == 0, table
        # Full-text search through the index sees only this domain's rows.
        found = conn.execute("SELECT id::text FROM gaas_knowledge.articles WHERE search_vector @@ "
                             "websearch_to_tsquery('english', 'password reset')").fetchall()
        assert foreign_id not in {r[0] for r in found}
        # A view of an invisible article is not counted.
        assert conn.execute("SELECT gaas_knowledge.record_article_view(%s)", (foreign_id,)).fetchone()[0] is None
        assert conn.execute("UPDATE gaas_knowledge.articles SET title = 'x' WHERE id = %s",
                            (foreign_id,)).rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO gaas_knowledge.articles (domain, title, body, body_html, body_text, author_id,"
                         " created_by, updated_by) VALUES (%s, 't', 'b', 'b', 'b', %s, %s, %s)",
                         (s["other"], str(agent.id), str(agent.id), str(agent.id)))
    with database.psycopg_app() as conn:  # no context: nothing at all
        assert conn.execute("SELECT count(*) FROM gaas_knowledge.articles").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM gaas_knowledge.search_settings").fetchone()[0] == 0
    assert stranger.id  # the other domain's admin made the foreign article
    # The reviewer-is-not-an-author rule holds in the database too.
    with database.owner_engine.begin() as conn, pytest.raises(Exception, match="chk_article_version_reviewer"):
        from sqlalchemy import text

        conn.execute(text("UPDATE gaas_knowledge.article_versions SET reviewed_by = author_id, "
                          "contributors = ARRAY[author_id] WHERE article_id = :id"), {"id": mine_id})


def test_full_text_uses_its_index_under_row_level_security(database, s):
    """ts_match_vq is marked leakproof, so the GIN index serves @@ for the application role."""
    with database.psycopg_app() as conn:
        conn.execute("SELECT set_config('gaas.user_id', %s, true), set_config('gaas.domains', %s, true)",
                     (str(s["agent"].id), s["domain"]))
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT id FROM gaas_knowledge.articles WHERE search_vector @@ "
            "websearch_to_tsquery('english', 'vpn')").fetchall())
        assert "idx_articles_search" in plan, plan
