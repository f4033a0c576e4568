"""The federation's metadata aggregate, for admins ([saml] federation_metadata, docs/identity.md).

Routes:
  GET  /admin/federation          the copy in use, the last attempts, and each IdP found in it
  POST /admin/federation/refresh  fetch and verify it now
"""
from flask import Blueprint, flash, redirect, render_template, url_for

from node.clock import utcnow
from node.domain import errors
from node.identity import saml_federation
from node.web.context import get_config
from node.web.auth import desk_role

bp = Blueprint("federation", __name__)


def init_app(app):
    """Register the federation's admin page."""
    app.register_blueprint(bp)


@bp.get("/admin/federation")
@desk_role("admin")
def page():
    cfg = get_config()
    if not saml_federation.configured(cfg):
        return render_template("federation.html", status=None)
    return render_template("federation.html", status=saml_federation.status(cfg, utcnow()))


@bp.post("/admin/federation/refresh")
@desk_role("admin")
def refresh():
    cfg = get_config()
    if saml_federation.configured(cfg):
        try:
            aggregate = saml_federation.refresh(cfg, utcnow())
            flash(f"Federation metadata verified and taken: {len(aggregate.idps)} identity providers.", "success")
        except errors.CircnodeError as exc:
            flash(f"{exc.message} [{exc.code}]", "error")
    return redirect(url_for("federation.page"))
