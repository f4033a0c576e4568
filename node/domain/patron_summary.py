"""What the desk shows of a patron once the visit has begun, before the first scan.

The home node's answer and when it was asked, the patron's loans and fees at
this library, the limits that apply (the offline limit when the answer is
provisional), and their registration's expiry when this library keeps it.
Gathered here, so the visit page only renders it.
"""
import datetime
from dataclasses import dataclass, field

from node.domain.circulation import PASS, UNREACHABLE
from node.store.db import database
from node.store.models import Item, Loan, Patron, cents_to_money


@dataclass
class PatronSummary:
    """One patron at this desk: the answer about them, their loans and fees here, their limits."""

    institution: str
    home_id: str
    name: str
    answer: str  # the home node's answer in words
    asked_at: datetime.datetime = None  # when it was asked (None: not asked, e.g. a network pass)
    provisional: bool = False  # home unreachable, or not asked (a pass): loans under the offline limit
    source: str = ""  # why provisional: circulation.UNREACHABLE (asked, no answer) or PASS (not asked)
    loans_here: list = field(default_factory=list)  # open loans this library lent them, due first
    fees_here: dict = field(default_factory=dict)  # {currency: balance owed to this library}
    max_loans: int = 0
    offline_max_loans: int = None  # only when provisional
    expires_on: datetime.date = None  # only this library's own patrons: a home node does not tell
    blocked_reason: str = ""
    overdue_here: int = 0  # of loans_here, as of the summary's now

    @property
    def loans_left(self):
        """How many more loans this library may make them now."""
        limit = self.max_loans
        if self.provisional:
            offline = sum(1 for loan in self.loans_here if loan.provisional)
            return max(0, min(limit - len(self.loans_here), self.offline_max_loans - offline))
        return max(0, limit - len(self.loans_here))

    @property
    def not_asked(self):
        """True when the home node was not asked (a network pass), as opposed to asked and unreachable."""
        return self.source == PASS


# Open fees of one patron owed to one lender: the fee_patron_status index, then a filter on few rows.
_FEES_HERE = ("SELECT currency, SUM(amount - paid) FROM fee WHERE patron_id = ? AND status = 'open' "
              "AND lender = ? GROUP BY currency")


def summarise(cfg, institution, home_id, now, asked_at=None, provisional=False, via=""):
    """The summary of patron HOME_ID of INSTITUTION at this library as of NOW.

    ASKED_AT is when their standing was answered (by their home node, or our own
    records for our patrons); VIA how the visit began ("pass": a network pass, the home not asked).
    """
    patron = Patron.of(institution, home_id)
    policy = cfg.policy[""]
    own = institution == cfg.institution
    if via == "pass":
        answer = "not asked: the network pass vouches for the patron"
    elif provisional:
        answer = f"{cfg.library_name(institution)} could not be reached: loans are provisional"
    elif own:
        answer = "may borrow (this library's own records)"
    else:
        answer = f"{cfg.library_name(institution)} says the patron may borrow"
    source = PASS if via == "pass" else UNREACHABLE if provisional else ""
    summary = PatronSummary(institution=institution, home_id=home_id, name=patron.name if patron else "",
                            answer=answer, asked_at=None if via == "pass" else asked_at, provisional=provisional,
                            source=source,
                            max_loans=policy["max_loans"],
                            offline_max_loans=policy["offline_max_loans"] if provisional else None)
    if patron is None:
        return summary  # a first visit: nothing here yet
    summary.loans_here = list(Loan.select(Loan, Item, Patron).join(Item).switch(Loan).join(Patron)  # the desk's table
                              .where((Loan.patron == patron) & (Loan.status == "open")
                                     & (Loan.lender == cfg.institution))
                              .order_by(Loan.due_at).limit(200))
    summary.overdue_here = sum(1 for loan in summary.loans_here if loan.is_overdue(now))
    summary.fees_here = {code: cents_to_money(cents) for code, cents in
                         database.execute_sql(_FEES_HERE, (patron.id, cfg.institution)) if cents}
    if own:
        summary.expires_on = patron.expires_on
        summary.blocked_reason = patron.block_reason if patron.blocked else ""
    return summary
