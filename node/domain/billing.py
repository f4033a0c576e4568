"""Fees on the lender's terms, posted on the patron's home account.  Knows nothing of Flask.

The lender assesses: a fine when an overdue item is returned (wherever it is
returned, counted on the lender's calendar), or, when the daily job declares
an item lost, the fine so far, the replacement cost and the processing fee;
a lost item that comes back is refunded by the lender's ``refund_on_return``
rule as a credit (a negative fee).  Each fee travels to the patron's home
node as a ``fee.assessed`` event in the same transaction.  The home node
collects: payments and waivers are recorded there and travel back to the
lender as ``fee.paid`` / ``fee.waived``.  Money is ``Decimal``, never float.
"""
import datetime
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from peewee import JOIN, Case, fn

from node.domain import errors, lifecycle, money
from node.domain.calendar import calendar_of, local_day
from node.store.db import database
from node.store.models import CENT, AuditLog, Fee, FeePayment, Item, Loan, Patron, cents_to_money, new_uuid
from node.domain.ports import outbox

log = logging.getLogger(__name__)
ZERO = Decimal("0.00")
REFUNDED = {"none": (), "replacement": ("replacement",), "all": ("replacement", "processing")}


def currency(cfg):
    return cfg.sections["billing"]["currency"]


def parse_amount(raw, field="amount", currency=None):
    """A positive amount in CURRENCY's minor units (hundredths when not given), at most money.CEILING, as Decimal."""
    # JSON numbers reach here as Decimal (parsed with parse_float=Decimal); a float means a caller bug.
    try:
        return money.parse(raw, currency, minimum=ZERO, allow_minimum=False)
    except money.AmountError as exc:
        why = "" if str(exc).startswith("expected an amount") else f" ({exc})"  # say "such as 12.50" once
        raise errors.InvalidField(f"'{field}' must be a positive amount such as \"12.50\"{why}.", field=field) from None


def _audit(action, target, detail, now, staff="system"):
    AuditLog.create(at=now, staff=staff or "system", action=action, target=target, detail=detail)


# --- what the lender's terms say -------------------------------------------

def late_days(cfg, due_at, until):
    """Open days of this library's calendar after the due date, up to UNTIL's local day."""
    first = local_day(due_at, cfg.tz) + datetime.timedelta(days=1)
    last = local_day(until, cfg.tz)
    return calendar_of(cfg).open_days(first, last) if last >= first else 0


def fine_amount(cfg, loan, until):
    """The fine LOAN owes if it ends at UNTIL: fine_per_day per open late day, capped by max_fine."""
    rules = cfg.policy_for(loan.item.item_type)
    amount = rules["fine_per_day"] * late_days(cfg, loan.due_at, until)
    if rules["max_fine"] is not None:
        amount = min(amount, rules["max_fine"])
    return amount.quantize(CENT)


def replacement_cost(cfg, item):
    cost = item.replacement_cost
    if cost is None:
        cost = cfg.policy_for(item.item_type)["default_replacement_cost"]
    return Decimal(str(cost)).quantize(CENT)


# --- assessing (at the lender, inside the caller's transaction) ---------------

def fee_event_data(fee):
    """The ``fee.assessed`` payload: the fee, and the minimum a home node needs to post it."""
    return outbox.build("fee.assessed", fee_id=fee.id, loan_id=fee.loan_id, lender=fee.lender,
                 patron={"institution": fee.patron.institution, "id": fee.patron.home_id},
                 item={"barcode": fee.item_barcode, "title": fee.item_title},
                 amount=str(fee.amount), currency=fee.currency, reason=fee.reason,
                 refund_of=fee.refund_of, assessed_at=fee.assessed_at.isoformat())


def _charge(cfg, loan, reason, amount, now, refund_of=None):
    """Bill LOAN's patron once for REASON and tell their home node; None when nothing is due."""
    if amount == 0 or loan.patron_id is None:
        return None
    if Fee.get_or_none(loan_id=loan.id, reason=reason):
        return None  # billed before: a job or an event applied twice bills once
    patron, item = loan.patron, loan.item
    fee = Fee.create(id=new_uuid(), lender=cfg.institution, home=patron.institution, loan_id=loan.id,
                     patron=patron, item_barcode=item.barcode, item_title=item.title, reason=reason,
                     amount=amount, currency=currency(cfg), refund_of=refund_of, assessed_at=now, updated_at=now)
    if fee.home != cfg.institution:
        outbox.enqueue(fee.home, "fee.assessed", fee_event_data(fee), now)
    _audit("fee_assessed", fee.id, f"{reason} {amount} {fee.currency} on loan {loan.id}", now)
    return fee


def assess_at_return(cfg, loan, now):
    """At the lender, in the return's transaction: the fine of a late loan, or a lost item's refund."""
    if loan.lender != cfg.institution or loan.returned_at is None:
        return []
    if loan.lost_at is not None:
        fee = _refund(cfg, loan, now)
    else:
        fee = _charge(cfg, loan, "fine", fine_amount(cfg, loan, loan.returned_at), now)
    return [fee] if fee else []


def _refundable(cfg, loan):
    """[(fee, what of it is credited back)] of LOAN's fees under the lender's refund_on_return rule."""
    rule = cfg.policy_for(loan.item.item_type)["refund_on_return"]
    fees = [fee for fee in (Fee.get_or_none(loan_id=loan.id, reason=r) for r in REFUNDED[rule]) if fee]
    return [(fee, fee.amount - _waived(fee)) for fee in fees]


def _refund(cfg, loan, now):
    """Credit what the lender's refund_on_return rule gives back (never what was waived)."""
    refunded = _refundable(cfg, loan)
    total = sum((back for _, back in refunded), ZERO)
    if total <= 0:
        return None
    return _charge(cfg, loan, "refund", -total, now, refund_of=refunded[0][0].id)


FEE_NAMES = {"fine": "fine", "replacement": "replacement fee", "processing": "processing fee"}


@dataclass
class LostReturn:
    """What the return of an item declared lost did to its loan's fees, for the desk, the API and the CLI."""

    declared_at: datetime.datetime
    lender: str
    rule: str = None  # the lender's refund_on_return; None when another library lent it (it decides)
    refunded: list = field(default_factory=list)  # [(reason, amount credited back)]
    kept: list = field(default_factory=list)  # [(reason, amount)] billed and not refunded
    credit: object = None  # the refund Fee (a negative amount), or None
    currency: str = ""

    def describe(self, cfg):
        """One sentence for staff: when it was declared lost, what was credited back, what is kept."""
        day = self.declared_at.astimezone(cfg.tz).strftime("%Y-%m-%d")
        if self.rule is None:
            lender = cfg.library_name(self.lender)
            return (f"It had been declared lost by {lender} on {day}: {lender} credits back what its "
                    "refund rule gives when this return reaches it.")
        def listed(pairs):
            return ", ".join(f"{FEE_NAMES.get(reason, reason)} {amount} {self.currency}" for reason, amount in pairs)
        if self.credit is not None:
            outcome = (f"{listed(self.refunded)} refunded: a credit of {-self.credit.amount} {self.currency} "
                       "on the patron's account")
        elif self.rule == "none":
            outcome = "nothing is refunded (refund_on_return = none)"
        elif not self.kept:
            outcome = "no fee had been billed for it"
        else:
            outcome = "nothing is refunded (what the rule gives back was waived or not billed)"
        kept = f"; kept: {listed(self.kept)}" if self.kept else ""
        return f"It had been declared lost on {day}: {outcome}{kept}."

    def to_dict(self, tz):
        """The JSON API's ``lost`` of a return (docs/api.md)."""
        def amounts(pairs):
            return [{"reason": reason, "amount": str(amount)} for reason, amount in pairs]
        return {"declared_at": self.declared_at.astimezone(tz).isoformat(), "lender": self.lender,
                "refund_on_return": self.rule,
                "refunded": amounts(self.refunded) if self.rule else None,
                "kept": amounts(self.kept) if self.rule else None,
                "credit": {"fee_id": self.credit.id, "amount": str(self.credit.amount)} if self.credit else None,
                "currency": self.currency or None}


def lost_return(cfg, loan, fees):
    """What returning LOAN, declared lost, did to its fees; FEES are what ``assess_at_return`` made."""
    if loan.lender != cfg.institution:
        return LostReturn(loan.lost_at, loan.lender)
    credit = next((fee for fee in fees if fee.reason == "refund"), None)
    refunded = [(fee.reason, back) for fee, back in _refundable(cfg, loan) if back > 0] if credit else []
    back_reasons = {reason for reason, _ in refunded}
    kept = [(fee.reason, fee.amount) for fee in Fee.select().where((Fee.loan_id == loan.id) & (Fee.amount > 0))
            .order_by(Fee.assessed_at, Fee.id) if fee.reason not in back_reasons and fee.status != "waived"]
    return LostReturn(loan.lost_at, loan.lender, cfg.policy_for(loan.item.item_type)["refund_on_return"],
                      refunded, kept, credit, currency(cfg))


def _waived(fee):
    cents = (FeePayment.select(fn.SUM(FeePayment.amount))
             .where((FeePayment.fee == fee) & (FeePayment.kind == "waiver")).scalar())
    return cents_to_money(cents)


def declare_lost(cfg, loan, now, actor=lifecycle.JOB):
    """Mark LOAN's item lost and bill the fine so far, the replacement cost and the processing fee."""
    item, rules = loan.item, cfg.policy_for(loan.item.item_type)
    lifecycle.mark_lost(loan, now, now, actor)
    lifecycle.move_item(item, "declare_lost", now, actor)
    home = loan.patron.institution
    if home != cfg.institution:
        outbox.enqueue(home, "loan.lost", outbox.build("loan.lost", loan_id=loan.id, lender=loan.lender,
                                                lost_at=now.isoformat()), now)
    _audit("declare_lost", loan.id, f"item {item.barcode}", now)
    fees = [_charge(cfg, loan, "fine", fine_amount(cfg, loan, now), now),
            _charge(cfg, loan, "replacement", replacement_cost(cfg, item), now),
            _charge(cfg, loan, "processing", rules["processing_fee"], now)]
    return [fee for fee in fees if fee]


def declare_lost_loans(cfg, now):
    """The daily lost step: declare lost every loan of ours overdue lost_after_days or more."""
    today = local_day(now, cfg.tz)
    shortest = min(rules["lost_after_days"] for rules in cfg.policy.values())
    # A coarse filter on the index (a day's margin for DST); the exact count of local days follows.
    horizon = now - datetime.timedelta(days=shortest - 2)
    candidates = [loan.id for loan in Loan.select(Loan.id).where(
        (Loan.lender == cfg.institution) & (Loan.status == "open") & Loan.lost_at.is_null()
        & Loan.patron.is_null(False) & (Loan.due_at < horizon))]
    declared, fees = 0, 0
    for loan_id in candidates:
        with database.atomic():
            loan = Loan.select(Loan, Item).join(Item).where(Loan.id == loan_id).first()
            if loan is None or loan.status != "open" or loan.lost_at is not None:
                continue  # returned or declared meanwhile (another process)
            days_overdue = (today - local_day(loan.due_at, cfg.tz)).days
            if days_overdue < cfg.policy_for(loan.item.item_type)["lost_after_days"]:
                continue
            fees += len(declare_lost(cfg, loan, now))
            declared += 1
    if declared:
        log.info("declared %d loans lost, %d fees assessed", declared, fees)
    return {"declared_lost": declared, "fees": fees}


def overdue_count(cfg, now):
    return Loan.select().where((Loan.lender == cfg.institution) & (Loan.status == "open")
                               & (Loan.due_at < now)).count()


# --- collecting (at the home node) ---------------------------------------------

def get_fee(fee_id):
    fee = Fee.get_or_none(id=fee_id)
    if fee is None:
        raise errors.FeeNotFound(f"No fee {fee_id!r}.", fee_id=fee_id)
    return fee


def _home_fee(cfg, fee_id):
    fee = get_fee(fee_id)
    if fee.home != cfg.institution:
        raise errors.FeeNotHome(f"This fee is collected by the patron's home library ({fee.home}).",
                                home=fee.home)
    if fee.status != "open":
        raise errors.FeeSettled(f"The fee is already {fee.status}.", status=fee.status)
    return fee


def settlement_event_data(fee, payment):
    return outbox.build(f"fee.{'paid' if payment.kind == 'payment' else 'waived'}", fee_id=fee.id, payment_id=payment.id,
                 kind=payment.kind, amount=str(payment.amount), currency=fee.currency, at=payment.at.isoformat(),
                 status=fee.status, paid=str(fee.paid), note=payment.note)


def _settle(cfg, fee, kind, amount, now, staff, note, method=""):
    payment = FeePayment.create(id=new_uuid(), fee=fee, kind=kind, amount=amount, at=now,
                                staff=staff or "system", note=note, method=method)
    if kind == "payment":
        fee.paid += amount
    if kind == "waiver" or fee.paid == fee.amount:
        fee.status, fee.settled_at = ("waived" if kind == "waiver" else "paid"), now
    fee.updated_at = now
    fee.save()
    if fee.lender != cfg.institution:
        outbox.enqueue(fee.lender, f"fee.{'paid' if kind == 'payment' else 'waived'}",
                       settlement_event_data(fee, payment), now)
    _audit(f"fee_{kind}", fee.id, f"{amount} {fee.currency}", now, staff)
    return payment


def record_payment(cfg, fee_id, amount, now, staff=None, note=""):
    """Record AMOUNT paid on an open fee of one of our patrons (for a credit: paid out)."""
    amount = parse_amount(amount)
    if not isinstance(note, str) or len(note) > 500 or not note.isprintable():
        raise errors.InvalidField("'note' is at most 500 printable characters.", field="note")
    with database.atomic():
        fee = _home_fee(cfg, fee_id)
        parse_amount(amount, currency=fee.currency)  # no cents of a currency that has none
        open_amount = abs(fee.amount - fee.paid)
        if amount > open_amount:
            raise errors.AmountTooLarge(f"Only {open_amount} {fee.currency} is open on this fee.",
                                        outstanding=str(open_amount))
        if fee.amount < 0:
            _refuse_paying_out_what_is_owed(fee, open_amount, amount)
        _settle(cfg, fee, "payment", amount if fee.amount > 0 else -amount, now, staff, note)
    return fee


def _refuse_paying_out_what_is_owed(credit, open_amount, amount):
    """A credit is cash only beyond the patron's open charges: a refund of a fee never paid is no money back."""
    owed = cents_to_money(Fee.select(fn.SUM(Fee.amount - Fee.paid)).where(  # stored in cents
        (Fee.patron == credit.patron_id) & (Fee.status == "open") & (Fee.currency == credit.currency)
        & (Fee.amount > 0)).scalar())
    payable = max(open_amount - owed, ZERO)
    if amount > payable:
        raise errors.CreditOffsetsFees(
            f"The patron still owes {owed} {credit.currency} in open fees, which this credit settles first "
            f"(Pay balance applies it); at most {payable} {credit.currency} can be paid out.",
            owed=str(owed), payable=str(payable))


def record_waiver(cfg, fee_id, reason, now, staff=None):
    """Waive what is still open on a fee of one of our patrons, with a reason."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise errors.InvalidField("'reason' must say why, in at most 500 characters.", field="reason")
    with database.atomic():
        fee = _home_fee(cfg, fee_id)
        _settle(cfg, fee, "waiver", fee.amount - fee.paid, now, staff, reason.strip())
    return fee


# --- the cashier: a patron's balance at once, oldest fee first ------------------

# How a patron paid, printed on the payment receipt; kept at the home node (the lender's
# fee.paid event carries only the amount and the note).
METHODS = ("cash", "card", "transfer", "other")


@dataclass
class Receipt:
    """What one cashier action did: the patron, its payments and waivers in order, what is still open."""
    patron: Patron
    currency: str
    payments: list  # FeePayment rows, each with its fee
    remaining: Decimal

    @property
    def paid(self):
        """Money handed over (a credit applied to a charge is one payment each way and nets to nothing)."""
        return sum((p.amount for p in self.payments if p.kind == "payment"), ZERO)

    @property
    def waived(self):
        return sum((p.amount for p in self.payments if p.kind == "waiver"), ZERO)

    @property
    def method(self):
        return next((p.method for p in self.payments if p.method), "")


def pay_balance(cfg, home_id, amount, method, now, staff=None, currency=None, note=""):
    """Record AMOUNT paid on our patron HOME_ID's open fees, oldest first, partial on the last, in one transaction.

    Open credits (refunds) are applied to the oldest charges first, as the
    balance already counts them.  Each fee gets its own payment and its own
    ``fee.paid`` event, exactly as ``record_payment`` makes them.
    """
    if method not in METHODS:
        raise errors.InvalidField(f"'method' is one of {', '.join(METHODS)}.", field="method")
    return _settle_balance(cfg, home_id, amount, "payment", now, staff, currency, _note(note, "note"), method)


def waive_balance(cfg, home_id, amount, reason, now, staff=None, currency=None):
    """Waive AMOUNT of our patron HOME_ID's open fees, whole fees oldest first, in one transaction.

    A waiver settles a whole fee (``fee.waived`` has no partial form), so an
    amount that ends inside a fee is refused (``amount_splits_fee``) with the
    amounts just below and above that can be waived.
    """
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise errors.InvalidField("'reason' must say why, in at most 500 characters.", field="reason")
    return _settle_balance(cfg, home_id, amount, "waiver", now, staff, currency, reason.strip(), "")


def _note(text, field):
    if not isinstance(text, str) or len(text) > 500 or not text.isprintable():
        raise errors.InvalidField(f"'{field}' is at most 500 printable characters.", field=field)
    return text.strip()


def _settle_balance(cfg, home_id, amount, kind, now, staff, currency, note, method):
    amount = parse_amount(amount)
    with database.atomic():
        patron = Patron.get_or_none(institution=cfg.institution, home_id=home_id)
        if patron is None:
            raise errors.PatronNotFound(f"{cfg.node['name']} has no patron {home_id!r}.", patron_id=home_id)
        currency = _balance_currency(patron, currency)
        parse_amount(amount, currency=currency)  # no cents of a currency that has none
        fees = list(Fee.select().where((Fee.patron == patron) & (Fee.status == "open") & (Fee.currency == currency))
                    .order_by(Fee.assessed_at, Fee.id))
        charges = [fee for fee in fees if fee.amount > 0]
        credits = [fee for fee in fees if fee.amount < 0]
        balance = sum((fee.amount - fee.paid for fee in fees), ZERO)  # above zero (_balance_currency)
        if amount > balance:
            raise errors.AmountTooLarge(f"Only {balance} {currency} is open on this patron's account.",
                                        outstanding=str(balance))
        payments = _apply_credits(cfg, charges, credits, now, staff, method)
        left = amount
        for fee in charges:
            open_amount = fee.amount - fee.paid
            if left == 0:
                break
            if open_amount == 0:
                continue
            if kind == "payment":
                part = min(open_amount, left)
                payments.append(_settle(cfg, fee, "payment", part, now, staff, note, method))
            else:
                if left < open_amount:
                    raise _split(charges, fee, amount, currency)
                part = open_amount
                payments.append(_settle(cfg, fee, "waiver", part, now, staff, note))
            left -= part
    return Receipt(patron=patron, currency=currency, payments=payments, remaining=balance - amount)


def _balance_currency(patron, currency):
    """CURRENCY, or the one currency PATRON owes in; several without a choice is a question back."""
    owed = sorted(code for code, open_amount in balances(patron).items() if open_amount > 0)
    if currency:
        code = currency.strip().upper() if isinstance(currency, str) else ""
        if code not in owed:
            raise errors.NoOpenFees(f"Nothing is owed in {str(currency)[:3]}.", currency=str(currency)[:3])
        return code
    if not owed:
        raise errors.NoOpenFees("This patron owes nothing.")
    if len(owed) > 1:
        raise errors.InvalidField(f"The patron owes in {' and '.join(owed)}: say which 'currency'.", field="currency")
    return owed[0]


def _apply_credits(cfg, charges, credits, now, staff, method):
    """Pay the oldest charges with the open credits (the balance nets them): a payment each way."""
    payments = []
    charges = iter(charges)
    fee = next(charges, None)
    for credit in credits:
        left = credit.paid - credit.amount  # what is still open on the credit, as a positive amount
        while left > 0 and fee is not None:
            part = min(left, fee.amount - fee.paid)
            if part > 0:
                payments.append(_settle(cfg, credit, "payment", -part, now, staff, "credit applied", method))
                payments.append(_settle(cfg, fee, "payment", part, now, staff, "credit applied", method))
                left -= part
            if fee.amount == fee.paid:
                fee = next(charges, None)
    return payments


def _split(charges, fee, amount, currency):
    """The refusal of a waiver that ends inside FEE, naming the waivable amounts around AMOUNT."""
    below = ZERO
    for each in charges:
        if each is fee:
            break
        below += each.amount - each.paid
    above = below + fee.amount - fee.paid
    return errors.AmountSplitsFee(f"A waiver settles whole fees: waive {below} or {above} {currency}, not {amount}.",
                                  below=str(below), above=str(above))


def receipt_of(cfg, payment_ids):
    """The receipt of earlier payments PAYMENT_IDS (one cashier action), or None when they are not one patron's.

    ``remaining`` is the patron's balance now: right after the action, what it left open.
    """
    payments = list(FeePayment.select(FeePayment, Fee).join(Fee).where(FeePayment.id.in_(payment_ids))
                    .order_by(Fee.assessed_at, Fee.id, FeePayment.id))
    if not payments or len(payments) != len(set(payment_ids)) or any(p.fee.patron_id is None for p in payments):
        return None
    patron = payments[0].fee.patron
    currency = payments[0].fee.currency
    if any(p.fee.patron_id != patron.id or p.fee.currency != currency for p in payments):
        return None
    return Receipt(patron=patron, currency=currency, payments=payments,
                   remaining=balances(patron).get(currency, ZERO))


# --- balances, blocks and reports --------------------------------------------

def balances(patron):
    """{currency: open balance} of PATRON's fees (credits count against charges)."""
    rows = database.execute_sql(_BALANCES, (patron.id,))
    return {code: cents_to_money(cents) for code, cents in rows}


# Plain SQL: every standing answer asks this (docs/benchmarks.md).
_BALANCES = ("SELECT currency, SUM(amount - paid) FROM fee WHERE patron_id = ? AND status = 'open' "
             "GROUP BY currency")


def fee_block(cfg, patron):
    """Why our patron is blocked by unpaid fees, or "" (balance at or above block_threshold)."""
    if patron.institution != cfg.institution:
        return ""
    owed = balances(patron).get(currency(cfg), ZERO)
    threshold = cfg.sections["billing"]["block_threshold"]
    if owed > 0 and owed >= threshold:
        return f"Unpaid fees of {owed} {currency(cfg)} (the limit is {threshold})."
    return ""


def fees_query(cfg, home_id=None, lender=None, status=None):
    """Fees newest first: of one of our patrons (HOME_ID), or those a LENDER assessed."""
    query = Fee.select(Fee, Patron).join(Patron, on=(Fee.patron == Patron.id), join_type=JOIN.LEFT_OUTER)
    if home_id is not None:
        query = query.where((Fee.home == cfg.institution) & (Patron.home_id == home_id)
                            & (Patron.institution == cfg.institution))
    if lender:
        query = query.where(Fee.lender == lender)
    if status:
        query = query.where(Fee.status == status)
    return query.order_by(Fee.assessed_at.desc(), Fee.id)


def settlement(cfg):
    """Per peer and currency: what the home side assessed, collected, waived and still has open.

    Rows where we are the home node say what we collected for a lender (and owe
    it); rows where we are the lender say what a home node collected for us.
    """
    def total(condition, value):
        return fn.SUM(Case(None, [(condition, value)], 0))
    query = (Fee.select(Fee.lender, Fee.home, Fee.currency,
                        total(Fee.amount > 0, Fee.amount).alias("charged"),
                        total(Fee.amount < 0, Fee.amount).alias("credited"),
                        fn.SUM(Fee.paid).alias("collected"),
                        total(Fee.status == "waived", Fee.amount - Fee.paid).alias("waived"),
                        total(Fee.status == "open", Fee.amount - Fee.paid).alias("open"),
                        fn.COUNT(Fee.id).alias("fees"))
             .where((Fee.lender != Fee.home)
                    & ((Fee.lender == cfg.institution) | (Fee.home == cfg.institution)))
             .group_by(Fee.lender, Fee.home, Fee.currency).order_by(Fee.lender, Fee.home).dicts())
    rows = []
    for row in query:
        we_collect = row["home"] == cfg.institution
        money = {key: cents_to_money(row[key]) for key in ("charged", "credited", "collected", "waived", "open")}
        rows.append({"peer": row["lender"] if we_collect else row["home"],
                     "role": "home" if we_collect else "lender", "currency": row["currency"],
                     "fees": row["fees"], **{k: str(v) for k, v in money.items()},
                     # Collected money belongs to the lender: the home node owes it on.
                     "owed_to_lender": str(money["collected"])})
    return rows
