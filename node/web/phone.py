"""Patron sign-in on the patron's own phone: the desk shows a single-use link as a QR code and waits.

Routes (docs/identity.md):
  POST /patron/phone/start    desk: a single-use link for the patron's phone, shown as a QR code
  GET  /patron/phone/wait     desk: waits for the phone, then continues by itself
  GET  /patron/phone/status   desk: the link's state, for the waiting page's script
  GET  /p/<token>             phone: opens the link, off to the IdP
The IdP's answer comes back to the ACS (node/web/saml.py), which completes the link.
"""
from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for

from node.clock import utcnow
from node.domain import errors
from node.identity import phone_link, saml_names, saml_sp
from node.web.context import get_config
from node.web.auth import desk_role
from node.web.saml import refused_page
from node.web.visit import begin_visit

bp = Blueprint("phone", __name__)


def init_app(app):
    """Register the phone sign-in routes."""
    app.register_blueprint(bp)


@bp.post("/patron/phone/start")
@desk_role()
def start():
    cfg = get_config()
    institution = request.form.get("institution", "").strip().upper()[:32]
    if institution not in saml_names.sign_in_institutions(cfg):
        flash(f"Sign-in at {cfg.library_name(institution)} is not set up at this library.", "error")
        return redirect(url_for("desk.checkout"))
    problem = saml_sp.sign_in_problem(cfg, institution, utcnow())
    if problem is not None:
        flash(f"{problem.message} [{problem.code}]", "error")
        return redirect(url_for("desk.checkout"))
    link, token = phone_link.create(cfg, institution, utcnow())
    session["phone_link"] = {"id": link.id, "token": token, "institution": institution}
    return redirect(url_for("phone.wait"))


@bp.get("/patron/phone/wait")
@desk_role()
def wait():
    cfg = get_config()
    pending = session.get("phone_link")
    if not pending:
        return redirect(url_for("desk.checkout"))
    now = utcnow()
    state = phone_link.status(pending["id"], now)
    if state == "verified":
        session.pop("phone_link", None)
        identity = phone_link.take(pending["id"], now)
        session["patron"] = identity.to_dict()
        return begin_visit(cfg, identity.institution, identity.id, identity.name, now, via="phone")
    if state in ("expired", "used"):
        session.pop("phone_link", None)
        flash("The phone sign-in code expired. Start again.", "error")
        return redirect(url_for("desk.checkout"))
    from node.domain.patron_pass import qr_svg
    url = cfg.node["base_url"] + url_for("phone.open_link", token=pending["token"])
    return render_template("patron_phone_wait.html", url=url, qr=qr_svg(url, scale=5), state=state,
                           institution_name=cfg.library_name(pending["institution"]))


@bp.get("/patron/phone/status")
@desk_role()
def status():
    pending = session.get("phone_link")
    return jsonify({"state": phone_link.status(pending["id"], utcnow()) if pending else "none"})


@bp.get("/p/<token>")
def open_link(token):
    cfg = get_config()
    now = utcnow()
    try:
        link = phone_link.open_link(token[:100], now)
        location = saml_sp.start_login(cfg, link.institution, "phone", now, phone_link_id=link.id)
    except errors.CircnodeError as exc:
        return refused_page(exc)
    return redirect(location, 303)
