"""Sign-in throttling: wrong passwords are counted per staff name and per client address.

The two counters have separate limits so that one person's typos lock only
their own name, while one address trying many names (password spraying) is
still stopped.  Behind a reverse proxy every desk may share one address
([node] trusted_proxies names the proxies whose X-Forwarded-For is believed),
so the address limit is much higher than the name limit.

A name's lock grows: after ``account_failures`` wrong passwords it is locked
for ``account_lock_minutes``; each wrong password after that lock lifts
doubles it, up to a day.  Failures are forgotten on a successful sign-in,
on a password reset, and after a day.  Names that do not exist are counted
and locked exactly like names that do, so the answers never tell them apart.
"""
import datetime
import math
from dataclasses import dataclass

from node.domain import errors
from node.store.db import database
from node.store.models import LoginFailure

MEMORY = datetime.timedelta(hours=24)  # failures older than this are forgotten; also the longest lock


@dataclass(frozen=True)
class SignInLimits:
    """The throttle's limits ([sign_in] in node.ini; these defaults are the file's)."""

    account_failures: int = 5
    account_lock_minutes: int = 15
    address_failures: int = 50
    address_window_minutes: int = 15

    @classmethod
    def from_config(cls, cfg):
        return cls(**cfg.sections["sign_in"])


def account_key(name):
    return f"name:{(name or '').lower()}"


def address_key(address):
    return f"addr:{address or ''}"


def _failure_times(key, since):
    query = (LoginFailure.select(LoginFailure.at)
             .where((LoginFailure.key == key) & (LoginFailure.at > since)).order_by(LoginFailure.at))
    return [row.at for row in query]


def account_locked_until(name, limits, now):
    """When NAME may try again, or None when it may now."""
    times = _failure_times(account_key(name), now - MEMORY)
    beyond = len(times) - limits.account_failures
    if beyond < 0:
        return None
    # 2 ** beyond grows fast; cap the exponent before it can overflow a timedelta.
    lock = min(datetime.timedelta(minutes=limits.account_lock_minutes) * 2 ** min(beyond, 16), MEMORY)
    until = times[-1] + lock
    return until if until > now else None


def address_blocked_until(address, limits, now):
    """When ADDRESS may try again, or None when it may now."""
    window = datetime.timedelta(minutes=limits.address_window_minutes)
    times = _failure_times(address_key(address), now - window)
    if len(times) < limits.address_failures:
        return None
    # Free again once enough of the failures in the window have aged out of it.
    return times[len(times) - limits.address_failures] + window


def _minutes(until, now):
    return max(1, math.ceil((until - now).total_seconds() / 60))


def refuse_if_throttled(name, address, limits, now):
    """Raise TooManyAttempts when ADDRESS or NAME may not try a password now."""
    until = address_blocked_until(address, limits, now)
    if until:
        raise errors.TooManyAttempts(
            f"Too many failed sign-ins from this address. Try again in {_minutes(until, now)} minutes.",
            retry_after_seconds=math.ceil((until - now).total_seconds()))
    until = account_locked_until(name, limits, now)
    if until:
        raise errors.TooManyAttempts(
            f"Too many failed sign-ins for this name. Try again in {_minutes(until, now)} minutes.",
            retry_after_seconds=math.ceil((until - now).total_seconds()))


def record_failure(name, address, now):
    """Count one wrong password against NAME and ADDRESS; forget failures older than a day."""
    with database.atomic():
        LoginFailure.create(key=account_key(name), at=now)
        LoginFailure.create(key=address_key(address), at=now)
        LoginFailure.delete().where(LoginFailure.at < now - MEMORY).execute()


def forget_account(name):
    """Lift NAME's lock (a sign-in succeeded, or an admin set a new password)."""
    LoginFailure.delete().where(LoginFailure.key == account_key(name)).execute()
