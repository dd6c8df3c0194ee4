"""The web interface in a real browser: Debian's Chromium driven by Playwright, against `gaas`'s
own ASGI app served by uvicorn on loopback, on the demo data.

- The main journeys end to end: an agent reports an incident with a knowledge suggestion, assigns
  and resolves it; a change manager submits a change, sees its conflict and approves it; a service
  owner opens the service tree and a CI's impact graph; a user of another domain cannot reach the
  first domain's records by URL.
- axe-core (vendored in tests/ui/axe.min.js) on every main page: no serious or critical WCAG 2.1
  AA violation; no Content-Security-Policy violation in the console.
- A screenshot of every main page in docs/screenshots/.

Without a browser the tests are skipped, unless GAAS_BROWSER_REQUIRED=1 (CI), which makes a
missing browser a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from gaas import demo
from tests.support import StrictClient

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
AXE = (Path(__file__).parent / "ui" / "axe.min.js").read_text(encoding="utf-8")
PASSWORD = "gaas-demo-password"
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def chromium() -> str | None:
    for candidate in (os.environ.get("GAAS_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser",
                      shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


class Server:
    """The app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                   lifespan="off", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def loaded(database):
    demo.load_demo()
    return True


@pytest.fixture(scope="module")
def server(loaded, world):
    with Server(world.client.app) as running:
        yield running


@pytest.fixture(scope="module")
def api(loaded, world):
    """The API, to set up and look up what the journeys need (never to do what they show)."""
    client = StrictClient(world.client.app)

    def token(username: str) -> dict[str, str]:
        response = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    client.as_ = token
    return client


@pytest.fixture(scope="module")
def browser():
    path = chromium()
    if path is None:
        if os.environ.get("GAAS_BROWSER_REQUIRED") == "1":
            pytest.fail("GAAS_BROWSER_REQUIRED=1 but no Chromium: apt-get install chromium")
        pytest.skip("no Chromium installed (apt-get install chromium); CI requires it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


class Session:
    """One logged-in browser context; collects CSP violations and page errors as it goes."""

    def __init__(self, browser, server: Server, username: str | None) -> None:
        self.base = server.url
        self.context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        if username:
            self.login(username)

    def _console(self, message) -> None:
        """CSP violations and script errors count; a page answered with an error status (a 404
        page, a form with errors) is a resource 'failing to load' and does not."""
        text = message.text
        if "Content Security Policy" in text or (message.type == "error" and "Failed to load resource" not in text):
            self.problems.append(text)

    def login(self, username: str) -> None:
        page = self.page
        page.goto(self.base + "/login")
        page.get_by_label("E-mail or user name").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(self.base + "/")

    def go(self, path: str):
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def check(self, name: str) -> None:
        """axe-core finds no serious or critical WCAG 2.1 AA violation; the page raised no CSP
        violation or script error; a screenshot goes to docs/screenshots/."""
        page = self.page
        page.evaluate(AXE)
        result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_AA)
        bad = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
        assert not bad, f"{name}: accessibility violations:\n" + "\n".join(bad)
        assert not self.problems, f"{name}: browser reported {self.problems}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def admin(browser, server):
    session = Session(browser, server, "healthcare.domain_admin")
    yield session
    session.close()


def first_id(session: Session, path: str, pattern: str) -> str:
    session.go(path)
    return re.search(pattern, session.page.content()).group(1)


# ---- accessibility and screenshots of every main page ------------------------------------------------

def test_login_page_is_accessible_and_works_from_the_keyboard(browser, server):
    session = Session(browser, server, None)
    page = session.page
    try:
        session.go("/login")
        session.check("login")
        page.keyboard.press("Tab")  # the skip link comes first
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "f-username"
        page.keyboard.type("healthcare.auditor")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(session.base + "/")
        assert page.get_by_role("heading", name="Recent audit activity").is_visible()
    finally:
        session.close()


PAGES = [("home", "/"), ("services", "/services"), ("service-tree", "/services/tree?domain=healthcare"),
         ("costs", "/costs"), ("cost-entries", "/costs/entries"), ("cis", "/cis"), ("cmdb-health", "/cmdb/health"),
         ("ci-classes", "/cmdb/classes"), ("incidents", "/incidents"), ("incident-new", "/incidents/new"),
         ("problems", "/problems"), ("changes", "/changes"), ("change-calendar", "/changes/calendar"),
         ("change-calendar-week", "/changes/calendar?view=week"), ("approvals", "/approvals"), ("audit", "/audit"),
         ("administration", "/admin"), ("users", "/admin/users"), ("roles", "/admin/roles"),
         ("sla-policies", "/admin/sla"), ("priority-matrix", "/admin/matrix?domain=healthcare"),
         ("change-windows", "/admin/windows"), ("profile", "/profile"), ("articles", "/articles"),
         ("search", "/search?q=portal"), ("notifications", "/notifications"), ("workflows", "/admin/workflows"),
         ("workflow-new", "/admin/workflows/new"), ("webhooks", "/admin/webhooks"), ("domains", "/admin/domains"),
         ("change-new", "/changes/new"), ("service-new", "/services/new"), ("ci-new", "/cis/new"),
         ("cost-entry-new", "/costs/entries/new"), ("change-templates", "/admin/templates"),
         ("cmdb-import", "/cmdb/import"), ("emails", "/admin/emails"), ("problem-new", "/problems/new"),
         ("article-new", "/articles/new"), ("cost-entries-bulk", "/costs/entries/bulk"),
         ("search-language", "/admin/search-language?domain=healthcare")]


@pytest.mark.parametrize(("name", "path"), PAGES, ids=[p[0] for p in PAGES])
def test_main_page_is_accessible(admin, name, path):
    response = admin.go(path)
    assert response.status == 200
    admin.check(name)


RECORDS = [("service", "/services?q=Patient", r'href="/services/([0-9a-f-]{36})"'),
           ("ci", "/cis?q=hea-01-srv-1", r'href="/cis/([0-9a-f-]{36})"'),
           ("incident", "/incidents", r'href="/incidents/([0-9a-f-]{36})"'),
           ("problem", "/problems", r'href="/problems/([0-9a-f-]{36})"'),
           ("change", "/changes?q=Replace", r'href="/changes/([0-9a-f-]{36})"'),
           ("user", "/admin/users", r'href="/admin/users/([0-9a-f-]{36})"'),
           ("article", "/articles", r'href="/articles/([0-9a-f-]{36})"'),
           ("workflow", "/admin/workflows", r'href="/admin/workflows/([0-9a-f-]{36})"'),
           ("sla-policy", "/admin/sla", r'href="/admin/sla/([0-9a-f-]{36})"')]


@pytest.mark.parametrize(("name", "listing", "pattern"), RECORDS, ids=[r[0] for r in RECORDS])
def test_record_page_is_accessible(admin, name, listing, pattern):
    record = first_id(admin, listing, pattern)
    base = listing.split("?")[0]
    assert admin.go(f"{base}/{record}").status == 200
    admin.check(f"{name}-record")


ROLES = ["service_desk_agent", "change_manager", "service_owner", "finance_officer", "auditor"]


@pytest.mark.parametrize("role", ROLES)
def test_home_page_by_role(browser, server, role):
    """Each role's home page shows that role's work, and passes axe."""
    expected = {"service_desk_agent": "My queue", "change_manager": "Approvals waiting",
                "service_owner": "My services", "finance_officer": "PPT balance", "auditor": "Recent audit activity"}
    session = Session(browser, server, f"healthcare.{role}")
    try:
        assert session.page.get_by_role("heading", name=expected[role]).is_visible()
        session.check(f"home-{role.replace('_', '-')}")
    finally:
        session.close()


# ---- journeys ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vpn_article(api):
    """A published known-error article for the agent's suggestion: from a problem with a workaround."""
    headers = api.as_("healthcare.domain_admin")
    problem = api.post("/api/v1/problems", headers=headers, json={
        "domain": "healthcare", "short_description": "VPN tunnel drops every hour", "priority": "high",
        "workaround": "Reconnect the VPN client, then clear its cache"})
    assert problem.status_code == 201, problem.text
    article = api.post("/api/v1/articles/known-errors", headers=headers,
                       json={"problem_id": problem.json()["id"], "keywords": ["vpn", "tunnel"]})
    assert article.status_code == 201, article.text
    return article.json()


def test_agent_reports_an_incident_with_a_suggestion_assigns_and_resolves_it(browser, server, vpn_article):
    agent = Session(browser, server, "healthcare.service_desk_agent")
    page = agent.page
    try:
        assert page.get_by_role("heading", name="My queue").is_visible()
        agent.go("/incidents/new")
        page.get_by_label("Short description").press_sequentially("VPN tunnel drops", delay=20)
        suggestion = page.locator("#suggestions a", has_text=vpn_article["number"])
        suggestion.wait_for()
        page.get_by_label("Impact").select_option("high")
        page.get_by_label("Urgency").select_option("high")
        page.locator("#priority-live", has_text="Critical").wait_for()
        page.get_by_label("Service — search").fill("Patient Records")
        page.locator("#f-service_id option", has_text="Patient Records").first.wait_for(state="attached")
        agent.check("incident-form-with-suggestion")
        page.get_by_role("button", name="Report").click()
        page.wait_for_url(re.compile(r"/incidents/[0-9a-f-]{36}"))
        assert page.locator("#incident-status").inner_text() == "New"
        page.get_by_role("button", name="Assign to me").click()
        page.get_by_role("button", name="Move to In progress").click()
        page.locator("#incident-status", has_text="In progress").wait_for()
        page.get_by_role("button", name=f"Solved by {vpn_article['number']}").click()
        page.get_by_role("link", name=re.compile(vpn_article["number"])).first.wait_for()
        page.get_by_label("Resolution notes").first.fill("Reconnected the VPN client (known error workaround)")
        page.get_by_role("button", name="Move to Resolved").click()
        page.locator("#incident-status", has_text="Resolved").wait_for()
        assert "Activity" in page.content()
        agent.check("incident-resolved")
    finally:
        agent.close()


def test_change_manager_submits_a_change_sees_its_conflict_and_approves_it(browser, server, api):
    headers = api.as_("healthcare.domain_admin")
    existing = api.get("/api/v1/changes", params={"q": "Replace a failed disk", "domain": "healthcare"},
                       headers=headers).json()["items"][0]
    ci = api.get(f"/api/v1/cis/{existing['affected_cis'][0]}", headers=headers).json()
    start = datetime.fromisoformat(existing["planned_start"])
    end = datetime.fromisoformat(existing["planned_end"])
    manager = Session(browser, server, "healthcare.change_manager")
    page = manager.page
    try:
        manager.go("/changes/new")
        page.get_by_label("Short description").fill("Move the server to the new rack")
        page.get_by_label("Planned start").fill(start.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_label("Planned end").fill(end.strftime("%Y-%m-%dT%H:%M"))
        page.get_by_label("Add a CI — search").fill(ci["name"])
        page.locator("#f-affected_cis option", has_text=ci["number"]).wait_for(state="attached")
        page.get_by_label("Implementation plan").fill("Power down, move, power up")
        page.get_by_label("Rollback plan").fill("Move it back")
        page.get_by_label("Test plan").fill("Ping and health checks")
        page.get_by_role("button", name="Save as draft").click()
        page.wait_for_url(re.compile(r"/changes/[0-9a-f-]{36}"))
        page.get_by_role("button", name="Submit").click()
        page.locator("#change-status", has_text="Submitted").wait_for()
        conflicts = page.locator("#conflicts")
        assert existing["number"] in conflicts.inner_text()
        manager.check("change-with-conflict")
        page.get_by_role("button", name="Start review").click()
        page.locator("#change-status", has_text="Under review").wait_for()
        page.get_by_label("Comment").first.fill("Agreed with the disk replacement team: same window")
        page.get_by_role("button", name="Approve").click()
        page.locator("#change-status", has_text="Approved").wait_for()
        manager.go("/changes/calendar?view=week&date=" + start.date().isoformat())
        assert page.locator("a.chg.has-conflict").count() >= 1
        manager.check("change-calendar-conflict")
    finally:
        manager.close()


def test_service_owner_opens_the_tree_and_the_impact_graph_of_a_ci(browser, server):
    owner = Session(browser, server, "healthcare.service_owner")
    page = owner.page
    try:
        owner.go("/services/tree?domain=healthcare")
        business = page.locator("ul.tree > li > details").first
        technical = business.locator(":scope > ul > li > details").first
        technical.locator(":scope > summary").focus()
        page.keyboard.press("Enter")  # the keyboard opens a sub-tree
        assert technical.evaluate("d => d.open")
        assert page.locator("svg.costbar").count() > 10
        owner.check("service-tree-expanded")
        owner.go("/cis?q=hea-core-sw-1")
        page.locator("tr", has_text="hea-core-sw-1").get_by_role("link").first.click()
        page.get_by_role("link", name="Impact graph").click()
        page.get_by_role("heading", name="Business services reached").wait_for()
        node = page.locator("a.node-link", has=page.locator("rect.svc")).first
        node.click()
        page.locator("#why").wait_for()
        assert page.locator("path.edge.on").count() >= 2
        assert "supports business service" in page.locator("#why").inner_text()
        owner.check("impact-graph")
    finally:
        owner.close()


def test_a_user_of_another_domain_cannot_reach_the_records_by_url(browser, server, api):
    headers = api.as_("healthcare.domain_admin")
    incident = api.get("/api/v1/incidents", params={"domain": "healthcare", "limit": 1}, headers=headers).json()
    service = api.get("/api/v1/services", params={"domain": "healthcare", "limit": 1}, headers=headers).json()
    ci = api.get("/api/v1/cis", params={"domain": "healthcare", "limit": 1}, headers=headers).json()
    outsider = Session(browser, server, "education.domain_admin")
    try:
        for path in (f"/incidents/{incident['items'][0]['id']}", f"/services/{service['items'][0]['id']}",
                     f"/cis/{ci['items'][0]['id']}", f"/cis/{ci['items'][0]['id']}/impact"):
            response = outsider.go(path)
            assert response.status == 404, path
            assert outsider.page.get_by_role("heading", name="Not found").is_visible()
            assert incident["items"][0]["short_description"] not in outsider.page.content()
        outsider.check("not-found-other-domain")
    finally:
        outsider.close()


def address_has(page, text: str) -> None:
    """htmx pushes the filter into the address without a navigation: wait until it shows (our CSP
    forbids the string evaluation page.wait_for_function would use)."""
    for _ in range(200):
        if text in page.url:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"{text!r} never appeared in {page.url}")


def test_a_list_searches_as_you_type_sorts_pages_and_saves_its_filter(admin):
    page = admin.page
    admin.go("/incidents")
    first_rows = page.locator("#results tbody tr").count()
    assert first_rows == 25  # a full page, and a next one
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url(re.compile(r"cursor="))
    admin.go("/incidents")
    page.get_by_label("Search short descriptions").press_sequentially("VPN", delay=30)
    address_has(page, "q=VPN")  # the filter is in the address: bookmarkable, saveable
    page.locator("#results tbody tr", has_text="VPN").first.wait_for()
    assert page.locator("#results tbody tr").count() < first_rows
    page.get_by_label("Priority").select_option("critical")
    address_has(page, "priority=critical")
    export = page.get_by_role("link", name="Export CSV of this filter").get_attribute("href")
    assert "priority=critical" in export and "q=VPN" in export
    page.locator("summary", has_text="Saved filters").click()
    page.get_by_label("Save the current filter as").fill("Critical VPN")
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator("a", has_text="Critical VPN").wait_for(state="attached")  # back on the list, filter saved
    admin.go("/incidents")
    page.locator("summary", has_text="Saved filters").click()
    page.get_by_role("link", name="Critical VPN").click()
    page.wait_for_url(re.compile(r"priority=critical"))
    admin.go("/services?sort=name")
    page.get_by_role("link", name=re.compile("^Name")).click()
    page.wait_for_url(re.compile(r"sort=-name"))
    assert page.locator("th[aria-sort='descending']").count() == 1
    admin.check("list-filtered")
