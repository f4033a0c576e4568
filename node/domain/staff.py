"""Managing staff accounts once made: list them, set a password, disable, enable, tokens, revoke.

No Flask here: ``circnode staff ...`` wraps these functions.  Every change
is one transaction with its audit line (``circulation.audit``), the actor
being who ran the command.  Ending access is immediate: desk sessions are
rows (StaffSession) and API tokens are rows (ApiToken), checked on every
request, so deleting them ends them wherever the cookie or token is.
"""
from dataclasses import dataclass

from peewee import JOIN, fn
from werkzeug.security import generate_password_hash

from node.domain import errors, throttle
from node.domain.accounts import check_password_strength, staff_named
from node.domain.circulation import audit
from node.store.db import database
from node.store.models import ApiToken, Staff, StaffSession


@dataclass(frozen=True)
class StaffSummary:
    """What ``staff list`` shows of one account (never its password hash)."""

    name: str
    role: str
    active: bool
    created_at: object
    last_sign_in_at: object
    tokens: int


def list_staff():
    """Every staff account by name, with its count of API tokens."""
    query = (Staff.select(Staff.name, Staff.role, Staff.active, Staff.created_at, Staff.last_sign_in_at,
                          fn.COUNT(ApiToken.id).alias("tokens"))
             .join(ApiToken, JOIN.LEFT_OUTER).group_by(Staff.id).order_by(Staff.name))
    return [StaffSummary(row.name, row.role, row.active, row.created_at, row.last_sign_in_at, row.tokens)
            for row in query]


def set_password(name, password, now, actor):
    """Give NAME a new password, end its desk sessions and lift its sign-in lock.

    Its API tokens stay (revoke them one by one, or disable the account); the
    sessions end because a reset often follows a password that leaked.
    """
    staff = staff_named(name)
    if not password:
        raise errors.WeakPassword("The new password is empty.")
    check_password_strength(name, password)
    with database.atomic():
        Staff.update(password_hash=generate_password_hash(password)).where(Staff.id == staff.id).execute()
        ended = StaffSession.delete().where(StaffSession.staff == staff).execute()
        throttle.forget_account(name)
        audit(actor, "staff_password_set", name, f"{ended} desk sessions ended", now)
    return ended


def disable_staff(name, now, actor):
    """Disable NAME and end its desk sessions and API tokens at once; (sessions, tokens) ended.

    A disabled account cannot sign in (it is told only "wrong name or
    password"); enabling it again revives none of the old sessions or tokens.
    """
    staff = staff_named(name)
    with database.atomic():
        sessions = StaffSession.delete().where(StaffSession.staff == staff).execute()
        tokens = ApiToken.delete().where(ApiToken.staff == staff).execute()
        if staff.active or sessions or tokens:
            Staff.update(active=False).where(Staff.id == staff.id).execute()
            audit(actor, "staff_disabled", name, f"{sessions} desk sessions and {tokens} API tokens ended", now)
    return sessions, tokens


def enable_staff(name, now, actor):
    """Let NAME sign in again (with its password); True when it was disabled."""
    staff = staff_named(name)
    if staff.active:
        return False
    with database.atomic():
        Staff.update(active=True).where(Staff.id == staff.id).execute()
        audit(actor, "staff_enabled", name, "", now)
    return True


def tokens_of(name):
    """NAME's API tokens, oldest first (ids and times; the secrets were never stored)."""
    staff = staff_named(name)
    return list(ApiToken.select(ApiToken.id, ApiToken.created_at, ApiToken.last_used_at)
                .where(ApiToken.staff == staff).order_by(ApiToken.id))


def revoke_token(token_id, now, actor):
    """End API token TOKEN_ID (an id from ``tokens_of``); the name of its staff member."""
    try:
        number = int(str(token_id).strip())
    except ValueError:
        number = None
    token = ApiToken.get_or_none(ApiToken.id == number) if number is not None and 0 < number < 2 ** 63 else None
    if token is None:
        raise errors.TokenNotFound(f"No API token with id {token_id!r} (circnode staff tokens NAME shows them).")
    name = token.staff.name
    with database.atomic():
        ApiToken.delete().where(ApiToken.id == token.id).execute()
        audit(actor, "token_revoked", name, f"token {token.id}", now)
    return name
