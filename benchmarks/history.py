"""Rows written straight into a node's SQLite file: history, desk stock, queued backlogs.

Growing a database to a million loans through the API would take hours, so
history is written with ``executemany`` in the exact shapes the node writes
(``circulation.loan_event_data``, ``outbox.enqueue``, the inbox's record),
with time-ordered keys as old as the loans they belong to.  The node's own
code then meets this history as if it had made it.
"""
import contextlib
import datetime
import json
import os
import sqlite3
import uuid

from node.store.models import UTCDateTimeField, _uuid7_int

UTC = datetime.timezone.utc
HISTORY_START = datetime.datetime(2020, 1, 6, 8, 0, tzinfo=UTC)
CHUNK = 20_000
# A returned loan as both the lender and the home node store it (same row shape on both sides).
CLOSED_LOAN_INSERT = ("INSERT INTO loan (id, item_id, patron_id, lender, checked_out_at, due_at, renewals, "
                      "status, returned_at, returned_at_institution, provisional, disputed, dispute_reason, "
                      "made_offline, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, 'closed', ?, ?, 0, 0, '', 0, ?)")


def stamp(moment):
    return moment.astimezone(UTC).strftime(UTCDateTimeField.FORMAT)


def uuid7_at(moment):
    """A time-ordered key as ``new_uuid`` would have made it at MOMENT."""
    millis = int(moment.timestamp() * 1000)
    return str(uuid.UUID(int=_uuid7_int(millis, int.from_bytes(os.urandom(10), "big"))))


@contextlib.contextmanager
def connect(path):
    """A plain sqlite3 connection to PATH, closed afterwards."""
    # Writing history is set-up, not measurement: no fsync per chunk.
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA foreign_keys=ON")
        yield db
    finally:
        db.close()


def _insert(db, sql, rows):
    rows = iter(rows)
    while True:
        chunk = [row for _, row in zip(range(CHUNK), rows)]
        if not chunk:
            return
        db.execute("BEGIN IMMEDIATE")
        db.executemany(sql, chunk)
        db.execute("COMMIT")


def add_items(path, owner, barcodes, title="Benchmark copy", status="available"):
    """Items of OWNER (skipping barcodes already there); return {barcode: id}."""
    now = stamp(datetime.datetime.now(UTC))
    with connect(path) as db:
        _insert(db, "INSERT OR IGNORE INTO item (owner, barcode, title, call_number, item_type, "
                    "replacement_cost, status, updated_at) VALUES (?, ?, ?, ?, 'book', '45.00', ?, ?)",
                ((owner, code, f"{title} {code}", f"QA76.{code}", status, now) for code in barcodes))
        return dict(db.execute("SELECT barcode, id FROM item WHERE owner = ?", (owner,)).fetchall())


def add_patrons(path, institution, home_ids):
    """Patron records (own patrons at home, visiting ones at a lender); return {home_id: id}."""
    now = stamp(datetime.datetime.now(UTC))
    with connect(path) as db:
        _insert(db, "INSERT OR IGNORE INTO patron (institution, home_id, name, email, blocked, block_reason, "
                    "updated_at) VALUES (?, ?, ?, ?, 0, '', ?)",
                ((institution, pid, f"Patron {pid}", f"{pid}@example.org", now) for pid in home_ids))
        return dict(db.execute("SELECT home_id, id FROM patron WHERE institution = ?", (institution,)).fetchall())


def loan_event(loan_id, lender, home, patron_id, owner, barcode, out_at, due_at, provisional=False):
    """``loan.created`` data exactly as ``circulation.loan_event_data`` writes it."""
    return {"loan_id": loan_id, "lender": lender, "patron": {"institution": home, "id": patron_id},
            "item": {"institution": owner, "barcode": barcode, "title": f"Benchmark copy {barcode}",
                     "call_number": f"QA76.{barcode}", "item_type": "book"},
            "checked_out_at": out_at.isoformat(), "due_at": due_at.isoformat(), "renewals": 0,
            "provisional": provisional}


def return_event(loan_id, lender, returned_at, where):
    return {"loan_id": loan_id, "lender": lender, "returned_at": returned_at.isoformat(),
            "returned_at_institution": where}


def payload(occurred_at, data):
    """The outbox row's payload column, as ``outbox.enqueue`` writes it."""
    return json.dumps({"occurred_at": occurred_at.isoformat(), "data": data}, sort_keys=True)


class Plan:
    """Loans of a lender's items to a home node's patrons, made up in time order."""

    def __init__(self, lender, home, barcodes, patron_ids, start=HISTORY_START, step_seconds=60):
        self.lender, self.home = lender, home
        self.barcodes, self.patron_ids = list(barcodes), list(patron_ids)
        self.clock, self.step = start, datetime.timedelta(seconds=step_seconds)
        self.count = 0

    def next_loan(self):
        """(loan_id, barcode, patron_id, out_at, due_at, returned_at) of the next made-up loan."""
        out_at = self.clock
        self.clock += self.step
        barcode = self.barcodes[self.count % len(self.barcodes)]
        patron_id = self.patron_ids[(self.count * 7919) % len(self.patron_ids)]
        self.count += 1
        return (uuid7_at(out_at), barcode, patron_id, out_at, out_at + datetime.timedelta(days=21),
                out_at + datetime.timedelta(days=9))


def grow(lender_db, home_db, plan, count, first_sequence, item_ids, lender_patrons, home_item_ids, home_patrons):
    """COUNT delivered loans on both sides: loan rows, audit lines, outbox rows, inbox records.

    Returns the last sequence used; the home node's ``received_through`` is set to it.
    """
    sequence = first_sequence - 1
    for start in range(0, count, 100_000):  # in slices, so a million loans never sit in memory at once
        size = min(100_000, count - start)
        sequence = _grow_slice(lender_db, home_db, plan, size, sequence + 1, item_ids, lender_patrons,
                               home_item_ids, home_patrons)
    return sequence


def _grow_slice(lender_db, home_db, plan, count, first_sequence, item_ids, lender_patrons, home_item_ids,
                home_patrons):
    loans = [plan.next_loan() for _ in range(count)]
    sequences = range(first_sequence, first_sequence + count)
    events = []
    for (loan_id, barcode, pid, out_at, due_at, back_at), sequence in zip(loans, sequences):
        data = loan_event(loan_id, plan.lender, plan.home, pid, plan.lender, barcode, out_at, due_at)
        events.append((sequence, uuid7_at(out_at), out_at, data))
    with connect(lender_db) as db:
        _insert(db, CLOSED_LOAN_INSERT,
                ((lid, item_ids[bc], lender_patrons[pid], plan.lender, stamp(o), stamp(d), stamp(b), plan.lender,
                  stamp(b)) for lid, bc, pid, o, d, b in loans))
        _insert(db, "INSERT INTO audit_log (at, staff, action, target, detail) VALUES (?, 'desk', 'checkout', ?, ?)",
                ((stamp(o), lid, f"item {bc}") for lid, bc, pid, o, d, b in loans))
        _insert(db, "INSERT INTO outbox_event (destination, sequence, event_id, type, payload, created_at, state, "
                    "attempts, last_error, delivered_at) VALUES (?, ?, ?, 'loan.created', ?, ?, 'delivered', 1, '', ?)",
                ((plan.home, seq, eid, payload(at, data), stamp(at), stamp(at)) for seq, eid, at, data in events))
    with connect(home_db) as db:
        _insert(db, CLOSED_LOAN_INSERT,
                ((lid, home_item_ids[bc], home_patrons[pid], plan.lender, stamp(o), stamp(d), stamp(b), plan.lender,
                  stamp(b)) for lid, bc, pid, o, d, b in loans))
        _insert(db, "INSERT INTO inbox_record (origin, sequence, event_id, type, received_at, state, reason, payload) "
                    "VALUES (?, ?, ?, 'loan.created', ?, 'applied', '', ?)",
                ((plan.lender, seq, eid, stamp(at), json.dumps(
                    {"event_id": eid, "type": "loan.created", "version": 1, "origin": plan.lender,
                     "destination": plan.home, "sequence": seq, "occurred_at": at.isoformat(), "data": data},
                    sort_keys=True)) for seq, eid, at, data in events))
        set_received_through(db, plan.lender, first_sequence + count - 1)
    return first_sequence + count - 1


def set_received_through(db, origin, sequence):
    db.execute("INSERT INTO peer_state (peer, received_through, last_error, failures) VALUES (?, ?, '', 0) "
               "ON CONFLICT (peer) DO UPDATE SET received_through = excluded.received_through",
               (origin, sequence))


def queue_backlog(lender_db, plan, loans, first_sequence, item_ids, lender_patrons, at=None):
    """Queue 2 x LOANS pending events (each loan created, then returned) as the desk would have.

    The loans are written closed at the lender, as after a day at the desk;
    returns the event envelopes' (sequence, type, payload) for the bare limit.
    """
    made = [plan.next_loan() for _ in range(loans)]
    rows, sequence = [], first_sequence
    for loan_id, barcode, pid, out_at, due_at, back_at in made:
        if at is not None:  # queued "now": a backlog of today, not of history (due still after checkout)
            out_at, due_at, back_at = at, at + (due_at - out_at), at
        data = loan_event(loan_id, plan.lender, plan.home, pid, plan.lender, barcode, out_at, due_at)
        rows.append((plan.home, sequence, uuid7_at(out_at), "loan.created", payload(out_at, data), stamp(out_at)))
        back = return_event(loan_id, plan.lender, back_at, plan.lender)
        rows.append((plan.home, sequence + 1, uuid7_at(back_at), "loan.returned", payload(back_at, back),
                     stamp(back_at)))
        sequence += 2
    with connect(lender_db) as db:
        _insert(db, CLOSED_LOAN_INSERT,
                ((lid, item_ids[bc], lender_patrons[pid], plan.lender, stamp(at or o), stamp(d if at is None else at + (d - o)),
                  stamp(at or b), plan.lender, stamp(at or b)) for lid, bc, pid, o, d, b in made))
        _insert(db, "INSERT INTO outbox_event (destination, sequence, event_id, type, payload, created_at, state, "
                    "attempts, last_error) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, '')", rows)
    return rows


def requeue(lender_db, destination, first_sequence, last_sequence):
    """Mark delivered events pending again: the resend of a backlog the peer already has."""
    with connect(lender_db) as db:
        db.execute("UPDATE outbox_event SET state = 'pending', delivered_at = NULL "
                   "WHERE destination = ? AND sequence BETWEEN ? AND ?", (destination, first_sequence, last_sequence))


def last_sequence(lender_db, destination):
    with connect(lender_db) as db:
        return db.execute("SELECT COALESCE(MAX(sequence), 0) FROM outbox_event WHERE destination = ?",
                          (destination,)).fetchone()[0]


def count(path, sql, *args):
    with connect(path) as db:
        return db.execute(sql, args).fetchone()[0]
