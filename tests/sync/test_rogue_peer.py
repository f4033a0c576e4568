"""A rogue peer with a real key: NORTH and SOUTH accept from EAST only the facts EAST owns (issue 11).

Three real node processes.  The network first lives an honest life: NORTH,
SOUTH and EAST lend to each other's patrons, bill lost items, return a
peer's item at the patron's home.  Then EAST turns rogue: signed with EAST's
real private key and numbered as EAST's next events, it sends SOUTH (a home
node) and NORTH (a lender) forged facts about loans, items and fees that are
not EAST's, one per batch, each followed by an honest EAST event.  Every
forgery must be ``rejected`` with its stable reason (shown to the receiver's
admins under "refused from peers"), change nothing at the receiver (loans,
items, fees, payments, patrons, outbox, each own patron's standing), and not
hold up the honest event behind it.
"""
import datetime
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from node.demo.network import DEMO_NODES
from tests import rogue
from tests.network import Network
from tests.rogue import DROP, Rogue, db_rows, iso, new_id

pytestmark = pytest.mark.slow

TERMS = {
    # No background push: every event a receiver gets comes from the setup's `circnode sync` or from the rogue.
    "sync": {"interval_seconds": "3600", "timeout_seconds": "5", "standing_timeout_seconds": "2"},
    "jobs": {"daily_at": ""},  # time is passed in (`jobs run --at`); no scheduled run may interfere
}
HONEST_PATRON = {"SOUTH": "south-8", "NORTH": "north-8"}  # the honest events' patrons, touched by nothing else
EAST_PATRON = {"SOUTH": "south-5", "NORTH": "north-5"}  # patrons of EAST's genuine loans the fee cases bill
FORGED_PATRON = {"SOUTH": "south-1", "NORTH": "north-1"}
EAST_BILLED = {"SOUTH": "ES_fees", "NORTH": "EN_fees"}  # EAST's lost loans, billed by EAST's own daily job


def lend(net, lender, barcode, home, patron):
    r = net.api(lender, "POST", "/api/v1/checkouts", {"item_barcode": barcode, "patron": {"institution": home,
                                                                                          "id": patron}})
    assert r.status_code == 201 and not r.json()["provisional"], r.text
    return r.json()


def cli(net, code, *args):
    result = net.cli(code, *args)
    assert result.returncode == 0, f"{code} {args}: {result.stdout}{result.stderr}"
    return result.stdout


def on_each(function, calls):
    """FUNCTION(*args) for each of CALLS at once (each a node's own CLI process)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda args: function(*args), calls))


@dataclass
class Fee:
    id: str
    lender: str
    home: str
    loan_id: str
    reason: str
    amount: str


class World:
    """The network after its honest life; names for the loans and fees the cases forge facts about."""

    def __init__(self, net):
        self.net, self.rogue = net, Rogue(net, "EAST")
        self.loan, self.patron_of, self.barcode_of = {}, {}, {}
        self._barcodes = iter(range(50001, 99999))

    def lend(self, name, lender, barcode, home, patron):
        self.loan[name] = lend(self.net, lender, barcode, home, patron)["id"]
        self.patron_of[name], self.barcode_of[name] = patron, barcode

    def fee(self, at, loan, reason):
        """The fee of loan name LOAN for REASON, as node AT holds it."""
        rows = db_rows(self.net, at, "SELECT id, lender, home, loan_id, reason, amount FROM fee "
                                     "WHERE loan_id = ? AND reason = ?", (self.loan[loan], reason))
        assert len(rows) == 1, (at, loan, reason, rows)
        fee_id, lender, home, loan_id, reason, cents = rows[0]
        return Fee(fee_id, lender, home, loan_id, reason, f"{cents / 100:.2f}")

    def east_barcode(self):
        """A barcode of EAST's no receiver has heard of."""
        return f"E{next(self._barcodes):05d}"

    def honestly(self, receiver, typed):
        """Send RECEIVER EAST's honest events TYPED [(type, data)]; each must be applied."""
        response = self.rogue.post(receiver, self.rogue.number(receiver, typed))
        assert response.status_code == 200, response.text
        assert [r["status"] for r in response.json()["results"]] == ["applied"] * len(typed), response.text

    def fresh_loan(self, receiver):
        """A new genuine EAST loan of a RECEIVER patron (so no earlier case's leftovers can touch it); its name."""
        patron = EAST_PATRON[receiver]
        data = rogue.loan_created("EAST", (receiver, patron), ("EAST", self.east_barcode()))
        self.honestly(receiver, [("loan.created", data)])
        name = data["loan_id"]
        self.loan[name], self.patron_of[name], self.barcode_of[name] = name, patron, data["item"]["barcode"]
        return name

    def billed_loan(self, receiver):
        """A new genuine EAST loan of a RECEIVER patron with EAST's genuine 10.00 fine on it: (its name, the fee id)."""
        name = self.fresh_loan(receiver)
        fine = assessed(self, receiver, loan=name, amount="10.00")
        self.honestly(receiver, [("fee.assessed", fine)])
        return name, fine["fee_id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    net = Network(tmp_path_factory.mktemp("rogue"), nodes=DEMO_NODES, items=30, patrons=8, overrides=TERMS)
    try:
        on_each(net.start, [(code,) for code in net.infos])
        w = World(net)
        # Loans that will be overdue long enough to be declared lost and billed by their lenders.
        w.lend("NS_lost", "NORTH", "N00021", "SOUTH", "south-2")
        w.lend("NE_lost", "NORTH", "N00022", "EAST", "east-1")
        w.lend("SN_lost", "SOUTH", "S00021", "NORTH", "north-2")
        w.lend("SE_lost", "SOUTH", "S00022", "EAST", "east-2")
        w.lend("ES_fees", "EAST", "E00001", "SOUTH", "south-4")
        w.lend("EN_fees", "EAST", "E00002", "NORTH", "north-4")
        due = datetime.date.fromisoformat(
            net.api("NORTH", "GET", f"/api/v1/loans/{w.loan['NS_lost']}").json()["due_at"][:10])
        lost_day = f"{due + datetime.timedelta(days=31)}T08:00"
        outputs = on_each(cli, [(net, code, "jobs", "run", "--at", lost_day) for code in ("NORTH", "SOUTH", "EAST")])
        assert all("declared lost 2" in out for out in outputs), outputs
        # Loans made afterwards (not overdue at that run): open and fee-free.
        w.lend("NS", "NORTH", "N00020", "SOUTH", "south-1")  # NORTH's open loan of a SOUTH patron
        w.lend("N23", "NORTH", "N00023", "SOUTH", "south-3")  # to be returned at SOUTH: in transit to NORTH
        w.lend("NN", "NORTH", "N00005", "NORTH", "north-6")  # NORTH's local loan
        w.lend("NE", "NORTH", "N00024", "EAST", "east-3")  # NORTH's loan of an EAST patron: EAST may return it
        w.lend("SS", "SOUTH", "S00005", "SOUTH", "south-6")  # SOUTH's local loan
        w.lend("ES", "EAST", "E00003", "SOUTH", "south-5")  # EAST's genuine loan, no fees
        w.lend("ER", "EAST", "E00005", "SOUTH", "south-7")  # to be returned at SOUTH: in transit to EAST
        on_each(cli, [(net, code, "sync") for code in ("NORTH", "SOUTH", "EAST")])
        for barcode, owner in (("N00023", "NORTH"), ("E00005", "EAST")):
            r = net.api("SOUTH", "POST", "/api/v1/returns", {"item_barcode": barcode, "owner": owner})
            assert r.status_code == 200 and r.json()["transit"]["to"] == owner, r.text
        cli(net, "SOUTH", "sync")
        for code in net.infos:
            queued = db_rows(net, code, "SELECT COUNT(*) FROM outbox_event WHERE state != 'delivered'")[0][0]
            assert queued == 0, f"{code} has {queued} events not delivered after the honest life"
        assert db_rows(net, "NORTH", "SELECT status FROM item WHERE barcode = 'N00023'") == [("in_transit",)]
        assert db_rows(net, "SOUTH", "SELECT COUNT(*) FROM fee WHERE lender != 'SOUTH'")[0][0] == 6  # NORTH's, EAST's
        yield w
    finally:
        net.stop_all()


def now():
    return datetime.datetime.now(rogue.UTC)


# --- events EAST could honestly send; each case changes one thing ------------------------------

def honest_created(w, receiver):
    """A new loan of a new EAST item to the receiver's honest patron: always EAST's to tell."""
    return rogue.loan_created("EAST", (receiver, HONEST_PATRON[receiver]), ("EAST", w.east_barcode()))


def created(w, receiver, **change):
    """A loan.created of a new EAST item to one of RECEIVER's patrons, with CHANGE."""
    base = rogue.loan_created("EAST", (receiver, FORGED_PATRON[receiver]), ("EAST", w.east_barcode()))
    return rogue.merged(base, change)


def returned(w, loan, lender, at="EAST", **change):
    return rogue.merged({"loan_id": w.loan.get(loan, loan), "lender": lender, "returned_at": iso(now()),
                         "returned_at_institution": at}, change)


def renewed(w, loan, lender="EAST", **change):
    return rogue.merged({"loan_id": w.loan.get(loan, loan), "lender": lender,
                         "due_at": iso(now() + datetime.timedelta(days=42)), "renewals": 1}, change)


def lost(w, loan, lender="EAST", **change):
    return rogue.merged({"loan_id": w.loan.get(loan, loan), "lender": lender, "lost_at": iso(now())}, change)


def received(w, loan, owner, barcode, **change):
    return rogue.merged({"loan_id": w.loan.get(loan, loan), "owner": owner, "barcode": barcode,
                         "received_at": iso(now())}, change)


def assessed(w, receiver, loan=None, **change):
    """A fee.assessed of EAST's (a 5.00 fine on a new genuine EAST loan of a RECEIVER patron), with CHANGE."""
    loan = loan or w.fresh_loan(receiver)
    base = {"fee_id": new_id(), "loan_id": w.loan[loan], "lender": "EAST",
            "patron": {"institution": receiver, "id": w.patron_of[loan]},
            "item": {"barcode": w.barcode_of[loan], "title": "East book"}, "amount": "5.00", "currency": "EUR",
            "reason": "fine", "refund_of": None, "assessed_at": iso(now())}
    return rogue.merged(base, change)


def refund(w, receiver, amount="-5.00", refund_of=None, loan=None):
    """A refund by EAST on LOAN (else a new genuine billed loan) of AMOUNT, naming REFUND_OF (else its fine)."""
    if loan is None:
        loan, fine = w.billed_loan(receiver)
        refund_of = refund_of or fine
    return assessed(w, receiver, loan=loan, reason="refund", amount=amount, refund_of=refund_of)


def settled(w, fee, kind="payment", **change):
    """A fee.paid (or fee.waived) of 1.00 on FEE, as its home would report it, with CHANGE."""
    base = {"fee_id": fee.id, "payment_id": new_id(), "kind": kind, "amount": "1.00", "currency": "EUR",
            "at": iso(now()), "status": "open", "paid": "1.00" if kind == "payment" else "0.00",
            "note": "" if kind == "payment" else "goodwill"}
    return rogue.merged(base, change)


@dataclass
class Case:
    name: str
    receiver: str
    type: str
    data: Callable  # World -> the forged event's data
    reason: str


def cases(receiver_list, name, event_type, data, reason):
    return [Case(f"{name} [to {receiver}]", receiver, event_type,
                 (lambda w, receiver=receiver: data(w, receiver)), reason) for receiver in receiver_list]


BOTH, SOUTH, NORTH = ("SOUTH", "NORTH"), ("SOUTH",), ("NORTH",)

RETURNS = [
    *cases(BOTH, "return of NORTH's open loan of a SOUTH patron", "loan.returned",
           lambda w, r: returned(w, "NS", "NORTH"), "not_authoritative"),
    *cases(SOUTH, "return of NORTH's loan, claiming EAST lent it", "loan.returned",
           lambda w, r: returned(w, "NS", "EAST"), "not_authoritative"),
    *cases(BOTH, "return of NORTH's loan, claiming SOUTH's desk took it back", "loan.returned",
           lambda w, r: returned(w, "NS", "NORTH", at="SOUTH"), "not_authoritative"),
    *cases(SOUTH, "return of SOUTH's own local loan", "loan.returned",
           lambda w, r: returned(w, "SS", "SOUTH"), "not_authoritative"),
    *cases(NORTH, "return of NORTH's own local loan", "loan.returned",
           lambda w, r: returned(w, "NN", "NORTH"), "not_authoritative"),
    *cases(NORTH, "return of NORTH's loan of an EAST patron, claiming EAST lent it", "loan.returned",
           lambda w, r: returned(w, "NE", "EAST"), "not_authoritative"),
    *cases(BOTH, "return of a loan nobody made", "loan.returned",
           lambda w, r: returned(w, new_id(), "EAST"), "loan_unknown"),
    *cases(SOUTH, "return of EAST's loan at a time that is no time", "loan.returned",
           lambda w, r: returned(w, "ES", "EAST", returned_at="yesterday"), "malformed_event"),
]

CREATES = [
    *cases(BOTH, "loan.created of NORTH's item N00020, on loan at NORTH", "loan.created",
           lambda w, r: created(w, r, item={"institution": "NORTH", "barcode": "N00020"}), "item_not_senders"),
    *cases(SOUTH, "loan.created of SOUTH's own item, on a local loan", "loan.created",
           lambda w, r: created(w, r, item={"institution": "SOUTH", "barcode": "S00005"}), "item_not_senders"),
    *cases(NORTH, "loan.created of NORTH's own item, on a local loan", "loan.created",
           lambda w, r: created(w, r, item={"institution": "NORTH", "barcode": "N00005"}), "item_not_senders"),
    *cases(BOTH, "loan.created of an unknown barcode owned by NORTH", "loan.created",
           lambda w, r: created(w, r, item={"institution": "NORTH", "barcode": "N09999"}), "item_not_senders"),
    *cases(BOTH, "loan.created of an unknown barcode owned by SOUTH", "loan.created",
           lambda w, r: created(w, r, item={"institution": "SOUTH", "barcode": "S09999"}), "item_not_senders"),
    *cases(SOUTH, "loan.created of an item of a library outside the network", "loan.created",
           lambda w, r: created(w, r, item={"institution": "WEST", "barcode": "W00001"}), "item_not_senders"),
    *cases(BOTH, "loan.created naming NORTH as the lender", "loan.created",
           lambda w, r: created(w, r, lender="NORTH"), "not_authoritative"),
    *cases(BOTH, "loan.created under the id of NORTH's real loan", "loan.created",
           lambda w, r: created(w, r, loan_id=w.loan["NS"]), "not_authoritative"),
    *cases(SOUTH, "loan.created for a NORTH patron, sent to SOUTH", "loan.created",
           lambda w, r: created(w, r, patron={"institution": "NORTH", "id": "north-1"}), "wrong_home"),
    *cases(NORTH, "loan.created for a SOUTH patron, sent to NORTH", "loan.created",
           lambda w, r: created(w, r, patron={"institution": "SOUTH", "id": "south-1"}), "wrong_home"),
    *cases(BOTH, "loan.created for a patron the home does not know", "loan.created",
           lambda w, r: created(w, r, patron={"id": "nobody-here"}), "patron_unknown"),
    *cases(SOUTH, "loan.created without a loan_id", "loan.created",
           lambda w, r: created(w, r, loan_id=DROP), "malformed_event"),
    *cases(SOUTH, "loan.created with a null barcode", "loan.created",
           lambda w, r: created(w, r, item={"barcode": None}), "malformed_event"),
    *cases(SOUTH, "loan.created with renewals as text", "loan.created",
           lambda w, r: created(w, r, renewals="2"), "malformed_event"),
    *cases(SOUTH, "loan.created with a due time without offset", "loan.created",
           lambda w, r: created(w, r, due_at="2026-12-24T12:00:00"), "malformed_event"),
]

RENEWALS_AND_LOSSES = [
    *cases(BOTH, "renewal of NORTH's loan", "loan.renewed", lambda w, r: renewed(w, "NS"), "not_authoritative"),
    *cases(SOUTH, "renewal of NORTH's loan in NORTH's name", "loan.renewed",
           lambda w, r: renewed(w, "NS", lender="NORTH"), "not_authoritative"),
    *cases(SOUTH, "renewal of SOUTH's own local loan", "loan.renewed",
           lambda w, r: renewed(w, "SS"), "not_authoritative"),
    *cases(BOTH, "renewal of a loan nobody made", "loan.renewed",
           lambda w, r: renewed(w, new_id()), "loan_unknown"),
    *cases(SOUTH, "renewal of EAST's loan with renewals -1", "loan.renewed",
           lambda w, r: renewed(w, "ES", renewals=-1), "malformed_event"),
    *cases(BOTH, "loss of NORTH's loan", "loan.lost", lambda w, r: lost(w, "NS"), "not_authoritative"),
    *cases(NORTH, "loss of NORTH's own local loan", "loan.lost", lambda w, r: lost(w, "NN"), "not_authoritative"),
    *cases(BOTH, "loss of a loan nobody made", "loan.lost", lambda w, r: lost(w, new_id()), "loan_unknown"),
    *cases(SOUTH, "loss of EAST's loan at a time that is no time", "loan.lost",
           lambda w, r: lost(w, "ES", lost_at="soon"), "malformed_event"),
]

RECEIPTS = [
    *cases(SOUTH, "item.received of NORTH's item SOUTH returned for NORTH", "item.received",
           lambda w, r: received(w, "N23", "NORTH", "N00023"), "not_authoritative"),
    *cases(SOUTH, "item.received of NORTH's item SOUTH returned for NORTH, EAST posing as owner", "item.received",
           lambda w, r: received(w, "N23", "EAST", "N00023"), "not_authoritative"),
    *cases(SOUTH, "item.received of EAST's item SOUTH never returned", "item.received",
           lambda w, r: received(w, "ES", "EAST", "E00003"), "not_authoritative"),
    *cases(NORTH, "item.received of NORTH's own item in transit", "item.received",
           lambda w, r: received(w, "N23", "NORTH", "N00023"), "not_authoritative"),
    *cases(NORTH, "item.received of NORTH's own item on loan", "item.received",
           lambda w, r: received(w, "NS", "NORTH", "N00020"), "not_authoritative"),
    *cases(SOUTH, "item.received for a loan nobody made", "item.received",
           lambda w, r: received(w, new_id(), "EAST", "E00005"), "loan_unknown"),
]


FEES = [
    *cases(BOTH, "fee of 999.00 on a loan that never existed", "fee.assessed",
           lambda w, r: assessed(w, r, loan_id=new_id(), amount="999.00"), "loan_unknown"),
    *cases(SOUTH, "fee on NORTH's loan of a SOUTH patron", "fee.assessed",
           lambda w, r: assessed(w, r, loan="NS"), "not_authoritative"),
    *cases(SOUTH, "fee on NORTH's loan, in NORTH's name", "fee.assessed",
           lambda w, r: assessed(w, r, loan="NS", lender="NORTH"), "not_authoritative"),
    *cases(BOTH, "fee of -500.00 that is not a refund", "fee.assessed",
           lambda w, r: assessed(w, r, amount="-500.00"), "amount_out_of_range"),
    *cases(BOTH, "refund larger than the fee it refunds", "fee.assessed",
           lambda w, r: refund(w, r, amount="-10.01"), "amount_out_of_range"),
    *cases(SOUTH, "refund of -500.00 of a 10.00 fine", "fee.assessed",
           lambda w, r: refund(w, r, amount="-500.00"), "amount_out_of_range"),
    *cases(BOTH, "refund of EAST's own fee of another loan", "fee.assessed",
           lambda w, r: refund(w, r, loan=w.fresh_loan(r), refund_of=w.fee(r, EAST_BILLED[r], "replacement").id),
           "fee_unknown"),
    *cases(SOUTH, "refund of NORTH's fee", "fee.assessed",
           lambda w, r: refund(w, r, refund_of=w.fee(r, "NS_lost", "replacement").id), "fee_unknown"),
    *cases(SOUTH, "refund naming no fee", "fee.assessed", lambda w, r: refund(w, r, refund_of=new_id()),
           "fee_unknown"),
    *cases(SOUTH, "refund naming no fee at all (null)", "fee.assessed",
           lambda w, r: refund(w, r, loan=w.fresh_loan(r)), "fee_unknown"),
    *cases(BOTH, 'fee of "1E+30"', "fee.assessed", lambda w, r: assessed(w, r, amount="1E+30"),
           "amount_out_of_range"),
    *cases(BOTH, 'fee of "NaN"', "fee.assessed", lambda w, r: assessed(w, r, amount="NaN"), "malformed_event"),
    *cases(SOUTH, 'fee of "Infinity"', "fee.assessed", lambda w, r: assessed(w, r, amount="Infinity"),
           "malformed_event"),
    *cases(SOUTH, 'fee of "twelve"', "fee.assessed", lambda w, r: assessed(w, r, amount="twelve"),
           "malformed_event"),
    *cases(SOUTH, "fee as a JSON number", "fee.assessed", lambda w, r: assessed(w, r, amount=12.5),
           "malformed_event"),
    *cases(BOTH, 'fee of "0.001"', "fee.assessed", lambda w, r: assessed(w, r, amount="0.001"),
           "amount_out_of_range"),
    *cases(BOTH, "fee of 0", "fee.assessed", lambda w, r: assessed(w, r, amount="0"), "amount_out_of_range"),
    *cases(SOUTH, "fee of 0.00", "fee.assessed", lambda w, r: assessed(w, r, amount="0.00"), "amount_out_of_range"),
    *cases(BOTH, "fee above the ceiling (10000.01)", "fee.assessed",
           lambda w, r: assessed(w, r, amount="10000.01"), "amount_out_of_range"),
    *cases(SOUTH, "fee for a NORTH patron, sent to SOUTH", "fee.assessed",
           lambda w, r: assessed(w, r, patron={"institution": "NORTH", "id": "north-5"}), "wrong_home"),
    *cases(NORTH, "fee for a SOUTH patron, sent to NORTH", "fee.assessed",
           lambda w, r: assessed(w, r, patron={"institution": "SOUTH", "id": "south-5"}), "wrong_home"),
    *cases(SOUTH, "fee on EAST's loan, billed to another SOUTH patron", "fee.assessed",
           lambda w, r: assessed(w, r, patron={"id": "south-4"}), "not_authoritative"),
    *cases(SOUTH, "fee under the id of NORTH's fee", "fee.assessed",
           lambda w, r: assessed(w, r, fee_id=w.fee(r, "NS_lost", "fine").id), "not_authoritative"),
    *cases(BOTH, "second fine on a loan EAST billed", "fee.assessed",
           lambda w, r: assessed(w, r, loan=w.billed_loan(r)[0]), "fee_conflict"),
]

SETTLEMENTS = [
    *cases(NORTH, "payment of NORTH's fee of a SOUTH patron", "fee.paid",
           lambda w, r: settled(w, w.fee(r, "NS_lost", "replacement")), "not_authoritative"),
    *cases(NORTH, "waiver of NORTH's fee of a SOUTH patron", "fee.waived",
           lambda w, r: settled(w, w.fee(r, "NS_lost", "replacement"), "waiver", amount="45.00", status="waived"),
           "not_authoritative"),
    *cases(SOUTH, "payment of SOUTH's fee of a NORTH patron", "fee.paid",
           lambda w, r: settled(w, w.fee(r, "SN_lost", "replacement")), "not_authoritative"),
    *cases(SOUTH, "waiver of SOUTH's fee of a NORTH patron", "fee.waived",
           lambda w, r: settled(w, w.fee(r, "SN_lost", "replacement"), "waiver", amount="45.00", status="waived"),
           "not_authoritative"),
    *cases(SOUTH, "payment of NORTH's fee, sent to its home SOUTH", "fee.paid",
           lambda w, r: settled(w, w.fee(r, "NS_lost", "replacement")), "fee_unknown"),
    *cases(BOTH, "payment of a fee nobody assessed", "fee.paid",
           lambda w, r: settled(w, Fee(new_id(), r, "EAST", new_id(), "fine", "5.00")), "fee_unknown"),
    *cases(BOTH, "payment of more than is open on an EAST patron's fee", "fee.paid",
           lambda w, r: settled(w, w.fee(r, f"{r[0]}E_lost", "replacement"), amount="45.01", paid="45.01",
                                status="paid"), "amount_out_of_range"),
    *cases(BOTH, "waiver of more than is open on an EAST patron's fee", "fee.waived",
           lambda w, r: settled(w, w.fee(r, f"{r[0]}E_lost", "processing"), "waiver", amount="10.01",
                                status="waived"), "amount_out_of_range"),
    *cases(NORTH, "negative payment on an EAST patron's fee", "fee.paid",
           lambda w, r: settled(w, w.fee(r, "NE_lost", "replacement"), amount="-5.00", paid="-5.00"),
           "amount_out_of_range"),
    *cases(NORTH, 'payment of "0.001"', "fee.paid",
           lambda w, r: settled(w, w.fee(r, "NE_lost", "replacement"), amount="0.001", paid="0.001"),
           "amount_out_of_range"),
    *cases(NORTH, 'payment of "NaN"', "fee.paid",
           lambda w, r: settled(w, w.fee(r, "NE_lost", "replacement"), amount="NaN"), "malformed_event"),
]

ALL = RETURNS + CREATES + RENEWALS_AND_LOSSES + RECEIPTS + FEES + SETTLEMENTS


def test_every_forgery_table_names_known_reasons():
    """The tables use only the reasons of the contract (a typo would make a case pass for the wrong reason)."""
    contract = {"malformed_event", "not_authoritative", "item_not_senders", "wrong_home", "patron_unknown",
                "loan_unknown", "fee_unknown", "amount_out_of_range", "fee_conflict"}
    assert {case.reason for case in ALL} <= contract
    assert len({case.name for case in ALL}) == len(ALL)


def test_honest_events_of_every_type_are_applied(world):
    """The control: EAST's own facts, built like the forgeries, are applied (so a rejection below is the forgery's)."""
    w, east = world, world.rogue
    fresh = honest_created(w, "SOUTH")
    loan = fresh["loan_id"]
    w.loan[loan], w.patron_of[loan], w.barcode_of[loan] = loan, HONEST_PATRON["SOUTH"], fresh["item"]["barcode"]
    fine = assessed(w, "SOUTH", loan=loan)
    to_south = [("loan.created", fresh),
                ("loan.renewed", renewed(w, loan, renewals=1)),
                ("loan.lost", lost(w, loan)),
                ("fee.assessed", fine),
                ("fee.assessed", refund(w, "SOUTH", loan=loan, refund_of=fine["fee_id"])),
                ("loan.returned", returned(w, loan, "EAST")),
                ("item.received", received(w, "ER", "EAST", "E00005")),
                ("fee.waived", settled(w, w.fee("SOUTH", "SE_lost", "fine"), "waiver", amount="10.00",
                                       status="waived"))]
    to_north = [("fee.paid", settled(w, w.fee("NORTH", "NE_lost", "fine"), amount="4.00", paid="4.00")),
                ("loan.returned", returned(w, "NE", "NORTH"))]  # returned at EAST, its patron's home
    for receiver, typed in (("SOUTH", to_south), ("NORTH", to_north)):
        start = east.received_through(receiver)
        response = east.post(receiver, east.number(receiver, typed))
        assert response.status_code == 200, response.text
        got = [(result["status"], result["reason"]) for result in response.json()["results"]]
        assert got == [("applied", "")] * len(typed), list(zip([t for t, _ in typed], got))
        assert response.json()["acked_through"] == start + len(typed)
    assert db_rows(w.net, "SOUTH", "SELECT status, renewals, lost_at IS NOT NULL FROM loan WHERE id = ?",
                   (loan,)) == [("closed", 1, 1)]
    assert db_rows(w.net, "SOUTH", "SELECT status FROM item WHERE owner = 'EAST' AND barcode = 'E00005'") == [
        ("available",)]
    assert db_rows(w.net, "SOUTH", "SELECT reason, amount FROM fee WHERE loan_id = ? ORDER BY reason",
                   (loan,)) == [("fine", 500), ("refund", -500)]
    assert db_rows(w.net, "NORTH", "SELECT loan.status, returned_at_institution, item.status FROM loan "
                                   "JOIN item ON item.id = loan.item_id WHERE loan.id = ?", (w.loan["NE"],)) == [
        ("closed", "EAST", "in_transit")]
    assert db_rows(w.net, "NORTH", "SELECT status, paid FROM fee WHERE id = ?",
                   (w.fee("NORTH", "NE_lost", "fine").id,)) == [("open", 400)]
    assert db_rows(w.net, "SOUTH", "SELECT status, paid FROM fee WHERE id = ?",
                   (w.fee("SOUTH", "SE_lost", "fine").id,)) == [("waived", 0)]


@pytest.mark.parametrize("case", ALL, ids=[case.name for case in ALL])
def test_forged_event_is_rejected_changes_nothing_and_does_not_hold_up_the_next(world, case):
    w, east, receiver = world, world.rogue, case.receiver
    forged = case.data(w)
    honest = honest_created(w, receiver)
    honest_rows = {"honest_loans": {honest["loan_id"]}, "honest_items": {("EAST", honest["item"]["barcode"])}}
    before = rogue.snapshot(w.net, receiver, **honest_rows)
    start = east.received_through(receiver)
    response = east.post(receiver, east.number(receiver, [(case.type, forged), ("loan.created", honest)]))
    assert response.status_code == 200, (
        f"{receiver} answered HTTP {response.status_code} to the forged {case.type}: {response.text[:500]}\n"
        f"data: {forged}")
    answer = response.json()
    outcome = {result["sequence"]: result for result in answer["results"]}
    first, second = outcome.get(start + 1, {}), outcome.get(start + 2, {})
    after = rogue.snapshot(w.net, receiver, **honest_rows)
    problems = []
    if (first.get("status"), first.get("reason")) != ("rejected", case.reason):
        problems.append(f"the forged {case.type} was answered {first.get('status')!r} "
                        f"(reason {first.get('reason')!r}{', ' + str(first.get('note')) if first.get('note') else ''})"
                        f", expected 'rejected' ({case.reason!r})")
    changed = rogue.changes(before, after)
    if changed:
        problems.append(f"{receiver} changed:\n    " + "\n    ".join(changed))
    if second.get("status") != "applied":
        problems.append(f"the honest loan.created after it was answered {second.get('status')!r} "
                        f"({second.get('reason')!r}), expected 'applied'")
    if answer["acked_through"] != start + 2:
        problems.append(f"acked_through {answer['acked_through']}, expected {start + 2} (the queue stalled)")
    elif not db_rows(w.net, receiver, "SELECT 1 FROM loan WHERE id = ?", (honest["loan_id"],)):
        problems.append("the honest loan is not on the receiver's record")
    refused = w.net.api(receiver, "GET", "/api/v1/sync/queue?peer=EAST").json().get("refused_from_peers", [])
    if not any((r["sequence"], r["reason"]) == (start + 1, case.reason) for r in refused):
        problems.append(f"the admin queue's refused from peers does not show it: {refused[:2]}")
    if problems:
        pytest.fail(f"{case.name}:\n  " + "\n  ".join(problems) + f"\n  forged data: {forged}", pytrace=False)


def test_receivers_logged_no_crash(world):
    """Run last: whatever EAST forged, neither receiver logged an unhandled exception."""
    for code in ("SOUTH", "NORTH"):
        with open(f"{world.net.info(code).folder}/node.log", errors="replace") as handle:
            log = handle.read()
        if "Traceback" in log:
            start = log.rfind("\n", 0, log.rfind("\n", 0, log.index("Traceback"))) + 1
            pytest.fail(f"{code} logged an unhandled exception:\n{log[start:start + 4000]}", pytrace=False)
