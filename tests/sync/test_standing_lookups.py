"""The standing endpoint: only what a lender needs, each lookup recorded for admins, a per-peer rate limit.

Real SQLite files and real signed requests (Flask test client); time moves
through ``now`` in the domain functions and through the node clock's
documented offset (``CIRCNODE_CLOCK_OFFSET_SECONDS``) over HTTP.
"""
import datetime
import logging
import re
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.clock import utcnow
from node.store.db import database
from node.store.models import Patron, PeerNonce, StandingLookup
from sync import lookups
from sync.signing import encode_public_key, sign_request, verify_response
from tests.helpers.config import write_config
from tests.helpers.queue import _csrf, _plans, _recorded, bearer, circnode

UTC = datetime.UTC
BASE = "http://127.0.0.1:8080"
KEYS = {"SOUTH": Ed25519PrivateKey.generate(), "EAST": Ed25519PrivateKey.generate()}
T0 = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _node(tmp_path):
    from node import config
    from node.web.app import create_app
    from node.keys import ensure_key
    cfg = config.load(write_config(str(tmp_path / "north"), peers=[
        (code, f"{code} College", "http://127.0.0.1:9", encode_public_key(key.public_key()))
        for code, key in KEYS.items()]))
    ensure_key(cfg)
    app = create_app(cfg, {"TESTING": True})
    Patron.create(institution="NORTH", home_id="n-1", name="Nora North", email="nora@north.test", updated_at=T0)
    Patron.create(institution="NORTH", home_id="n-blocked", name="Bo Blocked", email="bo@north.test",
                  blocked=True, block_reason="Broke the reading room window", updated_at=T0)
    return cfg, app


@pytest.fixture
def home(tmp_path):
    """NORTH, home node of n-1 and n-blocked, with SOUTH's and EAST's public keys."""
    cfg, app = _node(tmp_path)
    yield cfg, app.test_client()
    database.close()


def ask(client, home_id, peer="SOUTH", headers=None):
    """A signed standing question of PEER; the response and the request's signature headers."""
    path = f"/api/v1/patrons/{home_id}/standing"
    headers = headers or sign_request("GET", BASE + path, b"", peer, KEYS[peer], now=utcnow())
    return client.get(path, headers=headers), headers


def signed_by_north(cfg, response, request_headers):
    from node.keys import private_key
    nonce = re.search(r'nonce="([^"]+)"', request_headers["Signature-Input"]).group(1)
    verify_response(response.status_code, response.headers, response.get_data(), expected_key_id="NORTH",
                    public_key=private_key(cfg).public_key(), request_nonce=nonce, now=utcnow())
    return True


def test_standing_answer_holds_only_what_a_lender_needs(home):
    cfg, client = home
    ok, headers = ask(client, "n-1")
    assert ok.status_code == 200 and signed_by_north(cfg, ok, headers)
    assert ok.get_json() == {"ok": True, "code": None, "reason": None, "name": "Nora North",
                             "email": "nora@north.test"}
    blocked = ask(client, "n-blocked")[0].get_json()
    assert set(blocked) == {"ok", "code", "reason"} and blocked["code"] == "patron_blocked"
    assert "window" not in blocked["reason"]  # our staff's note stays at home
    assert ask(client, "nobody")[0].get_json()["code"] == "patron_unknown"


def test_each_lookup_is_recorded_with_peer_patron_time_and_code_and_never_logged(home, caplog):
    _, client = home
    before = utcnow()
    with caplog.at_level(logging.INFO):  # circnode's own lines (peewee's DEBUG echo of queries is off in production)
        ask(client, "n-1")
        ask(client, "n-blocked", peer="EAST")
        ask(client, "nobody")
    after = utcnow()
    rows = [(r.peer, r.home_id, r.code) for r in StandingLookup.select().order_by(StandingLookup.id)]
    assert rows == [("SOUTH", "n-1", "ok"), ("EAST", "n-blocked", "patron_blocked"), ("SOUTH", "nobody", "patron_unknown")]
    assert all(before <= r.asked_at <= after for r in StandingLookup.select())
    assert "standing asked by SOUTH: ok" in caplog.text
    assert not [m for m in caplog.messages if "n-1" in m or "n-blocked" in m or "nobody" in m]


def test_the_121st_question_in_a_minute_is_refused_signed_and_changes_nothing_else(home, monkeypatch):
    cfg, client = home
    assert cfg.sync["standing_per_minute"] == 120  # the default
    assert all(ask(client, "n-1")[0].status_code == 200 for _ in range(120))
    refused, headers = ask(client, "n-1")
    assert refused.status_code == 429 and signed_by_north(cfg, refused, headers)
    assert refused.get_json()["error"]["code"] == "rate_limited" and "Nora" not in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert StandingLookup.select().count() == 120 and PeerNonce.select().count() == 121
    assert ask(client, "n-1", headers=headers)[0].status_code == 401  # its nonce is used up all the same

    east = ask(client, "n-1", peer="EAST")[0]  # another peer has its own minute
    assert east.status_code == 200 and east.get_json()["ok"]

    monkeypatch.setenv("CIRCNODE_CLOCK_OFFSET_SECONDS", "61")  # the minute has passed
    again, headers = ask(client, "n-1")
    assert again.status_code == 200 and again.get_json()["name"] == "Nora North"
    assert StandingLookup.select().where(StandingLookup.peer == "SOUTH").count() == 121


def test_concurrent_questions_never_pass_the_limit(tmp_path):
    cfg, app = _node(tmp_path)
    cfg.sync["standing_per_minute"] = 10
    statuses, lock = [], threading.Lock()

    def desk():
        client = app.test_client()
        for _ in range(5):
            status = ask(client, "n-1")[0].status_code
            with lock:
                statuses.append(status)
        database.close()
    threads = [threading.Thread(target=desk) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(set(statuses)) == [200, 429] and statuses.count(200) == 10
        assert StandingLookup.select().count() == 10
    finally:
        database.close()


def test_the_window_slides_with_the_time_passed_in(home):
    cfg, _ = home
    cfg.sync["standing_per_minute"] = 3
    for seconds in (0, 10, 20):
        with database.atomic():
            assert lookups.admit(cfg, "SOUTH", "n-1", "ok", T0 + datetime.timedelta(seconds=seconds)) == 0
    with database.atomic():
        assert lookups.admit(cfg, "SOUTH", "n-1", "ok", T0 + datetime.timedelta(seconds=30)) == 30
    assert lookups.seconds_to_wait(cfg, "SOUTH", T0 + datetime.timedelta(seconds=59, milliseconds=500)) == 1
    assert lookups.seconds_to_wait(cfg, "EAST", T0 + datetime.timedelta(seconds=30)) == 0
    with database.atomic():  # the first lookup has left the window
        assert lookups.admit(cfg, "SOUTH", "n-1", "ok", T0 + datetime.timedelta(seconds=60)) == 0
    assert StandingLookup.select().count() == 4


def _seed(cfg):
    for n, (peer, home_id, code) in enumerate([("SOUTH", "n-1", "ok"), ("EAST", "n-1", "ok"),
                                               ("SOUTH", "n-blocked", "patron_blocked")]):
        with database.atomic():
            lookups.admit(cfg, peer, home_id, code, T0 + datetime.timedelta(minutes=n))


def test_admins_list_lookups_as_json_filtered_by_peer_and_patron(home, admin_token, token):
    cfg, client = home
    _seed(cfg)

    def listed(**params):
        response = client.get("/api/v1/sync/standing-lookups", query_string=params, headers=bearer(admin_token))
        assert response.status_code == 200, response.get_json()
        return [(r["peer"], r["patron_id"], r["code"]) for r in response.get_json()["lookups"]]
    assert listed() == [("SOUTH", "n-blocked", "patron_blocked"), ("EAST", "n-1", "ok"), ("SOUTH", "n-1", "ok")]
    assert listed(peer="south") == [("SOUTH", "n-blocked", "patron_blocked"), ("SOUTH", "n-1", "ok")]
    assert listed(patron="n-1") == [("EAST", "n-1", "ok"), ("SOUTH", "n-1", "ok")]
    assert listed(peer="SOUTH", patron="n-1", limit=1) == [("SOUTH", "n-1", "ok")]
    first = client.get("/api/v1/sync/standing-lookups?limit=1", headers=bearer(admin_token)).get_json()
    assert first["lookups"][0]["asked_at"] == "2026-03-02T10:02:00+01:00"  # the library's local time

    bad = client.get("/api/v1/sync/standing-lookups?limit=501", headers=bearer(admin_token))
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (400, "invalid_field")
    desk = client.get("/api/v1/sync/standing-lookups", headers=bearer(token))
    assert (desk.status_code, desk.get_json()["error"]["code"]) == (403, "forbidden")
    assert client.get("/api/v1/sync/standing-lookups").status_code == 401


def _sign_in(client, name, role):
    from node.domain.accounts import add_staff
    add_staff(name, role, "page-password-1", datetime.datetime.now(UTC))
    token = _csrf(client.get("/login"))
    assert client.post("/login", data={"name": name, "password": "page-password-1",
                                       "csrf_token": token}).status_code == 302


def test_admin_page_lists_and_filters_lookups_without_inline_scripts(home):
    cfg, client = home
    _seed(cfg)
    assert client.get("/admin/standing-lookups").status_code == 302  # to the login
    _sign_in(client, "boss", "admin")
    html = client.get("/admin/standing-lookups").get_data(as_text=True)
    assert "Standing lookups</a>" in html and not re.search(r"<script(?![^>]*\bsrc=)", html)  # files only
    assert html.count("<code>n-1</code>") == 2 and "patron_blocked" in html and "2026-03-02 10:02:00" in html
    filtered = client.get("/admin/standing-lookups?peer=EAST&patron=n-1").get_data(as_text=True)
    assert filtered.count("<code>n-1</code>") == 1 and "n-blocked" not in filtered
    bad = client.get("/admin/standing-lookups?limit=lots")
    assert bad.status_code == 200 and "limit must be a whole number" in bad.get_data(as_text=True)


def test_admin_page_is_refused_to_desk_staff(home):
    _, client = home
    _sign_in(client, "clerk", "desk")
    assert "Standing lookups" not in client.get("/loans").get_data(as_text=True)
    assert client.get("/admin/standing-lookups").status_code == 403


def test_cli_lists_lookups_filtered(home):
    cfg, _ = home
    _seed(cfg)
    shown = circnode(cfg, "standing", "lookups", "--peer", "south")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert re.match(r"2026-03-02 10:02:00 +SOUTH +patron_blocked +n-blocked", lines[1]), lines
    assert re.match(r"2026-03-02 10:00:00 +SOUTH +ok +n-1", lines[2]) and lines[-1] == "2 lookups"
    only = circnode(cfg, "standing", "lookups", "--patron", "n-1", "--limit", "1").stdout.splitlines()
    assert "EAST" in only[1] and only[-1] == "1 lookup"
    bad = circnode(cfg, "standing", "lookups", "--limit", "0")
    assert bad.returncode == 2


def test_purge_deletes_lookups_past_their_retention(home):
    from node.domain.privacy import purge
    cfg, _ = home
    assert cfg.sections["privacy"]["standing_lookup_days"] == 30
    _seed(cfg)
    kept = T0 + datetime.timedelta(days=20)
    with database.atomic():
        lookups.admit(cfg, "SOUTH", "n-1", "ok", kept)
    counts = purge(cfg, T0 + datetime.timedelta(days=30, minutes=1, seconds=30))
    assert counts["standing_lookups_dropped"] == 2
    assert [(r.peer, r.home_id, r.asked_at) for r in StandingLookup.select().order_by(StandingLookup.id)] == [
        ("SOUTH", "n-blocked", T0 + datetime.timedelta(minutes=2)), ("SOUTH", "n-1", kept)]


def test_admin_queries_and_the_purge_search_an_index(home):
    cfg, _ = home
    _seed(cfg)
    plans = _plans(_recorded(lambda: [lookups.recent(peer=p, home_id=h) for p in (None, "SOUTH")
                                      for h in (None, "n-1")]))
    assert len(plans) == 4
    for sql, plan in plans.items():  # newest first along an index, stopped by the LIMIT: never sorted, never a walk
        assert not [step for step in plan if (step.startswith("SCAN") and "USING" not in step)
                    or "TEMP B-TREE" in step], (sql, plan)
        assert "standing_lookup_" in plan[0], (sql, plan)
    horizon = "2026-01-01T00:00:00.000000Z"
    plan = [row[3] for row in database.execute_sql(
        "EXPLAIN QUERY PLAN DELETE FROM standing_lookup WHERE asked_at < ?", (horizon,)).fetchall()]
    assert plan == ["SEARCH standing_lookup USING INDEX standing_lookup_asked_at (asked_at<?)"], plan
