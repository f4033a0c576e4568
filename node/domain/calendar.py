"""The lender's calendar: the local days the library is closed.

Due dates never fall on a closed day (``node.domain.policy.due_date`` skips the days
a ``Calendar`` contains) and fines never accrue on one.  Fines are always
counted on the *lender's* calendar, wherever the item is returned.
"""
import datetime
from dataclasses import dataclass

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_RANGE_DAYS = 366


def parse_weekdays(value):
    """'sat, sun' -> frozenset({5, 6}); refuses a week with no open day."""
    days = set()
    for part in value.replace(",", " ").split():
        name = part.strip().lower()[:3]
        if name not in WEEKDAYS:
            raise ValueError("expected weekday names such as sat, sun")
        days.add(WEEKDAYS.index(name))
    if len(days) == 7:
        raise ValueError("a library closed every weekday would never have a due date")
    return frozenset(days)


def parse_dates(value):
    """'2026-12-24..2026-12-26, 2027-01-01' -> the frozenset of those dates."""
    days = set()
    for part in value.replace(",", " ").split():
        first, _, last = part.partition("..")
        try:
            start = datetime.date.fromisoformat(first)
            end = datetime.date.fromisoformat(last) if last else start
        except ValueError:
            raise ValueError("expected dates YYYY-MM-DD or ranges YYYY-MM-DD..YYYY-MM-DD") from None
        if end < start or (end - start).days > MAX_RANGE_DAYS:
            raise ValueError(f"a range runs forward and spans at most {MAX_RANGE_DAYS} days")
        days.update(start + datetime.timedelta(days=n) for n in range((end - start).days + 1))
    return frozenset(days)


@dataclass(frozen=True)
class Calendar:
    closed_weekdays: frozenset = frozenset()  # 0 is Monday
    closed_dates: frozenset = frozenset()

    def __contains__(self, day):
        """True when DAY (a local date) is a closed day."""
        return day.weekday() in self.closed_weekdays or day in self.closed_dates

    def open_days(self, first, last):
        """How many open days lie in FIRST..LAST (local dates, both included)."""
        count, day = 0, first
        while day <= last:
            if day not in self:
                count += 1
            day += datetime.timedelta(days=1)
        return count


def calendar_of(cfg):
    """The calendar of the node configured by CFG ([calendar])."""
    section = cfg.sections.get("calendar") or {}
    return Calendar(section.get("closed_weekdays", frozenset()), section.get("closed_dates", frozenset()))


def local_day(moment, tz):
    return moment.astimezone(tz).date()
