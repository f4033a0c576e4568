"""The admin's view of sync: what waits, what fails, what peers refused, and two actions.

Knows nothing of Flask: the JSON API, the ``/admin/queue`` page and
``circnode queue`` all call these functions, so the three show the same.
Every query walks an index, never the outbox's history: counts and the
oldest queued event come from the (destination, state, sequence) index one
peer and one state at a time; refusals and loans needing attention come
from partial indexes that hold only those rows (migration 3).

Patron ids are masked here (``mask_id``) and payloads never leave: the
queue is about delivery, not about who borrowed what.
"""
import datetime
import heapq
import json

from peewee import JOIN, fn

from node.domain import disputes, errors
from node.store.db import database
from node.store.models import (
    AuditLog,
    InboxRecord,
    Item,
    Loan,
    OutboxEvent,
    Patron,
    PeerState,
)
from sync.client import REFUSAL_ACTION
from sync.push import QUEUED, pending_count, push_peer

EVENT_STATES = ("pending", "failed", "delivered", "rejected")
MAX_LIMIT = 500
LIST_CAP = 200  # refusals and loans shown at most; newest first
REFUSAL_WINDOW = 20000  # refusals by peers are looked for among this many newest audit rows
NOTE_MAX = disputes.NOTE_MAX


def mask_id(value):
    """VALUE with its middle hidden: the first two and last two characters stay.

    Ids of six characters or fewer keep only their first one, so a short id
    is never shown nearly whole.  ``south-1`` -> ``so…-1``.
    """
    value = str(value or "")
    if not value:
        return ""
    if len(value) <= 6:
        return value[0] + "…"
    return value[:2] + "…" + value[-2:]


def peer_codes(cfg):
    """Configured peers and any peer we have sync state for (a removed peer still shows)."""
    known = {row.peer for row in PeerState.select(PeerState.peer)}
    return sorted(set(cfg.peers) | known)


def check_filters(cfg, peer=None, state=None):
    """PEER and STATE normalised, or InvalidField naming the bad one."""
    peer = (peer or "").strip().upper() or None
    state = (state or "").strip().lower() or None
    if peer is not None and peer not in peer_codes(cfg):
        raise errors.InvalidField(f"peer {peer!r} is not a peer of this node.", field="peer")
    if state is not None and state not in EVENT_STATES:
        raise errors.InvalidField(f"state must be one of {', '.join(EVENT_STATES)}.", field="state")
    return peer, state


def _count(peer, state):
    return (OutboxEvent.select(fn.COUNT(OutboxEvent.id))
            .where((OutboxEvent.destination == peer) & (OutboxEvent.state == state)).scalar())


def _oldest_queued(peer):
    """The first undelivered event to PEER: one index probe per queued state, never a scan."""
    firsts = []
    for state in QUEUED:
        row = (OutboxEvent.select(OutboxEvent.sequence, OutboxEvent.created_at)
               .where((OutboxEvent.destination == peer) & (OutboxEvent.state == state))
               .order_by(OutboxEvent.sequence).first())
        if row is not None:
            firsts.append(row)
    return min(firsts, key=lambda row: row.sequence) if firsts else None


def peer_summary(cfg, peer, now):
    """One peer's line: queued counts, oldest queued age, push and receive state."""
    counts = {state: _count(peer, state) for state in ("pending", "failed", "rejected")}
    oldest = _oldest_queued(peer)
    state = PeerState.get_or_none(peer=peer) or PeerState(peer=peer)
    config = cfg.peers.get(peer)
    return {
        "peer": peer, "name": config.name if config else peer, "configured": config is not None,
        "queued": counts["pending"] + counts["failed"], **counts,
        "oldest_queued_at": oldest.created_at if oldest else None,
        "oldest_queued_age_seconds": int((now - oldest.created_at).total_seconds()) if oldest else None,
        "last_success_at": state.last_success_at, "last_error": state.last_error or None,
        "last_error_at": state.last_error_at, "next_attempt_at": state.next_attempt_at,
        "failures": state.failures, "received_through": state.received_through,
    }


def peer_summaries(cfg, now, peer=None):
    return [peer_summary(cfg, code, now) for code in ([peer] if peer else peer_codes(cfg))]


def _event_subject(event):
    """What an event is about, without its payload: loan id, item barcode, masked patron."""
    try:
        data = json.loads(event.payload).get("data") or {}
    except (ValueError, AttributeError):
        return {"loan_id": None, "item": None, "patron": None}
    item = data.get("item") if isinstance(data.get("item"), dict) else {}
    patron = data.get("patron") if isinstance(data.get("patron"), dict) else None
    return {"loan_id": data.get("loan_id"), "item": item.get("barcode") or data.get("barcode"),
            "patron": f"{patron.get('institution')}:{mask_id(patron.get('id'))}" if patron else None}


def event_row(event):
    rejected = event.state == "rejected"
    return {"peer": event.destination, "sequence": event.sequence, "event_id": event.event_id,
            "type": event.type, "state": event.state, "attempts": event.attempts,
            "created_at": event.created_at, "delivered_at": event.delivered_at,
            "error": None if rejected else (event.last_error or None),
            "reason": (event.last_error or "rejected") if rejected else None,
            **_event_subject(event)}


def _peer_events(peer, state, count, oldest_first):
    query = OutboxEvent.select().where(OutboxEvent.destination == peer)
    if state:
        query = query.where(OutboxEvent.state == state)
    order = OutboxEvent.sequence if oldest_first else OutboxEvent.sequence.desc()
    return list(query.order_by(order).limit(count))


def list_events(cfg, peer=None, state=None, limit=50, offset=0, oldest_first=False):
    """Events newest first (or oldest first), one page; returns (rows, next_offset or None).

    Without a peer, each peer's page comes from its own index range and the
    pages are merged by creation time, so no query walks the whole table.
    """
    want = offset + limit + 1
    per_peer = [_peer_events(code, state, want, oldest_first)
                for code in ([peer] if peer else peer_codes(cfg))]
    key = (lambda e: (e.created_at, e.id)) if oldest_first else (lambda e: (-e.created_at.timestamp(), -e.id))
    merged = list(heapq.merge(*per_peer, key=key))[offset:offset + limit + 1]
    more = len(merged) > limit
    return [event_row(event) for event in merged[:limit]], (offset + limit if more else None)


def refused_from_peers(cfg, peer=None, limit=LIST_CAP):
    """Events peers sent us that we refused, newest first, with our reason (no payload)."""
    per_peer = [list(InboxRecord.select(InboxRecord.origin, InboxRecord.sequence, InboxRecord.event_id,
                                        InboxRecord.type, InboxRecord.received_at, InboxRecord.reason)
                     .where((InboxRecord.origin == code) & (InboxRecord.state == "rejected"))
                     .order_by(InboxRecord.received_at.desc()).limit(limit))
                for code in ([peer] if peer else peer_codes(cfg))]
    merged = heapq.merge(*per_peer, key=lambda r: -r.received_at.timestamp())
    return [{"origin": r.origin, "sequence": r.sequence, "event_id": r.event_id, "type": r.type,
             "received_at": r.received_at, "reason": r.reason or None}
            for r in list(merged)[:limit]]


def refused_by_peers(peer=None, limit=LIST_CAP):
    """Our requests that peers refused (sync/client.py ``record_refusal``), newest first: peer, time, what, cause.

    They live in the audit log (no schema change for them): ``target`` the
    peer, ``detail`` "what: cause", never a patron.  The audit log has no
    index on ``action``, so only its REFUSAL_WINDOW newest rows are searched,
    a range of its primary key, however long it grows.
    """
    rows = []
    for row in refusals_query(AuditLog.select(fn.MAX(AuditLog.id)).scalar() or 0, peer, limit):
        what, _, cause = row.detail.partition(": ")
        rows.append({"peer": row.target, "at": row.at, "what": what, "cause": cause or None})
    return rows


def refusals_query(newest, peer=None, limit=LIST_CAP):
    """The refusals among the REFUSAL_WINDOW audit rows up to id NEWEST (of PEER), newest first."""
    query = (AuditLog.select(AuditLog.at, AuditLog.target, AuditLog.detail)
             .where((AuditLog.id > newest - REFUSAL_WINDOW) & (AuditLog.action == REFUSAL_ACTION))
             .order_by(AuditLog.id.desc()).limit(limit))
    return query.where(AuditLog.target == peer) if peer else query


def attention_loans(peer=None, limit=LIST_CAP):
    """Loans made offline and not yet confirmed, or disputed by the home node; newest first."""
    query = (Loan.select(Loan, Item, Patron).join(Item).switch(Loan).join(Patron, JOIN.LEFT_OUTER)
             # The same OR as the partial index loan_needs_attention, so SQLite can use it.
             .where((Loan.provisional == True) | (Loan.disputed == True))  # noqa: E712
             .order_by(Loan.checked_out_at.desc()).limit(limit))
    if peer:
        # "|| ''" keeps SQLite from driving the query by the patron index, which
        # would walk every loan the peer's patrons ever had.
        query = query.where(Patron.institution.concat("") == peer)
    return [loan_row(loan) for loan in query]


def loan_row(loan):
    patron = loan.patron if loan.patron_id else None
    return {"id": loan.id, "status": loan.status, "lender": loan.lender, "item": loan.item.barcode,
            "patron": f"{patron.institution}:{mask_id(patron.home_id)}" if patron else None,
            "checked_out_at": loan.checked_out_at, "due_at": loan.due_at,
            "made_offline": loan.made_offline, "provisional": loan.provisional,
            "disputed": loan.disputed, "dispute_reason": loan.dispute_reason or None}


def queue_view(cfg, now, peer=None, state=None, limit=50, offset=0, oldest_first=False):
    """Everything the queue page, API and CLI show, filtered by PEER and event STATE."""
    peer, state = check_filters(cfg, peer, state)
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise errors.InvalidField(f"limit is 1 to {MAX_LIMIT}, offset 0 or more.", field="limit")
    events, next_offset = list_events(cfg, peer, state, limit, offset, oldest_first)
    return {"institution": cfg.institution, "generated_at": now, "peer": peer, "state": state,
            "peers": peer_summaries(cfg, now, peer), "events": events, "limit": limit, "offset": offset,
            "order": "oldest" if oldest_first else "newest", "next_offset": next_offset, "refused_from_peers": refused_from_peers(cfg, peer),
            "refused_by_peers": refused_by_peers(peer), "loans": attention_loans(peer)}


def jsonable(value, tz):
    """VALUE with every datetime in the library's zone as ISO text (for JSON)."""
    if isinstance(value, datetime.datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item, tz) for key, item in value.items()}
    if isinstance(value, list):
        return [jsonable(item, tz) for item in value]
    return value


def retry_peer(cfg, peer, now_fn):
    """Forget PEER's back-off and push its queued events now; return (PushResult, queued left)."""
    peer = (peer or "").strip().upper() if isinstance(peer, str) else ""
    if peer not in cfg.peers:
        raise errors.UnknownInstitution(f"{peer or '(none)'} is not a configured peer.", field="peer")
    with database.atomic():
        PeerState.update(next_attempt_at=None).where(PeerState.peer == peer).execute()
    result = push_peer(cfg, peer, now_fn)
    return result, pending_count(peer)


# Dispute resolution is a domain action (node/domain/disputes.py); the queue page, API and CLI call it here.
resolve_dispute = disputes.resolve_dispute


def render_text(view, tz):
    """The queue view as the plain-text tables ``circnode queue`` prints."""
    def local(value):
        return value.astimezone(tz).strftime("%Y-%m-%d %H:%M") if value else "-"

    def age(seconds):
        if seconds is None:
            return "-"
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h" if seconds >= 86400 else (
            f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s")

    lines = [f"{'peer':8} {'queued':>6} {'failed':>6} {'rejected':>8} {'oldest':>8}  {'last success':16}  "
             f"{'next attempt':16}  {'failures':>8} {'received':>8}  last error"]
    for p in view["peers"]:
        lines.append(f"{p['peer']:8} {p['queued']:>6} {p['failed']:>6} {p['rejected']:>8} "
                     f"{age(p['oldest_queued_age_seconds']):>8}  {local(p['last_success_at']):16}  "
                     f"{local(p['next_attempt_at']):16}  {p['failures']:>8} {p['received_through']:>8}  "
                     f"{p['last_error'] or '-'}")
    lines += ["", f"events{' to ' + view['peer'] if view['peer'] else ''}"
                  f"{' (' + view['state'] + ')' if view['state'] else ''}, {view['order']} first:",
              f"{'peer':8} {'seq':>6}  {'type':14} {'state':9} {'tries':>5}  {'created':16}  "
              f"{'loan':36}  error or reason"]
    for e in view["events"]:
        lines.append(f"{e['peer']:8} {e['sequence']:>6}  {e['type']:14} {e['state']:9} {e['attempts']:>5}  "
                     f"{local(e['created_at']):16}  {e['loan_id'] or '-':36}  {e['reason'] or e['error'] or ''}")
    more = f" (more: --offset {view['next_offset']})" if view["next_offset"] else ""
    lines.append(f"{len(view['events'])} events{more}")
    lines += ["", "refused from peers:"]
    lines += [f"  {r['origin']} #{r['sequence']} {r['type']} at {local(r['received_at'])}: {r['reason'] or '-'}"
              for r in view["refused_from_peers"]] or ["  none"]
    lines += ["", "refused by peers (requests of this node they refused: keys, clocks or settings to fix):"]
    lines += [f"  {r['peer']} at {local(r['at'])}: {r['what']}: {r['cause'] or '-'}"
              for r in view["refused_by_peers"]] or ["  none"]
    lines += ["", "loans to watch (made offline, provisional or disputed):"]
    for loan in view["loans"]:
        flags = " ".join(flag for flag in ("made_offline", "provisional", "disputed") if loan[flag])
        reason = f" ({loan['dispute_reason']})" if loan["dispute_reason"] else ""
        lines.append(f"  {loan['id']}  {loan['item']:14} {loan['patron'] or '-':20} {loan['status']:6} "
                     f"{flags}{reason}")
    if not view["loans"]:
        lines.append("  none")
    return lines
