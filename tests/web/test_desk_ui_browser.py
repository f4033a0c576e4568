"""Issue 14 in real headless Chromium: the checkout on a 1366×768 screen, the refusal tone,
axe-core on every desk and patron page, and the desk by keyboard alone.

NORTH and SOUTH run as ``circnode run`` processes with SOUTH's demo IdP (tests/helpers/nodes.py).
"""

import pytest

from node.demo.idp import DEMO_PATRON_PASSWORD
from node.demo.network import DEMO_PASSWORD
from tests.helpers.browser import AxeReport, banner, focused_id, needs_chromium, scan_into_focus, settle, sign_in
from tests.helpers.nodes import north_and_south_with_idp

pytestmark = [pytest.mark.browser, needs_chromium]

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with north_and_south_with_idp(tmp_path_factory.mktemp("desk-ui")) as started:
        yield started


def new_page(chromium, viewport=LAPTOP, **options):
    context = chromium.new_context(viewport=viewport, **options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


def in_viewport(page, selector):
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= size["height"] \
        and box["x"] >= 0 and box["x"] + box["width"] <= size["width"]


# --- point 2: the staff form on screen whatever the number of libraries ---

THIRTY_PEERS = "".join(f"\n[peer:P{n:02d}]\nname = Partner Library {n:02d}\nbase_url = http://127.0.0.1:9\n"
                       for n in range(1, 31))


def test_patron_id_and_continue_are_on_screen_at_1366x768_with_thirty_libraries(network, chromium):
    net = network(extra_config=THIRTY_PEERS, items=5, patrons=3)
    net.start("NORTH")
    base = net.url("NORTH")
    page = new_page(chromium)
    sign_in(page, base)
    assert page.locator("#institution option").count() == 32  # this library, SOUTH and thirty partners
    assert focused_id(page) == "patron_id"
    assert in_viewport(page, "#patron_id") and in_viewport(page, "#continue")
    assert page.evaluate("window.scrollY") == 0
    # After a refusal banner too: the form is still on screen.
    page.select_option("#institution", "NORTH")
    page.focus("#patron_id")
    scan_into_focus(page, "north-nobody")
    assert page.locator(".banner.error").count() == 1
    assert in_viewport(page, "#patron_id") and in_viewport(page, "#continue")
    # The chooser types ahead: keys pick a library without opening the list.
    page.focus("#institution")
    page.keyboard.type("Partner Library 17")
    assert page.input_value("#institution") == "P17"
    # ... and its filter finds any part of a name: "college" is South College; Enter goes on to the id.
    page.focus("#institution-filter")
    page.keyboard.type("college")
    assert page.input_value("#institution") == "SOUTH"
    assert page.locator("#institution option:not([hidden])").count() == 1
    page.keyboard.press("Enter")
    assert focused_id(page) == "patron_id" and page.url.endswith("/checkout")
    assert in_viewport(page, "#patron_id") and in_viewport(page, "#continue")
    page.context.close()


# --- point 9d: a tone on a refusal ---

def test_a_refused_scan_sounds_a_tone_and_a_success_does_not(net, chromium):
    page = new_page(chromium)
    base = net.north.url
    sign_in(page, base)
    page.focus("#patron_id")
    scan_into_focus(page, "north-1")
    scan_into_focus(page, "N00001")
    settle(page)
    assert page.evaluate("document.documentElement.dataset.refusalTone") is None
    scan_into_focus(page, "NOPE-1")
    assert page.locator(".banner.error").count() == 1
    # "played": the AudioContext ran (the scan's key press lets this origin make sound).
    page.wait_for_function("document.documentElement.dataset.refusalTone === 'played'", timeout=5_000)
    assert page.locator('script[src$="refusal-tone.js"]').count() == 1
    with page.expect_navigation():
        page.click("text=Done: next patron")
    page.context.close()


# --- accessibility: axe-core on every desk and patron page reachable with demo data ---



def test_every_desk_and_patron_page_passes_axe_core(net, chromium):
    report = AxeReport()
    north, south = net.north.url, net.south.url
    desk = new_page(chromium)
    desk.goto(north + "/login")
    report.check(desk, "staff sign-in")
    sign_in(desk, north, name="admin")
    report.check(desk, "checkout")
    desk.focus("#patron_id")
    scan_into_focus(desk, "north-nobody")
    report.check(desk, "checkout with a refusal")
    desk.focus("#patron_id")
    scan_into_focus(desk, "north-2")
    scan_into_focus(desk, "N00003")
    scan_into_focus(desk, "NOPE-2")
    report.check(desk, "visit with summary, loans and a refusal")
    for path, label in (("/return", "return"), ("/loans", "loans"), ("/loans?status=all&overdue=1", "loans filtered"),
                        ("/items", "items"), ("/items?q=sample book", "item search"),
                        ("/items/NORTH/N00003", "item history"), ("/patrons", "patrons"),
                        ("/patrons?q=north", "patron search"), ("/patrons/NORTH/north-2", "patron"),
                        ("/billing", "cashier"), ("/billing/patrons/north-2", "patron fees"),
                        ("/billing/ledger", "ledger"), ("/billing/bursar", "bursar and daily jobs"),
                        ("/admin/queue", "sync queue"), ("/admin/standing-lookups", "standing lookups"),
                        ("/privacy", "privacy"), ("/items/NORTH/NOPE", "error page")):
        desk.goto(north + path)
        report.check(desk, label)
    desk.goto(north + "/checkout/scan")
    scan_into_focus(desk, "N00004")
    desk.goto(north + "/return")
    desk.focus("#item_barcode")
    scan_into_focus(desk, "N00004")
    report.check(desk, "return with its banner")
    desk.goto(north + "/checkout/scan")
    desk.context.clear_cookies()  # the session is gone: the next scan's form has expired
    desk.fill("#item_barcode", "N00005")
    with desk.expect_navigation():
        desk.press("#item_barcode", "Enter")
    assert "csrf_failed" in desk.content()
    report.check(desk, "expired form with the scan to repeat")

    sign_in(desk, north)
    desk.locator('#institution-list li[data-code="SOUTH"] button.sign-in-phone').click()
    desk.wait_for_url(north + "/patron/phone/wait")
    report.check(desk, "phone sign-in: the desk waits")
    link = desk.get_attribute("#phone-link", "href")
    phone = new_page(chromium, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone.goto(link)
    phone.wait_for_url("**/idp/sso/redirect**")
    report.check(phone, "IdP sign-in form")
    patron_sign_in(phone, "south-2")
    phone.wait_for_selector("#phone-done")
    report.check(phone, "phone sign-in done")
    phone.goto(link)
    report.check(phone, "refused: link used")
    desk.wait_for_url(north + "/checkout/scan")
    desk.context.close()

    phone.goto(north + "/patron/login?institution=SOUTH")
    phone.wait_for_url("**/idp/sso/redirect**")
    for _ in range(5):
        phone.fill("#username", "south-2")
        phone.fill("#password", "wrong")
        with phone.expect_navigation():
            phone.click("#sign-in")
    assert phone.locator("#back-to-library").count() == 1
    report.check(phone, "IdP lockout")
    phone.goto(north + "/patron/login?institution=SOUTH")
    patron_sign_in(phone, "south-2")
    phone.wait_for_url(north + "/patron/continue**")
    report.check(phone, "visiting patron signed in")
    phone.goto(south + "/patron/account")
    report.check(phone, "patron account, signed out")
    phone.click("#account-sign-in")
    patron_sign_in(phone, "south-2")
    phone.wait_for_url(south + "/patron/account")
    report.check(phone, "patron account with loans and pass")
    phone.context.close()

    assert len(report.pages) >= 30
    assert not report.found, "\n".join(f"{page}:\n  " + "\n  ".join(items) for page, items in report.found.items())


def patron_sign_in(page, user, password=DEMO_PATRON_PASSWORD):
    page.wait_for_url("**/idp/sso/redirect**")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#sign-in")


# --- the desk by keyboard alone: no click, no fill, only keys ---

def tab_to(page, description, check, limit=60):
    """Press Tab until the focused element passes CHECK (JavaScript over ``el``), at most LIMIT times."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(el => !!el && ({check}))(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached {description}")


def test_checkout_and_return_by_keyboard_alone(net, chromium):
    page = new_page(chromium)
    base = net.north.url
    page.goto(base + "/login")
    assert focused_id(page) == "name"
    page.keyboard.type("desk")
    page.keyboard.press("Tab")
    scan_into_focus(page, DEMO_PASSWORD)
    assert page.url == base + "/checkout"

    assert focused_id(page) == "patron_id"
    page.keyboard.press("Shift+Tab")
    assert focused_id(page) == "institution"
    page.keyboard.type("South")  # the chooser types ahead
    assert page.evaluate("document.getElementById('institution').value") == "SOUTH"
    page.keyboard.press("Tab")
    assert focused_id(page) == "patron_id"
    scan_into_focus(page, "south-3")
    assert page.url == base + "/checkout/scan"
    assert page.locator("#patron-summary").is_visible()
    assert focused_id(page) == "item_barcode"
    scan_into_focus(page, "N00008")
    assert banner(page).startswith("N00008 checked out")
    assert focused_id(page) == "item_barcode"

    tab_to(page, "Done: next patron", "el.textContent.trim() === 'Done: next patron'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == base + "/checkout"

    tab_to(page, "the Return link", "el.tagName === 'A' && el.textContent.trim() === 'Return'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == base + "/return"
    assert focused_id(page) == "item_barcode"
    scan_into_focus(page, "n00008")  # lower case as typed: found all the same
    assert banner(page) == "N00008 returned: North sample book 8. Shelve it."  # the barcode as labelled

    # A scan whose form expired: the refusal's link is focused, Enter goes back with the barcode, Enter scans.
    page.context.clear_cookies()
    scan_into_focus(page, "N00008")
    assert focused_id(page) == "repeat-scan"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/login" in page.url
    assert focused_id(page) == "name"
    page.keyboard.type("desk")
    page.keyboard.press("Tab")
    scan_into_focus(page, DEMO_PASSWORD)
    assert page.url == base + "/return?barcode=N00008"
    assert focused_id(page) == "item_barcode"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "N00008: Item N00008 is not on loan" in banner(page)
    page.context.close()
