"""The browser the tests drive: Debian's Chromium, and the desk in it (sign in, scan into the focused field,
read banners and loan rows).

Scans are typed into the focused field and ended with Enter, as a barcode scanner does.
"""
import os
import re

import pytest

from node.demo.network import DEMO_PASSWORD


# Debian's chromium, driven by playwright's Python API (never playwright's own browser download).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                    reason=f"{CHROMIUM} is not installed (CI installs it and never skips)")


def new_desk_page(chromium, width=1366, height=768):
    """A page in a fresh context (its own cookies) of CHROMIUM, at a desk's screen size."""
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def focused_id(page):
    """The focused element's id once the page has rendered (autofocus may run a frame after load)."""
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    return page.evaluate("document.activeElement && document.activeElement.id")


def scan_into_focus(page, text):
    """Type TEXT into whatever field has focus (once autofocus ran) and press Enter, waiting for the next page."""
    focused_id(page)  # a scanner's first character must not go out before autofocus has run
    with page.expect_navigation():
        page.keyboard.type(text)
        page.keyboard.press("Enter")


def banner(page, index=0):
    return re.sub(r"\s+", " ", page.locator(".banner").nth(index).inner_text()).strip()


def sign_in(page, base, name="desk"):
    page.goto(base + "/checkout")
    page.fill("#name", name)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.press("#password", "Enter")
    assert page.url == base + "/checkout"


def start_visit(page, institution, patron_id):
    page.select_option("#institution", institution)
    page.focus("#patron_id")
    scan_into_focus(page, patron_id)
    assert page.url.endswith("/checkout/scan"), page.url


def loan_row(page, barcode):
    return page.locator(f'table.loans tr[data-barcode="{barcode}"]')


def settle(page):
    """Wait two frames: autofocus and deferred scripts run at the first rendering."""
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


SEVERE = ("serious", "critical")


class AxeReport:
    """axe-core run on each page visited; the serious and critical violations, by page."""

    def __init__(self):
        from axe_playwright_python.sync_playwright import Axe
        self.axe, self.pages, self.found = Axe(), [], {}

    def check(self, page, label):
        settle(page)
        violations = self.axe.run(page).response["violations"]
        self.pages.append(label)
        severe = [f"{v['id']} ({v['impact']}): {v['help']} — "
                  + "; ".join(node["target"][0] if isinstance(node["target"][0], str) else str(node["target"])
                              for node in v["nodes"][:3])
                  for v in violations if v.get("impact") in SEVERE]
        if severe:
            self.found[f"{label} {page.url}"] = severe
