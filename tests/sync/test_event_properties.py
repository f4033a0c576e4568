"""No event can break a node (issue 11): valid events mutated at random, signed, sent to a real receiver.

SOUTH runs as a real node process (NORTH beside it, so SOUTH holds another
library's loans and fees).  EAST's real key signs every batch (tests/rogue.py).
Each example sends one batch: an honest ``loan.created`` of a new EAST loan,
then events of every type built on that loan and mutated (fields dropped,
retyped, swapped for huge or tiny numbers, exponent notation, NaN and
Infinity strings, unicode, NUL, other institutions' codes and ids, ids of
loans and fees that are not EAST's), then another honest ``loan.created``.
Whatever the mutation, SOUTH answers 200, every event is applied, rejected,
duplicate or gap, the honest events are applied and acked_through passes the
whole batch: a forged or broken event never stalls a queue.

Bounded for CI: examples are derandomized (the same every run, no example
database) and capped; for a longer local hunt, ``CIRCNODE_FUZZ_EXAMPLES=3000``
raises the cap and ``CIRCNODE_FUZZ_RANDOM=1`` draws new examples each run.
"""
import copy
import datetime
import decimal
import os
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tests.network import Network
from tests.rogue import STATUSES, UTC, Rogue, db_rows, iso, loan_created, new_id

pytestmark = pytest.mark.slow

TERMS = {"sync": {"interval_seconds": "3600", "timeout_seconds": "5", "standing_timeout_seconds": "1"},
         "jobs": {"daily_at": ""}}
EXAMPLES = int(os.environ.get("CIRCNODE_FUZZ_EXAMPLES", "300"))
# No shrinking: the receiver keeps state between examples, so a shrink can take Hypothesis's full five
# minutes; the first failing batch is reported whole instead.
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("CIRCNODE_FUZZ_RANDOM"),
                   database=None,
                   phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ORACLE = settings(BOUNDED, max_examples=EXAMPLES * 2 // 3)  # one field's values: fewer examples cover them
TYPES = ("loan.created", "loan.renewed", "loan.returned", "item.received", "loan.lost", "fee.assessed",
         "fee.paid", "fee.waived")


class Receiver:
    """SOUTH after an honest life, and the ids of things that are not EAST's to speak of."""

    def __init__(self, net):
        self.net, self.rogue = net, Rogue(net, "EAST")
        self.ids = {}
        self._barcodes = iter(range(100001, 999999))

    def east_barcode(self):
        return f"E{next(self._barcodes)}"

    def send(self, typed):
        """Send SOUTH EAST's events TYPED [(type, data)], numbered next; (the events, the response)."""
        events = self.rogue.number("SOUTH", typed)
        return events, self.rogue.post("SOUTH", events)


def cli(net, code, *args):
    result = net.cli(code, *args)
    assert result.returncode == 0, f"{code} {args}: {result.stdout}{result.stderr}"
    return result.stdout


def fee_id(net, loan_id, reason):
    return db_rows(net, "SOUTH", "SELECT id FROM fee WHERE loan_id = ? AND reason = ?", (loan_id, reason))[0][0]


@pytest.fixture(scope="module")
def south(tmp_path_factory):
    net = Network(tmp_path_factory.mktemp("fuzz"), nodes=[("NORTH", "North University"), ("SOUTH", "South College"),
                                                          ("EAST", "East Institute")],
                  items=10, patrons=6, overrides=TERMS)
    try:
        net.start("NORTH")
        net.start("SOUTH")  # EAST never runs: SOUTH lends to EAST's patrons offline; the rogue needs only EAST's key
        r = Receiver(net)

        def lend(lender, barcode, home, patron):
            answer = net.api(lender, "POST", "/api/v1/checkouts",
                             {"item_barcode": barcode, "patron": {"institution": home, "id": patron}})
            assert answer.status_code == 201, answer.text
            return answer.json()

        billed_north = lend("NORTH", "N00002", "SOUTH", "south-2")["id"]  # NORTH's, to be billed as lost
        billed_east = lend("SOUTH", "S00002", "EAST", "east-1")["id"]  # SOUTH's, of an EAST patron
        paid_in_parts = lend("SOUTH", "S00003", "EAST", "east-2")["id"]  # its fees: what the payment test pays
        day = datetime.date.fromisoformat(
            net.api("NORTH", "GET", f"/api/v1/loans/{billed_north}").json()["due_at"][:10]) + datetime.timedelta(31)
        for code in ("NORTH", "SOUTH"):
            cli(net, code, "jobs", "run", "--at", f"{day}T08:00")
        r.ids["north_loan"] = lend("NORTH", "N00001", "SOUTH", "south-1")["id"]
        r.ids["south_loan"] = lend("SOUTH", "S00001", "SOUTH", "south-3")["id"]
        cli(net, "NORTH", "sync")
        r.ids["north_fee"] = fee_id(net, billed_north, "replacement")
        r.ids["paid_fee"] = fee_id(net, billed_east, "replacement")  # SOUTH's, collected by EAST: 45.00
        r.ids["waived_fee"] = fee_id(net, billed_east, "fine")
        r.ids["open_fee"] = fee_id(net, paid_in_parts, "replacement")  # 45.00, paid by no other test
        returned = loan_created("EAST", ("SOUTH", "south-4"), ("EAST", "E00001"))
        _, answer = r.send([("loan.created", returned)])
        assert answer.status_code == 200 and answer.json()["results"][0]["status"] == "applied", answer.text
        r.ids["returned_loan"] = returned["loan_id"]  # returned at SOUTH for EAST: what item.received may end
        back = net.api("SOUTH", "POST", "/api/v1/returns", {"item_barcode": "E00001", "owner": "EAST"})
        assert back.status_code == 200 and back.json()["transit"]["to"] == "EAST", back.text
        yield r
    finally:
        net.stop_all()


def now():
    return datetime.datetime.now(UTC)


def templates(r, loan):
    """A valid event of every type from EAST to SOUTH, about LOAN (EAST's loan.created data, in the batch)."""
    loan_id = loan["loan_id"]
    return {
        "loan.created": loan_created("EAST", ("SOUTH", "south-6"), ("EAST", r.east_barcode())),
        "loan.renewed": {"loan_id": loan_id, "lender": "EAST", "due_at": iso(now() + datetime.timedelta(42)),
                         "renewals": 1},
        "loan.returned": {"loan_id": loan_id, "lender": "EAST", "returned_at": iso(now()),
                          "returned_at_institution": "EAST"},
        "item.received": {"loan_id": r.ids["returned_loan"], "owner": "EAST", "barcode": "E00001",
                          "received_at": iso(now())},
        "loan.lost": {"loan_id": loan_id, "lender": "EAST", "lost_at": iso(now())},
        "fee.assessed": {"fee_id": new_id(), "loan_id": loan_id, "lender": "EAST", "patron": loan["patron"],
                         "item": {"barcode": loan["item"]["barcode"], "title": loan["item"]["title"]},
                         "amount": "5.00", "currency": "EUR", "reason": "fine", "refund_of": None,
                         "assessed_at": iso(now())},
        "fee.paid": {"fee_id": r.ids["paid_fee"], "payment_id": new_id(), "kind": "payment", "amount": "0.01",
                     "currency": "EUR", "at": iso(now()), "status": "open", "paid": "0.01", "note": ""},
        "fee.waived": {"fee_id": r.ids["waived_fee"], "payment_id": new_id(), "kind": "waiver", "amount": "0.01",
                       "currency": "EUR", "at": iso(now()), "status": "waived", "paid": "0.00", "note": "fuzz"},
    }


# --- what a mutation puts in a field --------------------------------------------------------------

NASTY = ["", " ", "NaN", "-NaN", "sNaN", "nan", "Infinity", "-Infinity", "inf", "1E+30", "1e-30", "-1E+30",
         "1E+999999", "-0", "0", "0.00", "0.001", "-500.00", "10000.01", "99999999999999999999999999999.99",
         "\x00", "E\x001", "\u202e", "\ufeff", "💥", "ñ", "ß" * 70, "x" * 5000, "NORTH", "SOUTH", "EAST",
         "WEST", "east", "E", "south-1", "north-1", "nobody-here", "N00001", "S00001", "E00001",
         "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "2026-02-30T00:00:00+00:00",
         "2026-01-01T00:00:00", "2026-01-01", "yesterday", "payment", "waiver", "refund", "paid", "waived"]
# Integers beyond 64 bits arrive as floats (sync/wire.py); beyond a double they are not JSON the receiver reads.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 64, 2 ** 64), st.sampled_from([2 ** 63, -2 ** 63 - 1, 10 ** 300]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=20), st.sampled_from(NASTY))
values = st.one_of(scalars, st.lists(scalars, max_size=3),
                   st.dictionaries(st.text(max_size=8), scalars, max_size=3))


def paths(obj, prefix=()):
    """Every field path of OBJ, nested objects' fields included."""
    for key, value in obj.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from paths(value, (*prefix, key))


def at(obj, path):
    for key in path[:-1]:
        obj = obj[key]
    return obj


CODE_FIELDS = ("lender", "owner", "institution", "returned_at_institution")
CODES = ["NORTH", "SOUTH", "EAST", "WEST"]
OPERATIONS = ["value"] * 2 + ["foreign"] * 3 + ["text"] * 2 + ["drop", "extra", "type", "envelope"]


@st.composite
def mutation(draw, event_type, data, ids):
    """EVENT_TYPE's DATA changed in one to three ways: (its type, data, envelope fields to set).

    ``value`` puts any JSON value in a field; ``foreign`` puts an id or code that is real somewhere (another
    library's loan, fee, patron, item) in a text field; ``text`` puts odd text there (NaN, exponents, NUL,
    unicode, the far ends of time); the others drop a field, add one, change the type or the envelope.
    """
    data, envelope = copy.deepcopy(data), {}
    for _ in range(draw(st.integers(1, 3))):
        every = list(paths(data))
        texts = [path for path in every if isinstance(at(data, path)[path[-1]], str)]
        how = draw(st.sampled_from(OPERATIONS))
        if how in ("foreign", "text") and texts:
            path = draw(st.sampled_from(texts))
            if how == "text":
                choice = st.sampled_from(NASTY) | st.text(max_size=20)
            else:  # an institution code where one goes, an id where an id goes
                choice = st.sampled_from(CODES if path[-1] in CODE_FIELDS else ids)
            at(data, path)[path[-1]] = draw(choice)
        elif how in ("value", "drop") and every:
            path = draw(st.sampled_from(every))
            if how == "drop":
                del at(data, path)[path[-1]]
            else:
                at(data, path)[path[-1]] = draw(values)
        elif how == "extra":
            target = draw(st.sampled_from([()] + [p for p in every if isinstance(at(data, p)[p[-1]], dict)]))
            (at(data, (*target, None)) if target else data)[draw(st.text(min_size=1, max_size=12))] = draw(values)
        elif how == "type":  # another type's payload, or a type no node knows
            event_type = draw(st.one_of(st.sampled_from(TYPES), st.text(min_size=1, max_size=20)))
        elif how == "envelope":  # around the data (not the fields that say whose and which event it is)
            name = draw(st.sampled_from(["version", "occurred_at", "destination", "note", "x-extra"]))
            envelope[name] = draw(values)
    return event_type, data, envelope


def other_ids(r, loan):
    """Ids and codes that are real somewhere, most of them not EAST's to use."""
    return [r.ids["north_loan"], r.ids["south_loan"], r.ids["north_fee"], r.ids["paid_fee"], r.ids["waived_fee"],
            r.ids["returned_loan"], loan["loan_id"], "north-1", "south-1", "south-blocked", "south-expired",
            "N00001", "S00001", "E00001", *CODES]


def check_answer(events, response, first_outcomes=None):
    """The property: 200, every event answered with a known status, the honest ends applied, no stall."""
    shown = f"\nbatch: {events!r}"[:6000]
    assert response.status_code < 500, f"HTTP {response.status_code}: {response.text[:1000]}{shown}"
    assert response.status_code == 200, (
        f"the whole batch was refused (HTTP {response.status_code}: {response.text[:500]}): a sender would "
        f"resend it forever{shown}")
    answer = response.json()
    results = {result["sequence"]: result for result in answer["results"]}
    sequences = [event["sequence"] for event in events]
    assert sorted(results) == sequences, f"not every event was answered: {answer}{shown}"
    statuses = [results[s]["status"] for s in sequences]
    assert set(statuses) <= set(STATUSES), f"unknown statuses {statuses}{shown}"
    assert answer["acked_through"] == sequences[-1], f"stalled at {answer['acked_through']}: {answer}{shown}"
    if first_outcomes is None:
        assert statuses[0] == statuses[-1] == "applied", f"an honest event was not applied: {answer}{shown}"
    else:  # a resend: each event is a duplicate, its first outcome repeated
        assert statuses == ["duplicate"] * len(events), f"resend answered {statuses}{shown}"
        assert [(results[s]["outcome"], results[s]["reason"]) for s in sequences] == first_outcomes, (
            f"resend changed outcomes: {answer}{shown}")
    return [(results[s]["status"], results[s]["reason"]) for s in sequences]


@BOUNDED
@given(st.data())
def test_mutated_events_are_answered_and_never_stall_the_queue(south, data):
    r = south
    loan = loan_created("EAST", ("SOUTH", "south-5"), ("EAST", r.east_barcode()))
    valid = templates(r, loan)
    ids = other_ids(r, loan)
    typed, envelopes = [("loan.created", loan)], [{}]
    for _ in range(data.draw(st.integers(1, 4), label="mutated events")):
        event_type = data.draw(st.sampled_from(TYPES), label="template")
        event_type, payload, envelope = data.draw(mutation(event_type, valid[event_type], ids), label="mutated")
        typed.append((event_type, payload))
        envelopes.append(envelope)
    typed.append(("loan.created", loan_created("EAST", ("SOUTH", "south-6"), ("EAST", r.east_barcode()))))
    envelopes.append({})
    events = [dict(event, **envelope) for event, envelope in zip(r.rogue.number("SOUTH", typed), envelopes)]
    outcomes = check_answer(events, r.rogue.post("SOUTH", events))
    for sent, (status, reason) in zip(events[1:-1], outcomes[1:-1]):  # --hypothesis-show-statistics shows them
        event(f"{sent['type'] if sent['type'] in TYPES else 'unknown type'}: {status} {reason}".strip())
    if data.draw(st.booleans(), label="resend"):  # a lost acknowledgement: the same batch again, a new nonce
        check_answer(events, r.rogue.post("SOUTH", events), first_outcomes=outcomes)


@ORACLE
@given(st.lists(st.tuples(st.sampled_from(["", "patron", "item"]), st.text(min_size=1, max_size=12), values),
                min_size=1, max_size=4))
def test_fields_a_receiver_does_not_know_are_ignored(south, extra):
    """docs/protocol.md: a receiver ignores fields it does not know (a newer peer never blocks an older one)."""
    r = south
    loan = loan_created("EAST", ("SOUTH", "south-5"), ("EAST", r.east_barcode()))
    fine = templates(r, loan)["fee.assessed"]
    known = set(paths(loan)) | set(paths(fine))
    for where, name, value in extra:
        for payload in (loan, fine):
            target = payload.get(where) if where else payload
            if isinstance(target, dict) and ((where, name) if where else (name,)) not in known:
                target[name] = value
    events, response = r.send([("loan.created", loan), ("fee.assessed", fine)])
    assert check_answer(events, response) == [("applied", ""), ("applied", "")], f"extra fields: {extra}"


# --- amounts: the ceiling, the minor units, exponent notation, NaN ---------------------------------

# Decimal text by a grammar (a sign, digits, a fraction, an exponent) and the odd cases around it; not any
# text, since Python's Decimal also reads " 5", "1_0" and other scripts' digits, which the contract leaves open.
amount_texts = st.one_of(
    st.builds(lambda sign, whole, fraction, exponent: f"{sign}{whole}{fraction}{exponent}",
              st.sampled_from(["", "-", "+"]),
              st.integers(0, 12).map(str) | st.from_regex(r"[0-9]{1,7}", fullmatch=True),
              st.sampled_from(["", "."]) | st.from_regex(r"\.[0-9]{1,4}", fullmatch=True),
              st.sampled_from([""] * 3) | st.from_regex(r"[eE][+-]?[0-9]{1,3}", fullmatch=True)),
    st.sampled_from(["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "1E+30", "1e400", "10000.00",
                     "10000.01", "9999.99", "0.01", "0.009", "0.010", "1E-2", "1E-3", "-0.01", "-10.00", "-10.01",
                     "-5.00", "-1E+1", "-100E-2", "-0.001", "", ".", "1.2.3", "five",
                     "1,00", "0x10", "\x005.00"]))


amounts = st.one_of(amount_texts, st.none(), st.booleans(), st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False))


def expected(amount, low, high):
    """What the contract says of AMOUNT where LOW < amount <= HIGH in cents is allowed: (status, reason)."""
    if type(amount) is not str:
        return "rejected", "malformed_event"
    try:
        value = Decimal(amount)
    except decimal.InvalidOperation:
        return "rejected", "malformed_event"
    if not value.is_finite():
        return "rejected", "malformed_event"
    with decimal.localcontext(prec=2000):
        in_cents = value == value.quantize(Decimal("0.01"))
    if not in_cents or not low < value <= high:
        return "rejected", "amount_out_of_range"
    return "applied", ""


# Around a refund's bounds (a 10.00 fine refunded): in cents or finer, with exponents too.
refund_amounts = st.one_of(amounts, st.decimals(-12, 1, places=2).map(str), st.decimals(-12, 1, places=3).map(str),
                           st.decimals(-12, 1, places=2).map(lambda d: f"{d:E}"))


@ORACLE
@given(st.booleans().flatmap(lambda refund: st.tuples(st.just(refund), refund_amounts if refund else amounts)))
def test_a_fee_is_applied_exactly_when_its_amount_is_in_range(south, refund_and_amount):
    """A fee: in cents, above zero, at most [billing] max_fee_amount (10000); a refund: below zero, at most
    its fee (a 10.00 fine here); else ``amount_out_of_range``, and ``malformed_event`` when it is no number."""
    r, (refund, amount) = south, refund_and_amount
    loan = loan_created("EAST", ("SOUTH", "south-5"), ("EAST", r.east_barcode()))
    fine = templates(r, loan)["fee.assessed"]
    typed = [("loan.created", loan)]
    if refund:
        fine["amount"] = "10.00"
        typed.append(("fee.assessed", fine))
        fee = dict(templates(r, loan)["fee.assessed"], reason="refund", refund_of=fine["fee_id"], amount=amount)
        want = expected(amount, Decimal("-10.00") - Decimal("0.01"), Decimal("-0.01"))
    else:
        fee = dict(fine, amount=amount)
        want = expected(amount, Decimal(0), Decimal(10000))
    typed += [("fee.assessed", fee),
              ("loan.created", loan_created("EAST", ("SOUTH", "south-6"), ("EAST", r.east_barcode())))]
    events, response = r.send(typed)
    outcomes = check_answer(events, response)
    event(f"{'refund' if refund else 'fee'}: {' '.join(outcomes[-2])}".strip())
    assert outcomes[-2] == want, f"{'refund' if refund else 'fee'} of {amount!r}: answered {outcomes[-2]}"


@ORACLE
@given(amounts)
def test_a_payment_is_applied_exactly_when_within_what_is_open(south, amount):
    """fee.paid from the fee's home (EAST) to its lender (SOUTH): in cents, above zero, at most what is open."""
    r = south
    fee, total, paid = db_rows(r.net, "SOUTH", "SELECT id, amount, paid FROM fee WHERE id = ?",
                               (r.ids["open_fee"],))[0]
    total, paid = Decimal(total) / 100, Decimal(paid) / 100
    try:
        after = str(paid + Decimal(amount)) if type(amount) is str else "0.00"
    except decimal.InvalidOperation:
        after = "0.00"
    payment = dict(templates(r, loan_created("EAST", ("SOUTH", "south-5"), ("EAST", "E1")))["fee.paid"],
                   fee_id=fee, amount=amount, paid=after, status="paid" if after == str(total) else "open")
    typed = [("loan.created", loan_created("EAST", ("SOUTH", "south-5"), ("EAST", r.east_barcode()))),
             ("fee.paid", payment),
             ("loan.created", loan_created("EAST", ("SOUTH", "south-6"), ("EAST", r.east_barcode())))]
    events, response = r.send(typed)
    outcomes = check_answer(events, response)
    event(" ".join(outcomes[1]).strip())
    assert outcomes[1] == expected(amount, Decimal(0), total - paid), (
        f"payment of {amount!r} with {total - paid} open: answered {outcomes[1]}")


def test_the_receiver_logged_no_crash(south):
    """Run last: whatever the examples sent, SOUTH's log shows no unhandled exception."""
    with open(os.path.join(south.net.info("SOUTH").folder, "node.log"), errors="replace") as handle:
        log = handle.read()
    if "Traceback" in log:
        start = log.rfind("\n", 0, log.rfind("\n", 0, log.index("Traceback"))) + 1  # from the line that logged it
        pytest.fail(f"SOUTH logged an unhandled exception:\n{log[start:start + 4000]}", pytrace=False)
