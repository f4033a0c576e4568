"""Notices by email, tested against a real SMTP server on loopback (aiosmtpd)."""
import datetime
import email
import email.policy
import os

import pytest
from aiosmtpd.controller import Controller

from tests.network import free_port
from tests.helpers.billing import build_lender, lend
from tests.helpers.mail import Inbox

UTC = datetime.timezone.utc


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.port, inbox.controller = port, controller
    yield inbox
    if controller.loop.is_running():
        controller.stop()


def mail_config(port, host="127.0.0.1"):
    return f"\n[smtp]\nhost = {host}\nport = {port}\nsender = circulation@north.test\nretry_minutes = 15\n"


@pytest.fixture
def lender_with_mail(tmp_path, smtp):
    cfg = build_lender(tmp_path, mail_config(smtp.port))
    yield cfg
    from node.store.db import database
    database.close()


def morning(day):
    """08:00 in Zurich on DAY (March/April 2026: before and after the DST change)."""
    return datetime.datetime.combine(day, datetime.time(8, 0), tzinfo=__import__("zoneinfo").ZoneInfo(
        "Europe/Zurich")).astimezone(UTC)


def test_notices_arrive_on_the_right_days_once_each(lender_with_mail, smtp):
    from node.domain.jobs import run_daily
    lend(lender_with_mail, "N0001", "SOUTH", "south-7")  # due Monday 16 March; 40.00 replacement cost
    arrived = {}
    day = datetime.date(2026, 3, 10)
    while day <= datetime.date(2026, 4, 17):
        before = len(smtp.messages)
        results = run_daily(lender_with_mail, morning(day))
        assert not any(summary.get("error") for summary in results.values()), results
        for _, message in smtp.messages[before:]:
            arrived[message["X-Circnode-Notice"]] = day.isoformat()
        day += datetime.timedelta(days=1)
    assert arrived == {"courtesy": "2026-03-13", "overdue-1": "2026-03-17", "overdue-7": "2026-03-23",
                       "lost": "2026-04-15"}
    assert len(smtp.messages) == 4  # once per loan and kind, though the job ran 39 times
    recipients, courtesy = smtp.messages[0]
    assert recipients == ["sam@south.test"] and courtesy["To"] == "sam@south.test"
    assert courtesy["From"] == "North University <circulation@north.test>"
    assert courtesy["Subject"] == "Due soon: Book 1"
    text = courtesy.get_body(("plain",)).get_content()
    html = courtesy.get_body(("html",)).get_content()
    assert "Dear Sam South" in text and "Book 1" in text and "Monday 16 March 2026" in text
    assert "<p>Dear Sam South,</p>" in html and "Monday 16 March 2026" in html
    _, lost = smtp.messages[3]
    lost_text = lost.get_body(("plain",)).get_content()
    assert "Replacement cost" in lost_text and "40.00 CHF" in lost_text and "55.00 CHF" in lost_text
    assert "<strong>declared lost</strong>" in lost.get_body(("html",)).get_content()


def test_catching_up_after_days_without_a_run_sends_the_latest_overdue_notice_only(lender_with_mail, smtp):
    from node.domain.jobs import run_daily
    from node.store.models import Notice
    loan = lend(lender_with_mail, "N0001", "SOUTH", "south-7")
    run_daily(lender_with_mail, morning(datetime.date(2026, 3, 25)))
    assert smtp.kinds() == ["overdue-7"]
    states = {(n.kind, n.stage): n.state for n in Notice.select().where(Notice.loan_id == loan.id)}
    assert states == {("overdue", 1): "skipped", ("overdue", 7): "sent"}


def test_mail_server_down_notice_waits_and_circulation_goes_on(tmp_path):
    from node.domain.circulation import return_item
    from node.domain.jobs import run_daily
    from node.store.models import Notice
    from node.domain.notices import send_due
    port = free_port()  # nothing listens here yet
    cfg = build_lender(tmp_path, mail_config(port))
    try:
        lend(cfg, "N0001", "SOUTH", "south-7")
        first = morning(datetime.date(2026, 3, 17))
        results = run_daily(cfg, first)
        assert results["notices"] == {"notices_planned": 0, "sent": 0, "waiting": 1}
        (notice,) = Notice.select()
        assert (notice.state, notice.attempts, notice.kind) == ("pending", 1, "overdue")
        assert "ConnectionRefusedError" in notice.last_error and "south" not in notice.last_error
        # The desk is not held up: lending and returning go on while the mail server is away.
        lend(cfg, "N0002", "NORTH", "n-100", when=first)
        return_item(cfg, "N0002", first + datetime.timedelta(minutes=1))
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            assert send_due(cfg, first + datetime.timedelta(minutes=14)) == {"sent": 0, "waiting": 0}  # not yet
            assert send_due(cfg, first + datetime.timedelta(minutes=16)) == {"sent": 1, "waiting": 0}
            assert send_due(cfg, first + datetime.timedelta(days=2)) == {"sent": 0, "waiting": 0}
        finally:
            controller.stop()
        assert inbox.kinds() == ["overdue-1"]
        assert Notice.get_by_id(notice.id).state == "sent"
    finally:
        from node.store.db import database
        database.close()


def test_a_patron_without_an_email_address_is_skipped_not_retried(lender_with_mail, smtp):
    from node.domain.circulation import Standing, checkout
    from node.domain.jobs import run_daily
    from node.store.models import Notice
    checkout(lender_with_mail, "N0003", "SOUTH", "south-8", Standing(True),
             datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    run_daily(lender_with_mail, morning(datetime.date(2026, 3, 17)))
    assert smtp.messages == []
    assert [(n.state, n.last_error) for n in Notice.select()] == [("skipped", "no email address")]


def test_without_a_mail_server_notices_are_written_as_files(tmp_path):
    from node.domain.jobs import run_daily
    cfg = build_lender(tmp_path)
    try:
        lend(cfg, "N0001")
        run_daily(cfg, morning(datetime.date(2026, 3, 14)))
        folder = os.path.join(cfg.data_dir, "mail")
        (name,) = os.listdir(folder)
        with open(os.path.join(folder, name), "rb") as handle:
            message = email.message_from_bytes(handle.read(), policy=email.policy.default)
        assert message["To"] == "nora@north.test" and message["X-Circnode-Notice"] == "courtesy"
    finally:
        from node.store.db import database
        database.close()
