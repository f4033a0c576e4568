"""The hot paths' statements search an index: none walks the history of loans, events or records.

A desk checkout, a standing answer and both ends of a sync drain run these
on every request or event; a SCAN of a growing table here would make a node
slower with every loan it ever made (docs/benchmarks.md, "Growth").
"""
import pytest

from node.domain import billing, circulation, lifecycle

from node.store import models
from node.store.db import database, open_database
from sync import inbox, loan_events, lookups, outbox, push, receive

GROWING = ("loan", "outbox_event", "inbox_record", "audit_log", "fee", "item", "patron", "peer_nonce",
           "standing_lookup")

# statement: (SQL, parameters, the index search each growing table must be answered with)
HOT = {
    "checkout: open loans of the patron here": (circulation._OPEN_HERE, (1, "NORTH"),
                                                ["loan USING INDEX loan_patron_status (patron_id=? AND status=?)"]),
    "checkout: last outbox sequence": (outbox._LAST_SEQUENCE, ("SOUTH",),
                                       ["outbox_event USING COVERING INDEX outbox_destination_sequence"]),
    "standing: open loans anywhere": (circulation._OPEN_LOANS, (1,),
                                      ["loan USING COVERING INDEX loan_patron_status (patron_id=? AND status=?)"]),
    "standing: fee balance": (billing._BALANCES, (1,), ["fee USING INDEX fee_patron_status (patron_id=? AND status=?)"]),
    "item by owner and barcode": (models.ITEM_OF, ("NORTH", "B1"),
                                  ["item USING INDEX item_owner_barcode (owner=? AND barcode=?)"]),
    "item by owner and barcode, any case ([desk] barcode_case)": (
        models.ITEM_OF_ANY_CASE, ("NORTH", "b1"),
        ["item USING INDEX item_owner_barcode_nocase (owner=? AND barcode=?)"]),
    "item by barcode, any owner, any case (returns, item lookup)": (
        'SELECT * FROM item WHERE barcode = ? COLLATE NOCASE', ("b1",),
        ["item USING INDEX item_barcode_nocase (barcode=?)"]),
    "patron by institution and id": (models.PATRON_OF, ("SOUTH", "s"),
                                     ["patron USING INDEX patron_institution_home_id (institution=? AND home_id=?)"]),
    "inbox run: its patrons": (loan_events._PATRONS.format(keys="?, ?"), ("NORTH", "s-1", "s-2"),
                               ["patron USING INDEX patron_institution_home_id (institution=? AND home_id=?)"]),
    "inbox run: its items and their open loans": (loan_events._ITEMS.format(keys="?, ?"), ("SOUTH", "S1", "S2"),
                                                  ["item USING INDEX item_owner_barcode (owner=? AND barcode=?)",
                                                   "loan USING INDEX loan_one_open_per_item (item_id=?)"]),
    "inbox run: its loans": (loan_events._LOANS.format(keys="?, ?"), ("L1", "L2"),
                             ["loan USING INDEX sqlite_autoindex_loan_1 (id=?)",
                              "item USING INTEGER PRIMARY KEY (rowid=?)"]),
    "closing a loan": (lifecycle.CLOSE_LOAN, ("t", "SOUTH", "t", "L1"),
                                  ["loan USING INDEX sqlite_autoindex_loan_1 (id=?)"]),
    "inbox: records of duplicates": (inbox._RECORDS, ("NORTH", "[1, 2]"),
                                     ["inbox_record USING INDEX sqlite_autoindex_inbox_record_1 "
                                      "(origin=? AND sequence=?)"]),
    "peer API: nonce seen before": (receive._NONCE_SEEN, ("SOUTH", "n"),
                                    ["peer_nonce USING COVERING INDEX sqlite_autoindex_peer_nonce_1 "
                                     "(key_id=? AND nonce=?)"]),
    "standing: the peer's lookups of the last minute (rate limit)": (
        lookups._NTH_NEWEST, ("SOUTH", "2026-01-01T00:00:00.000000Z", 119),
        ["standing_lookup USING COVERING INDEX standing_lookup_peer_asked_at (peer=? AND asked_at>?)"]),
    "push: next queued rows": (push._QUEUED_ROWS, ("SOUTH", "pending", 0, 200),
                               ["outbox_event USING INDEX outbox_destination_state (destination=? AND state=? AND sequence>?)"]),
    "push: mark delivered": (push._DELIVERED, ("2026-01-01T00:00:00.000000Z", "[1, 2]"),
                             ["outbox_event USING INTEGER PRIMARY KEY (rowid=?)"]),
}


@pytest.fixture
def db(tmp_path):
    open_database(str(tmp_path / "node.sqlite3"))
    yield database
    database.close()


@pytest.mark.parametrize("name", sorted(HOT))
def test_hot_statement_searches_an_index(db, name):
    sql, params, searches = HOT[name]
    plan = [row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
    assert not [step for step in plan if step.startswith("SCAN") and step.split()[1] in GROWING], (name, plan)
    for search in searches:  # the exact seek: an index walked on a looser key would grow with history too
        assert any(step.startswith("SEARCH " + search) for step in plan), (name, search, plan)


# The desk's lookups by an exact key (issue 14): a patron id in any institution and case, an
# item's loans for its history page.  (Word searches in titles and names read their table, by design.)
DESK_LOOKUPS = {
    "patron search by id": ("SELECT * FROM patron WHERE home_id = ? COLLATE NOCASE ORDER BY institution LIMIT ?",
                            ("S-1", 50), "patron USING INDEX patron_home_id_nocase (home_id=?)"),
    "an item's loans": ("SELECT * FROM loan WHERE item_id = ? ORDER BY checked_out_at DESC LIMIT 100", (1,),
                        "loan USING INDEX loan_item_returned (item_id=?)"),
}


@pytest.mark.parametrize("name", sorted(DESK_LOOKUPS))
def test_desk_lookup_by_key_searches_an_index(db, name):
    sql, params, search = DESK_LOOKUPS[name]
    plan = [row[3] for row in db.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
    assert any(step.startswith("SEARCH " + search) for step in plan), (name, plan)
