"""The billing story over real node processes, with time passed in (``circnode jobs run --at``).

A SOUTH patron borrows two items at NORTH and never returns them: notices
reach a real SMTP server on the right days, the items are declared lost,
the fees land on SOUTH's account, the patron is blocked at every lender,
SOUTH exports the fees to its bursar file once, records a payment that
NORTH's ledger then shows settled; the second item, returned at SOUTH
after all, is refunded by NORTH's rule; and the patron pays the rest of
the balance at once, the refund credit applied first.
"""
import csv
import datetime
import glob
import os

import pytest

from tests.helpers.billing import TERMS

pytestmark = pytest.mark.slow

PATRON, NAME, EMAIL = "south-1", "South Patron 1", "patron1@south.example"


def synced(net, code):
    result = net.cli(code, "sync")
    assert result.returncode == 0, result.stderr
    return result


def jobs_at(net, code, day):
    """Run CODE's daily jobs as of 08:00 local time on DAY."""
    result = net.cli(code, "jobs", "run", "--at", f"{day.isoformat()}T08:00")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def borrow(net, lender, barcode):
    return net.api(lender, "POST", "/api/v1/checkouts",
                   {"item_barcode": barcode, "patron": {"institution": "SOUTH", "id": PATRON}})


def account(net):
    r = net.api("SOUTH", "GET", f"/api/v1/fees?patron_id={PATRON}")
    assert r.status_code == 200, r.text
    return r.json()


def test_unreturned_items_are_billed_home_blocked_exported_paid_and_refunded(network, smtp, tmp_path):
    net = network(nodes=[("NORTH", "North University"), ("SOUTH", "South College"), ("EAST", "East Institute")],
                  items=10, patrons=3,
                  overrides={**TERMS, "smtp": {"host": "127.0.0.1", "port": str(smtp.port),
                                               "sender": "circulation@north.test"}})
    net.start_all()

    # 1. The SOUTH patron borrows two items at NORTH; the loans reach SOUTH's record.
    loans = []
    for barcode in ("N00001", "N00002"):
        r = borrow(net, "NORTH", barcode)
        assert r.status_code == 201 and not r.json()["provisional"], r.text
        loans.append(r.json())
    due = datetime.date.fromisoformat(loans[0]["due_at"][:10])
    synced(net, "NORTH")

    # 2. Notices reach the mail server on the right days, once per loan and kind.
    expected = [(due - datetime.timedelta(days=4), []), (due - datetime.timedelta(days=3), ["courtesy"] * 2),
                (due - datetime.timedelta(days=2), []), (due, []),
                (due + datetime.timedelta(days=1), ["overdue-1"] * 2), (due + datetime.timedelta(days=6), []),
                (due + datetime.timedelta(days=7), ["overdue-7"] * 2), (due + datetime.timedelta(days=29), [])]
    for day, kinds in expected:
        before = len(smtp.messages)
        jobs_at(net, "NORTH", day)
        assert [m["X-Circnode-Notice"] for _, m in smtp.messages[before:]] == kinds, day
    assert all(rcpt == [EMAIL] for rcpt, _ in smtp.messages)
    assert net.api("SOUTH", "GET", f"/api/v1/fees?patron_id={PATRON}").json()["fees"] == []

    # 3. Thirty days overdue: declared lost, billed, and the lost notice sent.
    out = jobs_at(net, "NORTH", due + datetime.timedelta(days=30))
    assert "declared lost 2, fees 6" in out
    assert [m["X-Circnode-Notice"] for _, m in smtp.messages[-2:]] == ["lost", "lost"]
    assert "60.00 CHF" in smtp.messages[-1][1].get_body(("plain",)).get_content()
    assert "declared lost 0, fees 0" in jobs_at(net, "NORTH", due + datetime.timedelta(days=31))
    assert len(smtp.messages) == 8
    synced(net, "NORTH")

    # 4. The fees are on SOUTH's account, and the patron is blocked at every lender and at home.
    home = account(net)
    assert home["balance"] == {"CHF": "120.00"} and home["blocked"] is True
    assert sorted((f["lender"], f["loan_id"], f["reason"], f["amount"], f["currency"], f["status"])
                  for f in home["fees"]) == sorted(
        ("NORTH", loan["id"], reason, amount, "CHF", "open") for loan in loans
        for reason, amount in (("fine", "5.00"), ("replacement", "45.00"), ("processing", "10.00")))
    on_record = net.api("SOUTH", "GET", f"/api/v1/loans?patron_institution=SOUTH&patron_id={PATRON}").json()
    assert {loan["item"]["barcode"] for loan in on_record["loans"]} == {"N00001", "N00002"}
    for lender, barcode in (("NORTH", "N00003"), ("EAST", "E00001"), ("SOUTH", "S00001")):
        r = borrow(net, lender, barcode)
        assert r.status_code == 422 and r.json()["error"]["code"] == "patron_blocked", (lender, r.text)

    # 5. SOUTH exports the fees to its bursar file, each once.
    bursar = tmp_path / "bursar-1.csv"
    exported = net.cli("SOUTH", "bursar", "export", "--output", str(bursar))
    assert exported.returncode == 0 and "batch 1: 6 fees, CHF 120.00" in exported.stdout, exported.stderr
    with open(bursar, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["fee_id"] for row in rows) == sorted(f["id"] for f in home["fees"])
    assert {(row["patron_id"], row["patron_name"], row["lender_name"]) for row in rows} == {
        (PATRON, NAME, "North University")}
    again = net.cli("SOUTH", "bursar", "export", "--output", str(tmp_path / "bursar-2.csv"))
    assert "nothing to export" in again.stdout and not (tmp_path / "bursar-2.csv").exists()

    # 6. The patron pays the first loan's fees at SOUTH; NORTH's ledger shows them settled.
    first = [f for f in home["fees"] if f["loan_id"] == loans[0]["id"]]
    for fee in first:
        r = net.api("SOUTH", "POST", f"/api/v1/fees/{fee['id']}/pay", {"amount": fee["amount"]})
        assert r.status_code == 200 and r.json()["status"] == "paid", r.text
    synced(net, "SOUTH")
    ledger = {f["id"]: f for f in net.api("NORTH", "GET", "/api/v1/fees").json()["fees"]}
    assert len(ledger) == 6
    assert {ledger[f["id"]]["status"] for f in first} == {"paid"}
    assert {f["status"] for f in ledger.values() if f["loan_id"] == loans[1]["id"]} == {"open"}
    (north_row,) = net.api("NORTH", "GET", "/api/v1/settlement").json()["rows"]
    assert (north_row["peer"], north_row["role"], north_row["collected"], north_row["open"]) == (
        "SOUTH", "lender", "60.00", "60.00")
    assert account(net)["blocked"] is True  # 60.00 still open

    # 7. The second item turns up and is returned at SOUTH: NORTH refunds its replacement cost.
    r = net.api("SOUTH", "POST", "/api/v1/returns", {"item_barcode": "N00002", "owner": "NORTH"})
    assert r.status_code == 200 and r.json()["transit"]["to"] == "NORTH", r.text
    synced(net, "SOUTH")
    synced(net, "NORTH")
    home = account(net)
    refund = [f for f in home["fees"] if f["reason"] == "refund"]
    assert [(f["amount"], f["loan_id"]) for f in refund] == [("-45.00", loans[1]["id"])]
    assert home["balance"] == {"CHF": "15.00"} and home["blocked"] is False
    assert net.api("NORTH", "GET", "/api/v1/items/N00002").json()["status"] == "in_transit"
    assert borrow(net, "EAST", "E00001").status_code == 201
    assert "LOST_REFUND,-45.00" in net.cli("SOUTH", "bursar", "export", "--output", "-").stdout

    # 8. The patron pays the rest at once at SOUTH's cashier (issue 14): the refund credit is applied to the
    #    oldest charges, the money to the rest, and NORTH's ledger, after one sync, shows every fee settled.
    paid = net.cli("SOUTH", "fees", "pay", "--patron", PATRON, "--amount", "15.00", "--method", "card")
    assert paid.returncode == 0 and "paid 15.00 CHF (card); 0.00 CHF left" in paid.stdout, paid.stdout + paid.stderr
    assert account(net)["balance"] == {}
    synced(net, "SOUTH")
    ledger = net.api("NORTH", "GET", "/api/v1/fees").json()["fees"]
    assert sorted((f["reason"], f["status"], f["paid"]) for f in ledger if f["loan_id"] == loans[1]["id"]) == [
        ("fine", "paid", "5.00"), ("processing", "paid", "10.00"), ("refund", "paid", "-45.00"),
        ("replacement", "paid", "45.00")]
    (north_row,) = net.api("NORTH", "GET", "/api/v1/settlement").json()["rows"]
    assert (north_row["collected"], north_row["open"]) == ("75.00", "0.00")  # 60.00 + 15.00 in money

    # 9. No patron id, name, address or title in any node's log.
    for log_path in glob.glob(os.path.join(net.base_dir, "*", "node.log")):
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        for secret in (PATRON, NAME, EMAIL, "North sample book"):
            assert secret not in text, (log_path, secret)
