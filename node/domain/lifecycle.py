"""The lifecycle of items and loans: every state, every move, and who may make it.

One declarative table, as invenio-circulation's ``transitions``: a move names
the states it may start from, the state it leads to, and the actors allowed
to make it (the desk, a peer's event, a scheduled job, an admin, a patron on
their account page).  Nothing writes an item's ``status`` or a loan's
``status`` and flags except through the moves here (``tests/domain/test_lifecycle.py``
walks the table and scans the code for writes outside it).

Writers either move one row through ``move_item``/``close_loan`` (the model
and its row, checked), or, for the inbox's run-based bulk writes, take the
target of a move from ``target``/``move`` and hand it to the fast statements
kept here (``SET_ITEM_STATUS``, ``SET_ITEM_STATUS_AND_TITLE``, ``CLOSE_LOAN``).
A loan's flags (provisional, disputed, lost) are moves too: they leave the
loan in its state, and the table says who may set or clear them.
"""
import json
from dataclasses import dataclass

from node.domain import errors
from node.store.db import database
from node.store.models import Item, Loan

# Actors
DESK = "desk"  # staff at the desk, the JSON API, any front-end (SIP2 kiosk) calling node.domain.lending
PEER = "peer event"  # an event of another node, applied by the inbox (or its acknowledgement, by push)
JOB = "job"  # the scheduler: the daily lost step, the push of the outbox
ADMIN = "admin"  # an admin action (item status, dispute resolution)
PATRON = "patron"  # a patron on their account page (renewal)
ACTORS = (DESK, PEER, JOB, ADMIN, PATRON)

NEW = None  # the "state" of a row not yet written: a move from NEW creates it

ITEM_STATES = ("available", "on_loan", "in_transit", "lost", "missing")
ITEM_INITIAL = "available"  # a catalogued item (imports, the model's default)
LOAN_STATES = ("open", "closed")


@dataclass(frozen=True)
class Move:
    """One move: from each listed state to its target, made by one of ACTORS."""

    name: str
    of: str  # "item" or "loan"
    transitions: dict  # state (or NEW) -> state
    actors: frozenset
    doc: str


def _moves(of, *rows):
    return {name: Move(name, of, transitions, frozenset(actors), doc) for name, transitions, actors, doc in rows}


_ANY_ITEM = ITEM_STATES

ITEM_MOVES = _moves(
    "item",
    ("checkout", {"available": "on_loan"}, {DESK}, "lent at this library"),
    ("return_own", {"on_loan": "available", "lost": "available"}, {DESK},
     "our item checked in here (a lost one too: its refund follows)"),
    ("return_network", {"on_loan": "in_transit", "lost": "in_transit"}, {DESK},
     "a peer's item returned here, at the patron's home library: it travels to its owner"),
    ("receive", {"in_transit": "available"}, {DESK}, "our item back from transit, scanned at our desk"),
    ("declare_missing", {"available": "missing"}, {ADMIN}, "not on the shelf"),
    ("found", {"missing": "available"}, {ADMIN}, "back on the shelf"),
    ("declare_lost", {"on_loan": "lost"}, {JOB, ADMIN}, "overdue past lost_after_days: billed as lost"),
    # At a home node, our copy of a lender's item follows the lender's events.
    ("peer_lent", {state: "on_loan" for state in (NEW, *_ANY_ITEM)}, {PEER},
     "loan.created: the lender lent its item to our patron (first heard of: our copy is made)"),
    ("peer_lost", {"on_loan": "lost"}, {PEER}, "loan.lost: the lender declared its item lost"),
    ("peer_return_at_owner", {state: "available" for state in _ANY_ITEM}, {PEER},
     "loan.returned at the lender: its item is home"),
    ("peer_return_elsewhere", {state: "in_transit" for state in _ANY_ITEM}, {PEER},
     "loan.returned at a third library: the item travels to its owner"),
    # At a lender or a returning library.
    ("owner_sees_return_elsewhere", {"on_loan": "in_transit", "lost": "in_transit"}, {PEER},
     "loan.returned: our item was checked in at the patron's home library and travels to us"),
    ("peer_received", {"in_transit": "available"}, {PEER},
     "item.received: the owner has its item back; transit is over"),
)

LOAN_MOVES = _moves(
    "loan",
    ("lend", {NEW: "open"}, {DESK}, "the loan a checkout makes"),
    ("peer_record", {NEW: "open"}, {PEER}, "loan.created: a lender's loan of our patron on our record"),
    ("give_back", {"open": "closed"}, {DESK, PEER}, "returned, here or (by loan.returned) elsewhere"),
    ("correct_return", {"closed": "closed"}, {PEER},
     "a double return: both sides keep the earliest return, whatever the arrival order"),
    ("renew", {"open": "open"}, {DESK, PEER, PATRON}, "a new due date (loan.renewed at the home node)"),
    ("mark_lost", {"open": "open", "closed": "closed"}, {JOB, ADMIN, PEER},
     "lost_at set: declared lost by the lender (a loan.lost that crossed the return is recorded too)"),
    ("settle", {"open": "open", "closed": "closed"}, {JOB},
     "the home node applied a provisional loan without objection: no longer provisional"),
    ("dispute", {"open": "open", "closed": "closed"}, {JOB},
     "the home node objected to a provisional loan: disputed, with its reason"),
    ("resolve_dispute", {"open": "open", "closed": "closed"}, {ADMIN}, "staff cleared the dispute, with a note"),
)

MOVES = {**ITEM_MOVES, **LOAN_MOVES}


def move(name, current, actor):
    """The state move NAME leads to from CURRENT, made by ACTOR; ItemNotAvailable/LoanClosed when not allowed.

    An actor the table does not allow is a bug in the caller, not a refusal: ValueError.
    """
    found = MOVES[name]
    if actor not in found.actors:
        raise ValueError(f"{actor!r} may not make the move {name!r} (only {sorted(found.actors)})")
    target = found.transitions.get(current, NEW)
    if target is NEW:
        if found.of == "loan":
            raise errors.LoanClosed(f"The loan is {current}.")
        raise errors.ItemNotAvailable(f"The item is {str(current).replace('_', ' ')}.", status=current)
    return target


def target(name):
    """The one state move NAME leads to, whatever it starts from (for bulk writers that do not read it)."""
    targets = set(MOVES[name].transitions.values())
    if len(targets) != 1:
        raise ValueError(f"the move {name!r} leads to several states: {sorted(targets)}")
    return targets.pop()


# --- the writers: the only statements that set an item's or a loan's status -----------------

SET_ITEM_STATUS = "UPDATE item SET status = ?, updated_at = ? WHERE id = ?"
SET_ITEM_STATUS_AND_TITLE = "UPDATE item SET status = ?, title = ?, updated_at = ? WHERE id = ?"
LOAN_CLOSED = target("give_back")
CLOSE_LOAN = (f"UPDATE loan SET status = '{LOAN_CLOSED}', returned_at = ?, returned_at_institution = ?, "
              "updated_at = ? WHERE id = ?")


def move_item(item, name, now, actor):
    """Make move NAME of ITEM (model and row) as of NOW; refuse when its status does not allow it."""
    try:
        status = move(name, item.status, actor)
    except errors.ItemNotAvailable:
        raise errors.ItemNotAvailable(
            f"Item {item.barcode} is {item.status.replace('_', ' ')}.", status=item.status) from None
    # The row is written by the fast statement; the model is set to match.  (Our models save
    # every field, so the model's "changed" mark left by the assignment is harmless.)
    item.status, item.updated_at = status, now
    write_item_status(item.id, status, now)
    return item


def move_item_row(item_id, current, name, now, actor):
    """Make move NAME of the item row ITEM_ID, whose status is CURRENT (no model at hand)."""
    status = move(name, current, actor)
    write_item_status(item_id, status, now)
    return status


def write_item_status(item_id, status, now):
    """Write STATUS (a state a move led to) on the item row ITEM_ID as of NOW."""
    database.execute_sql(SET_ITEM_STATUS, (status, Item.updated_at.db_value(now), item_id))


def close_loan(loan, returned_at, where, actor):
    """Close LOAN, the row and the model, as returned at RETURNED_AT at library WHERE."""
    loan.status = move("give_back", loan.status, actor)
    loan.returned_at, loan.returned_at_institution, loan.updated_at = returned_at, where, returned_at
    close_loan_row(loan.id, returned_at, where)
    return loan


def close_loan_row(loan_id, returned_at, where):
    """Close the loan row LOAN_ID as returned at RETURNED_AT at library WHERE (no model at hand)."""
    stamp = Loan.returned_at.db_value(returned_at)
    database.execute_sql(CLOSE_LOAN, (stamp, Loan.returned_at_institution.db_value(where), stamp, loan_id))


def mark_lost(loan, lost_at, now, actor):
    """Flag LOAN lost as of LOST_AT (the lender's declaration), once; the loan stays open."""
    move("mark_lost", loan.status, actor)
    if loan.lost_at is None:
        loan.lost_at, loan.updated_at = lost_at, now
        loan.save()
    return loan


def resolve_dispute(loan, now, actor=ADMIN):
    """Clear LOAN's disputed flag and reason as of NOW."""
    move("resolve_dispute", loan.status, actor)
    loan.disputed, loan.dispute_reason, loan.updated_at = False, "", now
    loan.save()
    return loan


_DISPUTED = "UPDATE loan SET disputed = 1, dispute_reason = ?, provisional = 0 WHERE id = ?"
# Only loans still provisional: none at all are written for loans that never were.
_SETTLED = "UPDATE loan SET provisional = 0 WHERE provisional = 1 AND id IN (SELECT value FROM json_each(?))"


def settle_rows(quiet, disputed):
    """Settle the loans QUIET (ids); dispute the loans DISPUTED ((reason, id) pairs): the moves settle, dispute."""
    if disputed:
        database.cursor().executemany(_DISPUTED, [(Loan.dispute_reason.db_value(reason), loan_id)
                                                  for reason, loan_id in disputed])
    if quiet:
        database.execute_sql(_SETTLED, (json.dumps(quiet),))


def markdown_table():
    """The table as docs/architecture.md shows it (tests/domain/test_lifecycle.py checks the document holds it)."""
    lines = ["| of | move | from → to | who | what |", "| --- | --- | --- | --- | --- |"]
    for found in MOVES.values():
        moves = ", ".join(f"{'(new)' if start is NEW else start}→{end}" for start, end in found.transitions.items())
        lines.append(f"| {found.of} | `{found.name}` | {moves} | {', '.join(sorted(found.actors))} | {found.doc} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m node.domain.lifecycle: the table docs/architecture.md holds
    print(markdown_table())
