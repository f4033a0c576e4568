"""Sync between real node processes on loopback."""


def test_loan_at_lender_shows_on_home_record_after_sync(network):
    net = network()
    net.start_all()
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": "N00001", "patron": {"institution": "SOUTH", "id": "south-1"}})
    assert r.status_code == 201, r.text
    loan_id = r.json()["id"]
    sync = net.cli("NORTH", "sync")
    assert sync.returncode == 0, sync.stderr
    home = net.api("SOUTH", "GET", "/api/v1/loans?patron_institution=SOUTH&patron_id=south-1").json()["loans"]
    assert [(loan["id"], loan["lender"], loan["status"]) for loan in home] == [(loan_id, "NORTH", "open")]


import json  # noqa: E402


import requests  # noqa: E402

from tests.helpers.live import FAST, checkout, db_rows, drained, give_back, loans_of  # noqa: E402


def test_standing_refusals_come_from_the_home_node(network):
    net = network(overrides=FAST)
    net.start_all()
    for patron, code in [("south-blocked", "patron_blocked"), ("south-expired", "patron_expired"),
                         ("nobody-here", "patron_unknown")]:
        r = net.api("NORTH", "POST", "/api/v1/checkouts",
                    {"item_barcode": "N00001", "patron": {"institution": "SOUTH", "id": patron}})
        assert (r.status_code, r.json()["error"]["code"]) == (422, code)
    assert db_rows(net, "NORTH", "SELECT COUNT(*) FROM loan")[0][0] == 0
    assert db_rows(net, "NORTH", "SELECT COUNT(*) FROM outbox_event")[0][0] == 0


def test_home_network_loan_limit_is_enforced_for_every_lender(network):
    net = network(overrides={"sync": {**FAST["sync"], "standing_cache_seconds": "0"},
                             "policy": {"max_network_loans": "2", "max_loans": "20"}},
                  nodes=[("NORTH", "North University"), ("SOUTH", "South College"), ("EAST", "East Institute")])
    net.start_all()
    checkout(net, "NORTH", "N00001", "SOUTH", "south-1")
    checkout(net, "EAST", "E00001", "SOUTH", "south-1")
    drained(net, "NORTH")
    drained(net, "EAST")
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": "N00002", "patron": {"institution": "SOUTH", "id": "south-1"}})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "patron_limit_reached")
    home = loans_of(net, "SOUTH", patron_institution="SOUTH", patron_id="south-1")
    assert sorted(loan["lender"] for loan in home.values()) == ["EAST", "NORTH"]


def test_offline_loan_for_unknown_patron_becomes_disputed(network):
    net = network(proxied=True, overrides=FAST)
    net.start_all()
    net.proxy["SOUTH"].mode = "refuse"
    loans = [checkout(net, "NORTH", f"N0000{n}", "SOUTH", "not-a-south-patron") for n in (1, 2, 3, 4, 5)]
    assert all(loan["provisional"] and loan["made_offline"] for loan in loans)
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": "N00006", "patron": {"institution": "SOUTH", "id": "not-a-south-patron"}})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "offline_limit_reached")
    net.proxy["SOUTH"].mode = "pass"
    drained(net, "NORTH")
    after = loans_of(net, "NORTH", lender="NORTH")
    assert {(loan["disputed"], loan["dispute_reason"], loan["provisional"]) for loan in after.values()} == {
        (True, "patron_unknown", False)}
    assert db_rows(net, "SOUTH", "SELECT COUNT(*) FROM loan")[0][0] == 0
    states = db_rows(net, "NORTH", "SELECT DISTINCT state, last_error FROM outbox_event")
    assert states == [("rejected", "patron_unknown")]


def test_return_at_home_library_closes_loan_at_owner_and_travels_back(network):
    net = network(overrides=FAST)
    net.start_all()
    loan = checkout(net, "NORTH", "N00003", "SOUTH", "south-2")
    drained(net, "NORTH")
    answer = give_back(net, "SOUTH", "N00003")
    assert answer["transit"] == {"to": "NORTH", "name": "North University"}
    assert answer["loan"]["status"] == "closed" and answer["loan"]["returned_at_institution"] == "SOUTH"
    drained(net, "SOUTH")
    at_owner = net.api("NORTH", "GET", f"/api/v1/loans/{loan['id']}").json()
    assert (at_owner["status"], at_owner["returned_at_institution"]) == ("closed", "SOUTH")
    assert net.api("NORTH", "GET", "/api/v1/items/N00003").json()["status"] == "in_transit"
    arrival = give_back(net, "NORTH", "N00003")  # scanned on arrival at the owner
    assert arrival["received"] is True and arrival["item"]["status"] == "available"
    drained(net, "NORTH")
    shadow = net.api("SOUTH", "GET", "/api/v1/items/N00003?owner=NORTH").json()
    assert shadow["status"] == "available"
    again = net.api("NORTH", "POST", "/api/v1/returns", {"item_barcode": "N00003"})
    assert (again.status_code, again.json()["error"]["code"]) == (422, "not_on_loan")


def test_barcode_shared_by_two_owners_needs_the_owner(network, tmp_path):
    net = network(overrides=FAST)
    net.start_all()
    checkout(net, "NORTH", "N00004", "SOUTH", "south-3")
    drained(net, "NORTH")
    clash = tmp_path / "clash.csv"
    clash.write_text("barcode,title,call_number,item_type,replacement_cost\nN00004,South's own,X1,book,10\n")
    assert net.cli("SOUTH", "items", "import", str(clash)).returncode == 0
    r = net.api("SOUTH", "POST", "/api/v1/returns", {"item_barcode": "N00004"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "ambiguous_barcode"
    assert r.json()["error"]["details"]["owners"] == ["NORTH", "SOUTH"]
    answer = give_back(net, "SOUTH", "N00004", owner="NORTH")
    assert answer["transit"]["to"] == "NORTH"


def test_peer_api_refuses_bad_signatures_and_changes_nothing(network):
    from node import config
    from node.keys import private_key
    from sync.signing import sign_request
    net = network(overrides=FAST)
    net.start("SOUTH")
    url = net.info("SOUTH").url + "/api/v1/sync/events"
    event = {"event_id": "e1", "type": "loan.created", "version": 1, "origin": "NORTH", "sequence": 1,
             "occurred_at": "2026-01-01T00:00:00+00:00",
             "data": {"loan_id": "x", "lender": "NORTH", "patron": {"institution": "SOUTH", "id": "south-1"},
                      "item": {"institution": "NORTH", "barcode": "B1", "title": "T"},
                      "checked_out_at": "2026-01-01T00:00:00+00:00", "due_at": "2026-01-20T00:00:00+00:00"}}
    body = json.dumps({"events": [event]}).encode()
    north = config.load(net.info("NORTH").config)
    east_key = __import__("cryptography.hazmat.primitives.asymmetric.ed25519", fromlist=["x"]) \
        .Ed25519PrivateKey.generate()

    def post(headers, data=body):
        return requests.post(url, data=data, headers={**headers, "Content-Type": "application/json"}, timeout=5)

    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc)
    good = sign_request("POST", url, body, "NORTH", private_key(north), now=now)
    cases = {
        "unsigned": post({}),
        "foreign key": post(sign_request("POST", url, body, "NORTH", east_key, now=now)),
        "tampered body": post(good, data=body.replace(b"south-1", b"south-2")),
        "old": post(sign_request("POST", url, body, "NORTH", private_key(north),
                                 now=__import__("datetime").datetime.now(__import__("datetime").timezone.utc)
                                 - __import__("datetime").timedelta(seconds=900))),
    }
    for name, response in cases.items():
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "bad_signature", name
    first = post(good)
    assert first.status_code == 200 and first.json()["results"][0]["status"] == "applied"
    replay = post(good)
    assert replay.status_code == 401 and "replayed_nonce" in replay.json()["error"]["message"]
    assert db_rows(net, "SOUTH", "SELECT COUNT(*) FROM inbox_record")[0][0] == 1


def test_circnode_sync_reports_unreachable_peer_and_keeps_events(network):
    net = network(overrides=FAST)
    net.start("NORTH")  # SOUTH never starts
    checkout(net, "NORTH", "N00005", "SOUTH", "south-4")
    net.stop("NORTH")
    result = net.cli("NORTH", "sync", "--peer", "SOUTH")
    assert result.returncode == 1
    assert "SOUTH" in result.stderr and "stay queued" in result.stderr
    assert db_rows(net, "NORTH", "SELECT state FROM outbox_event") == [("failed",)]
    net.start("SOUTH")
    result = net.cli("NORTH", "sync")
    assert result.returncode == 0, result.stderr
    assert "SOUTH: 1 delivered" in result.stdout
    bad = net.cli("NORTH", "sync", "--peer", "WEST")
    assert bad.returncode == 2 and "WEST" in bad.stderr


def test_backup_of_a_running_node_holds_its_loans(network, tmp_path):
    import sqlite3
    net = network(overrides=FAST)
    net.start("NORTH")
    loan = checkout(net, "NORTH", "N00009", "NORTH", "north-1")
    target = tmp_path / "copy.sqlite3"
    result = net.cli("NORTH", "backup", str(target))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT status FROM loan WHERE id=?", (loan["id"],)).fetchone() == ("open",)
    again = net.cli("NORTH", "backup", str(target))
    assert again.returncode == 2 and "exists already" in again.stderr
