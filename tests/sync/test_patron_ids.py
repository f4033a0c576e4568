"""Patron ids of every printable shape are signed and routed right; a peer's refusal is never "offline".

One network of real node processes for the whole module:

- NORTH and SOUTH trust each other (the honest link);
- SOUTH does not have EAST's public key, so it refuses EAST's signed requests (401 ``unknown_key``);
- WEST has a wrong public key for SOUTH, so SOUTH's signed answers fail WEST's check.
"""
import csv
import datetime
import re

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import utcnow
from node.demo.network import DEMO_PASSWORD
from sync.client import standing_path
from sync.signing import encode_public_key, request_target, sign_request, target_uri
from tests.helpers.config import write_config
from tests.network import Network
from tests.helpers.live import FAST, db_rows, drained, give_back, wait_until

NODES = [("NORTH", "North University"), ("SOUTH", "South College"), ("EAST", "East Institute"),
         ("WEST", "West Academy")]
# Printable, no spaces, at most 64 characters: whatever the home institution uses.  (Not yet an id
# that begins with "/": the standing route cannot match it, docs/protocol.md section 5.)
ODD_IDS = ["o'brien", "x+y", "a/b", "50%", "a?b#c", "semi;colon&amp=1", "~tilde.dot-", "ünïcode-ß",
           "%2F", "a%20b", "x" * 64, "a//b", "x/", ".", "..", "a/../b", "/lead", "//x", "trail/"]


def _set_peer_key(config_path, peer, key):
    """Rewrite [peer:PEER] public_key in the node.ini at CONFIG_PATH (KEY "" removes it)."""
    with open(config_path) as handle:
        text = handle.read()
    section = re.search(rf"^\[peer:{peer}\]\n(?:(?!\[).*\n?)*", text, re.MULTILINE)
    body = re.sub(r"^public_key = .*$\n?", f"public_key = {key}\n" if key else "", section.group(0), flags=re.MULTILINE)
    with open(config_path, "w") as handle:
        handle.write(text[:section.start()] + body + text[section.end():])


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("patron-ids")
    net = Network(base, nodes=NODES, items=30, patrons=3, overrides=FAST)
    _set_peer_key(net.info("SOUTH").config, "EAST", "")
    _set_peer_key(net.info("WEST").config, "SOUTH", net.info("NORTH").public_key)
    patrons = base / "odd-patrons.csv"
    with open(patrons, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email"])
        writer.writerows([home_id, f"Patron {n}", f"p{n}@south.example"] for n, home_id in enumerate(ODD_IDS))
    imported = net.cli("SOUTH", "patrons", "import", str(patrons))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    try:
        net.start_all()
        yield net
    finally:
        net.stop_all()


def checkout(net, lender, barcode, home_id, home="SOUTH"):
    return net.api(lender, "POST", "/api/v1/checkouts",
                   {"item_barcode": barcode, "patron": {"institution": home, "id": home_id}})


def loans_at(net, code, **params):
    r = requests.get(net.url(code, "/api/v1/loans"), params={"limit": 1000, **params}, timeout=10,
                     headers={"Authorization": f"Bearer {net.info(code).token}"})
    assert r.status_code == 200, r.text
    return r.json()["loans"]


def count(net, code, sql, args=()):
    return db_rows(net, code, sql, args)[0][0]


def test_odd_patron_ids_are_imported_as_given(net):
    stored = {row[0] for row in db_rows(net, "SOUTH", "SELECT home_id FROM patron WHERE institution = 'SOUTH'")}
    assert set(ODD_IDS) <= stored


def test_odd_patron_ids_borrow_online_show_at_home_and_return(net):
    barcodes = {home_id: f"N{n + 1:05d}" for n, home_id in enumerate(ODD_IDS)}
    made = {}
    for home_id, barcode in barcodes.items():
        r = checkout(net, "NORTH", barcode, home_id)
        assert r.status_code == 201, (home_id, r.text)
        loan = r.json()
        assert (loan["patron"]["id"], loan["provisional"], loan["made_offline"]) == (home_id, False, False), home_id
        made[home_id] = loan["id"]
    drained(net, "NORTH")
    for home_id, loan_id in made.items():
        at_home = loans_at(net, "SOUTH", patron_institution="SOUTH", patron_id=home_id)
        assert [(loan["id"], loan["status"]) for loan in at_home] == [(loan_id, "open")], home_id
    for barcode in barcodes.values():
        assert give_back(net, "NORTH", barcode)["loan"]["status"] == "closed"
    drained(net, "NORTH")
    for home_id, loan_id in made.items():
        at_home = loans_at(net, "SOUTH", patron_institution="SOUTH", patron_id=home_id)
        assert [(loan["id"], loan["status"]) for loan in at_home] == [(loan_id, "closed")], home_id
    assert count(net, "SOUTH", "SELECT COUNT(*) FROM inbox_record WHERE state = 'rejected'") == 0


def test_unknown_id_at_a_reachable_home_is_patron_unknown_never_provisional(net):
    loans_before = count(net, "NORTH", "SELECT COUNT(*) FROM loan")
    for home_id in ["nobody", "o'nobody", "x+nobody", "no/body", "0%", "a?b", "a#b"]:
        r = checkout(net, "NORTH", "N00029", home_id)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "patron_unknown"), (home_id, r.text)
    assert count(net, "NORTH", "SELECT COUNT(*) FROM loan") == loans_before
    assert count(net, "NORTH", "SELECT COUNT(*) FROM loan WHERE provisional = 1") == 0


def _desk_session(net, code):
    """A requests session signed in at CODE's desk as its admin; returns (session, csrf token)."""
    session = requests.Session()
    page = session.get(net.url(code, "/login"), timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = session.post(net.url(code, "/login"), timeout=10,
                     data={"name": "admin", "password": DEMO_PASSWORD, "csrf_token": token})
    assert r.url.endswith("/checkout"), r.text[:500]
    return session, re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)


@pytest.mark.parametrize("lender, cause", [("EAST", "unknown_key"), ("WEST", "bad_signature")])
def test_a_home_that_refuses_gives_home_refused_and_no_loan(net, lender, cause):
    """EAST: SOUTH refuses its request (no key for EAST). WEST: SOUTH's answer fails WEST's check."""
    prefix = lender[0]
    r = checkout(net, lender, f"{prefix}00001", "south-1")
    assert (r.status_code, r.json()["error"]["code"]) == (502, "home_refused"), r.text
    assert "South College" in r.json()["error"]["message"] and cause in r.json()["error"]["message"]
    session, token = _desk_session(net, lender)
    page = session.post(net.url(lender, "/checkout"), timeout=10,
                        data={"institution": "SOUTH", "patron_id": "o'brien", "csrf_token": token})
    assert page.url.endswith("/checkout"), "no visit is started"
    banners = re.findall(r'<div class="banner (\w+)" role="status">([^<]*)</div>', page.text)
    assert len(banners) == 1 and banners[0][0] == "error", banners
    assert "refused this library&#39;s standing check" in banners[0][1] and cause in banners[0][1]
    assert count(net, lender, "SELECT COUNT(*) FROM loan") == 0
    assert count(net, lender, "SELECT COUNT(*) FROM outbox_event") == 0

    view = net.api(lender, "GET", "/api/v1/sync/queue").json()
    refusal = view["refused_by_peers"][0]
    assert (refusal["peer"], refusal["what"]) == ("SOUTH", "standing check") and cause in refusal["cause"]
    assert datetime.datetime.fromisoformat(refusal["at"]).tzinfo is not None
    queue_page = session.get(net.url(lender, "/admin/queue"), timeout=10).text
    assert "Refused by peers" in queue_page and cause in queue_page
    text = net.cli(lender, "queue")
    assert text.returncode == 0 and "refused by peers" in text.stdout and cause in text.stdout
    for shown in (r.json()["error"]["message"], str(view), queue_page, text.stdout):
        assert "south-1" not in shown and "o'brien" not in shown and "o&#39;brien" not in shown


def test_a_refused_batch_stays_queued_with_its_cause_not_offline(net):
    """A pass lets EAST lend without asking SOUTH; SOUTH then refuses EAST's batch (it lacks EAST's key)."""
    issued = net.cli("SOUTH", "pass", "issue", "x+y")
    assert issued.returncode == 0, issued.stderr
    r = net.api("EAST", "POST", "/api/v1/checkouts", {"item_barcode": "E00002", "pass": issued.stdout.split()[-1]})
    assert r.status_code == 201 and r.json()["provisional"], r.text
    wait_until(lambda: count(net, "EAST", "SELECT attempts FROM outbox_event") >= 1, message="a refused push")
    state, error = db_rows(net, "EAST", "SELECT state, last_error FROM outbox_event")[0]
    assert state == "failed" and "refused" in error and "unknown_key" in error
    view = net.api("EAST", "GET", "/api/v1/sync/queue?peer=SOUTH").json()
    assert view["peers"][0]["queued"] == 1 and "refused" in view["peers"][0]["last_error"]
    assert [(r["peer"], r["what"]) for r in view["refused_by_peers"] if "unknown_key" in r["cause"]][:1] == [
        ("SOUTH", "event batch")]
    assert count(net, "SOUTH", "SELECT COUNT(*) FROM loan") == sum(
        1 for _ in db_rows(net, "SOUTH", "SELECT id FROM loan WHERE lender = 'NORTH'"))


# --- the same under Werkzeug (in process), and the raw request target itself ---

SOUTH_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def north_home(tmp_path):
    """NORTH in process (Werkzeug's test client), home of ODD_IDS, with SOUTH's public key."""
    from node import config
    from node.web.app import create_app
    from node.store.db import database
    from node.keys import ensure_key
    from node.store.models import Patron
    cfg = config.load(write_config(str(tmp_path / "north"), peers=[
        ("SOUTH", "South College", "http://127.0.0.1:9", encode_public_key(SOUTH_KEY.public_key()))]))
    ensure_key(cfg)
    app = create_app(cfg, {"TESTING": True})
    now = datetime.datetime.now(datetime.UTC)
    for home_id in ODD_IDS:
        Patron.create(institution="NORTH", home_id=home_id, name="N", updated_at=now)
    yield app.test_client()
    database.close()


def ask(client, path, **environ):
    headers = sign_request("GET", "http://127.0.0.1:8080" + path, b"", "SOUTH", SOUTH_KEY, now=utcnow())
    return client.get(path, headers=headers, environ_overrides=environ)


def test_werkzeug_verifies_the_raw_target_for_every_id(north_home):
    for home_id in ODD_IDS:
        answer = ask(north_home, standing_path(home_id))
        assert answer.status_code == 200 and answer.get_json()["ok"], (home_id, answer.get_data(as_text=True))
    unknown = ask(north_home, standing_path("o'nobody")).get_json()
    assert (unknown["ok"], unknown["code"]) == (False, "patron_unknown")


def test_without_a_raw_target_the_decoded_path_is_used_for_plain_ids(north_home):
    assert ask(north_home, standing_path("o.k-1"), RAW_URI="", REQUEST_URI="").status_code == 200
    assert ask(north_home, standing_path("a/b"), RAW_URI="", REQUEST_URI="").status_code == 401


@pytest.mark.parametrize("environ, target", [
    ({"REQUEST_URI": "/api/v1/patrons/a%2Fb/standing?x=1", "PATH_INFO": "/api/v1/patrons/a/b/standing"},
     "/api/v1/patrons/a%2Fb/standing?x=1"),
    ({"RAW_URI": "/p/o%27brien", "REQUEST_URI": "/ignored"}, "/p/o%27brien"),
    ({"REQUEST_URI": "http://north.example/p/50%25?q=1"}, "/p/50%25?q=1"),
    ({"REQUEST_URI": "/circ/p/x%2By", "SCRIPT_NAME": "/circ", "PATH_INFO": "/p/x+y"}, "/p/x%2By"),
    ({"PATH_INFO": "/p/\xc3\xbc", "QUERY_STRING": "a=1"}, "/p/ü?a=1"),  # UTF-8 bytes as WSGI's latin-1 text
])
def test_request_target_is_the_path_and_query_as_sent(environ, target):
    assert request_target(environ) == target


def test_the_signed_target_keeps_the_ids_encoding():
    assert target_uri("http://north.example/", standing_path("o'brien")) == (
        "http://north.example/api/v1/patrons/o%27brien/standing")
    assert [standing_path(home_id).split("/")[4] for home_id in ("x+y", "a/b", "50%", "a?b#c", "..")] == [
        "x%2By", "a%2Fb", "50%25", "a%3Fb%23c", "%2E%2E"]


def test_refusals_are_read_from_a_range_of_the_audit_logs_key(tmp_path):
    from node.store.db import database, open_database
    from sync.queue import refusals_query
    open_database(str(tmp_path / "node.sqlite3"))
    try:
        sql, params = refusals_query(10**6, "SOUTH").sql()
        plan = [row[3] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
    finally:
        database.close()
    assert [re.sub(r"^SEARCH \w+ ", "SEARCH audit_log ", step) for step in plan] == [
        "SEARCH audit_log USING INTEGER PRIMARY KEY (rowid>?)"], plan
