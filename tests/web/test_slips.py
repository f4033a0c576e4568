"""Slips in the Flask test client: staff only, unforgeable addresses, and [desk] print_slips (issue 14, point 5).

The paper itself (print stylesheet, Chromium, PDF) is tests/web/test_slips_browser.py.
"""
import re

import pytest
from itsdangerous import URLSafeTimedSerializer

from tests.helpers.billing import build_lender, fee_event, held_loan, post
from tests.helpers.desk import post_form, sign_in


def desk_client(cfg):
    from node.domain.accounts import add_staff
    from node.web.app import create_app
    from tests.helpers.billing import NOW
    from tests.helpers.desk import PASSWORD
    app = create_app(cfg, {"TESTING": True})
    add_staff("desk1", "desk", PASSWORD, NOW)
    client = app.test_client()
    sign_in(client)
    return client


@pytest.fixture
def auto(tmp_path):
    """NORTH with [desk] print_slips = auto, a desk signed in, and SOUTH's item S0001 lent to our n-100."""
    cfg = build_lender(tmp_path, extra="\n[desk]\nprint_slips = auto\n")
    client = desk_client(cfg)
    held_loan(cfg)
    yield client
    from node.store.db import database
    database.close()


@pytest.fixture
def link(lender):
    """NORTH as the tests/helpers/billing.py lender (print_slips = no), a desk signed in, S0001 lent to n-100."""
    client = desk_client(lender)
    held_loan(lender)
    return client


def visit_with_two_loans(client):
    assert post_form(client, "/checkout", {"institution": "NORTH", "patron_id": "n-100"}).status_code == 302
    for barcode in ("N0001", "N0002"):
        post_form(client, "/checkout/scan", {"item_barcode": barcode})
    return client.get("/checkout/scan").get_data(as_text=True)


def test_with_print_slips_auto_each_slip_opens_and_prints_as_it_is_made(auto):
    visit_with_two_loans(auto)
    done = post_form(auto, "/checkout/done", {}, from_page="/checkout/scan")
    assert re.fullmatch(r"/slips/[\w.-]+\?print=1", done.headers["Location"]), done.headers["Location"]
    slip = auto.get(done.headers["Location"]).get_data(as_text=True)
    assert 'data-print-now="yes"' in slip and "N0001" in slip and "N0002" in slip and "Nora North" in slip
    assert 'src="/static/slip-print.js"' in slip and "<script>" not in slip  # the CSP allows no inline script

    returned = post_form(auto, "/return", {"item_barcode": "S0001"})
    assert returned.headers["Location"].startswith("/slips/") and returned.headers["Location"].endswith("?print=1")
    slip = auto.get(returned.headers["Location"]).get_data(as_text=True)
    assert "Send to South College" in slip and "S0001" in slip and "Nora" not in slip

    post(auto.application.extensions["circnode"], fee_event(1, "fee-r", "45.00"))
    paid = post_form(auto, "/billing/patrons/n-100/pay", {"amount": "20.00", "method": "cash"},
                     from_page="/billing/patrons/n-100")
    assert paid.headers["Location"].startswith("/slips/") and paid.headers["Location"].endswith("?print=1")
    slip = auto.get(paid.headers["Location"]).get_data(as_text=True)
    assert "Payment receipt" in slip and "20.00" in slip and "25.00 CHF" in slip and "Southern atlas" in slip


def test_with_print_slips_no_the_desk_offers_one_click_links(link):
    page = visit_with_two_loans(link)
    assert re.search(r'id="print-receipt" href="/slips/[\w.-]+\?print=1"', page)
    done = post_form(link, "/checkout/done", {}, from_page="/checkout/scan")
    assert done.headers["Location"] == "/checkout"
    returned = post_form(link, "/return", {"item_barcode": "S0001"})
    assert returned.headers["Location"].startswith("/return?transit_slip=")
    page = link.get(returned.headers["Location"]).get_data(as_text=True)
    assert "Send to South College" in page and 'id="print-transit-slip"' in page
    slip = link.get(re.search(r'id="print-transit-slip" href="([^"]+)"', page).group(1).replace("&amp;", "&"))
    assert slip.status_code == 200 and 'data-print-now="yes"' in slip.get_data(as_text=True)


def test_a_slip_needs_staff_sign_in_and_an_address_signed_by_this_node(link):
    from node.store.models import Loan
    page = visit_with_two_loans(link)
    url = re.search(r'id="print-receipt" href="([^"]+)"', page).group(1)
    assert link.get(url).status_code == 200
    token = url.split("/slips/")[1].split("?")[0]
    assert link.get(f"/slips/{token[:-2]}xx").status_code == 404  # edited
    app = link.application
    own = [loan.id for loan in Loan.select().where(Loan.lender == "NORTH")]
    foreign = URLSafeTimedSerializer("another-nodes-secret-0123456789", salt="circnode.slip").dumps(["visit", own])
    assert link.get(f"/slips/{foreign}").status_code == 404
    from node.web import slips
    with app.test_request_context():
        wrong = {"not a kind": slips.slip_token("receipt", own),
                 "another lender's loan": slips.slip_token("visit", ["loan-s-1"]),
                 "an own item is no transit": slips.slip_token("transit", own[:1]),
                 "loan ids are no payments": slips.slip_token("payment", own),
                 "an unknown loan": slips.slip_token("visit", own + ["nope"])}
    for why, forged in wrong.items():
        assert link.get(f"/slips/{forged}").status_code == 404, why
    link.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)})
    signed_out = link.get(url)
    assert signed_out.status_code == 302 and "/login" in signed_out.headers["Location"]


@pytest.mark.parametrize("value, parsed", [("no", "no"), ("auto", "auto"), ("yes", "auto"), ("Off", "no")])
def test_print_slips_setting_reads_no_or_auto(tmp_path, value, parsed):
    from node import config
    from tests.helpers.config import write_config
    cfg = config.load(write_config(str(tmp_path), extra=f"\n[desk]\nprint_slips = {value}\n"))
    assert cfg.sections["desk"]["print_slips"] == parsed


def test_a_bad_print_slips_value_names_the_key(tmp_path):
    from node import config
    from tests.helpers.config import write_config
    with pytest.raises(config.ConfigError) as refused:
        config.load(write_config(str(tmp_path), extra="\n[desk]\nprint_slips = sometimes\n"))
    assert "[desk] print_slips: expected no or auto (got 'sometimes')" in str(refused.value)
