"""Nothing lost, nothing doubled: real node processes, killed, partitioned and skewed.

Every test ends with ``assert_home_matches_desk``: the loans the lender's desk
was told about (201 answers) are exactly the lender's loans on the home
node's record, each once, with the same state.
"""
import json
import threading
import time

import pytest
from tests.helpers.live import FAST, checkout, db_rows, drained, give_back, loans_of, pending, wait_until


def assert_home_matches_desk(net, acked, lender="NORTH", home="SOUTH"):
    """The desk's acknowledged loans are on the home record exactly once, in the same state."""
    at_lender = loans_of(net, lender, lender=lender, patron_institution=home)
    at_home = loans_of(net, home, lender=lender, patron_institution=home)
    acked_ids = {loan["id"] for loan in acked}
    assert acked_ids <= set(at_lender), "a loan the desk acknowledged is missing at the lender"
    assert set(at_home) == set(at_lender), "home and lender disagree on which loans exist"
    for loan_id, loan in at_lender.items():
        mine = at_home[loan_id]
        assert (mine["status"], mine["due_at"], mine["returned_at"], mine["returned_at_institution"]) == (
            loan["status"], loan["due_at"], loan["returned_at"], loan["returned_at_institution"]), loan_id
    created = db_rows(net, home, "SELECT COUNT(*) FROM inbox_record WHERE origin=? AND type='loan.created'",
                      (lender,))[0][0]
    assert created == len(at_lender), "a loan.created event was applied twice or lost"
    sequences = [row[0] for row in db_rows(net, home, "SELECT sequence FROM inbox_record WHERE origin=? "
                                                      "ORDER BY sequence", (lender,))]
    assert sequences == list(range(1, len(sequences) + 1)), "events applied out of order or with a gap"
    sent = db_rows(net, lender, "SELECT COUNT(*) FROM outbox_event WHERE destination=?", (home,))[0][0]
    assert len(sequences) == sent


def test_sender_killed_after_commit_before_push(network):
    net = network(proxied=True, overrides=FAST)
    net.start_all()
    net.proxy["SOUTH"].mode = "refuse"  # the link to the home node is down
    acked = [checkout(net, "NORTH", f"N{n:05d}", "SOUTH", f"south-{n % 5 + 1}") for n in range(1, 9)]
    assert all(loan["provisional"] for loan in acked)
    net.kill("NORTH")  # SIGKILL right after the commits, before any push got through
    net.proxy["SOUTH"].mode = "pass"
    net.start("NORTH")
    drained(net, "NORTH")
    assert_home_matches_desk(net, acked)
    at_lender = loans_of(net, "NORTH", lender="NORTH")
    assert not any(loan["provisional"] for loan in at_lender.values()), "home accepted: the mark goes"
    assert all(loan["made_offline"] for loan in at_lender.values())


def test_receiver_killed_mid_batch_then_drains_in_order(network):
    net = network(proxied=True, overrides=FAST)
    net.start_all()
    net.proxy["SOUTH"].mode = "refuse"
    acked = []
    for n in range(120):  # 240 events: checkouts and returns of a few items
        barcode = f"N{n % 10 + 1:05d}"
        acked.append(checkout(net, "NORTH", barcode, "SOUTH", f"south-{n % 10 + 1}"))
        give_back(net, "NORTH", barcode)
    net.proxy["SOUTH"].mode = "pass"
    wait_until(lambda: db_rows(net, "SOUTH", "SELECT COUNT(*) FROM inbox_record")[0][0] >= 30,
               interval=0.02, message="the first batches to land")
    net.kill("SOUTH")  # mid-drain
    assert pending(net, "NORTH") > 0
    net.start("SOUTH")
    drained(net, "NORTH")
    assert_home_matches_desk(net, acked)


@pytest.mark.parametrize("mode", ["reset", "truncate"])
def test_receiver_applied_but_acknowledgement_lost(network, mode):
    net = network(proxied=True, overrides=FAST)
    net.start_all()
    net.proxy["SOUTH"].mode = "refuse"
    acked = [checkout(net, "NORTH", f"N{n:05d}", "SOUTH", "south-1") for n in range(1, 4)]
    net.proxy["SOUTH"].mode = mode  # SOUTH applies the batch; NORTH never gets a valid answer
    wait_until(lambda: db_rows(net, "SOUTH", "SELECT COUNT(*) FROM inbox_record")[0][0] == 3,
               message="SOUTH to apply the batch")
    assert pending(net, "NORTH") == 3, "no verified acknowledgement, so nothing is marked delivered"
    net.kill("NORTH")
    net.proxy["SOUTH"].mode = "pass"
    net.start("NORTH")
    drained(net, "NORTH")
    assert_home_matches_desk(net, acked)


@pytest.mark.parametrize("mode", ["error500", "hang", "refuse"])
def test_peer_failures_keep_events_queued_and_recover(network, mode):
    net = network(proxied=True, overrides=FAST)
    net.start_all()
    net.proxy["SOUTH"].mode = mode
    acked = [checkout(net, "NORTH", f"N{n:05d}", "SOUTH", "south-2") for n in range(1, 4)]
    wait_until(lambda: db_rows(net, "NORTH", "SELECT MIN(attempts) FROM outbox_event")[0][0] >= 1,
               message="a failed attempt")
    state, error = db_rows(net, "NORTH", "SELECT state, last_error FROM outbox_event LIMIT 1")[0]
    assert state == "failed" and error
    assert db_rows(net, "SOUTH", "SELECT COUNT(*) FROM loan")[0][0] == 0
    net.proxy["SOUTH"].mode = "pass"
    drained(net, "NORTH")
    assert_home_matches_desk(net, acked)


def _signed_batch(net, events):
    """Send EVENTS to SOUTH signed as NORTH, as NORTH's pusher would, but past the cut link."""
    import requests

    from node import config
    from node.keys import private_key
    from node.clock import utcnow
    from sync.signing import decode_public_key, sign_request, verify_response
    cfg = config.load(net.info("NORTH").config)
    body = json.dumps({"events": events}).encode()
    url = cfg.peers["SOUTH"].base_url + "/api/v1/sync/events"  # what SOUTH believes its address is
    headers = sign_request("POST", url, body, "NORTH", private_key(cfg), nonce=f"n{time.time_ns()}",
                           now=utcnow())
    headers["Content-Type"] = "application/json"
    nonce = headers["Signature-Input"].split('nonce="')[1].split('"')[0]
    r = requests.post(net.url("SOUTH", "/api/v1/sync/events"), data=body, headers=headers, timeout=10)
    verify_response(r.status_code, r.headers, r.content, expected_key_id="SOUTH",
                    public_key=decode_public_key(cfg.peers["SOUTH"].public_key), request_nonce=nonce, now=utcnow())
    return r.status_code, r.json()


def _queued_envelopes(net):
    rows = db_rows(net, "NORTH", "SELECT event_id, type, sequence, payload, destination FROM outbox_event "
                                 "WHERE state IN ('pending','failed') ORDER BY sequence")
    return [{"event_id": e, "type": t, "version": 1, "origin": "NORTH", "destination": d, "sequence": s,
             "occurred_at": json.loads(p)["occurred_at"], "data": json.loads(p)["data"]}
            for e, t, s, p, d in rows]


def test_same_batch_three_times_in_a_row_and_at_once(network):
    net = network(proxied=True, overrides=FAST)
    net.start_all()
    net.proxy["SOUTH"].mode = "refuse"
    acked = [checkout(net, "NORTH", f"N{n:05d}", "SOUTH", "south-3") for n in range(1, 4)]
    batch = _queued_envelopes(net)
    answers = [_signed_batch(net, batch)[1] for _ in range(3)]
    assert [r["status"] for r in answers[0]["results"]] == ["applied"] * 3
    assert [r["status"] for r in answers[1]["results"]] == ["duplicate"] * 3
    assert answers[2] == answers[1]
    acked += [checkout(net, "NORTH", f"N{n:05d}", "SOUTH", "south-4") for n in range(4, 7)]
    batch = [event for event in _queued_envelopes(net) if event["sequence"] > 3]
    results = []
    threads = [threading.Thread(target=lambda: results.append(_signed_batch(net, batch)[1])) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r["status"] for answer in results for r in answer["results"])
    assert statuses == ["applied"] * 3 + ["duplicate"] * 6
    net.proxy["SOUTH"].mode = "pass"  # NORTH's own push now only meets duplicates
    drained(net, "NORTH")
    assert_home_matches_desk(net, acked)


def test_week_long_partition_drains_thousands_in_order(network):
    net = network(proxied=True, overrides={**FAST, "sync": {**FAST["sync"], "batch_size": "200"}}, items=60)
    net.start("SOUTH")
    net.proxy["SOUTH"].mode = "refuse"
    week_ago = str(-7 * 24 * 3600)
    net.start("NORTH", env={"CIRCNODE_CLOCK_OFFSET_SECONDS": week_ago})
    acked = []
    for n in range(600):  # 1,200 events queued over the "week"
        barcode = f"N{n % 40 + 1:05d}"
        acked.append(checkout(net, "NORTH", barcode, "SOUTH", f"south-{n % 10 + 1}"))
        give_back(net, "NORTH", barcode)
    net.stop("NORTH")
    assert pending(net, "NORTH") == 1200
    net.proxy["SOUTH"].mode = "pass"
    net.start("NORTH")  # back to the real time: a week later
    drained(net, "NORTH", timeout=120)
    assert_home_matches_desk(net, acked)
    times = [row[0] for row in db_rows(net, "SOUTH", "SELECT received_at FROM inbox_record ORDER BY sequence")]
    assert times == sorted(times), "applied in sequence order"


def test_clock_skew_within_window_syncs_beyond_it_is_refused_and_waits(network):
    net = network(proxied=True, overrides=FAST)
    net.start("SOUTH")
    net.start("NORTH", env={"CIRCNODE_CLOCK_OFFSET_SECONDS": "200"})  # inside the 300 s window
    acked = [checkout(net, "NORTH", "N00001", "SOUTH", "south-5")]
    assert not acked[0]["provisional"], "standing answered despite 200 s of skew"
    drained(net, "NORTH")
    net.stop("NORTH")
    net.start("NORTH", env={"CIRCNODE_CLOCK_OFFSET_SECONDS": "900"})  # beyond it
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": "N00002", "patron": {"institution": "SOUTH", "id": "south-5"}})
    # SOUTH answers, and refuses the skewed request: a refusal, not an outage, so nothing is lent.
    assert (r.status_code, r.json()["error"]["code"]) == (502, "home_refused"), r.text
    give_back(net, "NORTH", "N00001")  # its loan.returned is refused the same way, and waits
    wait_until(lambda: db_rows(net, "NORTH", "SELECT attempts FROM outbox_event WHERE sequence=2")[0][0] >= 1,
               message="a refused push")
    assert pending(net, "NORTH") == 1
    assert "refused the batch" in db_rows(net, "NORTH", "SELECT last_error FROM outbox_event WHERE sequence=2")[0][0]
    assert db_rows(net, "SOUTH", "SELECT status FROM loan") == [("open",)]
    net.stop("NORTH")
    net.start("NORTH")
    drained(net, "NORTH")
    assert_home_matches_desk(net, acked)


def _cross(net, first_open):
    """Partition both ways, let the queued updates cross, then heal FIRST_OPEN's link first."""
    for code in ("NORTH", "SOUTH"):
        net.proxy[code].mode = "refuse"
    yield
    net.proxy[first_open].mode = "pass"
    other = "NORTH" if first_open == "SOUTH" else "SOUTH"
    drained(net, other)
    net.proxy[other].mode = "pass"
    drained(net, first_open)


@pytest.mark.parametrize("first", ["SOUTH", "NORTH"])
def test_renewal_at_lender_crossing_return_at_home(network, first):
    # Lent three days ago (NORTH's clock shifted back, the peers' skew allowance wide enough for it), then
    # renewed on today's clock: a renewal on the day of checkout would not move the due date (refused).
    net = network(proxied=True, overrides={**FAST, "sync": {**FAST["sync"], "clock_skew_seconds": str(4 * 86400)}})
    net.start("SOUTH")
    net.start("NORTH", env={"CIRCNODE_CLOCK_OFFSET_SECONDS": str(-3 * 86400)})
    loan = checkout(net, "NORTH", "N00007", "SOUTH", "south-6")
    drained(net, "NORTH")
    net.stop("NORTH")
    net.start("NORTH")
    crossing = _cross(net, first)
    next(crossing)
    assert net.api("NORTH", "POST", f"/api/v1/loans/{loan['id']}/renew").status_code == 200
    answer = give_back(net, "SOUTH", "N00007")
    assert answer["transit"]["to"] == "NORTH"
    next(crossing, None)
    north = loans_of(net, "NORTH", lender="NORTH")[loan["id"]]
    south = loans_of(net, "SOUTH", lender="NORTH")[loan["id"]]
    assert north["status"] == south["status"] == "closed"
    assert north["returned_at_institution"] == south["returned_at_institution"] == "SOUTH"
    assert north["returned_at"] == south["returned_at"]
    item = net.api("NORTH", "GET", "/api/v1/items/N00007").json()
    assert item["status"] == "in_transit"
    assert_home_matches_desk(net, [loan])


@pytest.mark.parametrize("first", ["SOUTH", "NORTH"])
def test_double_return_reaches_one_end_state(network, first):
    net = network(proxied=True, overrides=FAST)
    net.start_all()
    loan = checkout(net, "NORTH", "N00008", "SOUTH", "south-7")
    drained(net, "NORTH")
    crossing = _cross(net, first)
    next(crossing)
    give_back(net, "NORTH", "N00008")
    give_back(net, "SOUTH", "N00008")
    next(crossing, None)
    north = loans_of(net, "NORTH", lender="NORTH")[loan["id"]]
    south = loans_of(net, "SOUTH", lender="NORTH")[loan["id"]]
    assert north["returned_at_institution"] == south["returned_at_institution"] == "NORTH"
    assert north["returned_at"] == south["returned_at"]
    assert_home_matches_desk(net, [loan])
