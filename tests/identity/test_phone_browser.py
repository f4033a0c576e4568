"""Choose your institution, sign in there, borrow: in real headless Chromium.

NORTH and SOUTH run as ``circnode run`` processes and SOUTH's demo IdP as
``python -m node.demo.idp``, built by ``make_network(idps=True)`` as ``circnode
demo`` builds them.  One browser context is the desk computer, another the
patron's phone.  The last tests check the phone link's refusals in-process.
"""
import datetime
import re
import subprocess
import sys

import pytest

from node.demo.network import DEMO_PASSWORD
from node.demo.idp import DEMO_PATRON_PASSWORD
from tests.helpers.browser import needs_chromium
from tests.helpers.nodes import north_and_south_with_idp

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with north_and_south_with_idp(tmp_path_factory.mktemp("phone")) as started:
        yield started


def new_page(chromium, **options):
    context = chromium.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


def staff_sign_in(page, base):
    page.goto(base + "/checkout")
    page.fill("#name", "desk")
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.press("#password", "Enter")
    assert page.url == base + "/checkout"


def idp_sign_in(page, user, password=DEMO_PATRON_PASSWORD):
    """On the IdP's form: sign in and wait until the auto-posted answer brought us back."""
    assert "/idp/sso/redirect" in page.url
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#sign-in")


def choose(page, text, code):
    """Type into the institution search; only matching institutions stay visible."""
    page.fill("#institution-search", text)
    return page.locator(f'#institution-list li[data-code="{code}"]')


def banner(page):
    return re.sub(r"\s+", " ", page.locator(".banner").first.inner_text()).strip()


@pytest.mark.browser
@needs_chromium
def test_choose_south_sign_in_at_the_desk_borrow_and_see_the_loan_on_south_account(net, chromium):
    desk = new_page(chromium, viewport={"width": 1100, "height": 850})
    north = net.north.url
    staff_sign_in(desk, north)
    south_row = choose(desk, "south", "SOUTH")
    assert south_row.is_visible()
    assert not desk.locator('#institution-list li[data-code="NORTH"]').is_visible()
    south_row.locator("a.sign-in-here").click()
    desk.wait_for_url("**/idp/sso/redirect**")
    idp_sign_in(desk, "south-1")
    desk.wait_for_url(north + "/checkout/scan")
    assert "Checkout for South Patron 1" in desk.inner_text("h1")
    assert "signed in at South College" in banner(desk)
    assert desk.locator("#visit-offline").count() == 0  # SOUTH answered the standing check

    with desk.expect_navigation():
        desk.fill("#item_barcode", "N00001")
        desk.press("#item_barcode", "Enter")
    assert banner(desk).startswith("N00001 checked out: North sample book 1")
    me = desk.evaluate("fetch('/api/v1/me').then(r => r.json())")
    assert (me["institution"], me["id"]) == ("SOUTH", "south-1")
    with desk.expect_navigation():
        desk.click("text=Done: next patron")
    assert desk.evaluate("fetch('/api/v1/me').then(r => r.status)") == 401  # the next patron starts clean

    sync = subprocess.run([sys.executable, "-m", "node.cli", "--config", net.north.config, "sync"],
                          capture_output=True, text=True, timeout=60)
    assert sync.returncode == 0, sync.stderr

    home = new_page(chromium, viewport={"width": 1000, "height": 900})
    home.goto(net.south.url + "/patron/account")
    home.click("#account-sign-in")
    home.wait_for_url("**/idp/sso/redirect**")
    idp_sign_in(home, "south-1")
    home.wait_for_url(net.south.url + "/patron/account")
    row = home.locator('#account-loans tr[data-barcode="N00001"]')
    assert row.count() == 1 and "North University" in row.inner_text()
    assert home.locator("#pass-qr svg").count() == 1
    pass_text = home.input_value("#pass-text")
    assert pass_text.startswith("CNP1.")

    # The pass, scanned at NORTH's desk: verified offline, the visit starts without the home node.
    desk.fill("#network_pass", pass_text)
    with desk.expect_navigation():
        desk.press("#network_pass", "Enter")
    assert desk.url == north + "/checkout/scan"
    assert "Checkout for South Patron 1" in desk.inner_text("h1")
    assert "network pass" in banner(desk)
    with desk.expect_navigation():
        desk.fill("#item_barcode", "N00002")
        desk.press("#item_barcode", "Enter")
    assert "N00002 checked out" in banner(desk) and "provisional" in banner(desk)
    desk.context.close()
    home.context.close()


@pytest.mark.browser
@needs_chromium
def test_patron_signs_in_on_their_phone_and_the_desk_continues_by_itself(net, chromium):
    desk = new_page(chromium, viewport={"width": 1100, "height": 850})
    staff_sign_in(desk, net.north.url)
    choose(desk, "College", "SOUTH").locator("button.sign-in-phone").click()
    desk.wait_for_url(net.north.url + "/patron/phone/wait")
    assert desk.locator("#phone-qr svg").count() == 1
    link = desk.get_attribute("#phone-link", "href")
    assert re.match(re.escape(net.north.url) + r"/p/[A-Za-z0-9_-]{20,}$", link)

    phone = new_page(chromium, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone.goto(link)
    phone.wait_for_url("**/idp/sso/redirect**")
    idp_sign_in(phone, "south-2")
    phone.wait_for_selector("#phone-done")
    assert "South Patron 2" in phone.inner_text("#phone-done")

    desk.wait_for_url(net.north.url + "/checkout/scan")  # no click at the desk: it polled
    assert "Checkout for South Patron 2" in desk.inner_text("h1")

    phone.goto(link)  # the link is single-use
    assert phone.inner_text("#refusal-code") == "link_used"
    assert "used already" in phone.inner_text("#refusal")
    desk.context.close()
    phone.context.close()


# --- the link's refusals, in-process with a shifted "now" --------------------

def test_expired_used_and_unknown_phone_links_get_a_clear_page(app, client, node_config):
    from node.identity import phone_link
    now = datetime.datetime.now(UTC)
    _, expired = phone_link.create(node_config, "SOUTH", now - datetime.timedelta(minutes=10))
    answer = client.get(f"/p/{expired}")
    assert answer.status_code == 410 and b'id="refusal-code">link_expired<' in answer.data
    assert b"has expired" in answer.data
    link, used = phone_link.create(node_config, "SOUTH", now)
    phone_link.open_link(used, now)
    answer = client.get(f"/p/{used}")
    assert answer.status_code == 410 and b'id="refusal-code">link_used<' in answer.data
    answer = client.get("/p/not-a-link")
    assert answer.status_code == 404 and b'id="refusal-code">link_unknown<' in answer.data
    assert phone_link.status(link.id, now) == "opened"
    assert phone_link.status(link.id, now + datetime.timedelta(hours=1)) == "expired"
