"""The inbox: apply each peer event exactly once in effect, in order.

Each event's effect commits together with its ``inbox_record`` row (origin,
sequence) and the advance of ``peer_state.received_through``, or not at all;
the primary key makes a duplicate, a re-sent batch or a concurrent copy a
no-op.  Events must arrive in sequence order per origin: an event past a gap
is not applied, and the answer tells the sender where to resume (it resends;
nothing is held half-applied).

Consecutive events of a batch share one commit (at most ``CHUNK_SECONDS`` of
work), each event (or run, below) inside its own savepoint: a durable commit costs an fsync, which
per event capped a drain at the disk's fsync rate (docs/benchmarks.md).  An
event's effect, record and counter still commit together or not at all.

A drain is mostly ``loan.created`` and ``loan.returned``: consecutive new
events of those types are applied together, a run at a time, by
sync/loan_events.py (a few statements per run instead of about eight per
event).  The duplicates and the bookkeeping are plain SQL too: one query
reads the records of a chunk's duplicates, one ``executemany`` writes its new
records, and each savepoint has a fixed name (peewee names each anew, so
SQLite prepares each anew).  The other event types keep their model code,
one event at a time.
"""
import collections
import itertools
import json
import logging
import re
import time

from node.store.db import database, savepoint
from node.store.models import InboxRecord, received_at_text
from sync import billing_events, catalogue, loan_events, wire  # noqa: F401  (billing_events binds the catalogue's handlers)
from sync.catalogue import EventRejected
from sync.facts import EventContext

log = logging.getLogger(__name__)


def event_time(text):
    """An event's time (ISO 8601 with an offset) as an aware UTC datetime; ValueError otherwise."""
    return catalogue.TIME.check(text)


_RECEIVED_THROUGH = "SELECT received_through FROM peer_state WHERE peer = ?"


def received_through(origin):
    row = database.execute_sql(_RECEIVED_THROUGH, (origin,)).fetchone()
    return row[0] if row else 0


CHUNK_SECONDS = 0.05  # longest a chunk holds the write lock (a desk at this node waits at most this)

_NEW_PEER_STATE = "INSERT INTO peer_state (peer, received_through, last_error, failures) VALUES (?, 0, '', 0)"
_ADVANCE = "UPDATE peer_state SET received_through = ? WHERE peer = ?"
# json_each: one statement text for any number of sequences (SQLite prepares it once).
_RECORDS = ("SELECT sequence, event_id, state, reason FROM inbox_record "
            "WHERE origin = ? AND sequence IN (SELECT value FROM json_each(?))")
_RECORD = ("INSERT INTO inbox_record (origin, sequence, event_id, type, received_at, state, reason, payload) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def receive_batch(cfg, origin, events, now, first=None):
    """Apply EVENTS from ORIGIN in sequence order; return the acknowledgement body.

    FIRST, if given, is called first thing in the first chunk's transaction
    (the peer API records the request's nonce there: one commit, not two).
    """
    results = []
    pending = collections.deque(sorted(events, key=lambda e: e["sequence"]))
    while pending and not (results and results[-1]["status"] == "gap"):
        _receive_chunk(cfg, origin, pending, results, now, first)
        first = None
    through = received_through(origin)
    return {"acked_through": through, "expected": through + 1, "results": results}


def _receive_chunk(cfg, origin, pending, results, now, first=None):
    """Apply events from the front of PENDING (consumed) in one transaction, for at most CHUNK_SECONDS."""
    failure = None
    deadline = time.monotonic() + CHUNK_SECONDS
    with database.atomic():
        if first is not None:
            first()
        # BEGIN IMMEDIATE serialises concurrent copies of a batch: the later one
        # reads received_through advanced and answers "duplicate".
        row = database.execute_sql(_RECEIVED_THROUGH, (origin,)).fetchone()
        if row is None:
            database.execute_sql(_NEW_PEER_STATE, (origin,))
        start = through = row[0] if row else 0
        # Sorted, so the duplicates are the front; later repeats are of events recorded below.
        recorded = _recorded(origin, [e["sequence"] for e in
                                      itertools.takewhile(lambda e: e["sequence"] <= through, pending)])
        records, run_size = [], loan_events.MAX_RUN
        while pending:
            run = _take_run(pending, through, run_size)
            try:
                if run:
                    with savepoint("inbox_run"):
                        outcomes = _apply_run(cfg, origin, run, now)
                else:
                    run = [pending.popleft()]
                    outcomes = [_receive_one(cfg, origin, run[0], now, through, recorded)]
            except Exception as exc:
                if len(run) > 1:  # undone: replay it an event at a time, to commit the events before the culprit
                    pending.extendleft(reversed(run))
                    run_size = 1
                    continue
                failure = exc  # commit the events before it, then fail as before
                break
            for event, (result, record) in zip(run, outcomes):
                results.append(result)
                if record is not None:
                    through = event["sequence"]
                    recorded[through] = (event["event_id"], result["status"], result["reason"])
                    records.append(record)
            if results[-1]["status"] == "gap" or time.monotonic() > deadline:
                break
        if records:
            database.cursor().executemany(_RECORD, records)
        if through != start:
            database.execute_sql(_ADVANCE, (through, origin))
    if failure is not None:
        raise failure


def _take_run(pending, through, size):
    """Up to SIZE events from the front of PENDING that loan_events applies together: new, consecutive."""
    run = []
    while (pending and len(run) < size and pending[0]["type"] in loan_events.TYPES
           and pending[0]["sequence"] == through + 1 + len(run)):
        run.append(pending.popleft())
    return run


def _recorded(origin, sequences):
    """{sequence: (event_id, outcome, reason)} of those of ORIGIN's SEQUENCES already recorded."""
    if not sequences:
        return {}
    return {row[0]: row[1:] for row in database.execute_sql(_RECORDS, (origin, json.dumps(sequences)))}


def _record_row(origin, event, result, now):
    """The inbox_record row of an applied or rejected EVENT (its dedup key and first outcome)."""
    return (origin, event["sequence"], InboxRecord.event_id.db_value(event["event_id"]), event["type"],
            received_at_text(now), result["status"], result["reason"],
            wire.text(event))


def applied(origin, event, now, extras):
    """(result, inbox_record row) of EVENT applied; EXTRAS (dispute, note) go into the result."""
    result = {"sequence": event["sequence"], "event_id": event["event_id"], "status": "applied", "reason": "",
              **(extras or {})}
    return result, _record_row(origin, event, result, now)


def refused(origin, event, now, code):
    """(result, inbox_record row) of EVENT rejected with CODE: recorded, without effect."""
    result = {"sequence": event["sequence"], "event_id": event["event_id"], "status": "rejected", "reason": code}
    return result, _record_row(origin, event, result, now)


def _receive_one(cfg, origin, event, now, through, recorded):
    """One event inside the caller's transaction: (its result, its inbox_record row or None).

    THROUGH is the origin's received_through so far; RECORDED maps the
    sequences recorded before to their (event_id, outcome, reason).
    """
    sequence = event["sequence"]
    base = {"sequence": sequence, "event_id": event["event_id"]}
    if sequence <= through:
        event_id, outcome, reason = recorded.get(sequence, (None, "applied", ""))
        if event_id is not None and event_id != event["event_id"]:
            log.error("peer %s reused sequence %s for another event", origin, sequence)
            return dict(base, status="conflict", reason="sequence_reused"), None
        return dict(base, status="duplicate", outcome=outcome, reason=reason), None
    if sequence != through + 1:
        return dict(base, status="gap", reason=f"expected sequence {through + 1}"), None
    try:
        with savepoint("inbox_event"):  # a refused effect leaves no trace but the record; a failure, none at all
            extras = apply_event(cfg, origin, event, now)
    except EventRejected as exc:
        return refused(origin, event, now, exc.code)
    return applied(origin, event, now, extras)


def _apply_run(cfg, origin, events, now):
    """Apply EVENTS (consecutive, all new, of loan_events.TYPES); [(result, inbox_record row)] in order.

    The run answers the authority rules from the rows it holds, as its
    earlier events left them (sync/loan_events.py).
    """
    run = loan_events.Run(cfg, origin, events, now)
    outcomes = []
    for event in events:
        try:
            spec, data = catalogue.admit(run, origin, event)
            extras = spec.apply(run, data)
        except EventRejected as exc:
            outcomes.append(refused(origin, event, now, exc.code))
        except (KeyError, TypeError, ValueError):  # a value the tables cannot hold
            outcomes.append(refused(origin, event, now, "malformed_event"))
        else:
            outcomes.append(applied(origin, event, now, extras))
    run.flush()
    return outcomes


_TYPE_NAME = re.compile(r"[a-z][a-z_]{0,30}\.[a-z][a-z_]{0,30}")


def event_types():
    """Every event type this node applies (the rest are recorded and ignored)."""
    return sorted(catalogue.EVENTS)


def apply_event(cfg, origin, event, now):
    """Admit one event (sync/catalogue.py), then apply it; unknown types are recorded and otherwise ignored."""
    context = EventContext(cfg, origin, now)
    spec, data = catalogue.admit(context, origin, event)
    if spec is None:
        # The type is the peer's text: logged only when it looks like one (a rogue could send anything).
        kind = event["type"] if _TYPE_NAME.fullmatch(event["type"]) else "(not a type name)"
        log.warning("ignoring event type %s from %s (newer peer?)", kind, origin)
        return {"note": "unknown_type"}
    try:
        return spec.apply(context, data)
    except (KeyError, TypeError, ValueError) as exc:  # a value the tables cannot hold
        raise EventRejected("malformed_event", f"{event['type']}: {exc.__class__.__name__}") from None

