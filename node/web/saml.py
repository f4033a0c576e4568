"""Patron sign-in at the patron's own institution (SAML), from the desk, the account page or the phone.

Routes (docs/identity.md):
  GET  /saml/metadata         this node's SP metadata, for identity providers
  GET  /patron/login          ?institution=CODE[&next=desk]: off to that institution's IdP
  POST /saml/acs              the IdP's answer (the only form without a CSRF token)
  GET  /patron/continue       back in the browser that started: bind the identity to its session
  POST /patron/logout         forget the signed-in patron
The session's patron is read back by ``signed_in_patron`` (the account page, node/web/account.py, and
/api/v1/me, node/web/me.py); the phone link (node/web/phone.py) and the network pass
(node/web/network_pass.py) start a desk visit the same way (node/web/visit.py).
The ACS never touches the session cookie: a cross-site POST does not carry
it (SameSite=Lax), and setting one there would sign the desk's staff out.
"""
import datetime
import hashlib
import logging
import secrets

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from node.domain import errors

from node.identity import phone_link, saml_metadata, saml_names, saml_sp
from node.web.context import get_config
from node.web.auth import current_staff
from node.web.visit import begin_visit
from node.clock import utcnow

log = logging.getLogger(__name__)
bp = Blueprint("patron", __name__)


def init_app(app, csrf):
    """Register the sign-in routes; exempt only the ACS from CSRF; check xmlsec1 once."""
    app.register_blueprint(bp)
    csrf.exempt(acs)
    cfg = app.extensions["circnode"]
    if saml_names.sign_in_institutions(cfg):
        try:
            saml_names.xmlsec_binary(cfg)
        except errors.SignInUnavailable as exc:
            log.error("%s", exc.message)


def _hash(value):
    return hashlib.sha256(value.encode()).hexdigest()




@bp.app_context_processor
def _choices():
    """Each institution: (code, name, sign-in configured, why it cannot work now or None)."""
    cfg = get_config()
    ready = set(saml_names.sign_in_institutions(cfg))
    now = utcnow()
    choices = sorted(((code, cfg.library_name(code), code in ready,
                       saml_sp.sign_in_problem(cfg, code, now) if code in ready else None)
                      for code in [cfg.institution, *cfg.peers]),
                     key=lambda choice: choice[1].lower())
    return {"signin_choices": choices}


def refused_page(exc):
    """The patron's page for a refused sign-in: what happened and how to start again."""
    return render_template("patron_refused.html", error=exc), exc.status


@bp.get("/saml/metadata")
def metadata():
    return saml_metadata.sp_metadata_xml(get_config(), utcnow()), 200, {"Content-Type": "application/samlmetadata+xml"}


@bp.get("/patron/login")
def login():
    cfg = get_config()
    institution = request.args.get("institution", "").strip().upper()[:32]
    purpose = "desk" if request.args.get("next") == "desk" else "patron"
    if purpose == "desk" and current_staff() is None:
        # After the staff sign-in, back to the checkout rather than on to the IdP: the CSP form-action
        # of the sign-in form ('self') covers its redirects too, so a chain ending at the IdP is blocked.
        return redirect(url_for("desk.login", next=url_for("desk.checkout")))
    handle = secrets.token_urlsafe(32)
    try:
        location = saml_sp.start_login(cfg, institution, purpose, utcnow(), handle_hash=_hash(handle))
    except errors.CircnodeError as exc:
        return refused_page(exc)
    session["saml_handle"] = handle  # the answer is only taken in this browser
    return redirect(location, 303)


@bp.post("/saml/acs")
def acs():
    cfg = get_config()
    if (request.content_length or 0) > saml_sp.MAX_RESPONSE_BYTES + 4096:
        return refused_page(errors.TooLarge("The sign-in answer is larger than this library accepts."))
    request.max_content_length = saml_sp.MAX_RESPONSE_BYTES + 4096
    now = utcnow()
    try:
        row, identity = saml_sp.verify_response(cfg, request.form.get("SAMLResponse", ""), now)
        if row.purpose == "phone":
            phone_link.complete(row.phone_link_id, identity, now)
            return render_template("patron_phone_done.html", identity=identity,
                                   institution_name=cfg.library_name(identity.institution))
    except (errors.SamlRefused, errors.SignInUnavailable, errors.LinkUsed) as exc:
        return refused_page(exc)
    return redirect(url_for("patron.resume", r=row.id), 303)


@bp.get("/patron/continue")
def resume():
    cfg = get_config()
    now = utcnow()
    handle = session.get("saml_handle") or ""
    try:
        row, identity = saml_sp.take_verified(request.args.get("r", "")[:100], _hash(handle), now)
    except errors.CircnodeError as exc:
        return refused_page(exc)
    session.pop("saml_handle", None)
    session["patron"] = identity.to_dict()
    if row.purpose == "desk" and current_staff() is not None:
        return begin_visit(cfg, identity.institution, identity.id, identity.name, now, via="saml")
    if identity.institution == cfg.institution:
        return redirect(url_for("account.page"))
    return render_template("patron_signed_in.html", identity=identity,
                           institution_name=cfg.library_name(identity.institution))


def signed_in_patron(cfg, now):
    """The identity bound to this session, if still within [saml] patron_session_minutes."""
    patron = session.get("patron")
    if not patron:
        return None
    limit = datetime.timedelta(minutes=cfg.sections["saml"]["patron_session_minutes"])
    try:
        fresh = now - datetime.datetime.fromisoformat(patron["verified_at"]) < limit
    except (KeyError, TypeError, ValueError):
        fresh = False
    if not fresh:
        session.pop("patron", None)
        return None
    return patron


@bp.post("/patron/logout")
def logout():
    session.pop("patron", None)
    flash("Signed out.", "success")
    return redirect(url_for("account.page"))
