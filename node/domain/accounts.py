"""Staff accounts: passwords, API tokens and sign-in (the session and role checks: node/web/auth.py).

Passwords are hashed with werkzeug's scrypt (already a Flask dependency);
API tokens are random and only their SHA-256 is stored, so a copied database
does not hand out working tokens.  Wrong passwords are throttled per name
and per client address (node/domain/throttle.py); managing accounts after they are
made (list, password, disable, tokens) is node/domain/staff.py.
"""
import datetime
import functools
import hashlib
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from node.domain import errors, throttle
from node.store.db import database
from node.store.models import ROLES, ApiToken, Staff

SESSION_IDLE = datetime.timedelta(hours=12)
TOUCH_EVERY = datetime.timedelta(minutes=5)  # how stale a session's or token's "last seen" may get


@functools.lru_cache(maxsize=1)
def _dummy_hash():
    """A hash compared against when the name is unknown, so timing does not reveal names.

    Made on first use: scrypt costs ~0.3 s, which every CLI command paid at import.
    """
    return generate_password_hash("circnode-no-such-user")


def add_staff(name, role, password, now, actor="system"):
    """Create a staff account; refuse a taken name, unknown role or weak password."""
    from node.domain.circulation import audit
    name = (name or "").strip()
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise errors.InvalidField("Staff names use letters, digits, '.', '-' and '_' (at most 64).")
    if role not in ROLES:
        raise errors.InvalidField(f"Role must be one of {', '.join(ROLES)}.")
    check_password_strength(name, password)
    with database.atomic():
        if Staff.get_or_none(name=name):
            raise errors.StaffExists(f"Staff member {name!r} exists already; pick another name.")
        staff = Staff.create(name=name, role=role, password_hash=generate_password_hash(password),
                             created_at=now)
        audit(actor, "staff_added", name, role, now)
    return staff


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


def staff_named(name):
    """The staff account called NAME; StaffNotFound when there is none."""
    staff = Staff.get_or_none(name=name)
    if staff is None:
        raise errors.StaffNotFound(f"No staff member {name!r} (circnode staff list shows them).")
    return staff


def new_token(name, now, actor="system"):
    """Issue a new API token for staff NAME; only its hash is stored."""
    from node.domain.circulation import audit
    staff = staff_named(name)
    token = "cn_" + secrets.token_urlsafe(32)
    with database.atomic():
        row = ApiToken.create(staff=staff, token_hash=_token_hash(token), created_at=now)
        audit(actor, "token_issued", name, f"token {row.id}", now)
    return token


def _token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


# Every API request runs these: as plain SQL they cost a fraction of a joined
# peewee query, whose SQL building was a sixth of a checkout (docs/benchmarks.md).
_TOKEN_OF_HASH = "SELECT * FROM api_token WHERE token_hash = ? LIMIT 1"
_STAFF_OF_ID = "SELECT * FROM staff WHERE id = ?"


def staff_for_token(token, now):
    """The active staff member whose API token this is, else None; notes when the token was used."""
    row = ApiToken.one(_TOKEN_OF_HASH, _token_hash(token))
    if row is None:
        return None
    staff = Staff.one(_STAFF_OF_ID, row.staff_id)
    if staff is None or not staff.active:
        return None
    # "Last used" to the nearest few minutes: a write on every request would queue readers behind writers.
    if row.last_used_at is None or row.last_used_at < now - TOUCH_EVERY:
        ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    return staff


def check_login(name, password, remote, now, limits=None):
    """The staff member for NAME/PASSWORD, throttled per name and per client address REMOTE.

    LIMITS (a throttle.SignInLimits, default the [sign_in] defaults) say how
    many wrong passwords each may have.  A throttled name or address is refused
    before its password is looked at; an unknown or disabled name is a wrong
    password, counted the same, so no answer tells whether an account exists.
    """
    return verify_sign_in(Staff, name, name, password, remote, now, limits, Staff.last_sign_in_at,
                          "Wrong name or password.")


def verify_sign_in(model, name, counted, password, remote, now, limits, last_field, wrong):
    """The active MODEL row (staff, kiosk) called NAME whose password is PASSWORD, else Unauthorized(WRONG).

    Failures count under COUNTED and the client address REMOTE (node/domain/throttle.py): a throttled
    one is refused before the password is looked at, and an unknown or disabled name costs the same
    hash check as a wrong password.  A success forgets COUNTED's failures and stamps LAST_FIELD.
    """
    limits = limits or throttle.SignInLimits()
    throttle.refuse_if_throttled(counted, remote, limits, now)
    row = model.get_or_none(name=name) if name else None
    valid = check_password_hash(row.password_hash if row else _dummy_hash(), password or "")
    if row is None or not valid or not row.active:
        throttle.record_failure(counted, remote, now)
        raise errors.Unauthorized(wrong)
    with database.atomic():
        throttle.forget_account(counted)
        model.update({last_field: now}).where(model.id == row.id).execute()
    return row
