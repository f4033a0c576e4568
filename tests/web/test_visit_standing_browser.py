"""The home node's answer belongs to one desk visit (issue 14, points 1 and 9), in a real Chromium over real nodes.

A new visit asks the patron's home node again, so a patron blocked at home
since their last visit is refused, not lent to online; within one visit the
answer is lent on (one lookup at the home node per visit).  A visit on a
network pass says the home node was not asked, not that it was unreachable.
"""
import pytest

from tests.helpers.browser import needs_chromium
from tests.helpers.live import db_rows
from tests.helpers.browser import banner, focused_id, loan_row, scan_into_focus, sign_in, start_visit

pytestmark = [pytest.mark.browser, needs_chromium]


def lookups_at_home(net, patron_id):
    """How many times NORTH asked SOUTH about PATRON_ID (SOUTH records every standing lookup)."""
    r = net.api("SOUTH", "GET", f"/api/v1/sync/standing-lookups?peer=NORTH&patron={patron_id}&limit=500")
    assert r.status_code == 200, r.text
    return [row["code"] for row in r.json()["lookups"]]


def block_at_home(net, tmp_path, patron_id):
    """SOUTH's staff block PATRON_ID (its patrons CSV, as a library updates it)."""
    path = tmp_path / "blocked.csv"
    path.write_text(f"id,name,email,expires_on,blocked\n{patron_id},South Patron 1,patron1@south.example,,yes\n")
    done = net.cli("SOUTH", "patrons", "import", str(path))
    assert done.returncode == 0, done.stderr


def test_a_new_visit_asks_the_home_node_again_and_refuses_a_patron_blocked_since(network, page, tmp_path):
    net = network()
    net.start_all()
    base = net.url("NORTH")
    sign_in(page, base)

    start_visit(page, "SOUTH", "south-1")
    scan_into_focus(page, "N00001")
    scan_into_focus(page, "N00002")
    assert banner(page).startswith("N00002 checked out") and "provisional" not in banner(page)
    assert lookups_at_home(net, "south-1") == ["ok"]  # two scans lent on the one answer of this visit
    with page.expect_navigation():
        page.click("text=Done: next patron")
    # The two loans reach SOUTH before the block (else the scheduler's push may race it and SOUTH,
    # rightly, disputes loans of a patron it has blocked): what follows is about the next visit only.
    assert net.cli("NORTH", "sync").returncode == 0

    block_at_home(net, tmp_path, "south-1")
    # The next visit, well within [sync] standing_cache_seconds (300): SOUTH is asked again and says no.
    page.select_option("#institution", "SOUTH")
    page.focus("#patron_id")
    scan_into_focus(page, "south-1")
    assert page.url == base + "/checkout"
    assert page.locator(".banner.error").count() == 1
    assert "South College patron south-1" in banner(page) and "Blocked at the home library" in banner(page)
    assert focused_id(page) == "patron_id"
    assert lookups_at_home(net, "south-1") == ["patron_blocked", "ok"]

    # A JSON API checkout is a visit of its own: it asks too, and nothing is lent.
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": "N00003", "patron": {"institution": "SOUTH", "id": "south-1"}})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "patron_blocked")
    assert lookups_at_home(net, "south-1") == ["patron_blocked", "patron_blocked", "ok"]
    assert db_rows(net, "NORTH", "SELECT i.barcode FROM loan l JOIN item i ON i.id = l.item_id "
                                 "ORDER BY i.barcode") == [("N00001",), ("N00002",)]
    assert db_rows(net, "NORTH", "SELECT COUNT(*) FROM loan WHERE disputed = 1") == [(0,)]


def test_a_visit_on_a_network_pass_says_the_home_was_not_asked_not_that_it_was_unreachable(network, page):
    net = network()
    net.start_all()
    issued = net.cli("SOUTH", "pass", "issue", "south-3")
    assert issued.returncode == 0, issued.stderr
    pass_text = issued.stdout.strip().splitlines()[-1]
    base = net.url("NORTH")
    sign_in(page, base)

    page.fill("#network_pass", pass_text)
    with page.expect_navigation():
        page.press("#network_pass", "Enter")
    assert page.url == base + "/checkout/scan"
    assert page.locator("#visit-offline").count() == 0  # SOUTH is up: nothing says it is unreachable
    assert page.inner_text("#visit-pass") == "network pass: home library not asked"
    assert "unreachable" not in page.inner_text("h1")
    assert " ".join(page.inner_text("#summary-provisional").split()).startswith(
        "Provisional: network pass; South College was not asked. At most ")
    scan_into_focus(page, "N00005")
    assert banner(page).endswith("(provisional: home library not asked)")
    assert lookups_at_home(net, "south-3") == []  # the pass is verified offline

    page.click("header >> text=Loans")
    # Provisional until SOUTH applies its loan.created (the next push may have settled it by now), but
    # never "offline": the home node was not found unreachable.
    assert loan_row(page, "N00005").locator(".tag", has_text="offline").count() == 0
    loan = net.api("NORTH", "GET", "/api/v1/loans?q=N00005").json()["loans"][0]
    assert loan["made_offline"] is False

    # The same pass scanned into the autofocused patron-id field (longer than any id): the pass's own way in.
    with page.expect_navigation():
        page.click("header >> text=Checkout")
    assert len(pass_text) > 200 and focused_id(page) == "patron_id"
    scan_into_focus(page, pass_text)
    assert page.url == base + "/checkout/scan"
    assert page.inner_text("#visit-pass") == "network pass: home library not asked"
    assert banner(page) == "South Patron 3 (network pass)."
    assert pass_text[:60] not in page.content()
    assert lookups_at_home(net, "south-3") == []  # still not asked

    net.stop("SOUTH")  # now it is unreachable, and a visit by id says so
    with page.expect_navigation():
        page.click("header >> text=Checkout")
    start_visit(page, "SOUTH", "south-2")
    assert page.inner_text("#visit-offline") == "offline: home library unreachable"
    assert " ".join(page.inner_text("#summary-provisional").split()).startswith(
        "Provisional: South College could not be reached.")
    assert page.locator("#visit-pass").count() == 0
    scan_into_focus(page, "N00006")
    assert banner(page).endswith("(made offline, provisional)")


def test_an_api_visit_lends_on_its_first_answer_and_a_new_visit_asks_again(network, tmp_path):
    net = network()
    net.start_all()

    def checkout(barcode, patron="south-2", **extra):
        return net.api("NORTH", "POST", "/api/v1/checkouts",
                       {"item_barcode": barcode, "patron": {"institution": "SOUTH", "id": patron}, **extra})

    first = checkout("N00001")
    assert first.status_code == 201 and first.json()["provisional"] is False, first.text
    visit = first.json()["visit"]
    second = checkout("N00002", visit=visit)
    assert second.status_code == 201 and second.json()["provisional"] is False, second.text
    assert lookups_at_home(net, "south-2") == ["ok"]  # the visit's second checkout lent on the first answer

    # A visit this node did not sign, or another patron's, is refused and lends nothing.
    forged = checkout("N00003", visit=visit[:-4] + ("AAAA" if not visit.endswith("AAAA") else "BBBB"))
    assert (forged.status_code, forged.json()["error"]["code"]) == (400, "invalid_field")
    other = checkout("N00003", patron="south-3", visit=visit)
    assert (other.status_code, other.json()["error"]["code"]) == (400, "invalid_field")
    assert db_rows(net, "NORTH", "SELECT COUNT(*) FROM loan") == [(2,)]

    # Blocked at home since: a new visit (no 'visit') asks again and is refused.
    assert net.cli("NORTH", "sync").returncode == 0  # the two loans reach SOUTH before the block
    block_at_home(net, tmp_path, "south-2")
    refused = checkout("N00004")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "patron_blocked")
    assert lookups_at_home(net, "south-2") == ["patron_blocked", "ok"]
