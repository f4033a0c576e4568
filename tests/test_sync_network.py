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
    assert [(l["id"], l["lender"], l["status"]) for l in home] == [(loan_id, "NORTH", "open")]
