"""Node-to-node HTTP Message Signatures (RFC 9421, Ed25519) for circnode.

Requests carry ``Content-Digest`` (RFC 9530, sha-256) and one signature
labelled ``sig1`` covering ``"@method" "@target-uri" "content-digest"``
with parameters ``created``, ``keyid`` (the sender's institution code),
``alg="ed25519"`` and a random ``nonce``.  Acknowledgements (responses) cover
``"@status" "content-digest"`` and repeat the *request's* nonce as their own
``nonce`` parameter, which binds each ack to the one request it answers.
See docs/protocol-signatures.md for the wire format.

The signature base is built and checked by the ``http_message_signatures``
library, except for this protocol's own plain shapes, whose base is written
here (see "the fast path" below); this module adds the protocol policy
around it (required coverage, injectable clock and skew window, digest
check, nonce replay check, stable error reasons).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote, urlsplit, urlunsplit

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import HTTPMessageSignaturesException, HTTPMessageSigner, HTTPMessageVerifier
from http_message_signatures import MappingKeyResolver, algorithms
from requests.utils import requote_uri

from node.keys import KEY_PREFIX, decode_public_key, encode_public_key  # noqa: F401  (the protocol's key text)

LABEL = "sig1"
ALG = "ed25519"
DEFAULT_MAX_SKEW = 300
REQUEST_COMPONENTS = ("@method", "@target-uri", "content-digest")
RESPONSE_COMPONENTS = ("@status", "content-digest")
_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


class SignatureError(Exception):
    """A message failed verification; ``reason`` is a short stable code.

    Reasons: missing_signature, malformed, bad_algorithm, missing_component,
    missing_nonce, expired, future, unknown_key, digest_mismatch,
    bad_signature, replayed_nonce, nonce_mismatch.  Never carries key material.
    """

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


# --- keys -------------------------------------------------------------------

# encode_public_key and decode_public_key: node/keys.py, which the domain's passes use too


# --- URLs and digests -------------------------------------------------------

def _normalize_url(url: str) -> str:
    # Same quoting as `requests` applies on send; lowercase scheme/host (urllib3
    # does too); empty path -> "/"; empty "?" and fragment dropped.
    parts = urlsplit(requote_uri(url.strip()))
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


def target_uri(base_url: str, full_path: str) -> str:
    """Join the node's public base URL and a request path+query into the signed @target-uri.

    ``full_path`` is the raw request target (``request_target(environ)``; a
    trailing ``?`` for an empty query is dropped); exactly one slash joins
    the two parts.
    """
    return _normalize_url(base_url.strip().rstrip("/") + "/" + full_path.lstrip("/"))


def request_target(environ: Mapping[str, object]) -> str:
    """The path and query of a WSGI request as its sender wrote them, for ``target_uri``.

    The signed ``@target-uri`` carries the sender's percent-encoding (a patron
    id ``a/b`` travels as ``a%2Fb``), but ``PATH_INFO`` is already decoded, so
    re-encoding it cannot tell ``%2F`` from ``/`` or ``%27`` from ``'``.  The
    raw request target comes from ``RAW_URI`` (Werkzeug, gunicorn) or
    ``REQUEST_URI`` (waitress, Werkzeug, uWSGI, mod_wsgi); an absolute-form
    target keeps only its path and query, and the part ``SCRIPT_NAME`` takes
    is dropped (the configured base URL holds it).  A server that passes
    neither gets the decoded path, re-encoded: ids with reserved characters
    then fail to verify there.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not isinstance(raw, str) or not raw:
        query = _wsgi_text(environ.get("QUERY_STRING") or "")
        return _wsgi_text(environ.get("PATH_INFO") or "/") + ("?" + query if query else "")
    if "://" in raw.split("?", 1)[0]:  # absolute-form (RFC 9112 section 3.2.2)
        parts = urlsplit(raw)
        raw = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    script = _wsgi_text(environ.get("SCRIPT_NAME") or "").rstrip("/")
    if script:
        segments = raw.split("/")
        depth = script.count("/") + 1
        if unquote("/".join(segments[:depth])) == script:
            raw = "/" + "/".join(segments[depth:])
    return _wsgi_text(raw)


def _wsgi_text(value: str) -> str:
    # WSGI passes the request line's bytes as latin-1 text; senders write UTF-8.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def content_digest(body: bytes) -> str:
    """Return the RFC 9530 ``Content-Digest`` value ``sha-256=:<base64>:`` for body."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def _digest_matches(value: str | None, body: bytes) -> bool:
    if not value:
        return False
    try:
        members = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        return False
    if "sha-256" not in members:  # our mandatory algorithm; others optional
        return False
    for alg, (digest, _params) in members.items():
        if alg in _DIGESTS:
            if not isinstance(digest, bytes) or not hmac.compare_digest(digest, _DIGESTS[alg](body).digest()):
                return False
    return True


# --- message views for the library ------------------------------------------

class _Fields:
    """Read-only header view keeping every field line (what the library reads)."""

    def __init__(self, headers: Mapping[str, str]):
        self._items = [(str(k), str(v)) for k, v in headers.items()]

    def items(self):
        return list(self._items)

    def get(self, name: str) -> str | None:
        values = [v for k, v in self._items if k.lower() == name]
        return ", ".join(values) if values else None


@dataclass
class _Request:
    method: str
    url: str
    headers: object


@dataclass
class _Response:
    status_code: int
    headers: object
    request: object = None


class _Verifier(HTTPMessageVerifier):
    # The library checks created/expires against the real wall clock with a
    # fixed 5 s skew; the protocol needs an injectable `now` and a 300 s
    # window, so _check_params does that and this hook is disabled.
    def validate_created_and_expires(self, sig_input, max_age=None):
        return None


def _utc(now: datetime) -> datetime:
    if now is None:  # the clock is read at the edge (node/clock.py), never here
        raise TypeError("now is required: pass the time the caller read at its edge")
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)  # naive = UTC


def _new_nonce() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits


# --- the fast path for this protocol's own shapes ----------------------------
# Four signatures are made or checked per standing check, two per sync batch.
# The library re-serialises and re-parses structured fields several times per
# message: 0.3-0.4 ms each, against 0.07 ms for Ed25519 itself
# (docs/benchmarks.md).  For the shapes this protocol sends (plain URLs, our
# header values, token-like keyid and nonce) the signature base is written
# here; tests/sync/test_signing.py checks it byte for byte against the library's.
# Anything else, including every peer message outside these shapes, still goes
# through the library.

_FAST_COMPONENTS = frozenset(("@method", "@target-uri", "@status", "content-digest", "content-type"))
_FAST_PARAMS = ("created", "keyid", "alg", "expires", "nonce")
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{1,200}")
# Unreserved characters only: no percent-encoding, dot segments or default port for the library to normalise.
_PLAIN_URL = re.compile(r"(https?)://[a-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?(\?[A-Za-z0-9._~=&-]*)?")
_FIELD_VALUE = re.compile(r"[!-~]([ -~]*[!-~])?")


def _fast_url(url):
    match = _PLAIN_URL.fullmatch(url)
    if not match or "/." in url or "?" in url and url.endswith("?"):
        return False
    scheme, port = match.group(1), match.group(2)
    return port not in (":80" if scheme == "http" else ":443", ":")


def _fast_base(message, components, params):
    """The signature base of MESSAGE, or None when the library must build it."""
    lines = []
    for name in components:
        if name == "@method":
            value = getattr(message, "method", None)
            if value not in ("GET", "POST", "PUT", "DELETE"):
                return None
        elif name == "@target-uri":
            value = getattr(message, "url", None)
            if not isinstance(value, str) or not _fast_url(value):
                return None
        elif name == "@status":
            value = getattr(message, "status_code", None)
            if type(value) is not int:
                return None
            value = str(value)
        else:
            value = _header(message.headers, name)
            if not isinstance(value, str) or not _FIELD_VALUE.fullmatch(value):
                return None
        lines.append(f'"{name}": {value}')
    text = _params_text(components, params)
    if text is None:
        return None
    lines.append(f'"@signature-params": {text}')
    return "\n".join(lines).encode("ascii"), text


def _header(headers, name):
    values = [v for k, v in headers.items() if k.lower() == name]
    return values[0] if len(values) == 1 else None


def _params_text(components, params):
    if len(set(components)) != len(components) or not set(components) <= _FAST_COMPONENTS:
        return None
    parts = ["(" + " ".join(f'"{name}"' for name in components) + ")"]
    for key, value in params.items():
        if key not in _FAST_PARAMS:
            return None
        if key in ("created", "expires"):
            if type(value) is not int or not 0 <= value < 10**15:
                return None
            parts.append(f"{key}={value}")
        elif isinstance(value, str) and _TOKEN.fullmatch(value):
            parts.append(f'{key}="{value}"')
        else:
            return None
    return ";".join(parts)


def _fast_sign(message, key_id, private_key, covered, created, nonce, expires):
    params = {"created": int(created.timestamp()), "keyid": key_id, "alg": ALG}
    if expires:
        params["expires"] = int(expires.timestamp())
    params["nonce"] = nonce
    built = _fast_base(message, list(covered), params)
    if built is None or not isinstance(private_key, Ed25519PrivateKey):
        return None
    base, text = built
    signature = base64.b64encode(private_key.sign(base)).decode("ascii")
    return dict(message.headers, **{"Signature-Input": f"{LABEL}={text}", "Signature": f"{LABEL}=:{signature}:"})


def _sign(message, key_id, private_key, covered, now, nonce, expires_in) -> dict[str, str]:
    if not isinstance(nonce, str) or not nonce:
        raise ValueError("nonce must be a non-empty string")
    created = _utc(now)
    expires = created + timedelta(seconds=expires_in) if expires_in else None
    fast = _fast_sign(message, key_id, private_key, covered, created, nonce, expires)
    if fast is not None:
        return fast
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: private_key}),
    )
    try:
        signer.sign(
            message, key_id=key_id, created=created, nonce=nonce, label=LABEL,
            expires=expires, covered_component_ids=covered, use_existing_digest=True,
        )
    except HTTPMessageSignaturesException as e:
        raise ValueError(f"cannot sign message: {e}") from None
    return dict(message.headers)


def _reject_duplicate(name, context):
    raise ValueError(f"duplicate {context} key {name!r}")


def _check_params(fields: _Fields, required, now, max_skew) -> dict:
    """Parse our one signature and enforce protocol policy that needs no key."""
    sig_input, sig = fields.get("signature-input"), fields.get("signature")
    if not sig_input or not sig:
        raise SignatureError("missing_signature", "Signature and Signature-Input are required")
    try:
        inputs = http_sf.parse(sig_input.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate)
        sigs = http_sf.parse(sig.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate)
    except (ValueError, TypeError, UnicodeEncodeError):
        raise SignatureError("malformed", "signature fields are not valid structured fields") from None
    if list(inputs) != [LABEL] or list(sigs) != [LABEL]:
        raise SignatureError("malformed", f"expected exactly one signature labelled {LABEL}")
    components, params = inputs[LABEL]
    if not isinstance(components, list) or not isinstance(sigs[LABEL][0], bytes):
        raise SignatureError("malformed", "signature input must be an inner list, signature a byte sequence")
    covered = {name for name, item_params in components if type(name) is str and not item_params}
    plain = len(covered) == len(components) and not inputs[LABEL][1].get("tag")
    missing = [c for c in required if c not in covered]
    if missing:
        raise SignatureError("missing_component", "not covered: " + " ".join(missing))
    if params.get("alg") != ALG:
        raise SignatureError("bad_algorithm", f'alg must be "{ALG}"')
    keyid, created, expires = params.get("keyid"), params.get("created"), params.get("expires")
    if type(keyid) is not str or not keyid or type(created) is not int:
        raise SignatureError("malformed", "keyid (string) and created (integer) are required")
    if expires is not None and type(expires) is not int:
        raise SignatureError("malformed", "expires must be an integer")
    if type(params.get("nonce")) is not str or not params["nonce"]:
        raise SignatureError("missing_nonce", "nonce parameter is required")
    now_ts = int(_utc(now).timestamp())
    if created < now_ts - max_skew or (expires is not None and expires < now_ts):
        raise SignatureError("expired", f"created {created} is outside the {max_skew}s window")
    if created > now_ts + max_skew:
        raise SignatureError("future", f"created {created} is more than {max_skew}s ahead")
    names = [name for name, _ in components] if plain else None
    return params, names, sigs[LABEL][0]


def _verify(message, fields: _Fields, body: bytes, required, resolve_key, now, max_skew) -> dict:
    params, names, signature = _check_params(fields, required, now, max_skew)
    public_key = resolve_key(params["keyid"])
    if public_key is None:
        raise SignatureError("unknown_key", f"no key for keyid {params['keyid']!r}")
    if not _digest_matches(fields.get("content-digest"), body):
        raise SignatureError("digest_mismatch", "Content-Digest missing or not matching the body")
    built = _fast_base(message, names, params) if names and isinstance(public_key, Ed25519PublicKey) else None
    if built is not None:
        try:
            public_key.verify(signature, built[0])
        except InvalidSignature:
            raise SignatureError("bad_signature", "signature does not verify") from None
        return params
    verifier = _Verifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={params["keyid"]: public_key}, private_keys={}),
    )
    try:
        verifier.verify(message, max_age=None, require_components=required)
    except HTTPMessageSignaturesException:
        raise SignatureError("bad_signature", "signature does not verify") from None
    return params


# --- public API -------------------------------------------------------------

def sign_request(method: str, url: str, body: bytes, key_id: str, private_key, *,
                 now: datetime | None = None, nonce: str | None = None,
                 content_type: str | None = None, expires_in: int | None = None) -> dict[str, str]:
    """Return the headers (Content-Digest, Signature-Input, Signature) that sign this request.

    ``url`` must be the absolute URL sent (the peer's configured base URL +
    path).  If ``content_type`` is given, a Content-Type header is returned
    and covered too; ``expires_in`` (seconds) adds an ``expires`` parameter.
    """
    headers = {"Content-Digest": content_digest(body)}
    covered = list(REQUEST_COMPONENTS)
    if content_type is not None:
        headers["Content-Type"] = content_type
        covered.append("content-type")
    message = _Request(method.upper(), _normalize_url(url), headers)
    return _sign(message, key_id, private_key, covered, now, nonce or _new_nonce(), expires_in)


def verify_request(method: str, url: str, headers: Mapping[str, str], body: bytes, *,
                   resolve_key: Callable[[str], Ed25519PublicKey | None],
                   check_nonce: Callable[[str, str, int], bool],
                   now: datetime | None = None, max_skew: int = DEFAULT_MAX_SKEW) -> str:
    """Return the verified sender key_id, or raise SignatureError with a reason.

    ``url`` is the receiver's reconstruction of the sender's URL (use
    ``target_uri``).  ``check_nonce(key_id, nonce, created)`` must record the
    nonce and return False if it was already seen; it is called only after
    the signature has verified.
    """
    fields = _Fields(headers)
    params = _verify(_Request(method.upper(), _normalize_url(url), fields), fields, body,
                     REQUEST_COMPONENTS, resolve_key, now, max_skew)
    if not check_nonce(params["keyid"], params["nonce"], params["created"]):
        raise SignatureError("replayed_nonce", "nonce already used by this sender")
    return params["keyid"]


def sign_response(status: int, body: bytes, key_id: str, private_key, *, request_nonce: str,
                  now: datetime | None = None) -> dict[str, str]:
    """Return the headers that sign an acknowledgement bound to the request with request_nonce.

    Covers ``"@status" "content-digest"``; the signature's ``nonce`` parameter
    is the answered request's nonce (unique per request, hence per ack).
    """
    message = _Response(int(status), {"Content-Digest": content_digest(body)})
    return _sign(message, key_id, private_key, list(RESPONSE_COMPONENTS), now, request_nonce, None)


def verify_response(status: int, headers: Mapping[str, str], body: bytes, *, expected_key_id: str,
                    public_key: Ed25519PublicKey, request_nonce: str,
                    now: datetime | None = None, max_skew: int = DEFAULT_MAX_SKEW) -> None:
    """Return None only if the ack is signed by expected_key_id for the request with request_nonce.

    Raises SignatureError otherwise (wrong key id -> unknown_key, other
    request -> nonce_mismatch, tampered -> digest_mismatch/bad_signature,
    stale -> expired/future).
    """
    fields = _Fields(headers)
    params = _verify(_Response(int(status), fields), fields, body, RESPONSE_COMPONENTS,
                     lambda k: public_key if k == expected_key_id else None, now, max_skew)
    if not hmac.compare_digest(params["nonce"].encode(), str(request_nonce).encode()):
        raise SignatureError("nonce_mismatch", "response answers a different request")
