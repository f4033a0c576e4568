"""Loans the home node has a say on: provisional loans settled or disputed, disputes resolved by staff.

A loan made without the home node's word (offline, or on a network pass) is
provisional until the home node acknowledges its ``loan.created``: applied
without objection, it is settled; rejected, or applied with an objection
(``dispute``), it is disputed, and the admin queue shows it until staff
resolve it with a note.  The flags move through the lifecycle table
(``settle``, ``dispute``, ``resolve_dispute``).
"""
from node.domain import errors, lifecycle
from node.domain.circulation import audit
from node.domain.ports import outbox
from node.store.db import database
from node.store.models import Loan

NOTE_MAX = 500
# Objections a home node makes to a loan it applied (a rejected loan.created is not on the home's record).
HOME_HOLDS = ("patron_blocked", "patron_expired")


def objection(status, outcome):
    """The home node's objection to a loan in its answer to loan.created (STATUS, OUTCOME), or None."""
    return outcome.get("reason") if status == "rejected" else outcome.get("dispute")


def settle_provisional(acknowledged):
    """Settle or dispute the loans whose loan.created the home node answered: (loan id, status, outcome)s.

    Runs in the caller's transaction (the one that marks the events delivered).
    """
    quiet, disputed = [], []
    for loan_id, status, outcome in acknowledged:
        reason = objection(status, outcome)
        if reason:
            disputed.append((reason, loan_id))
        else:
            quiet.append(loan_id)
    lifecycle.settle_rows(quiet, disputed)


def resolve_dispute(cfg, loan_id, note, now, staff=None):
    """Clear a loan's disputed flag with STAFF's NOTE; the audit log keeps reason and note.

    When the home node holds the loan it objected to, it is told, in the same
    transaction (``loan.dispute_resolved``): its staff see the outcome too.
    """
    if not isinstance(note, str) or not note.strip() or len(note.strip()) > NOTE_MAX:
        raise errors.InvalidField(f"'note' must say how the dispute was resolved "
                                  f"(1 to {NOTE_MAX} characters).", field="note")
    note = note.strip()
    with database.atomic():
        loan = Loan.get_or_none(id=loan_id)
        if loan is None:
            raise errors.LoanNotFound(f"No loan {loan_id!r}.", loan_id=loan_id)
        if not loan.disputed:
            raise errors.LoanNotDisputed(f"Loan {loan_id} is not disputed.", loan_id=loan_id)
        reason = loan.dispute_reason
        lifecycle.resolve_dispute(loan, now, lifecycle.ADMIN)
        audit(staff, "resolve_dispute", loan.id, f"reason: {reason or '-'}; note: {note}", now)
        home = loan.patron.institution if loan.patron_id else None
        if loan.lender == cfg.institution and home in cfg.peers and reason in HOME_HOLDS:
            outbox.enqueue(home, "loan.dispute_resolved", outbox.build(
                "loan.dispute_resolved", loan_id=loan.id, lender=loan.lender, reason=reason,
                resolved_at=now.isoformat(), note=note), now)
    return loan
