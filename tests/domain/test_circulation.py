"""Circulation rules (node/domain/circulation.py) on a real SQLite file, time passed in."""
import dataclasses
import datetime
import json

import pytest

from node.domain import circulation, errors
from node.domain.circulation import Standing
from node.store.db import database
from node.store.models import Item, Loan, OutboxEvent, Patron

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 10:00 in Zurich
OK = Standing(True)
TABLES = ["item", "patron", "loan", "outbox_event", "audit_log"]


@pytest.fixture
def cfg(opened_node):
    """NORTH (Europe/Zurich, 14-day loans, 2 renewals, 5 loans max) with items and patrons."""
    for n in range(1, 8):
        Item.create(owner="NORTH", barcode=f"N{n}", title=f"Book {n}", item_type="book", updated_at=NOW)
    Item.create(owner="NORTH", barcode="R1", title="Atlas", item_type="reference", updated_at=NOW)
    Item.create(owner="NORTH", barcode="M1", title="Gone", item_type="book", status="missing", updated_at=NOW)
    Item.create(owner="NORTH", barcode="T1", title="Travelling", item_type="book", status="in_transit",
                updated_at=NOW)
    Item.create(owner="NORTH", barcode="L1", title="Lost", item_type="book", status="lost", updated_at=NOW)
    Item.create(owner="SOUTH", barcode="S1", title="South's book", item_type="book", updated_at=NOW)
    Patron.create(institution="NORTH", home_id="n-1", name="Nora", updated_at=NOW)
    Patron.create(institution="NORTH", home_id="n-blocked", blocked=True, block_reason="Unpaid bill",
                  updated_at=NOW)
    Patron.create(institution="NORTH", home_id="n-expired", expires_on=datetime.date(2026, 3, 1), updated_at=NOW)
    Patron.create(institution="NORTH", home_id="n-today", expires_on=datetime.date(2026, 3, 2), updated_at=NOW)
    return opened_node


def snapshot():
    """Every row of the tables a circulation move may touch."""
    return {table: database.execute_sql(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in TABLES}


def own(cfg, barcode, home_id="n-1", now=NOW):
    return circulation.checkout(cfg, barcode, "NORTH", home_id,
                                circulation.own_patron_standing(cfg, home_id, now), now, staff="desk1")


def visiting(cfg, barcode, home_id="s-1", now=NOW, standing=OK):
    return circulation.checkout(cfg, barcode, "SOUTH", home_id, standing, now, staff="desk1")


def outbox():
    return [(e.destination, e.sequence, e.type, json.loads(e.payload)["data"])
            for e in OutboxEvent.select().order_by(OutboxEvent.id)]


# --- checkout ----------------------------------------------------------------

def test_checkout_to_own_patron_opens_a_loan_and_sends_nothing(cfg):
    loan = own(cfg, "N1")
    assert (loan.status, loan.lender, loan.renewals, loan.provisional) == ("open", "NORTH", 0, False)
    assert Item.get(barcode="N1").status == "on_loan"
    assert loan.due_at == datetime.datetime(2026, 3, 16, 22, 59, 59, tzinfo=UTC)  # 23:59:59 CET
    assert outbox() == []


def test_checkout_to_visiting_patron_writes_one_event_for_the_home_node(cfg):
    loan = visiting(cfg, "N1")
    events = outbox()
    assert len(events) == 1
    destination, sequence, kind, data = events[0]
    assert (destination, sequence, kind) == ("SOUTH", 1, "loan.created")
    assert data["loan_id"] == loan.id and data["patron"] == {"institution": "SOUTH", "id": "s-1"}
    assert data["item"]["barcode"] == "N1" and data["lender"] == "NORTH"
    assert Patron.get(institution="SOUTH", home_id="s-1")  # the visiting patron's local record


def _fill_to_limit(cfg):
    for n in range(1, 6):
        own(cfg, f"N{n}")


# (case, setup, the move, expected refusal, HTTP status)
REFUSALS = [
    ("unknown barcode", None, lambda c: own(c, "NOPE"), errors.ItemNotFound, 404),
    ("a peer's item", None, lambda c: own(c, "S1"), errors.ItemNotOwned, 422),
    ("reference item", None, lambda c: own(c, "R1"), errors.ItemNotLoanable, 422),
    ("item already on loan", lambda c: own(c, "N1"), lambda c: visiting(c, "N1"), errors.ItemOnLoan, 409),
    ("missing item", None, lambda c: own(c, "M1"), errors.ItemNotAvailable, 422),
    ("item in transit", None, lambda c: own(c, "T1"), errors.ItemNotAvailable, 422),
    ("lost item", None, lambda c: own(c, "L1"), errors.ItemNotAvailable, 422),
    ("loan limit", _fill_to_limit, lambda c: own(c, "N6"), errors.LoanLimit, 422),
    ("visiting loan limit", lambda c: [visiting(c, f"N{n}") for n in range(1, 6)],
     lambda c: visiting(c, "N6"), errors.LoanLimit, 422),
    ("unknown own patron", None, lambda c: own(c, "N1", "n-nobody"), errors.PatronUnknown, 422),
    ("blocked own patron", None, lambda c: own(c, "N1", "n-blocked"), errors.PatronBlocked, 422),
    ("expired own patron", None, lambda c: own(c, "N1", "n-expired"), errors.PatronExpired, 422),
    ("home node says blocked", None,
     lambda c: visiting(c, "N1", standing=Standing(False, "patron_blocked", "Owes fees")), errors.PatronBlocked, 422),
    ("unknown institution", None,
     lambda c: circulation.checkout(c, "N1", "WEST", "w-1", OK, NOW), errors.UnknownInstitution, 422),
    ("offline limit", lambda c: [visiting(c, f"N{n}", standing=Standing(True, provisional=True)) for n in (1, 2)],
     lambda c: visiting(c, "N3", standing=Standing(True, provisional=True)), errors.OfflineLimitReached, 422),
]


@pytest.mark.parametrize("case, setup, move, refusal, status", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_checkout_refusal_has_its_code_and_changes_nothing(cfg, case, setup, move, refusal, status):
    if setup:
        setup(cfg)
    before = snapshot()
    with pytest.raises(refusal) as refused:
        move(cfg)
    assert refused.value.status == status
    assert refused.value.code == refusal.code
    assert snapshot() == before


def test_own_patron_is_valid_through_the_last_day_of_registration(cfg):
    late = datetime.datetime(2026, 3, 2, 22, 30, tzinfo=UTC)  # 23:30 on 2 March in Zurich
    assert own(cfg, "N1", "n-today", now=late).status == "open"
    next_day = datetime.datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 00:30 on 3 March in Zurich
    with pytest.raises(errors.PatronExpired):
        own(cfg, "N2", "n-today", now=next_day)


# --- due dates ------------------------------------------------------------------

@pytest.mark.parametrize("now, due", [
    # Checked out in winter time, due after the spring DST change (29 March 2026): 23:59:59 CEST.
    (datetime.datetime(2026, 3, 20, 10, 0, tzinfo=UTC), datetime.datetime(2026, 4, 3, 21, 59, 59, tzinfo=UTC)),
    # Checked out in summer time, due after the autumn change (25 October 2026): 23:59:59 CET.
    (datetime.datetime(2026, 10, 20, 10, 0, tzinfo=UTC), datetime.datetime(2026, 11, 3, 22, 59, 59, tzinfo=UTC)),
    # 23:30 UTC is already the next day in Zurich: the loan counts from the local day.
    (datetime.datetime(2026, 3, 2, 23, 30, tzinfo=UTC), datetime.datetime(2026, 3, 17, 22, 59, 59, tzinfo=UTC)),
])
def test_due_date_is_end_of_local_day_across_dst(cfg, now, due):
    loan = own(cfg, "N1", now=now)
    assert loan.due_at == due
    local = loan.due_at.astimezone(cfg.tz)
    assert (local.hour, local.minute, local.second) == (23, 59, 59)
    assert Loan.get_by_id(loan.id).due_at == due  # stored and read back as the same instant


def test_loan_json_shows_due_date_with_the_local_offset(cfg):
    loan = own(cfg, "N1", now=datetime.datetime(2026, 3, 20, 10, 0, tzinfo=UTC))
    body = circulation.get_loan(loan.id).to_dict(cfg.tz)
    assert body["due_at"] == "2026-04-03T23:59:59+02:00"
    assert body["checked_out_at"] == "2026-03-20T11:00:00+01:00"


# --- renew ----------------------------------------------------------------------

def test_renewal_runs_loan_days_from_today_until_the_limit(cfg):
    loan = own(cfg, "N1")
    ten_days = NOW + datetime.timedelta(days=10)
    renewed = circulation.renew(cfg, loan.id, ten_days)
    assert renewed.renewals == 1
    assert renewed.due_at == datetime.datetime(2026, 3, 26, 22, 59, 59, tzinfo=UTC)
    circulation.renew(cfg, loan.id, ten_days + datetime.timedelta(days=5))
    before = snapshot()
    with pytest.raises(errors.RenewalLimit) as refused:
        circulation.renew(cfg, loan.id, ten_days + datetime.timedelta(days=6))
    assert refused.value.code == "renewal_limit_reached" and refused.value.status == 422
    assert snapshot() == before


def test_renewal_that_would_not_move_the_due_date_is_refused_and_changes_nothing(cfg):
    loan = visiting(cfg, "N1")
    stricter = dataclasses.replace(cfg, policy={"": dict(cfg.policy[""], loan_days=3)})
    before = snapshot()
    for config, when in ((stricter, NOW + datetime.timedelta(days=1)), (cfg, NOW)):  # shorter; the same day
        with pytest.raises(errors.RenewalTooEarly):
            circulation.renew(config, loan.id, when)
        assert snapshot() == before  # no renewal counted, no loan.renewed event
    assert circulation.renew(cfg, loan.id, NOW + datetime.timedelta(days=1)).renewals == 1


def test_renewal_for_visiting_patron_writes_one_event_and_none_for_own(cfg):
    theirs = visiting(cfg, "N1")
    mine = own(cfg, "N2")
    circulation.renew(cfg, mine.id, NOW + datetime.timedelta(days=1))
    assert [e[2] for e in outbox()] == ["loan.created"]
    renewed = circulation.renew(cfg, theirs.id, NOW + datetime.timedelta(days=7))
    events = outbox()
    assert [(e[0], e[1], e[2]) for e in events] == [("SOUTH", 1, "loan.created"), ("SOUTH", 2, "loan.renewed")]
    assert events[1][3] == {"loan_id": theirs.id, "lender": "NORTH", "renewals": 1,
                            "due_at": renewed.due_at.isoformat()}


@pytest.mark.parametrize("case, prepare, refusal", [
    ("closed loan", lambda c, loan: circulation.return_item(c, "N1", NOW), errors.LoanClosed),
    ("blocked patron", lambda c, loan: Patron.update(blocked=True).execute(), errors.PatronBlocked),
    ("another lender's loan", lambda c, loan: Loan.update(lender="SOUTH").execute(), errors.Forbidden),
])
def test_renewal_refusals(cfg, case, prepare, refusal):
    loan = own(cfg, "N1")
    prepare(cfg, loan)
    before = snapshot()
    with pytest.raises(refusal):
        circulation.renew(cfg, loan.id, NOW + datetime.timedelta(days=1))
    assert snapshot() == before


def test_renewing_an_unknown_loan_is_loan_not_found(cfg):
    with pytest.raises(errors.LoanNotFound):
        circulation.renew(cfg, "no-such-loan", NOW)


# --- return ---------------------------------------------------------------------

def test_return_closes_the_loan_and_frees_the_item(cfg):
    loan = own(cfg, "N1")
    later = NOW + datetime.timedelta(days=3)
    result = circulation.return_item(cfg, "N1", later, staff="desk1")
    closed = Loan.get_by_id(loan.id)
    assert (closed.status, closed.returned_at, closed.returned_at_institution) == ("closed", later, "NORTH")
    assert Item.get(barcode="N1").status == "available"
    assert result.loan.id == loan.id and result.transit_to is None
    assert outbox() == []
    assert own(cfg, "N1").status == "open"  # it can go out again


def test_a_return_dated_before_its_checkout_is_dated_at_the_checkout(cfg):
    loan = visiting(cfg, "N1")
    circulation.return_item(cfg, "N1", NOW - datetime.timedelta(days=400), staff="sip2:kiosk1")
    closed = Loan.get_by_id(loan.id)
    assert (closed.status, closed.returned_at) == ("closed", loan.checked_out_at)
    assert outbox()[1][3]["returned_at"] == loan.checked_out_at.isoformat()  # the home node hears the same date
    (detail,), = database.execute_sql("SELECT detail FROM audit_log WHERE action = 'return'").fetchall()
    assert "before the checkout" in detail


def test_return_of_visiting_patrons_loan_writes_one_event(cfg):
    loan = visiting(cfg, "N1")
    circulation.return_item(cfg, "N1", NOW + datetime.timedelta(days=2))
    events = outbox()
    assert [(e[1], e[2]) for e in events] == [(1, "loan.created"), (2, "loan.returned")]
    assert events[1][3]["loan_id"] == loan.id and events[1][3]["returned_at_institution"] == "NORTH"


@pytest.mark.parametrize("barcode, status", [("N1", "available"), ("M1", "missing")])
def test_returning_an_item_not_on_loan_is_refused_and_changes_nothing(cfg, barcode, status):
    before = snapshot()
    with pytest.raises(errors.NotOnLoan) as refused:
        circulation.return_item(cfg, barcode, NOW)
    assert (refused.value.code, refused.value.status) == ("not_on_loan", 422)
    assert refused.value.details["status"] == status
    assert snapshot() == before


def test_returning_twice_is_refused_the_second_time(cfg):
    own(cfg, "N1")
    circulation.return_item(cfg, "N1", NOW)
    before = snapshot()
    with pytest.raises(errors.NotOnLoan):
        circulation.return_item(cfg, "N1", NOW)
    assert snapshot() == before


# --- atomicity: the loan and its event commit together or not at all -------------

@pytest.fixture
def outbox_down(cfg):
    """Make every insert into the outbox fail inside SQLite itself."""
    def install():
        database.execute_sql("CREATE TRIGGER outbox_down BEFORE INSERT ON outbox_event "
                             "BEGIN SELECT RAISE(ABORT, 'outbox is down'); END")
    return install


def test_checkout_is_undone_when_its_event_cannot_be_written(cfg, outbox_down):
    outbox_down()
    before = snapshot()
    with pytest.raises(Exception, match="outbox is down"):
        visiting(cfg, "N1")
    assert snapshot() == before
    assert Item.get(barcode="N1").status == "available"
    assert Loan.select().count() == 0


def test_renewal_is_undone_when_its_event_cannot_be_written(cfg, outbox_down):
    loan = visiting(cfg, "N1")
    outbox_down()
    before = snapshot()
    with pytest.raises(Exception, match="outbox is down"):
        circulation.renew(cfg, loan.id, NOW + datetime.timedelta(days=7))
    assert snapshot() == before
    assert Loan.get_by_id(loan.id).renewals == 0


def test_return_is_undone_when_its_event_cannot_be_written(cfg, outbox_down):
    loan = visiting(cfg, "N1")
    outbox_down()
    before = snapshot()
    with pytest.raises(Exception, match="outbox is down"):
        circulation.return_item(cfg, "N1", NOW + datetime.timedelta(days=2))
    assert snapshot() == before
    assert Loan.get_by_id(loan.id).status == "open" and Item.get(barcode="N1").status == "on_loan"


# --- item status (admin) --------------------------------------------------------

def test_item_can_be_declared_missing_and_found_again(cfg):
    assert circulation.set_item_status(cfg, "N1", "missing", NOW, staff="admin1").status == "missing"
    with pytest.raises(errors.ItemNotAvailable):
        own(cfg, "N1")
    assert circulation.set_item_status(cfg, "N1", "available", NOW, staff="admin1").status == "available"
    assert own(cfg, "N1").status == "open"
    actions = database.execute_sql("SELECT action, target, detail FROM audit_log WHERE action='item_status'"
                                   " ORDER BY id").fetchall()
    assert actions == [("item_status", "N1", "missing"), ("item_status", "N1", "available")]


@pytest.mark.parametrize("barcode, status, refusal", [
    ("N1", "lost", errors.InvalidField),
    ("S1", "missing", errors.ItemNotFound),  # only own items
    ("T1", "missing", errors.ItemNotAvailable),  # in transit: receive it first
])
def test_item_status_refusals_change_nothing(cfg, barcode, status, refusal):
    before = snapshot()
    with pytest.raises(refusal):
        circulation.set_item_status(cfg, barcode, status, NOW)
    assert snapshot() == before


def test_item_on_loan_cannot_be_declared_missing(cfg):
    own(cfg, "N1")
    before = snapshot()
    with pytest.raises(errors.ItemOnLoan):
        circulation.set_item_status(cfg, "N1", "missing", NOW)
    assert snapshot() == before


def test_setting_the_status_an_item_already_has_changes_nothing(cfg):
    before = snapshot()
    assert circulation.set_item_status(cfg, "M1", "missing", NOW).status == "missing"
    assert snapshot() == before


def test_a_visit_lends_only_on_a_fresh_yes_of_the_home_node(cfg):
    import datetime as dt
    from node.domain.circulation import HOME, OWN, PASS, UNREACHABLE, Standing
    from node.domain.standing import reusable
    ttl = cfg.sync["standing_cache_seconds"]
    yes = Standing(True, source=HOME, asked_at=NOW)
    assert reusable(cfg, yes, NOW + dt.timedelta(seconds=ttl - 1))
    assert not reusable(cfg, yes, NOW + dt.timedelta(seconds=ttl))  # too old: ask again
    assert not reusable(cfg, yes, NOW - dt.timedelta(seconds=1))  # from the future: ask again
    assert not reusable(cfg, None, NOW)  # a new visit has none: it asks
    for other in (Standing(False, "patron_blocked", source=HOME, asked_at=NOW), Standing(True, source=OWN),
                  Standing(True, provisional=True, source=UNREACHABLE), Standing(True, provisional=True, source=PASS)):
        assert not reusable(cfg, other, NOW), other
    assert Standing.from_dict(yes.to_dict()) == yes  # as the desk keeps it in the visit


def test_a_renewal_runs_from_the_renewal_day_and_is_refused_when_it_would_not_move_the_due_date():
    import datetime as dt
    from zoneinfo import ZoneInfo

    from node.domain.calendar import Calendar
    from node.domain.policy import due_date, earliest_renewal_day, renewal_due_date
    tz, sundays = ZoneInfo("Europe/Zurich"), Calendar(closed_weekdays=frozenset({6}))
    lent = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)  # a Monday
    due = due_date(lent, 14, tz, sundays)
    assert renewal_due_date(lent, due, 14, tz, sundays) is None  # the day of checkout: the same date
    assert renewal_due_date(lent + dt.timedelta(days=1), due, 14, tz, sundays) == due_date(
        lent + dt.timedelta(days=1), 14, tz, sundays)
    assert earliest_renewal_day(lent, due, 14, tz, sundays) == dt.date(2026, 3, 3)
    # Lent on a Friday for 2 days: due Sunday is closed, so Monday; a renewal on Saturday would give Monday too.
    friday = dt.datetime(2026, 3, 6, 9, 0, tzinfo=dt.timezone.utc)
    monday_due = due_date(friday, 2, tz, sundays)
    assert monday_due.astimezone(tz).date() == dt.date(2026, 3, 9)
    assert renewal_due_date(friday + dt.timedelta(days=1), monday_due, 2, tz, sundays) is None
    assert earliest_renewal_day(friday, monday_due, 2, tz, sundays) == dt.date(2026, 3, 8)
