"""A lender with billing terms and a calendar, loans at it, and fees posted to it by SOUTH."""
import datetime

from tests.helpers.config import write_config

UTC = datetime.timezone.utc

BILLING = """
[policy:book]
fine_per_day = 0.50
max_fine = 5.00
lost_after_days = 30
processing_fee = 10.00
default_replacement_cost = 60.00
refund_on_return = replacement
courtesy_notice_days = 3
overdue_notice_days = 1, 7

[billing]
currency = CHF
block_threshold = 40.00

[calendar]
closed_weekdays = sun
closed_dates = 2026-04-03..2026-04-06
"""


def build_lender(tmp_path, extra=""):
    from node import config
    from node.web.app import create_app
    from node.keys import ensure_key
    from node.store.models import Item, Patron
    path = write_config(str(tmp_path / "north"), peers=[("SOUTH", "South College", "http://127.0.0.1:9", "")],
                        extra=BILLING + extra)
    cfg = config.load(path)
    ensure_key(cfg)
    create_app(cfg, {"TESTING": True})  # opens and migrates the database
    now = datetime.datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    for n in range(1, 6):
        Item.create(owner="NORTH", barcode=f"N{n:04d}", title=f"Book {n}", item_type="book",
                    replacement_cost="40.00" if n != 5 else None, updated_at=now)
    Item.create(owner="NORTH", barcode="F0001", title="Free loan", item_type="free", updated_at=now)
    Patron.create(institution="NORTH", home_id="n-100", name="Nora North", email="nora@north.test", updated_at=now)
    return cfg


def lend(cfg, barcode, institution="NORTH", home_id="n-100", when=datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)):
    from node.domain.circulation import Standing, checkout, own_patron_standing
    standing = (own_patron_standing(cfg, home_id, when) if institution == cfg.institution
                else Standing(True, name="Sam South", email="sam@south.test"))
    return checkout(cfg, barcode, institution, home_id, standing, when)


NOW = datetime.datetime(2026, 4, 20, 10, 0, tzinfo=UTC)


def held_loan(cfg, loan_id="loan-s-1", home_id="n-100"):
    """SOUTH's loan LOAN_ID of its item S0001 to our patron, as an applied loan.created leaves it here."""
    from node.store.models import Item, Loan, Patron
    item = Item.get_or_none(owner="SOUTH", barcode="S0001") or Item.create(
        owner="SOUTH", barcode="S0001", title="Southern atlas", status="on_loan", updated_at=NOW)
    Loan.create(id=loan_id, item=item, patron=Patron.get(institution="NORTH", home_id=home_id), lender="SOUTH",
                checked_out_at=NOW - datetime.timedelta(days=60), due_at=NOW - datetime.timedelta(days=39),
                updated_at=NOW)


def fee_event(sequence, fee_id, amount, reason="replacement", patron="n-100", loan_id="loan-s-1", by="SOUTH",
              refund_of=None):
    return {"event_id": f"ev-{sequence}", "type": "fee.assessed", "version": 1, "origin": "SOUTH",
            "destination": "NORTH", "sequence": sequence, "occurred_at": "2026-04-15T10:00:00+00:00",
            "data": {"fee_id": fee_id, "loan_id": loan_id, "lender": by,
                     "patron": {"institution": "NORTH", "id": patron},
                     "item": {"barcode": "S0001", "title": "Southern atlas"}, "amount": amount, "currency": "CHF",
                     "reason": reason, "refund_of": refund_of, "assessed_at": "2026-04-15T10:00:00+00:00",
                     "a_field_from_a_newer_peer": True}}


def post(cfg, *events):
    from sync.inbox import receive_batch
    return [r["status"] for r in receive_batch(cfg, "SOUTH", list(events), NOW)["results"]]


TERMS = {
    "policy": {"loan_days": "14", "fine_per_day": "0.50", "max_fine": "5.00", "lost_after_days": "30",
               "processing_fee": "10.00", "refund_on_return": "replacement", "courtesy_notice_days": "3",
               "overdue_notice_days": "1, 7"},
    "billing": {"currency": "CHF", "block_threshold": "40.00"},
    # Every checkout asks the home node afresh, so a block shows at once (the default reuses an answer 5 min).
    "sync": {"standing_cache_seconds": "0"},
    "jobs": {"daily_at": ""},  # the test passes time in; no scheduled run may interfere
}
