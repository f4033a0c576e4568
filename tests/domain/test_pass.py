"""Network passes: signed by the home node's key, verified offline at the lender's desk and API.

NORTH lends; SOUTH and EAST are peers whose node keys NORTH knows, at an
address nobody answers (port 9), so every check here is offline.
"""
import datetime
import os

import pytest

from tests.helpers.config import write_config
from tests.helpers.cli import circnode, ok

UTC = datetime.timezone.utc


def _node_key(folder, code):
    """A node key for CODE made the way 'circnode init' makes it: (private key, 'ed25519:...')."""
    from node import config
    from node.keys import ensure_key, private_key, public_key_text
    cfg = config.load(write_config(folder, institution=code, name=code.title()))
    ensure_key(cfg)
    return private_key(cfg), public_key_text(cfg)


@pytest.fixture
def keys(tmp_path):
    return {code: _node_key(str(tmp_path / code.lower()), code) for code in ("SOUTH", "EAST", "WEST")}


@pytest.fixture
def north(tmp_path, keys):
    """NORTH in-process with SOUTH and EAST as peers (WEST is no peer)."""
    from node import config
    from node.web.app import create_app
    from node.store.db import database
    from node.keys import ensure_key
    from node.store.models import Item, Patron
    path = write_config(str(tmp_path / "north"), peers=[
        ("SOUTH", "South College", "http://127.0.0.1:9", keys["SOUTH"][1]),
        ("EAST", "East Institute", "http://127.0.0.1:9", keys["EAST"][1])])
    cfg = config.load(path)
    ensure_key(cfg)
    app = create_app(cfg, {"TESTING": True})
    now = datetime.datetime.now(UTC)
    for n in range(1, 6):
        Item.create(owner="NORTH", barcode=f"N{n:04d}", title=f"Book {n}", item_type="book", updated_at=now)
    Patron.create(institution="NORTH", home_id="n-100", name="Nora North", updated_at=now)
    yield cfg, app.test_client()
    database.close()


@pytest.fixture
def headers(north):
    from node.domain.accounts import add_staff, new_token
    now = datetime.datetime.now(UTC)
    add_staff("desk1", "desk", "correct horse", now)
    return {"Authorization": f"Bearer {new_token('desk1', now)}"}


def south_pass(keys, home_id="south-1", name="South Patron 1", issued=None, days=7, signer="SOUTH", issuer="SOUTH"):
    from node.domain.patron_pass import encode
    issued = issued or datetime.datetime.now(UTC)
    return encode(keys[signer][0], issuer, home_id, name, issued, issued + datetime.timedelta(days=days))


def checkout(client, headers, barcode, npass, **extra):
    return client.post("/api/v1/checkouts", json={"item_barcode": barcode, "pass": npass, **extra}, headers=headers)


def code_of(answer):
    return answer.get_json()["error"]["code"]


def test_valid_pass_lends_provisionally_without_asking_the_home_node(north, keys, headers):
    from node.store.models import OutboxEvent
    cfg, client = north
    answer = checkout(client, headers, "N0001", south_pass(keys))
    assert answer.status_code == 201, answer.get_json()
    loan = answer.get_json()
    assert loan["patron"] == {"institution": "SOUTH", "id": "south-1"}
    # Provisional (the home node accepts or disputes it when its loan.created arrives), but not made
    # offline: the home node was not asked, which says nothing of whether it could be reached.
    assert loan["provisional"] is True and loan["made_offline"] is False
    event = OutboxEvent.get(OutboxEvent.destination == "SOUTH")
    assert event.type == "loan.created" and event.data["data"]["loan_id"] == loan["id"]


def test_pass_loans_stop_at_the_offline_limit(north, keys, headers):
    cfg, client = north  # offline_max_loans = 2 in the test config
    npass = south_pass(keys)
    assert [checkout(client, headers, f"N000{n}", npass).status_code for n in (1, 2)] == [201, 201]
    third = checkout(client, headers, "N0003", npass)
    assert third.status_code == 422 and code_of(third) == "offline_limit_reached"


def test_expired_pass_is_refused(north, keys, headers):
    cfg, client = north
    issued = datetime.datetime.now(UTC) - datetime.timedelta(days=10)
    answer = checkout(client, headers, "N0001", south_pass(keys, issued=issued, days=7))
    assert answer.status_code == 422 and code_of(answer) == "pass_expired"


def test_tampered_pass_is_refused(north, keys, headers):
    import base64
    import json
    cfg, client = north
    prefix, body, signature = south_pass(keys).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["id"] = "south-2"  # someone else's record
    forged_body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).rstrip(b"=").decode()
    for forged in (f"{prefix}.{forged_body}.{signature}",
                   f"{prefix}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",
                   "CNP1.not-a-pass", ""):
        answer = checkout(client, headers, "N0001", forged)
        assert answer.status_code in (400, 401), forged
        assert code_of(answer) in ("pass_invalid", "invalid_field"), forged
    assert checkout(client, headers, "N0001", f"{prefix}.{forged_body}.{signature}").get_json()["error"]["code"] \
        == "pass_invalid"


def test_pass_signed_with_another_nodes_key_or_from_outside_the_network_is_refused(north, keys, headers):
    cfg, client = north
    east_signed = south_pass(keys, signer="EAST", issuer="SOUTH")  # claims SOUTH, signed by EAST's key
    answer = checkout(client, headers, "N0001", east_signed)
    assert answer.status_code == 401 and code_of(answer) == "pass_wrong_issuer"
    west = south_pass(keys, signer="WEST", issuer="WEST")  # a well-signed pass of a stranger institution
    answer = checkout(client, headers, "N0001", west)
    assert answer.status_code == 401 and code_of(answer) == "pass_wrong_issuer"


def test_pass_of_a_patron_blocked_since_issue_is_refused_as_revoked(north, headers):
    from node.store.models import Patron
    from node.domain.patron_pass import issue
    cfg, client = north
    now = datetime.datetime.now(UTC)
    own = issue(cfg, "n-100", now - datetime.timedelta(minutes=5))
    assert checkout(client, headers, "N0001", own.text).status_code == 201
    Patron.update(blocked=True, updated_at=now).where(Patron.home_id == "n-100").execute()
    answer = checkout(client, headers, "N0002", own.text)
    assert answer.status_code == 422 and code_of(answer) == "pass_revoked"


def test_a_disputed_loan_since_issue_revokes_a_visitors_pass(north, keys, headers):
    from node.store.models import Loan
    cfg, client = north
    npass = south_pass(keys, issued=datetime.datetime.now(UTC) - datetime.timedelta(hours=1))
    loan_id = checkout(client, headers, "N0001", npass).get_json()["id"]
    Loan.update(disputed=True, dispute_reason="patron_blocked", updated_at=datetime.datetime.now(UTC)).where(
        Loan.id == loan_id).execute()
    answer = checkout(client, headers, "N0002", npass)
    assert answer.status_code == 422 and code_of(answer) == "pass_revoked"


def test_pass_and_patron_fields_must_agree(north, keys, headers):
    cfg, client = north
    answer = checkout(client, headers, "N0001", south_pass(keys), patron={"institution": "SOUTH", "id": "south-9"})
    assert answer.status_code == 400 and code_of(answer) == "invalid_field"


def test_issuing_refuses_a_blocked_patron(north):
    from node.domain import errors
    from node.store.models import Patron
    from node.domain.patron_pass import issue
    cfg, client = north
    Patron.update(blocked=True).where(Patron.home_id == "n-100").execute()
    with pytest.raises(errors.PatronBlocked):
        issue(cfg, "n-100", datetime.datetime.now(UTC))
    with pytest.raises(errors.PatronNotFound):
        issue(cfg, "nobody", datetime.datetime.now(UTC))


def test_pass_issue_command_prints_a_pass_the_lender_verifies(tmp_path, keys):
    """'circnode pass issue' at SOUTH (a real subprocess); NORTH verifies the printed pass offline."""
    from node import config
    from node.store.db import database, open_database
    from node.store.models import Patron
    from node.domain.patron_pass import verify
    south_ini = write_config(str(tmp_path / "south"), institution="SOUTH", name="South College")
    ok(circnode("--config", south_ini, "init"))
    south = config.load(south_ini)
    open_database(south.database_path)
    try:
        Patron.create(institution="SOUTH", home_id="south-1", name="South Patron 1",
                      expires_on=datetime.date.today() + datetime.timedelta(days=2), updated_at=datetime.datetime.now(UTC))
        qr = str(tmp_path / "pass.svg")
        result = ok(circnode("--config", south_ini, "pass", "issue", "south-1", "--qr", qr))
        text = result.stdout.strip().splitlines()[-1]
        assert text.startswith("CNP1.") and len(text) < 400 and os.path.getsize(qr) > 500
        refused = circnode("--config", south_ini, "pass", "issue", "nobody")
        assert refused.returncode == 2 and "patron_not_found" in refused.stderr
        from node.keys import public_key_text
        north_ini = write_config(str(tmp_path / "north"), peers=[
            ("SOUTH", "South College", "http://127.0.0.1:9", public_key_text(south))])
        npass = verify(config.load(north_ini), text, datetime.datetime.now(UTC))
        assert (npass.institution, npass.home_id, npass.name) == ("SOUTH", "south-1", "South Patron 1")
        assert npass.expires_at - datetime.datetime.now(UTC) < datetime.timedelta(days=3)  # capped at expiry
    finally:
        database.close()


def test_pass_with_a_patron_object_of_the_wrong_types_is_a_400_not_a_crash(north, keys, headers):
    from node.store.models import Loan
    cfg, client = north
    for patron in ({"institution": 5}, {"institution": "SOUTH", "id": 7}, {"institution": ["SOUTH"]}, "SOUTH"):
        answer = checkout(client, headers, "N0001", south_pass(keys), patron=patron)
        assert answer.status_code == 400 and code_of(answer) == "invalid_field", patron
    assert Loan.select().count() == 0


def _respelled(npass):
    """Other spellings of NPASS that a forgiving base64 decoder reads as the same bytes."""
    import base64
    prefix, body, signature = npass.split(".")
    last = signature[-1]
    # The last character of an unpadded 86-character signature carries 2 unused low bits: flip one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    other_bits = alphabet[alphabet.index(last) ^ 1]
    assert base64.urlsafe_b64decode(signature[:-1] + other_bits + "==") == \
        base64.urlsafe_b64decode(signature + "==")  # the decoder alone does not tell them apart
    return {
        "!!!! appended": npass + "!!!!",
        "~~~~ inside the signature": f"{prefix}.{body}.{signature[:10]}~~~~{signature[10:]}",
        "a changed padding bit": f"{prefix}.{body}.{signature[:-1]}{other_bits}",
        "padding added": f"{prefix}.{body}.{signature}==",
        "padded payload": f"{prefix}.{body}{'=' * (-len(body) % 4) or '===='}.{signature}",
        "standard alphabet": f"{prefix}.{body}.{signature.replace('-', '+').replace('_', '/')}"
        if "-" in signature or "_" in signature else f"{prefix}.{body}.{signature}+",
        "space inside": f"{prefix}.{body[:5]} {body[5:]}.{signature}",
        "newline after": npass + "\n",
        "space before": " " + npass,
    }


def test_a_pass_has_one_spelling_every_other_is_pass_invalid(north, keys, headers):
    from node.store.models import Loan
    cfg, client = north
    npass = south_pass(keys)
    for case, text in _respelled(npass).items():
        answer = checkout(client, headers, "N0001", text)
        assert (answer.status_code, code_of(answer)) == (401, "pass_invalid"), case
    assert Loan.select().count() == 0
    assert checkout(client, headers, "N0001", npass).status_code == 201  # the genuine pass still lends


def test_the_desk_refuses_a_respelled_pass_and_takes_the_genuine_one(north, keys):
    from node.domain.accounts import add_staff
    from tests.helpers.desk import banners, post_form, sign_in
    cfg, client = north
    add_staff("desk1", "desk", "desk-password-1", datetime.datetime.now(UTC))
    assert sign_in(client).status_code == 302
    npass = south_pass(keys)
    for case, text in _respelled(npass).items():
        answer = post_form(client, "/patron/pass", {"pass": text}, from_page="/checkout")
        assert answer.headers["Location"].endswith("/checkout"), case
        assert any("[pass_invalid]" in text for kind, text in banners(client.get("/checkout"))), case
    answer = post_form(client, "/patron/pass", {"pass": npass}, from_page="/checkout")
    assert answer.headers["Location"].endswith("/checkout/scan")
