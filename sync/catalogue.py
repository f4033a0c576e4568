"""The event catalogue: every event type of the sync protocol, declared once.

Each declaration says what an event is (name, version, payload fields with
their types and bounds), **who may send it** (its authority rule) and which
domain function applies it.  The inbox admits an event here (``admit``:
validate, then check authority) before any handler runs, and the send side
builds payloads here (``build``), so the two ends, docs/protocol.md and the
privacy page (``shared_rows``) cannot drift apart: tests/sync/test_catalogue.py
compares them.

A signature says who is speaking, not that they are right.  Every rule
below holds a peer to facts it owns: a lender speaks for its loans, items
and fees; a home node for its patrons and what they paid.  Whatever else a
peer sends is rejected with a stable reason (``REASONS``) and changes
nothing; the sequence still advances, so a refusal never stalls a queue.

Authority rules read the receiver's facts through a small interface
(``loan(id)``, ``fee(id)``, ``payment(id)``, ``patron(home_id)``,
``item_loan(owner, barcode)``, ``institution``, ``max_fee_amount``): the inbox passes its database, a run of loan
events passes the rows it holds in memory (sync/loan_events.py).
"""
import datetime
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from node.domain import money

VERSION = 1

# Every reason an event is rejected with (docs/protocol.md, "Rejections").
REASONS = {
    "malformed_event": "the payload lacks a field its type needs, or a field has the wrong type or size",
    "not_authoritative": "the sender is not the party that owns the fact (the loan's lender, the fee's home, ...)",
    "item_not_senders": "a loan.created names an item that is not the sender's",
    "wrong_home": "the patron named is not the receiver's own",
    "patron_unknown": "the receiver has no such patron",
    "loan_unknown": "the receiver holds no such loan",
    "fee_unknown": "the receiver holds no such fee of its own (or no such fee to refund)",
    "amount_out_of_range": "an amount at or below zero, over [billing] max_fee_amount, with more decimals than "
                           "the currency has, a refund over its fee, or a payment over what is open",
    "currency_mismatch": "a payment or refund in another currency than its fee",
    "fee_settled": "a payment or waiver of a fee that is already paid or waived",
    "time_out_of_range": "a return before its checkout, or a due date before it",
    "fee_conflict": "another fee for the same loan and reason is already posted",
    "wrong_destination": "the event is addressed to another node",
}


class EventRejected(Exception):
    """The event is well-formed but this node refuses its effect (a stable code of ``REASONS``)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def reject(code, message):
    assert code in REASONS, code
    raise EventRejected(code, message)


# --- field kinds: each turns a JSON value into what handlers use, or raises ValueError

@dataclass(frozen=True)
class Kind:
    name: str  # as docs/protocol.md shows it
    check: object  # value -> value, or ValueError


def _text(max_len, token=False, min_len=0):
    def check(value):
        if type(value) is not str or not min_len <= len(value) <= max_len:
            raise ValueError("text")
        if "\x00" in value or (token and not value.isprintable()):
            raise ValueError("text")
        return value
    kind = "id" if token else "text"
    return Kind(f"{kind} (≤ {max_len})", check)


def _code(value):
    if type(value) is not str or not _CODE.match(value):
        raise ValueError("institution code")
    return value


_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,31}\Z")


def _time(value):
    """An ISO 8601 time with an offset as an aware UTC datetime, in the years 1900-2999.

    The bounds keep every time shown in any zone (year 9999 in UTC is year
    10000 in Zurich, which Python cannot hold) and any fine computed over it.
    """
    if type(value) is not str or len(value) > 40:
        raise ValueError("time")
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("times carry an offset")
    try:
        parsed = parsed.astimezone(datetime.timezone.utc)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is in year 0 in UTC
        raise ValueError("time out of range") from None
    if not 1900 <= parsed.year <= 2999:
        raise ValueError("time out of range")
    return parsed


def _count(value):
    if type(value) is not int or not 0 <= value <= 1_000_000:
        raise ValueError("count")
    return value


def _flag(value):
    if type(value) is not bool:
        raise ValueError("flag")
    return value


def _amount(value):
    """A decimal amount as text ("12.50", "-3.00"): finite, else malformed; its range is the rule's."""
    if type(value) is not str or len(value) > 40:
        raise ValueError("amount")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError("amount") from None
    if not amount.is_finite():
        raise ValueError("amount")
    return amount


def _one_of(*values):
    def check(value):
        if value not in values or type(value) is not str:
            raise ValueError("value")
        return value
    return Kind(" | ".join(f"`{v}`" for v in values), check)


def _optional(kind):
    def check(value):
        return None if value is None else kind.check(value)
    return Kind(f"{kind.name} or null", check)


CODE = Kind("institution code", _code)
ID = _text(128, token=True, min_len=1)  # loan, fee and payment ids; patron ids; barcodes (docs/protocol.md)
OPTIONAL_ID = _text(128, token=True)
TITLE = _text(4000)
SHORT = _text(500)
TIME = Kind("time", _time)
COUNT = Kind("integer 0-1000000", _count)
FLAG = Kind("boolean", _flag)
AMOUNT = Kind("amount (decimal text)", _amount)
CURRENCY = Kind("ISO 4217 code", lambda v: v if type(v) is str and re.fullmatch(r"[A-Z]{3}", v) else _bad())
FEE_REASON = _one_of("fine", "replacement", "processing", "refund")


def _bad():
    raise ValueError("value")


@dataclass(frozen=True)
class Field:
    name: str
    kind: object  # a Kind, or a tuple of Fields (a nested object)
    shared: str = ""  # how the privacy page names it; "" for fields of a nested object named by their parent
    required: bool = True
    default: object = None


def _validator(fields):
    """A function checking a payload against FIELDS: a new dict of the declared fields, converted."""
    checks = []
    for f in fields:
        check = _validator(f.kind) if isinstance(f.kind, tuple) else f.kind.check
        checks.append((f.name, check, f.required, f.default))

    def validate(data):
        if type(data) is not dict:
            raise ValueError("object")
        out = {}
        for name, check, required, default in checks:
            try:
                out[name] = check(data[name])
            except KeyError:
                if required or name in data:  # a KeyError raised by the check itself
                    raise ValueError(f"{name} missing") from None
                out[name] = default
        return out
    return validate


@dataclass
class EventType:
    """One event type of the protocol, declared once."""

    name: str
    sender: str  # who sends it, as docs/protocol.md says
    receiver: str
    when: str  # what happened
    fields: tuple
    authority: object  # (facts, origin, data) -> None, or EventRejected
    authority_doc: str
    version: int = VERSION
    apply: object = None  # (context, data) -> extras; bound by ``handles`` in the handler's module
    validate: object = field(init=False, repr=False)

    def __post_init__(self):
        self.validate = _validator(self.fields)


# --- authority rules: (facts, origin, data) -> None or EventRejected ------------

def _loan_held(facts, loan_id):
    loan = facts.loan(loan_id)
    if loan is None:
        reject("loan_unknown", "No such loan here.")
    return loan


def _lenders_loan_of_ours(facts, origin, data):
    """The sender is the lender of a loan we hold, for one of our patrons."""
    if data["lender"] != origin:
        reject("not_authoritative", "Only the lender reports on its loans.")
    loan = _loan_held(facts, data["loan_id"])
    if loan.lender != origin or loan.home != facts.institution:
        reject("not_authoritative", "The loan is not one of the sender's to one of our patrons.")
    return loan


def _may_renew(facts, origin, data):
    loan = _lenders_loan_of_ours(facts, origin, data)
    if data["due_at"] < loan.checked_out_at:
        reject("time_out_of_range", "A loan cannot be due before it was made.")


def _may_create(facts, origin, data):
    if data["lender"] != origin:
        reject("not_authoritative", "Only the lender reports its loans.")
    if data["due_at"] < data["checked_out_at"]:
        reject("time_out_of_range", "A loan cannot be due before it is made.")
    if data["item"]["institution"] != origin:
        reject("item_not_senders", "A lender reports loans of its own items only.")
    patron = data["patron"]
    if patron["institution"] != facts.institution:
        reject("wrong_home", "The patron is not one of ours.")
    if not facts.patron(patron["id"]):
        reject("patron_unknown", "No such patron here.")
    known = facts.loan(data["loan_id"])
    if known is not None and (known.lender != origin or known.home != facts.institution
                              or known.patron != patron["id"] or known.owner != origin):
        reject("not_authoritative", "That loan id names another library's loan here.")
    lent = facts.item_loan(origin, data["item"]["barcode"])  # the item's open loan here, if any
    if lent is not None and lent.lender != origin:
        reject("not_authoritative", "The item is on another library's open loan here.")


def _may_return(facts, origin, data):
    loan = _loan_held(facts, data["loan_id"])
    if data["lender"] != loan.lender or origin not in (loan.lender, loan.home):
        reject("not_authoritative", "Only the loan's lender or its patron's home reports its return.")
    if data["returned_at_institution"] != origin:
        reject("not_authoritative", "A library reports the returns made at its own desk.")
    if data["returned_at"] < loan.checked_out_at:
        reject("time_out_of_range", "A return cannot come before its checkout.")


def _may_receive(facts, origin, data):
    if data["owner"] != origin:
        reject("not_authoritative", "Only the item's owner reports it back home.")
    loan = _loan_held(facts, data["loan_id"])
    if loan.owner != origin or loan.barcode != data["barcode"]:
        reject("not_authoritative", "The loan's item is not the sender's.")
    if loan.returned_at_institution != facts.institution:
        reject("not_authoritative", "This library did not return that item.")


def _may_assess(facts, origin, data):
    if data["patron"]["institution"] != facts.institution:
        reject("wrong_home", "The patron is not one of ours.")
    loan = _lenders_loan_of_ours(facts, origin, data)
    if loan.patron != data["patron"]["id"]:
        reject("not_authoritative", "The fee's patron is not the loan's.")
    known = facts.fee(data["fee_id"])
    if known is not None and (known.lender != origin or known.loan_id != data["loan_id"]):
        reject("not_authoritative", "That fee id names another library's fee here.")
    amount, ceiling = data["amount"], facts.max_fee_amount
    if data["reason"] != "refund":
        if not 0 < amount <= ceiling:
            reject("amount_out_of_range", f"A fee is above zero and at most {ceiling}.")
        _in_minor_units(amount, data["currency"])
        return
    refunded = facts.fee(data["refund_of"]) if data["refund_of"] is not None else None
    if refunded is None or refunded.loan_id != data["loan_id"] or refunded.lender != origin \
            or refunded.reason == "refund":
        reject("fee_unknown", "A refund names an earlier fee of the same loan.")
    if refunded.currency != data["currency"]:
        reject("currency_mismatch", "A refund is in its fee's currency.")
    if not -refunded.amount <= amount < 0:
        reject("amount_out_of_range", "A refund is below zero and no larger than its fee.")
    _in_minor_units(amount, data["currency"])


def _in_minor_units(amount, currency):
    """AMOUNT (already within its range: quantize cannot overflow) has no more decimals than CURRENCY."""
    unit = money.minor_unit(currency)
    if amount != amount.quantize(unit):
        reject("amount_out_of_range", f"Amounts in {currency} have at most {-unit.as_tuple().exponent} decimals.")


def _may_settle(kind):
    def rule(facts, origin, data):
        fee = facts.fee(data["fee_id"])
        if fee is None or fee.lender != facts.institution:
            reject("fee_unknown", "No such fee of ours.")
        if fee.home != origin:
            reject("not_authoritative", "Only the fee's home library collects it.")
        if data["kind"] != kind:
            reject("malformed_event", f"This event reports a {kind}.")
        if data["currency"] != fee.currency:
            reject("currency_mismatch", "A payment is in its fee's currency.")
        recorded = facts.payment(data["payment_id"])
        if recorded is not None:  # sent again: recorded once (the handler says so), if it is this fee's
            if recorded.fee_id != fee.id:
                reject("not_authoritative", "That payment id names a payment of another fee.")
            return
        if fee.status != "open":
            reject("fee_settled", f"The fee is already {fee.status}.")
        amount, open_amount = data["amount"], fee.amount - fee.paid
        same_sign = (amount > 0) == (fee.amount > 0)  # a refund's credit is paid out: negative
        if amount == 0 or not same_sign or abs(amount) > abs(open_amount):
            reject("amount_out_of_range", f"At most {open_amount} {fee.currency} is open on this fee.")
        _in_minor_units(amount, fee.currency)
        # The home's record after this payment, as the event states it, must be ours plus this payment.
        paid = fee.paid + amount if kind == "payment" else fee.paid
        if data["paid"] != paid:
            reject("amount_out_of_range", f"The total paid would be {paid}, not {data['paid']}.")
        status = "waived" if kind == "waiver" else "paid" if paid == fee.amount else "open"
        if data["status"] != status:
            reject("malformed_event", f"After this {kind} the fee is {status}, not {data['status']}.")
    return rule


def _settlement(name, kind, when, amount_shared, note_shared):
    """``fee.paid`` or ``fee.waived``: one payload, a KIND each."""
    return EventType(
        name, "patron's home", "lender", when,
        (Field("fee_id", ID, "fee id"), Field("payment_id", ID, "payment id"),
         Field("kind", _one_of("payment", "waiver")), Field("amount", AMOUNT, amount_shared),
         Field("currency", CURRENCY, "currency"), Field("at", TIME, "time"),
         Field("status", _one_of("open", "paid", "waived"), "fee status"), Field("paid", AMOUNT, "total paid"),
         Field("note", SHORT, note_shared, required=False, default="")),
        _may_settle(kind), f"sender = the home of the fee's patron; the fee is the receiver's; `kind` = `{kind}`; "
                           "the amount at most what is open")


_LOAN_REF = (Field("loan_id", ID, "loan id"), Field("lender", CODE, "lender"))
_PATRON = Field("patron", (Field("institution", CODE), Field("id", ID)), "patron institution and id")

EVENTS = {event.name: event for event in (
    EventType(
        "loan.created", "lender", "patron's home", "a loan is made",
        (*_LOAN_REF, _PATRON,
         Field("item", (Field("institution", CODE), Field("barcode", ID), Field("title", TITLE, required=False, default=""),
                        Field("call_number", SHORT, required=False, default=""),
                        Field("item_type", SHORT, required=False, default="")),
               "item owner, barcode, title, call number and type"),
         Field("checked_out_at", TIME, "checkout time"), Field("due_at", TIME, "due time"),
         Field("renewals", COUNT, "renewals", required=False, default=0),
         Field("provisional", FLAG, "provisional", required=False, default=False)),
        _may_create, "sender = `lender` = the item's institution; the patron is one of the receiver's; "
                     "a known loan id or the item's open loan must be the sender's"),
    EventType(
        "loan.renewed", "lender", "patron's home", "a loan is renewed",
        (*_LOAN_REF, Field("due_at", TIME, "new due time"), Field("renewals", COUNT, "renewals")),
        _may_renew, "sender = `lender` = the lender of a loan the receiver holds for its patron"),
    EventType(
        "loan.returned", "the library where the item was checked in", "the other party of the loan",
        "the item is checked in",
        (*_LOAN_REF, Field("returned_at", TIME, "return time"),
         Field("returned_at_institution", CODE, "returning library")),
        _may_return, "the receiver holds the loan with that `lender`; sender = the loan's lender or its "
                     "patron's home, and = `returned_at_institution`"),
    EventType(
        "item.received", "owner", "the library that returned it", "the item is back home",
        (Field("loan_id", ID, "loan id"), Field("owner", CODE, "owner"), Field("barcode", ID, "barcode"),
         Field("received_at", TIME, "time")),
        _may_receive, "sender = `owner` = the owner of the loan's item; the receiver returned that loan"),
    EventType(
        "loan.lost", "lender", "patron's home", "the lender declares the item lost",
        (*_LOAN_REF, Field("lost_at", TIME, "time")),
        _lenders_loan_of_ours, "sender = `lender` = the lender of a loan the receiver holds for its patron"),
    EventType(
        "loan.dispute_resolved", "lender", "patron's home",
        "lender's staff resolve a loan the home disputed",
        (*_LOAN_REF, Field("reason", SHORT, "dispute reason"), Field("resolved_at", TIME, "time"),
         Field("note", SHORT, "staff note")),
        _lenders_loan_of_ours, "sender = `lender` = the lender of a loan the receiver holds for its patron"),
    EventType(
        "fee.assessed", "lender", "patron's home", "a fee or refund is assessed",
        (Field("fee_id", ID, "fee id"), *_LOAN_REF, _PATRON,
         Field("item", (Field("barcode", OPTIONAL_ID, required=False, default=""),
                        Field("title", TITLE, required=False, default="")),
               "item barcode and title", required=False, default={"barcode": "", "title": ""}),
         Field("amount", AMOUNT, "amount"), Field("currency", CURRENCY, "currency"),
         Field("reason", FEE_REASON, "reason"), Field("refund_of", _optional(ID), "refunded fee", required=False),
         Field("assessed_at", TIME, "time")),
        _may_assess, "sender = `lender` = the lender of a loan the receiver holds for that patron of its own; "
                     "amount above zero, at most `[billing] max_fee_amount`, in the currency's minor units; "
                     "negative only for `refund`, whose `refund_of` is an earlier fee of the same loan "
                     "it does not exceed"),
    _settlement("fee.paid", "payment", "a payment is recorded", "amount", ""),
    _settlement("fee.waived", "waiver", "a fee is waived", "amount waived", "reason given by staff"),
)}


def handles(event_type):
    """Bind the decorated function as the domain function that applies EVENT_TYPE."""
    def bind(function):
        EVENTS[event_type].apply = function
        return function
    return bind


def admit(facts, origin, event):
    """(its EventType, its payload validated and converted) of EVENT from ORIGIN, or EventRejected.

    None for a type this node does not know (recorded, not applied: a newer
    peer never blocks an older one).
    """
    if event.get("destination", facts.institution) != facts.institution:
        reject("wrong_destination", "The event is addressed to another node.")
    spec = EVENTS.get(event["type"])
    if spec is None:
        return None, None
    try:
        data = spec.validate(event["data"])
    except (ValueError, TypeError, OverflowError) as exc:
        raise EventRejected("malformed_event", f"{spec.name}: {exc}") from None
    spec.authority(facts, origin, data)
    return spec, data


def build(event_type, **values):
    """The payload of an outgoing EVENT_TYPE: exactly its declared fields, checked as a receiver will."""
    spec = EVENTS[event_type]
    names = {f.name for f in spec.fields}
    unknown = set(values) - names
    if unknown:
        raise TypeError(f"{event_type} declares no {sorted(unknown)}")
    spec.validate(values)  # a payload we would refuse ourselves is a bug of ours: fail the change
    return {name: values[name] for name in (f.name for f in spec.fields) if name in values}


# --- what docs/protocol.md and the privacy page show --------------------------

def _field_doc(f):
    if isinstance(f.kind, tuple):
        inner = ", ".join(_field_doc(g) for g in f.kind)
        text = f"`{f.name}` {{{inner}}}"
    else:
        text = f"`{f.name}` {f.kind.name}"
    return text if f.required else text + " (optional)"


def markdown_table():
    """The event table of docs/protocol.md (tests/sync/test_catalogue.py checks the document holds it)."""
    lines = ["| type | version | sent by → to | `data` fields | who may send it (authority) |",
             "| --- | --- | --- | --- | --- |"]
    for spec in EVENTS.values():
        fields = "; ".join(_field_doc(f) for f in spec.fields)
        lines.append(f"| `{spec.name}` | {spec.version} | {spec.sender} → {spec.receiver} | {fields} | "
                     f"{spec.authority_doc} |")
    return "\n".join(lines)


def reasons_table():
    lines = ["| reason | meaning |", "| --- | --- |"]
    lines += [f"| `{code}` | {text} |" for code, text in REASONS.items()]
    return "\n".join(lines)


def shared_rows():
    """(event, direction, when, what it shares) per event type, for the privacy page."""
    return [(spec.name, f"{spec.sender} → {spec.receiver}", spec.when,
             ", ".join(f.shared for f in spec.fields if f.shared))
            for spec in EVENTS.values()]


if __name__ == "__main__":  # python -m sync.catalogue: the tables docs/protocol.md holds
    print(markdown_table(), reasons_table(), sep="\n\n")
