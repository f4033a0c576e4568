"""Inbox handlers of the billing events (docs/billing.md, "Events").

At the home node: ``fee.assessed`` posts a lender's fee on our patron's
account, ``loan.lost`` marks our copy of the loan lost.  At the lender:
``fee.paid`` and ``fee.waived`` copy what the home node collected into the
lender's ledger.  Each runs inside the inbox's per-event transaction, so a
duplicate has no second effect; unknown fields are ignored.
"""
from decimal import Decimal, InvalidOperation

from node.models import CENT, Fee, FeePayment, Patron
from sync.inbox import EventRejected, event_time, handles, lender_loan

REASONS = ("fine", "replacement", "processing", "refund")


def _amount(text):
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError("amount") from None
    if not value.is_finite() or value != value.quantize(CENT):
        raise ValueError("amount")
    return value


@handles("fee.assessed")
def _fee_assessed(cfg, origin, data, now):
    """At the home node: post the lender's fee on our patron's account."""
    if data["lender"] != origin:
        raise EventRejected("wrong_lender", "Only the lender reports its fees.")
    if data["patron"]["institution"] != cfg.institution:
        raise EventRejected("wrong_home", "The patron is not one of ours.")
    if data["reason"] not in REASONS:
        raise EventRejected("malformed_event", "Unknown fee reason.")
    if Fee.get_or_none(id=data["fee_id"]):
        return {"note": "already_posted"}
    patron = Patron.get_or_none(institution=cfg.institution, home_id=data["patron"]["id"])
    if patron is None:
        raise EventRejected("patron_unknown", "No such patron here.")
    # One fee per loan and reason (a unique index): another id for the same would
    # fail every resend of the batch and hold up the peer's whole queue.
    if Fee.get_or_none(loan_id=data["loan_id"], reason=data["reason"]):
        raise EventRejected("fee_conflict", "Another fee for this loan and reason is already posted.")
    item = data.get("item") or {}
    Fee.create(id=data["fee_id"], lender=origin, home=cfg.institution, loan_id=data["loan_id"], patron=patron,
               item_barcode=item.get("barcode", ""), item_title=item.get("title", ""), reason=data["reason"],
               amount=_amount(data["amount"]), currency=data["currency"], refund_of=data.get("refund_of"),
               assessed_at=event_time(data["assessed_at"]), updated_at=now)
    return {}


@handles("loan.lost")
def _loan_lost(cfg, origin, data, now):
    """At the home node: the lender declared the item of one of our patrons' loans lost."""
    loan = lender_loan(data, origin)
    if loan.lost_at is None:
        loan.lost_at, loan.updated_at = event_time(data["lost_at"]), now
        loan.save()
    item = loan.item
    if loan.status == "open" and item.status == "on_loan":
        item.status, item.updated_at = "lost", now
        item.save()
    return {}


def _settled(cfg, origin, data, now):
    """At the lender: record what the home node collected or waived on one of our fees."""
    fee = Fee.get_or_none(id=data["fee_id"])
    if fee is None or fee.lender != cfg.institution or fee.home != origin:
        raise EventRejected("fee_unknown", "No such fee of ours collected by this node.")
    if data["kind"] not in ("payment", "waiver") or data["status"] not in ("open", "paid", "waived"):
        raise EventRejected("malformed_event", "Unknown settlement kind or status.")
    if FeePayment.get_or_none(id=data["payment_id"]):
        return {"note": "already_recorded"}
    FeePayment.create(id=data["payment_id"], fee=fee, kind=data["kind"], amount=_amount(data["amount"]),
                      at=event_time(data["at"]), staff=f"home:{origin}", note=str(data.get("note") or "")[:500])
    fee.paid = _amount(data["paid"])
    fee.status = data["status"]
    if fee.status != "open":
        fee.settled_at = event_time(data["at"])
    fee.updated_at = now
    fee.save()
    return {}


handles("fee.paid")(_settled)
handles("fee.waived")(_settled)
