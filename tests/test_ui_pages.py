"""The web interface over HTTP (no browser): login and session, CSRF, security headers, every main
page rendered for the demo data, inline validation, stale edits, domain isolation by URL."""

from __future__ import annotations

import re

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
              "/admin/webhooks/new"]


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
