"""The inbox applies each peer event once, in order, whatever arrives."""
import datetime

from node.store.models import InboxRecord, Loan, Patron, PeerState
from sync.inbox import receive_batch
from tests.helpers.events import created

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def home_patron():
    Patron.create(institution="NORTH", home_id="s-1", name="A patron", updated_at=NOW)


def test_gap_is_refused_until_filled_then_applied_in_order(app):
    home_patron()
    answer = receive_batch(app.extensions["circnode"], "SOUTH", [created(3, "L3")], NOW)
    assert answer["results"][0]["status"] == "gap"
    assert (answer["acked_through"], answer["expected"]) == (0, 1)
    assert Loan.select().count() == 0 and InboxRecord.select().count() == 0
    answer = receive_batch(app.extensions["circnode"], "SOUTH",
                           [created(2, "L2"), created(3, "L3"), created(1, "L1")], NOW)
    assert [r["status"] for r in answer["results"]] == ["applied"] * 3
    records = InboxRecord.select().order_by(InboxRecord.received_at, InboxRecord.sequence)
    assert [r.sequence for r in records] == [1, 2, 3]
    assert PeerState.get(peer="SOUTH").received_through == 3


def test_duplicate_has_no_second_effect_and_repeats_first_outcome(app):
    home_patron()
    cfg = app.extensions["circnode"]
    receive_batch(cfg, "SOUTH", [created(1, "L1"), created(2, "L2", patron="nobody")], NOW)
    again = receive_batch(cfg, "SOUTH", [created(1, "L1"), created(2, "L2", patron="nobody")], NOW)
    assert [(r["status"], r["outcome"]) for r in again["results"]] == [("duplicate", "applied"),
                                                                        ("duplicate", "rejected")]
    assert Loan.select().count() == 1


def test_unknown_fields_and_types_are_ignored_not_fatal(app):
    home_patron()
    cfg = app.extensions["circnode"]
    future = {"event_id": "ev-2", "type": "loan.teleported", "version": 9, "origin": "SOUTH", "sequence": 2,
              "occurred_at": "2026-03-01T10:00:00+01:00", "data": {"anything": 1}}
    answer = receive_batch(cfg, "SOUTH", [created(1, "L1", extra={"shiny_new_field": [1, 2]}), future], NOW)
    assert [r["status"] for r in answer["results"]] == ["applied", "applied"]
    assert answer["results"][1]["note"] == "unknown_type"
    assert Loan.get(id="L1").lender == "SOUTH"


def test_malformed_event_is_rejected_without_effect_and_does_not_block(app):
    home_patron()
    cfg = app.extensions["circnode"]
    broken = created(1, "L1")
    broken["data"]["due_at"] = "not a time"
    answer = receive_batch(cfg, "SOUTH", [broken, created(2, "L2")], NOW)
    assert [(r["status"], r["reason"]) for r in answer["results"]] == [("rejected", "malformed_event"),
                                                                        ("applied", "")]
    assert [loan.id for loan in Loan.select()] == ["L2"]


def test_reused_sequence_with_other_event_is_flagged(app):
    home_patron()
    cfg = app.extensions["circnode"]
    receive_batch(cfg, "SOUTH", [created(1, "L1")], NOW)
    impostor = created(1, "L9")
    impostor["event_id"] = "other"
    answer = receive_batch(cfg, "SOUTH", [impostor], NOW)
    assert answer["results"][0]["status"] == "conflict"
    assert Loan.get_or_none(id="L9") is None


def returned(sequence, loan_id, at="2026-03-05T10:00:00+01:00", where="SOUTH"):
    data = {"loan_id": loan_id, "lender": "SOUTH", "returned_at": at, "returned_at_institution": where}
    return {"event_id": f"ev-{sequence}", "type": "loan.returned", "version": 1, "origin": "SOUTH",
            "sequence": sequence, "occurred_at": at, "data": data}


def statuses(answer):
    return [(r["status"], r["reason"]) for r in answer["results"]]


def test_loan_created_and_returned_in_one_batch_ends_closed_with_the_item_back_at_its_owner(app):
    from node.store.models import Item
    home_patron()
    answer = receive_batch(app.extensions["circnode"], "SOUTH", [created(1, "L1"), returned(2, "L1")], NOW)
    assert statuses(answer) == [("applied", ""), ("applied", "")]
    assert (answer["acked_through"], answer["expected"]) == (2, 3)
    loan = Loan.get(id="L1")
    returned_at = datetime.datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
    assert (loan.status, loan.returned_at, loan.returned_at_institution) == ("closed", returned_at, "SOUTH")
    assert loan.updated_at == returned_at and loan.patron.home_id == "s-1" and loan.lender == "SOUTH"
    assert (loan.renewals, loan.provisional, loan.disputed, loan.dispute_reason, loan.made_offline, loan.lost_at) == (
        0, False, False, "", False, None)
    assert loan.due_at == datetime.datetime(2026, 3, 22, 22, 59, 59, tzinfo=UTC)
    item = Item.get(owner="SOUTH", barcode="S1")
    assert (item.status, item.title, item.updated_at) == ("available", "A South book", NOW)
    assert [(r.sequence, r.type, r.state) for r in InboxRecord.select().order_by(InboxRecord.sequence)] == [
        (1, "loan.created", "applied"), (2, "loan.returned", "applied")]
    assert PeerState.get(peer="SOUTH").received_through == 2


def test_resent_batch_answers_each_first_outcome_and_changes_nothing(app):
    from node.store.models import Item
    home_patron()
    cfg = app.extensions["circnode"]
    batch = [created(1, "L1"), created(2, "L2", patron="nobody"), returned(3, "L1"), returned(4, "L9")]
    first = receive_batch(cfg, "SOUTH", batch, NOW)
    assert statuses(first) == [("applied", ""), ("rejected", "patron_unknown"), ("applied", ""),
                               ("rejected", "loan_unknown")]
    later = NOW + datetime.timedelta(hours=1)
    again = receive_batch(cfg, "SOUTH", list(reversed(batch)), later)
    assert [(r["sequence"], r["status"], r["outcome"], r["reason"]) for r in again["results"]] == [
        (1, "duplicate", "applied", ""), (2, "duplicate", "rejected", "patron_unknown"),
        (3, "duplicate", "applied", ""), (4, "duplicate", "rejected", "loan_unknown")]
    assert (again["acked_through"], again["expected"]) == (4, 5)
    assert [loan.id for loan in Loan.select()] == ["L1"] and Loan.get(id="L1").status == "closed"
    assert Item.get(barcode="S1").updated_at == NOW and InboxRecord.select().count() == 4


def test_unknown_patron_in_mid_batch_leaves_no_trace_but_its_record(app):
    from node.store.models import Item
    home_patron()
    answer = receive_batch(app.extensions["circnode"], "SOUTH",
                           [created(1, "L1"), created(2, "L2", patron="nobody"), created(3, "L3")], NOW)
    assert statuses(answer) == [("applied", ""), ("rejected", "patron_unknown"), ("applied", "")]
    assert [loan.id for loan in Loan.select().order_by(Loan.id)] == ["L1", "L3"]
    assert [item.barcode for item in Item.select().order_by(Item.barcode)] == ["S1", "S3"]
    record = InboxRecord.get(origin="SOUTH", sequence=2)
    assert (record.state, record.reason, record.event_id) == ("rejected", "patron_unknown", "ev-2")


def test_malformed_event_undoes_what_it_wrote_before_failing(app):
    from node.store.models import Item
    home_patron()
    broken = created(1, "L1")
    broken["data"]["due_at"] = "not a time"  # read after the item is already written
    answer = receive_batch(app.extensions["circnode"], "SOUTH", [broken], NOW)
    assert statuses(answer) == [("rejected", "malformed_event")]
    assert Item.select().count() == 0 and Loan.select().count() == 0
    assert InboxRecord.get(sequence=1).state == "rejected"


def test_loan_of_a_blocked_patron_is_recorded_and_disputed(app):
    Patron.create(institution="NORTH", home_id="s-1", name="A patron", blocked=True, block_reason="Library fines",
                  updated_at=NOW)
    answer = receive_batch(app.extensions["circnode"], "SOUTH", [created(1, "L1"), returned(2, "L1")], NOW)
    assert [(r["status"], r.get("dispute")) for r in answer["results"]] == [("applied", "patron_blocked"),
                                                                            ("applied", None)]
    assert Loan.get(id="L1").status == "closed"


def test_gap_in_mid_batch_applies_the_events_before_it_and_stops(app):
    home_patron()
    answer = receive_batch(app.extensions["circnode"], "SOUTH",
                           [created(1, "L1"), returned(2, "L1"), created(4, "L4"), created(5, "L5")], NOW)
    assert [r["status"] for r in answer["results"]] == ["applied", "applied", "gap"]
    assert answer["results"][2]["reason"] == "expected sequence 3"
    assert (answer["acked_through"], answer["expected"]) == (2, 3)
    assert [loan.id for loan in Loan.select()] == ["L1"]
    assert [r.sequence for r in InboxRecord.select().order_by(InboxRecord.sequence)] == [1, 2]


def test_failing_event_commits_the_events_before_it_and_undoes_its_own_writes(app, monkeypatch):
    import pytest
    from node.store.models import Item
    from sync import catalogue
    home_patron()

    def crash(context, data):
        Item.create(owner="SOUTH", barcode="CRASH", updated_at=context.now)
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(catalogue.EVENTS["loan.renewed"], "apply", crash)
    renewal = {"event_id": "ev-2", "type": "loan.renewed", "version": 1, "origin": "SOUTH", "sequence": 2,
               "occurred_at": "2026-03-03T10:00:00+01:00",
               "data": {"loan_id": "L1", "lender": "SOUTH", "due_at": "2026-04-01T10:00:00+01:00", "renewals": 1}}
    with pytest.raises(RuntimeError):
        receive_batch(app.extensions["circnode"], "SOUTH", [created(1, "L1"), renewal, created(3, "L3")], NOW)
    assert [loan.id for loan in Loan.select()] == ["L1"]
    assert Item.get_or_none(barcode="CRASH") is None
    assert [r.sequence for r in InboxRecord.select()] == [1]
    assert PeerState.get(peer="SOUTH").received_through == 1


def test_item_lent_again_closes_the_loan_whose_return_never_came(app):
    from node.store.models import Item
    home_patron()
    again = created(2, "L2")
    again["data"].update(item={"institution": "SOUTH", "barcode": "S1", "title": "New title"},
                         checked_out_at="2026-03-04T10:00:00+01:00")
    answer = receive_batch(app.extensions["circnode"], "SOUTH", [created(1, "L1"), again], NOW)
    assert statuses(answer) == [("applied", ""), ("applied", "")]
    first, second = Loan.get(id="L1"), Loan.get(id="L2")
    assert (first.status, first.returned_at, first.returned_at_institution) == (
        "closed", datetime.datetime(2026, 3, 4, 9, 0, tzinfo=UTC), "SOUTH")
    assert second.status == "open" and second.item_id == first.item_id
    item = Item.get(barcode="S1")
    assert (item.status, item.title) == ("on_loan", "New title")


def test_double_return_keeps_the_earliest_in_either_order(app):
    home_patron()
    cfg = app.extensions["circnode"]
    answer = receive_batch(cfg, "SOUTH", [created(1, "L1"), returned(2, "L1", at="2026-03-06T10:00:00+01:00"),
                                          returned(3, "L1", at="2026-03-05T10:00:00+01:00"),
                                          returned(4, "L1", at="2026-03-07T10:00:00+01:00")], NOW)
    assert [r.get("note") for r in answer["results"]] == [None, None, "already_closed", "already_closed"]
    loan = Loan.get(id="L1")
    assert (loan.returned_at, loan.returned_at_institution) == (datetime.datetime(2026, 3, 5, 9, 0, tzinfo=UTC),
                                                                "SOUTH")


def test_a_return_is_reported_only_by_the_library_where_it_was_made(app):
    from node.store.models import Item
    home_patron()
    answer = receive_batch(app.extensions["circnode"], "SOUTH", [created(1, "L1"), returned(2, "L1", where="EAST"),
                                                                 returned(3, "L1")], NOW)
    assert statuses(answer) == [("applied", ""), ("rejected", "not_authoritative"), ("applied", "")]
    loan = Loan.get(id="L1")
    assert (loan.status, loan.returned_at_institution) == ("closed", "SOUTH")
    assert Item.get(barcode="S1").status == "available"  # back at its owner, where it was returned


def test_loan_created_without_a_loan_id_is_malformed(app):
    home_patron()
    answer = receive_batch(app.extensions["circnode"], "SOUTH", [created(1, None), returned(2, None)], NOW)
    assert statuses(answer) == [("rejected", "malformed_event"), ("rejected", "malformed_event")]
    assert Loan.select().count() == 0


def test_times_a_zone_cannot_show_and_returns_before_their_checkout_are_refused(app):
    from node.store.models import Item
    home_patron()
    far = created(1, "L1", extra={"due_at": "9999-12-31T23:30:00+00:00"})  # year 10000 in Zurich
    early = created(2, "L2", extra={"checked_out_at": "1899-12-31T23:00:00+00:00"})
    backwards = created(3, "L3", extra={"due_at": "2026-02-01T10:00:00+01:00"})  # due before it was made
    answer = receive_batch(app.extensions["circnode"], "SOUTH", [
        far, early, backwards, created(4, "L4"), returned(5, "L4", at="2000-01-01T00:00:00+00:00"),
        returned(6, "L4", at="9999-12-31T22:00:00+00:00"), returned(7, "L4")], NOW)
    assert statuses(answer) == [("rejected", "malformed_event"), ("rejected", "malformed_event"),
                                ("rejected", "time_out_of_range"), ("applied", ""),
                                ("rejected", "time_out_of_range"), ("rejected", "malformed_event"), ("applied", "")]
    assert [loan.id for loan in Loan.select()] == ["L4"] and Item.get(barcode="S4").status == "available"
    assert Loan.get(id="L4").returned_at == datetime.datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
