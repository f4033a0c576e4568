"""``loan.created`` and ``loan.returned``, applied a run of consecutive events at a time.

A drain is mostly these two events, and applied one by one each cost about
eight statements (docs/benchmarks.md).  Here a run of them reads what it
needs in three queries (its patrons, its loans, its items with their open
loans), applies each event in order against those rows kept in memory, and
writes the outcome with one ``executemany`` per statement: a loan made and
returned within the run is inserted closed, an item moved several times is
written once, as it ends.  The effect is that of applying the events one
after the other, which ``tests/test_loan_runs.py`` checks run against runs of one.

Every check of an event comes before anything of it is written, so a
refused event leaves no trace without a savepoint of its own.  The inbox
holds the whole run in one savepoint and, if anything unexpected is raised,
replays it an event at a time (sync/inbox.py).
"""
from collections import defaultdict

from node import billing, circulation
from node.db import database
from node.models import Item, Loan, Patron
from sync.inbox import EventRejected, applied, event_time, refused, savepoint, stamp

TYPES = ("loan.created", "loan.returned")
MAX_RUN = 500  # events a run holds in memory (a run commits within the inbox's chunk time)

# Keys go in as parameters, never through SQLite's JSON functions, which cut a
# string at a NUL character; {keys} is a list of ?s padded to a few lengths, so
# SQLite prepares each statement a few times, not once per run.
_PATRONS = "SELECT * FROM patron WHERE institution = ? AND home_id IN ({keys})"
_LOANS = ("SELECT loan.id, loan.lender, loan.status, loan.returned_at, item.id, item.owner "
          "FROM loan JOIN item ON item.id = loan.item_id WHERE loan.id IN ({keys})")
_ITEMS = ("SELECT item.owner, item.barcode, item.id, item.title, loan.id FROM item "
          "LEFT JOIN loan ON loan.item_id = item.id AND loan.status = 'open' "
          "WHERE item.owner = ? AND item.barcode IN ({keys})")
_KEY_LISTS = (8, 32, 128, 512)
# The columns not named take the schema's defaults, which are the model's.
_INSERT = ("INSERT INTO loan (id, item_id, patron_id, lender, checked_out_at, due_at, renewals, updated_at, "
           "status, returned_at, returned_at_institution) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_MOVE_TITLED = "UPDATE item SET status = ?, title = ?, updated_at = ? WHERE id = ?"


def apply_run(cfg, origin, events, now):
    """Apply EVENTS (consecutive, all new, of TYPES) from ORIGIN; [(result, inbox_record row)] in order."""
    run = _Run(cfg, origin, events, now)
    outcomes = []
    for event in events:
        try:
            if event["type"] == "loan.created":
                extras = run.created(event["data"])
            else:
                extras = run.returned(event["data"])
        except EventRejected as exc:
            outcomes.append(refused(origin, event, now, exc.code))
        except (KeyError, TypeError, ValueError):
            outcomes.append(refused(origin, event, now, "malformed_event"))
        else:
            outcomes.append(applied(origin, event, now, extras))
    run.flush()
    return outcomes


class _Loan:
    __slots__ = ("lender", "status", "returned_at", "item_id", "owner")

    def __init__(self, lender, status, returned_at, item_id, owner):
        self.lender, self.status, self.returned_at, self.item_id, self.owner = (
            lender, status, returned_at, item_id, owner)


class _Item:
    __slots__ = ("id", "title", "open_loan")

    def __init__(self, item_id, title, open_loan):
        self.id, self.title, self.open_loan = item_id, title, open_loan


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


class _Run:
    """The rows a run reads, as its events leave them, and the writes still to make."""

    def __init__(self, cfg, origin, events, now):
        self.cfg, self.origin, self.now, self.stamp = cfg, origin, now, stamp(now)
        self.patrons = {patron.home_id: patron
                        for text, params in _statements(_PATRONS, (cfg.institution,), _keys(events, _patron_key))
                        for patron in Patron.all(text, *params)}
        self.standings = {}  # patron id: Standing (nothing in a run changes a patron or their fees)
        self.loans = {row[0]: _Loan(row[1], row[2], Loan.returned_at.python_value(row[3]), row[4], row[5])
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
        self.closes = {}  # loan id already in the table: its CLOSE_LOAN row
        self.moves, self.titles = {}, {}  # item id: its new status; its new title

    def _know_item(self, owner, barcode, item_id, title, open_loan):
        item = self.items[owner, barcode] = self.items_by_id[item_id] = _Item(item_id, title, open_loan)
        return item

    def created(self, data):
        """At the home node: put a loan made at the origin on our patron's record."""
        patron_ref = data["patron"]
        if patron_ref["institution"] != self.cfg.institution:
            raise EventRejected("wrong_home", "The patron is not one of ours.")
        if data["lender"] != self.origin:
            raise EventRejected("wrong_lender", "Only the lender reports its loans.")
        # db_value: the same text peewee would compare (an id sent as a number included).
        patron = self.patrons.get(Patron.home_id.db_value(patron_ref["id"]))
        if patron is None:
            raise EventRejected("patron_unknown", "No such patron here.")
        loan_id = Loan.id.db_value(data["loan_id"])
        if loan_id is None:  # "id = NULL" finds no loan: a null id would be a new loan every time
            raise ValueError("loan_id")
        if loan_id in self.loans:
            return {}
        item_ref = data["item"]
        checked_out_at = event_time(data["checked_out_at"])
        due_at = event_time(data["due_at"])
        renewals = int(data.get("renewals", 0))
        if not -2 ** 63 <= renewals < 2 ** 63:  # what SQLite can store
            raise ValueError("renewals")
        owner, barcode = Item.owner.db_value(item_ref["institution"]), Item.barcode.db_value(item_ref["barcode"])
        item = self.items.get((owner, barcode))
        described = {name: item_ref.get(name, "") for name in ("title", "call_number", "item_type")}
        if None in (owner, barcode, described["title"]) or (item is None and None in described.values()):
            raise ValueError("item")  # null where the item's columns take text
        if item is None:  # the first loan of this item we hear of: our record of the lender's item
            row = Item.add(owner=owner, barcode=barcode, status="on_loan", updated_at=self.now, **described)
            item = self._know_item(owner, barcode, row.id, row.title, None)
        else:
            if item.open_loan is not None:  # lent again: its return event must have been lost in our past
                self._close(item.open_loan, checked_out_at, self.origin)
            item.title = Item.title.db_value(item_ref.get("title", item.title))
            self.moves[item.id], self.titles[item.id] = "on_loan", item.title
        self.new_loans[loan_id] = [loan_id, item.id, patron.id, self.origin,
                                   Loan.checked_out_at.db_value(checked_out_at), Loan.due_at.db_value(due_at),
                                   renewals, self.stamp, "open", None, None]
        self.loans[loan_id] = _Loan(self.origin, "open", None, item.id, owner)
        item.open_loan = loan_id
        standing = self.standings.get(patron.id)
        if standing is None:
            standing = self.standings[patron.id] = circulation.own_patron_standing(
                self.cfg, patron.home_id, self.now, patron=patron)
        # Recorded all the same (the item is out), but the lender is told we object.
        return {} if standing.ok else {"dispute": standing.code}

    def returned(self, data):
        """Either side: the other library checked the item in; close our copy of the loan."""
        loan_id = Loan.id.db_value(data["loan_id"])
        loan = self.loans.get(loan_id)
        if loan is None:
            raise EventRejected("loan_unknown", "No such loan.")
        returned_at = event_time(data["returned_at"])
        where = data["returned_at_institution"]
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
            self.moves[loan.item_id] = "in_transit"  # it is on its way back from the returning library
        else:
            self.moves[loan.item_id] = "available" if where == loan.owner else "in_transit"
        return {}

    def _billed_return(self, loan_id, returned_at, where):
        """Our own loan, returned elsewhere: our terms and calendar bill it, in this transaction."""
        self.flush()  # billing reads the loan and its item from the table
        with savepoint("inbox_billed_return"):  # billing writes before it could fail
            loan = Loan.get_by_id(loan_id)
            circulation.close_loan(loan, returned_at, where)
            billing.assess_at_return(self.cfg, loan, self.now)
        self.standings.clear()  # fees were written
        self._closed(loan_id, returned_at)

    def _close(self, loan_id, returned_at, where):
        """Close LOAN_ID as returned at RETURNED_AT at WHERE (written at the flush)."""
        returned, place = Loan.returned_at.db_value(returned_at), Loan.returned_at_institution.db_value(where)
        row = self.new_loans.get(loan_id)
        if row is not None:  # made in this run: inserted closed
            row[7:] = [returned, "closed", returned, place]
        else:
            self.closes[loan_id] = (returned, place, returned, loan_id)
        self._closed(loan_id, returned_at)

    def _closed(self, loan_id, returned_at):
        loan = self.loans.get(loan_id)
        if loan is None:  # an item's open loan no event of the run names
            return
        loan.status, loan.returned_at = "closed", returned_at
        item = self.items_by_id.get(loan.item_id)
        if item is not None and item.open_loan == loan_id:
            item.open_loan = None

    def flush(self):
        """Write what the events so far did: closes first, so an item's next loan may be open."""
        cursor = database.cursor()
        if self.closes:
            cursor.executemany(circulation.CLOSE_LOAN, list(self.closes.values()))
        if self.new_loans:
            cursor.executemany(_INSERT, list(self.new_loans.values()))
        if self.moves:
            cursor.executemany(_MOVE_TITLED, [(status, self.titles[item_id], self.stamp, item_id)
                                              for item_id, status in self.moves.items() if item_id in self.titles])
            cursor.executemany(circulation.SET_ITEM_STATUS, [(status, self.stamp, item_id)
                                       for item_id, status in self.moves.items() if item_id not in self.titles])
        self.closes, self.new_loans, self.moves, self.titles = {}, {}, {}, {}
