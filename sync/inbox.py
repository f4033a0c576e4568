"""The inbox: apply each peer event exactly once in effect, in order.

Each event is applied atomically (its own savepoint) together with its
``inbox_record`` row (origin, sequence) and the advance of
``peer_state.received_through``; the primary key makes a duplicate, a
re-sent batch or a concurrent copy a no-op.  Events must arrive in sequence
order per origin: an event past a gap is not applied, and the answer tells the
sender where to resume (it resends; nothing is held half-applied).

Consecutive events of a batch share one commit (at most ``CHUNK_SECONDS`` of
work), each inside its own savepoint: a durable commit costs an fsync, which
per event capped a drain at the disk's fsync rate (docs/benchmarks.md).  An
event's effect, record and counter still commit together or not at all.
"""
import datetime
import json
import logging
import time

from node import billing, circulation
from node.db import database
from node.models import InboxRecord, Item, Loan, Patron, PeerState

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


def received_through(origin):
    state = PeerState.get_or_none(peer=origin)
    return state.received_through if state else 0


CHUNK_SECONDS = 0.05  # longest a chunk holds the write lock (a desk at this node waits at most this)


def receive_batch(cfg, origin, events, now):
    """Apply EVENTS from ORIGIN in sequence order; return the acknowledgement body."""
    results = []
    pending = sorted(events, key=lambda e: e["sequence"])
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
        state, _ = PeerState.get_or_create(peer=origin)
        through = state.received_through
        while pending:
            event = pending.pop(0)
            try:
                with database.atomic():  # a savepoint: this event alone, if it fails
                    result = _receive_one(cfg, origin, event, now, through)
            except Exception as exc:  # commit the events before it, then fail as before
                failure = exc
                break
            results.append(result)
            if result["status"] in ("applied", "rejected"):
                through = event["sequence"]
            if result["status"] == "gap" or time.monotonic() > deadline:
                break
        if through != state.received_through:
            PeerState.update(received_through=through).where(PeerState.peer == origin).execute()
    if failure is not None:
        raise failure


def _receive_one(cfg, origin, event, now, through):
    """One event inside the caller's transaction, given the origin's RECEIVED_THROUGH so far."""
    sequence = event["sequence"]
    base = {"sequence": sequence, "event_id": event["event_id"]}
    if sequence <= through:
        record = InboxRecord.get_or_none(origin=origin, sequence=sequence)
        if record and record.event_id != event["event_id"]:
            log.error("peer %s reused sequence %s for another event", origin, sequence)
            return dict(base, status="conflict", reason="sequence_reused")
        return dict(base, status="duplicate",
                    outcome=record.state if record else "applied",
                    reason=record.reason if record else "")
    if sequence != through + 1:
        return dict(base, status="gap", reason=f"expected sequence {through + 1}")
    outcome, reason, extra = "applied", "", {}
    try:
        with database.atomic():  # a savepoint: a refused effect leaves no trace but the record
            extra = apply_event(cfg, origin, event, now) or {}
    except EventRejected as exc:
        outcome, reason = "rejected", exc.code
    InboxRecord.create(origin=origin, sequence=sequence, event_id=event["event_id"],
                       type=event["type"], received_at=now, state=outcome, reason=reason,
                       payload=json.dumps(event, sort_keys=True))
    return dict(base, status=outcome, reason=reason, **extra)


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


@handles("loan.created")
def _loan_created(cfg, origin, data, now):
    """At the home node: put a loan made at ORIGIN on our patron's record."""
    patron_ref = data["patron"]
    if patron_ref["institution"] != cfg.institution:
        raise EventRejected("wrong_home", "The patron is not one of ours.")
    if data["lender"] != origin:
        raise EventRejected("wrong_lender", "Only the lender reports its loans.")
    patron = Patron.get_or_none(institution=cfg.institution, home_id=patron_ref["id"])
    if patron is None:
        raise EventRejected("patron_unknown", "No such patron here.")
    if Loan.get_or_none(id=data["loan_id"]):
        return {}
    item_ref = data["item"]
    item, _ = Item.get_or_create(owner=item_ref["institution"], barcode=item_ref["barcode"],
                                 defaults={"title": item_ref.get("title", ""), "updated_at": now,
                                           "call_number": item_ref.get("call_number", ""),
                                           "item_type": item_ref.get("item_type", "")})
    previous = circulation.open_loan_of(item)
    if previous is not None:  # the lender lent it again: its return event must have been lost in our past
        circulation.close_loan(previous, _time(data["checked_out_at"]), origin)
    item.status, item.title, item.updated_at = "on_loan", item_ref.get("title", item.title), now
    item.save()
    Loan.create(id=data["loan_id"], item=item, patron=patron, lender=origin,
                checked_out_at=_time(data["checked_out_at"]), due_at=_time(data["due_at"]),
                renewals=int(data.get("renewals", 0)), updated_at=now)
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


@handles("loan.returned")
def _loan_returned(cfg, origin, data, now):
    """Either side: the other library checked the item in; close our copy of the loan."""
    loan = Loan.get_or_none(id=data["loan_id"])
    if loan is None:
        raise EventRejected("loan_unknown", "No such loan.")
    returned_at = _time(data["returned_at"])
    where = data["returned_at_institution"]
    if loan.status == "closed":
        # A double return: both sides keep the earliest, whatever the arrival order.
        if loan.returned_at is None or returned_at < loan.returned_at:
            circulation.close_loan(loan, returned_at, where)
        return {"note": "already_closed"}
    circulation.close_loan(loan, returned_at, where)
    if loan.lender == cfg.institution:
        # Our terms and our calendar bill the return, wherever it happened (same transaction).
        billing.assess_at_return(cfg, loan, now)
    item = loan.item
    if item.owner == cfg.institution:
        item.status = "in_transit"  # it is on its way back from the returning library
    else:
        item.status = "available" if where == item.owner else "in_transit"
    item.updated_at = now
    item.save()
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
