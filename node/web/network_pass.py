"""The desk scans a patron's network pass (docs/identity.md): verified here, then the visit starts.

Routes:
  POST /patron/pass           desk: a scanned network pass starts the visit
"""
from flask import Blueprint, flash, redirect, request, url_for

from node.clock import utcnow
from node.domain import errors
from node.web.context import get_config
from node.web.auth import desk_role
from node.web.visit import begin_visit

bp = Blueprint("network_pass", __name__)


def init_app(app):
    """Register the desk's network pass."""
    app.register_blueprint(bp)


@bp.post("/patron/pass")
@desk_role()
def scan():
    from node.domain.patron_pass import verify
    cfg = get_config()
    now = utcnow()
    try:
        npass = verify(cfg, request.form.get("pass", ""), now)  # verify bounds the length
    except errors.CircnodeError as exc:
        flash(f"Network pass refused: {exc.message} [{exc.code}]", "error")
        return redirect(url_for("desk.checkout"))
    return begin_visit(cfg, npass.institution, npass.home_id, npass.name, now, via="pass", pass_text=npass.text)
