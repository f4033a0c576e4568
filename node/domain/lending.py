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
from node.domain.standing import standing_for


@dataclass
class Borrower:
    """Who borrows: INSTITUTION and HOME_ID, or a network PASS (its text, as scanned), or both (must agree).

    ``standing`` is set by ``lend``/``admit``: what the patron's standing was
    when last asked (a front-end shows when loans are made offline).

    ``session_standing``: the front-end keeps this Borrower for one visit of
    one patron (a kiosk session): the home node is asked afresh the first
    time, and its answer (when it says yes and was not given offline) is
    reused for the rest of the visit.
    """

    institution: str = ""
    home_id: str = ""
    network_pass: str = None
    standing: circulation.Standing = None
    session_standing: bool = False


def _standing(cfg, borrower, now, at=None):
    """BORROWER's standing as of NOW: from the pass (as held up AT, default NOW; home not asked), else asked."""
    if borrower.network_pass is not None:
        npass = patron_pass.verify(cfg, borrower.network_pass, at or now)
        claimed = (borrower.institution, borrower.home_id)
        if any(claimed) and claimed != (npass.institution, npass.home_id):
            raise errors.InvalidField("'patron' does not match the network pass.", field="patron")
        borrower.institution, borrower.home_id = npass.institution, npass.home_id
        standing = patron_pass.standing_from_pass(cfg, npass, at or now)
    elif borrower.session_standing and borrower.standing and borrower.standing.ok and not borrower.standing.provisional:
        return borrower.standing
    else:
        standing = standing_for(cfg, borrower.institution, borrower.home_id, now,
                                use_cache=not borrower.session_standing)
    borrower.standing = standing
    return standing


def admit(cfg, borrower, now):
    """BORROWER's standing when they may borrow (a desk visit begins); their refusal otherwise."""
    standing = _standing(cfg, borrower, now)
    if not standing.ok:
        circulation.refuse_for_standing(standing)
    return standing


def lend(cfg, item_barcode, borrower, now, staff=None, at=None, once=None):
    """Lend this library's item ITEM_BARCODE to BORROWER as of NOW; return the new open loan.

    The standing is asked before the checkout's transaction, so no network
    call holds the write lock; a home node that cannot be reached makes the
    loan provisional, under the offline limit.  AT: when the loan was made,
    if earlier (a kiosk's checkout stored while the node was down); ONCE: a
    key that makes it take effect once (``AlreadyApplied`` when sent again).
    """
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
