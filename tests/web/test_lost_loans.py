"""Lost loans are visible, and their return says what became of the fees (issue 14, point 7), over a real node.

NORTH lends with its clock shifted 60 days back (``CIRCNODE_CLOCK_OFFSET_SECONDS``),
then runs on today's clock, where its daily lost step (``circnode jobs run --only
lost``) declares the loans lost: fine so far (capped at the demo's max_fine
10.00), replacement cost 45.00 and processing fee 10.00.  The demo's
``refund_on_return`` is the default, ``replacement``.
"""
import datetime

import pytest

from tests.helpers.browser import needs_chromium
from tests.helpers.browser import banner, loan_row, scan_into_focus, sign_in, start_visit
from tests.helpers.live import db_rows

SIXTY_DAYS_AGO = {"CIRCNODE_CLOCK_OFFSET_SECONDS": str(-60 * 86400)}


def lost_loans(net, loans):
    """NORTH lent LOANS [(barcode, institution, patron)] 60 days ago; today its lost step declared them lost."""
    net.start("NORTH", env=SIXTY_DAYS_AGO)
    made = {}
    for barcode, institution, patron in loans:
        r = net.api("NORTH", "POST", "/api/v1/checkouts",
                    {"item_barcode": barcode, "patron": {"institution": institution, "id": patron}})
        assert r.status_code == 201, r.text
        made[barcode] = r.json()
    net.stop("NORTH")
    net.start("NORTH")
    run = net.cli("NORTH", "jobs", "run", "--only", "lost")
    assert run.returncode == 0 and f"declared lost {len(loans)}" in run.stdout, (run.stdout, run.stderr)
    return made


def fees_of(net, loan_id):
    return dict(db_rows(net, "NORTH", "SELECT reason, amount FROM fee WHERE loan_id = ?", (loan_id,)))


def test_lost_loans_show_in_the_api_and_cli_and_a_return_says_what_became_of_the_fees(network):
    net = network()  # SOUTH is never started: its patron's loan and fees wait in NORTH's outbox
    lent = lost_loans(net, [("N00001", "NORTH", "north-1"), ("N00002", "SOUTH", "south-1")])
    today = datetime.date.today().isoformat()

    loan = net.api("NORTH", "GET", f"/api/v1/loans/{lent['N00001']['id']}").json()
    assert (loan["status"], loan["lost"], loan["lost_at"][:10]) == ("open", True, today)
    listed = net.api("NORTH", "GET", "/api/v1/loans?status=open").json()["loans"]
    assert {row["item"]["barcode"]: row["lost"] for row in listed} == {"N00001": True, "N00002": True}
    cli = net.cli("NORTH", "loans", "--open")
    assert cli.returncode == 0, cli.stderr
    lines = {line.split()[1]: line for line in cli.stdout.splitlines()[1:-1]}
    assert f"open OVERDUE LOST:{today}" in lines["N00001"] and "LOST:" in lines["N00002"]

    r = net.api("NORTH", "POST", "/api/v1/returns", {"item_barcode": "N00001"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["loan"]["status"], answer["loan"]["lost"]) == ("closed", True)
    lost = answer["lost"]
    assert (lost["lender"], lost["refund_on_return"], lost["currency"]) == ("NORTH", "replacement", "EUR")
    assert lost["refunded"] == [{"reason": "replacement", "amount": "45.00"}]
    assert sorted((fee["reason"], fee["amount"]) for fee in lost["kept"]) == [("fine", "10.00"), ("processing", "10.00")]
    fees = fees_of(net, lent["N00001"]["id"])
    assert lost["credit"]["amount"] == "-45.00" and fees["refund"] == -4500  # stored in cents
    assert lost["message"].startswith(f"It had been declared lost on {today}: replacement fee 45.00 EUR refunded: "
                                      "a credit of 45.00 EUR on the patron's account; kept: ")
    assert "fine 10.00 EUR" in lost["message"] and "processing fee 10.00 EUR" in lost["message"]

    # The CLI's return says the same; the credit goes to SOUTH with the other fees of its patron.
    back = net.cli("NORTH", "return", "N00002")
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip().startswith("N00002 returned: North sample book 2. Shelve it. It had been declared "
                                          f"lost on {today}: replacement fee 45.00 EUR refunded: a credit of 45.00 EUR")
    assert db_rows(net, "NORTH", "SELECT type FROM outbox_event WHERE destination = 'SOUTH' AND type = 'fee.assessed' "
                                 "AND json_extract(payload, '$.data.reason') = 'refund'") == [("fee.assessed",)]
    assert "was-lost:" in net.cli("NORTH", "loans").stdout
    again = net.cli("NORTH", "return", "N00002")  # a refusal: one line, exit 2, nothing changes
    assert again.returncode == 2 and "not_on_loan" in again.stderr
    assert fees_of(net, lent["N00002"]["id"])["refund"] == -4500


@pytest.mark.browser
@needs_chromium
def test_the_desk_marks_lost_loans_and_its_return_banner_says_what_became_of_the_fees(network, page):
    net = network()
    # A SOUTH patron, SOUTH never started: their visit is admitted provisionally (a NORTH patron with these
    # fees unpaid would be blocked here), so the visit page can show the lost loan too.
    lost_loans(net, [("N00003", "SOUTH", "south-3")])
    base = net.url("NORTH")
    sign_in(page, base)

    page.goto(base + "/loans")
    row = loan_row(page, "N00003")
    assert row.locator(".tag.lost").inner_text() == "lost"
    assert "declared lost" in row.inner_text()
    assert row.locator("button", has_text="Renew").count() == 0  # a lost loan is not renewed
    page.goto(base + "/patrons/SOUTH/south-3")
    assert loan_row(page, "N00003").locator(".tag.lost").inner_text() == "lost"
    page.click("header >> text=Checkout")
    start_visit(page, "SOUTH", "south-3")
    assert loan_row(page, "N00003").locator(".tag.lost").inner_text() == "lost"  # their other loans here

    page.click("header >> text=Return")
    page.wait_for_url(base + "/return")
    page.focus("#item_barcode")
    scan_into_focus(page, "N00003")
    text = banner(page)
    assert text.startswith("N00003 returned: North sample book 3. Shelve it. It had been declared lost on ")
    assert "replacement fee 45.00 EUR refunded: a credit of 45.00 EUR on the patron's account" in text
    assert "kept: " in text and "processing fee 10.00 EUR" in text

    page.goto(base + "/loans?status=closed")
    assert loan_row(page, "N00003").locator(".tag.lost").inner_text() == "was lost"
