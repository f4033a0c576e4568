"""Each SIP2 request, mapped to the domain: parse, call the one way to lend (node/domain/lending.py), answer.

A handler takes the Session, the parsed Request and NOW, and returns the
response's code, its fixed-length fields as one string, and its variable
fields [(tag, value)].  Field layouts follow the 3M SIP2 2.00 standard;
docs/sip2.md maps each field to circnode's records.  Nothing here composes a
checkout: loans, returns and renewals are ``lending.lend``, ``give_back`` and
``renew``, with the kiosk account as the audited staff member.
"""
import datetime
import logging
import re

from node.domain import billing, errors, lending
from node.domain.circulation import find_items, open_loan_of, own_item
from node.domain.standing import reusable
from node.sip2.codec import SUPPORTED_ORDER, Malformed, parse_date, sip_date, yes
from node.store.models import Fee, Item, Loan, Patron, PeerState

log = logging.getLogger(__name__)

NO_PINS = "circnode keeps no PINs: the patron password is not checked."
FUTURE_SKEW = datetime.timedelta(minutes=5)  # a kiosk clock this far ahead is believed; further, NOW is used
MAX_ITEMS = 40  # item fields in one 64 response: it stays a few KB, which every kiosk reads in one go
# The item states as SIP2's circulation status (18), docs/sip2.md.
CIRCULATION_STATUS = {"available": "03", "on_loan": "04", "in_transit": "10", "lost": "12", "missing": "13"}


# --- who the patron is ---

def borrower_for(cfg, patron_text):
    """The Borrower AA names: a network pass, one of our patrons by id, or a visitor by card number."""
    if not patron_text:
        raise errors.PatronUnknown("No patron identifier (AA).")
    if patron_text.startswith("CNP1."):
        return lending.Borrower(network_pass=patron_text)
    if Patron.of(cfg.institution, patron_text) is not None:
        return lending.Borrower(cfg.institution, patron_text)
    if cfg.sections["sip2"]["card_numbers"]:
        for code, peer in cfg.peers.items():
            if peer.card_pattern and re.fullmatch(peer.card_pattern, patron_text):
                return lending.Borrower(code, patron_text)
    raise errors.PatronUnknown("Not a patron of this library, nor a network pass: ask at the desk.")


def _admit(session, patron_text, now):
    """(Borrower, None) when the patron may borrow; (Borrower or None, the refusal) otherwise."""
    try:
        borrower = session.visit(patron_text)
    except errors.CircnodeError as exc:
        return None, exc
    if reusable(session.cfg, borrower.standing, now):
        return borrower, None  # the home's yes, asked already in this visit (a new visit asks again)
    try:
        lending.admit(session.cfg, borrower, now)
    except errors.CircnodeError as exc:
        return borrower, exc
    return borrower, None


def _password_valid(borrower):
    """CQ: Y for a network pass (the pass is the proof), N otherwise (no PINs kept)."""
    return yes(borrower is not None and borrower.network_pass is not None)


def _patron_status(refusal, standing=None):
    """The 14 "patron status" flags: Y means denied (charge, renewal, recall, hold; too many items; fees)."""
    flags = [" "] * 14
    if refusal is not None:
        flags[0] = flags[1] = flags[2] = flags[3] = "Y"
        if refusal.code in ("patron_limit_reached", "loan_limit_reached"):
            flags[5] = "Y"
        if "fee" in refusal.message.lower():
            flags[11] = "Y"
    return "".join(flags)


def _screen(borrower, refusal):
    """AF: the refusal's reason, else the offline and PIN notes."""
    if refusal is not None:
        return refusal.message
    notes = []
    if borrower.standing is not None and borrower.standing.provisional:
        notes.append("Home library not asked: loans are provisional, within this library's offline limit.")
    if borrower.network_pass is None:
        notes.append(NO_PINS)
    return " ".join(notes)


def _patron_row(borrower):
    if borrower is None or not borrower.home_id:
        return None
    return Patron.of(borrower.institution, borrower.home_id)


def _fees(patron):
    """The patron's open charges on this node's record (a refund credit, negative, is no fine item)."""
    if patron is None:
        return []
    return list(Fee.select().where((Fee.patron == patron) & (Fee.status == "open") & (Fee.amount > Fee.paid))
                .order_by(Fee.assessed_at))


def _owed(cfg, patron):
    """BV: the balance the patron owes in [billing] currency (credits count against charges), at least 0."""
    if patron is None:
        return _money(0)
    return _money(max(billing.balances(patron).get(cfg.sections["billing"]["currency"], 0), 0))


def _money(amount):
    return f"{amount:.2f}"


def patron_status(session, request, now):
    """23 -> 24: valid patron (BL), password (CQ), name, fees; the reason for a refusal in AF."""
    cfg, patron_text = session.cfg, request.get("AA")
    borrower, refusal = _admit(session, patron_text, now)
    patron = _patron_row(borrower) if refusal is None else None
    return "24", _patron_status(refusal) + "000" + sip_date(now, cfg.tz), [
        ("AO", cfg.institution), ("AA", patron_text), ("AE", _name(borrower, refusal)),
        ("BL", yes(refusal is None)), ("CQ", _password_valid(borrower) if refusal is None else "N"),
        ("BH", cfg.sections["billing"]["currency"]), ("BV", _owed(cfg, patron)),
        ("AF", _screen(borrower, refusal))]


def _name(borrower, refusal):
    if refusal is not None or borrower is None or borrower.standing is None:
        return ""
    return borrower.standing.name


def _range(request, count):
    """The 0-based slice BP..BQ (1-based, inclusive) asks for, at most MAX_ITEMS long."""
    def number(tag, default):
        text = request.get(tag).strip()
        return int(text) if text.isdigit() else default
    start = max(1, number("BP", 1))
    end = max(start, number("BQ", count))
    return slice(start - 1, min(end, start - 1 + MAX_ITEMS))


def patron_information(session, request, now):
    """63 -> 64: as 24, with counts of charged, overdue and fine items and the items the summary asks for."""
    cfg, patron_text = session.cfg, request.get("AA")
    borrower, refusal = _admit(session, patron_text, now)
    patron = _patron_row(borrower) if refusal is None else None
    loans = [] if patron is None else list(
        Loan.select(Loan, Item).join(Item).where((Loan.patron == patron) & (Loan.status == "open"))
        .order_by(Loan.due_at))
    overdue = [loan for loan in loans if loan.due_at < now]
    fees = _fees(patron)
    summary = request.fixed["summary"]
    wanted = {1: ("AT", overdue), 2: ("AU", loans), 3: ("AV", fees)}
    items = []
    for position, (tag, rows) in wanted.items():
        if summary[position:position + 1] == "Y":
            for row in rows[_range(request, len(rows))]:
                items.append((tag, _fee_line(row) if tag == "AV" else row.item.barcode))
    counts = "".join(f"{n:04d}" for n in (0, len(overdue), len(loans), len(fees), 0, 0))
    rules = cfg.policy_for("")
    fields = [("AO", cfg.institution), ("AA", patron_text), ("AE", _name(borrower, refusal)),
              ("CB", f"{rules['max_loans']:04d}" if borrower and borrower.institution != cfg.institution else None),
              ("BL", yes(refusal is None)), ("CQ", _password_valid(borrower) if refusal is None else "N"),
              ("BH", cfg.sections["billing"]["currency"]), ("BV", _owed(cfg, patron))]
    return "64", _patron_status(refusal) + "000" + sip_date(now, cfg.tz) + counts, fields + items + [
        ("AF", _screen(borrower, refusal))]


def _fee_line(fee):
    return f"{fee.item_barcode} {_money(fee.outstanding)} {fee.currency} {fee.reason}"


# --- checkout, checkin, renew ---

def _offline_time(session, request, now, field="transaction_date"):
    """For a "no block" transaction (stored by the kiosk while we were down): when it happened, at most NOW.

    Refused (BadRequest) when older than ``[sip2] no_block_max_age_days``: a
    kiosk whose clock was reset would otherwise lend years ago, and the next
    daily jobs would declare those loans lost and bill them.
    """
    at = parse_date(request.fixed.get(field, ""), session.cfg.tz) or parse_date(
        request.fixed["transaction_date"], session.cfg.tz)
    if at is None:
        raise Malformed("a no-block transaction without its date")
    days = session.cfg.sections["sip2"]["no_block_max_age_days"]
    if at < now - datetime.timedelta(days=days):
        log.warning("kiosk %s at %s: no-block %s dated more than %d days ago; refused", session.account,
                    session.address, request.code, days)
        raise errors.BadRequest(f"This offline transaction is dated {at.astimezone(session.cfg.tz):%Y-%m-%d}, "
                                f"more than {days} days ago (is the kiosk's clock right?): ask at the desk.")
    return min(at, now) if at <= now + FUTURE_SKEW else now


def _once_key(session, request, barcode):
    """The key that makes a "no block" transaction take effect once: kiosk, message, item, kiosk's date."""
    return f"sip2:{session.account}:{request.code}:{barcode}:{request.fixed['transaction_date']}"


def _own_item(cfg, barcode):
    """This library's item with BARCODE (matched as the desk matches it), or None, also when ambiguous."""
    try:
        return own_item(cfg, barcode)
    except errors.AmbiguousBarcode:
        return None


def checkout(session, request, now):
    """11 -> 12: lend the item to the patron at the kiosk (a renewal when it is theirs and the kiosk allows)."""
    cfg, patron_text, barcode = session.cfg, request.get("AA"), request.get("AB")
    no_block = request.fixed["no_block"] == "Y"
    renewed, loan, refusal, repeated, already = False, None, None, False, False
    if request.get("BI") == "Y":
        refusal = errors.BadRequest("Cancelling a checkin is not supported: ask at the desk.")
    else:
        try:
            at = _offline_time(session, request, now) if no_block else None
            borrower = session.visit(patron_text)
            loan = lending.lend(cfg, barcode, borrower, now, staff=session.staff, at=at,
                                once=_once_key(session, request, barcode) if no_block else None)
        except errors.AlreadyApplied:
            loan, repeated = _open_loan(cfg, barcode), True  # sent again: answered as the first time, nothing changes
        except errors.ItemOnLoan as exc:
            loan, refusal, already = _renew_own(session, request, barcode, now, exc)
            renewed = refusal is None and not already
        except errors.CircnodeError as exc:
            refusal = exc
    item = loan.item if loan is not None else _own_item(cfg, barcode)
    if repeated:
        note = "Checked out (sent before; nothing changed)."
    elif already:
        note = "Already checked out to you; the due date is unchanged."
    else:
        note = refusal.message if refusal is not None else _loan_note(loan, renewed)
    return "12", ("1" if refusal is None else "0") + yes(renewed) + "N" + yes(refusal is None) + sip_date(now, cfg.tz), [
        ("AO", cfg.institution), ("AA", patron_text), ("AB", barcode), ("AJ", item.title if item else ""),
        ("AH", sip_date(loan.due_at, cfg.tz) if loan is not None and refusal is None else ""),
        ("BK", loan.id if loan is not None and refusal is None else None), ("AF", note)]


def _loan_note(loan, renewed):
    due = "Renewed" if renewed else "Checked out"
    if loan.made_offline:
        return due + " (made offline, provisional)."  # the home library was asked and could not be reached
    return due + (" (provisional: home library not asked)." if loan.provisional else ".")  # a network pass


def _open_loan(cfg, barcode):
    item = _own_item(cfg, barcode)
    return open_loan_of(item) if item is not None else None


def _renew_own(session, request, barcode, now, refusal):
    """The checkout of an item on loan already: (loan, refusal, already checked out to this patron).

    Another patron's item stays refused.  The patron's own is renewed if the
    kiosk allows it (SC renewal policy Y); when it does not, or the renewal
    is too early, the checkout is answered ok with the loan's due date, as
    Koha and Evergreen answer it: a checkout retried after a lost answer
    must not sound the gate alarm.  No renewal is counted then.
    """
    loan = _open_loan(session.cfg, barcode)
    borrower = session.borrower
    if (loan is None or borrower is None or loan.patron is None
            or (loan.patron.institution, loan.patron.home_id) != (borrower.institution, borrower.home_id)):
        return None, refusal, False
    if request.fixed["sc_renewal_policy"] != "Y":
        return loan, None, True
    try:
        return lending.renew(session.cfg, loan.id, now, staff=session.staff), None, False
    except errors.RenewalTooEarly:
        return loan, None, True
    except errors.CircnodeError as exc:
        return None, exc, False


def checkin(session, request, now):
    """09 -> 10: return the item at this library; alert when it travels to another or leaves transit."""
    cfg, barcode = session.cfg, request.get("AB")
    no_block = request.fixed["no_block"] == "Y"
    result, refusal, repeated = None, None, False
    if request.get("BI") == "Y":
        refusal = errors.BadRequest("Cancelling a checkout is not supported: ask at the desk.")
    else:
        try:
            when = _offline_time(session, request, now, "return_date") if no_block else now
            result = lending.give_back(cfg, barcode, when, staff=session.staff,
                                       once=_once_key(session, request, barcode) if no_block else None)
        except errors.AlreadyApplied:
            repeated = True
        except errors.AmbiguousBarcode:
            refusal = errors.BadRequest("Several libraries use this barcode: take the item to the desk.")
        except errors.CircnodeError as exc:
            refusal = exc
    items = find_items(cfg, barcode)
    item = result.item if result is not None else (items[0] if len(items) == 1 else None)
    alert, note = False, "Returned."
    if result is not None and result.transit_to:
        alert, note = True, f"Returned: send to {cfg.library_name(result.transit_to)}."
    elif result is not None and result.received:
        alert, note = True, "Received back from transit: shelve it."
    elif repeated:
        note = "Returned (sent before; nothing changed)."
    ok = refusal is None
    stays = ok and item is not None and item.owner == cfg.institution
    return "10", ("1" if ok else "0") + yes(stays) + "N" + yes(alert or not ok) + sip_date(now, cfg.tz), [
        ("AO", cfg.institution), ("AB", barcode), ("AQ", item.owner if item else ""),
        ("AJ", item.title if item else ""), ("CL", result.transit_to if result and result.transit_to else None),
        ("AF", refusal.message if refusal is not None else note)]


def renew(session, request, now):
    """29 -> 30: renew the patron's loan of this library's item under its policy."""
    cfg, patron_text, barcode = session.cfg, request.get("AA"), request.get("AB")
    loan, refusal = _open_loan(cfg, barcode), None
    if loan is None:
        refusal = errors.NotOnLoan("The item is not on loan from this library.")
    elif request.fixed["third_party_allowed"] != "Y":
        borrower, refusal = _admit(session, patron_text, now)
        if refusal is None and (loan.patron is None or (loan.patron.institution, loan.patron.home_id)
                                != (borrower.institution, borrower.home_id)):
            refusal = errors.Forbidden("This item is on loan to someone else.")
    if refusal is None:
        try:
            loan = lending.renew(cfg, loan.id, now, staff=session.staff)
        except errors.CircnodeError as exc:
            refusal = exc
    item = loan.item if loan is not None else _own_item(cfg, barcode)
    ok = refusal is None
    return "30", ("1" if ok else "0") + yes(ok) + "N" + yes(ok) + sip_date(now, cfg.tz), [
        ("AO", cfg.institution), ("AA", patron_text), ("AB", barcode), ("AJ", item.title if item else ""),
        ("AH", sip_date(loan.due_at, cfg.tz) if ok else ""),
        ("AF", refusal.message if refusal is not None else _loan_note(loan, True))]


def item_information(session, request, now):
    """17 -> 18: the item's circulation status, title, owner and due date (never who has it)."""
    cfg, barcode = session.cfg, request.get("AB")
    items = find_items(cfg, barcode)
    item = _own_item(cfg, barcode) or (items[0] if len(items) == 1 else None)
    loan = open_loan_of(item) if item is not None and item.status == "on_loan" else None
    status = CIRCULATION_STATUS.get(item.status, "01") if item is not None else "01"
    return "18", status + "00" + "01" + sip_date(now, cfg.tz), [
        ("AH", sip_date(loan.due_at, cfg.tz) if loan is not None else None), ("AO", cfg.institution),
        ("AB", barcode), ("AJ", item.title if item else ""), ("AQ", item.owner if item else None),
        ("AF", "" if item is not None else "No such item here.")]


def end_patron_session(session, request, now):
    """35 -> 36: the patron's visit ends; the next patron's standing is asked afresh."""
    session.end_visit()
    cfg = session.cfg
    return "36", "Y" + sip_date(now, cfg.tz), [("AO", cfg.institution), ("AA", request.get("AA")),
                                               ("AF", "Thank you.")]


def sc_status(session, request, now):
    """99 -> 98: what this server does, and whether the patrons' home libraries can be reached now."""
    cfg = session.cfg
    unreachable = [row.peer for row in PeerState.select(PeerState.peer).where(PeerState.failures > 0)
                   if row.peer in cfg.peers]
    supported = "".join(yes(code in HANDLERS or code in ("93", "97")) for code in SUPPORTED_ORDER)  # 93, 97: the session
    timeout = min(999, (cfg.sync["standing_timeout_seconds"] + 2) * 10)  # tenths of a second
    fixed = (yes(not unreachable) + "YYYNY" + f"{timeout:03d}" + "003" + sip_date(now, cfg.tz) + "2.00")
    note = ("Cannot reach " + ", ".join(cfg.library_name(code) for code in sorted(unreachable))
            + ": their patrons borrow provisionally, within the offline limit.") if unreachable else ""
    return "98", fixed, [("AO", cfg.institution), ("AM", cfg.node["name"]), ("BX", supported),
                         ("AN", session.location or None), ("AF", note)]


HANDLERS = {
    "99": sc_status,
    "23": patron_status,
    "63": patron_information,
    "11": checkout,
    "09": checkin,
    "29": renew,
    "17": item_information,
    "35": end_patron_session,
}
