"""The web interface over HTTP (no browser): login and session, CSRF, security headers, every main
page rendered for the demo data, inline validation, stale edits, domain isolation by URL."""

from __future__ import annotations

import re
import uuid

import pytest

from gaas import demo
from tests.support import StrictClient

DEMO_PASSWORD = "gaas-demo-password"


@pytest.fixture(scope="module")
def loaded(database):
    demo.load_demo()
    return True


@pytest.fixture(scope="module")
def app(loaded, world):
    return world.client.app


def login(app, username: str, password: str = DEMO_PASSWORD) -> StrictClient:
    client = StrictClient(app, base_url="http://testserver")
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"username": username, "password": password, "csrf": csrf,
                                           "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert "gaas_session" in response.cookies or client.cookies.get("gaas_session")
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture(scope="module")
def admin(app):
    return login(app, "healthcare.domain_admin")


def test_login_page_is_served_with_security_headers(app):
    client = StrictClient(app)
    response = client.get("/login")
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in response.text and " onclick=" not in response.text
    assert 'for="f-username"' in response.text and 'for="f-password"' in response.text


def test_pages_need_a_session(app):
    client = StrictClient(app)
    response = client.get("/services", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/services"


def test_wrong_password_is_refused_and_counted(app):
    client = StrictClient(app)
    page = client.get("/login")
    response = client.post("/login", data={"username": "education.auditor", "password": "nope nope nope",
                                           "csrf": csrf_of(page.text)})
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text


def test_login_without_the_form_token_is_refused(app):
    client = StrictClient(app)
    response = client.post("/login", data={"username": "education.auditor", "password": DEMO_PASSWORD,
                                           "csrf": "forged"})
    assert response.status_code == 403
    assert "gaas_session" not in client.cookies


def test_session_cookie_is_http_only_and_same_site(app):
    client = StrictClient(app)
    page = client.get("/login")
    response = client.post("/login", data={"username": "justice.auditor", "password": DEMO_PASSWORD,
                                           "csrf": csrf_of(page.text)}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "gaas_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # plain http in tests; https sets it


MAIN_PAGES = ["/", "/services", "/services/tree", "/services/new", "/costs", "/costs/entries", "/cis", "/cis/new",
              "/cmdb/health", "/cmdb/classes", "/cmdb/classes/new", "/profile", "/incidents", "/incidents/new",
              "/problems", "/problems/new", "/changes", "/changes/new", "/changes/calendar",
              "/changes/calendar?view=week", "/approvals", "/audit", "/admin", "/admin/users", "/admin/users/new",
              "/admin/roles", "/admin/roles/new", "/admin/domains", "/admin/domains/new", "/admin/sla",
              "/admin/sla/new", "/admin/matrix", "/admin/windows", "/admin/windows/new", "/articles", "/articles/new",
              "/search?q=portal", "/notifications", "/admin/workflows", "/admin/workflows/new", "/admin/webhooks",
              "/admin/webhooks/new", "/admin/templates", "/admin/templates/new", "/costs/entries/new", "/cmdb/import",
              "/admin/emails", "/admin/emails?status=failed", "/costs/entries/bulk",
              "/admin/search-language", "/admin/search-language?domain=healthcare"]


@pytest.mark.parametrize("url", MAIN_PAGES)
def test_main_pages_render(admin, url):
    response = admin.get(url)
    assert response.status_code == 200, response.text
    assert "<h1" in response.text


def test_service_page_and_tree_bars(admin):
    services = admin.get("/services?q=Patient")
    match = re.search(r'href="/services/([0-9a-f-]{36})"', services.text)
    assert match, services.text
    page = admin.get(f"/services/{match.group(1)}")
    assert page.status_code == 200
    assert 'class="costbar"' in page.text and "Activity" in page.text
    tree = admin.get("/services/tree?domain=healthcare")
    assert tree.text.count("<details") >= 4 and "c-people" in tree.text


def test_impact_graph_of_a_core_switch(admin):
    cis = admin.get("/cis?q=hea-core-sw-1")
    ci_id = re.search(r'href="/cis/([0-9a-f-]{36})"', cis.text).group(1)
    graph = admin.get(f"/cis/{ci_id}/impact")
    assert graph.status_code == 200
    assert "Business services reached" in graph.text and "<svg" in graph.text
    node = re.findall(r'focus=([0-9a-f-]{36})#why', graph.text)[-1]
    focused = admin.get(f"/cis/{ci_id}/impact?focus={node}")
    assert 'class="edge on"' in focused.text and "is affected" in focused.text


def test_forms_need_the_csrf_token(admin):
    response = admin.post("/profile", data={"name": "X"})
    assert response.status_code == 403


def test_profile_validation_is_inline(admin):
    page = admin.get("/profile")
    response = admin.post("/profile", data={"csrf": csrf_of(page.text), "name": "Ann", "timezone": "Mars/Base",
                                            "language": "en", "version": re.search(
                                                r'name="version" value="(\d+)"', page.text).group(1)})
    assert response.status_code == 422
    assert 'id="err-timezone"' in response.text and 'aria-invalid="true"' in response.text


def test_unknown_page_is_a_page_and_api_stays_json(admin):
    response = admin.get("/no/such/page")
    assert response.status_code == 404 and "text/html" in response.headers["content-type"]
    api = admin.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and "json" in api.headers["content-type"]


@pytest.mark.parametrize("kind", ["incidents", "problems", "changes", "cis", "services", "admin/users",
                                  "admin/roles", "admin/sla", "admin/windows", "admin/domains", "cmdb/classes",
                                  "articles", "admin/workflows"])
def test_record_pages_render(admin, kind):
    listing = admin.get(f"/{kind}")
    ids = re.findall(rf'href="/{kind}/([0-9a-f-]{{36}})"', listing.text)
    assert ids, f"no {kind} listed"
    for record_id in ids[:3]:
        page = admin.get(f"/{kind}/{record_id}")
        assert page.status_code == 200, page.text
        assert "<h1" in page.text


@pytest.mark.parametrize("kind", ["incidents", "problems", "changes", "cis", "services", "admin/users",
                                  "costs/entries"])
def test_csv_export_of_the_current_filter(admin, kind):
    response = admin.get(f"/{kind}/export.csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert len(response.text.splitlines()) > 1


def version_of(html: str) -> str:
    return re.search(r'name="version" value="(\d+)"', html).group(1)


def test_state_buttons_offer_only_the_allowed_transitions(admin):
    listing = admin.get("/services?status=active&type=business")
    service_id = re.search(r'href="/services/([0-9a-f-]{36})"', listing.text).group(1)
    page = admin.get(f"/services/{service_id}")
    offered = set(re.findall(r'name="status" value="(\w+)"', page.text))
    assert offered == {"deprecated"}  # active -> deprecated only (catalog.TRANSITIONS)


def test_service_form_shows_the_api_errors_next_to_the_fields(admin):
    page = admin.get("/services/new")
    response = admin.post("/services/new", data={"csrf": csrf_of(page.text), "domain": "healthcare", "name": "",
                                                 "type": "business", "status": "design", "sla_target": "120",
                                                 "owner_id": "not-a-uuid"})
    assert response.status_code == 422
    for field in ("name", "sla_target", "owner_id"):
        assert f'id="err-{field}"' in response.text, field
    assert 'role="alert"' in response.text


def test_a_stale_edit_shows_the_other_persons_change_instead_of_overwriting(app, admin):
    other = login(app, "healthcare.service_owner")
    listing = admin.get("/services?q=Appointment Booking Integration Hub")
    service_id = re.search(r'href="/services/([0-9a-f-]{36})"', listing.text).group(1)
    mine = admin.get(f"/services/{service_id}")
    theirs = other.get(f"/services/{service_id}")
    name = re.search(r'id="f-name" name="name" type="text" value="([^"]*)"', theirs.text).group(1)
    base = {"type": "technical", "cost_people": "1", "cost_process": "1", "cost_technology": "1",
            "owner_id": re.search(r'<select id="f-owner_id" name="owner_id"[^>]*>\s*<option value="">[^<]*</option>\s*'
                                  r'<option value="([0-9a-f-]{36})"', theirs.text).group(1)}
    saved = other.post(f"/services/{service_id}", data={**base, "csrf": csrf_of(theirs.text),
                                                        "name": name + " (theirs)", "version": version_of(theirs.text)},
                       follow_redirects=False)
    assert saved.status_code == 303, saved.text
    stale = admin.post(f"/services/{service_id}", data={**base, "csrf": csrf_of(mine.text), "name": name + " (mine)",
                                                         "version": version_of(mine.text)})
    assert stale.status_code == 409
    assert "Someone else changed this record" in stale.text
    assert name + " (theirs)" in stale.text and name + " (mine)" in stale.text
    assert "healthcare.service.owner@example.org" in stale.text
    again = admin.get(f"/services/{service_id}")
    assert name + " (theirs)" in again.text and name + " (mine)" not in again.text


def test_saved_filters_are_kept_per_user(admin):
    page = admin.get("/incidents?priority=high")
    saved = admin.post("/filters/save", data={"csrf": csrf_of(page.text), "list": "incidents", "name": "High ones",
                                              "query": "priority=high&cursor=abc"}, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"] == "/incidents?priority=high"
    listing = admin.get("/incidents")
    assert 'href="/incidents?priority=high">High ones</a>' in listing.text
    admin.post("/filters/delete", data={"csrf": csrf_of(listing.text), "list": "incidents", "name": "High ones"})
    assert "High ones" not in admin.get("/incidents").text


def test_search_as_you_type_returns_a_fragment(admin):
    response = admin.get("/services?q=Patien", headers={"HX-Request": "true", "HX-Target": "results"})
    assert response.status_code == 200 and "<html" not in response.text and "Patient Records" in response.text
    options = admin.get("/pick/services?field=service_id&_q_service_id=Patient")
    assert "<option" in options.text and "Patient Records" in options.text


def test_htmx_posts_carry_the_csrf_header_and_other_origins_are_refused(admin):
    page = admin.get("/notifications")
    token = csrf_of(page.text)
    ok = admin.post("/notifications/read-all", headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert ok.status_code == 204 and ok.headers["HX-Redirect"].startswith("/notifications")
    foreign = admin.post("/notifications/read-all", data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403


def test_workflow_steps_are_validated_by_the_engine_and_shown_per_step(admin):
    page = admin.get("/admin/workflows/new")
    response = admin.post("/admin/workflows/new", data={
        "csrf": csrf_of(page.text), "name": "Bad workflow", "domain": "healthcare", "trigger_type": "manual",
        "active": "on", "trigger_config": "{}", "s0_type": "approval", "s0_step": "1", "s0_name": "Approve",
        "s0_approver_role": "no_such_role", "s1_type": ""})
    assert response.status_code == 422, response.text
    assert 'id="err-s0_approver_role"' in response.text


def test_timestamps_follow_the_profile_time_zone(app):
    client = login(app, "justice.auditor")
    page = client.get("/profile")
    saved = client.post("/profile", data={"csrf": csrf_of(page.text), "name": "Justice Auditor",
                                          "language": "en", "timezone": "Asia/Tokyo",
                                          "version": version_of(page.text)}, follow_redirects=False)
    assert saved.status_code == 303
    audit = client.get("/audit")
    assert " JST" in audit.text and "Times in Asia/Tokyo" in audit.text


def test_logout_ends_the_session(app):
    client = login(app, "education.auditor")
    home = client.get("/")
    cookie = client.cookies.get("gaas_session")
    client.post("/logout", data={"csrf": csrf_of(home.text)})
    replay = StrictClient(app)
    replay.cookies.set("gaas_session", cookie)
    assert replay.get("/", follow_redirects=False).status_code == 303


def test_other_domain_records_are_not_found_by_url(app, admin):
    listing = admin.get("/incidents?domain=healthcare")
    incident_id = re.search(r'href="/incidents/([0-9a-f-]{36})"', listing.text).group(1)
    outsider = login(app, "education.domain_admin")
    response = outsider.get(f"/incidents/{incident_id}")
    assert response.status_code == 404 and "Not found" in response.text


def test_texts_go_through_the_catalogue(tmp_path, monkeypatch):
    from gaas.ui import i18n

    texts = i18n.extract()
    assert len(texts) > 300 and "Log in" in texts and "Impact graph" in texts
    (tmp_path / "fr.json").write_text('{"Log in": "Se connecter", "%(n)s open": "%(n)s ouverts"}')
    monkeypatch.setattr(i18n, "LOCALES", tmp_path)
    i18n.catalogue.cache_clear()
    try:
        t = i18n.Translator("fr-CA")
        assert t.language == "fr" and t("Log in") == "Se connecter" and t("Log out") == "Log out"
        assert t("%(n)s open", n=3) == "3 ouverts"
        assert i18n.available_languages() == ["en", "fr"]
    finally:
        i18n.catalogue.cache_clear()


def test_records_are_deleted_and_restored_with_their_version(admin):
    listing = admin.get("/problems")
    problem_id = re.search(r'href="/problems/([0-9a-f-]{36})"', listing.text).group(1)
    page = admin.get(f"/problems/{problem_id}")
    stale = admin.post(f"/problems/{problem_id}/delete", data={"csrf": csrf_of(page.text), "version": "999"})
    assert stale.status_code == 409
    deleted = admin.post(f"/problems/{problem_id}/delete", data={"csrf": csrf_of(page.text),
                                                                  "version": version_of(page.text)})
    assert deleted.status_code == 200 and "Deleted" in deleted.text and "Restore" in deleted.text
    restored = admin.post(f"/problems/{problem_id}/restore", data={"csrf": csrf_of(page.text)})
    assert restored.status_code == 200 and ">Delete</button>" in restored.text


def test_the_agents_queue_refreshes_as_a_fragment(app):
    agent = login(app, "healthcare.service_desk_agent")
    home = agent.get("/")
    assert 'hx-get="/home/queue" hx-trigger="every 30s"' in home.text
    fragment = agent.get("/home/queue", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text and "My queue" in fragment.text
    assert re.search(r'class="sla sla-(ok|warn|danger|breached)"', fragment.text)


def test_repeated_wrong_passwords_lock_the_account(app, world):
    person = world.user(world.domain(), "auditor")
    client = StrictClient(app)
    for _ in range(5):
        page = client.get("/login")
        client.post("/login", data={"username": person.email, "password": "wrong password!",
                                    "csrf": csrf_of(page.text)})
    page = client.get("/login")
    locked = client.post("/login", data={"username": person.email, "password": person.password,
                                         "csrf": csrf_of(page.text)})
    assert locked.status_code == 401 and "locked" in locked.text


def test_service_relationships_and_stakeholders_are_edited_on_the_service_page(admin):
    listing = admin.get("/services?q=Patient Records Integration Hub")
    source, target = re.findall(r'href="/services/([0-9a-f-]{36})"', admin.get("/services?type=technical").text)[:2]
    page = admin.get(f"/services/{source}")
    added = admin.post(f"/services/{source}/related/add-relationship", data={
        "csrf": csrf_of(page.text), "relationship_type": "depends_on", "target_service_id": target})
    assert added.status_code == 200 and "Remove relationship" in added.text
    duplicate = admin.post(f"/services/{source}/related/add-relationship", data={
        "csrf": csrf_of(page.text), "relationship_type": "depends_on", "target_service_id": target})
    assert duplicate.status_code == 409 and 'id="err-target_service_id"' in duplicate.text
    assert listing.status_code == 200


def test_cost_entries_are_recorded_and_corrected(admin):
    service = re.search(r'href="/services/([0-9a-f-]{36})"', admin.get("/services?type=business").text).group(1)
    page = admin.get(f"/costs/entries/new?service={service}")
    bad = admin.post("/costs/entries/new", data={"csrf": csrf_of(page.text), "service_id": service,
                                                 "category": "people", "amount": "-5", "currency": "XXQ",
                                                 "period_start": "2026-03-01", "period_end": "2026-02-01"})
    assert bad.status_code == 422
    for field in ("amount", "currency"):
        assert f'id="err-{field}"' in bad.text, field
    good = admin.post("/costs/entries/new", data={"csrf": csrf_of(page.text), "service_id": service,
                                                  "category": "people", "amount": "1250.50", "currency": "USD",
                                                  "period_start": "2026-03-01", "period_end": "2026-03-31"})
    assert good.status_code == 200 and "1250.50" in good.text


def test_problems_link_and_unlink_incidents(admin):
    problem = re.search(r'href="/problems/([0-9a-f-]{36})"', admin.get("/problems?domain=healthcare").text).group(1)
    listing = admin.get("/incidents?domain=healthcare&open=open")
    incident = re.findall(r'href="/incidents/([0-9a-f-]{36})"', listing.text)[-1]
    page = admin.get(f"/problems/{problem}")
    token = csrf_of(page.text)
    linked = admin.post(f"/problems/{problem}/incidents", data={"csrf": token, "incident_id": incident})
    assert linked.status_code == 200 and f'name="unlink" value="{incident}"' in linked.text
    unlinked = admin.post(f"/problems/{problem}/incidents", data={"csrf": token, "unlink": incident})
    assert unlinked.status_code == 200 and f'name="unlink" value="{incident}"' not in unlinked.text


def test_an_article_is_written_reviewed_by_another_person_and_published(app, admin):
    writer = login(app, "healthcare.service_desk_agent")
    form = writer.get("/articles/new")
    created = writer.post("/articles/new", data={"csrf": csrf_of(form.text), "domain": "healthcare",
                                                 "title": "Printer queue stuck", "audience": "everyone",
                                                 "keywords": "printer, queue", "body": "Restart the **spooler**."})
    assert created.status_code == 200 and "Send to review" in created.text
    article_id = re.search(r'action="/articles/([0-9a-f-]{36})/submit"', created.text).group(1)
    submitted = writer.post(f"/articles/{article_id}/submit", data={"csrf": csrf_of(created.text),
                                                                    "version": version_of(created.text)})
    assert submitted.status_code == 200, submitted.text
    review = admin.get(f"/articles/{article_id}")
    published = admin.post(f"/articles/{article_id}/approve", data={"csrf": csrf_of(review.text),
                                                                     "version": version_of(review.text),
                                                                     "comment": "Clear and correct"})
    assert published.status_code == 200
    assert 'id="article-status">Published' in published.text and "<strong>spooler</strong>" in published.text


def test_a_workflow_is_defined_step_by_step(admin):
    page = admin.get("/admin/workflows/new")
    created = admin.post("/admin/workflows/new", data={
        "csrf": csrf_of(page.text), "name": "Two-step review", "domain": "healthcare", "trigger_type": "manual",
        "active": "on", "trigger_config": "{}",
        "s0_type": "approval", "s0_step": "1", "s0_name": "Manager", "s0_approver_role": "change_manager",
        "s0_approvals_required": "1", "s0_sla_hours": "8",
        "s1_type": "notification", "s1_step": "2", "s1_name": "Tell the requester", "s1_subject": "Approved",
        "s1_body": "Your request was approved", "s1_recipients": "requester", "s2_type": ""})
    assert created.status_code == 200, created.text
    assert "Two-step review" in created.text and 'value="change_manager"' in created.text
    assert 'value="Tell the requester"' in created.text


def test_a_new_webhook_shows_its_secret_once(admin):
    page = admin.get("/admin/webhooks/new")
    created = admin.post("/admin/webhooks/new", data={"csrf": csrf_of(page.text), "name": "Ticket bridge",
                                                      "url": "https://hooks.example.org/gaas", "domain": "healthcare",
                                                      "event_types": "incident.*, change.approved", "active": "on"})
    assert created.status_code == 201 and "shown this once" in created.text and "Delivery log" in created.text
    hook_id = re.search(r'action="/admin/webhooks/([0-9a-f-]{36})"', created.text).group(1)
    again = admin.get(f"/admin/webhooks/{hook_id}")
    assert "shown this once" not in again.text and "change.approved" in again.text


def test_a_change_shows_its_approval_workflow(admin):
    listing = admin.get("/changes?q=Emergency security patch")
    change_id = re.search(r'href="/changes/([0-9a-f-]{36})"', listing.text).group(1)
    page = admin.get(f"/changes/{change_id}")
    assert 'id="h-workflows"' in page.text and "Approval" in page.text


@pytest.mark.parametrize("target", ["//evil.example/", "/\t/evil.example", "https://evil.example/", "/\\evil"])
def test_login_never_redirects_off_site(app, target):
    client = StrictClient(app)
    page = client.get("/login")
    response = client.post("/login", data={"username": "justice.auditor", "password": DEMO_PASSWORD,
                                           "csrf": csrf_of(page.text), "next": target}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_cookies_are_secure_over_https(app):
    client = StrictClient(app, base_url="https://testserver")
    page = client.get("/login")
    response = client.post("/login", data={"username": "justice.auditor", "password": DEMO_PASSWORD,
                                           "csrf": csrf_of(page.text)}, follow_redirects=False)
    assert "Secure" in response.headers["set-cookie"]


def test_administered_records_are_deleted_and_restored(admin):
    page = admin.get("/admin/templates/new")
    created = admin.post("/admin/templates/new", data={
        "csrf": csrf_of(page.text), "domain": "healthcare", "name": "Rotate a certificate",
        "short_description": "Rotate the portal's TLS certificate", "risk": "low", "active": "on",
        "implementation_plan": "Install the new certificate", "rollback_plan": "Reinstall the old one",
        "test_plan": "Check the chain"})
    assert created.status_code == 200 and "Rotate a certificate" in created.text, created.text
    template_id = re.search(r'action="/admin/templates/([0-9a-f-]{36})"', created.text).group(1)
    deleted = admin.post(f"/admin/templates/{template_id}/delete", data={"csrf": csrf_of(created.text),
                                                                          "version": version_of(created.text)})
    assert deleted.status_code == 200 and ">Restore</button>" in deleted.text
    restored = admin.post(f"/admin/templates/{template_id}/restore", data={"csrf": csrf_of(created.text)})
    assert restored.status_code == 200 and ">Delete</button>" in restored.text
    assert "Rotate a certificate" in admin.get("/changes/new").text  # offered to standard changes


def test_discovery_import_from_the_cmdb_pages(app):
    cmdb_admin = login(app, "healthcare.cmdb_admin")
    page = cmdb_admin.get("/cmdb/import")
    content = (b"ci_class,name,environment,attr.hostname,attr.serial_number\n"
               b"server,ui-imported-1,production,ui-imported-1,UI-SN1\n"
               b"server,ui-imported-2,nowhere,ui-imported-2,UI-SN2\n")
    data = {"csrf": csrf_of(page.text), "source": "ui-scan", "domain": "healthcare"}
    refused = cmdb_admin.post("/cmdb/import", data=data, files={"file": ("scan.csv", content, "text/csv")})
    assert refused.status_code == 200 and "nothing written" in refused.text and "environment" in refused.text
    assert "ui-imported-1" not in cmdb_admin.get("/cis?q=ui-imported").text
    kept = cmdb_admin.post("/cmdb/import", data={**data, "partial": "on"},
                           files={"file": ("scan.csv", content, "text/csv")})
    assert kept.status_code == 200 and "written" in kept.text
    assert "ui-imported-1" in cmdb_admin.get("/cis?q=ui-imported-1").text


def test_readers_give_feedback_on_published_articles(app):
    reader = login(app, "healthcare.service_owner")
    listing = reader.get("/articles?status=published")
    article_id = re.search(r'href="/articles/([0-9a-f-]{36})"', listing.text).group(1)
    page = reader.get(f"/articles/{article_id}")
    assert "Was this helpful?" in page.text and "Versions" in page.text
    thanks = reader.post(f"/articles/{article_id}/feedback", data={"csrf": csrf_of(page.text), "helpful": "yes"})
    assert thanks.status_code == 200 and "Thank you for your feedback." in thanks.text


def test_a_read_only_role_sees_records_without_forms_and_cannot_post(app):
    auditor = login(app, "healthcare.auditor")
    listing = auditor.get("/services?domain=healthcare")
    service_id = re.search(r'href="/services/([0-9a-f-]{36})"', listing.text).group(1)
    page = auditor.get(f"/services/{service_id}")
    assert page.status_code == 200 and 'id="f-name"' not in page.text and 'name="status"' not in page.text
    refused = auditor.post(f"/services/{service_id}", data={"csrf": csrf_of(page.text), "name": "Renamed",
                                                             "version": "1", "owner_id": str(uuid.uuid4())})
    assert refused.status_code in (403, 409, 422)  # refused, whichever check speaks first
    assert "Renamed" not in auditor.get(f"/services/{service_id}").text


def test_a_user_without_roles_gets_a_plain_home_and_refusals(app, world):
    nobody = world.user(world.domain())
    client = StrictClient(app)
    page = client.get("/login")
    client.post("/login", data={"username": nobody.email, "password": nobody.password, "csrf": csrf_of(page.text)})
    home = client.get("/")
    assert home.status_code == 200 and "Use the menu" in home.text and 'href="/services"' not in home.text
    assert client.get("/services").status_code == 403


def test_many_cost_entries_from_a_csv_all_or_nothing(admin):
    export = admin.get("/services/export.csv?type=business")
    service_id = export.text.splitlines()[1].split(",")[0]
    page = admin.get("/costs/entries/bulk")
    header = "service_id,category,amount,currency,period_start,period_end,description\n"
    bad = (header + f"{service_id},people,100,USD,2026-01-01,2026-01-31,ok\n"
           f"{service_id},people,-3,USD,2026-01-01,2026-01-31,x\n")
    refused = admin.post("/costs/entries/bulk", data={"csrf": csrf_of(page.text)},
                         files={"file": ("costs.csv", bad.encode(), "text/csv")})
    assert refused.status_code == 422 and "Nothing was written" in refused.text
    assert re.search(r"<th scope=\"row\">3</th><td>amount</td>", refused.text)
    good = (header + f"{service_id},people,100,USD,2026-01-01,2026-01-31,a\n"
            f"{service_id},process,50.5,EUR,2026-01-01,2026-01-31,b\n")
    accepted = admin.post("/costs/entries/bulk", data={"csrf": csrf_of(page.text)},
                          files={"file": ("costs.csv", good.encode(), "text/csv")})
    assert accepted.status_code == 200 and "2 cost entries recorded." in accepted.text


def test_a_domains_search_language_is_validated_and_set(app):
    admin = login(app, "healthcare.domain_admin")  # every permission but domain.manage: search.manage too
    page = admin.get("/admin/search-language?domain=healthcare")
    bad = admin.post("/admin/search-language", data={"csrf": csrf_of(page.text), "domain": "healthcare",
                                                     "language": "klingon"})
    assert bad.status_code == 422 and 'id="err-language"' in bad.text
    good = admin.post("/admin/search-language", data={"csrf": csrf_of(page.text), "domain": "healthcare",
                                                      "language": "simple"})
    assert good.status_code == 200 and "<strong>simple</strong>" in good.text
