"""The patron's account at home: network loans and Renew, asked of the real lender process.

NORTH runs as a real node process; SOUTH (the home node) runs in this process
behind a real HTTP server on its port, so that the test can hold a patron's
signed-in session (the identity node/web/saml.py binds after SAML sign-in).
"""
import datetime
import re
import threading

import pytest
from werkzeug.serving import make_server

UTC = datetime.timezone.utc
FIVE_DAYS = str(5 * 24 * 3600)


@pytest.fixture
def south_in_process(network):
    from node import config
    from node.web.app import create_app
    net = network(items=5, patrons=2, overrides={"jobs": {"daily_at": ""}})
    cfg = config.load(net.info("SOUTH").config)
    app = create_app(cfg, {"TESTING": True})
    info = net.info("SOUTH")
    server = make_server("127.0.0.1", info.listen_port or info.port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield net, cfg, app
    server.shutdown()
    from node.store.db import database
    database.close()


def sign_in(client, when):
    with client.session_transaction() as session:
        session["patron"] = {"institution": "SOUTH", "id": "south-1", "name": "South Patron 1",
                             "email": "patron1@south.example", "verified_at": when.isoformat(), "via": "saml"}


def renew(client, loan_id):
    page = client.get("/patron/account").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post(f"/patron/account/loans/{loan_id}/renew", data={"csrf_token": token})
    assert answer.status_code == 302
    return client.get(answer.headers["Location"]).get_data(as_text=True)


def south_loan(loan_id):
    from node.store.models import Loan
    loan = Loan.get_by_id(loan_id)
    return loan.due_at, loan.renewals


def test_renew_from_the_home_account_asks_the_lender_and_shows_its_answer(south_in_process, monkeypatch):
    from node.clock import utcnow
    net, cfg, app = south_in_process
    # Five days ago (both clocks shifted alike): the patron borrowed N00001 at NORTH.
    monkeypatch.setenv("CIRCNODE_CLOCK_OFFSET_SECONDS", "-" + FIVE_DAYS)
    net.start("NORTH", env={"CIRCNODE_CLOCK_OFFSET_SECONDS": "-" + FIVE_DAYS})
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": "N00001", "patron": {"institution": "SOUTH", "id": "south-1"}})
    assert r.status_code == 201 and not r.json()["provisional"], r.text
    loan_id = r.json()["id"]
    assert net.cli("NORTH", "sync", env={"CIRCNODE_CLOCK_OFFSET_SECONDS": "-" + FIVE_DAYS}).returncode == 0
    first_due, _ = south_loan(loan_id)

    # Today: the patron signs in at SOUTH and sees the loan with its lender.
    monkeypatch.delenv("CIRCNODE_CLOCK_OFFSET_SECONDS")
    net.stop("NORTH")
    net.start("NORTH")
    client = app.test_client()
    sign_in(client, utcnow())
    page = client.get("/patron/account").get_data(as_text=True)
    assert f'data-loan="{loan_id}"' in page and "North University" in page and ">Renew</button>" in page

    page = renew(client, loan_id)
    due, renewals = south_loan(loan_id)
    assert renewals == 1 and due - first_due == datetime.timedelta(days=5)
    assert f"Renewed by North University: now due {due.astimezone(cfg.tz):%Y-%m-%d}" in page
    north = net.api("NORTH", "GET", f"/api/v1/loans/{loan_id}").json()
    assert north["renewals"] == 1 and north["due_at"] == due.astimezone(cfg.tz).isoformat()

    page = renew(client, loan_id)  # again today: it would not move the due date, so NORTH refuses it
    assert "North University did not renew the loan: Renewing today would not move the due date" in page
    assert south_loan(loan_id)[1] == 1  # and no renewal was used up

    # NORTH unreachable: the page says so and nothing changes, there or here.
    before = south_loan(loan_id)
    net.stop("NORTH")
    page = renew(client, loan_id)
    assert "North University cannot be reached right now, so the loan was not renewed and nothing has changed" in page
    assert south_loan(loan_id) == before
    net.start("NORTH")
    assert net.api("NORTH", "GET", f"/api/v1/loans/{loan_id}").json()["renewals"] == 1


def test_a_patron_cannot_renew_someone_elses_loan_and_the_lender_checks_the_home(south_in_process):
    from node.domain import errors
    from node.domain.lending import renew_for_patron
    from node.clock import utcnow
    from sync.client import peer_request
    net, cfg, app = south_in_process
    net.start("NORTH")
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": "N00002", "patron": {"institution": "NORTH", "id": "north-1"}})
    assert r.status_code == 201
    north_loan = r.json()["id"]
    r = net.api("NORTH", "POST", "/api/v1/checkouts",
                {"item_barcode": "N00003", "patron": {"institution": "SOUTH", "id": "south-2"}})
    other = r.json()["id"]
    assert net.cli("NORTH", "sync").returncode == 0
    with pytest.raises(errors.LoanNotFound):
        renew_for_patron(cfg, "south-1", other, utcnow())  # south-2's loan
    # Signed by SOUTH, for a loan of one of NORTH's own patrons: the lender refuses.
    status, answer = peer_request(cfg, "NORTH", "POST", f"/api/v1/peer/loans/{north_loan}/renew", {})
    assert status == 404 and answer["error"]["code"] == "loan_not_found"
    assert net.api("NORTH", "GET", f"/api/v1/loans/{north_loan}").json()["renewals"] == 0
    client = app.test_client()
    page = client.get("/patron/account").get_data(as_text=True)
    assert "Your library account" in page and "account-loans" not in page  # no one signed in
