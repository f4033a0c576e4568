"""Security headers on every answer, and a policy the pages themselves keep.

In-process: the headers on the desk, the JSON and peer APIs, static files and
error pages; HSTS only for an https ``base_url``.  In a real headless
Chromium against real node and IdP processes: every desk page, the patron
pages and the SAML round trips load with no Content-Security-Policy violation
reported, neither as a ``securitypolicyviolation`` event nor on the console.
"""
import datetime
import os

import pytest
import requests

from node.domain.accounts import add_staff
from node.demo.network import DEMO_PASSWORD
from node.demo.idp import DEMO_PATRON_PASSWORD
from tests.helpers.browser import needs_chromium
from tests.helpers.config import write_config
from tests.helpers.nodes import north_and_south_with_idp
from tests.helpers.desk import PASSWORD, post_form

UTC = datetime.timezone.utc


def assert_security_headers(response, hsts=False):
    headers = response.headers
    policy = headers.get("Content-Security-Policy", "")
    directives = dict((part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";") if part.strip())
    assert directives.get("frame-ancestors") == "'none'", policy
    assert directives.get("script-src") == "'self'", policy  # no 'unsafe-inline', no nonce needed
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, policy
    assert directives.get("object-src") == "'none'" and directives.get("base-uri") == "'none'", policy
    assert directives.get("form-action", "").startswith("'self'"), policy
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "same-origin"
    assert headers.get("X-Frame-Options") == "DENY"
    if hsts:
        assert headers.get("Strict-Transport-Security", "").startswith("max-age=31536000")
    else:
        assert "Strict-Transport-Security" not in headers


# --- in-process --------------------------------------------------------------

def test_desk_api_peer_api_and_error_answers_carry_the_headers(app, client, seeded, token):
    answers = {
        "login": client.get("/login"),
        "checkout, signed out": client.get("/checkout"),
        "healthz": client.get("/healthz"),
        "api": client.get("/api/v1/loans", headers={"Authorization": f"Bearer {token}"}),
        "api without token": client.get("/api/v1/loans"),
        "peer api unsigned": client.post("/api/v1/sync/events", json={"events": []}),
        "peer standing unsigned": client.get("/api/v1/patrons/n-100/standing"),
        "404 page": client.get("/no-such-page"),
        "404 json": client.get("/api/v1/no-such-thing"),
        "405": client.delete("/login"),
        "static": client.get("/static/desk.css"),
        "patron account": client.get("/patron/account"),
        "privacy": client.get("/privacy"),
    }
    assert answers["login"].status_code == 200 and answers["checkout, signed out"].status_code == 302
    assert answers["api"].status_code == 200 and answers["api without token"].status_code == 401
    assert answers["peer api unsigned"].status_code in (400, 401)
    assert answers["peer standing unsigned"].status_code in (400, 401)
    assert answers["404 page"].status_code == 404 and answers["404 json"].status_code == 404
    assert answers["405"].status_code == 405
    for name, response in answers.items():
        try:
            assert_security_headers(response)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def test_signed_in_desk_pages_carry_the_headers(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    assert post_form(client, "/login", {"name": "desk1", "password": PASSWORD}).status_code == 302
    for path in ("/checkout", "/return", "/loans", "/items", "/patrons", "/billing", "/billing/ledger"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_security_headers(response)


def test_a_500_page_carries_the_headers(app, client):
    def crash():
        raise RuntimeError("a bug")
    app.add_url_rule("/crash-for-test", "crash_for_test", crash)
    app.add_url_rule("/api/v1/crash-for-test", "api_crash_for_test", crash)
    for path in ("/crash-for-test", "/api/v1/crash-for-test"):
        response = client.get(path)
        assert response.status_code == 500
        assert_security_headers(response)


def test_no_answer_allows_inline_script_or_style(app, client, seeded):
    """The templates hold no <script> body, no on*= handler and no style=: all are files under /static/."""
    import re
    from node.domain.notices import templates_folder
    folder = templates_folder()
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".html"):
            continue  # templates/notices/ are e-mails, where inline style is all a mail reader takes
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            text = handle.read()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), name
        assert not re.search(r"\son[a-z]+\s*=", text), name
        assert not re.search(r"\sstyle\s*=|<style", text), name


def test_hsts_only_when_base_url_is_https(tmp_path):
    from node.web.app import create_app
    from node.config import load
    from node.store.db import database
    from node.keys import ensure_key
    path = write_config(str(tmp_path / "https"))
    with open(path) as handle:
        text = handle.read().replace("http://127.0.0.1:8080", "https://desk.north.example")
    with open(path, "w") as handle:
        handle.write(text)
    cfg = load(path)
    ensure_key(cfg)
    app = create_app(cfg, {"TESTING": True})
    try:
        client = app.test_client()
        for path in ("/login", "/healthz", "/no-such-page"):
            assert_security_headers(client.get(path, base_url="https://desk.north.example"), hsts=True)
    finally:
        database.close()


# --- real processes, real Chromium -------------------------------------------

@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with north_and_south_with_idp(tmp_path_factory.mktemp("csp")) as started:
        yield started


class Watched:
    """A browser context whose every page reports CSP violations into one list."""

    def __init__(self, chromium, **options):
        self.context = chromium.new_context(**options)
        self.violations = []
        self.context.expose_binding("__cspViolation", lambda source, text: self.violations.append(text))
        self.context.add_init_script(
            "document.addEventListener('securitypolicyviolation', e => window.__cspViolation("
            "`${location.pathname}: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`));")
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("console", self._console)

    def _console(self, message):
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.violations.append(f"console: {message.text}")

    def visit(self, url):
        response = self.page.goto(url)
        self.settle()
        return response

    def settle(self):
        """Let the page's scripts and styles run, so a violation has been reported."""
        self.page.wait_for_load_state("load")
        self.page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")

    def close(self):
        self.context.close()


def staff_sign_in(watched, base, name="admin"):
    page = watched.page
    watched.visit(base + "/checkout")
    page.fill("#name", name)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.press("#password", "Enter")
    assert page.url == base + "/checkout"
    watched.settle()


def idp_sign_in(watched, user):
    page = watched.page
    page.wait_for_url("**/idp/sso/redirect**")
    watched.settle()
    page.fill("#username", user)
    page.fill("#password", DEMO_PATRON_PASSWORD)
    page.click("#sign-in")


@pytest.mark.browser
@needs_chromium
def test_the_policy_sees_an_inline_script_so_the_watch_below_is_real(net, chromium):
    watched = Watched(chromium)
    try:
        watched.visit(net.north.url + "/login")
        assert watched.violations == []
        watched.page.evaluate("""() => { const s = document.createElement('script');
                                         s.textContent = 'window.ran = 1'; document.body.append(s); }""")
        watched.settle()
        assert watched.page.evaluate("window.ran") is None  # blocked
        assert any("script-src" in text for text in watched.violations), watched.violations
    finally:
        watched.close()


@pytest.mark.browser
@needs_chromium
def test_every_desk_page_loads_without_a_csp_violation(net, chromium):
    north = net.north.url
    watched = Watched(chromium, viewport={"width": 1100, "height": 850})
    page = watched.page
    try:
        staff_sign_in(watched, north)
        page.fill("#institution-search", "south")  # the filter script runs under the policy
        assert not page.locator('#institution-list li[data-code="NORTH"]').is_visible()
        page.select_option("#institution", "NORTH")
        page.fill("#patron_id", "north-1")
        with page.expect_navigation():
            page.press("#patron_id", "Enter")
        assert page.url == north + "/checkout/scan"
        page.fill("#item_barcode", "N00001")
        with page.expect_navigation():
            page.press("#item_barcode", "Enter")
        assert "checked out" in page.inner_text(".banner")
        receipt = page.get_attribute("#print-receipt", "href").removesuffix("?print=1")  # a slip, and its script
        visited = {receipt: watched.visit(north + receipt).status}
        for path in ("/checkout/scan", "/return", "/loans", "/items?barcode=N00001", "/patrons",
                     "/patrons/NORTH/north-1", "/admin/queue", "/admin/standing-lookups", "/billing",
                     "/billing/patrons/north-1", "/billing/ledger", "/billing/bursar", "/privacy",
                     "/patron/account", "/no-such-page"):
            visited[path] = watched.visit(north + path).status
        assert visited["/no-such-page"] == 404
        assert all(status == 200 for path, status in visited.items() if path != "/no-such-page"), visited
        assert [page.locator("link[rel=stylesheet]").nth(n).get_attribute("href") for n in range(2)] == [
            "/static/desk.css", "/static/print.css"]  # the screen, then the paper (slips)
        assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"
        assert watched.violations == []
    finally:
        watched.close()


@pytest.mark.browser
@needs_chromium
def test_saml_sign_ins_and_the_phone_wait_page_run_under_the_policy(net, chromium):
    """The IdP's answer posts cross-site (its form-action names the library); the phone page polls."""
    north, south = net.north.url, net.south.url
    desk = Watched(chromium, viewport={"width": 1100, "height": 850})
    phone = Watched(chromium, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    home = Watched(chromium)
    try:
        staff_sign_in(desk, north, name="desk")
        desk.page.locator('#institution-list li[data-code="SOUTH"] a.sign-in-here').click()
        idp_sign_in(desk, "south-1")
        desk.page.wait_for_url(north + "/checkout/scan")
        desk.settle()
        assert "Checkout for South Patron 1" in desk.page.inner_text("h1")
        with desk.page.expect_navigation():
            desk.page.click("text=Done: next patron")

        desk.page.locator('#institution-list li[data-code="SOUTH"] button.sign-in-phone').click()
        desk.page.wait_for_url(north + "/patron/phone/wait")
        desk.settle()
        phone.visit(desk.page.get_attribute("#phone-link", "href"))
        idp_sign_in(phone, "south-2")
        phone.page.wait_for_selector("#phone-done")
        phone.settle()
        desk.page.wait_for_url(north + "/checkout/scan")  # the polling script saw the sign-in
        desk.settle()

        home.visit(south + "/patron/account")
        home.page.click("#account-sign-in")
        idp_sign_in(home, "south-3")
        home.page.wait_for_url(south + "/patron/account")
        home.settle()
        assert home.page.locator("#pass-qr svg").count() == 1
        for watched in (desk, phone, home):
            assert watched.violations == []
    finally:
        for watched in (desk, phone, home):
            watched.close()


@pytest.mark.browser
@needs_chromium
def test_a_signed_out_desk_asking_for_a_patron_sign_in_signs_in_then_starts_it_from_the_checkout(net, chromium):
    """Not POST /login on to the IdP in one go: form-action 'self' blocks a chain that ends off-site."""
    north = net.north.url
    watched = Watched(chromium)
    page = watched.page
    try:
        watched.visit(north + "/patron/login?institution=SOUTH&next=desk")
        assert "/login?next=" in page.url
        page.fill("#name", "desk")
        page.fill("#password", DEMO_PASSWORD)
        with page.expect_navigation():
            page.press("#password", "Enter")
        assert page.url == north + "/checkout"
        watched.settle()
        page.locator('#institution-list li[data-code="SOUTH"] a.sign-in-here').click()
        page.wait_for_url("**/idp/sso/redirect**")
        watched.settle()
        assert watched.violations == []
    finally:
        watched.close()


def test_idp_pages_carry_the_headers(net):
    idp = net.south.idp_url
    for path in ("/idp/metadata", "/idp/sso/redirect", "/no-such-page"):
        assert_security_headers(requests.get(idp + path, timeout=10))
