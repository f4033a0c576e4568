"""Pushing the outbox to each destination, in order, in batches.

Only a verified acknowledgement changes an event's state; anything else
leaves it queued, counts a failure for the peer and backs off exponentially
with jitter (capped; reset on the first success).  One push at a time per
process: the scheduler and a ``retry now`` never interleave batches.
"""
import datetime
import logging
import random
import threading
from dataclasses import dataclass

from peewee import fn

from node import errors
from node.db import database
from node.models import Loan, OutboxEvent, PeerState
from sync.client import peer_request
from sync.outbox import envelope

log = logging.getLogger(__name__)
_push_lock = threading.Lock()
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


def next_batch(destination, size):
    return list(OutboxEvent.select()
                .where((OutboxEvent.destination == destination) & OutboxEvent.state.in_(QUEUED))
                .order_by(OutboxEvent.sequence).limit(size))


def backoff_seconds(cfg, failures):
    """Exponential in the failure count, capped, with jitter so peers do not stampede."""
    base = min(cfg.sync["max_backoff_seconds"], cfg.sync["interval_seconds"] * 2 ** min(failures, 20))
    return base * random.uniform(0.5, 1.0)


def push_peer(cfg, peer_code, now_fn, progress=None, max_batches=None):
    """Send PEER_CODE's queued events until none are left, a batch fails, or MAX_BATCHES."""
    result = PushResult(peer_code)
    with _push_lock:
        while max_batches is None or result.batches < max_batches:
            batch = next_batch(peer_code, cfg.sync["batch_size"])
            if not batch:
                break
            body = {"events": [envelope(event, cfg.institution) for event in batch]}
            try:
                status, answer = peer_request(cfg, peer_code, "POST", "/api/v1/sync/events", body)
                if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
                    code = (answer.get("error") or {}).get("code") if isinstance(answer, dict) else None
                    raise errors.PeerUnreachable(f"{peer_code} refused the batch: HTTP {status} {code or ''}")
            except errors.PeerUnreachable as exc:
                _record_failure(cfg, peer_code, batch, exc.message, now_fn())
                result.error = exc.message
                break
            delivered, rejected = _record_answer(peer_code, batch, answer, now_fn())
            result.delivered += delivered
            result.rejected += rejected
            result.batches += 1
            if progress:
                progress(delivered + rejected)
            if delivered + rejected == 0:
                break  # the peer accepted nothing (a gap it wants filled first): try again later
    return result


def _record_failure(cfg, peer_code, batch, message, now):
    log.warning("push to %s failed: %s", peer_code, message)
    with database.atomic():
        state, _ = PeerState.get_or_create(peer=peer_code)
        state.failures += 1
        state.last_error, state.last_error_at = message[:500], now
        state.next_attempt_at = now + datetime.timedelta(seconds=backoff_seconds(cfg, state.failures))
        state.save()
        ids = [event.id for event in batch]
        (OutboxEvent.update(state="failed", attempts=OutboxEvent.attempts + 1, last_error=message[:500])
         .where(OutboxEvent.id.in_(ids)).execute())


def _record_answer(peer_code, batch, answer, now):
    """Apply a verified acknowledgement: mark events, settle provisional loans."""
    by_sequence = {r.get("sequence"): r for r in answer["results"] if isinstance(r, dict)}
    acked_through = answer.get("acked_through") if isinstance(answer.get("acked_through"), int) else 0
    delivered = rejected = 0
    with database.atomic():
        for event in batch:
            outcome = by_sequence.get(event.sequence, {})
            status = outcome.get("status")
            if status == "duplicate":
                status = outcome.get("outcome", "applied")
            if status not in ("applied", "rejected") and event.sequence <= acked_through:
                status = "applied"
            if status == "conflict":  # the peer holds another event under this number: never retry blindly
                status = "rejected"
            if status == "applied":
                event.state, event.delivered_at, event.last_error = "delivered", now, ""
                delivered += 1
            elif status == "rejected":
                event.state, event.delivered_at = "rejected", now
                event.last_error = str(outcome.get("reason") or "rejected")[:500]
                rejected += 1
            else:
                continue  # gap or unanswered: stays queued
            event.attempts += 1
            event.save()
            if event.type == "loan.created":
                _settle_provisional(event, status, outcome)
        expected = answer.get("expected")
        if isinstance(expected, int) and batch and expected < batch[0].sequence:
            # The peer lost events it had acknowledged (restored from a backup): send them again.
            log.error("%s expects sequence %d; re-queueing from there", peer_code, expected)
            (OutboxEvent.update(state="pending")
             .where((OutboxEvent.destination == peer_code) & (OutboxEvent.sequence >= expected)
                    & OutboxEvent.state.not_in(QUEUED)).execute())
        state, _ = PeerState.get_or_create(peer=peer_code)
        state.failures, state.last_success_at, state.next_attempt_at = 0, now, None
        state.last_error = ""
        state.save()
    return delivered, rejected


def _settle_provisional(event, status, outcome):
    loan = Loan.get_or_none(id=event.data["data"]["loan_id"])
    if loan is None:
        return
    objection = outcome.get("reason") if status == "rejected" else outcome.get("dispute")
    if objection:
        loan.disputed, loan.dispute_reason = True, objection
    loan.provisional = False
    loan.save()


def push_due(cfg, now_fn):
    """The scheduler's job: push every peer whose backoff has passed."""
    results = []
    now = now_fn()
    for peer_code in cfg.peers:
        if not next_batch(peer_code, 1):
            continue
        state = PeerState.get_or_none(peer=peer_code)
        if state and state.next_attempt_at and state.next_attempt_at > now:
            continue
        try:
            results.append(push_peer(cfg, peer_code, now_fn))
        except Exception:  # a job must never kill the scheduler
            log.exception("push to %s crashed", peer_code)
    return results
