"""Signed requests to peer nodes, and verification of their signed answers.

No answer (refused connection, timeout, reset, truncated body) or a 5xx is
``PeerUnreachable``: the caller keeps its events queued or lends
provisionally.  An answer is never "offline": a 4xx the peer did not sign
(its 401 to a request it could not verify) or any answer that fails our
signature check is ``PeerRefused``, and so is a verified answer that
refuses a standing check or a batch.  Their causes are recorded for the
admin queue (``record_refusal``).
"""
import functools
import logging
import re
import secrets
import threading
from urllib.parse import quote

import requests

from node.domain import errors
from node.clock import utcnow
from node.keys import private_key
from sync import wire
from sync.signing import SignatureError, decode_public_key, sign_request, verify_response

log = logging.getLogger(__name__)
_local = threading.local()
REFUSAL_ACTION = "peer_refused"  # AuditLog.action of a refusal (sync/queue.py shows them)
_CODE = re.compile(r"[a-z0-9_]{1,40}")  # what of a peer's error answer is repeated: its codes, never its text


def _session():
    # One pooled HTTP session per thread: keep-alive to peers, no shared state across threads.
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        # requests reads proxies, CA bundle and ~/.netrc from the environment on every
        # request (0.3 ms, a tenth of a standing check): read once per peer instead.
        _local.session.trust_env = False
    return _local.session


@functools.lru_cache(maxsize=None)
def _environment_settings(base_url):
    """Proxy and CA settings from the environment for BASE_URL, as requests would apply them."""
    settings = requests.Session().merge_environment_settings(base_url, {}, None, None, None)
    return {"proxies": settings["proxies"], "verify": settings["verify"], "cert": settings["cert"]}


def peer_request(cfg, peer_code, method, path, payload=None, timeout=None, now=None):
    """Send a signed request to PEER_CODE; return (status, body) of its verified answer below 500.

    A verified 4xx is returned for the caller to judge.  Raises PeerRefused
    when an answer below 500 fails our signature check, PeerUnreachable when
    there is no whole answer or it is a 5xx.
    """
    peer = cfg.peers.get(peer_code)
    if peer is None:
        raise errors.UnknownInstitution(f"{peer_code!r} is not a configured peer.")
    if not peer.public_key:
        raise errors.PeerUnreachable(f"[peer:{peer_code}] has no public_key; cannot verify its answers.")
    url = peer.base_url + path
    body = b"" if payload is None else wire.dumps(payload)
    nonce = secrets.token_urlsafe(16)
    headers = sign_request(method, url, body, cfg.institution, private_key(cfg), now=utcnow(), nonce=nonce)
    if payload is not None:
        headers["Content-Type"] = "application/json"
    timeout = timeout or cfg.sync["timeout_seconds"]
    try:
        response = _session().request(method, url, data=body, headers=headers, timeout=timeout,
                                      **_environment_settings(peer.base_url))
        content = response.content
    except requests.RequestException as exc:
        raise errors.PeerUnreachable(f"{peer_code} unreachable: {exc.__class__.__name__}") from None
    status = response.status_code
    if status >= 500:  # the peer is there but cannot answer now: like no answer, try again later
        raise errors.PeerUnreachable(f"{peer_code} answered {status} {error_code(_json_or_none(content))}".rstrip())
    try:
        verify_response(status, response.headers, content, expected_key_id=peer_code,
                        public_key=decode_public_key(peer.public_key), request_nonce=nonce,
                        now=utcnow(), max_skew=cfg.sync["clock_skew_seconds"])
    except SignatureError as exc:
        if status >= 400:  # e.g. its 401 bad_signature, unsigned by design
            raise refusal(peer_code, status, f"HTTP {status} {error_code(_json_or_none(content)) or 'unsigned'}") from None
        raise refusal(peer_code, status, f"its answer failed our signature check ({exc.reason})") from None
    try:
        answer = wire.loads(content)
    except ValueError:
        raise errors.PeerUnreachable(f"{peer_code} answered with a body that is not JSON") from None
    return status, answer


def refusal(peer_code, status, cause):
    """The PeerRefused for PEER_CODE's answer STATUS; CAUSE names codes only, never a patron."""
    return errors.PeerRefused(f"{peer_code} refused the request: {cause}", peer=peer_code, status=status,
                              cause=cause)


def error_code(answer):
    """``code (reason)`` of a peer's error answer when they are plain codes; else ""."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str) or not _CODE.fullmatch(error["code"]):
        return ""
    reason = error.get("details", {}).get("reason") if isinstance(error.get("details"), dict) else None
    if isinstance(reason, str) and _CODE.fullmatch(reason) and reason != error["code"]:
        return f"{error['code']} ({reason})"
    return error["code"]


def _json_or_none(content):
    try:
        return wire.loads(content)
    except ValueError:
        return None


def record_refusal(exc, what, now):
    """Keep PeerRefused EXC for the admin queue: which peer, when, WHAT it refused and why (never whom)."""
    from node.domain.circulation import audit
    from node.store.db import database
    with database.atomic():
        audit("system", REFUSAL_ACTION, exc.details["peer"], f"{what}: {exc.details['cause']}"[:500], now)


def standing_path(home_id):
    """The standing endpoint's path for HOME_ID: every byte outside A-Z a-z 0-9 - . _ ~ percent-encoded.

    ``/`` ``?`` ``#`` ``%`` ``+`` ``'`` and the rest are all encoded (``a/b`` is
    ``a%2Fb``), so the id is one path segment; the receiver checks the
    signature over the target as sent (sync/signing.py ``request_target``).
    The ids ``.`` and ``..`` are sent as ``%2E``: as they are, ``requests``
    would drop them from the path as dot segments.
    """
    segment = quote(home_id, safe="")
    if segment in (".", ".."):
        segment = "%2E" * len(segment)
    return f"/api/v1/patrons/{segment}/standing"


def ask_standing(cfg, peer_code, home_id, now):
    """The home node's standing answer for one of its patrons (short timeout); PeerRefused if it will not say."""
    status, answer = peer_request(cfg, peer_code, "GET", standing_path(home_id),
                                  timeout=cfg.sync["standing_timeout_seconds"], now=now)
    if status != 200:
        raise refusal(peer_code, status, f"HTTP {status} {error_code(answer) or 'no code'}")
    if not isinstance(answer, dict) or "ok" not in answer:
        raise refusal(peer_code, status, "HTTP 200 without a standing answer")
    return answer


def ask_renewal(cfg, lender, loan_id, home_id, now, timeout=None):
    """LENDER's answer to renewing its LOAN_ID of our patron HOME_ID (signed); its refusal raised with its code."""
    status, answer = peer_request(cfg, lender, "POST", f"/api/v1/peer/loans/{quote(loan_id, safe='')}/renew",
                                  {"patron": {"institution": cfg.institution, "id": home_id}},
                                  timeout=timeout or cfg.sync["standing_timeout_seconds"], now=now)
    if status != 200:
        error = (answer.get("error") or {}) if isinstance(answer, dict) else {}
        refusal = errors.by_code(error.get("code"), errors.RenewalRefused)
        raise refusal(error.get("message") or f"{cfg.library_name(lender)} refused the renewal.")
    if not isinstance(answer, dict) or not isinstance(answer.get("due_at"), str):
        raise errors.PeerRefused(f"{cfg.library_name(lender)} answered the renewal without a due date.")
    return answer
