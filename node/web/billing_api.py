"""JSON API of fees, payments, the bursar export and the settlement report (docs/billing.md).

Thin: parse, call node.domain.billing / node.domain.bursar, answer.  Amounts are strings
("12.50") in answers; in requests a string or a JSON number is accepted and
read as Decimal, never as float (node.web.api.json_body).
"""
from flask import Blueprint, Response, jsonify, request

from node.domain import billing, bursar, errors
from node.web.api import int_arg, json_body
from node.web import slips
from node.web.context import get_config
from node.web.auth import api_role, current_staff_name
from node.clock import utcnow
from node.store.models import Fee, FeePayment, Patron

bp = Blueprint("billing_api", __name__)


def init_app(app):
    """Register the fee and bursar API (CSRF-exempt: Bearer tokens only)."""
    from node.web.context import csrf
    app.register_blueprint(bp)
    csrf.exempt(bp)


def account_summary(cfg, patron):
    """Balance per currency and the blocks of one of our patrons."""
    blocks = []
    if patron.blocked:
        blocks.append({"code": "patron_blocked", "reason": patron.block_reason or "Blocked by the library."})
    fee_block = billing.fee_block(cfg, patron)
    if fee_block:
        blocks.append({"code": "patron_blocked", "reason": fee_block})
    return {"balance": {code: str(amount) for code, amount in billing.balances(patron).items()},
            "blocked": bool(blocks), "blocks": blocks}


@bp.get("/api/v1/fees")
@api_role("desk")
def fees():
    """?patron_id=ID: that patron's account here (home); without it: the fees this library assessed."""
    cfg = get_config()
    status = request.args.get("status") or None
    if status not in (None, "open", "paid", "waived"):
        raise errors.InvalidField("status is open, paid or waived.", field="status")
    limit, offset = int_arg("limit", 200, 1, 1000), int_arg("offset", 0, 0, 10**9)
    home_id = request.args.get("patron_id")
    if home_id:
        patron = Patron.get_or_none(institution=cfg.institution, home_id=home_id)
        if patron is None:
            raise errors.PatronNotFound(f"No patron {home_id!r} here.")
        query = billing.fees_query(cfg, home_id=home_id, status=status)
        body = {"patron": {"institution": cfg.institution, "id": home_id}, **account_summary(cfg, patron)}
    else:
        home = (request.args.get("home") or "").upper() or None
        query = billing.fees_query(cfg, lender=cfg.institution, status=status)
        if home:
            query = query.where(Fee.home == home)
        body = {"lender": cfg.institution}
    rows = list(query.limit(limit).offset(offset))
    return jsonify({**body, "fees": [fee.to_dict(cfg.tz) for fee in rows], "limit": limit, "offset": offset})


@bp.get("/api/v1/fees/<fee_id>")
@api_role("desk")
def fee(fee_id):
    cfg = get_config()
    found = billing.get_fee(fee_id)
    body = found.to_dict(cfg.tz)
    body["payments"] = [{"id": p.id, "kind": p.kind, "amount": str(p.amount), "at": p.at.astimezone(cfg.tz).isoformat(),
                         "staff": p.staff, "note": p.note} for p in found.payments.order_by(FeePayment.at)]
    return jsonify(body)


@bp.post("/api/v1/fees/<fee_id>/pay")
@api_role("desk")
def pay(fee_id):
    """Record a payment {"amount": A[, "note": N]} on an open fee of one of our patrons."""
    cfg = get_config()
    body = json_body()
    note = body.get("note") or ""
    if not isinstance(note, str) or len(note) > 200:
        raise errors.InvalidField("'note' is a string of at most 200 characters.", field="note")
    paid = billing.record_payment(cfg, fee_id, body.get("amount"), utcnow(), staff=current_staff_name(), note=note)
    return jsonify(paid.to_dict(cfg.tz))


@bp.post("/api/v1/fees/<fee_id>/waive")
@api_role("admin")
def waive(fee_id):
    """Waive what is open on a fee of one of our patrons: {"reason": R}."""
    cfg = get_config()
    waived = billing.record_waiver(cfg, fee_id, json_body().get("reason"), utcnow(), staff=current_staff_name())
    return jsonify(waived.to_dict(cfg.tz))


def receipt_json(cfg, receipt):
    """A cashier action's answer: what was paid or waived on which fee, what is left, and its printable receipt."""
    return {"patron": {"institution": receipt.patron.institution, "id": receipt.patron.home_id},
            "currency": receipt.currency, "paid": str(receipt.paid), "waived": str(receipt.waived),
            "remaining": str(receipt.remaining), "method": receipt.method,
            "payments": [{"id": p.id, "fee_id": p.fee_id, "kind": p.kind, "amount": str(p.amount),
                          "lender": p.fee.lender, "item": {"barcode": p.fee.item_barcode, "title": p.fee.item_title},
                          "at": p.at.astimezone(cfg.tz).isoformat(), "staff": p.staff, "note": p.note,
                          "method": p.method} for p in receipt.payments],
            "receipt_url": slips.slip_url("payment", [p.id for p in receipt.payments])}


def _balance_request():
    body = json_body()
    home_id = body.get("patron_id")
    if not isinstance(home_id, str) or not home_id.strip() or len(home_id) > 200:
        raise errors.InvalidField("'patron_id' is the id of one of our patrons.", field="patron_id")
    currency = body.get("currency")
    if currency is not None and not isinstance(currency, str):
        raise errors.InvalidField("'currency' is an ISO 4217 code such as CHF.", field="currency")
    return body, home_id.strip(), currency


@bp.post("/api/v1/fees/pay-balance")
@api_role("desk")
def pay_balance():
    """Pay {"patron_id", "amount", "method"[, "currency", "note"]} on a patron's open fees, oldest first."""
    cfg = get_config()
    body, home_id, currency = _balance_request()
    receipt = billing.pay_balance(cfg, home_id, body.get("amount"), body.get("method", "cash"), utcnow(),
                                  staff=current_staff_name(), currency=currency, note=body.get("note") or "")
    return jsonify(receipt_json(cfg, receipt))


@bp.post("/api/v1/fees/waive-balance")
@api_role("admin")
def waive_balance():
    """Waive {"patron_id", "amount", "reason"[, "currency"]}: whole open fees of a patron, oldest first."""
    cfg = get_config()
    body, home_id, currency = _balance_request()
    receipt = billing.waive_balance(cfg, home_id, body.get("amount"), body.get("reason"), utcnow(),
                                    staff=current_staff_name(), currency=currency)
    return jsonify(receipt_json(cfg, receipt))


@bp.get("/api/v1/settlement")
@api_role("desk")
def settlement():
    cfg = get_config()
    return jsonify({"institution": cfg.institution, "rows": billing.settlement(cfg)})


def _batch_json(cfg, batch):
    return {"id": batch.id, "created_at": batch.created_at.astimezone(cfg.tz).isoformat(), "staff": batch.staff,
            "fee_count": batch.fee_count, "totals": batch.totals, "csv": f"/api/v1/bursar/batches/{batch.id}.csv"}


@bp.get("/api/v1/bursar/batches")
@api_role("admin")
def batches():
    cfg = get_config()
    return jsonify({"batches": [_batch_json(cfg, batch) for batch in bursar.batches()]})


@bp.post("/api/v1/bursar/batches")
@api_role("admin")
def export():
    """Export every fee not yet exported into a new batch (201), or 200 with "batch": null."""
    cfg = get_config()
    batch = bursar.export(cfg, utcnow(), staff=current_staff_name())
    if batch is None:
        return jsonify({"batch": None})
    return jsonify({"batch": _batch_json(cfg, batch)}), 201


# A batch number in a path is at most SQLite's largest integer: a longer one is no batch (404), not a
# Python int that SQLite cannot bind (OverflowError, a 500 schemathesis found).
BATCH_ID = f"int(max={2 ** 63 - 1})"


@bp.get(f"/api/v1/bursar/batches/<{BATCH_ID}:batch_id>.csv")
@api_role("admin")
def batch_csv(batch_id):
    return batch_csv_response(batch_id)


def batch_csv_response(batch_id):
    """One bursar batch as a CSV download (a past batch prints again, identical)."""
    cfg = get_config()
    batch = bursar.get_batch(batch_id)
    return Response(bursar.render_csv(cfg, batch.id), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=bursar-{cfg.institution}-{batch.id:05d}.csv"})
