"""The admin sync queue: JSON API, web page, CLI and a real two-node network.

Pushes here fail for real: SOUTH's base_url in the node_config fixture is
http://127.0.0.1:9, where nothing listens, so the connection is refused.
"""
import datetime
import re

import pytest

from node.domain import circulation
from node.domain.accounts import add_staff
from node.domain.circulation import UNREACHABLE, Standing
from node.store.db import database
from node.store.models import AuditLog, InboxRecord, Loan, OutboxEvent, Patron
from tests.helpers.queue import _csrf, _plans, _recorded, bearer, circnode

UTC = datetime.timezone.utc
# An hour ago, so queued events have a real age against the wall clock the views read.
NOW = datetime.datetime.now(UTC).replace(microsecond=0) - datetime.timedelta(hours=1)
FIXED = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
OFFLINE = Standing(True, provisional=True, reason="home node unreachable", source=UNREACHABLE)


def lend_to_south(cfg, barcode="N0001", home_id="south-1", standing=OFFLINE, now=NOW):
    """A real checkout at NORTH for a SOUTH patron: the loan plus a loan.created outbox event."""
    return circulation.checkout(cfg, barcode, "SOUTH", home_id, standing, now, staff="desk1")


@pytest.fixture
def south_loan(seeded):
    Patron.create(institution="SOUTH", home_id="south-1", name="Sol Southwood", email="sol@south.test",
                  updated_at=NOW)
    return lend_to_south(seeded)


def queue(client, admin_token, **params):
    response = client.get("/api/v1/sync/queue", query_string=params, headers=bearer(admin_token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_failed_push_shows_attempts_error_and_next_attempt(client, admin_token, south_loan):
    before = queue(client, admin_token)
    south = before["peers"][0]
    assert (south["peer"], south["queued"], south["pending"], south["failed"]) == ("SOUTH", 1, 1, 0)
    assert south["oldest_queued_age_seconds"] > 0 and south["next_attempt_at"] is None
    assert [(e["type"], e["state"], e["attempts"]) for e in before["events"]] == [("loan.created", "pending", 0)]

    retry = client.post("/api/v1/sync/queue/retry", json={"peer": "SOUTH"}, headers=bearer(admin_token))
    assert retry.status_code == 200
    body = retry.get_json()
    assert body["ok"] is False and body["delivered"] == 0 and body["queued"] == 1 and body["error"]

    after = queue(client, admin_token, state="failed")
    south = after["peers"][0]
    assert (south["queued"], south["failed"], south["failures"]) == (1, 1, 1)
    assert south["last_error"] and south["next_attempt_at"] and south["last_success_at"] is None
    event = after["events"][0]
    assert (event["state"], event["attempts"], event["loan_id"]) == ("failed", 1, south_loan.id)
    assert event["error"] and event["reason"] is None
    assert queue(client, admin_token, state="pending")["events"] == []
    # The offline loan is listed for the admin, marked as made offline.
    assert [(loan["id"], loan["provisional"], loan["made_offline"]) for loan in after["loans"]] == [(south_loan.id, True, True)]


def test_retry_clears_the_backoff_before_pushing(client, admin_token, south_loan):
    from node.store.models import PeerState
    far = datetime.datetime.now(UTC) + datetime.timedelta(days=1)
    PeerState.create(peer="SOUTH", failures=5, next_attempt_at=far)
    client.post("/api/v1/sync/queue/retry", json={"peer": "SOUTH"}, headers=bearer(admin_token))
    state = PeerState.get(peer="SOUTH")
    # It was tried now (one more attempt) and a fresh, short back-off replaced the day-long one.
    assert state.failures == 6 and state.next_attempt_at < far
    assert OutboxEvent.get().attempts == 1


def test_queue_masks_patron_ids_and_shows_no_names_titles_or_payloads(client, admin_token, south_loan):
    response = client.get("/api/v1/sync/queue", headers=bearer(admin_token))
    text = response.get_data(as_text=True)
    body = response.get_json()
    assert body["events"][0]["patron"] == "SOUTH:so…-1" and body["loans"][0]["patron"] == "SOUTH:so…-1"
    for secret in ("south-1", "Sol Southwood", "sol@south.test", "Book 1", "payload", "occurred_at"):
        assert secret not in text


def test_mask_id_hides_the_middle_and_most_of_short_ids():
    from sync.queue import mask_id
    assert [mask_id(v) for v in ("south-1", "1234567890", "n-100", "ab", "")] == \
        ["so…-1", "12…90", "n…", "a…", ""]


def test_filters_pagination_and_bad_filters(client, admin_token, seeded):
    for n in range(1, 5):
        lend_to_south(seeded, f"N{n:04d}", f"south-{n}", now=NOW + datetime.timedelta(minutes=n))
    OutboxEvent.update(state="delivered").where(OutboxEvent.sequence <= 2).execute()
    page = queue(client, admin_token, peer="south", limit=3)
    assert [e["sequence"] for e in page["events"]] == [4, 3, 2] and page["next_offset"] == 3
    assert [e["sequence"] for e in queue(client, admin_token, limit=3, offset=3)["events"]] == [1]
    assert [e["sequence"] for e in queue(client, admin_token, state="delivered", order="oldest")["events"]] == [1, 2]
    assert queue(client, admin_token, peer="SOUTH")["peers"][0]["queued"] == 2
    for params, field in (({"state": "lost"}, "state"), ({"peer": "WEST"}, "peer"), ({"limit": "x"}, "limit"),
                          ({"limit": "0"}, "limit"), ({"order": "up"}, "order")):
        bad = client.get("/api/v1/sync/queue", query_string=params, headers=bearer(admin_token))
        assert bad.status_code == 400, params
        assert bad.get_json()["error"]["code"] == "invalid_field"


def test_refused_events_from_peers_are_listed_with_reason(client, admin_token, app):
    InboxRecord.create(origin="SOUTH", sequence=1, event_id="e1", type="loan.created", received_at=FIXED,
                       state="applied")
    InboxRecord.create(origin="SOUTH", sequence=2, event_id="e2", type="loan.returned", received_at=FIXED,
                       state="rejected", reason="loan_unknown", payload='{"secret": "south-7"}')
    body = queue(client, admin_token)
    assert body["refused_from_peers"] == [{"origin": "SOUTH", "sequence": 2, "event_id": "e2",
                                           "type": "loan.returned", "received_at": "2026-03-02T11:00:00+01:00",
                                           "reason": "loan_unknown"}]
    assert "south-7" not in str(body)


def test_resolve_clears_dispute_with_note_and_audits(client, admin_token, south_loan):
    Loan.update(disputed=True, dispute_reason="patron_unknown").where(Loan.id == south_loan.id).execute()
    url = f"/api/v1/loans/{south_loan.id}/resolve"
    empty = client.post(url, json={"note": "  "}, headers=bearer(admin_token))
    assert (empty.status_code, empty.get_json()["error"]["code"]) == (400, "invalid_field")
    assert Loan.get_by_id(south_loan.id).disputed

    done = client.post(url, json={"note": "Patron re-registered at SOUTH"}, headers=bearer(admin_token))
    assert done.status_code == 200 and done.get_json()["disputed"] is False
    loan = Loan.get_by_id(south_loan.id)
    assert (loan.disputed, loan.dispute_reason) == (False, "")
    row = AuditLog.get(AuditLog.action == "resolve_dispute")
    assert (row.staff, row.target) == ("admin1", south_loan.id)
    assert "patron_unknown" in row.detail and "Patron re-registered at SOUTH" in row.detail

    again = client.post(url, json={"note": "twice"}, headers=bearer(admin_token))
    assert (again.status_code, again.get_json()["error"]["code"]) == (422, "loan_not_disputed")
    missing = client.post("/api/v1/loans/no-such-loan/resolve", json={"note": "x"}, headers=bearer(admin_token))
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "loan_not_found")
    assert AuditLog.select().where(AuditLog.action == "resolve_dispute").count() == 1


def test_desk_staff_are_refused(client, token, south_loan):
    for method, url, body in (("GET", "/api/v1/sync/queue", None),
                              ("POST", "/api/v1/sync/queue/retry", {"peer": "SOUTH"}),
                              ("POST", f"/api/v1/loans/{south_loan.id}/resolve", {"note": "x"})):
        response = client.open(url, method=method, json=body, headers=bearer(token))
        assert (response.status_code, response.get_json()["error"]["code"]) == (403, "forbidden"), url
    assert OutboxEvent.get().attempts == 0
    assert client.get("/api/v1/sync/queue").status_code == 401


def _sign_in(client, name, role):
    add_staff(name, role, "page-password-1", datetime.datetime.now(UTC))
    token = _csrf(client.get("/login"))
    response = client.post("/login", data={"name": name, "password": "page-password-1", "csrf_token": token})
    assert response.status_code == 302


def test_queue_page_for_admins_with_csrf_protected_actions(client, south_loan):
    Loan.update(disputed=True, dispute_reason="patron_blocked").where(Loan.id == south_loan.id).execute()
    _sign_in(client, "boss", "admin")
    page = client.get("/admin/queue?peer=SOUTH")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Sync queue</a>" in html
    assert "so…-1" in html and "south-1" not in html and "Sol Southwood" not in html
    assert "disputed: patron_blocked" in html and "Retry now" in html

    assert client.post("/admin/queue/retry", data={"retry_peer": "SOUTH"}).status_code == 403  # no CSRF token
    assert OutboxEvent.get().attempts == 0
    token = _csrf(page)
    retried = client.post("/admin/queue/retry", data={"retry_peer": "SOUTH", "peer": "SOUTH", "csrf_token": token},
                          follow_redirects=True)
    assert "1 events stay queued" in retried.get_data(as_text=True)
    assert OutboxEvent.get().state == "failed"

    url = f"/admin/queue/loans/{south_loan.id}/resolve"
    assert client.post(url, data={"note": "ok"}).status_code == 403
    assert Loan.get_by_id(south_loan.id).disputed
    resolved = client.post(url, data={"note": "Called SOUTH, cleared", "csrf_token": token}, follow_redirects=True)
    assert "dispute resolved" in resolved.get_data(as_text=True)
    assert not Loan.get_by_id(south_loan.id).disputed
    assert AuditLog.get(AuditLog.action == "resolve_dispute").staff == "boss"

    bad = client.get("/admin/queue?state=lost")
    assert bad.status_code == 200 and "state must be one of" in bad.get_data(as_text=True)


def test_queue_page_is_refused_to_desk_staff(client, app):
    _sign_in(client, "clerk", "desk")
    assert "Sync queue" not in client.get("/loans").get_data(as_text=True)
    assert client.get("/admin/queue").status_code == 403


def test_queue_queries_use_indexes_never_a_scan_of_history(app, seeded):
    from sync import queue as q
    for n in range(1, 6):
        lend_to_south(seeded, f"N{n:04d}", f"south-{n}", now=NOW + datetime.timedelta(minutes=n))
    OutboxEvent.update(state="delivered").where(OutboxEvent.sequence <= 3).execute()
    summary = _plans(_recorded(lambda: q.peer_summaries(seeded, NOW)))
    outbox_plans = [plan for sql, plan in summary.items() if "outbox_event" in sql]
    assert len(outbox_plans) >= 4
    for plan in outbox_plans:
        assert all(line.startswith("SEARCH") and "outbox_destination_state" in line for line in plan), plan

    everything = _plans(_recorded(lambda: [q.queue_view(seeded, NOW, peer=p, state=s)
                                           for p in (None, "SOUTH") for s in (None, *q.EVENT_STATES)]))
    for sql, plan in everything.items():
        if "outbox_event" in sql:
            assert not any(line.startswith("SCAN") for line in plan), (sql, plan)
        if 'FROM "loan"' in sql:  # driven by the partial index, never by a patron's whole history
            assert "loan_needs_attention" in plan[0], (sql, plan)
        if "inbox_record" in sql:
            assert plan == ["SEARCH t1 USING INDEX inbox_record_refused (origin=?)"], (sql, plan)


def test_cli_queue_summary_retry_and_resolve(south_loan, seeded):
    Loan.update(disputed=True, dispute_reason="patron_unknown").where(Loan.id == south_loan.id).execute()
    retry = circnode(seeded, "queue", "retry", "--peer", "south")
    assert retry.returncode == 1 and "1 events stay queued" in retry.stderr

    shown = circnode(seeded, "queue", "--peer", "SOUTH")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    south_line = next(line for line in out.splitlines() if line.startswith("SOUTH "))
    assert south_line.split()[1:5] == ["1", "1", "0", south_line.split()[4]]  # queued, failed, rejected
    assert re.search(rf"SOUTH +1 +loan\.created +failed +1 .*{south_loan.id}", out)
    assert "SOUTH:so…-1" in out and "south-1" not in out and "disputed (patron_unknown)" in out
    assert "failed" in circnode(seeded, "queue", "--state", "failed").stdout

    bad = circnode(seeded, "queue", "--state", "lost")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "invalid_field" in bad.stderr
    unknown = circnode(seeded, "queue", "retry", "--peer", "WEST")
    assert unknown.returncode == 2 and "unknown_institution" in unknown.stderr

    resolved = circnode(seeded, "queue", "resolve", south_loan.id, "--note", "checked with SOUTH")
    assert resolved.returncode == 0, resolved.stderr
    assert not Loan.get_by_id(south_loan.id).disputed
    assert AuditLog.get(AuditLog.action == "resolve_dispute").staff.startswith("cli:")
    again = circnode(seeded, "queue", "resolve", south_loan.id, "--note", "again")
    assert again.returncode == 2 and "loan_not_disputed" in again.stderr


@pytest.mark.slow
def test_queue_shows_failure_then_delivery_between_real_nodes(network):
    net = network()
    net.start_all()
    net.stop("SOUTH")
    made = [net.api("NORTH", "POST", "/api/v1/checkouts",
                    {"item_barcode": barcode, "patron": {"institution": "SOUTH", "id": patron}})
            for barcode, patron in (("N00001", "south-1"), ("N00002", "south-nobody"))]
    assert [r.status_code for r in made] == [201, 201], [r.text for r in made]
    assert all(r.json()["provisional"] for r in made)
    known, unknown = (r.json()["id"] for r in made)

    failed = net.api("NORTH", "POST", "/api/v1/sync/queue/retry", {"peer": "SOUTH"}).json()
    assert failed["ok"] is False and failed["queued"] == 2
    view = net.api("NORTH", "GET", "/api/v1/sync/queue?peer=SOUTH").json()
    assert view["peers"][0]["failures"] >= 1 and view["peers"][0]["last_error"]
    assert {e["state"] for e in view["events"]} == {"failed"} and all(e["attempts"] >= 1 for e in view["events"])

    net.start("SOUTH")
    delivered = net.api("NORTH", "POST", "/api/v1/sync/queue/retry", {"peer": "SOUTH"}).json()
    assert delivered["ok"] is True and delivered["queued"] == 0
    view = net.api("NORTH", "GET", "/api/v1/sync/queue?peer=SOUTH").json()
    states = {e["loan_id"]: (e["state"], e["reason"]) for e in view["events"]}
    assert states == {known: ("delivered", None), unknown: ("rejected", "patron_unknown")}
    assert view["peers"][0]["queued"] == 0 and view["peers"][0]["last_success_at"]
    # The accepted loan is no longer provisional; the refused one waits for the admin as disputed.
    assert [(loan["id"], loan["provisional"], loan["disputed"]) for loan in view["loans"]] == [(unknown, False, True)]
    refused = net.api("SOUTH", "GET", "/api/v1/sync/queue").json()["refused_from_peers"]
    assert [(r["origin"], r["reason"]) for r in refused] == [("NORTH", "patron_unknown")]

    resolved = net.api("NORTH", "POST", f"/api/v1/loans/{unknown}/resolve", {"note": "patron registered late"})
    assert resolved.status_code == 200 and resolved.json()["disputed"] is False
    assert net.api("NORTH", "GET", "/api/v1/sync/queue").json()["loans"] == []


def test_resolving_a_dispute_the_home_holds_tells_the_home_node(client, admin_token, south_loan, tmp_path):
    from sync.outbox import envelope
    Loan.update(disputed=True, dispute_reason="patron_blocked").where(Loan.id == south_loan.id).execute()
    done = client.post(f"/api/v1/loans/{south_loan.id}/resolve", json={"note": "Paid at South's cashier"},
                       headers=bearer(admin_token))
    assert done.status_code == 200
    sent = OutboxEvent.select().where(OutboxEvent.type == "loan.dispute_resolved").get()
    event = envelope(sent, "NORTH")
    assert (sent.destination, event["data"]["loan_id"], event["data"]["reason"], event["data"]["note"]) == (
        "SOUTH", south_loan.id, "patron_blocked", "Paid at South's cashier")
    # A dispute over a loan the home refused (not on its record) stays local.
    other = lend_to_south(client.application.extensions["circnode"], barcode="N0002")
    Loan.update(disputed=True, dispute_reason="patron_unknown").where(Loan.id == other.id).execute()
    assert client.post(f"/api/v1/loans/{other.id}/resolve", json={"note": "Wrong patron"},
                       headers=bearer(admin_token)).status_code == 200
    assert OutboxEvent.select().where(OutboxEvent.type == "loan.dispute_resolved").count() == 1


def test_the_home_node_records_a_lenders_resolution_of_its_loan_only(tmp_path):
    from tests.helpers.events import created
    from tests.helpers.nodes import network_node
    from sync.inbox import receive_batch
    cfg = network_node(tmp_path / "home")  # NORTH, home of s-1, receiving from SOUTH
    try:
        def resolved(sequence, loan_id, lender="SOUTH"):
            return {"event_id": f"ev-{sequence}", "type": "loan.dispute_resolved", "version": 1, "origin": "SOUTH",
                    "sequence": sequence, "occurred_at": "2026-03-03T10:00:00+00:00",
                    "data": {"loan_id": loan_id, "lender": lender, "reason": "patron_blocked",
                             "resolved_at": "2026-03-03T10:00:00+00:00", "note": "Paid"}}
        answer = receive_batch(cfg, "SOUTH", [created(1, "L1"), resolved(2, "L1"), resolved(3, "NL1"),
                                              resolved(4, "L1", lender="NORTH")], FIXED)
        assert [(r["status"], r["reason"]) for r in answer["results"]] == [
            ("applied", ""), ("applied", ""), ("rejected", "not_authoritative"), ("rejected", "not_authoritative")]
        row = AuditLog.get(AuditLog.action == "dispute_resolved_by_lender")
        assert (row.staff, row.target, row.detail) == ("lender:SOUTH", "L1", "reason: patron_blocked; note: Paid")
    finally:
        database.close()
