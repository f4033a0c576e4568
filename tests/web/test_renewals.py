"""Renewals (issue 14, point 4) over a real node: the rule, by the JSON API, and at the desk in Chromium.

The new due date runs the lender's loan_days from the renewal day; a renewal
that would not move it later is refused (409 ``renewal_too_early``) and uses
up nothing.  Loans are made "ten days ago" by a node started with its clock
shifted back (``CIRCNODE_CLOCK_OFFSET_SECONDS``), then renewed by the same
node on today's clock.
"""
import datetime

import pytest

from tests.helpers.browser import needs_chromium
from tests.helpers.browser import banner, focused_id, loan_row, sign_in, start_visit
from tests.helpers.live import db_rows

TEN_DAYS_AGO = {"CIRCNODE_CLOCK_OFFSET_SECONDS": str(-10 * 86400)}


def lend(net, barcode, institution, patron_id):
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": barcode, "patron": {"institution": institution, "id": patron_id}})
    assert r.status_code == 201, r.text
    return r.json()


def lent_ten_days_ago(net, loans):
    """NORTH lends LOANS [(barcode, institution, patron)] with its clock ten days back, then runs on today's."""
    net.start("NORTH", env=TEN_DAYS_AGO)
    made = {barcode: lend(net, barcode, institution, patron) for barcode, institution, patron in loans}
    net.stop("NORTH")
    net.start("NORTH")
    return made


def renewed_events(net, loan_id):
    return db_rows(net, "NORTH", "SELECT COUNT(*) FROM outbox_event WHERE type = 'loan.renewed' "
                                 "AND json_extract(payload, '$.data.loan_id') = ?", (loan_id,))[0][0]


def day(text):
    return datetime.datetime.fromisoformat(text).date()


def test_renewal_that_would_not_move_the_due_date_is_refused_and_uses_up_nothing(network):
    net = network()  # SOUTH is never started: its patrons' loans are provisional, their events queued
    old = lent_ten_days_ago(net, [("N00001", "SOUTH", "south-1")])["N00001"]
    today = lend(net, "N00002", "SOUTH", "south-1")

    r = net.api("NORTH", "POST", f"/api/v1/loans/{today['id']}/renew")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "renewal_too_early"
    assert error["details"]["due"] == today["due_at"][:10] and error["details"]["earliest"] > today["checked_out_at"][:10]
    after = net.api("NORTH", "GET", f"/api/v1/loans/{today['id']}").json()
    assert (after["renewals"], after["due_at"]) == (0, today["due_at"])
    assert renewed_events(net, today["id"]) == 0

    r = net.api("NORTH", "POST", f"/api/v1/loans/{old['id']}/renew")
    assert r.status_code == 200, r.text
    renewed = r.json()
    # 21 days (the demo's loan_days) from the renewal day: ten days later than the old due date.
    assert renewed["renewals"] == 1 and (day(renewed["due_at"]) - day(old["due_at"])).days == 10
    assert renewed_events(net, old["id"]) == 1

    again = net.api("NORTH", "POST", f"/api/v1/loans/{old['id']}/renew")  # the same day: would not move it
    assert (again.status_code, again.json()["error"]["code"]) == (409, "renewal_too_early")
    after = net.api("NORTH", "GET", f"/api/v1/loans/{old['id']}").json()
    assert (after["renewals"], after["due_at"]) == (1, renewed["due_at"])
    assert renewed_events(net, old["id"]) == 1


@pytest.mark.browser
@needs_chromium
def test_desk_renews_on_the_loans_patron_and_visit_pages(network, page):
    net = network()
    lent = lent_ten_days_ago(net, [("N00001", "NORTH", "north-1"), ("N00002", "NORTH", "north-1"),
                                   ("N00003", "NORTH", "north-1"), ("N00004", "NORTH", "north-2")])
    base = net.url("NORTH")
    sign_in(page, base)

    # Loans page: one Renew button per loan this library lent; post/redirect/get back to the same page.
    page.goto(base + "/loans?q=N00001")
    with page.expect_navigation():
        loan_row(page, "N00001").locator("button", has_text="Renew").click()
    assert page.url == base + "/loans?q=N00001"
    assert page.locator(".banner.success").count() == 1
    assert banner(page).startswith("N00001 renewed: North sample book 1 — now due ")
    assert banner(page).endswith("(renewal 1 of 2).")
    first_due = net.api("NORTH", "GET", f"/api/v1/loans/{lent['N00001']['id']}").json()["due_at"]
    assert first_due[:10] in loan_row(page, "N00001").inner_text()
    with page.expect_navigation():
        loan_row(page, "N00001").locator("button", has_text="Renew").click()
    assert page.locator(".banner.error").count() == 1
    assert banner(page).startswith("N00001: not renewed. Renewing today would not move the due date")
    assert net.api("NORTH", "GET", f"/api/v1/loans/{lent['N00001']['id']}").json()["renewals"] == 1
    page.reload()  # post/redirect/get: a reload renews nothing again
    assert page.locator(".banner").count() == 0
    assert net.api("NORTH", "GET", f"/api/v1/loans/{lent['N00001']['id']}").json()["renewals"] == 1

    # Patron page: Renew all, one banner each, the too-early one refused alone.
    page.goto(base + "/patrons/NORTH/north-1")
    with page.expect_navigation():
        page.click("text=Renew all 3")
    assert page.url == base + "/patrons/NORTH/north-1"
    texts = sorted(banner(page, n) for n in range(page.locator(".banner").count()))
    assert [text.split(":")[0] for text in texts] == ["N00001", "N00002 renewed", "N00003 renewed"]
    renewals = {barcode: net.api("NORTH", "GET", f"/api/v1/loans/{lent[barcode]['id']}").json()["renewals"]
                for barcode in ("N00001", "N00002", "N00003")}
    assert renewals == {"N00001": 1, "N00002": 1, "N00003": 1}

    # The visit page: the patron's other loans here, renewed by keyboard alone; the scan field has focus again.
    page.click("header >> text=Checkout")
    start_visit(page, "NORTH", "north-2")
    assert page.locator("text=Their other loans here: 1").count() == 1
    page.focus('button[aria-label="Renew N00004"]')
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == base + "/checkout/scan"
    assert banner(page).startswith("N00004 renewed:")
    assert focused_id(page) == "item_barcode"
    assert net.api("NORTH", "GET", f"/api/v1/loans/{lent['N00004']['id']}").json()["renewals"] == 1

    # The form is CSRF-protected: a POST without the token renews nothing.
    refused = page.request.post(base + "/loans/renew", form={"loan_id": lent["N00004"]["id"]}, max_redirects=0)
    assert refused.status in (400, 403)
    assert net.api("NORTH", "GET", f"/api/v1/loans/{lent['N00004']['id']}").json()["renewals"] == 1
