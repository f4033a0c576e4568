"""``loan.created`` and ``loan.returned``, applied a run of consecutive events at a time.

A drain is mostly these two events, and applied one by one each cost about
eight statements (docs/benchmarks.md).  Here a run of them reads what it
needs in three queries (its patrons, its loans, its items with their open
loans), applies each event in order against those rows kept in memory, and
writes the outcome with one ``executemany`` per statement: a loan made and
returned within the run is inserted closed, an item moved several times is
written once, as it ends.  The effect is that of applying the events one
after the other, which ``tests/sync/test_loan_runs.py`` checks run against runs of one.

The inbox admits each event (sync/catalogue.py: its payload and its
sender's authority) before its handler here runs, the run answering the
authority rules from the rows it holds (``loan``, ``patron``,
``item_loan``), so a refused event leaves no trace without a savepoint of
its own.  The inbox holds the whole run in one savepoint and, if anything
unexpected is raised, replays it an event at a time (sync/inbox.py).

The other loan events (``loan.renewed``, ``item.received``,
``loan.dispute_resolved``) are rare and applied one at a time, through the
models, by the handlers at the end.
"""
from collections import defaultdict

from node.domain import billing, circulation, lifecycle
from node.domain.lifecycle import NEW, PEER
from node.store.db import database, savepoint
from node.store.models import AuditLog, Item, Loan, Patron, received_at_text
from sync.catalogue import handles
from sync.facts import LOAN_FACTS, LoanFacts

TYPES = ("loan.created", "loan.returned")
MAX_RUN = 500  # events a run holds in memory (a run commits within the inbox's chunk time)

# Keys go in as parameters, never through SQLite's JSON functions, which cut a
# string at a NUL character; {keys} is a list of ?s padded to a few lengths, so
# SQLite prepares each statement a few times, not once per run.
_PATRONS = "SELECT * FROM patron WHERE institution = ? AND home_id IN ({keys})"
_LOANS = LOAN_FACTS.format(match="IN ({keys})")
_ITEMS = ("SELECT item.owner, item.barcode, item.id, item.title, loan.id, loan.lender FROM item "
          "LEFT JOIN loan ON loan.item_id = item.id AND loan.status = 'open' "
          "WHERE item.owner = ? AND item.barcode IN ({keys})")
_KEY_LISTS = (8, 32, 128, 512)
# The columns not named take the schema's defaults, which are the model's.
_INSERT = ("INSERT INTO loan (id, item_id, patron_id, lender, checked_out_at, due_at, renewals, updated_at, "
           "status, returned_at, returned_at_institution) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_RECORDED = lifecycle.move("peer_record", NEW, PEER)  # the state of a loan a lender tells us of
_CLOSED = lifecycle.LOAN_CLOSED
# Where each loan event leaves an item (the run does not read its status: these moves start anywhere).
_LENT, _AT_OWNER, _ELSEWHERE, _TO_US = (lifecycle.target(name) for name in (
    "peer_lent", "peer_return_at_owner", "peer_return_elsewhere", "owner_sees_return_elsewhere"))


class _Item:
    __slots__ = ("id", "title", "open_loan", "lender")

    def __init__(self, item_id, title, open_loan, lender):
        self.id, self.title, self.open_loan, self.lender = item_id, title, open_loan, lender


def _keys(events, key):
    """KEY(data) of each event for which it can be worked out (the others fail in order, later)."""
    found = {}
    for event in events:
        try:
            found[key(event["type"], event["data"])] = True
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    found.pop(None, None)
    return list(found)


def _statements(sql, fixed, keys):
    """(text, parameters) of SQL for KEYS after the FIXED parameters, at most 512 keys a statement."""
    most = _KEY_LISTS[-1]
    for start in range(0, len(keys), most):
        chunk = keys[start:start + most]
        size = next(size for size in _KEY_LISTS if size >= len(chunk))  # padded with NULLs: they match nothing
        yield sql.format(keys=", ".join("?" * size)), (*fixed, *chunk, *[None] * (size - len(chunk)))


def _patron_key(kind, data):
    return Patron.home_id.db_value(data["patron"]["id"]) if kind == "loan.created" else None


def _loan_key(kind, data):
    return Loan.id.db_value(data["loan_id"])


def _item_key(kind, data):
    if kind != "loan.created":
        return None
    owner, barcode = Item.owner.db_value(data["item"]["institution"]), Item.barcode.db_value(data["item"]["barcode"])
    return None if owner is None or barcode is None else (owner, barcode)


class Run:
    """The rows a run reads, as its events leave them, and the writes still to make.

    It is also the run's facts for the catalogue's authority rules.
    """

    def __init__(self, cfg, origin, events, now):
        self.cfg, self.origin, self.now, self.stamp = cfg, origin, now, received_at_text(now)
        self.institution = cfg.institution
        self.patrons = {patron.home_id: patron
                        for text, params in _statements(_PATRONS, (cfg.institution,), _keys(events, _patron_key))
                        for patron in Patron.all(text, *params)}
        self.standings = {}  # patron id: Standing (nothing in a run changes a patron or their fees)
        self.loans = {row[0]: LoanFacts.from_row(row)
                      for text, params in _statements(_LOANS, (), _keys(events, _loan_key))
                      for row in database.execute_sql(text, params)}
        barcodes = defaultdict(list)  # by owner: a run's items are nearly always its origin's
        for owner, barcode in _keys(events, _item_key):
            barcodes[owner].append(barcode)
        self.items, self.items_by_id = {}, {}
        for owner, owned in barcodes.items():
            for text, params in _statements(_ITEMS, (owner,), owned):
                for row in database.execute_sql(text, params).fetchall():
                    self._know_item(*row)
        self.new_loans = {}  # loan id: its INSERT row
        self.closes = {}  # loan id already in the table: its lifecycle.CLOSE_LOAN row
        self.moves, self.titles = {}, {}  # item id: its new status; its new title

    def _know_item(self, owner, barcode, item_id, title, open_loan, lender):
        item = self.items[owner, barcode] = self.items_by_id[item_id] = _Item(item_id, title, open_loan, lender)
        return item

    # --- the facts the catalogue's authority rules read (sync/facts.py) ---

    def loan(self, loan_id):
        return self.loans.get(loan_id)

    def patron(self, home_id):
        return self.patrons.get(home_id)

    def item_loan(self, owner, barcode):
        item = self.items.get((owner, barcode))
        return item if item is not None and item.open_loan is not None else None

    # --- the handlers -----------------------------------------------------

    @handles("loan.created")
    def created(self, data):
        """At the home node: put a loan made at the origin (admitted: ours to record) on our patron's record."""
        patron = self.patrons[data["patron"]["id"]]
        loan_id = data["loan_id"]
        if loan_id in self.loans:
            return {}
        item_ref = data["item"]
        checked_out_at, due_at, renewals = data["checked_out_at"], data["due_at"], data["renewals"]
        owner, barcode = item_ref["institution"], item_ref["barcode"]
        item = self.items.get((owner, barcode))
        if item is None:  # the first loan of this item we hear of: our record of the lender's item
            described = {name: item_ref[name] for name in ("title", "call_number", "item_type")}
            row = Item.add(owner=owner, barcode=barcode, status=lifecycle.move("peer_lent", NEW, PEER), updated_at=self.now, **described)
            item = self._know_item(owner, barcode, row.id, row.title, None, None)
        else:
            if item.open_loan is not None:  # lent again: its return event must have been lost in our past
                self._close(item.open_loan, checked_out_at, self.origin)
            item.title = item_ref["title"] or item.title
            self.moves[item.id], self.titles[item.id] = _LENT, item.title
        self.new_loans[loan_id] = [loan_id, item.id, patron.id, self.origin,
                                   Loan.checked_out_at.db_value(checked_out_at), Loan.due_at.db_value(due_at),
                                   renewals, self.stamp, _RECORDED, None, None]
        self.loans[loan_id] = LoanFacts(loan_id, self.origin, _RECORDED, None, None, item.id, owner, barcode,
                                        self.institution, patron.home_id, checked_out_at)
        item.open_loan, item.lender = loan_id, self.origin
        standing = self.standings.get(patron.id)
        if standing is None:
            standing = self.standings[patron.id] = circulation.own_patron_standing(
                self.cfg, patron.home_id, self.now, patron=patron)
        # Recorded all the same (the item is out), but the lender is told we object.
        return {} if standing.ok else {"dispute": standing.code}

    @handles("loan.returned")
    def returned(self, data):
        """Either side: the other library (admitted: a party of the loan) checked the item in; close our copy."""
        loan_id = data["loan_id"]
        loan = self.loans[loan_id]
        returned_at, where = data["returned_at"], data["returned_at_institution"]
        if loan.status == "closed":
            # A double return: both sides keep the earliest, whatever the arrival order.
            if loan.returned_at is None or returned_at < loan.returned_at:
                self._close(loan_id, returned_at, where)
            return {"note": "already_closed"}
        if loan.lender == self.cfg.institution:
            self._billed_return(loan_id, returned_at, where)
        else:
            self._close(loan_id, returned_at, where)
        if loan.owner == self.cfg.institution:
            self.moves[loan.item_id] = _TO_US  # it is on its way back from the returning library
        else:
            self.moves[loan.item_id] = _AT_OWNER if where == loan.owner else _ELSEWHERE
        return {}

    def _billed_return(self, loan_id, returned_at, where):
        """Our own loan, returned elsewhere: our terms and calendar bill it, in this transaction."""
        self.flush()  # billing reads the loan and its item from the table
        with savepoint("inbox_billed_return"):  # billing writes before it could fail
            loan = Loan.get_by_id(loan_id)
            lifecycle.close_loan(loan, returned_at, where, PEER)
            billing.assess_at_return(self.cfg, loan, self.now)
        self.standings.clear()  # fees were written
        self._closed(loan_id, returned_at, where)

    def _close(self, loan_id, returned_at, where):
        """Close LOAN_ID as returned at RETURNED_AT at WHERE (written at the flush)."""
        returned, place = Loan.returned_at.db_value(returned_at), Loan.returned_at_institution.db_value(where)
        row = self.new_loans.get(loan_id)
        if row is not None:  # made in this run: inserted closed
            row[7:] = [returned, _CLOSED, returned, place]
        else:
            self.closes[loan_id] = (returned, place, returned, loan_id)
        self._closed(loan_id, returned_at, where)

    def _closed(self, loan_id, returned_at, where):
        loan = self.loans.get(loan_id)
        if loan is None:  # an item's open loan no event of the run names
            return
        loan.status, loan.returned_at, loan.returned_at_institution = _CLOSED, returned_at, where
        item = self.items_by_id.get(loan.item_id)
        if item is not None and item.open_loan == loan_id:
            item.open_loan = None

    def flush(self):
        """Write what the events so far did: closes first, so an item's next loan may be open."""
        cursor = database.cursor()
        if self.closes:
            cursor.executemany(lifecycle.CLOSE_LOAN, list(self.closes.values()))
        if self.new_loans:
            cursor.executemany(_INSERT, list(self.new_loans.values()))
        if self.moves:
            cursor.executemany(lifecycle.SET_ITEM_STATUS_AND_TITLE, [(status, self.titles[item_id], self.stamp, item_id)
                                              for item_id, status in self.moves.items() if item_id in self.titles])
            cursor.executemany(lifecycle.SET_ITEM_STATUS, [(status, self.stamp, item_id)
                                       for item_id, status in self.moves.items() if item_id not in self.titles])
        self.closes, self.new_loans, self.moves, self.titles = {}, {}, {}, {}


# --- the rarer loan events, one at a time (the inbox's EventContext: cfg, origin, now) ---

@handles("loan.renewed")
def renewed(context, data):
    """At the home node: the lender renewed our patron's loan."""
    loan = Loan.get_by_id(data["loan_id"])
    if loan.status != "open":
        # A return crossed the renewal: closed wins, but the due date and the count are the lender's facts
        # (its fines ran from them), so both records end alike.
        Loan.update(due_at=data["due_at"], renewals=max(loan.renewals, data["renewals"])).where(
            Loan.id == loan.id).execute()
        return {"note": "loan_closed"}
    lifecycle.move("renew", loan.status, PEER)
    loan.due_at = data["due_at"]
    loan.renewals = max(loan.renewals, data["renewals"])
    loan.updated_at = context.now
    loan.save()
    return {}


@handles("item.received")
def item_received(context, data):
    """At the returning library: the owner has the item back; transit is over."""
    item = Loan.get_by_id(data["loan_id"]).item
    if item.status == "in_transit":
        lifecycle.move_item_row(item.id, item.status, "peer_received", context.now, PEER)
    return {}


@handles("loan.dispute_resolved")
def dispute_resolved(context, data):
    """At the home node: the lender's staff resolved a loan we had disputed; our audit log keeps it."""
    AuditLog.add(at=context.now, staff=f"lender:{context.origin}", action="dispute_resolved_by_lender",
                 target=data["loan_id"], detail=f"reason: {data['reason'] or '-'}; note: {data['note']}")
    return {}
