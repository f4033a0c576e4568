"""Signed requests to peer nodes, and verification of their signed answers.

Anything short of a verified, well-formed answer (refused connection,
timeout, reset, truncated or unsigned body, 5xx) is ``PeerUnreachable``: the
caller keeps its events queued or lends provisionally.
"""
import functools
import logging
import secrets
import threading

import requests

from node import errors
from node.clock import utcnow
from node.keys import private_key
from sync import wire
from sync.signing import SignatureError, decode_public_key, sign_request, verify_response

log = logging.getLogger(__name__)
_local = threading.local()


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
    """Send a signed request to PEER_CODE; return (status, body) of its verified answer."""
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
    try:
        verify_response(response.status_code, response.headers, content, expected_key_id=peer_code,
                        public_key=decode_public_key(peer.public_key), request_nonce=nonce,
                        now=utcnow(), max_skew=cfg.sync["clock_skew_seconds"])
    except SignatureError as exc:
        raise errors.PeerUnreachable(
            f"{peer_code} answered {response.status_code} without a valid signature ({exc.reason})") from None
    try:
        answer = wire.loads(content)
    except ValueError:
        raise errors.PeerUnreachable(f"{peer_code} answered with a body that is not JSON") from None
    if response.status_code >= 500:
        message = (answer.get("error") or {}).get("message", "") if isinstance(answer, dict) else ""
        raise errors.PeerUnreachable(f"{peer_code} answered {response.status_code}: {message}")
    return response.status_code, answer


def ask_standing(cfg, peer_code, home_id, now):
    """The home node's standing answer for one of its patrons (short timeout)."""
    from urllib.parse import quote
    status, answer = peer_request(cfg, peer_code, "GET", f"/api/v1/patrons/{quote(home_id, safe='')}/standing",
                                  timeout=cfg.sync["standing_timeout_seconds"], now=now)
    if status != 200 or not isinstance(answer, dict) or "ok" not in answer:
        raise errors.PeerUnreachable(f"{peer_code} gave no standing answer (HTTP {status})")
    return answer
