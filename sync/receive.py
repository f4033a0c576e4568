"""The peer API: endpoints only other nodes call, each request signed (RFC 9421).

A request that fails verification gets 401 and changes nothing; every answer
to a verified request is signed and bound to the request's nonce, so the
sender can trust an acknowledgement.
"""
import datetime
import functools
import logging

from flask import Blueprint, current_app, g, request
from peewee import IntegrityError
from werkzeug.routing import PathConverter

from node.domain import errors
from node.clock import utcnow
from node.store.db import database
from node.keys import private_key
from node.logs import patron_hash, route
from node.store.models import PeerNonce
from sync import inbox, lookups, wire
from sync.signing import SignatureError, decode_public_key, request_target, sign_response, target_uri, verify_request

log = logging.getLogger(__name__)
bp = Blueprint("peer", __name__)


def init_app(app):
    """Register the peer endpoints; CSRF-exempt, peers sign each request instead."""
    app.register_blueprint(bp)
    app.extensions["csrf"].exempt(bp)


def get_config():
    """The node's Config, which create_app keeps on the Flask app."""
    return current_app.extensions["circnode"]


class PatronIdConverter(PathConverter):
    """Any patron id in a path, slashes included, even leading or doubled ones (sent as %2F)."""

    regex = r".+?"
    part_isolating = False  # Werkzeug would infer True: the pattern names no "/"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("patron_id", PatronIdConverter))
MAX_EVENTS_PER_BATCH = 5000
# A batch of [sync] batch_size events (at most 1,000) may be larger than the
# 2 MB other requests get: refused, it would be refused on every resend.
MAX_BATCH_BYTES = 8 * 1024 * 1024


@bp.before_request
def _batch_body_limit():
    if request.endpoint == "peer.events":
        request.max_content_length = MAX_BATCH_BYTES


def _nonce_is_fresh(key_id, nonce, created):
    """Record NONCE; False when this peer used it before (a replay)."""
    try:
        with database.atomic():
            _record_nonce((key_id, nonce, created))
    except IntegrityError:
        return False
    g.peer_nonce = nonce  # the answer is signed, bound to it (called only once the signature verified)
    return True


_NONCE_SEEN = "SELECT 1 FROM peer_nonce WHERE key_id = ? AND nonce = ?"


def _nonce_not_seen(key_id, nonce, created):
    """False when this peer used NONCE before; else it is recorded later, with the batch (``events``)."""
    if database.execute_sql(_NONCE_SEEN, (key_id, nonce)).fetchone():
        return False
    g.unrecorded_nonce = (key_id, nonce, created)
    return True


def _record_nonce(nonce):
    """Record NONCE (key_id, nonce, created) in the caller's transaction; IntegrityError if used before."""
    key_id, value, created = nonce
    PeerNonce.add(key_id=key_id, nonce=value, created=datetime.datetime.fromtimestamp(created, datetime.timezone.utc))


def purge_nonces(cfg, now):
    """Forget nonces older than twice the skew window (they would be refused as stale anyway)."""
    horizon = now - datetime.timedelta(seconds=2 * cfg.sync["clock_skew_seconds"])
    with database.atomic():
        return PeerNonce.delete().where(PeerNonce.created < horizon).execute()


def _resolve_key(cfg):
    def resolve(key_id):
        peer = cfg.peers.get(key_id)
        if peer is None or not peer.public_key:
            return None
        return decode_public_key(peer.public_key)
    return resolve


def signed_by_peer(view, check_nonce=_nonce_is_fresh):
    """Verify the request's signature; the view sees the peer's code as ``g.peer``."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        cfg = get_config()
        url = target_uri(cfg.node["base_url"], request_target(request.environ))  # as signed: %2F is not /
        try:
            g.peer = verify_request(request.method, url, request.headers, request.get_data(cache=True),
                                    resolve_key=_resolve_key(cfg), check_nonce=check_nonce,
                                    now=utcnow(), max_skew=cfg.sync["clock_skew_seconds"])
        except SignatureError as exc:
            # The rule, not the path (it may hold a patron id); the patron as a keyed hash (node/logs.py).
            patron = f" (patron {patron_hash(cfg, kwargs['home_id'])})" if "home_id" in kwargs else ""
            log.warning("refused peer request to %s%s: %s", route(request), patron, exc.reason)
            raise errors.BadSignature(f"Signature refused: {exc.reason}", reason=exc.reason) from None
        return view(*args, **kwargs)
    return wrapped


@bp.after_request
def _sign_answer(response):
    """Sign every answer to a verified peer request, bound to that request's nonce."""
    nonce = g.get("peer_nonce")
    if nonce:
        cfg = get_config()
        body = response.get_data()
        response.headers.update(sign_response(response.status_code, body, cfg.institution,
                                              private_key(cfg), request_nonce=nonce, now=utcnow()))
    return response


def _answer(body):
    """BODY as this API's JSON answer (sync/wire.py: a batch's answer is written in compiled code)."""
    return current_app.response_class(wire.dumps(body), mimetype="application/json")


def _event_list(body):
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list) or not events or len(events) > MAX_EVENTS_PER_BATCH:
        raise errors.BadRequest(f"'events' must be a list of 1 to {MAX_EVENTS_PER_BATCH} events.")
    for event in events:
        if not (isinstance(event, dict) and isinstance(event.get("sequence"), int)
                and isinstance(event.get("event_id"), str) and isinstance(event.get("type"), str)
                and isinstance(event.get("data"), dict) and event.get("origin") == g.peer):
            raise errors.BadRequest("Each event needs event_id, type, sequence, origin (the signer) and data.")
    return events


@bp.post("/api/v1/sync/events")
@functools.partial(signed_by_peer, check_nonce=_nonce_not_seen)
def events():
    """Receive a batch of events from the signing peer; answer what was applied.

    The request's nonce is recorded in the transaction of the batch's first
    chunk: one durable commit less per batch (docs/benchmarks.md).  A request
    refused or failed before that chunk committed records it on its own, so
    it is used up all the same.
    """
    cfg = get_config()
    nonce = g.pop("unrecorded_nonce")

    def record_nonce():  # inside the first chunk's transaction
        try:
            _record_nonce(nonce)
        except IntegrityError:  # a copy of this request got there first
            raise errors.BadSignature("Signature refused: replayed_nonce", reason="replayed_nonce") from None
        g.peer_nonce = nonce[1]
    try:
        try:
            body = wire.loads(request.get_data(cache=True))
        except ValueError:
            raise errors.BadRequest("The body is not JSON.") from None
        answer = inbox.receive_batch(cfg, g.peer, _event_list(body), utcnow(), first=record_nonce)
    except BaseException:
        # Refused, or the first chunk rolled back with the nonce in it.  (A copy of
        # this request waiting for the write lock may record it first and be
        # applied: the batch then takes effect once, through the copy.)
        if not database.execute_sql(_NONCE_SEEN, nonce[:2]).fetchone():
            _nonce_is_fresh(*nonce)
        raise
    return _answer(answer)


# A refusal tells the lender the code and this sentence, never the home's own
# reason (a block's note written by our staff, a fee balance): docs/protocol.md section 5.
PEER_REASONS = {
    "patron_unknown": "Not a registered patron of the home library.",
    "patron_blocked": "Blocked at the home library; the patron should contact it.",
    "patron_expired": "The registration at the home library has expired.",
    "patron_limit_reached": "The patron holds as many loans in the network as the home library allows.",
}


def standing_answer(cfg, home_id, now):
    """What a lender is told about our patron HOME_ID: ok with name and email, or a refusal code."""
    from node.domain.standing import network_standing
    standing = network_standing(cfg, home_id, now)
    if not standing.ok:
        code = standing.code
        return {"ok": False, "code": code, "reason": PEER_REASONS.get(code, PEER_REASONS["patron_blocked"])}
    # The desk shows the name; the lender's notices (due, overdue, fees) go to the email.
    return {"ok": True, "code": None, "reason": None, "name": standing.name, "email": standing.email}


@bp.get("/api/v1/patrons/<patron_id:home_id>/standing", merge_slashes=False)
@functools.partial(signed_by_peer, check_nonce=_nonce_not_seen)
def standing(home_id):
    """Tell a lender whether our patron may borrow: ok, or a stable refusal code.

    The question is recorded (sync/lookups.py) in the transaction that
    records the request's nonce, so it costs no commit of its own; past
    ``[sync] standing_per_minute`` the peer is answered 429 and only the
    nonce is recorded.
    """
    cfg = get_config()
    now = utcnow()
    nonce = g.pop("unrecorded_nonce")
    try:
        body = standing_answer(cfg, home_id, now)  # read before the write lock is taken
        with database.atomic():
            _record_nonce(nonce)
            wait = lookups.admit(cfg, g.peer, home_id, body["code"] or "ok", now)
    except IntegrityError:  # a copy of this request got there first
        raise errors.BadSignature("Signature refused: replayed_nonce", reason="replayed_nonce") from None
    except BaseException:
        if not database.execute_sql(_NONCE_SEEN, nonce[:2]).fetchone():
            _nonce_is_fresh(*nonce)  # a failed request uses its nonce up all the same
        raise
    g.peer_nonce = nonce[1]  # the answer, refusal or not, is signed and bound to it
    if wait:
        log.warning("standing asked by %s: rate limited (more than %d a minute)", g.peer,
                    cfg.sync["standing_per_minute"])
        refusal = errors.RateLimited(f"More than {cfg.sync['standing_per_minute']} standing questions a minute; "
                                     f"retry in {wait} s.", retry_after=wait)
        response = _answer(refusal.to_dict())
        response.status_code = refusal.status
        response.headers["Retry-After"] = str(wait)
        return response
    log.info("standing asked by %s: %s", g.peer, body["code"] or "ok")
    return _answer(body)


@bp.post("/api/v1/peer/loans/<loan_id>/renew")
@signed_by_peer
def renew_for_home(loan_id):
    """Renew a loan of ours because its patron asked at their home node (docs/billing.md)."""
    from node.domain.circulation import get_loan, renew
    from node.domain.lifecycle import PEER
    cfg = get_config()
    loan = get_loan(loan_id)
    # A home node may only renew its own patrons' loans: anything else looks like no such loan.
    if loan.lender != cfg.institution or loan.patron_id is None or loan.patron.institution != g.peer:
        raise errors.LoanNotFound(f"No loan {loan_id!r} of a patron of {g.peer}.")
    renewed = renew(cfg, loan_id, utcnow(), staff=f"home:{g.peer}", actor=PEER)
    log.info("renewal asked by %s: renewed", g.peer)
    return _answer({"loan_id": renewed.id, "due_at": renewed.due_at.isoformat(), "renewals": renewed.renewals})
