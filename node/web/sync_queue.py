"""The admin sync queue over HTTP: JSON for scripts, ``/admin/queue`` for people.

Two blueprints so that only the JSON one is exempt from CSRF (it takes
Bearer tokens, never cookies); the page's Retry and Resolve forms keep it.
Both are thin over ``sync.queue``.
"""
from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from node.domain import errors
from node.web.api import int_arg, json_body
from node.web.context import get_config
from node.web.auth import api_role, current_staff_name, desk_role
from node.clock import utcnow
from sync import queue

api_bp = Blueprint("sync_queue_api", __name__)
web_bp = Blueprint("sync_queue", __name__)


def init_app(app):
    """Register the queue's API and page; exempt only the API from CSRF."""
    from node.web.context import csrf
    app.register_blueprint(api_bp)
    app.register_blueprint(web_bp)
    csrf.exempt(api_bp)



def _order_arg():
    order = request.args.get("order", "newest")
    if order not in ("newest", "oldest"):
        raise errors.InvalidField("order is newest or oldest.", field="order")
    return order == "oldest"


@api_bp.get("/api/v1/sync/queue")
@api_role("admin")
def queue_json():
    cfg = get_config()
    view = queue.queue_view(cfg, utcnow(), peer=request.args.get("peer"), state=request.args.get("state"),
                            limit=int_arg("limit", 50, 1, queue.MAX_LIMIT), offset=int_arg("offset", 0, 0, 10**9),
                            oldest_first=_order_arg())
    return jsonify(queue.jsonable(view, cfg.tz))


@api_bp.post("/api/v1/sync/queue/retry")
@api_role("admin")
def retry_json():
    cfg = get_config()
    result, queued = queue.retry_peer(cfg, json_body().get("peer"), utcnow)
    return jsonify(queue.jsonable({
        "peer": result.peer, "ok": not result.error, "delivered": result.delivered,
        "rejected": result.rejected, "batches": result.batches, "error": result.error or None,
        "queued": queued, "summary": queue.peer_summary(cfg, result.peer, utcnow())}, cfg.tz))


@api_bp.post("/api/v1/loans/<loan_id>/resolve")
@api_role("admin")
def resolve_json(loan_id):
    cfg = get_config()
    now = utcnow()
    loan = queue.resolve_dispute(cfg, loan_id, json_body().get("note"), now, staff=current_staff_name())
    from node.domain.circulation import get_loan
    return jsonify(get_loan(loan.id).to_dict(cfg.tz, now))


@web_bp.get("/admin/queue")
@desk_role("admin")
def queue_page():
    cfg = get_config()
    peer, state = request.args.get("peer", ""), request.args.get("state", "")
    offset = max(0, _safe_int(request.args.get("offset")))
    try:
        view = queue.queue_view(cfg, utcnow(), peer=peer, state=state, offset=offset)
    except errors.InvalidField as exc:
        flash(exc.message, "error")  # a bad filter in the address: show everything instead
        view = queue.queue_view(cfg, utcnow())
    return render_template("queue.html", view=view, peer_choices=queue.peer_codes(cfg),
                           states=queue.EVENT_STATES, age=_age)


def _safe_int(raw):
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _age(seconds):
    """SECONDS as a person reads an age: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _back():
    """Back to the queue page with the filters it was showing."""
    filters = {key: request.form.get(key) for key in ("peer", "state") if request.form.get(key)}
    return redirect(url_for("sync_queue.queue_page", **filters))


@web_bp.post("/admin/queue/retry")
@desk_role("admin")
def retry_page():
    cfg = get_config()
    code = request.form.get("retry_peer", "")
    try:
        result, queued = queue.retry_peer(cfg, code, utcnow)
    except errors.CircnodeError as exc:
        flash(exc.message, "error")
        return _back()
    if result.error:
        flash(f"{result.peer}: {result.error} ({queued} events stay queued).", "error")
    else:
        rejected = f", {result.rejected} rejected" if result.rejected else ""
        flash(f"{result.peer}: {result.delivered} delivered{rejected}; {queued} queued.", "success")
    return _back()


@web_bp.post("/admin/queue/loans/<loan_id>/resolve")
@desk_role("admin")
def resolve_page(loan_id):
    try:
        queue.resolve_dispute(get_config(), loan_id, request.form.get("note", ""), utcnow(),
                              staff=current_staff_name())
    except errors.CircnodeError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Loan {loan_id}: dispute resolved; the note is in the audit log.", "success")
    return _back()
