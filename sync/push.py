"""Pushing the outbox to each destination, in order, in batches.

Only a verified acknowledgement changes an event's state; anything else
leaves it queued, counts a failure for the peer and backs off exponentially
with jitter (capped; reset on the first success).  A peer that refuses the
batch (a 4xx, or an answer that fails our signature check) is told apart
from one that is offline: its cause is the error shown, and is kept for the
admin queue's "Refused by peers".  One push at a time per
process: the scheduler and a ``retry now`` never interleave batches.

Both ends work at once: the next batch is read while the peer applies this
one, and sent while this one's answer is recorded, but only once the peer
has acknowledged all of this one, so the peer still sees its batches one
after the other, in order.  A crash in between leaves both batches queued;
the peer answers their resend as duplicates.
"""
import datetime
import json
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from peewee import fn

from node.domain import disputes, errors
from node.store.db import database
from node.store.models import OutboxEvent, PeerState
from sync.client import error_code, peer_request, record_refusal, refusal
from sync.outbox import envelope

log = logging.getLogger(__name__)
_push_lock = threading.Lock()
# One long-lived thread makes the requests (its pooled session keeps the peer's connection open).
_requests = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push")
QUEUED = ("pending", "failed")


@dataclass
class PushResult:
    peer: str
    delivered: int = 0
    rejected: int = 0
    batches: int = 0
    error: str = ""


def pending_count(peer_code=None):
    query = OutboxEvent.select(fn.COUNT(OutboxEvent.id)).where(OutboxEvent.state.in_(QUEUED))
    if peer_code:
        query = query.where(OutboxEvent.destination == peer_code)
    return query.scalar()


class Queued(NamedTuple):
    """One queued outbox row, as plain values (what a batch needs to be sent and settled)."""

    id: int
    destination: str
    sequence: int
    event_id: str
    type: str
    payload: str


_QUEUED_ROWS = ("SELECT id, destination, sequence, event_id, type, payload FROM outbox_event "
                "WHERE destination = ? AND state = ? AND sequence > ? ORDER BY sequence LIMIT ?")


def next_batch(destination, size, after=0):
    """The SIZE oldest queued events for DESTINATION after sequence AFTER, in sequence order."""
    # One index seek per state on (destination, state, sequence): with
    # ``state IN (...)`` SQLite walked the destination's whole history in
    # sequence order to find the first queued event (EXPLAIN QUERY PLAN), so
    # every batch slowed down as delivered events piled up.
    events = []
    for state in QUEUED:
        events.extend(map(Queued._make, database.execute_sql(_QUEUED_ROWS, (destination, state, after, size))))
    return sorted(events, key=lambda event: event.sequence)[:size]


def backoff_seconds(cfg, failures):
    """Exponential in the failure count, capped, with jitter so peers do not stampede."""
    base = min(cfg.sync["max_backoff_seconds"], cfg.sync["interval_seconds"] * 2 ** min(failures, 20))
    return base * random.uniform(0.5, 1.0)


def push_peer(cfg, peer_code, now_fn, progress=None, max_batches=None):
    """Send PEER_CODE's queued events until none are left, a batch fails, or MAX_BATCHES."""
    result = PushResult(peer_code)
    size = cfg.sync["batch_size"]
    with _push_lock:
        flight = _send(cfg, peer_code, next_batch(peer_code, size)) if max_batches != 0 else None
        try:
            while flight is not None:
                batch, events, answer = flight
                more = max_batches is None or result.batches + 1 < max_batches
                following = next_batch(peer_code, size, after=batch[-1].sequence) if more else []
                following = (following, [envelope(event, cfg.institution) for event in following])
                try:
                    answer = answer.result()  # the peer applies the batch meanwhile
                except (errors.PeerUnreachable, errors.PeerRefused) as exc:
                    flight = None
                    result.error = _record_failure(cfg, peer_code, batch, exc, now_fn())
                    break
                flight = None
                if _acknowledged_all(answer, batch):
                    flight = _send(cfg, peer_code, *following)  # applied at the peer while this answer is recorded
                delivered, rejected = _record_answer(peer_code, batch, events, answer, now_fn())
                result.delivered += delivered
                result.rejected += rejected
                result.batches += 1
                if progress:
                    progress(delivered + rejected)
                if delivered + rejected == 0:
                    break  # the peer accepted nothing (a gap it wants filled first): try again later
                if flight is None and more:  # a gap or a refusal: on from the oldest event still queued
                    flight = _send(cfg, peer_code, next_batch(peer_code, size))
        finally:
            # A batch sent but not recorded stays queued (its resend is answered as duplicates);
            # it is waited for all the same: one push at a time per process.
            if flight is not None and not flight[2].cancel():
                flight[2].exception()
    return result


def _send(cfg, peer_code, batch, events=None):
    """Start sending BATCH (as EVENTS, if already built): (batch, events, future of the peer's answer)."""
    if not batch:
        return None
    events = events or [envelope(event, cfg.institution) for event in batch]
    return batch, events, _requests.submit(_deliver, cfg, peer_code, events)


def _deliver(cfg, peer_code, events):
    """POST EVENTS to PEER_CODE; its verified answer, or PeerUnreachable, or PeerRefused."""
    status, answer = peer_request(cfg, peer_code, "POST", "/api/v1/sync/events", {"events": events})
    if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
        raise refusal(peer_code, status, f"HTTP {status} {error_code(answer) or 'without results'}")
    return answer


def _acknowledged_all(answer, batch):
    acked = answer.get("acked_through")
    return isinstance(acked, int) and acked >= batch[-1].sequence


def _record_failure(cfg, peer_code, batch, exc, now):
    """Keep BATCH queued after EXC and back off; return the error shown.

    A refusal is also kept for the admin queue, once per cause in a row.
    """
    message = exc.message
    if isinstance(exc, errors.PeerRefused):
        message = f"{peer_code} refused the batch: {exc.details['cause']}"
    log.warning("push to %s failed: %s", peer_code, message)
    with database.atomic():
        state, _ = PeerState.get_or_create(peer=peer_code)
        if isinstance(exc, errors.PeerRefused) and state.last_error != message[:500]:
            # Each resend meets the same refusal: one record per cause in a row, not one per back-off.
            record_refusal(exc, "event batch", now)
        state.failures += 1
        state.last_error, state.last_error_at = message[:500], now
        state.next_attempt_at = now + datetime.timedelta(seconds=backoff_seconds(cfg, state.failures))
        state.save()
        ids = [event.id for event in batch]
        (OutboxEvent.update(state="failed", attempts=OutboxEvent.attempts + 1, last_error=message[:500])
         .where(OutboxEvent.id.in_(ids)).execute())
    return message


# json_each: one statement text (prepared once) for any number of ids.
_DELIVERED = ("UPDATE outbox_event SET state = 'delivered', delivered_at = ?, last_error = '', "
              "attempts = attempts + 1 WHERE id IN (SELECT value FROM json_each(?))")
_REJECTED = ("UPDATE outbox_event SET state = 'rejected', delivered_at = ?, last_error = ?, "
             "attempts = attempts + 1 WHERE id = ?")
_PUSHED = ("INSERT INTO peer_state (peer, received_through, last_success_at, last_error, failures) "
           "VALUES (?, 0, ?, '', 0) ON CONFLICT (peer) DO UPDATE SET failures = 0, "
           "last_success_at = excluded.last_success_at, next_attempt_at = NULL, last_error = ''")


def _record_answer(peer_code, batch, events, answer, now):
    """Apply a verified acknowledgement of BATCH (sent as EVENTS): mark events, settle provisional loans."""
    by_sequence = {r.get("sequence"): r for r in answer["results"] if isinstance(r, dict)}
    acked_through = answer.get("acked_through") if isinstance(answer.get("acked_through"), int) else 0
    delivered_ids, rejected, settled = [], [], []
    stamp = OutboxEvent.delivered_at.db_value(now)
    with database.atomic():
        for event, sent in zip(batch, events):
            outcome = by_sequence.get(event.sequence, {})
            status = outcome.get("status")
            if status == "duplicate":
                status = outcome.get("outcome", "applied")
            if status == "conflict":  # the peer holds another event under this number: never retry blindly
                status = "rejected"
            if status not in ("applied", "rejected") and event.sequence <= acked_through:
                status = "applied"
            if status == "applied":
                delivered_ids.append(event.id)
            elif status == "rejected":
                rejected.append((stamp, str(outcome.get("reason") or "rejected")[:500], event.id))
            else:
                continue  # gap or unanswered: stays queued
            if event.type == "loan.created":
                settled.append((sent["data"]["loan_id"], status, outcome))
        if delivered_ids:
            database.execute_sql(_DELIVERED, (stamp, json.dumps(delivered_ids)))
        if rejected:
            database.cursor().executemany(_REJECTED, rejected)
        disputes.settle_provisional(settled)  # in this transaction: the loans move with their events
        expected = answer.get("expected")
        if isinstance(expected, int) and batch and expected < batch[0].sequence:
            # The peer lost events it had acknowledged (restored from a backup): send them again.
            log.error("%s expects sequence %d; re-queueing from there", peer_code, expected)
            (OutboxEvent.update(state="pending")
             .where((OutboxEvent.destination == peer_code) & (OutboxEvent.sequence >= expected)
                    & OutboxEvent.state.not_in(QUEUED)).execute())
        database.execute_sql(_PUSHED, (peer_code, PeerState.last_success_at.db_value(now)))
    return len(delivered_ids), len(rejected)


def push_due(cfg, now_fn):
    """The scheduler's job: push every peer whose backoff has passed."""
    results = []
    now = now_fn()
    for peer_code in cfg.peers:
        if not next_batch(peer_code, 1):
            continue
        state = PeerState.get_or_none(peer=peer_code)
        cap = datetime.timedelta(seconds=cfg.sync["max_backoff_seconds"])
        # A wait longer than the cap means the clock was set back: do not stall for the difference.
        if state and state.next_attempt_at and now < state.next_attempt_at <= now + cap:
            continue
        try:
            results.append(push_peer(cfg, peer_code, now_fn))
        except Exception:  # a job must never kill the scheduler
            log.exception("push to %s crashed", peer_code)
    return results
