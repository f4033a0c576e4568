"""One way to lend, return and renew, for every front-end: the desk, the JSON API, a SIP2 kiosk.

A front-end parses its request into a ``Borrower`` (a patron's institution
and id, or a network pass, or both), calls ``lend``, ``give_back`` or
``renew``, and renders the loan or the refusal (a ``CircnodeError`` with its
stable code).  Here the steps go together in one order: the patron's
standing (our records, their home node through the port, or the pass,
verified offline), then the policy and the checkout transaction
(node/domain/circulation.py).
"""
import datetime
from dataclasses import dataclass

from node.domain import circulation, errors, lifecycle, patron_pass, ports
from node.domain.lifecycle import DESK
from node.store.db import database
from node.store.models import Loan, Patron
from node.domain.standing import reusable, standing_for


@dataclass
class Borrower:
    """Who borrows: INSTITUTION and HOME_ID, or a network PASS (its text, as scanned), or both (must agree).

    One Borrower is one visit of one patron.  ``standing`` is set by
    ``admit`` and ``lend``: the patron's standing when last asked.  A
    front-end keeps it for the rest of the visit (the desk in its session, a
    kiosk in its patron session) and passes it back, so the visit's next
    checkouts lend on the home node's answer (``standing.reusable``) instead of
    asking again; a new visit is a new Borrower and asks again.
    """

    institution: str = ""
    home_id: str = ""
    network_pass: str = None
    standing: circulation.Standing = None


def _standing(cfg, borrower, now, at=None):
    """BORROWER's standing as of NOW: from the pass (as held up AT, default NOW; home not asked), else asked."""
    if borrower.network_pass is not None:
        npass = patron_pass.verify(cfg, borrower.network_pass, at or now)
        claimed = (borrower.institution, borrower.home_id)
        if any(claimed) and claimed != (npass.institution, npass.home_id):
            raise errors.InvalidField("'patron' does not match the network pass.", field="patron")
        borrower.institution, borrower.home_id = npass.institution, npass.home_id
        standing = patron_pass.standing_from_pass(cfg, npass, at or now)
    else:
        standing = standing_for(cfg, borrower.institution, borrower.home_id, now)
    borrower.standing = standing
    return standing


def admit(cfg, borrower, now):
    """BORROWER's standing when they may borrow (a desk visit begins); their refusal otherwise.

    Always asks afresh (the home node, our records or the pass): never an
    answer kept from an earlier visit.
    """
    standing = _standing(cfg, borrower, now)
    if not standing.ok:
        circulation.refuse_for_standing(standing)
    return standing


def lend(cfg, item_barcode, borrower, now, staff=None, at=None, once=None):
    """Lend this library's item ITEM_BARCODE to BORROWER as of NOW; return the new open loan.

    The home node's yes given earlier in this visit (``borrower.standing``)
    is lent on while ``standing.reusable``; otherwise the standing is asked
    again.  It is asked before the checkout's transaction, so no network call
    holds the write lock; a home node that cannot be reached makes the loan
    provisional, under the offline limit.  AT: when the loan was made, if
    earlier (a kiosk's checkout stored while the node was down); ONCE: a key
    that makes it take effect once (``AlreadyApplied`` when sent again).
    """
    standing = borrower.standing
    if not reusable(cfg, standing, now):
        standing = _standing(cfg, borrower, now, at)
    return circulation.checkout(cfg, item_barcode, borrower.institution, borrower.home_id, standing, at or now,
                                staff=staff, once=once)


def give_back(cfg, item_barcode, now, owner=None, staff=None, once=None):
    """Check ITEM_BARCODE (of OWNER when several libraries use it) in at this desk as of NOW; a ReturnResult.

    ONCE: a key that makes the return take effect once (``AlreadyApplied`` when sent again).
    """
    return circulation.return_item(cfg, item_barcode, now, owner=owner, staff=staff, once=once)


def renew(cfg, loan_id, now, staff=None, actor=DESK):
    """Renew this library's loan LOAN_ID under its policy as of NOW; return the loan."""
    return circulation.renew(cfg, loan_id, now, staff=staff, actor=actor)


def renew_for_patron(cfg, home_id, loan_id, now, timeout=None):
    """Renew our patron HOME_ID's loan LOAN_ID, wherever it was lent, as of NOW; return the loan.

    A loan of ours renews here under our policy; another library's is asked
    of its lender (signed, through the port), whose policy decides.  Raises
    the lender's refusal with its code, or PeerUnreachable: then nothing
    changed here (the lender changed nothing either, or will tell us by event).
    """
    loan = Loan.get_or_none(id=loan_id)
    patron = Patron.get_or_none(institution=cfg.institution, home_id=home_id)
    if loan is None or patron is None or loan.patron_id != patron.id:
        raise errors.LoanNotFound("No such loan on your account.", loan_id=loan_id)
    if loan.status != "open":
        raise errors.LoanClosed("The loan is already returned.")
    if loan.lost_at is not None:
        raise errors.ItemLost("The item was declared lost; the loan cannot be renewed.")
    standing = circulation.own_patron_standing(cfg, home_id, now)
    if not standing.ok:
        circulation.refuse_for_standing(standing)
    if loan.lender == cfg.institution:
        return circulation.renew(cfg, loan_id, now, staff="patron", actor=lifecycle.PATRON)
    answer = ports.lenders.ask_renewal(cfg, loan.lender, loan_id, home_id, now, timeout)
    due_at = datetime.datetime.fromisoformat(answer["due_at"]).astimezone(datetime.timezone.utc)
    with database.atomic():
        # The lender's loan.renewed event will say the same; applying it again changes nothing.
        loan = Loan.get_by_id(loan_id)
        if loan.status == "open":
            lifecycle.move("renew", loan.status, lifecycle.PATRON)
            loan.due_at = max(loan.due_at, due_at)
            loan.renewals = max(loan.renewals, int(answer.get("renewals", loan.renewals)))
            loan.updated_at = now
            loan.save()
    return loan
