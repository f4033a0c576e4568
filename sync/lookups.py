"""Standing lookups: which peer asked about which of our patrons, when, and what it was told.

Every standing question a peer asks (``GET /api/v1/patrons/<id>/standing``)
is one row of ``standing_lookup``, written in the transaction that records
the request's nonce: no commit more than the endpoint made before.  The
home node's admins list them (``/admin/standing-lookups``, its JSON twin and
``circnode standing lookups``); the daily purge deletes them after
``[privacy] standing_lookup_days``.

The same rows are the rate limit (``[sync] standing_per_minute``).  The count
is read inside the write transaction that would add the row, and this
process's writers take turns on one connection (node/store/db.py) while other
processes queue on ``BEGIN IMMEDIATE``: two threads cannot both take the last
place of a minute, and the limit holds across restarts and processes.  An
in-memory window would need its own lock and forget everything on restart
for no gain: the row is written anyway.  Only answered questions count; a
refused one changes nothing here.

The patron's id is stored (it is our own patron, in our own database) and
shown to our admins; it is never written to a log line.
"""
import datetime
import logging
import math

from node.domain import errors
from node.store.db import database
from node.store.models import StandingLookup, UTCDateTimeField

log = logging.getLogger(__name__)
WINDOW = datetime.timedelta(minutes=1)
MAX_LIMIT = 500
_stamp = UTCDateTimeField().db_value

# The standing_per_minute-th newest lookup of the peer in the last minute: while
# it exists the peer has used its minute, until it leaves the window.
_NTH_NEWEST = ("SELECT asked_at FROM standing_lookup WHERE peer = ? AND asked_at > ?"
               " ORDER BY asked_at DESC LIMIT 1 OFFSET ?")
_RECORD = "INSERT INTO standing_lookup (peer, home_id, asked_at, code) VALUES (?, ?, ?, ?)"


def seconds_to_wait(cfg, peer, now):
    """Whole seconds until PEER may ask again (0: now); exact only inside a write transaction."""
    row = database.execute_sql(_NTH_NEWEST, (peer, _stamp(now - WINDOW),
                                             cfg.sync["standing_per_minute"] - 1)).fetchone()
    if row is None:
        return 0
    frees_at = StandingLookup.asked_at.python_value(row[0]) + WINDOW
    return max(1, min(math.ceil((frees_at - now).total_seconds()), int(WINDOW.total_seconds())))


def admit(cfg, peer, home_id, code, now):
    """Record PEER's question about HOME_ID answered CODE at NOW, unless over its limit.

    Returns 0 when recorded, else the seconds to wait (nothing recorded).
    Call inside the write transaction of the request (``database.atomic()``).
    """
    wait = seconds_to_wait(cfg, peer, now)
    if not wait:
        database.execute_sql(_RECORD, (peer, home_id, _stamp(now), code))
    return wait


def recent(peer=None, home_id=None, limit=50):
    """The newest LIMIT lookups, of one PEER and/or about one patron (HOME_ID) when given."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidField(f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    query = StandingLookup.select()
    if peer:
        query = query.where(StandingLookup.peer == peer.strip().upper())
    if home_id:
        query = query.where(StandingLookup.home_id == home_id)
    return list(query.order_by(StandingLookup.asked_at.desc(), StandingLookup.id.desc()).limit(limit))


def to_dict(lookup, tz):
    """One lookup for JSON: times in the library's zone."""
    return {"peer": lookup.peer, "patron_id": lookup.home_id, "asked_at": lookup.asked_at.astimezone(tz).isoformat(),
            "code": lookup.code}


def render_text(lookups, tz):
    """Lookups as the plain-text table ``circnode standing lookups`` prints."""
    lines = [f"{'asked at':19}  {'peer':8} {'answer':22} patron"]
    lines += [f"{lookup.asked_at.astimezone(tz):%Y-%m-%d %H:%M:%S}  {lookup.peer:8} {lookup.code:22} "
              f"{lookup.home_id}" for lookup in lookups]
    lines.append(f"{len(lookups)} lookup{'s' if len(lookups) != 1 else ''}")
    return lines


def purge(cfg, now):
    """Delete lookups older than ``[privacy] standing_lookup_days``; return how many went."""
    horizon = now - datetime.timedelta(days=cfg.sections["privacy"]["standing_lookup_days"])
    with database.atomic():
        return StandingLookup.delete().where(StandingLookup.asked_at < horizon).execute()
