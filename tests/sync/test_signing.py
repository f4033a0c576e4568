"""Tests for sync.signing: RFC 9421 Ed25519 node-to-node signatures.

Every refusal test asserts the specific SignatureError.reason, so removing
the named check makes the test fail (the request would either be accepted or
refused for a different reason).
"""
import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, request
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms


from sync.signing import (  # noqa: E402
    SignatureError,
    content_digest,
    decode_public_key,
    encode_public_key,
    sign_request,
    sign_response,
    target_uri,
    verify_request,
    verify_response,
)

NOW = datetime(2025, 1, 15, 9, 30, tzinfo=timezone.utc)
URL = "https://south.example.org/api/v1/events"
BODY = b'{"event":"hold.placed","id":"42"}'

NORTH = Ed25519PrivateKey.generate()
EAST = Ed25519PrivateKey.generate()
SOUTH = Ed25519PrivateKey.generate()
DIRECTORY = {"NORTH": NORTH.public_key(), "EAST": EAST.public_key()}


class NonceStore:
    """Real in-memory replay store: (key_id, nonce) pairs seen."""

    def __init__(self):
        self.seen = set()

    def __call__(self, key_id, nonce, created):
        if (key_id, nonce) in self.seen:
            return False
        self.seen.add((key_id, nonce))
        return True


def verify(headers, *, method="POST", url=URL, body=BODY, now=NOW, store=None, **kw):
    return verify_request(method, url, headers, body, resolve_key=DIRECTORY.get,
                          check_nonce=store if store is not None else NonceStore(), now=now, **kw)


def refused(reason, headers, **kw):
    with pytest.raises(SignatureError) as info:
        verify(headers, **kw)
    assert info.value.reason == reason, str(info.value)
    return info.value


def signed(**kw):
    args = dict(now=NOW)
    args.update(kw)
    return sign_request("POST", URL, BODY, "NORTH", NORTH, **args)


@dataclass
class Msg:  # minimal request view for hand-built signatures
    method: str
    url: str
    headers: dict = field(default_factory=dict)


def library_signed(covered, nonce="n-1", alg_key=NORTH):
    msg = Msg("POST", URL, {"Content-Digest": content_digest(BODY)})
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                      key_resolver=MappingKeyResolver(public_keys={}, private_keys={"NORTH": alg_key})).sign(
        msg, key_id="NORTH", created=NOW, nonce=nonce, label="sig1",
        covered_component_ids=covered, use_existing_digest=True)
    return msg.headers


# --- request round trip ------------------------------------------------------

def test_request_round_trip():
    headers = signed()
    assert set(headers) == {"Content-Digest", "Signature-Input", "Signature"}
    assert headers["Signature-Input"].startswith('sig1=("@method" "@target-uri" "content-digest");created=')
    assert 'keyid="NORTH"' in headers["Signature-Input"] and 'alg="ed25519"' in headers["Signature-Input"]
    assert verify(headers) == "NORTH"


def test_header_lookup_is_case_insensitive():
    assert verify({k.lower(): v for k, v in signed().items()}) == "NORTH"


def test_random_nonce_is_128_bit_urlsafe_and_fresh():
    a, b = signed()["Signature-Input"], signed()["Signature-Input"]
    nonce = a.split('nonce="')[1].split('"')[0]
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 16 and a != b


# --- request refusals --------------------------------------------------------

def test_no_signature_headers_refused():
    refused("missing_signature", {"Content-Digest": content_digest(BODY)})
    refused("missing_signature", {k: v for k, v in signed().items() if k != "Signature"})


def test_malformed_signature_header_refused():
    refused("malformed", dict(signed(), Signature="sig1=not-bytes"))


def test_tampered_body_refused():
    refused("digest_mismatch", signed(), body=BODY.replace(b"42", b"43"))


def test_missing_content_digest_refused():
    refused("digest_mismatch", {k: v for k, v in signed().items() if k != "Content-Digest"})


def test_tampered_digest_header_refused():
    other = BODY.replace(b"42", b"43")
    refused("bad_signature", dict(signed(), **{"Content-Digest": content_digest(other)}), body=other)


def test_tampered_method_refused():
    refused("bad_signature", signed(), method="PUT")


def test_different_url_refused():
    refused("bad_signature", signed(), url="https://south.example.org/api/v1/events?x=1")
    refused("bad_signature", signed(), url="https://west.example.org/api/v1/events")


def test_key_of_another_node_refused():
    forged = sign_request("POST", URL, BODY, "NORTH", EAST, now=NOW)  # EAST claims to be NORTH
    refused("bad_signature", forged)


def test_unknown_keyid_refused():
    refused("unknown_key", sign_request("POST", URL, BODY, "WEST", EAST, now=NOW))


def test_wrong_algorithm_refused():
    headers = signed()
    headers["Signature-Input"] = headers["Signature-Input"].replace('alg="ed25519"', 'alg="hmac-sha256"')
    refused("bad_algorithm", headers)


def test_required_component_not_covered_refused():
    refused("missing_component", library_signed(["@method", "content-digest"]))


def test_missing_nonce_refused():
    refused("missing_nonce", library_signed(["@method", "@target-uri", "content-digest"], nonce=None))


def test_replayed_nonce_refused():
    store, headers = NonceStore(), signed()
    assert verify(headers, store=store) == "NORTH"
    refused("replayed_nonce", headers, store=store)


def test_nonce_not_recorded_before_signature_verifies():
    store = NonceStore()
    refused("bad_signature", signed(nonce="garbage-1"), method="PUT", store=store)
    assert store.seen == set()


def test_created_too_old_refused():
    refused("expired", signed(), now=NOW + timedelta(seconds=301))


def test_created_in_future_beyond_skew_refused():
    refused("future", signed(), now=NOW - timedelta(seconds=301))


def test_created_within_skew_accepted():
    assert verify(signed(), now=NOW + timedelta(seconds=300)) == "NORTH"
    assert verify(signed(), now=NOW - timedelta(seconds=300)) == "NORTH"
    assert verify(signed(), now=NOW + timedelta(seconds=20), max_skew=30) == "NORTH"


def test_expires_parameter_enforced():
    refused("expired", signed(expires_in=60), now=NOW + timedelta(seconds=61))


def test_content_type_covered_when_given():
    headers = signed(content_type="application/json")
    assert verify(headers) == "NORTH"
    refused("bad_signature", dict(headers, **{"Content-Type": "text/plain"}))


# --- responses ---------------------------------------------------------------

ACK = b'{"ok":true}'


def ack(request_nonce="req-nonce-A", key=SOUTH, key_id="SOUTH", status=202, now=NOW):
    return sign_response(status, ACK, key_id, key, request_nonce=request_nonce, now=now)


def response_refused(reason, headers, *, status=202, body=ACK, request_nonce="req-nonce-A",
                     expected_key_id="SOUTH", now=NOW):
    with pytest.raises(SignatureError) as info:
        verify_response(status, headers, body, expected_key_id=expected_key_id,
                        public_key=SOUTH.public_key(), request_nonce=request_nonce, now=now)
    assert info.value.reason == reason, str(info.value)


def test_response_round_trip():
    headers = ack()
    assert headers["Signature-Input"].startswith('sig1=("@status" "content-digest");')
    assert verify_response(202, headers, ACK, expected_key_id="SOUTH", public_key=SOUTH.public_key(),
                           request_nonce="req-nonce-A", now=NOW) is None


def test_response_for_other_request_refused():
    response_refused("nonce_mismatch", ack(request_nonce="req-nonce-A"), request_nonce="req-nonce-B")


def test_response_tampered_refused():
    response_refused("digest_mismatch", ack(), body=b'{"ok":false}')
    response_refused("bad_signature", ack(), status=200)
    forged = dict(ack(), **{"Content-Digest": content_digest(b'{"ok":false}')})
    response_refused("bad_signature", forged, body=b'{"ok":false}')


def test_response_wrong_key_refused():
    response_refused("bad_signature", ack(key=EAST))              # right keyid, wrong key
    response_refused("unknown_key", ack(key=EAST, key_id="EAST"))  # another node's keyid


def test_response_stale_refused():
    response_refused("expired", ack(), now=NOW + timedelta(seconds=301))


# --- keys and URLs -----------------------------------------------------------

def test_public_key_text_round_trip_padded_and_unpadded():
    text = encode_public_key(NORTH.public_key())
    assert text.startswith("ed25519:") and len(text) == len("ed25519:") + 44
    for form in (text, text.rstrip("=")):
        assert decode_public_key(form).public_bytes_raw() == NORTH.public_key().public_bytes_raw()


@pytest.mark.parametrize("bad", ["", "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=", "ed25519:***",
                                 "ed25519:" + base64.b64encode(b"x" * 31).decode(), "rsa:AAAA"])
def test_decode_public_key_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        decode_public_key(bad)


def test_target_uri_joins_consistently():
    assert target_uri("https://south.example.org/", "/api/v1/events?") == URL
    assert target_uri("https://south.example.org", "api/v1/events") == URL
    assert target_uri("https://South.Example.org/circ/", "/e?a=1&b=2") == "https://south.example.org/circ/e?a=1&b=2"


def test_flask_receiver_reconstructs_target_uri():
    app, store = Flask(__name__), NonceStore()

    @app.post("/api/v1/events")
    def events():
        url = target_uri("https://south.example.org", request.full_path)
        return verify_request(request.method, url, request.headers, request.get_data(),
                              resolve_key=DIRECTORY.get, check_nonce=store, now=NOW)

    client = app.test_client()
    response = client.post("/api/v1/events", data=BODY, headers=sign_request("POST", URL, BODY, "NORTH", NORTH, now=NOW),
                           base_url="https://south.example.org")
    assert response.status_code == 200 and response.data == b"NORTH"


# --- worked example from docs/protocol-signatures.md --------------------------

EXAMPLE_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
EXAMPLE_NONCE = "kF3j9xQe0T2mZp7LwA1b_w"
EXAMPLE_BASE = (
    '"@method": POST\n'
    '"@target-uri": https://south.example.org/api/v1/events\n'
    '"content-digest": sha-256=:tW9EA+m9MOr8s4bNnM54oeqvvXiXd7RBvQKEEnbEYJc=:\n'
    '"@signature-params": ("@method" "@target-uri" "content-digest");created=1736933400;'
    'keyid="NORTH";alg="ed25519";nonce="kF3j9xQe0T2mZp7LwA1b_w"'
)
EXAMPLE_SIGNATURE = ("sig1=:gJ1jvzaVYmnpKCS4pPSuLWlV+AhnBWXeau+EQy6XC+di04Ttw2iyGCyZLSy74a++"
                     "0RSE2Kelc7WRn+h48nx5CQ==:")


def test_documented_example_is_exact_and_independently_verifiable():
    headers = sign_request("POST", URL, BODY, "NORTH", EXAMPLE_KEY, now=NOW, nonce=EXAMPLE_NONCE)
    assert encode_public_key(EXAMPLE_KEY.public_key()) == "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
    assert headers["Content-Digest"] == "sha-256=:" + base64.b64encode(hashlib.sha256(BODY).digest()).decode() + ":"
    assert headers["Signature-Input"] == "sig1=" + EXAMPLE_BASE.rsplit('"@signature-params": ', 1)[1]
    assert headers["Signature"] == EXAMPLE_SIGNATURE  # Ed25519 is deterministic
    signature = base64.b64decode(headers["Signature"].removeprefix("sig1=:").removesuffix(":"))
    EXAMPLE_KEY.public_key().verify(signature, EXAMPLE_BASE.encode("ascii"))  # no library involved


# --- the fast path against the library -----------------------------------------

def library_headers(method, url, headers, covered, nonce, created=NOW, expires=None, status=None):
    """What http_message_signatures alone makes of this message (Ed25519 is deterministic)."""
    if status is None:
        msg = Msg(method, url, dict(headers))
    else:
        @dataclass
        class Answer:
            status_code: int
            headers: dict
        msg = Answer(status, dict(headers))
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                      key_resolver=MappingKeyResolver(public_keys={}, private_keys={"NORTH": NORTH})).sign(
        msg, key_id="NORTH", created=created, nonce=nonce, label="sig1", expires=expires,
        covered_component_ids=covered, use_existing_digest=True)
    return dict(msg.headers)


@pytest.mark.parametrize("method,url,body,content_type,expires_in,fast", [
    ("POST", "https://south.example.org/api/v1/sync/events", BODY, None, None, True),
    ("GET", "http://127.0.0.1:8081/api/v1/patrons/s-1/standing", b"", None, None, True),
    ("GET", "http://127.0.0.1:8081/api/v1/loans?patron_id=s-1&status=open", b"", None, None, True),
    ("POST", "https://south.example.org/api/v1/peer/loans/0190-ab/renew", b"{}", "application/json", 60, True),
    ("GET", "HTTP://South.Example.ORG/api/v1/x", b"", None, None, True),          # lowercased before signing
    ("GET", "http://127.0.0.1:80/api/v1/x", b"", None, None, False),              # default port: library
    ("GET", "https://south.example.org/api/v1/patrons/a%20b/standing", b"", None, None, False),  # %-encoded
    ("GET", "https://south.example.org/api/./v1/../v1/x", b"", None, None, False),  # dot segments
    ("GET", "https://south.example.org", b"", None, None, True),                  # empty path becomes "/"
])
def test_request_signature_is_the_librarys_byte_for_byte(method, url, body, content_type, expires_in, fast,
                                                          monkeypatch):
    from sync import signing
    calls = []
    monkeypatch.setattr(signing, "HTTPMessageSigner", lambda *a, **k: calls.append(1) or HTTPMessageSigner(*a, **k))
    ours = sign_request(method, url, body, "NORTH", NORTH, now=NOW, nonce="Zx_9-n", content_type=content_type,
                        expires_in=expires_in)
    covered = ["@method", "@target-uri", "content-digest"] + (["content-type"] if content_type else [])
    headers = {"Content-Digest": content_digest(body)} | ({"Content-Type": content_type} if content_type else {})
    from sync.signing import _normalize_url
    theirs = library_headers(method.upper(), _normalize_url(url), headers, covered, "Zx_9-n",
                             expires=NOW + timedelta(seconds=expires_in) if expires_in else None)
    assert ours == theirs
    assert calls == ([] if fast else [1])  # which path signed it
    assert verify_request(method, url, ours, body, resolve_key=DIRECTORY.get, check_nonce=NonceStore(),
                          now=NOW) == "NORTH"


def test_response_signature_is_the_librarys_byte_for_byte():
    for status in (200, 201, 401, 503):
        ours = sign_response(status, BODY, "NORTH", NORTH, request_nonce="req-nonce_1", now=NOW)
        theirs = library_headers(None, None, {"Content-Digest": content_digest(BODY)},
                                 ["@status", "content-digest"], "req-nonce_1", status=status)
        assert ours == theirs
        verify_response(status, ours, BODY, expected_key_id="NORTH", public_key=NORTH.public_key(),
                        request_nonce="req-nonce_1", now=NOW)


def test_library_shapes_outside_the_fast_path_still_verify():
    # A nonce with characters the fast path leaves to the library, and a tag parameter.
    headers = library_signed(["@method", "@target-uri", "content-digest"], nonce="a b/c+d")
    assert verify(headers) == "NORTH"
    msg = Msg("POST", URL, {"Content-Digest": content_digest(BODY)})
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                      key_resolver=MappingKeyResolver(public_keys={}, private_keys={"NORTH": NORTH})).sign(
        msg, key_id="NORTH", created=NOW, nonce="n-2", label="sig1", tag="circnode",
        covered_component_ids=["@method", "@target-uri", "content-digest"], use_existing_digest=True)
    assert verify(dict(msg.headers)) == "NORTH"


def test_fast_path_refuses_what_the_library_refuses():
    good = signed()
    # The signature of one request does not verify for another path, method or body digest.
    refused("bad_signature", good, url=URL + "x")
    refused("bad_signature", good, method="PUT")
    # A signature made over a base with one byte changed (another created time) is refused.
    later = signed(now=NOW + timedelta(seconds=1))
    forged = dict(good, Signature=later["Signature"])
    refused("bad_signature", forged)
    # Components covered twice go to the library, which refuses them.
    twice = dict(good, **{"Signature-Input": good["Signature-Input"].replace(
        '"content-digest")', '"content-digest" "content-digest")')})
    refused("bad_signature", twice)
