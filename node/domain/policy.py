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
    """A renewal runs LOAN_DAYS from today, never shortening the current loan."""
    return max(current_due, due_date(now, loan_days, tz, closed_days))
