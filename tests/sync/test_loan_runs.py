"""A run of loan events applied together leaves exactly what its events applied one by one leave."""
import datetime
import json

import pytest

from node.domain import circulation
from node.store.db import database
from node.store.models import InboxRecord, Item, Loan, Patron, PeerState
from sync.inbox import receive_batch
from tests.helpers.nodes import NOW, network_node

UTC = datetime.timezone.utc


def created(sequence, loan_id, barcode, patron="s-1", **changes):
    data = {"loan_id": loan_id, "lender": "SOUTH", "patron": {"institution": "NORTH", "id": patron},
            "item": {"institution": "SOUTH", "barcode": barcode, "title": f"Title {sequence}"},
            "checked_out_at": (datetime.datetime(2026, 3, 1, tzinfo=UTC) + datetime.timedelta(hours=sequence)).isoformat(), "due_at": "2026-03-22T23:59:59+01:00",
            "renewals": 0, **changes}
    return event(sequence, "loan.created", data)


def returned(sequence, loan_id, at, where="SOUTH", lender="SOUTH"):
    return event(sequence, "loan.returned", {"loan_id": loan_id, "lender": lender, "returned_at": at,
                                             "returned_at_institution": where})


def event(sequence, kind, data):
    return {"event_id": f"ev-{sequence}", "type": kind, "version": 1, "origin": "SOUTH", "sequence": sequence,
            "occurred_at": "2026-03-01T10:00:00+01:00", "data": data}


def scenario():
    """Every path of both handlers, and events of other types that end a run."""
    wrong_home = created(18, "L9", "S3")
    wrong_home["data"]["patron"]["institution"] = "EAST"
    return [
        created(1, "L1", "S1"),  # S1's open loan OLD never came back: L1 closes it
        returned(2, "L1", "2026-03-03T10:00:00+01:00"),
        created(3, "L2", "S1"),  # S1 again, new title
        created(4, "L3", "S2", patron="nobody"),  # rejected, no trace
        created(5, "L4", "S2", due_at="not a time"),  # malformed, no trace
        returned(6, "OLD", "2026-02-27T10:00:00+01:00"),  # closed by L1 already: earlier wins
        returned(7, "NL1", "2026-03-01T15:00:00+01:00", lender="NORTH"),  # our own loan, overdue: the fine is ours to bill
        created(8, "L5", "S2", patron="s-2"),  # blocked patron: recorded, disputed
        event(9, "who.knows", {}),  # unknown type: ends the run
        created(10, "L6", "S9"),  # an item we never heard of
        returned(11, "L6", "2026-03-04T10:00:00+01:00", where="EAST"),  # not SOUTH's desk: not SOUTH's to say
        created(12, "L2", "S3"),  # a loan id we hold already: no second effect
        returned(13, "L2", "2026-03-05T10:00:00+01:00"),
        returned(14, "L2", "2026-03-06T10:00:00+01:00"),  # double return, later: kept as it was
        created(15, "L7", "S3", patron="s-2"),
        returned(16, "nope", "2026-03-05T10:00:00+01:00"),
        created(17, "L8", "S3", lender="EAST"),
        wrong_home,
        created(19, "L10", "S3", renewals="x"),
    ]


def tables():
    dump = {}
    for table in ("loan", "item", "fee", "inbox_record", "peer_state"):
        cursor = database.execute_sql(f"SELECT * FROM {table} ORDER BY 1")
        dump[table] = [dict(zip([c[0] for c in cursor.description], row)) for row in cursor.fetchall()]
    for row in dump["fee"]:
        row.pop("id")  # a new key per fee
    events = database.execute_sql("SELECT type, sequence, payload FROM outbox_event ORDER BY sequence").fetchall()
    dump["outbox"] = [(kind, sequence, json.loads(payload)["data"]["reason"]) for kind, sequence, payload in events]
    return dump


def apply(tmp_path, batch_size):
    cfg = network_node(tmp_path / f"batches-of-{batch_size}")
    events = scenario()
    try:
        results = []
        for start in range(0, len(events), batch_size):
            results += receive_batch(cfg, "SOUTH", events[start:start + batch_size], NOW)["results"]
        return results, tables()
    finally:
        database.close()


def test_a_run_leaves_what_its_events_one_by_one_leave(tmp_path):
    together, together_tables = apply(tmp_path, 50)
    one_by_one, one_by_one_tables = apply(tmp_path, 1)
    assert together == one_by_one
    assert together_tables == one_by_one_tables
    # and what they leave is what each event means
    assert [(r["status"], r["reason"] or r.get("dispute") or r.get("note")) for r in together] == [
        ("applied", None), ("applied", None), ("applied", None), ("rejected", "patron_unknown"),
        ("rejected", "malformed_event"), ("applied", "already_closed"), ("applied", None),
        ("applied", "patron_blocked"), ("applied", "unknown_type"), ("applied", None),
        ("rejected", "not_authoritative"),
        ("applied", None), ("applied", None), ("applied", "already_closed"), ("applied", "patron_blocked"),
        ("rejected", "loan_unknown"), ("rejected", "not_authoritative"), ("rejected", "wrong_home"),
        ("rejected", "malformed_event")]
    loans = {row["id"]: row for row in together_tables["loan"]}
    assert set(loans) == {"OLD", "NL1", "L1", "L2", "L5", "L6", "L7"}
    assert (loans["OLD"]["status"], loans["OLD"]["returned_at"], loans["OLD"]["returned_at_institution"]) == (
        "closed", "2026-02-27T09:00:00.000000Z", "SOUTH")
    assert (loans["L2"]["status"], loans["L2"]["returned_at"]) == ("closed", "2026-03-05T09:00:00.000000Z")
    assert loans["L5"]["status"] == "open" and loans["L7"]["status"] == "open"
    items = {row["barcode"]: row for row in together_tables["item"]}
    assert (items["S1"]["status"], items["S1"]["title"]) == ("available", "Title 3")
    assert (items["S9"]["status"], items["N1"]["status"], items["S3"]["status"]) == ("on_loan", "in_transit",
                                                                                       "on_loan")
    assert [(fee["loan_id"], fee["reason"], fee["amount"]) for fee in together_tables["fee"]] == [("NL1", "fine", 450)]  # 9 days late
    assert together_tables["outbox"] == [("fee.assessed", 1, "fine")]
    assert [r["sequence"] for r in together_tables["inbox_record"]] == list(range(1, 20))


def test_crash_in_a_run_commits_the_events_before_it_and_undoes_its_own(tmp_path, monkeypatch):
    cfg = network_node(tmp_path / "node")
    real = circulation.own_patron_standing

    def standing(cfg, home_id, now, patron=None):
        if home_id == "s-2":
            raise RuntimeError("disk on fire")
        return real(cfg, home_id, now, patron=patron)
    monkeypatch.setattr(circulation, "own_patron_standing", standing)
    try:
        with pytest.raises(RuntimeError):
            receive_batch(cfg, "SOUTH", [created(1, "L1", "S2"), returned(2, "L1", "2026-03-03T10:00:00+01:00"),
                                         created(3, "L2", "S8", patron="s-2"), created(4, "L3", "S3")], NOW)
        assert [(loan.id, loan.status) for loan in Loan.select().where(Loan.id.startswith("L"))] == [("L1", "closed")]
        assert Item.get_or_none(barcode="S8") is None  # written by the culprit before it failed: undone
        assert Item.get(barcode="S2").status == "available" and Item.get(barcode="S3").status == "available"
        assert [r.sequence for r in InboxRecord.select().order_by(InboxRecord.sequence)] == [1, 2]
        assert PeerState.get(peer="SOUTH").received_through == 2
    finally:
        database.close()


def test_the_statements_of_a_run_do_not_grow_with_its_events(tmp_path, monkeypatch):
    cfg = network_node(tmp_path / "node")
    with database.atomic():
        for n in range(100):
            Item.create(owner="SOUTH", barcode=f"B{n}", status="available", updated_at=NOW)
    statements = []
    real = database.execute_sql

    def counted(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return real(sql, params, *args, **kwargs)
    try:
        counts, sequence = [], 0
        for loans in (1, 5, 100):  # the first also creates the peer's state
            events = []
            for n in range(loans):
                events += [created(sequence + 1, f"R{sequence}", f"B{n}"),
                           returned(sequence + 2, f"R{sequence}", "2026-04-30T10:00:00+01:00")]  # after every checkout
                sequence += 2
            monkeypatch.setattr(database, "execute_sql", counted)
            answer = receive_batch(cfg, "SOUTH", events, NOW)
            monkeypatch.undo()
            assert {r["status"] for r in answer["results"]} == {"applied"}
            counts.append(len(statements))
            statements.clear()
        assert counts[1] == counts[2] < 15, counts
        assert Loan.select().where(Loan.status == "closed", Loan.id.startswith("R")).count() == 106
    finally:
        database.close()


def test_ids_with_a_nul_character_are_malformed_and_hold_nothing_up(tmp_path):
    cfg = network_node(tmp_path / "node")
    with database.atomic():
        Patron.create(institution="NORTH", home_id="s\x003", name="Three", updated_at=NOW)
        Item.create(owner="SOUTH", barcode="S\x007", status="available", updated_at=NOW)
    try:
        answer = receive_batch(cfg, "SOUTH", [created(1, "L\x001", "S\x007", patron="s\x003"),
                                              returned(2, "L\x001", "2026-03-03T10:00:00+01:00"),
                                              created(3, "L1", "S\x007"), created(4, "L2", "S2")], NOW)
        assert [(r["status"], r["reason"]) for r in answer["results"]] == [("rejected", "malformed_event")] * 3 + [
            ("applied", "")]
        assert Loan.get_or_none(id="L\x001") is None and Loan.get(id="L2").status == "open" and Item.get(barcode="S\x007").status == "available"
    finally:
        database.close()


@pytest.mark.parametrize("change", [{"item": {"institution": "SOUTH", "barcode": "S9", "title": None}},
                                    {"item": {"institution": "SOUTH", "barcode": "S1", "title": None}},
                                    {"item": {"institution": "SOUTH", "barcode": None}},
                                    {"item": {"institution": "SOUTH", "barcode": "S9", "item_type": None}},
                                    {"renewals": 2 ** 63},
                                    {"checked_out_at": "0001-01-01T00:00:00+01:00"}])
def test_a_value_the_tables_cannot_hold_is_malformed_not_a_stuck_queue(tmp_path, change):
    cfg = network_node(tmp_path / "node")
    try:
        answer = receive_batch(cfg, "SOUTH", [created(1, "L1", "S9", **change), created(2, "L2", "S2")], NOW)
        assert [(r["status"], r["reason"]) for r in answer["results"]] == [("rejected", "malformed_event"),
                                                                          ("applied", "")]
        assert Loan.get_or_none(id="L1") is None and Item.get_or_none(barcode="S9") is None
    finally:
        database.close()
