"""The bursar file never hands a spreadsheet a formula: names, barcodes and ids from desks and peers.

A patron name ``=HYPERLINK(...)`` registered here, barcodes ``=1+1``, ``+X``,
``@X``, ``-X`` in a peer's real fee events, and barcodes with a leading tab or
carriage return on our own items lost by our own patron, all exported with
``circnode bursar export`` and read back with the csv module.
"""
import csv
import datetime
from decimal import Decimal

import pytest

from tests.helpers.billing import NOW, fee_event, lend, post

UTC = datetime.timezone.utc
EVIL_NAME = '=HYPERLINK("http://evil.example","pay")'


@pytest.mark.parametrize("raw, written", [
    ("=1+1", "'=1+1"), ("+X", "'+X"), ("@X", "'@X"), ("-X", "'-X"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("-1+1", "'-1+1"), ("-45.00x", "'-45.00x"), ("+45.00", "'+45.00"), (EVIL_NAME, "'" + EVIL_NAME),
    ("-45.00", "-45.00"), ("-45", "-45"), ("45.00", "45.00"), ("a=b", "a=b"), ("Nora North", "Nora North"),
    ("", ""), (None, ""), (7, "7")])
def test_a_cell_a_spreadsheet_would_run_gets_a_quote_and_a_negative_number_stays(raw, written):
    from node.domain.spreadsheet import safe_cell
    assert safe_cell(raw) == written


def held_loan(loan_id, barcode):
    """SOUTH's loan LOAN_ID of its item BARCODE to our patron n-100, as an applied loan.created leaves it."""
    from node.store.models import Item, Loan, Patron
    item = Item.create(owner="SOUTH", barcode=barcode, title="Southern atlas", status="on_loan", updated_at=NOW)
    Loan.create(id=loan_id, item=item, patron=Patron.get(institution="NORTH", home_id="n-100"), lender="SOUTH",
                checked_out_at=NOW - datetime.timedelta(days=60), due_at=NOW - datetime.timedelta(days=39),
                updated_at=NOW)


def peer_fee(sequence, fee_id, barcode, reason, amount, loan_id="loan-s-1", refund_of=None, title="Southern atlas"):
    event = fee_event(sequence, fee_id, amount, reason=reason, loan_id=loan_id, refund_of=refund_of)
    event["data"]["item"] = {"barcode": barcode, "title": title}
    return event


@pytest.fixture
def hostile(lender):
    """NORTH's patron n-100 named EVIL_NAME, billed by SOUTH's events and by NORTH's own lost items."""
    from node.domain.billing import declare_lost_loans
    from node.store.db import database
    from node.store.models import Item, Patron
    Patron.update(name=EVIL_NAME).where(Patron.home_id == "n-100").execute()
    held_loan("loan-s-1", "S0001")
    held_loan("loan-s-2", "S0002")
    assert post(lender, peer_fee(1, "fee-f", "=1+1", "fine", "5.00"),
                peer_fee(2, "fee-r", "+X", "replacement", "45.00"),
                peer_fee(3, "fee-p", "@X", "processing", "10.00"),
                peer_fee(4, "fee-c", "-X", "refund", "-45.00", refund_of="fee-r"),
                peer_fee(5, "=2+2", "S0002", "fine", "1.50", loan_id="loan-s-2", title=EVIL_NAME)) == ["applied"] * 5
    for barcode in ("\t=1", "\r=1"):
        Item.create(owner="NORTH", barcode=barcode, title="Own book", item_type="book", replacement_cost="40.00",
                    updated_at=NOW)
        lend(lender, barcode)
    with database.atomic():
        assert declare_lost_loans(lender, datetime.datetime(2026, 5, 1, 9, 0, tzinfo=UTC))["declared_lost"] == 2
    return lender


def test_bursar_export_quotes_every_formula_cell_and_keeps_amounts_numbers(hostile, tmp_path, runner):
    from node.domain.bursar import _rows
    target = tmp_path / "bursar.csv"
    result = runner(hostile, "bursar", "export", "--output", str(target))
    assert result.exit_code == 0 and "batch 1: 11 fees" in result.output, result.output
    with open(target, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    stored = list(_rows(hostile, 1))
    assert len(rows) == len(stored) == 11

    dangerous = {("patron_name", EVIL_NAME), ("fee_id", "=2+2"), *(
        ("item_barcode", barcode) for barcode in ("=1+1", "+X", "@X", "-X", "\t=1", "\r=1"))}
    seen = set()
    for row, original in zip(rows, stored):
        assert Decimal(row["amount"]) == Decimal(original["amount"])  # -45.00 included: still a number
        for column, value in original.items():
            if (column, str(value)) in dangerous:
                assert row[column] == "'" + value, (column, row[column])
                seen.add((column, value))
            else:
                assert row[column] == str(value), (column, row[column])  # otherwise exactly as stored
    assert seen == dangerous
    assert "-45.00" in {row["amount"] for row in rows}
    assert {row["patron_name"] for row in rows} == {"'" + EVIL_NAME}
    assert any(row["description"].endswith(f"{EVIL_NAME} (S0002), South College") for row in rows)


def test_every_way_to_fetch_a_batch_gives_the_same_safe_bytes(hostile, tmp_path, runner):
    from node.web.app import create_app
    from node.domain.accounts import add_staff, new_token
    target = tmp_path / "bursar.csv"
    assert runner(hostile, "bursar", "export", "--output", str(target)).exit_code == 0
    again = runner(hostile, "bursar", "export", "--batch", "1", "--output", "-")
    app = create_app(hostile, {"TESTING": True})
    now = datetime.datetime.now(UTC)
    add_staff("boss", "admin", "battery staple", now)
    answer = app.test_client().get("/api/v1/bursar/batches/1.csv",
                                   headers={"Authorization": f"Bearer {new_token('boss', now)}"})
    assert answer.status_code == 200
    assert answer.get_data() == target.read_bytes() == again.stdout_bytes
    assert b"'=HYPERLINK" in answer.get_data() and b",'@X," in answer.get_data()
