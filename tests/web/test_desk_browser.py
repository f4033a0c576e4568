"""The desk in a real headless Chromium against real node processes on loopback.

Scans are typed into the focused field and ended with Enter, as a barcode
scanner does: no test clicks a submit button on a scan form, so autofocus and
Enter-submits are what is under test.
"""
import re

import pytest

from node.demo.network import DEMO_PASSWORD
from tests.helpers.browser import needs_chromium

pytestmark = [pytest.mark.browser, needs_chromium]


@pytest.fixture
def page(chromium):  # this module's smaller screen, instead of tests/web/conftest.py's 1366x768
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def focused_id(page):
    """The focused element's id once the page has rendered: Chromium runs autofocus at the first
    rendering, which with the stylesheet a file (the CSP allows no inline style) may be a frame after load."""
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    return page.evaluate("document.activeElement && document.activeElement.id")


def scan_into_focus(page, text):
    """Type TEXT into whatever field has focus and press Enter, waiting for the next page."""
    with page.expect_navigation():
        page.keyboard.type(text)
        page.keyboard.press("Enter")


def banner(page):
    return re.sub(r"\s+", " ", page.locator(".banner").first.inner_text()).strip()


def sign_in(page, base):
    page.goto(base + "/checkout")
    assert "/login?next=" in page.url
    assert focused_id(page) == "name"
    page.keyboard.type("desk")
    page.keyboard.press("Tab")
    scan_into_focus(page, DEMO_PASSWORD)
    assert page.url == base + "/checkout"


def start_visit(page, institution, patron_id):
    page.select_option("#institution", institution)
    page.focus("#patron_id")
    scan_into_focus(page, patron_id)
    assert page.url.endswith("/checkout/scan")
    assert focused_id(page) == "item_barcode"


def loan_row(page, barcode):
    return page.locator(f'table.loans tr[data-barcode="{barcode}"]')


def test_desk_scan_loop_return_loans_and_logout(network, page):
    net = network()
    net.start("NORTH")
    base = net.url("NORTH")
    sign_in(page, base)
    assert focused_id(page) == "patron_id"  # autofocus: the scanner can start right away
    start_visit(page, "NORTH", "north-1")
    assert "Checkout for North Patron 1" in page.inner_text("h1")

    scan_into_focus(page, "N00001")
    assert page.locator(".banner.success").count() == 1
    assert banner(page).startswith("N00001 checked out: North sample book 1 — due ")
    assert focused_id(page) == "item_barcode"
    scan_into_focus(page, "N00002")
    assert banner(page).startswith("N00002 checked out: North sample book 2")
    assert page.locator("#visit-loans tr").count() == 3  # header + two loans
    page.screenshot(path="/tmp/desk-scan.png", full_page=True)

    scan_into_focus(page, "N00001")
    assert page.locator(".banner.error").count() == 1
    assert banner(page) == "N00001: Item N00001 is already on loan."
    assert focused_id(page) == "item_barcode"

    page.click("header >> text=Return")
    assert focused_id(page) == "item_barcode"
    scan_into_focus(page, "N00001")
    assert banner(page) == "N00001 returned: North sample book 1. Shelve it."
    assert page.locator(".banner.success").count() == 1

    page.click("header >> text=Loans")
    assert loan_row(page, "N00002").count() == 1
    assert loan_row(page, "N00001").count() == 0
    assert "North Patron 1" not in page.content()  # loans list shows ids, not names
    assert "NORTH · north-1" in loan_row(page, "N00002").inner_text()

    with page.expect_navigation():
        page.click("header >> text=Sign out")
    assert page.url == base + "/login"
    assert banner(page) == "Signed out."
    page.goto(base + "/loans")
    assert "/login?next=" in page.url
    assert page.locator("table.loans").count() == 0


def test_visiting_patron_online_then_home_node_down_is_provisional(network, page):
    net = network()
    net.start_all()
    base = net.url("NORTH")
    sign_in(page, base)
    start_visit(page, "SOUTH", "south-1")
    assert "South Patron 1" in page.inner_text("h1")  # the name came from SOUTH's standing answer
    assert page.locator(".banner").count() == 0
    scan_into_focus(page, "N00003")
    assert page.locator(".banner.success").count() == 1
    assert "provisional" not in banner(page)

    net.stop("SOUTH")
    with page.expect_navigation():
        page.click("text=Done: next patron")
    start_visit(page, "SOUTH", "south-2")  # not cached: NORTH must ask SOUTH, which is down
    assert page.locator(".banner.warning").count() == 1
    assert "South College cannot be reached" in banner(page)
    assert page.locator("#visit-offline").count() == 1
    scan_into_focus(page, "N00004")
    assert page.locator(".banner.success").count() == 1
    assert banner(page).endswith("(made offline, provisional)")

    page.click("header >> text=Loans")
    offline_row, online_row = loan_row(page, "N00004"), loan_row(page, "N00003")
    assert offline_row.locator(".tag.offline", has_text="offline").count() == 1
    assert offline_row.locator(".tag.offline", has_text="provisional").count() == 1
    assert online_row.locator(".tag").count() == 0
    assert "SOUTH · south-2" in offline_row.inner_text()
