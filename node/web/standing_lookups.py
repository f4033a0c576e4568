"""Peers' standing lookups for admins: ``/admin/standing-lookups`` and its JSON twin.

Thin over ``sync.lookups``, as the CLI's ``circnode standing lookups`` is.
The JSON blueprint takes Bearer tokens only and is exempt from CSRF; the
page is read-only (a GET form of filters).
"""
from flask import Blueprint, flash, jsonify, render_template, request

from node.domain import errors
from node.web.api import int_arg
from node.web.context import get_config
from node.web.auth import api_role, desk_role
from sync import lookups

api_bp = Blueprint("standing_lookups_api", __name__)
web_bp = Blueprint("standing_lookups", __name__)


def init_app(app):
    """Register the lookups' API and page; exempt only the API from CSRF."""
    from node.web.context import csrf
    app.register_blueprint(api_bp)
    app.register_blueprint(web_bp)
    csrf.exempt(api_bp)


def _filters():
    return request.args.get("peer", "").strip(), request.args.get("patron", "").strip()


@api_bp.get("/api/v1/sync/standing-lookups")
@api_role("admin")
def lookups_json():
    """The newest lookups (``limit``, default 50), filtered by ``peer`` and ``patron`` when given."""
    cfg = get_config()
    peer, patron = _filters()
    rows = lookups.recent(peer=peer, home_id=patron, limit=int_arg("limit", 50, 1, lookups.MAX_LIMIT))
    return jsonify({"peer": peer.upper() or None, "patron_id": patron or None,
                    "lookups": [lookups.to_dict(row, cfg.tz) for row in rows]})


@web_bp.get("/admin/standing-lookups")
@desk_role("admin")
def lookups_page():
    cfg = get_config()
    peer, patron = _filters()
    try:
        limit = int_arg("limit", 100, 1, lookups.MAX_LIMIT)
    except errors.InvalidField as exc:
        flash(exc.message, "error")  # a bad number in the address: show the default instead
        limit = 100
    rows = lookups.recent(peer=peer, home_id=patron, limit=limit)
    return render_template("standing_lookups.html", lookups=rows, peer=peer.upper(), patron=patron,
                           limit=limit, peer_choices=sorted(cfg.peers),
                           retention_days=cfg.sections["privacy"]["standing_lookup_days"],
                           per_minute=cfg.sync["standing_per_minute"])
