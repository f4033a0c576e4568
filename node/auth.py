"""Staff accounts: passwords, API tokens, login throttling, and the role checks.

Passwords are hashed with werkzeug's scrypt (already a Flask dependency);
API tokens are random and only their SHA-256 is stored, so a copied database
does not hand out working tokens.
"""
import datetime
import functools
import hashlib
import secrets

from flask import g, redirect, request, session, url_for
from werkzeug.security import check_password_hash, generate_password_hash

from node import errors
from node.db import database
from node.models import ROLES, ApiToken, LoginFailure, Staff, StaffSession

MAX_FAILURES = 5
FAILURE_WINDOW = datetime.timedelta(minutes=15)
SESSION_IDLE = datetime.timedelta(hours=12)


@functools.lru_cache(maxsize=1)
def _dummy_hash():
    """A hash compared against when the name is unknown, so timing does not reveal names.

    Made on first use: scrypt costs ~0.3 s, which every CLI command paid at import.
    """
    return generate_password_hash("circnode-no-such-user")


def add_staff(name, role, password, now):
    """Create a staff account; refuse a taken name, unknown role or weak password."""
    name = (name or "").strip()
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise errors.InvalidField("Staff names use letters, digits, '.', '-' and '_' (at most 64).")
    if role not in ROLES:
        raise errors.InvalidField(f"Role must be one of {', '.join(ROLES)}.")
    check_password_strength(name, password)
    with database.atomic():
        if Staff.get_or_none(name=name):
            raise errors.StaffExists(f"Staff member {name!r} exists already; pick another name.")
        return Staff.create(name=name, role=role, password_hash=generate_password_hash(password),
                            created_at=now)


# The passwords tried first by anyone guessing (lowercased, digits kept).
_COMMON = {"password", "password1", "password123", "12345678", "123456789", "1234567890", "qwertyuiop",
           "qwerty123", "iloveyou", "letmein123", "welcome123", "admin123", "administrator", "circnode",
           "library", "library123", "changeme", "11111111", "abc12345", "passw0rd"}


def check_password_strength(name, password):
    """Refuse a password that is short, common, or made from the staff name."""
    password = password or ""
    if len(password) < 8:
        raise errors.WeakPassword("Passwords have at least 8 characters.")
    lowered = password.lower()
    if lowered in _COMMON or len(set(lowered)) < 3:
        raise errors.WeakPassword("That password is one of the most common ones; choose another.")
    if name and name.lower() in lowered:
        raise errors.WeakPassword("The password must not contain the staff name.")


def new_token(name, now):
    """Issue a new API token for staff NAME; only its hash is stored."""
    staff = Staff.get_or_none(name=name)
    if staff is None:
        raise errors.NotFound(f"No staff member {name!r}.")
    token = "cn_" + secrets.token_urlsafe(32)
    with database.atomic():
        ApiToken.create(staff=staff, token_hash=_token_hash(token), created_at=now)
    return token


def _token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


# Every API request runs this: as plain SQL it costs a fifth of the joined
# peewee query, whose SQL building was a sixth of a checkout (docs/benchmarks.md).
_STAFF_FOR_TOKEN = ("SELECT staff.* FROM api_token JOIN staff ON staff.id = api_token.staff_id "
                    "WHERE api_token.token_hash = ? LIMIT 1")


def staff_for_token(token, now):
    """The active staff member whose API token this is, else None."""
    staff = Staff.one(_STAFF_FOR_TOKEN, _token_hash(token))
    if staff is None or not staff.active:
        return None
    return staff


def check_login(name, password, remote, now):
    """The staff member for NAME/PASSWORD, throttled per name and per address."""
    keys = [f"name:{name.lower()}", f"addr:{remote}"]
    since = now - FAILURE_WINDOW
    for key in keys:
        recent = LoginFailure.select().where((LoginFailure.key == key) & (LoginFailure.at > since)).count()
        if recent >= MAX_FAILURES:
            raise errors.TooManyAttempts("Too many failed sign-ins. Wait 15 minutes and try again.")
    staff = Staff.get_or_none(name=name)
    valid = check_password_hash(staff.password_hash if staff else _dummy_hash(), password or "")
    if staff is None or not valid or not staff.active:
        with database.atomic():
            for key in keys:
                LoginFailure.create(key=key, at=now)
            LoginFailure.delete().where(LoginFailure.at < since).execute()
        raise errors.Unauthorized("Wrong name or password.")
    with database.atomic():
        LoginFailure.delete().where(LoginFailure.key == keys[0]).execute()
    return staff


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
            if row.last_seen_at < now - datetime.timedelta(minutes=5):
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


def desk_role(role="desk"):
    """Require a signed-in staff session of ROLE on a desk page."""
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            staff = current_staff()
            if staff is None:
                return redirect(url_for("desk.login", next=request.full_path))
            if role == "admin" and staff.role != "admin":
                raise errors.Forbidden("Only admins may open this page.")
            return view(*args, **kwargs)
        return wrapped
    return decorator


def start_session(staff, now):
    """A fresh session on login, so a planted session id is worth nothing."""
    session.clear()
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
    session.clear()
