"""Done when: a pass-holder from SOUTH checks out, renews and returns at a NORTH kiosk (the PyPI ``sip2``
client over a real ``circnode run``), and the loan is on SOUTH's record after sync."""
import pytest

from tests.helpers.live import FAST, db_rows, drained, loans_of, wait_until
from tests.network import Network, free_port
from tests.sip2.kiosk import Kiosk, add_kiosk_account, enable_sip2, field

pytestmark = pytest.mark.slow
THREE_DAYS = str(3 * 24 * 3600)


@pytest.fixture
def net(tmp_path):
    network = Network(tmp_path, items=10, patrons=3, overrides=FAST)
    network.sip2_port = free_port()
    enable_sip2(network.info("NORTH"), network.sip2_port)
    add_kiosk_account(network)
    yield network
    network.stop_all()


def _pass_of(net, code, patron):
    done = net.cli(code, "pass", "issue", patron)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_south_pass_holder_borrows_renews_and_returns_at_north_kiosk(net):
    network_pass = _pass_of(net, "SOUTH", "south-1")
    net.start_all()
    kiosk = Kiosk(net.sip2_port)
    kiosk.connect()
    assert kiosk.login()["fixed"]["Ok"] == "1"
    status = kiosk.ask(kiosk.sip_sc_status_request(), kiosk.sip_sc_status_response)
    assert status["fixed"]["OnlineStatus"] == "Y"
    assert field(status, "BX") == "YYYNYYYYYNYNNNYN"

    kiosk.patron = network_pass
    info = kiosk.ask(kiosk.sip_patron_information_request("charged"), kiosk.sip_patron_information_response)
    assert info["fixed"]["PatronStatus"].strip() == ""
    assert field(info, "BL") == "Y" and field(info, "CQ") == "Y"
    assert field(info, "AE") == "South Patron 1"

    out = kiosk.ask(kiosk.sip_checkout_request("N00001"), kiosk.sip_checkout_response)
    assert out["fixed"]["Ok"] == "1", field(out, "AF")
    assert out["fixed"]["Desensitize"] == "Y"
    first_due = field(out, "AH")
    assert len(first_due) == 18
    loan_id = field(out, "BK")
    audit = db_rows(net, "NORTH", "SELECT staff FROM audit_log WHERE action = 'checkout' AND target = ?", (loan_id,))
    assert audit == [("sip2:kiosk1",)]
    info = kiosk.ask(kiosk.sip_patron_information_request("charged"), kiosk.sip_patron_information_response)
    assert info["fixed"]["ChargedItemsCount"] == "0001" and field(info, "AU") == "N00001"
    kiosk.disconnect()

    # Three days on (both nodes' clocks, so their signatures still agree): the renewal moves the due date.
    net.stop_all()
    for code in ("NORTH", "SOUTH"):
        net.start(code, env={"CIRCNODE_CLOCK_OFFSET_SECONDS": THREE_DAYS})
    kiosk = Kiosk(net.sip2_port)
    kiosk.connect()
    assert kiosk.login()["fixed"]["Ok"] == "1"
    kiosk.patron = network_pass
    renewed = kiosk.ask(kiosk.sip_renew_request("N00001"), kiosk.sip_renew_response)
    assert renewed["fixed"]["Ok"] == "1", field(renewed, "AF")
    assert field(renewed, "AH") > first_due
    back = kiosk.ask(kiosk.sip_checkin_request("N00001"), kiosk.sip_checkin_response)
    assert back["fixed"]["Ok"] == "1", field(back, "AF")
    assert back["fixed"]["Alert"] == "N" and field(back, "AQ") == "NORTH"
    end = kiosk.ask(kiosk.sip_end_patron_session_request(), kiosk.sip_end_patron_session_response)
    assert end["fixed"]["EndSession"] == "Y"
    kiosk.disconnect()

    drained(net, "NORTH")
    at_south = wait_until(lambda: loans_of(net, "SOUTH").get(loan_id, {}).get("status") == "closed"
                          and loans_of(net, "SOUTH")[loan_id], message="the closed loan at SOUTH")
    assert at_south["patron"] == {"institution": "SOUTH", "id": "south-1"}
    assert at_south["renewals"] == 1 and at_south["lender"] == "NORTH"
    assert at_south["item"]["barcode"] == "N00001"


def test_visitor_by_card_number_is_asked_of_home_once_per_kiosk_visit(tmp_path):
    net = Network(tmp_path, items=10, patrons=3, overrides=FAST)
    try:
        info = net.info("NORTH")
        with open(info.config, encoding="utf-8") as handle:
            text = handle.read()
        with open(info.config, "w", encoding="utf-8") as handle:  # SOUTH's card numbers: south-1, south-blocked, ...
            handle.write(text.replace("[peer:SOUTH]\n", "[peer:SOUTH]\ncard_pattern = south-[a-z0-9]+\n", 1))
        port = free_port()
        enable_sip2(info, port, "card_numbers = yes\n")
        add_kiosk_account(net)
        net.start_all()

        def lookups():
            return db_rows(net, "SOUTH", "SELECT COUNT(*) FROM standing_lookup WHERE home_id = 'south-2'")[0][0]

        kiosk = Kiosk(port)
        kiosk.connect()
        assert kiosk.login()["fixed"]["Ok"] == "1"
        kiosk.patron = "south-2"
        status = kiosk.ask(kiosk.sip_patron_status_request(), kiosk.sip_patron_status_response)
        assert field(status, "BL") == "Y" and field(status, "CQ") == "N" and "no PINs" in field(status, "AF")
        assert field(status, "AE") == "South Patron 2"  # as SOUTH answered
        assert lookups() == 1
        for barcode in ("N00002", "N00003"):
            out = kiosk.ask(kiosk.sip_checkout_request(barcode), kiosk.sip_checkout_response)
            assert out["fixed"]["Ok"] == "1" and "provisional" not in field(out, "AF"), field(out, "AF")
        assert lookups() == 1  # the same patron in the same kiosk session: the answer is reused
        kiosk.ask(kiosk.sip_end_patron_session_request(), kiosk.sip_end_patron_session_response)
        kiosk.ask(kiosk.sip_patron_status_request(), kiosk.sip_patron_status_response)
        assert lookups() == 2  # a new visit asks again

        kiosk.patron = "south-blocked"  # SOUTH refuses: not valid, SOUTH's reason on the kiosk's screen
        refused = kiosk.ask(kiosk.sip_patron_status_request(), kiosk.sip_patron_status_response)
        assert field(refused, "BL") == "N" and refused["fixed"]["PatronStatus"].startswith("YYYY")
        out = kiosk.ask(kiosk.sip_checkout_request("N00004"), kiosk.sip_checkout_response)
        assert out["fixed"]["Ok"] == "0" and field(out, "AF")
        kiosk.disconnect()
        assert db_rows(net, "NORTH", "SELECT COUNT(*) FROM loan WHERE status = 'open' AND provisional = 0") == [(2,)]
    finally:
        net.stop_all()
