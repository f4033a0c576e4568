"""Slips printed to PDF by a real headless Chromium from real node processes, and read back (issue 14, point 5).

NORTH lends two items to a SOUTH patron (the due-date receipt), SOUTH takes one back (the transit slip
"Send to North University"), NORTH declares the other lost and SOUTH's cashier takes part of the fees
(the payment receipt).  Each slip is opened with the one click the desk offers, which must start the
browser's print dialog (window.print, counted by an init script: headless Chromium has no dialog),
and is then printed to PDF as the print stylesheet lays it out: on 80 mm paper, with what the desk
needs on it and none of the navigation, forms or buttons.
"""
import datetime
import io
import re
import unicodedata
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from node.demo.network import DEMO_PASSWORD
from tests.helpers.browser import AxeReport, needs_chromium
from tests.helpers.billing import TERMS

pytestmark = [pytest.mark.browser, pytest.mark.slow, needs_chromium]

COUNT_PRINTS = "window.__printed = 0; window.print = function () { window.__printed += 1; };"
NOT_ON_PAPER = ("Sign out", "Checkout", "Loans", "Items", "Patrons", "Back to the desk", "desk (desk)")
RECEIPT_WIDTH_POINTS = 80 / 25.4 * 72  # @page size: 80mm


@pytest.fixture
def desk(chromium):
    """A desk computer's browser: every page's window.print only counts."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(COUNT_PRINTS)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def sign_in(page, base):
    page.goto(base + "/login")
    page.fill("#name", "desk")
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def scan(page, field, text):
    page.fill(field, text)
    with page.expect_navigation():
        page.press(field, "Enter")


def open_slip(page, link, back, axe):
    """Click LINK (one click): the slip must open the print dialog at once and, once printed, go BACK to the
    desk page.  Then print the slip to PDF as its Print button would: (text, page width in points)."""
    with page.expect_navigation():
        page.click(link)
    slip = page.url
    assert "/slips/" in slip and slip.endswith("?print=1")
    assert page.evaluate("window.__printed") == 1  # slip-print.js opened the print dialog by itself
    with page.expect_navigation():
        page.evaluate("window.dispatchEvent(new Event('afterprint'))")  # the dialog closes
    assert page.url == back
    page.goto(slip.removesuffix("?print=1"))
    assert page.evaluate("window.__printed") == 0
    axe.check(page, link)  # the slip on screen, as the desk sees it before printing
    from pypdf import PdfReader
    reader = PdfReader(io.BytesIO(page.pdf(prefer_css_page_size=True)))
    text = "\n".join(p.extract_text() for p in reader.pages)
    text = unicodedata.normalize("NFKC", text)  # the PDF's ligatures (ﬀ, ﬁ) as letters
    return re.sub(r"\s+", " ", text), float(reader.pages[0].mediabox.width)  # lines wrap on 80 mm


def assert_receipt_paper(text, width):
    assert abs(width - RECEIPT_WIDTH_POINTS) < 2, width
    on_paper = [words for words in NOT_ON_PAPER if words in text]
    assert not on_paper, (on_paper, text)


def test_due_date_receipt_transit_slip_and_payment_receipt_on_paper(network, desk):
    net = network(overrides=TERMS)
    net.start_all()
    axe = AxeReport()  # the slips and the cashier's balance forms pass axe-core too
    north, south = net.url("NORTH"), net.url("SOUTH")

    # 1. The due-date receipt of a visit at NORTH: library, patron, titles, barcodes and due dates.
    sign_in(desk, north)
    desk.select_option("#institution", "SOUTH")
    scan(desk, "#patron_id", "south-1")
    scan(desk, "#item_barcode", "N00001")
    scan(desk, "#item_barcode", "N00002")
    loans = {loan["item"]["barcode"]: loan for loan in net.api(
        "NORTH", "GET", "/api/v1/loans?patron_institution=SOUTH&patron_id=south-1").json()["loans"]}
    text, width = open_slip(desk, "#print-receipt", north + "/checkout/scan", axe)
    assert_receipt_paper(text, width)
    assert "North University" in text and "Due-date receipt" in text and "south-1" in text
    for barcode, title in (("N00001", "North sample book 1"), ("N00002", "North sample book 2")):
        assert barcode in text and title in text
    assert loans["N00001"]["due_at"][:10] in text
    assert "Item barcode" not in text  # the scan form

    # The slip's address cannot be edited into another one.
    assert desk.goto(desk.url[:-3] + "xyz").status == 404

    # 2. SOUTH takes N00001 back: the transit slip says where it goes.
    assert net.cli("NORTH", "sync").returncode == 0
    sign_in(desk, south)
    desk.goto(south + "/return")
    scan(desk, "#item_barcode", "N00001")
    assert "Send to North University" in desk.inner_text(".banner")
    text, width = open_slip(desk, "#print-transit-slip", south + "/return", axe)
    assert_receipt_paper(text, width)
    assert "Send to North University" in text and "Transit slip" in text
    assert "N00001" in text and "North sample book 1" in text and "South College" in text
    assert datetime.datetime.now(ZoneInfo("Europe/Zurich")).date().isoformat() in text  # the demo's zone
    assert "south-1" not in text and "South Patron" not in text  # a transit slip names no patron

    # 3. NORTH declares N00002 lost and bills it; SOUTH's cashier takes 25.00 of it by card.
    assert net.cli("SOUTH", "sync").returncode == 0  # NORTH learns of the return first: N00001 is not lost
    due = datetime.date.fromisoformat(loans["N00002"]["due_at"][:10])
    assert net.cli("NORTH", "jobs", "run", "--at", f"{due + datetime.timedelta(days=30)}T08:00").returncode == 0
    assert net.cli("NORTH", "sync").returncode == 0
    balance = Decimal(net.api("SOUTH", "GET", "/api/v1/fees?patron_id=south-1").json()["balance"]["CHF"])
    assert balance > 25
    desk.goto(south + "/billing/patrons/south-1")
    assert desk.input_value("#pay-amount-CHF") == str(balance)  # the whole balance unless the cashier says less
    axe.check(desk, "cashier with the balance forms")
    desk.fill("#pay-amount-CHF", "25.00")
    desk.select_option("#pay-method-CHF", "card")
    with desk.expect_navigation():
        desk.click("#pay-balance-CHF button[type=submit]")
    assert "Payment recorded: 25.00 CHF (card)" in desk.inner_text(".banner")
    text, width = open_slip(desk, "#print-payment-receipt", south + "/billing/patrons/south-1", axe)
    assert_receipt_paper(text, width)
    assert "Payment receipt" in text and "South College" in text and "south-1" in text
    assert "N00002" in text and "North sample book 2" in text and "North University" in text
    assert "Paid 25.00 CHF" in text and "Method card" in text and f"Balance left {balance - 25} CHF" in text
    assert "Staff desk" in text and "Overdue fine" in text and "Replacement cost" in text
    desk.goto(north + "/loans")  # NORTH's desk, still signed in: the lost loan is marked
    assert "lost" in desk.inner_text('table.loans tr[data-barcode="N00002"]')
    axe.check(desk, "loans with a lost loan")
    assert len(axe.pages) == 5
    assert not axe.found, axe.found
