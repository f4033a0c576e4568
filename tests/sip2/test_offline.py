"""Offline: a pass-holder borrows under the offline limit while their home is down, 98 says so, and
"no block" checkouts and checkins stored by a kiosk are applied once, at the kiosk's transaction date."""
import datetime
import re

from node.sip2.codec import sip_date
from tests.sip2.conftest import south_pass
from tests.sip2.kiosk import BLANK, logged_in, rows



def test_pass_holder_borrows_under_the_offline_limit_and_98_says_the_home_is_down(kiosk_node):
    from sync.push import push_due
    kiosk = logged_in(kiosk_node.port)
    npass = south_pass(kiosk_node)
    status = kiosk.ask(b"9900802.00\r").decode()
    assert status.startswith("98YYYYNY")  # nobody has failed to answer yet
    for barcode in ("N0001", "N0002"):  # [policy] offline_max_loans = 2 in this node's config
        answer = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AA{npass}|AB{barcode}|AC|\r".encode()).decode()
        assert answer.startswith("121NNY") and "provisional" in answer, answer
    answer = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AA{npass}|ABN0003|AC|\r".encode()).decode()
    assert answer.startswith("120NNN") and "2 provisional loans" in answer, answer  # the offline limit
    assert rows("SELECT COUNT(*), SUM(provisional) FROM loan WHERE status = 'open'") == [(2, 2)]

    push_due(kiosk_node.cfg, lambda: datetime.datetime.now(datetime.timezone.utc))  # SOUTH does not answer
    status = kiosk.ask(b"9900802.00\r").decode()
    assert status.startswith("98NYYYNY"), status  # online status N, offline OK Y
    assert "Cannot reach South College" in status
    kiosk.close()


def test_no_block_checkout_is_applied_once_at_the_kiosks_date(kiosk_node):
    cfg = kiosk_node.cfg
    kiosk = logged_in(kiosk_node.port)
    npass = south_pass(kiosk_node, issued=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3))
    when = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=2)
    message = f"11NY{sip_date(when, cfg.tz)}{BLANK}AONORTH|AA{npass}|ABN0004|AC|\r".encode()
    first = kiosk.ask(message).decode()
    assert first.startswith("121NNY"), first
    due = re.search(r"\|AH([^|]*)\|", first).group(1)
    again = kiosk.ask(message).decode()
    assert again.startswith("121NNY") and f"|AH{due}|" in again and "nothing changed" in again
    loans = rows("SELECT checked_out_at, provisional FROM loan WHERE status = 'open'")
    assert loans == [(when.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z", 1)]
    assert rows("SELECT COUNT(*) FROM outbox_event WHERE type = 'loan.created'") == [(1,)]
    # The due date runs from the kiosk's date: 14 days ([policy] loan_days) after it, not after now.
    expected = (when.astimezone(cfg.tz).date() + datetime.timedelta(days=14)).strftime("%Y%m%d")
    assert due.startswith(expected)

    # The return, stored while the node was down, is applied once too, at its return date.
    back = when + datetime.timedelta(days=1)
    message = f"09Y{sip_date(back, cfg.tz)}{sip_date(back, cfg.tz)}APLOBBY|AONORTH|ABN0004|AC|\r".encode()
    assert kiosk.ask(message).decode().startswith("101Y")
    again = kiosk.ask(message).decode()
    assert again.startswith("101Y") and "nothing changed" in again
    assert rows("SELECT status, returned_at FROM loan") == [
        ("closed", back.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z")]
    assert rows("SELECT COUNT(*) FROM outbox_event WHERE type = 'loan.returned'") == [(1,)]
    assert rows("SELECT staff, action FROM audit_log WHERE action IN ('checkout', 'return') ORDER BY id") == [
        ("sip2:kiosk1", "checkout"), ("sip2:kiosk1", "return")]
    kiosk.close()


def test_a_normal_checkout_of_the_patrons_own_item_is_answered_ok_or_renewed_when_the_kiosk_allows(kiosk_node):
    kiosk = logged_in(kiosk_node.port)
    days_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=5)
    stored = f"11NY{sip_date(days_ago, kiosk_node.cfg.tz)}{BLANK}AONORTH|AAn-100|ABN0005|AC|\r".encode()
    assert kiosk.ask(stored).decode().startswith("121")
    message = f"11NN20260302    101600{BLANK}AONORTH|AAn-100|ABN0005|AC|\r".encode()
    again = kiosk.ask(message).decode()  # the kiosk does not allow renewals: ok, its due date, nothing renewed
    assert again.startswith("121NNY") and "Already checked out to you" in again, again
    assert rows("SELECT renewals FROM loan") == [(0,)]
    # With SC renewal policy Y, the patron's own item is renewed instead (five days on: a later due date).
    renewed = kiosk.ask(message.replace(b"11NN", b"11YN", 1)).decode()
    assert renewed.startswith("121YNY") and "Renewed" in renewed, renewed
    kiosk.close()
