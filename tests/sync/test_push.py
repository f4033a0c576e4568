"""Pushing the outbox: a verified answer marks each event, and the home node's objections flag the loans.

The peer's answer is given here (its signature and transport are the subject
of tests/sync/test_signing.py and tests/sync/test_sync_faults.py).
"""
import datetime

from node.domain import circulation
from node.domain.circulation import UNREACHABLE, Standing
from node.store.models import Loan, OutboxEvent, PeerState, Patron
from sync import push

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
OFFLINE = Standing(True, provisional=True, reason="home node unreachable", source=UNREACHABLE)


def lend(cfg, barcode, home_id):
    Patron.create(institution="SOUTH", home_id=home_id, name="A visitor", updated_at=NOW)
    return circulation.checkout(cfg, barcode, "SOUTH", home_id, OFFLINE, NOW, staff="desk")


def peer_answers(monkeypatch, answer):
    """Make SOUTH answer each batch with ANSWER(events); return the batches sent."""
    sent = []

    def request(cfg, peer_code, method, path, payload=None, **kwargs):
        assert (peer_code, method, path) == ("SOUTH", "POST", "/api/v1/sync/events")
        sent.append(payload["events"])
        return 200, answer(payload["events"])
    monkeypatch.setattr(push, "peer_request", request)
    return sent


def outbox():
    return [(e.sequence, e.type, e.state, e.attempts, e.last_error)
            for e in OutboxEvent.select().order_by(OutboxEvent.sequence)]


def test_answer_marks_delivered_and_rejected_settles_loans_and_leaves_the_gap_queued(seeded, monkeypatch):
    kept, disputed, refused = (lend(seeded, f"N000{n}", f"south-{n}") for n in (1, 2, 3))
    circulation.return_item(seeded, "N0001", NOW, staff="desk")
    outcomes = {1: {"status": "applied"}, 2: {"status": "applied", "dispute": "patron_blocked"},
                3: {"status": "rejected", "reason": "patron_unknown"}, 4: {"status": "gap"}}
    sent = peer_answers(monkeypatch, lambda events: {
        "acked_through": 3, "expected": 4,
        "results": [dict(outcomes[e["sequence"]], sequence=e["sequence"], event_id=e["event_id"]) for e in events]})
    result = push.push_peer(seeded, "SOUTH", lambda: NOW)
    assert (result.delivered, result.rejected, result.batches, result.error) == (2, 1, 2, "")
    assert [[e["sequence"] for e in batch] for batch in sent] == [[1, 2, 3, 4], [4]]
    first = sent[0][0]
    assert list(first) == ["event_id", "type", "version", "origin", "destination", "sequence", "occurred_at", "data"]
    assert (first["type"], first["version"], first["origin"], first["destination"]) == ("loan.created", 1, "NORTH",
                                                                                       "SOUTH")
    assert first["occurred_at"] == NOW.isoformat() and first["data"] == circulation.loan_event_data(kept)
    assert outbox() == [(1, "loan.created", "delivered", 1, ""), (2, "loan.created", "delivered", 1, ""),
                        (3, "loan.created", "rejected", 1, "patron_unknown"), (4, "loan.returned", "pending", 0, "")]
    assert OutboxEvent.get(sequence=3).delivered_at == NOW
    loans = {loan.id: (loan.provisional, loan.disputed, loan.dispute_reason) for loan in Loan.select()}
    assert loans == {kept.id: (False, False, ""), disputed.id: (False, True, "patron_blocked"),
                     refused.id: (False, True, "patron_unknown")}
    state = PeerState.get(peer="SOUTH")
    assert (state.failures, state.last_success_at, state.next_attempt_at, state.last_error) == (0, NOW, None, "")


def test_duplicates_settle_as_their_first_outcome(seeded, monkeypatch):
    loan = lend(seeded, "N0001", "south-1")
    peer_answers(monkeypatch, lambda events: {"acked_through": 1, "expected": 2, "results": [
        {"sequence": 1, "event_id": events[0]["event_id"], "status": "duplicate", "outcome": "applied"}]})
    assert push.push_peer(seeded, "SOUTH", lambda: NOW).delivered == 1
    assert outbox() == [(1, "loan.created", "delivered", 1, "")]
    assert Loan.get_by_id(loan.id).provisional is False


def test_peer_restored_from_a_backup_gets_its_lost_events_again(seeded, monkeypatch):
    lend(seeded, "N0001", "south-1")
    lend(seeded, "N0002", "south-2")
    peer_answers(monkeypatch, lambda events: {"acked_through": events[-1]["sequence"], "results": [
        {"sequence": e["sequence"], "event_id": e["event_id"], "status": "applied"} for e in events]})
    push.push_peer(seeded, "SOUTH", lambda: NOW)
    lend(seeded, "N0003", "south-3")
    sent = peer_answers(monkeypatch, lambda events: {"acked_through": 0, "expected": 1, "results": [
        {"sequence": e["sequence"], "event_id": e["event_id"], "status": "gap"} for e in events]})
    result = push.push_peer(seeded, "SOUTH", lambda: NOW)
    assert (result.delivered, result.batches) == (0, 1) and [e["sequence"] for e in sent[0]] == [3]
    assert [(sequence, state) for sequence, _, state, _, _ in outbox()] == [(1, "pending"), (2, "pending"),
                                                                           (3, "pending")]


def test_next_batch_goes_out_only_once_the_last_is_acknowledged_and_a_failed_one_stays_queued(seeded, monkeypatch):
    from node.domain import errors
    for n in range(1, 6):
        lend(seeded, f"N000{n}", f"south-{n}")
    monkeypatch.setitem(seeded.sync, "batch_size", 2)
    sent, states_when_sent = [], []

    def request(cfg, peer_code, method, path, payload=None, **kwargs):
        events = payload["events"]
        sent.append([e["sequence"] for e in events])
        states_when_sent.append([e.state for e in OutboxEvent.select().order_by(OutboxEvent.sequence)])
        if events[-1]["sequence"] == 5:
            raise errors.PeerUnreachable("SOUTH unreachable: ConnectionError")
        if events[0]["sequence"] == 1:  # the peer takes event 1 only: 2 must go again, not 3 and 4
            return 200, {"acked_through": 1, "expected": 2, "results": [
                {"sequence": 1, "event_id": events[0]["event_id"], "status": "applied"},
                {"sequence": 2, "event_id": events[1]["event_id"], "status": "gap"}]}
        return 200, {"acked_through": events[-1]["sequence"], "results": [
            {"sequence": e["sequence"], "event_id": e["event_id"], "status": "applied"} for e in events]}
    monkeypatch.setattr(push, "peer_request", request)
    result = push.push_peer(seeded, "SOUTH", lambda: NOW)
    assert sent == [[1, 2], [2, 3], [4, 5]]
    assert (result.delivered, result.batches, result.error) == (3, 2, "SOUTH unreachable: ConnectionError")
    assert [state for _, _, state, _, _ in outbox()] == ["delivered", "delivered", "delivered", "failed", "failed"]
    # [2, 3] was sent after [1, 2]'s answer was recorded; [4, 5] may go while [2, 3]'s is
    assert states_when_sent[1][:2] == ["delivered", "pending"]
    assert states_when_sent[2][:1] == ["delivered"]


def test_push_returns_only_once_its_request_has_ended_even_when_the_next_batch_cannot_be_built(seeded, monkeypatch):
    import threading
    import time

    import pytest
    for n in range(1, 5):
        lend(seeded, f"N000{n}", f"south-{n}")
    monkeypatch.setitem(seeded.sync, "batch_size", 2)
    started, ended = threading.Event(), threading.Event()

    def request(cfg, peer_code, method, path, payload=None, **kwargs):
        started.set()
        time.sleep(0.3)
        ended.set()
        events = payload["events"]
        return 200, {"acked_through": events[-1]["sequence"], "results": [
            {"sequence": e["sequence"], "event_id": e["event_id"], "status": "applied"} for e in events]}
    monkeypatch.setattr(push, "peer_request", request)
    real = push.envelope

    def envelope(event, origin):
        if event.sequence == 3:  # the batch after the one in flight is corrupt
            raise ValueError("corrupt payload")
        return real(event, origin)
    monkeypatch.setattr(push, "envelope", envelope)
    with pytest.raises(ValueError):
        push.push_peer(seeded, "SOUTH", lambda: NOW)
    # One push at a time: its request was either never started (cancelled) or has ended.
    assert started.is_set() == ended.is_set()
    assert [state for _, _, state, _, _ in outbox()] == ["pending"] * 4  # its answer never recorded: queued


def test_no_batch_is_sent_when_none_is_allowed(seeded, monkeypatch):
    lend(seeded, "N0001", "south-1")
    sent = peer_answers(monkeypatch, lambda events: {"acked_through": 1, "results": []})
    assert push.push_peer(seeded, "SOUTH", lambda: NOW, max_batches=0).batches == 0 and sent == []
