"""The desk scans a patron's network pass (docs/identity.md): verified here, then the visit starts.

Routes:
  POST /patron/pass           desk: a scanned network pass starts the visit
"""
from flask import Blueprint, request

from node.clock import utcnow
from node.web.context import get_config
from node.web.auth import desk_role
from node.web.visit import begin_pass_visit

bp = Blueprint("network_pass", __name__)


def init_app(app):
    """Register the desk's network pass."""
    app.register_blueprint(bp)


@bp.post("/patron/pass")
@desk_role()
def scan():
    return begin_pass_visit(get_config(), request.form.get("pass", ""), utcnow())
