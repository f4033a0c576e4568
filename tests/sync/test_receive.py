"""The events endpoint: a verified batch is applied once, and a replayed request is refused unsigned.

However a verified request ends (applied, not JSON, a failing event), its
nonce is used up.
"""
import datetime
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import utcnow
from node.store.models import InboxRecord, Loan, Patron, PeerNonce
from sync.signing import encode_public_key, sign_request
from tests.helpers.config import write_config

UTC = datetime.timezone.utc
URL = "http://127.0.0.1:8080/api/v1/sync/events"
SOUTH_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def home(tmp_path):
    """NORTH, home node of patron s-1, with SOUTH's public key."""
    from node import config
    from node.web.app import create_app
    from node.store.db import database
    from node.keys import ensure_key
    cfg = config.load(write_config(str(tmp_path / "north"), peers=[
        ("SOUTH", "South College", "http://127.0.0.1:9", encode_public_key(SOUTH_KEY.public_key()))]))
    ensure_key(cfg)
    app = create_app(cfg, {"TESTING": True})
    Patron.create(institution="NORTH", home_id="s-1", updated_at=datetime.datetime.now(UTC))
    yield app.test_client()
    database.close()


def batch(*sequences):
    events = [{"event_id": f"ev-{n}", "type": "loan.created", "version": 1, "origin": "SOUTH", "sequence": n,
               "occurred_at": "2026-03-01T10:00:00+01:00",
               "data": {"loan_id": f"L{n}", "lender": "SOUTH", "patron": {"institution": "NORTH", "id": "s-1"},
                        "item": {"institution": "SOUTH", "barcode": f"S{n}", "title": "A South book"},
                        "checked_out_at": "2026-03-01T10:00:00+01:00",
                        "due_at": "2026-03-22T23:59:59+01:00"}} for n in sequences]
    return json.dumps({"events": events}).encode()


def post(client, body, headers=None):
    headers = headers or sign_request("POST", URL, body, "SOUTH", SOUTH_KEY, now=utcnow())
    return client.post("/api/v1/sync/events", data=body, headers={**headers, "Content-Type": "application/json"})


def refused_as_replay(response):
    return (response.status_code == 401 and "Signature" not in response.headers
            and "replayed_nonce" in response.get_json()["error"]["message"])


def test_batch_is_applied_once_and_its_replay_refused(home):
    body = batch(1, 2)
    headers = sign_request("POST", URL, body, "SOUTH", SOUTH_KEY, now=utcnow())
    first = post(home, body, headers)
    assert first.status_code == 200 and "Signature" in first.headers
    assert [r["status"] for r in first.get_json()["results"]] == ["applied", "applied"]
    assert PeerNonce.select().count() == 1
    assert refused_as_replay(post(home, body, headers))
    assert InboxRecord.select().count() == 2 and Loan.select().count() == 2


def test_nonce_is_recorded_with_the_batch_and_survives_a_rolled_back_first_chunk(home, monkeypatch):
    from sync import inbox
    body = batch(1)
    headers = sign_request("POST", URL, body, "SOUTH", SOUTH_KEY, now=utcnow())
    monkeypatch.setattr(inbox, "_recorded", lambda *args: 1 / 0)  # fails inside the first chunk's transaction
    assert post(home, body, headers).status_code == 500
    monkeypatch.undo()
    assert InboxRecord.select().count() == 0 and PeerNonce.select().count() == 1
    assert refused_as_replay(post(home, body, headers))
    fresh = sign_request("POST", URL, body, "SOUTH", SOUTH_KEY, now=utcnow())
    answer = post(home, body, fresh)
    assert answer.status_code == 200 and "Signature" in answer.headers  # applied, its answer signed
    assert InboxRecord.select().count() == 1 and PeerNonce.select().count() == 2


def test_request_that_fails_still_uses_up_its_nonce(home, monkeypatch):
    from sync import inbox

    def crash(cfg, origin, events, now):
        raise RuntimeError("disk on fire")
    not_json = b"{not json"
    headers = sign_request("POST", URL, not_json, "SOUTH", SOUTH_KEY, now=utcnow())
    assert post(home, not_json, headers).status_code == 400
    assert refused_as_replay(post(home, not_json, headers))
    monkeypatch.setattr(inbox, "_apply_run", crash)
    body = batch(1)
    headers = sign_request("POST", URL, body, "SOUTH", SOUTH_KEY, now=utcnow())
    assert post(home, body, headers).status_code == 500
    monkeypatch.undo()
    assert refused_as_replay(post(home, body, headers))
    assert InboxRecord.select().count() == 0 and PeerNonce.select().count() == 2


def test_a_full_batch_larger_than_other_requests_may_be_is_taken(home):
    from sync.receive import MAX_BATCH_BYTES
    events = json.loads(batch(*range(1, 1001)))["events"]
    for event in events:
        event["data"]["item"]["title"] = "A long South title " * 150  # about 2.8 KB an event
    body = json.dumps({"events": events}).encode()
    assert 2 * 1024 * 1024 < len(body) < MAX_BATCH_BYTES
    answer = post(home, body)
    assert answer.status_code == 200 and answer.get_json()["acked_through"] == 1000
    too_big = json.dumps({"events": events, "padding": "x" * MAX_BATCH_BYTES}).encode()
    assert post(home, too_big).status_code == 413


def test_an_event_addressed_to_another_node_is_rejected_and_holds_nothing_up(home):
    body = json.loads(batch(1, 2))
    body["events"][0]["destination"] = "EAST"
    body["events"][1]["destination"] = "NORTH"  # ours: taken
    answer = post(home, json.dumps(body).encode())
    assert answer.status_code == 200
    assert [(r["status"], r["reason"]) for r in answer.get_json()["results"]] == [
        ("rejected", "wrong_destination"), ("applied", "")]
