"""The outside review of the kiosk server (issue 15): stored transactions with a wrong clock, a return
dated before its checkout, idle sockets holding every slot, a retried checkout, the provisional note,
and refund credits in 64.  Each runs against the real server on a loopback socket."""
import datetime
import logging
import re
import socket
import time
from decimal import Decimal

import pytest

from node.sip2.codec import sip_date
from tests.sip2.conftest import south_pass, start_kiosk_node
from tests.sip2.kiosk import BLANK, KIOSK_PASSWORD, Raw, logged_in, rows

UTC = datetime.timezone.utc


def _field(answer, tag):
    found = re.search(rf"\|{tag}([^|]*)\|", answer)
    return found.group(1) if found else None


# --- 1. a no-block transaction from a kiosk whose clock is wrong ---

def test_a_no_block_checkout_dated_long_ago_is_refused_and_lends_nothing(kiosk_node):
    kiosk = logged_in(kiosk_node.port)
    answer = kiosk.ask(f"11NY20200101    120000{BLANK}AONORTH|AAn-100|ABN0001|AC|\r".encode()).decode()
    assert answer.startswith("120NNN"), answer
    assert "more than 7 days ago" in _field(answer, "AF") and _field(answer, "AH") == ""
    assert rows("SELECT COUNT(*) FROM loan") == [(0,)]
    assert rows("SELECT COUNT(*) FROM applied_once") == [(0,)]  # refused: the kiosk may send it again, fixed
    kiosk.close()


def test_a_no_block_checkin_dated_long_ago_is_refused_and_the_loan_stays_open(kiosk_node):
    kiosk = logged_in(kiosk_node.port)
    assert kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AAn-100|ABN0002|AC|\r".encode()).startswith(b"121")
    eight_days = sip_date(datetime.datetime.now(UTC) - datetime.timedelta(days=8), kiosk_node.cfg.tz)
    answer = kiosk.ask(f"09Y{eight_days}{eight_days}APLOBBY|AONORTH|ABN0002|AC|\r".encode()).decode()
    assert answer.startswith("100NNY"), answer  # not ok, alert
    assert "more than 7 days ago" in _field(answer, "AF")
    assert rows("SELECT status, returned_at FROM loan") == [("open", None)]
    kiosk.close()


def test_no_block_max_age_days_is_the_bound(tmp_path, south_key):
    from node.store.db import database as db
    from tests.sip2.conftest import kiosk_node_config
    cfg, server = start_kiosk_node(kiosk_node_config(str(tmp_path / "north"), south_key[1],
                                                     "no_block_max_age_days = 30\n"))
    try:
        kiosk = logged_in(server.server_address[1])
        twenty = sip_date(datetime.datetime.now(UTC) - datetime.timedelta(days=20), cfg.tz)
        assert kiosk.ask(f"11NY{twenty}{BLANK}AONORTH|AAn-100|ABN0001|AC|\r".encode()).startswith(b"121")
        forty = sip_date(datetime.datetime.now(UTC) - datetime.timedelta(days=40), cfg.tz)
        answer = kiosk.ask(f"11NY{forty}{BLANK}AONORTH|AAn-100|ABN0002|AC|\r".encode()).decode()
        assert answer.startswith("120") and "more than 30 days ago" in answer
        kiosk.close()
    finally:
        server.shutdown()
        server.server_close()
        db.close()


def test_a_no_block_checkout_dated_in_the_future_is_applied_now(kiosk_node):
    kiosk = logged_in(kiosk_node.port)
    before = datetime.datetime.now(UTC)
    tomorrow = sip_date(before + datetime.timedelta(days=1), kiosk_node.cfg.tz)
    assert kiosk.ask(f"11NY{tomorrow}{BLANK}AONORTH|AAn-100|ABN0003|AC|\r".encode()).startswith(b"121")
    (checked_out,), = rows("SELECT checked_out_at FROM loan")
    at = datetime.datetime.fromisoformat(checked_out[:-1]).replace(tzinfo=UTC)
    assert before - datetime.timedelta(seconds=1) <= at <= datetime.datetime.now(UTC)
    kiosk.close()


@pytest.mark.parametrize("message", [
    f"11NY00010101    000000{BLANK}AONORTH|AAn-100|ABN0004|AC|",
    "09Y00010101    00000000010101    000000APLOBBY|AONORTH|ABN0004|AC|",
    "09Y20260302    10160000010101    000000APLOBBY|AONORTH|ABN0004|AC|",
    f"11NY99991231    235959{BLANK}AONORTH|AAn-100|ABN0004|AC|",
])
def test_a_date_out_of_range_is_answered_96_and_the_session_goes_on(kiosk_node, caplog, message):
    caplog.set_level(logging.INFO, logger="node")
    kiosk = logged_in(kiosk_node.port)
    answer = kiosk.ask(message.encode() + b"\r")
    # Year 1 at midnight in Zurich is before any UTC datetime: 96.  Year 9999 is only far in the future: now.
    assert answer.startswith(b"96") or answer.startswith(b"121"), answer
    assert kiosk.ask(b"9900802.00\r").startswith(b"98")
    assert "failed" not in caplog.text and "OverflowError" not in caplog.text
    kiosk.close()


# --- 2. a return is never dated before its loan's checkout ---

def test_a_no_block_return_dated_before_its_checkout_is_dated_at_the_checkout(kiosk_node):
    kiosk = logged_in(kiosk_node.port)
    assert kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AAn-100|ABN0005|AC|\r".encode()).startswith(b"121")
    days_ago = sip_date(datetime.datetime.now(UTC) - datetime.timedelta(days=3), kiosk_node.cfg.tz)
    answer = kiosk.ask(f"09Y{days_ago}{days_ago}APLOBBY|AONORTH|ABN0005|AC|\r".encode()).decode()
    assert answer.startswith("101Y"), answer  # the item did come back
    assert rows("SELECT status, returned_at = checked_out_at FROM loan") == [("closed", 1)]
    (detail,), = rows("SELECT detail FROM audit_log WHERE action = 'return'")
    assert "before the checkout" in detail
    kiosk.close()


# --- 3. idle sockets cannot shut the kiosks out ---

@pytest.fixture
def patient_node(tmp_path, south_key):
    """NORTH with idle_timeout_seconds = 60 and login_timeout_seconds = 5."""
    from node.store.db import database as db
    from tests.sip2.conftest import kiosk_node_config
    cfg, server = start_kiosk_node(kiosk_node_config(str(tmp_path / "north"), south_key[1],
                                                     "login_timeout_seconds = 5\n", idle_timeout=60))
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    db.close()


def test_a_connection_that_does_not_log_in_is_closed_after_the_login_timeout(patient_node):
    silent = socket.create_connection(("127.0.0.1", patient_node), timeout=20)
    kiosk = logged_in(patient_node)
    started = time.monotonic()
    assert silent.recv(100) == b""  # closed after login_timeout_seconds, not idle_timeout_seconds (60)
    assert 4 <= time.monotonic() - started < 10
    silent.close()
    time.sleep(1.5)
    assert kiosk.ask(b"9900802.00\r").startswith(b"98")  # logged in: the idle timeout applies
    kiosk.close()


def test_one_address_cannot_take_every_connection(kiosk_node, caplog):
    caplog.set_level(logging.INFO, logger="node")
    held = [logged_in(kiosk_node.port) for _ in range(8)]  # [sip2] max_connections_per_address = 8 (default)
    ninth = Raw(kiosk_node.port, timeout=5)
    assert ninth.ask(f"9300CNkiosk1|CO{KIOSK_PASSWORD}|\r".encode()) == b""  # closed at once
    ninth.close()
    assert "refused: 8 connections from this address already" in caplog.text
    held.pop().close()
    deadline = time.monotonic() + 5
    while True:  # the server sees the close on its own thread
        try:
            again = logged_in(kiosk_node.port, timeout=5)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert again.ask(b"9900802.00\r").startswith(b"98")
    for kiosk in held + [again]:
        kiosk.close()


# --- 4. a checkout retried for the patron's own item ---

def test_a_checkout_retried_for_the_patrons_own_item_answers_ok_with_its_due_date(kiosk_node):
    kiosk = logged_in(kiosk_node.port)
    message = f"11NN20260302    101600{BLANK}AONORTH|AAn-100|ABN0006|AC|\r".encode()
    first = kiosk.ask(message).decode()
    assert first.startswith("121NNY"), first
    kiosk.close()
    kiosk = logged_in(kiosk_node.port)  # reconnected: the same checkout sent again
    for retry in (message, message.replace(b"11NN", b"11YN", 1)):  # renewal not allowed; allowed but too early
        again = kiosk.ask(retry).decode()
        assert again.startswith("121NNY"), again  # ok, no renewal, desensitize
        assert _field(again, "AH") == _field(first, "AH") and _field(again, "BK") == _field(first, "BK")
        assert "Already checked out to you" in _field(again, "AF")
    assert rows("SELECT renewals FROM loan") == [(0,)]
    assert rows("SELECT COUNT(*) FROM audit_log WHERE action = 'renew'") == [(0,)]
    # Another patron's checkout of the item stays refused.
    npass = south_pass(kiosk_node)
    other = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AA{npass}|ABN0006|AC|\r".encode()).decode()
    assert other.startswith("120NNN") and "already on loan" in other, other
    kiosk.close()


# --- 5. the note of a provisional loan ---

def test_a_pass_loan_says_home_not_asked_and_an_unreachable_home_says_made_offline(kiosk_node):
    kiosk = logged_in(kiosk_node.port)
    npass = south_pass(kiosk_node)
    answer = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AA{npass}|ABN0007|AC|\r".encode()).decode()
    assert answer.startswith("121NNY"), answer
    assert _field(answer, "AF") == "Checked out (provisional: home library not asked)."
    # A card number: SOUTH is asked and cannot be reached.
    answer = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AAS123456|ABN0008|AC|\r".encode()).decode()
    assert answer.startswith("121NNY"), answer
    assert _field(answer, "AF") == "Checked out (made offline, provisional)."
    assert rows("SELECT provisional, made_offline FROM loan ORDER BY checked_out_at") == [(1, 0), (1, 1)]
    kiosk.close()


# --- 6. refund credits in 64 ---

def test_patron_information_lists_no_refund_credit_as_a_fine(kiosk_node):
    from node.store.models import Fee, Patron
    now = datetime.datetime.now(UTC)
    patron = Patron.of("NORTH", "n-100")
    for loan_id, reason, amount in (("L1", "fine", "30.00"), ("L2", "refund", "-26.12")):
        Fee.create(lender="NORTH", home="NORTH", loan_id=loan_id, patron=patron, item_barcode=f"N000{loan_id[1]}",
                   reason=reason, amount=Decimal(amount), currency="EUR", assessed_at=now, updated_at=now)
    kiosk = logged_in(kiosk_node.port)
    answer = kiosk.ask(b"6300020260302    101500   Y      AONORTH|AAn-100|AC|\r").decode()
    assert answer.startswith("64"), answer
    assert answer[49:53] == "0001", answer  # fine items: the charge only
    assert re.findall(r"\|AV([^|]*)", answer) == ["N0001 30.00 EUR fine"]
    assert _field(answer, "BV") == "3.88"  # the balance owed: the credit counts against the charge
    status = kiosk.ask(b"23000" + b"20260302    101500" + b"AONORTH|AAn-100|AC|\r").decode()
    assert _field(status, "BV") == "3.88"
    kiosk.close()
