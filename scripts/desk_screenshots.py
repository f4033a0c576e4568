"""The screenshots of docs/desk.md, made from a real demo in real Chromium; re-run when the desk changes.

    .venv/bin/pip install -e ".[test,docs]"
    .venv/bin/python scripts/desk_screenshots.py

It starts ``circnode demo`` in a temporary folder on free ports (never your demo-data), walks the tour
of docs/desk.md in headless Chromium (/usr/bin/chromium) at 1366x768 as the desk staff would, and
writes one PNG per shot under docs/desk/ (a 256-colour palette: a few tens of KB each). Then it
rewrites each shot's own line in docs/desk.md: the image when the shot was taken, or a comment saying
why not, when the page is not there (yet) on this branch. tests/system/test_desk_doc.py checks the
two agree.

Exit status: 0 when every shot was taken or skipped for a missing page, 1 when a step failed in
another way (the note names it), 2 for bad arguments.
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 768}
PASSWORD = "circnode-demo"  # node.demo.network.DEMO_PASSWORD, the demo's staff password
MAX_BYTES = 150_000


@dataclass(frozen=True)
class Shot:
    name: str  # docs/desk/NAME.png
    caption: str  # its alt text in docs/desk.md


SHOTS = [
    Shot("sign-in", "The desk's sign-in page"),
    Shot("checkout", "Checkout: the patron's library and id"),
    Shot("visit-summary", "The visit before the first scan: the patron summary"),
    Shot("visit-scans", "Two items scanned on the visit"),
    Shot("receipt-slip", "The due-date receipt of the visit"),
    Shot("renew", "Renew at the desk: on the day of checkout, too early"),
    Shot("return-transit", "A return at South of North's item: send it to North"),
    Shot("transit-slip", "The transit slip"),
    Shot("loans", "Loans at North"),
    Shot("search-items", "Items found by title words"),
    Shot("item-history", "One item and its loans"),
    Shot("search-patrons", "Patrons found by name words"),
    Shot("offline-checkout", "A checkout while South is stopped: provisional"),
    Shot("sync-queue", "The sync queue with the loan waiting for South"),
    Shot("lost", "Lost loans marked on Loans"),
    Shot("cashier", "A patron's account at the cashier"),
    Shot("payment-receipt", "The payment receipt"),
]


class Missing(Exception):
    """The page or control a shot needs is not on this branch (yet): the shot is skipped."""


# --- docs/desk.md --------------------------------------------------------------------------------------

def shot_line(shot, skipped=None):
    if skipped:
        return f"<!-- shot {shot.name} skipped: {skipped}; re-run scripts/desk_screenshots.py -->"
    return f"![{shot.caption}](desk/{shot.name}.png)"


SHOT_LINE = re.compile(r"^(?:!\[[^\]]*\]\(desk/(?P<image>[a-z0-9-]+)\.png\)|<!-- shot (?P<skip>[a-z0-9-]+) skipped: .*-->)$")


def update_doc(path, taken, skipped):
    """Rewrite each shot's line in the doc at PATH: its image if TAKEN, else why it was SKIPPED."""
    by_name = {shot.name: shot for shot in SHOTS}
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line in handle.read().split("\n"):
            match = SHOT_LINE.match(line)
            name = match and (match.group("image") or match.group("skip"))
            if name in taken:
                line = shot_line(by_name[name])
            elif name in skipped:
                line = shot_line(by_name[name], skipped[name])
            lines.append(line)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


# --- the demo ------------------------------------------------------------------------------------------

class Demo:
    """``circnode demo`` in FOLDER on ports of its own, and the CLI next to it."""

    def __init__(self, folder):
        from node.demo.supervisor import free_port_block
        self.folder = folder
        self.base = free_port_block(6)
        self.log = open(os.path.join(os.path.dirname(folder), "demo.out"), "wb")
        self.process = subprocess.Popen(self.circnode_args("demo", "--port-base", str(self.base)),
                                        stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 180
        while "network is running" not in self.output():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"desk_screenshots: the demo did not start:\n{self.output()}")
            time.sleep(0.3)

    def circnode_args(self, *args):
        if args[0] == "demo":
            return [sys.executable, "-m", "node.cli", "demo", "--dir", self.folder, *args[1:]]
        return [sys.executable, "-m", "node.cli", *args]

    def output(self):
        with open(self.log.name, errors="replace") as handle:
            return handle.read()

    def url(self, code, path=""):
        return f"http://127.0.0.1:{self.base + ['NORTH', 'SOUTH', 'EAST'].index(code)}{path}"

    def cli(self, *args):
        result = subprocess.run(self.circnode_args(*args), capture_output=True, text=True, cwd=ROOT, timeout=180)
        if result.returncode != 0:
            raise RuntimeError(f"circnode {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def config(self, code):
        return os.path.join(self.folder, code.lower(), "node.ini")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)
        self.log.close()


# --- the tour ------------------------------------------------------------------------------------------

class Tour:
    def __init__(self, browser, demo, out_dir):
        self.browser, self.demo, self.out_dir = browser, demo, out_dir
        self.taken, self.skipped, self.failed = [], {}, []
        self.pages = {}

    def page(self, code, staff="desk"):
        """A signed-in desk page at CODE for STAFF (one browser context each)."""
        key = (code, staff)
        if key not in self.pages:
            context = self.browser.new_context(viewport=VIEWPORT, locale="en-GB")
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.goto(self.demo.url(code, "/login"))
            page.fill("#name", staff)
            page.fill("#password", PASSWORD)
            with page.expect_navigation():
                page.press("#password", "Enter")
            self.pages[key] = page
        return self.pages[key]

    def shoot(self, page, name):
        """Screenshot PAGE (the viewport, as staff see it) into OUT_DIR/NAME.png, small."""
        assert name in {shot.name for shot in SHOTS}, name
        page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        path = os.path.join(self.out_dir, f"{name}.png")
        page.screenshot(path=path)
        shrink(path)
        self.taken.append(name)
        print(f"  {name}.png ({os.path.getsize(path) // 1024} KB)")

    def step(self, function, *names):
        """Run one step of the tour; a Missing page skips its shots with a note, as does a failure."""
        try:
            function(self)
        except Missing as exc:
            self.skip(names, str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken step must not lose the rest of the tour
            reason = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.failed.append(function.__name__)
            self.skip(names, reason)

    def skip(self, names, reason):
        for name in names:
            if name not in self.taken:
                self.skipped[name] = reason
                print(f"  {name}.png skipped: {reason}")


def shrink(path):
    """A 256-colour palette and zlib's best: desk pages are flat colours and text."""
    try:
        from PIL import Image
    except ImportError:
        return  # still a valid PNG, only bigger; pip install -e ".[docs]"
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def scan(page, selector, text):
    """Type TEXT into SELECTOR and press Enter, as a barcode scanner does; wait for the next page."""
    page.fill(selector, text)
    with page.expect_navigation():
        page.press(selector, "Enter")


def without_print(href):
    """A slip's address without print=1, so the page shows without opening the print dialog."""
    parts = urlsplit(href)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "print"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def need(page, selector, what):
    if page.locator(selector).count() == 0:
        raise Missing(f"no {what} on {urlsplit(page.url).path}")
    return page.locator(selector).first


def sign_in(tour):
    page = tour.browser.new_context(viewport=VIEWPORT, locale="en-GB").new_page()
    page.goto(tour.demo.url("NORTH", "/login"))
    page.fill("#name", "desk")
    page.fill("#password", PASSWORD)
    tour.shoot(page, "sign-in")
    page.context.close()


def start_visit(page, demo, institution, patron_id):
    page.goto(demo.url("NORTH", "/checkout"))
    page.select_option("#institution", institution)
    page.fill("#patron_id", patron_id)


def checkout(tour):
    page = tour.page("NORTH")
    start_visit(page, tour.demo, "SOUTH", "south-1")
    tour.shoot(page, "checkout")
    scan(page, "#patron_id", "south-1")
    tour.shoot(page, "visit-summary")


def visit_scans(tour):
    page = tour.page("NORTH")
    for barcode in ("N00001", "N00002"):
        scan(page, "#item_barcode", barcode)
    tour.shoot(page, "visit-scans")


def receipt_slip(tour):
    page = tour.page("NORTH")
    try:
        href = need(page, "#print-receipt", "'Print receipt' link").get_attribute("href")
        slip = page.context.new_page()
        slip.goto(urljoin(page.url, without_print(href)))
        tour.shoot(slip, "receipt-slip")
        slip.close()
    finally:
        done = page.locator("form[action$='/checkout/done'] button")
        if done.count():
            with page.expect_navigation():
                done.first.click()


RENEW = "button:has-text('Renew'), input[type=submit][value*='Renew']"


def renew(tour):
    """Renew N00001 from Loans, or else from south-1's page; on the day of checkout, so refused as too early."""
    page = tour.page("NORTH")
    for path in ("/loans", "/patrons/SOUTH/south-1"):
        page.goto(tour.demo.url("NORTH", path))
        if page.locator(RENEW).count():
            break
    button = need(page, RENEW, "'Renew' button")
    with page.expect_navigation():
        button.click()
    tour.shoot(page, "renew")


def return_transit(tour):
    page = tour.page("SOUTH")
    page.goto(tour.demo.url("SOUTH", "/return"))
    scan(page, "#item_barcode", "N00002")
    if page.locator("#owner-choice").count():  # the barcode is known at more than one library: North's
        with page.expect_navigation():
            page.click("#owner-choice button[value='NORTH']")
    tour.shoot(page, "return-transit")
    href = need(page, "#print-transit-slip", "'Print transit slip' link").get_attribute("href")
    page.goto(urljoin(page.url, without_print(href)))
    tour.shoot(page, "transit-slip")


def loans(tour):
    page = tour.page("NORTH")
    page.goto(tour.demo.url("NORTH", "/loans"))
    tour.shoot(page, "loans")


def search_items(tour):
    page = tour.page("NORTH")
    page.goto(tour.demo.url("NORTH", "/items"))
    need(page, "input[name=q]", "item search by title words (q)")
    scan(page, "input[name=q]", "sample book 1")
    tour.shoot(page, "search-items")
    link = need(page, "a[href*='/items/NORTH/N00001']", "link to an item's page")
    with page.expect_navigation():
        link.click()
    tour.shoot(page, "item-history")


def search_patrons(tour):
    page = tour.page("NORTH")
    page.goto(tour.demo.url("NORTH", "/patrons"))
    need(page, "input[name=q]", "patron search by name words (q)")
    scan(page, "input[name=q]", "Patron 1")
    tour.shoot(page, "search-patrons")


def offline(tour):
    """SOUTH stopped alone (circnode demo stop SOUTH), a loan at NORTH, the queue; SOUTH started again."""
    tour.demo.cli("demo", "stop", "SOUTH")
    try:
        page = tour.page("NORTH")
        start_visit(page, tour.demo, "SOUTH", "south-2")
        scan(page, "#patron_id", "south-2")
        scan(page, "#item_barcode", "N00003")
        tour.shoot(page, "offline-checkout")
        with page.expect_navigation():
            page.click("form[action$='/checkout/done'] button")
        admin = tour.page("NORTH", "admin")
        admin.goto(tour.demo.url("NORTH", "/admin/queue"))
        tour.shoot(admin, "sync-queue")
    finally:
        tour.demo.cli("demo", "start", "SOUTH")


def lost_and_cashier(tour):
    """North lends to its own patron, then 60 days pass at North: the loans are lost and billed."""
    page = tour.page("NORTH")
    start_visit(page, tour.demo, "NORTH", "north-1")
    scan(page, "#patron_id", "north-1")
    scan(page, "#item_barcode", "N00004")
    with page.expect_navigation():
        page.click("form[action$='/checkout/done'] button")
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=60)).isoformat()
    tour.demo.cli("--config", tour.demo.config("NORTH"), "jobs", "run", "--at", later)
    page.goto(tour.demo.url("NORTH", "/loans"))
    tour.shoot(page, "lost")
    page.goto(tour.demo.url("NORTH", "/billing/patrons/north-1"))
    tour.shoot(page, "cashier")
    form = need(page, "form[id^='pay-balance-']", "'Pay balance' form")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    href = need(page, "#print-payment-receipt", "payment receipt link").get_attribute("href")
    page.goto(urljoin(page.url, without_print(href)))
    tour.shoot(page, "payment-receipt")


def urljoin(base, href):
    from urllib.parse import urljoin as join
    return join(base, href)


STEPS = [
    (sign_in, "sign-in"),
    (checkout, "checkout", "visit-summary"),
    (visit_scans, "visit-scans"),
    (receipt_slip, "receipt-slip"),
    (renew, "renew"),
    (return_transit, "return-transit", "transit-slip"),
    (loans, "loans"),
    (search_items, "search-items", "item-history"),
    (search_patrons, "search-patrons"),
    (offline, "offline-checkout", "sync-queue"),
    (lost_and_cashier, "lost", "cashier", "payment-receipt"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "desk"), help="where the PNGs go")
    parser.add_argument("--doc", default=os.path.join(ROOT, "docs", "desk.md"), help="the tour to update")
    args = parser.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        parser.exit(2, f"desk_screenshots: {CHROMIUM} is not installed (apt-get install chromium)\n")
    if not os.path.exists(args.doc):
        parser.exit(2, f"desk_screenshots: {args.doc}: no such file\n")
    os.makedirs(args.out, exist_ok=True)
    sys.path.insert(0, ROOT)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="circnode-shots-") as scratch:
        print(f"desk_screenshots: starting the demo in {scratch}")
        demo = Demo(os.path.join(scratch, "demo"))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                tour = Tour(browser, demo, args.out)
                for function, *names in STEPS:
                    tour.step(function, *names)
                browser.close()
        finally:
            demo.stop()
    for name in tour.skipped:  # no stale picture of a page that is gone
        stale = os.path.join(args.out, f"{name}.png")
        if os.path.exists(stale):
            os.remove(stale)
    update_doc(args.doc, set(tour.taken), tour.skipped)
    print(f"desk_screenshots: {len(tour.taken)} taken, {len(tour.skipped)} skipped; {args.doc} updated")
    if tour.failed:
        print(f"desk_screenshots: failed steps: {', '.join(tour.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
