"""Patron sign-in at the patron's own institution (SAML), on the desk or on the patron's phone.

Routes (docs/identity.md):
  GET  /saml/metadata         this node's SP metadata, for identity providers
  GET  /patron/login          ?institution=CODE[&next=desk]: off to that institution's IdP
  POST /saml/acs              the IdP's answer (the only form without a CSRF token)
  GET  /patron/continue       back in the browser that started: bind the identity to its session
  GET  /api/v1/me             the signed-in patron as JSON (401 when none)
  POST /patron/phone/start    desk: a single-use link for the patron's phone, shown as a QR code
  GET  /patron/phone/wait     desk: waits for the phone, then continues by itself
  GET  /p/<token>             phone: opens the link, off to the IdP
  POST /patron/pass           desk: a scanned network pass starts the visit
  GET  /patron/account        a patron of this node: their loans and network pass
  GET  /admin/federation      admins: the federation's metadata aggregate and each IdP found in it
  POST /admin/federation/refresh  admins: fetch and verify it now
The ACS never touches the session cookie: a cross-site POST does not carry
it (SameSite=Lax), and setting one there would sign the desk's staff out.
"""
import datetime
import hashlib
import logging
import secrets

from flask import Blueprint, flash, jsonify, redirect, render_template, request, session, url_for

from node.domain import circulation, errors

from node import phone_link, saml_sp
from node.web.app import get_config
from node.web.auth import current_staff, desk_role
from node.clock import utcnow

log = logging.getLogger(__name__)
bp = Blueprint("patron", __name__)


def init_app(app, csrf):
    """Register the sign-in routes; exempt only the ACS from CSRF; check xmlsec1 once."""
    app.register_blueprint(bp)
    csrf.exempt(acs)
    cfg = app.extensions["circnode"]
    if saml_sp.sign_in_institutions(cfg):
        try:
            saml_sp.xmlsec_binary(cfg)
        except errors.SignInUnavailable as exc:
            log.error("%s", exc.message)


def _hash(value):
    return hashlib.sha256(value.encode()).hexdigest()




@bp.app_context_processor
def _choices():
    """Each institution: (code, name, sign-in configured, why it cannot work now or None)."""
    cfg = get_config()
    ready = set(saml_sp.sign_in_institutions(cfg))
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
    return saml_sp.sp_metadata_xml(get_config(), utcnow()), 200, {"Content-Type": "application/samlmetadata+xml"}


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
        return _begin_visit(cfg, identity.institution, identity.id, identity.name, now, via="saml")
    if identity.institution == cfg.institution:
        return redirect(url_for("patron.account"))
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


@bp.get("/api/v1/me")
def me():
    patron = signed_in_patron(get_config(), utcnow())
    if patron is None:
        raise errors.Unauthorized("No patron is signed in. Sign in at /patron/login?institution=CODE.")
    return jsonify(patron)


@bp.post("/patron/logout")
def logout():
    session.pop("patron", None)
    flash("Signed out.", "success")
    return redirect(url_for("patron.account"))


def _begin_visit(cfg, institution, home_id, name, now, via, pass_text=None):
    """Start the desk visit for a verified patron (standing checked), then on to item scanning."""
    from node.domain.patron_pass import standing_for_visit
    visit = {"institution": institution, "id": home_id, "name": name, "provisional": False,
             "loans": [], "verified": via}
    if pass_text:
        visit["pass"] = pass_text
    try:
        standing = standing_for_visit(cfg, visit, now)
        if not standing.ok:
            circulation.refuse_for_standing(standing)
    except errors.CircnodeError as exc:
        flash(f"{cfg.library_name(institution)} patron {name or home_id}: {exc.message}", "error")
        return redirect(url_for("desk.checkout"))
    visit.update(name=name or standing.name, provisional=standing.provisional)
    session["visit"] = visit
    how = "network pass" if via == "pass" else f"signed in at {cfg.library_name(institution)}"
    flash(f"{visit['name'] or home_id} ({how}).", "success")
    if standing.provisional:
        flash("The home library is not asked: loans are provisional, within this library's offline limit.",
              "warning")
    return redirect(url_for("desk.scan"))


@bp.post("/patron/pass")
@desk_role()
def desk_pass():
    from node.domain.patron_pass import verify
    cfg = get_config()
    now = utcnow()
    try:
        npass = verify(cfg, request.form.get("pass", ""), now)  # verify bounds the length
    except errors.CircnodeError as exc:
        flash(f"Network pass refused: {exc.message} [{exc.code}]", "error")
        return redirect(url_for("desk.checkout"))
    return _begin_visit(cfg, npass.institution, npass.home_id, npass.name, now, via="pass", pass_text=npass.text)


# --- sign in on the patron's phone -----------------------------------------

@bp.post("/patron/phone/start")
@desk_role()
def phone_start():
    cfg = get_config()
    institution = request.form.get("institution", "").strip().upper()[:32]
    if institution not in saml_sp.sign_in_institutions(cfg):
        flash(f"Sign-in at {cfg.library_name(institution)} is not set up at this library.", "error")
        return redirect(url_for("desk.checkout"))
    problem = saml_sp.sign_in_problem(cfg, institution, utcnow())
    if problem is not None:
        flash(f"{problem.message} [{problem.code}]", "error")
        return redirect(url_for("desk.checkout"))
    link, token = phone_link.create(cfg, institution, utcnow())
    session["phone_link"] = {"id": link.id, "token": token, "institution": institution}
    return redirect(url_for("patron.phone_wait"))


@bp.get("/patron/phone/wait")
@desk_role()
def phone_wait():
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
        return _begin_visit(cfg, identity.institution, identity.id, identity.name, now, via="phone")
    if state in ("expired", "used"):
        session.pop("phone_link", None)
        flash("The phone sign-in code expired. Start again.", "error")
        return redirect(url_for("desk.checkout"))
    from node.domain.patron_pass import qr_svg
    url = cfg.node["base_url"] + url_for("patron.phone_open", token=pending["token"])
    return render_template("patron_phone_wait.html", url=url, qr=qr_svg(url, scale=5), state=state,
                           institution_name=cfg.library_name(pending["institution"]))


@bp.get("/patron/phone/status")
@desk_role()
def phone_status():
    pending = session.get("phone_link")
    return jsonify({"state": phone_link.status(pending["id"], utcnow()) if pending else "none"})


@bp.get("/p/<token>")
def phone_open(token):
    cfg = get_config()
    now = utcnow()
    try:
        link = phone_link.open_link(token[:100], now)
        location = saml_sp.start_login(cfg, link.institution, "phone", now, phone_link_id=link.id)
    except errors.CircnodeError as exc:
        return refused_page(exc)
    return redirect(location, 303)


# --- the home account ------------------------------------------------------

@bp.get("/patron/account")
def account():
    from node.domain.patron_pass import issue, qr_svg
    cfg = get_config()
    now = utcnow()
    patron = signed_in_patron(cfg, now)
    if patron is None or patron["institution"] != cfg.institution:
        return render_template("patron_account.html", patron=None,
                               can_sign_in=cfg.institution in saml_sp.sign_in_institutions(cfg))
    loans = list(circulation.loans_query(institution=cfg.institution, home_id=patron["id"]).limit(500))
    npass, refusal = None, None
    try:
        npass = issue(cfg, patron["id"], now)
    except errors.CircnodeError as exc:
        refusal = exc
    return render_template("patron_account.html", patron=patron, loans=loans, npass=npass, refusal=refusal,
                           qr=qr_svg(npass.text) if npass else "", now=now,
                           lender_name=lambda code: cfg.library_name(code))


# --- the federation's metadata, for admins -----------------------------------

@bp.get("/admin/federation")
@desk_role("admin")
def federation_page():
    from node import saml_federation
    cfg = get_config()
    if not saml_federation.configured(cfg):
        return render_template("federation.html", status=None)
    return render_template("federation.html", status=saml_federation.status(cfg, utcnow()))


@bp.post("/admin/federation/refresh")
@desk_role("admin")
def federation_refresh():
    from node import saml_federation
    cfg = get_config()
    if saml_federation.configured(cfg):
        try:
            aggregate = saml_federation.refresh(cfg, utcnow())
            flash(f"Federation metadata verified and taken: {len(aggregate.idps)} identity providers.", "success")
        except errors.CircnodeError as exc:
            flash(f"{exc.message} [{exc.code}]", "error")
    return redirect(url_for("patron.federation_page"))
