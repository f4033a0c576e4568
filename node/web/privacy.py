"""The public page that lists what this node shares with its peers, and how long it keeps patron data."""
from flask import Blueprint, render_template

from node.web.context import get_config
from sync.catalogue import shared_rows

bp = Blueprint("privacy", __name__)


def init_app(app):
    """Register the public /privacy page."""
    app.register_blueprint(bp)

# What travels between nodes besides events (docs/protocol.md); the events' rows come from
# their declarations in sync/catalogue.py, so the page cannot miss a field an event carries.
SHARED = [
    ("standing answer", "home → lender", "when a lender asks before lending",
     "ok with the patron's name and email, or a refusal code with a fixed sentence"),
    ("renewal request", "home → lender", "the patron presses Renew on their account", "loan id"),
]


@bp.get("/privacy")
def page():
    """Public: what this node shares with its peers, and how long it keeps patron data."""
    cfg = get_config()
    return render_template("privacy.html", shared=shared_rows() + SHARED, settings=cfg.sections["privacy"],
                           dedup_days=cfg.sync["dedup_days"], peers=cfg.peers)
