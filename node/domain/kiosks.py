"""Self-check kiosk accounts: what a SIP2 kiosk logs in with (93), and the login check.

Passwords are hashed as staff passwords are (werkzeug's scrypt,
node/domain/accounts.py) and wrong ones are throttled by the same counters
(node/domain/throttle.py), per kiosk name and per client address.  A kiosk's
name is counted as ``sip2:NAME``: staff names cannot hold a colon, so a
kiosk's failures never lock a staff member of the same name.
"""
from werkzeug.security import generate_password_hash

from node.domain import errors
from node.domain.accounts import check_password_strength, verify_sign_in
from node.domain.circulation import audit
from node.store.db import database
from node.store.models import Sip2Account

AUDIT_PREFIX = "sip2:"  # a kiosk's loans are audited as staff "sip2:NAME"


def _valid_name(name):
    name = (name or "").strip()
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise errors.InvalidField("Kiosk names use letters, digits, '.', '-' and '_' (at most 64).", field="name")
    return name


def add_account(name, password, now, location="", actor="system"):
    """Create a kiosk account; refuse a taken name or a weak password."""
    name = _valid_name(name)
    location = (location or "").strip()
    if len(location) > 64 or "|" in location:
        raise errors.InvalidField("A location code has at most 64 characters and no '|'.", field="location")
    check_password_strength(name, password)
    with database.atomic():
        if Sip2Account.get_or_none(name=name):
            raise errors.Sip2AccountExists(f"Kiosk account {name!r} exists already; pick another name.")
        account = Sip2Account.create(name=name, password_hash=generate_password_hash(password),
                                     location=location, created_at=now)
        audit(actor, "sip2_account_added", name, location, now)
    return account


def list_accounts():
    """Every kiosk account, by name."""
    return list(Sip2Account.select().order_by(Sip2Account.name))


def disable_account(name, now, actor="system"):
    """Disable kiosk NAME: it cannot log in again (its open connections end at their next message)."""
    with database.atomic():
        account = Sip2Account.get_or_none(name=name)
        if account is None:
            raise errors.Sip2AccountNotFound(f"No kiosk account {name!r} (circnode sip2 account list shows them).")
        if account.active:
            Sip2Account.update(active=False).where(Sip2Account.id == account.id).execute()
            audit(actor, "sip2_account_disabled", name, "", now)
    return account


def is_active(name):
    """True while kiosk NAME exists and is enabled (checked on each message of a logged-in kiosk)."""
    return Sip2Account.select().where((Sip2Account.name == name) & (Sip2Account.active == True)).exists()  # noqa: E712


def check_login(name, password, remote, now, limits=None):
    """The kiosk account for NAME/PASSWORD, throttled per name and per client address REMOTE.

    As for staff: a throttled name or address is refused (TooManyAttempts)
    before the password is looked at, and an unknown or disabled name is a
    wrong password, counted the same (Unauthorized).
    """
    return verify_sign_in(Sip2Account, name, AUDIT_PREFIX + (name or ""), password, remote, now, limits,
                          Sip2Account.last_login_at, "Wrong kiosk name or password.")
