"""Inbox handlers of the billing events (docs/billing.md, "Events").

At the home node: ``fee.assessed`` posts a lender's fee on our patron's
account, ``loan.lost`` marks our copy of the loan lost.  At the lender:
``fee.paid`` and ``fee.waived`` copy what the home node collected into the
lender's ledger.  Each runs inside the inbox's per-event transaction, so a
duplicate has no second effect; unknown fields are ignored.
"""
from node.domain import lifecycle
from node.store.models import Fee, FeePayment, Loan, Patron
from sync.catalogue import EventRejected, handles


@handles("fee.assessed")
def _fee_assessed(context, data):
    """At the home node: post the lender's fee (admitted: on its loan of our patron) on the patron's account."""
    if Fee.get_or_none(id=data["fee_id"]):
        return {"note": "already_posted"}
    # One fee per loan and reason (a unique index): another id for the same would
    # fail every resend of the batch and hold up the peer's whole queue.
    if Fee.get_or_none(loan_id=data["loan_id"], reason=data["reason"]):
        raise EventRejected("fee_conflict", "Another fee for this loan and reason is already posted.")
    patron = Patron.of(context.institution, data["patron"]["id"])
    item = data["item"]
    Fee.create(id=data["fee_id"], lender=context.origin, home=context.institution, loan_id=data["loan_id"],
               patron=patron, item_barcode=item["barcode"], item_title=item["title"], reason=data["reason"],
               amount=data["amount"], currency=data["currency"], refund_of=data["refund_of"],
               assessed_at=data["assessed_at"], updated_at=context.now)
    return {}


@handles("loan.lost")
def _loan_lost(context, data):
    """At the home node: the lender declared the item of one of our patrons' loans lost."""
    loan = Loan.get_by_id(data["loan_id"])
    lifecycle.mark_lost(loan, data["lost_at"], context.now, lifecycle.PEER)
    item = loan.item
    if loan.status == "open" and item.status == "on_loan":
        lifecycle.move_item(item, "peer_lost", context.now, lifecycle.PEER)
    return {}


def _settled(context, data):
    """At the lender: record what the home node (admitted: the fee's home) collected or waived on our fee."""
    fee = Fee.get_by_id(data["fee_id"])
    if FeePayment.get_or_none(id=data["payment_id"]):
        return {"note": "already_recorded"}
    FeePayment.create(id=data["payment_id"], fee=fee, kind=data["kind"], amount=data["amount"],
                      at=data["at"], staff=f"home:{context.origin}", note=data["note"])
    fee.paid = data["paid"]
    fee.status = data["status"]
    if fee.status != "open":
        fee.settled_at = data["at"]
    fee.updated_at = context.now
    fee.save()
    return {}


handles("fee.paid")(_settled)
handles("fee.waived")(_settled)
