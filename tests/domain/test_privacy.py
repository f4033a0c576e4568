"""Privacy: after the purge nothing links a patron to a returned item; /privacy lists what is shared."""
import datetime
import sqlite3

import pytest

from tests.helpers.billing import lend

UTC = datetime.timezone.utc
PATRON, NAME, EMAIL = "south-1", "South Patron 1", "patron1@south.example"


def dump(net, code):
    path = f"{net.info(code).folder}/var/circnode.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())


def rows(net, code, sql):
    path = f"{net.info(code).folder}/var/circnode.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.slow
def test_after_the_purge_nothing_links_a_patron_to_a_returned_item(network):
    net = network(items=5, patrons=2, overrides={"jobs": {"daily_at": ""}})
    net.start_all()
    for barcode in ("N00001", "N00002"):
        r = net.api("NORTH", "POST", "/api/v1/checkouts",
                    {"item_barcode": barcode, "patron": {"institution": "SOUTH", "id": PATRON}})
        assert r.status_code == 201, r.text
    assert net.cli("NORTH", "sync").returncode == 0
    assert net.api("NORTH", "POST", "/api/v1/returns", {"item_barcode": "N00001"}).status_code == 200
    assert net.api("SOUTH", "POST", "/api/v1/returns", {"item_barcode": "N00002", "owner": "NORTH"}).status_code == 200
    for code in ("NORTH", "SOUTH", "NORTH"):
        assert net.cli(code, "sync").returncode == 0
    assert any(PATRON in line for line in dump(net, "NORTH"))  # before: the lender knows who borrowed

    soon = (datetime.datetime.now(UTC) + datetime.timedelta(days=10)).isoformat()
    assert "loans unlinked 0" in net.cli("NORTH", "jobs", "run", "--only", "purge", "--at", soon).stdout
    later = (datetime.datetime.now(UTC) + datetime.timedelta(days=31)).isoformat()
    for code in ("NORTH", "SOUTH"):
        result = net.cli(code, "jobs", "run", "--only", "purge", "--at", later)
        assert result.returncode == 0 and "loans unlinked 2" in result.stdout, result.stdout + result.stderr

    # The lender keeps no trace of the visiting patron at all.
    north = "\n".join(dump(net, "NORTH"))
    for secret in (PATRON, NAME, EMAIL):
        assert secret not in north
    # The home node keeps its patron and the loans (for statistics), but nothing joins them.
    assert rows(net, "SOUTH", "SELECT COUNT(*) FROM loan WHERE patron_id IS NOT NULL") == [(0,)]
    assert rows(net, "SOUTH", "SELECT COUNT(*) FROM loan") == [(2,)]
    assert rows(net, "SOUTH", "SELECT COUNT(*) FROM inbox_record WHERE payload IS NOT NULL") == [(0,)]
    linking = [line for line in dump(net, "SOUTH") if PATRON in line and not line.startswith('INSERT INTO "patron"')]
    assert linking == []
    assert "N00001" not in "\n".join(line for line in dump(net, "NORTH") if line.startswith('INSERT INTO "outbox_event"'))


def test_a_loan_with_an_open_fee_keeps_its_patron_until_settled(lender):
    from node.domain.circulation import return_item
    from node.store.models import Fee, Loan, Notice, Patron
    from node.domain.privacy import purge
    settled = lend(lender, "N0001", "SOUTH", "south-7")
    owing = lend(lender, "N0002", "SOUTH", "south-8")
    return_item(lender, "N0001", datetime.datetime(2026, 3, 10, 10, 0, tzinfo=UTC))  # on time: no fee
    return_item(lender, "N0002", datetime.datetime(2026, 3, 20, 10, 0, tzinfo=UTC))  # late: a fine
    Notice.create(loan_id=settled.id, kind="courtesy", recipient="sam@south.test",
                  created_at=datetime.datetime(2026, 3, 9, tzinfo=UTC), state="sent")
    counts = purge(lender, datetime.datetime(2026, 5, 1, tzinfo=UTC))
    assert counts["loans_unlinked"] == 1 and counts["patrons_forgotten"] == 1
    assert Loan.get_by_id(settled.id).patron_id is None and Notice.select().count() == 0
    assert Loan.get_by_id(owing.id).patron.home_id == "south-8"
    assert [p.home_id for p in Patron.select().where(Patron.institution == "SOUTH")] == ["south-8"]
    # Once the home node reports the fine paid, the next purge unlinks that loan too.
    Fee.update(status="paid", paid=Fee.amount, settled_at=datetime.datetime(2026, 5, 2, tzinfo=UTC)).execute()
    assert purge(lender, datetime.datetime(2026, 5, 3, tzinfo=UTC))["loans_unlinked"] == 1
    (fee,) = Fee.select()
    assert fee.patron.home_id == "south-8"  # kept for the audit period
    audit_end = datetime.datetime(2026, 5, 2, tzinfo=UTC) + datetime.timedelta(days=2556)
    assert purge(lender, audit_end)["fees_anonymised"] == 1
    assert Fee.get().patron_id is None and Patron.select().where(Patron.institution == "SOUTH").count() == 0


def test_payloads_are_trimmed_only_once_delivered(lender):
    import json

    from node.store.models import OutboxEvent
    from node.domain.privacy import purge
    lend(lender, "N0001", "SOUTH", "south-7")
    lend(lender, "N0002", "SOUTH", "south-7")
    first = OutboxEvent.get(sequence=1)
    OutboxEvent.update(state="delivered", delivered_at=datetime.datetime(2026, 3, 2, 10, tzinfo=UTC)).where(
        OutboxEvent.id == first.id).execute()
    assert purge(lender, datetime.datetime(2026, 4, 5, tzinfo=UTC))["payloads_trimmed"] == 1
    trimmed, waiting = (json.loads(e.payload) for e in OutboxEvent.select().order_by(OutboxEvent.sequence))
    assert trimmed == {"occurred_at": "2026-03-02T09:00:00+00:00", "data": {}, "trimmed": 1}
    assert waiting["data"]["patron"] == {"institution": "SOUTH", "id": "south-7"}  # still to be sent: kept


def test_privacy_page_lists_every_event_a_node_sends(lender):
    from node.web.app import create_app
    from sync.inbox import event_types
    page = create_app(lender, {"TESTING": True}).test_client().get("/privacy")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert {"loan.created", "loan.returned", "fee.assessed"} <= set(event_types())
    for event_type in event_types():
        assert f"<code>{event_type}</code>" in html, event_type
    assert "<code>standing answer</code>" in html and "<code>renewal request</code>" in html
    assert "after 30 days" in html and "2555 days" in html
