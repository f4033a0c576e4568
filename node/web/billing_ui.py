"""Staff pages of billing: the cashier (a patron's fees, pay, waive), the lender's
ledger with the settlement report, and the bursar export with the job state.

Same domain calls as the JSON API and the CLI; refusals become banners.
"""
from flask import Blueprint, flash, redirect, render_template, request, url_for

from node.domain import billing, bursar, errors, jobs, notices
from node.web.context import get_config
from node.web.billing_api import BATCH_ID, batch_csv_response
from node.web.auth import current_staff, desk_role
from node.clock import utcnow
from node.store.models import FeePayment, Patron
from node.web import slips

bp = Blueprint("billing", __name__)


def init_app(app):
    """Register the cashier, ledger and bursar pages."""
    app.register_blueprint(bp)
REASONS = {"fine": "Overdue fine", "replacement": "Replacement cost", "processing": "Processing fee",
           "refund": "Refund (lost item returned)"}




@bp.app_context_processor
def _helpers():
    return {"fee_reason": lambda reason: REASONS.get(reason, reason),
            "library_name": lambda code: get_config().library_name(code)}


@bp.get("/billing")
@desk_role()
def cashier():
    """Find one of our patrons' accounts (the cashier's start page)."""
    home_id = request.args.get("patron_id", "").strip()[:200]
    if home_id:
        return redirect(url_for("billing.account", home_id=home_id))
    return render_template("billing_cashier.html", patron=None, home_id="")


@bp.get("/billing/patrons/<home_id>")
@desk_role()
def account(home_id):
    from node.web.billing_api import account_summary
    cfg = get_config()
    patron = Patron.get_or_none(institution=cfg.institution, home_id=home_id)
    if patron is None:
        flash(f"{cfg.node['name']} has no patron {home_id}.", "error")
        return render_template("billing_cashier.html", patron=None, home_id=home_id), 404
    fees = list(billing.fees_query(cfg, home_id=home_id).limit(500))
    receipt = request.args.get("receipt", "")[:4000]
    return render_template("billing_cashier.html", patron=patron, home_id=home_id, fees=fees,
                           summary=account_summary(cfg, patron), methods=billing.METHODS, receipt=receipt,
                           owed={code: amount for code, amount in billing.balances(patron).items() if amount > 0})


@bp.post("/billing/fees/<fee_id>/pay")
@desk_role()
def pay(fee_id):
    cfg = get_config()
    try:
        fee = billing.record_payment(cfg, fee_id, request.form.get("amount", ""), utcnow(),
                                     staff=current_staff().name, note=request.form.get("note", "")[:200])
    except errors.CircnodeError as exc:
        flash(exc.message, "error")
        return _back(fee_id)
    flash(f"Payment recorded: {fee.paid} of {fee.amount} {fee.currency} paid ({fee.status}).", "success")
    return _back(fee_id, _latest_payment(fee))


@bp.post("/billing/fees/<fee_id>/waive")
@desk_role("admin")
def waive(fee_id):
    cfg = get_config()
    try:
        fee = billing.record_waiver(cfg, fee_id, request.form.get("reason", ""), utcnow(),
                                    staff=current_staff().name)
    except errors.CircnodeError as exc:
        flash(exc.message, "error")
        return _back(fee_id)
    flash(f"Fee waived ({fee.amount - fee.paid} {fee.currency}).", "success")
    return _back(fee_id, _latest_payment(fee))


def _latest_payment(fee):
    # Payment ids are time-ordered (models.new_uuid): the newest is the one just recorded.
    return fee.payments.order_by(FeePayment.at.desc(), FeePayment.id.desc()).first()


def _back(fee_id, payment=None):
    fee = billing.Fee.get_or_none(id=fee_id)
    if fee is not None and fee.patron_id:
        return _to_account(fee.patron.home_id, [payment.id] if payment else [])
    return redirect(url_for("billing.cashier"))


def _to_account(home_id, payment_ids):
    """Back to the account; after a payment or waiver, with its receipt (printing at once when auto)."""
    if payment_ids and slips.auto_print():
        return redirect(slips.slip_url("payment", payment_ids, print_now=True))
    receipt = {"receipt": slips.slip_token("payment", payment_ids)} if payment_ids else {}
    return redirect(url_for("billing.account", home_id=home_id, **receipt))


@bp.post("/billing/patrons/<home_id>/pay")
@desk_role()
def pay_balance(home_id):
    """Pay the balance, or part of it: oldest fees first, the last one partly."""
    cfg = get_config()
    try:
        receipt = billing.pay_balance(cfg, home_id, request.form.get("amount", ""), request.form.get("method", ""),
                                      utcnow(), staff=current_staff().name,
                                      currency=request.form.get("currency") or None,
                                      note=request.form.get("note", "")[:200])
    except errors.CircnodeError as exc:
        flash(exc.message, "error")
        return redirect(url_for("billing.account", home_id=home_id))
    flash(f"Payment recorded: {receipt.paid} {receipt.currency} ({receipt.method}) on "
          f"{len({p.fee_id for p in receipt.payments})} fees; {receipt.remaining} {receipt.currency} left.", "success")
    return _to_account(home_id, [p.id for p in receipt.payments])


@bp.post("/billing/patrons/<home_id>/waive")
@desk_role("admin")
def waive_balance(home_id):
    """Waive the balance, or whole fees of it, oldest first."""
    cfg = get_config()
    try:
        receipt = billing.waive_balance(cfg, home_id, request.form.get("amount", ""), request.form.get("reason", ""),
                                        utcnow(), staff=current_staff().name,
                                        currency=request.form.get("currency") or None)
    except errors.CircnodeError as exc:
        flash(exc.message, "error")
        return redirect(url_for("billing.account", home_id=home_id))
    flash(f"Waived {receipt.waived} {receipt.currency}; {receipt.remaining} {receipt.currency} left.", "success")
    return _to_account(home_id, [p.id for p in receipt.payments])


@bp.get("/billing/ledger")
@desk_role()
def ledger():
    """The fees this library assessed, with the status each home node reported, and the settlement."""
    cfg = get_config()
    fees = list(billing.fees_query(cfg, lender=cfg.institution).limit(500))
    return render_template("billing_ledger.html", fees=fees, rows=billing.settlement(cfg))


@bp.route("/billing/bursar", methods=["GET", "POST"])
@desk_role("admin")
def bursar_page():
    cfg = get_config()
    if request.method == "POST":
        batch = bursar.export(cfg, utcnow(), staff=current_staff().name)
        if batch is None:
            flash("Nothing to export: every fee is in a batch already.", "warning")
        else:
            flash(f"Batch {batch.id}: {batch.fee_count} fees ({batch.totals}). Download it below.", "success")
        return redirect(url_for("billing.bursar_page"))
    pending = billing.Fee.select().where((billing.Fee.home == cfg.institution)
                                         & billing.Fee.bursar_batch.is_null()
                                         & billing.Fee.patron.is_null(False)).count()
    return render_template("billing_bursar.html", batches=bursar.batches(), pending=pending,
                           columns=bursar.COLUMNS, runs=jobs.last_runs(), describe=jobs.describe,
                           notice_counts=notices.queue_counts())


@bp.get(f"/billing/bursar/<{BATCH_ID}:batch_id>.csv")
@desk_role("admin")
def bursar_csv(batch_id):
    """Download (or print again) one batch."""
    return batch_csv_response(batch_id)
