"""``GET /api/v1/me``: the signed-in patron as JSON (401 when none)."""
from flask import Blueprint, jsonify

from node.clock import utcnow
from node.domain import errors
from node.web.context import get_config
from node.web.saml import signed_in_patron

bp = Blueprint("me", __name__)


def init_app(app):
    """Register /api/v1/me."""
    app.register_blueprint(bp)


@bp.get("/api/v1/me")
def me():
    patron = signed_in_patron(get_config(), utcnow())
    if patron is None:
        raise errors.Unauthorized("No patron is signed in. Sign in at /patron/login?institution=CODE.")
    return jsonify(patron)
