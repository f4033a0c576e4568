"""The cashier (issue 14, point 8): a patron's whole balance or part of it at once, oldest fee first.

NORTH is the home node of n-100, on whose account SOUTH posted three fees, oldest first: a fine of
5.00, a replacement cost of 45.00 and a processing fee of 10.00 (CHF, 60.00 in all).
"""
import datetime
from decimal import Decimal

import pytest

from tests.helpers.billing import NOW, fee_event, held_loan, post

UTC = datetime.timezone.utc
OLDEST_FIRST = ("fee-f", "fee-r", "fee-p")


@pytest.fixture
def home(lender):
    from node.store.models import Fee
    held_loan(lender)
    assert post(lender, fee_event(1, "fee-r", "45.00"), fee_event(2, "fee-p", "10.00", reason="processing"),
                fee_event(3, "fee-f", "5.00", reason="fine")) == ["applied"] * 3
    for days, fee_id in enumerate(OLDEST_FIRST):  # assessed on three days, the ids in another order
        Fee.update(assessed_at=datetime.datetime(2026, 4, 10 + days, 9, 0, tzinfo=UTC)).where(Fee.id == fee_id).execute()
    return lender


def fees():
    from node.store.models import Fee
    return {fee.id: (fee.status, str(fee.paid)) for fee in Fee.select()}


def sent():
    """The settlement events in the outbox to the lender, in order: (type, fee, amount, status, paid)."""
    from node.store.models import OutboxEvent
    return [(e.destination, e.type, e.data["data"]["fee_id"], e.data["data"]["amount"], e.data["data"]["status"],
             e.data["data"]["paid"]) for e in OutboxEvent.select().order_by(OutboxEvent.sequence)]


def unchanged():
    from node.store.models import FeePayment, OutboxEvent
    return (FeePayment.select().count() == 0 and OutboxEvent.select().count() == 0
            and set(fees().values()) == {("open", "0.00")})


def test_part_of_the_balance_pays_the_oldest_fees_first_and_the_last_partly(api):
    r = api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-100", "amount": "30.00", "method": "card",
                                                     "note": "till 2"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["paid"], body["waived"], body["remaining"], body["currency"], body["method"]) == (
        "30.00", "0.00", "30.00", "CHF", "card")
    assert [(p["fee_id"], p["kind"], p["amount"], p["item"]["barcode"]) for p in body["payments"]] == [
        ("fee-f", "payment", "5.00", "S0001"), ("fee-r", "payment", "25.00", "S0001")]
    assert body["patron"] == {"institution": "NORTH", "id": "n-100"} and body["receipt_url"].startswith("/slips/")
    assert fees() == {"fee-f": ("paid", "5.00"), "fee-r": ("open", "25.00"), "fee-p": ("open", "0.00")}
    # Each fee's payment goes to its lender exactly as a payment on that fee alone does.
    assert sent() == [("SOUTH", "fee.paid", "fee-f", "5.00", "paid", "5.00"),
                      ("SOUTH", "fee.paid", "fee-r", "25.00", "open", "25.00")]
    account = api("GET", "/api/v1/fees?patron_id=n-100").get_json()
    assert account["balance"] == {"CHF": "30.00"}


def test_the_whole_balance_settles_every_fee_and_lifts_the_fee_block(api, home):
    from node.domain.circulation import own_patron_standing
    from node.store.models import FeePayment
    assert own_patron_standing(home, "n-100", NOW).code == "patron_blocked"
    r = api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-100", "amount": 60})
    assert r.status_code == 200 and r.get_json()["remaining"] == "0.00" and r.get_json()["method"] == "cash"
    assert set(fees().values()) == {("paid", "5.00"), ("paid", "45.00"), ("paid", "10.00")}
    assert [fee_id for _, _, fee_id, *_ in sent()] == list(OLDEST_FIRST)
    assert {p.method for p in FeePayment.select()} == {"cash"}
    assert own_patron_standing(home, "n-100", NOW).ok
    again = api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-100", "amount": "1.00"})
    assert (again.status_code, again.get_json()["error"]["code"]) == (422, "no_open_fees")


@pytest.mark.parametrize("body, status, code", [
    ({"patron_id": "n-100", "amount": "0"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "0.00"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "-5.00"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": -5}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "60.01"}, 422, "amount_too_large"),
    ({"patron_id": "n-100", "amount": "abc"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "12,50"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "1.234"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "NaN"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "1E+30"}, 400, "invalid_field"),
    # docs/billing.md: ASCII digits, an optional dot and decimals; no exponent, no other digits
    ({"patron_id": "n-100", "amount": "1E1"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "1e-2"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "\uff11\uff10"}, 400, "invalid_field"),  # full-width 10
    ({"patron_id": "n-100", "amount": "\u0661\u0660"}, 400, "invalid_field"),  # Arabic-Indic 10
    ({"patron_id": "n-100", "amount": "1_0"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "+5"}, 400, "invalid_field"),
    ({"patron_id": "n-100"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "5.00", "method": "cheque"}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "5.00", "note": 7}, 400, "invalid_field"),
    ({"patron_id": "n-100", "amount": "5.00", "currency": "EUR"}, 422, "no_open_fees"),
    ({"patron_id": "n-100", "amount": "5.00", "currency": 5}, 400, "invalid_field"),
    ({"patron_id": "nobody", "amount": "5.00"}, 404, "patron_not_found"),
    ({"patron_id": "", "amount": "5.00"}, 400, "invalid_field"),
    ({"amount": "5.00"}, 400, "invalid_field"),
])
def test_bad_balance_payments_are_refused_with_a_stable_code_and_change_nothing(api, body, status, code):
    r = api("POST", "/api/v1/fees/pay-balance", json=body)
    assert (r.status_code, r.get_json()["error"]["code"]) == (status, code), r.get_json()
    assert unchanged()


@pytest.mark.parametrize("body", ['{"patron_id": "n-100", "amount": 1e1}', '{"patron_id": "n-100", "amount": 1E+1}'])
def test_a_json_number_in_exponent_form_is_refused(api, body):
    r = api("POST", "/api/v1/fees/pay-balance", data=body, content_type="application/json")
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "invalid_field"), r.get_json()
    assert unchanged()


def test_a_patron_with_no_open_fees_has_no_balance_to_pay(api):
    from node.store.models import Patron
    Patron.create(institution="NORTH", home_id="n-200", name="Nils North", updated_at=NOW)
    r = api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-200", "amount": "1.00"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (422, "no_open_fees")
    assert unchanged()


def test_a_balance_in_two_currencies_needs_the_currency_named(api):
    from node.store.models import Fee
    Fee.update(currency="EUR").where(Fee.id == "fee-p").execute()
    r = api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-100", "amount": "5.00"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "invalid_field")
    assert "CHF and EUR" in r.get_json()["error"]["message"] and unchanged()
    r = api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-100", "amount": "10.00", "currency": "eur"})
    assert r.status_code == 200 and [p["fee_id"] for p in r.get_json()["payments"]] == ["fee-p"]
    assert fees()["fee-f"] == ("open", "0.00")


def test_an_open_credit_is_applied_to_the_oldest_charges_first(api, home):
    from node.domain import billing
    assert post(home, fee_event(4, "fee-c", "-45.00", reason="refund", refund_of="fee-r")) == ["applied"]
    r = api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-100", "amount": "15.00"})
    assert r.status_code == 200 and r.get_json()["paid"] == "15.00", r.get_json()
    assert fees() == {"fee-f": ("paid", "5.00"), "fee-r": ("paid", "45.00"), "fee-p": ("paid", "10.00"),
                      "fee-c": ("paid", "-45.00")}
    # The credit pays 5.00 of the fine and 40.00 of the replacement; the money the other 15.00.
    assert sent() == [("SOUTH", "fee.paid", "fee-c", "-5.00", "open", "-5.00"),
                      ("SOUTH", "fee.paid", "fee-f", "5.00", "paid", "5.00"),
                      ("SOUTH", "fee.paid", "fee-c", "-40.00", "paid", "-45.00"),
                      ("SOUTH", "fee.paid", "fee-r", "40.00", "open", "40.00"),
                      ("SOUTH", "fee.paid", "fee-r", "5.00", "paid", "45.00"),
                      ("SOUTH", "fee.paid", "fee-p", "10.00", "paid", "10.00")]
    assert billing.balances(billing.Patron.get(home_id="n-100")) == {}


def test_a_credit_for_a_fee_never_paid_is_not_paid_out_in_cash(api, home):
    # A lost item came back: SOUTH credits the 45.00 replacement the patron never paid.
    assert post(home, fee_event(4, "fee-c", "-45.00", reason="refund", refund_of="fee-r")) == ["applied"]
    r = api("POST", "/api/v1/fees/fee-c/pay", json={"amount": "45.00"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (422, "credit_offsets_fees"), r.get_json()
    assert r.get_json()["error"]["details"] == {"owed": "60.00", "payable": "0.00"}
    assert unchanged()
    # Once the patron's charges are paid (the balance nets the credit), nothing is left to pay out either.
    r = api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-100", "amount": "15.00"})
    assert r.status_code == 200 and fees()["fee-c"] == ("paid", "-45.00")


def test_a_credit_beyond_what_is_owed_is_paid_out(api, home):
    from node.domain import billing
    assert api("POST", "/api/v1/fees/pay-balance", json={"patron_id": "n-100", "amount": "60.00"}).status_code == 200
    assert post(home, fee_event(4, "fee-c", "-45.00", reason="refund", refund_of="fee-r")) == ["applied"]
    r = api("POST", "/api/v1/fees/fee-c/pay", json={"amount": "45.00"})  # paid in full earlier: cash back
    assert r.status_code == 200, r.get_json()
    assert fees()["fee-c"] == ("paid", "-45.00")
    assert billing.balances(billing.Patron.get(home_id="n-100")) == {}


def test_waiving_a_balance_settles_whole_fees_and_refuses_an_amount_inside_a_fee(api):
    assert api("POST", "/api/v1/fees/waive-balance",
               json={"patron_id": "n-100", "amount": "50.00", "reason": "goodwill"}).status_code == 403  # desk
    r = api("POST", "/api/v1/fees/waive-balance", role="admin",
            json={"patron_id": "n-100", "amount": "30.00", "reason": "goodwill"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (422, "amount_splits_fee")
    assert r.get_json()["error"]["details"] == {"below": "5.00", "above": "50.00"}
    assert unchanged()
    r = api("POST", "/api/v1/fees/waive-balance", role="admin", json={"patron_id": "n-100", "amount": "50.00"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "invalid_field")  # no reason
    r = api("POST", "/api/v1/fees/waive-balance", role="admin",
            json={"patron_id": "n-100", "amount": "50.00", "reason": "goodwill"})
    assert r.status_code == 200 and (r.get_json()["waived"], r.get_json()["remaining"]) == ("50.00", "10.00")
    assert fees() == {"fee-f": ("waived", "0.00"), "fee-r": ("waived", "0.00"), "fee-p": ("open", "0.00")}
    assert [(t, f, a, s) for _, t, f, a, s, _ in sent()] == [("fee.waived", "fee-f", "5.00", "waived"),
                                                             ("fee.waived", "fee-r", "45.00", "waived")]


def test_cli_pays_a_patrons_balance_and_keeps_the_fee_id_form(home, runner):
    paid = runner(home, "fees", "pay", "--patron", "n-100", "--amount", "8.00", "--method", "card")
    assert paid.exit_code == 0, paid.output
    assert "paid 8.00 CHF (card); 52.00 CHF left" in paid.output
    assert "S0001 Southern atlas (fine, SOUTH; fee fee-f now paid)" in paid.output
    assert fees()["fee-r"] == ("open", "3.00")
    one = runner(home, "fees", "pay", "fee-p", "10.00")
    assert one.exit_code == 0 and "paid 10.00 of 10.00 CHF (paid)" in one.output
    waived = runner(home, "fees", "waive", "--patron", "n-100", "--amount", "42.00", "--reason", "goodwill")
    assert waived.exit_code == 0 and "waived 42.00 CHF; 0.00 CHF left" in waived.output


@pytest.mark.parametrize("args, message", [
    (["--amount", "0"], "[invalid_field]"), (["--amount", "-1"], "[invalid_field]"),
    (["--amount", "60.01"], "[amount_too_large]"), (["--amount", "ten"], "[invalid_field]"),
    (["--amount", "5", "--method", "iou"], "[invalid_field]"),
    (["--amount", "1e1"], "[invalid_field]"), (["--amount", "\uff11\uff10"], "[invalid_field]"),
])
def test_cli_refuses_a_bad_balance_payment_in_one_line_with_exit_2(home, runner, args, message):
    result = runner(home, "fees", "pay", "--patron", "n-100", *args)
    assert result.exit_code == 2 and message in result.output and result.output.count("\n") == 1, result.output
    assert unchanged()


def test_cli_refuses_an_unknown_patron_a_patron_owing_nothing_and_half_a_command(home, runner):
    from node.store.models import Patron
    Patron.create(institution="NORTH", home_id="n-200", name="Nils North", updated_at=NOW)
    unknown = runner(home, "fees", "pay", "--patron", "nobody", "--amount", "5")
    assert unknown.exit_code == 2 and "[patron_not_found]" in unknown.output
    nothing = runner(home, "fees", "pay", "--patron", "n-200", "--amount", "5")
    assert nothing.exit_code == 2 and "[no_open_fees]" in nothing.output
    for args, message in ((["--patron", "n-100"], "--patron needs --amount X"),
                          (["fee-r", "5", "--patron", "n-100", "--amount", "5"], "not both"),
                          (["fee-r"], "give FEE_ID AMOUNT, or --patron ID --amount X"),
                          ([], "give FEE_ID AMOUNT, or --patron ID --amount X")):
        usage = runner(home, "fees", "pay", *args)
        assert usage.exit_code == 2 and message in usage.output, (args, usage.output)
    assert unchanged()


def test_cli_fees_list_has_a_header_row_and_shows_patron_barcode_and_title(home, runner):
    listing = runner(home, "fees", "list", "--patron", "n-100").output.splitlines()
    assert listing[0].split() == ["fee", "lender", "patron", "barcode", "title", "reason", "amount", "cur",
                                  "status", "paid"]
    assert len(listing) == 4
    assert all("NORTH:n-100" in line and "S0001" in line and "Southern atlas" in line for line in listing[1:])
    assert not any("loan-s-1" in line for line in listing)


def test_cashier_page_pays_the_balance_and_offers_the_receipt(api, home):
    from node.store.models import FeePayment
    client = api.client
    login = client.get("/login").get_data(as_text=True)
    token = login.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"name": "cashier", "password": "correct horse", "csrf_token": token})
    page = client.get("/billing/patrons/n-100").get_data(as_text=True)
    assert 'id="pay-amount-CHF" name="amount" size="9" value="60.00"' in page  # the whole balance by default
    assert "waive-balance" not in page  # desk staff do not waive
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    refused = client.post("/billing/patrons/n-100/pay", data={"amount": "70", "method": "cash", "csrf_token": token})
    assert "Only 60.00 CHF is open" in client.get(refused.headers["Location"]).get_data(as_text=True)
    assert unchanged()
    r = client.post("/billing/patrons/n-100/pay", data={"amount": "60.00", "method": "cash", "currency": "CHF",
                                                        "csrf_token": token})
    assert r.status_code == 302 and "receipt=" in r.headers["Location"]
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Payment recorded: 60.00 CHF (cash) on 3 fees; 0.00 CHF left." in page
    assert 'id="print-payment-receipt"' in page and FeePayment.select().count() == 3
    no_csrf = client.post("/billing/patrons/n-100/pay", data={"amount": "1.00", "method": "cash"})
    assert no_csrf.status_code == 403 and FeePayment.select().count() == 3


def test_lender_ledger_shows_patron_barcode_and_title_not_the_loan_id(lender):
    from node.domain.accounts import add_staff
    from node.domain.circulation import return_item
    from node.store.models import Fee
    from node.web.app import create_app
    from tests.helpers.billing import lend
    lend(lender, "N0002", "SOUTH", "south-7")
    return_item(lender, "N0002", datetime.datetime(2026, 3, 18, 10, 0, tzinfo=UTC))
    app = create_app(lender, {"TESTING": True})
    add_staff("cashier", "desk", "correct horse", NOW)
    client = app.test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"name": "cashier", "password": "correct horse", "csrf_token": token})
    ledger = client.get("/billing/ledger").get_data(as_text=True)
    row = ledger.split('<table id="ledger">')[1]
    assert Fee.get().amount == Decimal("1.00")
    assert "SOUTH · south-7" in row and "N0002" in row and "Book 2" in row
    assert f"<code>{Fee.get().loan_id}</code>" not in row


def test_a_refused_waiver_after_the_credits_were_applied_leaves_nothing_behind(home):
    """One transaction: the credit's payments, made before the waiver is found to split a fee, roll back too."""
    from node.domain import billing, errors
    from node.store.models import FeePayment, OutboxEvent
    assert post(home, fee_event(4, "fee-c", "-45.00", reason="refund", refund_of="fee-r")) == ["applied"]
    with pytest.raises(errors.AmountSplitsFee) as refused:
        billing.waive_balance(home, "n-100", "12.00", "goodwill", NOW, staff="boss")
    # After the credit: fine and replacement paid by it (5.00 + 40.00), 5.00 of the replacement and 10.00 open.
    assert refused.value.details == {"below": "5.00", "above": "15.00"}
    assert FeePayment.select().count() == 0 and OutboxEvent.select().count() == 0
    assert fees()["fee-c"] == ("open", "0.00") and fees()["fee-r"] == ("open", "0.00")
    receipt = billing.waive_balance(home, "n-100", "15.00", "goodwill", NOW, staff="boss")
    assert (receipt.paid, receipt.waived, receipt.remaining) == (Decimal("0.00"), Decimal("15.00"), Decimal("0.00"))
    assert fees() == {"fee-f": ("paid", "5.00"), "fee-r": ("waived", "40.00"), "fee-p": ("waived", "0.00"),
                      "fee-c": ("paid", "-45.00")}
