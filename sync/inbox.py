"""The inbox: apply each peer event exactly once in effect, in order.

Each event's effect commits together with its ``inbox_record`` row (origin,
sequence) and the advance of ``peer_state.received_through``, or not at all;
the primary key makes a duplicate, a re-sent batch or a concurrent copy a
no-op.  Events must arrive in sequence order per origin: an event past a gap
is not applied, and the answer tells the sender where to resume (it resends;
nothing is held half-applied).

Consecutive events of a batch share one commit (at most ``CHUNK_SECONDS`` of
work), each inside its own savepoint: a durable commit costs an fsync, which
per event capped a drain at the disk's fsync rate (docs/benchmarks.md).  An
event's effect, record and counter still commit together or not at all.

A drain is mostly ``loan.created`` and ``loan.returned``, so those, the
duplicates and the bookkeeping are plain SQL (peewee building each
statement's text cost more than SQLite running it): one query reads the
records of a chunk's duplicates, one ``executemany`` writes its new records,
and the savepoint is a fixed-name ``SAVEPOINT`` (peewee names each anew, so
SQLite prepares each anew).  The other event types keep their model code.
"""
import collections
import contextlib
import datetime
import functools
import itertools
import json
import logging
import time

from node import billing, circulation
from node.db import database
from node.models import InboxRecord, Item, Loan, Patron

log = logging.getLogger(__name__)


class EventRejected(Exception):
    """The event is well-formed but this node refuses its effect (stable code)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def _time(text):
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("times carry an offset")
    return value.astimezone(datetime.timezone.utc)


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


def receive_batch(cfg, origin, events, now):
    """Apply EVENTS from ORIGIN in sequence order; return the acknowledgement body."""
    results = []
    pending = collections.deque(sorted(events, key=lambda e: e["sequence"]))
    while pending and not (results and results[-1]["status"] == "gap"):
        _receive_chunk(cfg, origin, pending, results, now)
    through = received_through(origin)
    return {"acked_through": through, "expected": through + 1, "results": results}


def _receive_chunk(cfg, origin, pending, results, now):
    """Apply events from the front of PENDING (consumed) in one transaction, for at most CHUNK_SECONDS."""
    failure = None
    deadline = time.monotonic() + CHUNK_SECONDS
    with database.atomic():
        # BEGIN IMMEDIATE serialises concurrent copies of a batch: the later one
        # reads received_through advanced and answers "duplicate".
        row = database.execute_sql(_RECEIVED_THROUGH, (origin,)).fetchone()
        if row is None:
            database.execute_sql(_NEW_PEER_STATE, (origin,))
        first = through = row[0] if row else 0
        # Sorted, so the duplicates are the front; later repeats are of events recorded below.
        recorded = _recorded(origin, [e["sequence"] for e in
                                      itertools.takewhile(lambda e: e["sequence"] <= through, pending)])
        records = []
        while pending:
            event = pending.popleft()
            try:
                result, record = _receive_one(cfg, origin, event, now, through, recorded)
            except Exception as exc:  # commit the events before it, then fail as before
                failure = exc
                break
            results.append(result)
            if record is not None:
                through = event["sequence"]
                recorded[through] = (event["event_id"], result["status"], result["reason"])
                records.append(record)
            if result["status"] == "gap" or time.monotonic() > deadline:
                break
        if records:
            database.cursor().executemany(_RECORD, records)
        if through != first:
            database.execute_sql(_ADVANCE, (through, origin))
    if failure is not None:
        raise failure


def _recorded(origin, sequences):
    """{sequence: (event_id, outcome, reason)} of those of ORIGIN's SEQUENCES already recorded."""
    if not sequences:
        return {}
    return {row[0]: row[1:] for row in database.execute_sql(_RECORDS, (origin, json.dumps(sequences)))}


# Every row a batch writes carries the same ``now``: its text is worked out once.
_stamp = functools.lru_cache(maxsize=8)(InboxRecord.received_at.db_value)


def _record_row(origin, event, result, now):
    """The inbox_record row of an applied or rejected EVENT (its dedup key and first outcome)."""
    return (origin, event["sequence"], InboxRecord.event_id.db_value(event["event_id"]), event["type"],
            _stamp(now), result["status"], result["reason"],
            json.dumps(event, sort_keys=True))


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
        with _savepoint():  # a refused effect leaves no trace but the record; a failure, none at all
            result = dict(base, status="applied", reason="", **(apply_event(cfg, origin, event, now) or {}))
            return result, _record_row(origin, event, result, now)
    except EventRejected as exc:
        result = dict(base, status="rejected", reason=exc.code)
        return result, _record_row(origin, event, result, now)


@contextlib.contextmanager
def _savepoint():
    """Undo what the block wrote if it raises (a SAVEPOINT of one fixed name: prepared once)."""
    database.execute_sql("SAVEPOINT inbox_event")
    try:
        yield
    except BaseException:
        database.execute_sql("ROLLBACK TO inbox_event")
        raise
    finally:
        database.execute_sql("RELEASE inbox_event")


HANDLERS = {}


def handles(event_type):
    def register(function):
        HANDLERS[event_type] = function
        return function
    return register


def apply_event(cfg, origin, event, now):
    """Apply one event's effect; unknown types are recorded and otherwise ignored."""
    handler = HANDLERS.get(event["type"])
    if handler is None:
        log.warning("ignoring event type %r from %s (newer peer?)", event["type"], origin)
        return {"note": "unknown_type"}
    try:
        return handler(cfg, origin, event["data"], now)
    except (KeyError, TypeError, ValueError) as exc:
        raise EventRejected("malformed_event", f"{event['type']}: {exc.__class__.__name__}") from None


_LOAN_EXISTS = "SELECT 1 FROM loan WHERE id = ?"
_ITEM_AND_OPEN_LOAN = ("SELECT item.id, item.title, loan.id FROM item "
                       "LEFT JOIN loan ON loan.item_id = item.id AND loan.status = 'open' "
                       "WHERE item.owner = ? AND item.barcode = ?")
_LEND_ITEM = "UPDATE item SET status = 'on_loan', title = ?, updated_at = ? WHERE id = ?"
# The columns not named take the schema's defaults, which are the model's.
_NETWORK_LOAN = ("INSERT INTO loan (id, item_id, patron_id, lender, checked_out_at, due_at, renewals, updated_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


@handles("loan.created")
def _loan_created(cfg, origin, data, now):
    """At the home node: put a loan made at ORIGIN on our patron's record."""
    patron_ref = data["patron"]
    if patron_ref["institution"] != cfg.institution:
        raise EventRejected("wrong_home", "The patron is not one of ours.")
    if data["lender"] != origin:
        raise EventRejected("wrong_lender", "Only the lender reports its loans.")
    # db_value: the same text peewee would compare (an id sent as a number included).
    patron = Patron.of(cfg.institution, Patron.home_id.db_value(patron_ref["id"]))
    if patron is None:
        raise EventRejected("patron_unknown", "No such patron here.")
    loan_id = Loan.id.db_value(data["loan_id"])
    if loan_id is None:  # "id = NULL" finds no loan: a null id would be a new loan every time
        raise ValueError("loan_id")
    if database.execute_sql(_LOAN_EXISTS, (loan_id,)).fetchone():
        return {}
    item_ref = data["item"]
    checked_out_at = _time(data["checked_out_at"])
    found = database.execute_sql(_ITEM_AND_OPEN_LOAN, (Item.owner.db_value(item_ref["institution"]),
                                                       Item.barcode.db_value(item_ref["barcode"]))).fetchone()
    if found is None:
        item_id = Item.add(owner=item_ref["institution"], barcode=item_ref["barcode"],
                           title=item_ref.get("title", ""), call_number=item_ref.get("call_number", ""),
                           item_type=item_ref.get("item_type", ""), status="on_loan", updated_at=now).id
    else:
        item_id, title, previous = found
        if previous is not None:  # the lender lent it again: its return event must have been lost in our past
            circulation.close_loan_row(previous, checked_out_at, origin)
        database.execute_sql(_LEND_ITEM, (Item.title.db_value(item_ref.get("title", title)),
                                          _stamp(now), item_id))
    database.execute_sql(_NETWORK_LOAN, (loan_id, item_id, patron.id, origin,
                                         Loan.checked_out_at.db_value(checked_out_at),
                                         Loan.due_at.db_value(_time(data["due_at"])),
                                         int(data.get("renewals", 0)), _stamp(now)))
    standing = circulation.own_patron_standing(cfg, patron.home_id, now, patron=patron)
    if not standing.ok:
        # Recorded all the same (the item is out), but the lender is told we object.
        return {"dispute": standing.code}
    return {}


def lender_loan(data, origin):
    """The loan named by DATA, which ORIGIN must have lent; else the event is rejected."""
    loan = Loan.get_or_none(id=data["loan_id"])
    if loan is None or loan.lender != origin:
        raise EventRejected("loan_unknown", "No such loan from this lender.")
    return loan


@handles("loan.renewed")
def _loan_renewed(cfg, origin, data, now):
    loan = lender_loan(data, origin)
    if loan.status != "open":
        return {"note": "loan_closed"}  # a return crossed the renewal: closed wins
    loan.due_at = _time(data["due_at"])
    loan.renewals = max(loan.renewals, int(data["renewals"]))
    loan.updated_at = now
    loan.save()
    return {}


_RETURNED_LOAN = ("SELECT loan.lender, loan.status, loan.returned_at, item.id, item.owner "
                  "FROM loan JOIN item ON item.id = loan.item_id WHERE loan.id = ?")


@handles("loan.returned")
def _loan_returned(cfg, origin, data, now):
    """Either side: the other library checked the item in; close our copy of the loan."""
    loan_id = Loan.id.db_value(data["loan_id"])
    row = database.execute_sql(_RETURNED_LOAN, (loan_id,)).fetchone()
    if row is None:
        raise EventRejected("loan_unknown", "No such loan.")
    lender, status, returned_before, item_id, owner = row
    returned_at = _time(data["returned_at"])
    where = data["returned_at_institution"]
    if status == "closed":
        # A double return: both sides keep the earliest, whatever the arrival order.
        if returned_before is None or returned_at < Loan.returned_at.python_value(returned_before):
            circulation.close_loan_row(loan_id, returned_at, where)
        return {"note": "already_closed"}
    if lender == cfg.institution:
        # Our terms and our calendar bill the return, wherever it happened (same transaction).
        loan = Loan.get_by_id(loan_id)
        circulation.close_loan(loan, returned_at, where)
        billing.assess_at_return(cfg, loan, now)
    else:
        circulation.close_loan_row(loan_id, returned_at, where)
    if owner == cfg.institution:
        status = "in_transit"  # it is on its way back from the returning library
    else:
        status = "available" if where == owner else "in_transit"
    circulation.set_item_status_row(item_id, status, now)
    return {}


@handles("item.received")
def _item_received(cfg, origin, data, now):
    """At the returning library: the owner has the item back; transit is over."""
    item = Item.get_or_none(owner=data["owner"], barcode=data["barcode"])
    if item is None or item.owner != origin:
        raise EventRejected("item_unknown", "No such item of that owner here.")
    if item.status == "in_transit":
        item.status, item.updated_at = "available", now
        item.save()
    return {}


from sync import billing_events  # noqa: E402,F401  (registers the fee and lost-loan handlers)
