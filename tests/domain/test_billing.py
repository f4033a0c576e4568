"""The lender's terms: due dates on its calendar, fines at return, lost items billed and refunded."""
import datetime
import json
from decimal import Decimal

import pytest

from tests.helpers.config import write_config
from tests.helpers.billing import lend

UTC = datetime.timezone.utc
ZURICH = datetime.timezone(datetime.timedelta(hours=1))  # March 2026 in Zurich, before DST


def local_date(moment):
    return moment.astimezone(ZURICH).date()


def outbox(kind=None):
    from node.store.models import OutboxEvent
    rows = OutboxEvent.select().order_by(OutboxEvent.sequence)
    return [(e.destination, e.type, e.data["data"]) for e in rows if kind is None or e.type == kind]


def test_config_reads_billing_terms_as_decimal_and_refuses_bad_values(lender, tmp_path):
    from node import config
    book = lender.policy_for("book")
    assert book["fine_per_day"] == Decimal("0.50") and isinstance(book["fine_per_day"], Decimal)
    assert book["max_fine"] == Decimal("5.00") and lender.policy[""]["max_fine"] is None
    assert book["overdue_notice_days"] == [1, 7] and book["refund_on_return"] == "replacement"
    assert lender.sections["billing"] == {"currency": "CHF", "block_threshold": Decimal("40.00"),
                                          "max_fee_amount": Decimal("10000.00")}
    assert datetime.date(2026, 4, 4) in lender.sections["calendar"]["closed_dates"]
    for bad in ("[policy:book]\nfine_per_day = 0.505\n", "[policy:book]\nrefund_on_return = half\n",
                "[billing]\ncurrency = euro\n", "[calendar]\nclosed_weekdays = mon tue wed thu fri sat sun\n",
                "[calendar]\nclosed_dates = 2026-04-06..2026-04-03\n", "[smtp]\nport = none\n",
                "[jobs]\ndaily_at = 25:00\n", "[billing]\nmax_fee_amount = 0\n",
                "[billing]\nmax_fee_amount = 1E+30\n", "[billing]\nmax_fee_amount = NaN\n",
                "[billing]\nmax_fee_amount = 1e999999\n", "[billing]\nblock_threshold = 1000000000.01\n",
                "[policy]\nprocessing_fee = -1E+30\n"):
        path = write_config(str(tmp_path / "bad"), extra=bad)
        with pytest.raises(config.ConfigError):
            config.load(path)


def test_due_date_never_falls_on_a_closed_day(lender):
    from node.domain.circulation import renew
    # Sunday 22 March + 14 days = Sunday 5 April, inside the Easter closure (3-6 April): due Tuesday 7 April.
    loan = lend(lender, "N0001", when=datetime.datetime(2026, 3, 22, 9, 0, tzinfo=UTC))
    assert local_date(loan.due_at) == datetime.date(2026, 4, 7)
    # Renewed on Sunday 29 March: 14 days later is Sunday 12 April, a closed weekday: Monday 13 April.
    renewed = renew(lender, loan.id, datetime.datetime(2026, 3, 29, 9, 0, tzinfo=UTC))
    assert local_date(renewed.due_at) == datetime.date(2026, 4, 13)


@pytest.mark.parametrize("returned, fine", [
    (datetime.datetime(2026, 3, 16, 22, 0, tzinfo=UTC), None),             # on the due day (local): no fine
    (datetime.datetime(2026, 3, 20, 10, 0, tzinfo=UTC), Decimal("2.00")),  # Tue-Fri: 4 open days
    (datetime.datetime(2026, 3, 24, 10, 0, tzinfo=UTC), Decimal("3.50")),  # 8 days less Sunday 22nd
    (datetime.datetime(2026, 4, 10, 10, 0, tzinfo=UTC), Decimal("5.00")),  # capped by max_fine
])
def test_fine_at_return_counts_the_lenders_open_days_and_is_capped(lender, returned, fine):
    from node.domain.circulation import return_item
    from node.store.models import Fee
    loan = lend(lender, "N0001")  # due Monday 16 March
    return_item(lender, "N0001", returned)
    fees = list(Fee.select().where(Fee.loan_id == loan.id))
    assert [(f.reason, f.amount, f.currency, f.status) for f in fees] == (
        [] if fine is None else [("fine", fine, "CHF", "open")])


def test_no_fine_policy_bills_nothing_and_a_visiting_patrons_fine_goes_home(lender):
    from node.domain.circulation import return_item
    from node.store.models import Fee
    lend(lender, "F0001")  # [policy] has no fines for items without their own terms
    return_item(lender, "F0001", datetime.datetime(2026, 5, 1, 10, 0, tzinfo=UTC))
    assert Fee.select().count() == 0
    loan = lend(lender, "N0002", "SOUTH", "south-7")
    return_item(lender, "N0002", datetime.datetime(2026, 3, 18, 10, 0, tzinfo=UTC))
    (fee,) = Fee.select()
    assert (fee.home, fee.lender, fee.patron.home_id, fee.amount) == ("SOUTH", "NORTH", "south-7", Decimal("1.00"))
    assessed = outbox("fee.assessed")
    assert assessed == [("SOUTH", "fee.assessed", {
        "fee_id": fee.id, "loan_id": loan.id, "lender": "NORTH", "patron": {"institution": "SOUTH", "id": "south-7"},
        "item": {"barcode": "N0002", "title": "Book 2"}, "amount": "1.00", "currency": "CHF", "reason": "fine",
        "refund_of": None, "assessed_at": "2026-03-18T10:00:00+00:00"})]
    # In SOUTH's stream the return comes first: the home node closes the loan, then posts its fine.
    assert [t for _, t, _ in outbox()] == ["loan.created", "loan.returned", "fee.assessed"]


def test_lost_job_declares_once_and_bills_fine_replacement_and_processing(lender):
    from node.domain.billing import declare_lost_loans
    from node.store.models import Fee, Item, Loan
    kept = lend(lender, "N0003", "SOUTH", "south-7")   # due 16 March, replacement cost 40.00
    uncosted = lend(lender, "N0005", "SOUTH", "south-7")  # no replacement cost: the default 60.00
    day_29 = datetime.datetime(2026, 4, 14, 10, 0, tzinfo=UTC)
    assert declare_lost_loans(lender, day_29) == {"declared_lost": 0, "fees": 0}
    day_30 = datetime.datetime(2026, 4, 15, 10, 0, tzinfo=UTC)
    assert declare_lost_loans(lender, day_30) == {"declared_lost": 2, "fees": 6}
    assert declare_lost_loans(lender, day_30 + datetime.timedelta(days=3)) == {"declared_lost": 0, "fees": 0}
    assert Item.get(barcode="N0003").status == "lost" and Loan.get_by_id(kept.id).lost_at == day_30
    by_loan = {(f.loan_id, f.reason): f.amount for f in Fee.select()}
    assert by_loan == {(kept.id, "fine"): Decimal("5.00"), (kept.id, "replacement"): Decimal("40.00"),
                       (kept.id, "processing"): Decimal("10.00"), (uncosted.id, "fine"): Decimal("5.00"),
                       (uncosted.id, "replacement"): Decimal("60.00"), (uncosted.id, "processing"): Decimal("10.00")}
    types = [t for dest, t, _ in outbox() if dest == "SOUTH"]
    assert types.count("loan.lost") == 2 and types.count("fee.assessed") == 6
    assert types.index("loan.lost") < types.index("fee.assessed")


@pytest.mark.parametrize("rule, refund", [("replacement", Decimal("-40.00")), ("all", Decimal("-50.00")),
                                          ("none", None)])
def test_lost_item_returned_is_refunded_by_the_lenders_rule(lender, rule, refund):
    from node.domain.billing import declare_lost_loans
    from node.domain.circulation import return_item
    from node.store.models import Fee, Item
    lender.policy["book"]["refund_on_return"] = rule
    loan = lend(lender, "N0003", "SOUTH", "south-7")
    declare_lost_loans(lender, datetime.datetime(2026, 4, 15, 10, 0, tzinfo=UTC))
    return_item(lender, "N0003", datetime.datetime(2026, 4, 20, 10, 0, tzinfo=UTC))
    assert Item.get(barcode="N0003").status == "available"
    credit = Fee.get_or_none(loan_id=loan.id, reason="refund")
    assert (credit.amount if credit else None) == refund
    assert Fee.select().where((Fee.loan_id == loan.id) & (Fee.reason == "fine")).count() == 1  # no second fine
    if refund:
        assert credit.refund_of == Fee.get(loan_id=loan.id, reason="replacement").id
        assert outbox("fee.assessed")[-1][2]["amount"] == str(refund)


def test_renewing_a_lost_item_is_refused(lender):
    from node.domain import errors
    from node.domain.billing import declare_lost_loans
    from node.domain.circulation import renew
    loan = lend(lender, "N0003", "SOUTH", "south-7")
    declare_lost_loans(lender, datetime.datetime(2026, 4, 15, 10, 0, tzinfo=UTC))
    with pytest.raises(errors.ItemLost):
        renew(lender, loan.id, datetime.datetime(2026, 4, 16, 10, 0, tzinfo=UTC))


def test_fine_for_a_return_elsewhere_uses_the_lenders_calendar_at_the_time_returned(lender):
    """The return event from SOUTH (open on Sundays or not) is billed on NORTH's calendar."""
    from node.store.models import Fee
    from sync.inbox import receive_batch
    loan = lend(lender, "N0004", "SOUTH", "south-7")  # due Monday 16 March
    event = {"event_id": "e-1", "type": "loan.returned", "version": 1, "origin": "SOUTH", "destination": "NORTH",
             "sequence": 1, "occurred_at": "2026-03-30T12:00:00+00:00",
             "data": {"loan_id": loan.id, "lender": "NORTH", "returned_at": "2026-03-23T08:00:00+00:00",
                      "returned_at_institution": "SOUTH"}}
    arrived = datetime.datetime(2026, 3, 30, 12, 0, tzinfo=UTC)  # a week later: no fine for the trip home
    answer = receive_batch(lender, "SOUTH", [event], arrived)
    assert answer["results"][0]["status"] == "applied"
    assert receive_batch(lender, "SOUTH", [event], arrived)["results"][0]["status"] == "duplicate"
    # 17-23 March: 7 days, Sunday 22nd closed at NORTH: 6 open days.
    assert [(f.reason, f.amount) for f in Fee.select()] == [("fine", Decimal("3.00"))]
    assert json.loads(json.dumps(outbox("fee.assessed")[0][2]))["amount"] == "3.00"
