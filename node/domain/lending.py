"""One way to lend, return and renew, for every front-end: the desk, the JSON API, a SIP2 kiosk.

A front-end parses its request into a ``Borrower`` (a patron's institution
and id, or a network pass, or both), calls ``lend``, ``give_back`` or
``renew``, and renders the loan or the refusal (a ``CircnodeError`` with its
stable code).  Here the steps go together in one order: the patron's
standing (our records, their home node through the port, or the pass,
verified offline), then the policy and the checkout transaction
(node/domain/circulation.py).
"""
from dataclasses import dataclass

from node.domain import circulation, errors, patron_pass
from node.domain.lifecycle import DESK
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


def _standing(cfg, borrower, now):
    """BORROWER's standing as of NOW: from the pass when there is one (home not asked), else asked."""
    if borrower.network_pass is not None:
        npass = patron_pass.verify(cfg, borrower.network_pass, now)
        claimed = (borrower.institution, borrower.home_id)
        if any(claimed) and claimed != (npass.institution, npass.home_id):
            raise errors.InvalidField("'patron' does not match the network pass.", field="patron")
        borrower.institution, borrower.home_id = npass.institution, npass.home_id
        standing = patron_pass.standing_from_pass(cfg, npass, now)
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


def lend(cfg, item_barcode, borrower, now, staff=None):
    """Lend this library's item ITEM_BARCODE to BORROWER as of NOW; return the new open loan.

    The home node's yes given earlier in this visit (``borrower.standing``)
    is lent on while ``standing.reusable``; otherwise the standing is asked
    again.  It is asked before the checkout's transaction, so no network call
    holds the write lock; a home node that cannot be reached makes the loan
    provisional, under the offline limit.
    """
    standing = borrower.standing
    if not reusable(cfg, standing, now):
        standing = _standing(cfg, borrower, now)
    return circulation.checkout(cfg, item_barcode, borrower.institution, borrower.home_id, standing, now,
                                staff=staff)


def give_back(cfg, item_barcode, now, owner=None, staff=None):
    """Check ITEM_BARCODE (of OWNER when several libraries use it) in at this desk; a ReturnResult."""
    return circulation.return_item(cfg, item_barcode, now, owner=owner, staff=staff)


def renew(cfg, loan_id, now, staff=None, actor=DESK):
    """Renew this library's loan LOAN_ID under its policy as of NOW; return the loan."""
    return circulation.renew(cfg, loan_id, now, staff=staff, actor=actor)
