"""Printable slips: the due-date receipt of a desk visit, the transit slip of a return that travels on, and the
payment receipt of a cashier action.

A slip is a page like any desk page (staff sign-in) with a print stylesheet
(node/static/print.css) that leaves only the slip on receipt-sized paper.  Its
address carries what it prints (loan or payment ids) signed with the node's
secret key, so nobody can ask for a slip of another visit or fee by guessing or
editing an id; a slip older than ``MAX_AGE_SECONDS`` is gone.  With ``[desk]
print_slips = auto`` the desk opens each slip as soon as it is made and the
browser's print dialog opens by itself (node/static/slip-print.js; the CSP
allows no inline script); with ``no`` a "Print" link does the same in one click.
"""
from flask import Blueprint, current_app, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer

from node.domain import billing, circulation, errors
from node.store.models import Loan
from node.web.context import get_config
from node.web.auth import desk_role

bp = Blueprint("slips", __name__)
MAX_AGE_SECONDS = 24 * 3600  # a slip is printed the day it is made; long enough to print it again
KINDS = ("visit", "transit", "payment")


def init_app(app):
    """Register the slip pages."""
    app.register_blueprint(bp)


def _signer():
    return URLSafeTimedSerializer(current_app.secret_key, salt="circnode.slip")


def auto_print():
    """True when each slip should open and print by itself ([desk] print_slips = auto)."""
    return get_config().sections["desk"]["print_slips"] == "auto"


def slip_token(kind, ids):
    """The signed name of the KIND slip of IDS (loan ids for visit and transit slips, payment ids for receipts)."""
    return _signer().dumps([kind, list(ids)])


def slip_url(kind, ids, print_now=False):
    """The address of that slip; PRINT_NOW: its print dialog opens at once."""
    return url_for("slips.slip", token=slip_token(kind, ids), **({"print": "1"} if print_now else {}))


@bp.get("/slips/<token>")
@desk_role()
def slip(token):
    """One slip; with ?print=1 the browser's print dialog opens at once, then the desk page comes back."""
    try:
        kind, ids = _signer().loads(token, max_age=MAX_AGE_SECONDS)
    except (BadSignature, ValueError, TypeError):  # SignatureExpired is a BadSignature
        raise errors.NotFound("No such slip (or it is more than a day old).") from None
    if kind not in KINDS or not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise errors.NotFound("No such slip.")
    page = {"visit": _visit, "transit": _transit, "payment": _payment}[kind](get_config(), ids)
    if page is None:
        raise errors.NotFound("No such slip.")
    template, back, context = page
    return render_template(template, back=back, print_now=request.args.get("print") == "1", **context)


def _visit(cfg, loan_ids):
    """The due-date receipt: this library's loans of one patron, in scan order."""
    found = {loan.id: loan for loan in circulation.loans_query().where(Loan.id.in_(loan_ids))}
    loans = [found[loan_id] for loan_id in loan_ids if loan_id in found]
    if len(loans) != len(set(loan_ids)) or any(loan.lender != cfg.institution or loan.patron_id is None
                                               or loan.patron_id != loans[0].patron_id for loan in loans):
        return None
    # Back to the visit, when it goes on; the scan page sends a desk whose visit is done to the checkout.
    return "slip_visit.html", url_for("desk.scan"), {"loans": loans, "patron": loans[0].patron}


def _transit(cfg, loan_ids):
    """The transit slip of a peer's item returned here: it goes to its owner."""
    loan = circulation.loans_query().where(Loan.id == loan_ids[0]).first() if len(loan_ids) == 1 else None
    if loan is None or loan.returned_at is None or loan.returned_at_institution != cfg.institution \
            or loan.item.owner == cfg.institution:
        return None
    return "slip_transit.html", url_for("desk.return_item"), {"loan": loan, "item": loan.item}


def _payment(cfg, payment_ids):
    """The payment receipt of one cashier action on one of our patrons' accounts."""
    receipt = billing.receipt_of(cfg, payment_ids)
    if receipt is None or receipt.patron.institution != cfg.institution:
        return None
    return ("slip_payment.html", url_for("billing.account", home_id=receipt.patron.home_id),
            {"receipt": receipt, "patron": receipt.patron})
