"""The patron's account at home: every network loan, fees and blocks, and Renew.

The page is ``/patron/account`` (the patron signs in by node/web/saml.py); it
includes ``_account_network.html``, fed by ``network_account``.  The
Renew button asks the lender, signed and online: the lender's policy
decides, and its answer is shown.  When the lender cannot be reached, the
page says so and nothing changes anywhere.
"""

from flask import Blueprint, flash, redirect, render_template, url_for

from node.domain import billing, circulation, errors, lending
from node.identity import saml_names
from node.web.context import get_config
from node.clock import utcnow
from node.store.models import Loan, Patron

bp = Blueprint("account", __name__)


def init_app(app):
    """Register the patron's account page and its renew at the lender."""
    app.register_blueprint(bp)


def signed_in_patron(cfg, now):
    """The verified identity of this session's patron (node/web/saml.py), or None."""
    from node.web.saml import signed_in_patron as from_saml
    return from_saml(cfg, now)




# --- domain (no Flask) ---------------------------------------------------------

def loan_status(loan, now):
    if loan.status == "closed":
        return "returned"
    if loan.lost_at is not None:
        return "lost"
    return "overdue" if loan.is_overdue(now) else "on loan"


def network_account(cfg, home_id, now):
    """What the account page shows of our patron: loans everywhere, fees, balance and blocks."""
    from node.web.billing_api import account_summary
    patron = Patron.get_or_none(institution=cfg.institution, home_id=home_id)
    if patron is None:
        return {"loans": [], "fees": [], "summary": {"balance": {}, "blocked": False, "blocks": []}}
    loans = list(circulation.loans_query(institution=cfg.institution, home_id=home_id, status="open").limit(500))
    loans += list(circulation.loans_query(institution=cfg.institution, home_id=home_id, status="closed").limit(20))
    rows = [{"loan": loan, "lender": cfg.library_name(loan.lender), "status": loan_status(loan, now),
             "renewable": loan.status == "open" and loan.lost_at is None} for loan in loans]
    return {"loans": rows, "fees": list(billing.fees_query(cfg, home_id=home_id).limit(200)),
            "summary": account_summary(cfg, patron)}


# --- views -----------------------------------------------------------------

@bp.app_context_processor
def _helpers():
    def for_patron(patron):
        cfg = get_config()
        return network_account(cfg, patron["id"], utcnow())
    return {"network_account": for_patron}


@bp.get("/patron/account")
def page():
    """A patron of this node: their loans and network pass (or the way to sign in)."""
    from node.domain.patron_pass import issue, qr_svg
    cfg = get_config()
    now = utcnow()
    patron = signed_in_patron(cfg, now)
    if patron is None or patron["institution"] != cfg.institution:
        return render_template("patron_account.html", patron=None,
                               can_sign_in=cfg.institution in saml_names.sign_in_institutions(cfg))
    loans = list(circulation.loans_query(institution=cfg.institution, home_id=patron["id"]).limit(500))
    npass, refusal = None, None
    try:
        npass = issue(cfg, patron["id"], now)
    except errors.CircnodeError as exc:
        refusal = exc
    return render_template("patron_account.html", patron=patron, loans=loans, npass=npass, refusal=refusal,
                           qr=qr_svg(npass.text) if npass else "", now=now,
                           lender_name=lambda code: cfg.library_name(code))


@bp.post("/patron/account/loans/<loan_id>/renew")
def renew(loan_id):
    """The Renew button: ask the lender, show its answer; unreachable lender, nothing changes."""
    cfg = get_config()
    now = utcnow()
    patron = signed_in_patron(cfg, now)
    if patron is None or patron.get("institution") != cfg.institution:
        flash("Sign in again to renew.", "error")
        return redirect(url_for("account.page"))
    loan = Loan.get_or_none(id=loan_id)
    lender = cfg.library_name(loan.lender) if loan else "the lending library"
    try:
        renewed = lending.renew_for_patron(cfg, patron["id"], loan_id, now)
    except errors.PeerUnreachable:
        flash(f"{lender} cannot be reached right now, so the loan was not renewed and nothing has changed. "
              "Please try again later.", "warning")
    except errors.CircnodeError as exc:
        flash(f"{lender} did not renew the loan: {exc.message}", "error")
    else:
        due = renewed.due_at.astimezone(cfg.tz).strftime("%Y-%m-%d")
        flash(f"Renewed by {lender}: now due {due}.", "success")
    return redirect(url_for("account.page"))
