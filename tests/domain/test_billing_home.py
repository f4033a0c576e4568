"""The home node: lenders' fees posted on our patrons' accounts, blocks, payments, bursar export."""
import csv
import datetime
import io
import os
from decimal import Decimal

import pytest

from tests.helpers.billing import NOW, fee_event, held_loan, lend, post
from tests.helpers import REPO

UTC = datetime.timezone.utc


def standing(cfg):
    from node.domain.circulation import own_patron_standing
    return own_patron_standing(cfg, "n-100", NOW)


@pytest.fixture
def home(lender):
    """NORTH as the home node of n-100, with two of SOUTH's fees posted (45.00 and 10.00 CHF)."""
    held_loan(lender)
    assert post(lender, fee_event(1, "fee-r", "45.00"), fee_event(2, "fee-p", "10.00", reason="processing")) \
        == ["applied", "applied"]
    return lender


def test_lenders_fee_is_posted_once_and_blocks_at_the_threshold(home):
    from node.store.models import Fee
    assert Fee.select().count() == 2
    assert post(home, fee_event(1, "fee-r", "45.00")) == ["duplicate"]
    result = standing(home)
    assert (result.ok, result.code) == (False, "patron_blocked") and "55.00 CHF" in result.reason
    assert post(home, fee_event(3, "fee-x", "5.00", patron="nobody")) == ["rejected"]
    assert post(home, fee_event(4, "fee-y", "5.00", by="EAST")) == ["rejected"]  # only the lender bills
    assert Fee.select().count() == 2


def test_second_fee_for_the_same_loan_and_reason_is_refused_and_does_not_hold_up_the_queue(home):
    from node.store.models import Fee
    from sync.inbox import receive_batch
    answer = receive_batch(home, "SOUTH", [fee_event(3, "fee-r2", "40.00"), fee_event(4, "fee-f", "2.00",
                                                                                       reason="fine")], NOW)
    assert [(r["status"], r["reason"]) for r in answer["results"]] == [("rejected", "fee_conflict"),
                                                                      ("applied", "")]
    assert answer["acked_through"] == 4
    assert Fee.get(loan_id="loan-s-1", reason="replacement").id == "fee-r" and Fee.select().count() == 3


def test_credit_below_the_threshold_lifts_the_block(home):
    refund = fee_event(3, "fee-c", "-45.00", reason="refund", refund_of="fee-r")
    assert post(home, refund) == ["applied"]
    assert standing(home).ok


def test_fees_api_lists_the_account_with_balance_and_block(api):
    body = api("GET", "/api/v1/fees?patron_id=n-100").get_json()
    assert body["blocked"] is True and body["balance"] == {"CHF": "55.00"}
    assert sorted((f["id"], f["lender"], f["loan_id"], f["amount"], f["currency"], f["reason"], f["status"])
                  for f in body["fees"]) == [
        ("fee-p", "SOUTH", "loan-s-1", "10.00", "CHF", "processing", "open"),
        ("fee-r", "SOUTH", "loan-s-1", "45.00", "CHF", "replacement", "open")]
    assert api("GET", "/api/v1/fees?patron_id=nobody").status_code == 404
    assert api("GET", "/api/v1/fees?patron_id=n-100&status=late").get_json()["error"]["code"] == "invalid_field"
    assert api("GET", "/api/v1/fees").get_json()["fees"] == []  # without patron_id: what NORTH assessed (none)


@pytest.mark.parametrize("amount, code", [("abc", "invalid_field"), (-1, "invalid_field"), ("0", "invalid_field"),
                                          ("1.234", "invalid_field"), (True, "invalid_field"),
                                          (None, "invalid_field"), ("45.01", "amount_too_large"),
                                          # issue 12: each was a 500 (quantize raised InvalidOperation)
                                          ("1E+30", "invalid_field"), ("1e999999", "invalid_field"),
                                          ("-1E+30", "invalid_field"), ("1e-999999", "invalid_field"),
                                          ("NaN", "invalid_field"), ("Infinity", "invalid_field"),
                                          ("1000000000.01", "invalid_field"), ({"a": 1}, "invalid_field"),
                                          (["1"], "invalid_field")])
def test_bad_payments_are_refused_and_change_nothing(api, amount, code):
    from node.store.models import Fee, FeePayment, OutboxEvent
    r = api("POST", "/api/v1/fees/fee-r/pay", json={"amount": amount})
    assert r.get_json()["error"]["code"] == code, r.get_json()
    assert FeePayment.select().count() == 0 and Fee.get_by_id("fee-r").paid == 0
    assert OutboxEvent.select().count() == 0


@pytest.mark.parametrize("body, code", [
    ('{"amount": 1E+30}', "number_out_of_range"), ('{"amount": 1e999999}', "number_out_of_range"),
    ('{"amount": ' + "1" * 5000 + "}", "number_out_of_range"), ('{"amount": NaN}', "bad_request"),
    ('{"amount": ' * 100000, "body_too_deep"), ("[" * 100000 + "]" * 100000, "body_too_deep"),
    ('{"amount": ' * 40 + '"1.00"' + "}" * 40, "body_too_deep"), ('"45.00"', "bad_request")])
def test_malformed_payment_bodies_are_a_400_with_a_stable_code(api, body, code):
    from node.store.models import Fee, FeePayment
    r = api("POST", "/api/v1/fees/fee-r/pay", data=body, content_type="application/json")
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, code)
    assert FeePayment.select().count() == 0 and Fee.get_by_id("fee-r").paid == 0


def test_a_payment_in_a_currency_without_minor_units_is_whole(api, home):
    from node.store.models import Fee, FeePayment
    Fee.update(currency="JPY").where(Fee.id == "fee-r").execute()
    r = api("POST", "/api/v1/fees/fee-r/pay", json={"amount": "10.50"})
    assert (r.status_code, r.get_json()["error"]["code"]) == (400, "invalid_field")
    assert FeePayment.select().count() == 0
    assert api("POST", "/api/v1/fees/fee-r/pay", json={"amount": "10.00"}).status_code == 200


def test_payments_and_waivers_settle_at_home_and_go_back_to_the_lender(api, home):
    from node.store.models import Fee, OutboxEvent
    r = api("POST", "/api/v1/fees/fee-r/pay", data='{"amount": 20.10}', content_type="application/json")
    assert r.status_code == 200 and r.get_json()["paid"] == "20.10" and r.get_json()["status"] == "open"
    r = api("POST", "/api/v1/fees/fee-r/pay", json={"amount": "24.90", "note": "receipt 77"})
    assert r.get_json()["status"] == "paid" and Fee.get_by_id("fee-r").paid == Decimal("45.00")
    assert api("POST", "/api/v1/fees/fee-r/pay", json={"amount": "1"}).get_json()["error"]["code"] == "fee_settled"
    assert api("POST", "/api/v1/fees/fee-p/waive", json={"reason": "first time"}).status_code == 403  # desk
    assert api("POST", "/api/v1/fees/fee-p/waive", role="admin", json={}).status_code == 400
    r = api("POST", "/api/v1/fees/fee-p/waive", role="admin", json={"reason": "first time"})
    assert r.get_json()["status"] == "waived"
    assert api("POST", "/api/v1/fees/nope/pay", json={"amount": "1"}).get_json()["error"]["code"] == "fee_not_found"
    events = [(e.destination, e.type, e.data["data"]["amount"], e.data["data"]["status"])
              for e in OutboxEvent.select().order_by(OutboxEvent.sequence)]
    assert events == [("SOUTH", "fee.paid", "20.10", "open"), ("SOUTH", "fee.paid", "24.90", "paid"),
                      ("SOUTH", "fee.waived", "10.00", "waived")]
    assert standing(home).ok
    (row,) = api("GET", "/api/v1/settlement").get_json()["rows"]
    assert row == {"peer": "SOUTH", "role": "home", "currency": "CHF", "fees": 2, "charged": "55.00",
                   "credited": "0.00", "collected": "45.00", "waived": "10.00", "open": "0.00",
                   "owed_to_lender": "45.00"}


def test_a_fee_is_paid_at_the_patrons_home_not_at_the_lender(api, home):
    from node.domain.circulation import return_item
    lend(home, "N0002", "SOUTH", "south-7")
    return_item(home, "N0002", datetime.datetime(2026, 3, 18, 10, 0, tzinfo=UTC))
    ledger = api("GET", "/api/v1/fees").get_json()["fees"]
    assert [(f["reason"], f["amount"], f["patron"]) for f in ledger] == [
        ("fine", "1.00", {"institution": "SOUTH", "id": "south-7"})]
    r = api("POST", f"/api/v1/fees/{ledger[0]['id']}/pay", json={"amount": "1.00"})
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "fee_not_home"


def test_lender_ledger_shows_what_the_home_node_collected(lender):
    from node.domain.circulation import return_item
    from node.store.models import Fee
    from sync.inbox import receive_batch
    lend(lender, "N0002", "SOUTH", "south-7")
    return_item(lender, "N0002", datetime.datetime(2026, 3, 18, 10, 0, tzinfo=UTC))
    fee = Fee.get()
    paid = {"event_id": "pay-1", "type": "fee.paid", "version": 1, "origin": "SOUTH", "destination": "NORTH",
            "sequence": 1, "occurred_at": "2026-04-01T10:00:00+00:00",
            "data": {"fee_id": fee.id, "payment_id": "p-1", "kind": "payment", "amount": "1.00", "currency": "CHF",
                     "at": "2026-04-01T10:00:00+00:00", "status": "paid", "paid": "1.00", "note": ""}}
    assert receive_batch(lender, "SOUTH", [paid], NOW)["results"][0]["status"] == "applied"
    again = dict(paid, sequence=2, event_id="pay-1b")
    assert receive_batch(lender, "SOUTH", [again], NOW)["results"][0]["status"] == "applied"  # same payment id
    fee = Fee.get()
    assert (fee.status, fee.paid, fee.payments.count()) == ("paid", Decimal("1.00"), 1)
    from node.domain.billing import settlement
    assert settlement(lender)[0]["role"] == "lender" and settlement(lender)[0]["collected"] == "1.00"


def test_bursar_export_writes_each_fee_once_and_reprints_a_batch(home, tmp_path, runner):
    first = tmp_path / "b1.csv"
    result = runner(home, "bursar", "export", "--output", str(first))
    assert result.exit_code == 0 and "batch 1: 2 fees, CHF 55.00" in result.output
    rows = list(csv.DictReader(io.StringIO(first.read_text(encoding="utf-8"))))
    assert [(r["patron_id"], r["patron_name"], r["charge_type"], r["amount"], r["currency"], r["lender"],
             r["batch"], r["fee_id"]) for r in rows] == [  # in order of assessment, then of fee id
        ("n-100", "Nora North", "LOST_PROCESSING", "10.00", "CHF", "SOUTH", "1", "fee-p"),
        ("n-100", "Nora North", "LOST_REPLACEMENT", "45.00", "CHF", "SOUTH", "1", "fee-r")]
    assert rows[1]["description"] == "Lost item, replacement cost: Southern atlas (S0001), South College"
    assert rows[1]["assessed_on"] == "2026-04-15"
    assert first.read_bytes().startswith(b"patron_id,patron_name,charge_type,amount,")
    assert b"\r\n" in first.read_bytes()
    again = runner(home, "bursar", "export", "--output", str(tmp_path / "b2.csv"))
    assert again.exit_code == 0 and "nothing to export" in again.output and not (tmp_path / "b2.csv").exists()
    post(home, fee_event(3, "fee-c", "-45.00", reason="refund", refund_of="fee-r"))
    second = runner(home, "bursar", "export", "--output", "-")
    assert second.exit_code == 0 and ",LOST_REFUND,-45.00,CHF," in second.output and "fee-r" not in second.output
    reprint = tmp_path / "again.csv"
    assert runner(home, "bursar", "export", "--batch", "1", "--output", str(reprint)).exit_code == 0
    assert reprint.read_bytes() == first.read_bytes()
    missing = runner(home, "bursar", "export", "--batch", "9")
    assert missing.exit_code == 2 and "[batch_not_found]" in missing.output


def test_every_bursar_column_is_documented():
    from node.domain.bursar import COLUMNS
    with open(os.path.join(REPO, "docs", "billing.md"), encoding="utf-8") as handle:
        text = handle.read()
    assert [name for name, _ in COLUMNS] == [
        "patron_id", "patron_name", "charge_type", "amount", "currency", "assessed_on", "description", "lender",
        "lender_name", "item_barcode", "fee_id", "loan_id", "batch"]
    missing = [name for name, _ in COLUMNS if f"`{name}`" not in text]
    assert not missing, missing


def test_cli_records_payments_and_refuses_with_one_line(home, runner):
    result = runner(home, "fees", "pay", "fee-r", "45.00", "--note", "cash")
    assert result.exit_code == 0 and "paid 45.00 of 45.00 CHF (paid)" in result.output
    refused = runner(home, "fees", "pay", "fee-p", "12.345")
    assert refused.exit_code == 2 and refused.output.count("\n") == 1 and "[invalid_field]" in refused.output
    waived = runner(home, "fees", "waive", "fee-p", "--reason", "goodwill")
    assert waived.exit_code == 0 and "waived (10.00 CHF)" in waived.output
    listing = runner(home, "fees", "list", "--patron", "n-100")
    assert "paid" in listing.output and "waived" in listing.output
    report = runner(home, "settlement")
    assert "SOUTH" in report.output and "45.00" in report.output


def test_cashier_and_bursar_pages(api, home):
    client = api.client
    login = client.get("/login").get_data(as_text=True)
    token = login.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/login", data={"name": "boss", "password": "battery staple", "csrf_token": token})
    page = client.get("/billing/patrons/n-100").get_data(as_text=True)
    assert "55.00 CHF" in page and "Blocked" in page and "Southern atlas" in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    r = client.post("/billing/fees/fee-r/pay", data={"amount": "45.00", "csrf_token": token})
    assert r.status_code == 302
    assert "Payment recorded" in client.get(r.headers["Location"]).get_data(as_text=True)
    r = client.post("/billing/bursar", data={"csrf_token": token})
    assert r.status_code == 302
    page = client.get("/billing/bursar").get_data(as_text=True)
    assert "Batch 1" in page and "/billing/bursar/1.csv" in page
    assert client.get("/billing/bursar/1.csv").get_data(as_text=True).count("\r\n") == 3
    assert "Southern atlas" not in client.get("/billing/ledger").get_data(as_text=True)  # SOUTH assessed it


def test_every_billing_endpoint_and_command_is_documented(api):
    import re

    from node.cli import billing, jobs
    with open(os.path.join(REPO, "docs", "billing.md"), encoding="utf-8") as handle:
        text = handle.read()
    app = api.client.application
    paths = {re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"<\1>", rule.rule) for rule in app.url_map.iter_rules()
             if rule.endpoint.startswith(("billing_api.", "account.")) or rule.endpoint == "peer.renew_for_home"}
    assert "/api/v1/fees/<fee_id>/pay" in paths
    documented = re.sub(r"<\w+>", "<id>", text)
    missing = [path for path in paths if re.sub(r"<\w+>", "<id>", path) not in documented]
    assert not missing, missing
    for group in [*jobs.COMMANDS, *billing.COMMANDS]:
        names = [group.name] + [f"{group.name} {sub}" for sub in getattr(group, "commands", {})]
        for name in names:
            assert f"circnode {name}" in text, name


def test_a_home_reports_only_payments_that_add_up(lender):
    """The home's stated total and status must be the lender's record plus this payment; none after settling."""
    from node.domain.circulation import return_item
    from node.store.models import Fee
    from sync.inbox import receive_batch
    lend(lender, "N0002", "SOUTH", "south-7")
    return_item(lender, "N0002", datetime.datetime(2026, 3, 20, 10, 0, tzinfo=UTC))
    fee = Fee.get()
    assert fee.amount == Decimal("2.00")

    def settled(sequence, payment_id, amount, paid, status, kind="payment"):
        return {"event_id": f"pay-{sequence}", "type": f"fee.{'paid' if kind == 'payment' else 'waived'}",
                "version": 1, "origin": "SOUTH", "destination": "NORTH", "sequence": sequence,
                "occurred_at": "2026-04-01T10:00:00+00:00",
                "data": {"fee_id": fee.id, "payment_id": payment_id, "kind": kind, "amount": amount,
                         "currency": "CHF", "at": "2026-04-01T10:00:00+00:00", "status": status, "paid": paid}}
    answer = receive_batch(lender, "SOUTH", [
        settled(1, "p-1", "0.01", "2.00", "paid"),  # a cent that claims to settle the fee
        settled(2, "p-2", "1.00", "1.00", "waived"),  # a payment that claims a waiver
        settled(3, "p-3", "1.00", "1.00", "open"),  # honest
        settled(4, "p-4", "1.00", "1.00", "waived", kind="waiver"),  # honest: the rest waived
        settled(5, "p-5", "1.00", "2.00", "paid"),  # after the waiver: nothing is open
    ], NOW)
    assert [(r["status"], r["reason"]) for r in answer["results"]] == [
        ("rejected", "amount_out_of_range"), ("rejected", "malformed_event"), ("applied", ""), ("applied", ""),
        ("rejected", "fee_settled")]
    fee = Fee.get()
    assert (fee.status, fee.paid, sorted(p.id for p in fee.payments)) == ("waived", Decimal("1.00"), ["p-3", "p-4"])
