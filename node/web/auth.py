"""The staff member of a request (Bearer token or session), sign-in sessions and the role checks.

The accounts themselves (passwords, tokens, the throttled sign-in) are node/domain/accounts.py.
"""
import datetime
import functools
import secrets

from flask import g, redirect, request, session, url_for

from node.domain import errors
from node.domain.accounts import SESSION_IDLE, TOUCH_EVERY, _token_hash, staff_for_token
from node.store.db import database
from node.store.models import Staff, StaffSession


def current_staff():
    """The staff member of this request: a Bearer token for the API, else the session."""
    if "staff" in g:
        return g.staff
    staff = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        staff = staff_for_token(header[7:].strip(), datetime.datetime.now(datetime.timezone.utc))
    elif session.get("sid"):
        now = datetime.datetime.now(datetime.timezone.utc)
        row = (StaffSession.select(StaffSession, Staff).join(Staff)
               .where(StaffSession.id == _token_hash(session["sid"])).first())
        if row and row.last_seen_at > now - SESSION_IDLE:
            staff = row.staff
            if row.last_seen_at < now - TOUCH_EVERY:
                StaffSession.update(last_seen_at=now).where(StaffSession.id == row.id).execute()
    g.staff = staff if staff and staff.active else None
    return g.staff


def current_staff_name():
    """The signed-in staff member's name for audit lines, or None."""
    staff = current_staff()
    return staff.name if staff else None


def api_role(role="desk"):
    """Require a Bearer token of ROLE (admin includes desk) on a JSON endpoint."""
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                raise errors.Unauthorized("Send 'Authorization: Bearer TOKEN' (circnode staff token NAME).")
            staff = current_staff()
            if staff is None:
                raise errors.Unauthorized("The token is not valid.")
            if role == "admin" and staff.role != "admin":
                raise errors.Forbidden("Only admins may do this.")
            return view(*args, **kwargs)
        return wrapped
    return decorator


# The desk's scan forms: a scan posted after the staff session ended, or with a form that expired,
# is not made; the desk offers it again on the same page with the barcode filled in.
SCAN_ENDPOINTS = ("desk.scan", "desk.return_item")


def repeat_path():
    """Where this request's lost scan can be repeated (its barcode prefilled), or None when it is no scan.

    A checkout scan goes back to the visit kept in the session; when the session
    is gone too, to the checkout form filled with the visit's patron (the scan
    form carries them), which begins the visit again and then offers the scan.
    The patron goes in the new session (RESUME), not in the link: a signed-out
    screen shows no patron id, in the page or in the sign-in page's address.
    """
    if request.method != "POST" or request.endpoint not in SCAN_ENDPOINTS:
        return None
    barcode = request.form.get("item_barcode", "").strip()[:200]
    if request.endpoint == "desk.scan" and not session.get("visit"):
        institution = request.form.get("institution", "").strip().upper()[:32]
        patron_id = request.form.get("patron_id", "").strip()[:200]
        if institution and patron_id:
            session[RESUME] = {"institution": institution, "patron_id": patron_id}
            return url_for("desk.checkout", barcode=barcode or None)
    return url_for(request.endpoint, barcode=barcode or None)


def desk_role(role="desk"):
    """Require a signed-in staff session of ROLE on a desk page."""
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            staff = current_staff()
            if staff is None:  # after signing in, back here; a scan that was posted is offered again
                return redirect(url_for("desk.login", next=repeat_path() or request.full_path))
            if role == "admin" and staff.role != "admin":
                raise errors.Forbidden("Only admins may open this page.")
            return view(*args, **kwargs)
        return wrapped
    return decorator


# What a desk keeps across staff sign-out and timeout: the patron's visit, so signing in again
# returns to it (or the patron of a visit whose session was lost: RESUME, read once by the checkout
# form).  Data, not authority: the staff session id and the CSRF token are always new.
RESUME = "resume"
KEPT_ACROSS_SIGN_IN = ("visit", "last_institution", RESUME)


def _kept(staff=None):
    """The desk's visit and chooser to keep; at sign-in (STAFF) the visit only if STAFF began it.

    A visit planted in the browser by someone else (their own signed cookie) is dropped, so
    nobody signs in to find themselves lending to a patron they never admitted.
    """
    kept = {key: session[key] for key in KEPT_ACROSS_SIGN_IN if key in session}
    if staff is not None and (kept.get("visit") or {}).get("staff") != staff.name:
        kept.pop("visit", None)
    return kept


def start_session(staff, now):
    """A fresh session on login, so a planted session id is worth nothing; the desk's visit is kept."""
    kept = _kept(staff)
    session.clear()
    session.update(kept)
    sid = secrets.token_urlsafe(32)
    with database.atomic():
        StaffSession.create(id=_token_hash(sid), staff=staff, created_at=now, last_seen_at=now)
        StaffSession.delete().where(StaffSession.last_seen_at < now - SESSION_IDLE).execute()
    session["sid"] = sid
    session.permanent = True


def end_session():
    """Log out for real: the server forgets the session, not just this browser."""
    sid = session.pop("sid", None)
    if sid:
        with database.atomic():
            StaffSession.delete().where(StaffSession.id == _token_hash(sid)).execute()
    kept = _kept()
    session.clear()
    session.update(kept)
