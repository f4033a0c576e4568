"""Loan rules as pure functions of the lender's policy, its time zone and ``now``."""
import datetime

UTC = datetime.timezone.utc


def end_of_day(day, tz):
    """The last second of DAY in the library's zone, as an aware UTC datetime."""
    local = datetime.datetime.combine(day, datetime.time(23, 59, 59), tzinfo=tz)
    return local.astimezone(UTC)


def due_date(now, loan_days, tz, closed_days=frozenset()):
    """End of the day LOAN_DAYS after NOW (local), moved past closed days."""
    day = now.astimezone(tz).date() + datetime.timedelta(days=loan_days)
    while day in closed_days:
        day += datetime.timedelta(days=1)
    return end_of_day(day, tz)


def renewal_due_date(now, current_due, loan_days, tz, closed_days=frozenset()):
    """The due date a renewal at NOW gives, or None when it would not be later than CURRENT_DUE.

    A renewal runs LOAN_DAYS from the renewal day (moved past closed days),
    like a new loan; one that would not move the due date later is refused and
    uses up nothing (renewing on the day of checkout gave the same date and
    burnt a renewal).
    """
    due = due_date(now, loan_days, tz, closed_days)
    return due if due > current_due else None


def earliest_renewal_day(now, current_due, loan_days, tz, closed_days=frozenset()):
    """The first local day after NOW's on which a renewal would move CURRENT_DUE later."""
    day = now.astimezone(tz).date()
    while True:  # ends: each day's due date is at least the day before's, and grows without bound
        day += datetime.timedelta(days=1)
        midday = datetime.datetime.combine(day, datetime.time(12), tzinfo=tz)
        if renewal_due_date(midday, current_due, loan_days, tz, closed_days):
            return day
