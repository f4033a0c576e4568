"""What the receiver knows of a loan, fee or patron, as the catalogue's authority rules read it.

An authority rule (sync/catalogue.py) asks ``facts.loan(id)``,
``facts.fee(id)``, ``facts.patron(home_id)`` and ``facts.item_loan(owner,
barcode)``.  ``EventContext`` answers from the database, for an event
applied on its own; a run of loan events answers from the rows it holds in
memory (sync/loan_events.py), as its earlier events left them.
"""
from dataclasses import dataclass

from node.store.db import database
from node.store.models import Fee, FeePayment, Loan, Patron, UTCDateTimeField

# One loan with the parties a rule checks: its lender, its item's owner and
# barcode, its patron's home and id (NULL once anonymised), where it was returned.
LOAN_FACTS = ("SELECT loan.id, loan.lender, loan.status, loan.returned_at, loan.returned_at_institution, "
              "item.id, item.owner, item.barcode, patron.institution, patron.home_id, loan.checked_out_at "
              "FROM loan JOIN item ON item.id = loan.item_id LEFT JOIN patron ON patron.id = loan.patron_id "
              "WHERE loan.id {match}")
_ONE_LOAN = LOAN_FACTS.format(match="= ?")
_ITEM_LOAN = ("SELECT loan.lender FROM item JOIN loan ON loan.item_id = item.id AND loan.status = 'open' "
              "WHERE item.owner = ? AND item.barcode = ?")
_time = UTCDateTimeField().python_value


@dataclass(slots=True)
class LoanFacts:
    """A loan as this node holds it (mutable: a run of events moves it along)."""

    id: str
    lender: str
    status: str
    returned_at: object
    returned_at_institution: str
    item_id: int
    owner: str
    barcode: str
    home: str  # the patron's institution; None once the loan is anonymised
    patron: str  # the patron's id at their home
    checked_out_at: object

    @classmethod
    def from_row(cls, row):
        return cls(row[0], row[1], row[2], _time(row[3]), *row[4:10], _time(row[10]))


class EventContext:
    """One event's receiver: its config, the sender, the time, and the facts from the database."""

    def __init__(self, cfg, origin, now):
        self.cfg, self.origin, self.now = cfg, origin, now
        self.institution = cfg.institution
        self.max_fee_amount = cfg.sections["billing"]["max_fee_amount"]

    def loan(self, loan_id):
        row = database.execute_sql(_ONE_LOAN, (Loan.id.db_value(loan_id),)).fetchone()
        return None if row is None else LoanFacts.from_row(row)

    def fee(self, fee_id):
        return Fee.get_or_none(id=fee_id)

    def payment(self, payment_id):
        return FeePayment.get_or_none(id=payment_id)

    def patron(self, home_id):
        return Patron.of(self.institution, home_id)

    def item_loan(self, owner, barcode):
        row = database.execute_sql(_ITEM_LOAN, (owner, barcode)).fetchone()
        return None if row is None else _Lender(row[0])


@dataclass(slots=True)
class _Lender:
    lender: str
