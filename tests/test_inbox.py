"""The inbox applies each peer event once, in order, whatever arrives."""
import datetime

from node.models import InboxRecord, Loan, Patron, PeerState
from sync.inbox import receive_batch

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def created(sequence, loan_id, patron="s-1", extra=None):
    data = {"loan_id": loan_id, "lender": "SOUTH", "patron": {"institution": "NORTH", "id": patron},
            "item": {"institution": "SOUTH", "barcode": f"S{sequence}", "title": "A South book"},
            "checked_out_at": "2026-03-01T10:00:00+01:00", "due_at": "2026-03-22T23:59:59+01:00",
            "renewals": 0, **(extra or {})}
    return {"event_id": f"ev-{sequence}", "type": "loan.created", "version": 1, "origin": "SOUTH",
            "sequence": sequence, "occurred_at": "2026-03-01T10:00:00+01:00", "data": data}


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
    assert [r.sequence for r in InboxRecord.select().order_by(InboxRecord.received_at, InboxRecord.sequence)] == [1, 2, 3]
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
