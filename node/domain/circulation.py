"""Circulation rules: checkout, renew, return, item states.  Knows nothing of Flask.

Each move checks, changes, then records: the loan rows, the item status,
the audit line and the outbox event commit together in one ``BEGIN
IMMEDIATE`` transaction, or not at all.  Views, JSON API and CLI call these
functions, so the three cannot disagree.
"""
import datetime
from dataclasses import dataclass, field

from peewee import JOIN, IntegrityError

from node.domain import barcodes, billing, errors, lifecycle
from node.domain.calendar import calendar_of
from node.domain.lifecycle import ADMIN, CLOSE_LOAN, DESK  # noqa: F401 (CLOSE_LOAN: the statement's old home)
from node.store.db import database
from node.store.models import AppliedOnce, AuditLog, Item, Loan, Patron
from node.domain.policy import due_date, earliest_renewal_day, renewal_due_date
from node.domain.ports import outbox

# Where a standing came from (Standing.source).
OWN = "own"  # this node's own records, for its own patrons
HOME = "home"  # the visiting patron's home node answered
UNREACHABLE = "unreachable"  # the home node could not be reached: the offline policy applies
PASS = "pass"  # a network pass, verified offline: the home node was not asked


@dataclass
class Standing:
    """What the patron's home node (or this node for its own patrons) says of them."""

    ok: bool
    code: str = ""  # refusal code when not ok
    reason: str = ""
    name: str = ""
    email: str = ""
    provisional: bool = False  # the home node has not said yes (unreachable, or a pass): the offline policy applies
    source: str = OWN
    asked_at: datetime.datetime = None  # when the home node answered (source HOME)

    @property
    def made_offline(self):
        """True when the home node was asked and could not be reached (not when a pass meant it was not asked)."""
        return self.source == UNREACHABLE

    def to_dict(self):
        """The standing as plain JSON values (a desk visit keeps it in its session)."""
        body = {key: getattr(self, key) for key in ("ok", "code", "reason", "name", "email", "provisional", "source")}
        body["asked_at"] = self.asked_at.isoformat() if self.asked_at else None
        return body

    @classmethod
    def from_dict(cls, body):
        """The Standing BODY (from ``to_dict``) holds; None for None."""
        if not body:
            return None
        known = {key: value for key, value in body.items() if key in cls.__dataclass_fields__}  # a session of another version
        asked_at = datetime.datetime.fromisoformat(body["asked_at"]) if body.get("asked_at") else None
        return cls(**{**known, "asked_at": asked_at})


@dataclass
class ReturnResult:
    loan: Loan = None
    item: Item = None
    transit_to: str = None
    received: bool = False
    notes: list = field(default_factory=list)
    lost: billing.LostReturn = None  # the item had been declared lost: what became of its fees

    def summary(self, cfg):
        """The sentence a desk or the CLI shows for this return."""
        barcode, title = self.item.barcode, self.item.title
        if self.received:
            return f"{barcode} received back from transit: {title} is available. Shelve it."
        where = (f"Send to {cfg.library_name(self.transit_to)}." if self.transit_to else "Shelve it.")
        lost = f" {self.lost.describe(cfg)}" if self.lost else ""
        return f"{barcode} returned: {title}. {where}{lost}"


def audit(staff, action, target, detail, now):
    AuditLog.add(at=now,
                 staff=staff or "system", action=action, target=target, detail=detail)


def find_items(cfg, barcode, owner=None):
    """The items with BARCODE (of OWNER when given), matched as ``[desk] barcode_case`` says.

    The one place a scanned or typed barcode meets the item table: desk, API and CLI all come here.
    """
    barcode = (barcode or "").strip()
    column = Item.barcode.collate("NOCASE") if barcodes.any_case(cfg) else Item.barcode
    query = Item.select().where(column == barcode)
    if owner:
        query = query.where(Item.owner == owner)
    return list(query.order_by(Item.owner, Item.barcode).limit(100))


def own_item(cfg, barcode):
    """This library's item with BARCODE, or None; refuse when two of ours differ only in case."""
    if not barcodes.any_case(cfg):
        return Item.of(cfg.institution, barcode)
    items = Item.of_any_case(cfg.institution, barcode)
    if len(items) > 1:
        raise errors.AmbiguousBarcode(
            f"Barcode {barcode!r} matches several items here that differ only in case; "
            "set [desk] barcode_case = exact or relabel one.", owners=[cfg.institution] * len(items))
    return items[0] if items else None


def find_item(cfg, barcode, owner=None):
    """The one item with BARCODE (of OWNER when given); refuse when none or ambiguous."""
    items = find_items(cfg, barcode, owner)
    if not items:
        raise errors.ItemNotFound(f"No item with barcode {barcode!r}.", barcode=barcode)
    if len(items) > 1:
        raise errors.AmbiguousBarcode(
            f"Barcode {barcode!r} belongs to several libraries; say which owner.",
            owners=sorted(i.owner for i in items))
    return items[0]


def get_loan(loan_id):
    loan = (Loan.select(Loan, Item, Patron).join(Item).switch(Loan)
            .join(Patron, JOIN.LEFT_OUTER).where(Loan.id == loan_id).first())
    if loan is None:
        raise errors.LoanNotFound(f"No loan {loan_id!r}.", loan_id=loan_id)
    return loan


def open_loan_of(item):
    return Loan.select().where((Loan.item == item) & (Loan.status == "open")).first()


def patron_record(institution, home_id, name, email, now):
    """The local record of a patron, created for a visiting patron on first contact (at NOW)."""
    patron = Patron.of(institution, home_id)
    if patron is None:
        return Patron.add(institution=institution, home_id=home_id, name=name, email=email, updated_at=now)
    if (name and patron.name != name) or (email and patron.email != email):
        patron.name, patron.email = name or patron.name, email or patron.email
        database.execute_sql("UPDATE patron SET name = ?, email = ? WHERE id = ?",
                             (patron.name, patron.email, patron.id))
    return patron


def own_patron_standing(cfg, home_id, now, patron=None):
    """The standing of one of this node's own patrons, from its own records (PATRON if already read)."""
    if patron is None:
        patron = Patron.of(cfg.institution, home_id)
    if patron is None:
        return Standing(False, "patron_unknown", "Not a registered patron here.")
    if patron.blocked:
        return Standing(False, "patron_blocked", patron.block_reason or "Blocked.",
                        patron.name, patron.email)
    fee_block = billing.fee_block(cfg, patron)  # unpaid fees past [billing] block_threshold
    if fee_block:
        return Standing(False, "patron_blocked", fee_block, patron.name, patron.email)
    if patron.expires_on and patron.expires_on < now.astimezone(cfg.tz).date():
        return Standing(False, "patron_expired", "Registration expired.", patron.name, patron.email)
    return Standing(True, name=patron.name, email=patron.email)


_REFUSALS = {"patron_unknown": errors.PatronUnknown, "patron_blocked": errors.PatronBlocked,
             "patron_expired": errors.PatronExpired, "patron_limit_reached": errors.PatronLimitReached}


def refuse_for_standing(standing):
    cls = _REFUSALS.get(standing.code, errors.PatronBlocked)
    details = {} if standing.code == cls.code else {"home_code": standing.code}
    raise cls(standing.reason or cls.__doc__, **details)


def apply_once(key, now):
    """Record KEY inside the caller's transaction; AlreadyApplied when it was recorded before.

    The key commits with the action's rows or not at all, so an action sent
    twice (a kiosk's stored "no block" transaction) takes effect once.
    """
    try:
        with database.atomic():  # a savepoint: the refusal leaves the caller's transaction usable
            AppliedOnce.add(key=key, applied_at=now)
    except IntegrityError:
        raise errors.AlreadyApplied("This transaction was applied before; nothing changed.") from None


def checkout(cfg, item_barcode, institution, home_id, standing, now, staff=None, once=None):
    """Lend one of this library's items; return the new open loan.

    STANDING comes from the patron's home node (or ``own_patron_standing``),
    fetched by the caller before this transaction so no network call holds
    the write lock.  ONCE: see ``apply_once``.
    """
    if institution != cfg.institution and institution not in cfg.peers:
        raise errors.UnknownInstitution(f"{institution!r} is not a library of this network.")
    if not standing.ok:
        refuse_for_standing(standing)
    with database.atomic():
        if once:
            apply_once(once, now)
        item = own_item(cfg, item_barcode)
        if item is None:
            if find_items(cfg, item_barcode):
                raise errors.ItemNotOwned(f"Item {item_barcode} belongs to another library.")
            raise errors.ItemNotFound(f"No item with barcode {item_barcode!r}.", barcode=item_barcode)
        rules = cfg.policy_for(item.item_type)
        if not rules["loanable"]:
            raise errors.ItemNotLoanable(f"Items of type {item.item_type!r} do not leave the library.")
        if item.status == "on_loan":
            raise errors.ItemOnLoan(f"Item {item.barcode} is already on loan.")
        patron = patron_record(institution, home_id, standing.name, standing.email, now)
        open_here, provisional = database.execute_sql(_OPEN_HERE, (patron.id, cfg.institution)).fetchone()
        if open_here >= rules["max_loans"]:
            raise errors.LoanLimit(f"The patron already holds {rules['max_loans']} loans from this library.")
        if standing.provisional and provisional >= rules["offline_max_loans"]:
            why = ("On a network pass the home library is not asked" if standing.source == PASS
                   else "The home library cannot be reached")
            raise errors.OfflineLimitReached(
                f"{why} and the patron already has {provisional} provisional loans here.")
        lifecycle.move_item(item, "checkout", now, DESK)
        try:
            loan = Loan.add(item=item, patron=patron, lender=cfg.institution, status=lifecycle.move("lend", lifecycle.NEW, DESK),
                            checked_out_at=now, due_at=due_date(now, rules["loan_days"], cfg.tz, calendar_of(cfg)),
                            provisional=standing.provisional, made_offline=standing.made_offline,
                            updated_at=now)
        except IntegrityError:
            # The partial unique index caught a concurrent checkout of the same item.
            raise errors.ItemOnLoan(f"Item {item.barcode} is already on loan.") from None
        audit(staff, "checkout", loan.id, f"item {item.barcode}", now)
        if institution != cfg.institution:
            outbox.enqueue(institution, "loan.created", loan_event_data(loan), now)
    return loan


# Open loans of a patron here, and how many of them were made offline: one index search.
_OPEN_HERE = ("SELECT COUNT(*), COALESCE(SUM(provisional), 0) FROM loan "
              "WHERE patron_id = ? AND status = 'open' AND lender = ?")


def loan_event_data(loan):
    """The minimum a home node needs to know of a loan (no names, no emails)."""
    item = loan.item
    return outbox.build("loan.created", loan_id=loan.id, lender=loan.lender,
                 patron={"institution": loan.patron.institution, "id": loan.patron.home_id},
                 item={"institution": item.owner, "barcode": item.barcode, "title": item.title,
                       "call_number": item.call_number, "item_type": item.item_type},
                 checked_out_at=loan.checked_out_at.isoformat(), due_at=loan.due_at.isoformat(),
                 renewals=loan.renewals, provisional=loan.provisional)


def renew(cfg, loan_id, now, staff=None, actor=DESK):
    """Extend an open loan of this library under its policy; return the loan.

    The new due date runs the policy's loan_days from the renewal day, on this
    library's calendar; a renewal that would not move the due date later is
    refused (``renewal_too_early``) and counts no renewal.  ACTOR is who asks
    (lifecycle: the desk, the patron's home node, the patron).
    """
    with database.atomic():
        loan = get_loan(loan_id)
        if loan.status != "open":
            raise errors.LoanClosed(f"Loan {loan.id} is closed.")
        if loan.lender != cfg.institution:
            raise errors.Forbidden(f"Only the lender ({loan.lender}) can renew this loan.",
                                   lender=loan.lender)
        if loan.patron.blocked:
            raise errors.PatronBlocked("The patron is blocked.")
        if loan.lost_at is not None:
            raise errors.ItemLost("The item was declared lost; the loan cannot be renewed.")
        rules = cfg.policy_for(loan.item.item_type)
        if loan.renewals >= rules["renewals_allowed"]:
            raise errors.RenewalLimit(f"No renewals left ({rules['renewals_allowed']} allowed).")
        calendar = calendar_of(cfg)
        new_due = renewal_due_date(now, loan.due_at, rules["loan_days"], cfg.tz, calendar)
        if new_due is None:
            due = loan.due_at.astimezone(cfg.tz).date()
            earliest = earliest_renewal_day(now, loan.due_at, rules["loan_days"], cfg.tz, calendar)
            raise errors.RenewalTooEarly(
                f"Renewing today would not move the due date ({due}) later, so it was not renewed and no "
                f"renewal was used. A renewal runs {rules['loan_days']} days from the renewal day: "
                f"renew on {earliest} or later.", due=due.isoformat(), earliest=earliest.isoformat())
        lifecycle.move("renew", loan.status, actor)
        loan.renewals += 1
        loan.due_at = new_due
        loan.updated_at = now
        loan.save()
        audit(staff, "renew", loan.id, f"renewal {loan.renewals}", now)
        if loan.patron.institution != cfg.institution:
            outbox.enqueue(loan.patron.institution, "loan.renewed",
                           outbox.build("loan.renewed", loan_id=loan.id, lender=loan.lender, due_at=loan.due_at.isoformat(),
                                 renewals=loan.renewals), now)
    return loan


def return_item(cfg, item_barcode, now, owner=None, staff=None, once=None):
    """Check an item in at this desk: close its loan, or receive it back from transit.  ONCE: see ``apply_once``."""
    with database.atomic():
        if once:
            apply_once(once, now)
        item = find_item(cfg, item_barcode, owner)
        loan = open_loan_of(item)
        result = ReturnResult(loan=loan, item=item)
        if loan is None:
            if item.owner == cfg.institution and item.status == "in_transit":
                lifecycle.move_item(item, "receive", now, DESK)
                result.received = True
                last = (Loan.select().where(Loan.item == item).order_by(Loan.returned_at.desc()).first())
                audit(staff, "receive", item.barcode, "", now)
                if last and last.returned_at_institution and last.returned_at_institution != cfg.institution:
                    outbox.enqueue(last.returned_at_institution, "item.received",
                                   outbox.build("item.received", loan_id=last.id, owner=item.owner, barcode=item.barcode,
                                         received_at=now.isoformat()), now)
                result.loan = last
                return result
            raise errors.NotOnLoan(f"Item {item.barcode} is not on loan ({item.status.replace('_', ' ')}).",
                                   status=item.status)
        was_lost = loan.lost_at is not None
        detail = f"item {item.barcode}"
        if now < loan.checked_out_at:
            # A kiosk's stored return dated before the checkout (its clock was wrong): the item did come back,
            # but never before it left: an earlier date would dodge fines and let the privacy purge unlink it.
            detail += f"; return dated {now.isoformat(timespec='seconds')}, before the checkout: dated at the checkout"
            now = loan.checked_out_at
        lifecycle.close_loan(loan, now, cfg.institution, DESK)
        if item.owner == cfg.institution:
            lifecycle.move_item(item, "return_own", now, DESK)
            home = loan.patron.institution if loan.patron_id else cfg.institution
            if home != cfg.institution:
                outbox.enqueue(home, "loan.returned", return_event_data(loan), now)
        else:
            # A peer's item came back at the patron's home library: it travels home.
            lifecycle.move_item(item, "return_network", now, DESK)
            result.transit_to = item.owner
            outbox.enqueue(item.owner, "loan.returned", return_event_data(loan), now)
        fees = []
        if loan.lender == cfg.institution:
            fees = billing.assess_at_return(cfg, loan, now)  # a late fine, or a lost item's refund (after the return event)
        if was_lost:
            result.lost = billing.lost_return(cfg, loan, fees)
        audit(staff, "return", loan.id, detail, now)
    return result


def return_event_data(loan):
    return outbox.build("loan.returned", loan_id=loan.id, lender=loan.lender, returned_at=loan.returned_at.isoformat(),
                 returned_at_institution=loan.returned_at_institution)


def set_item_status(cfg, barcode, status, now, staff=None):
    """Mark an own item missing or found again (admin action)."""
    move = {"missing": "declare_missing", "available": "found"}.get(status)
    if move is None:
        raise errors.InvalidField("Status can be set to missing or available only.")
    with database.atomic():
        item = find_item(cfg, barcode, cfg.institution)
        if item.status == status:
            return item  # already so: nothing to change, nothing to audit
        if item.status == "on_loan":
            raise errors.ItemOnLoan(f"Item {item.barcode} is on loan; return it first.")
        lifecycle.move_item(item, move, now, ADMIN)
        audit(staff, "item_status", item.barcode, status, now)
    return item


def loans_query(institution=None, home_id=None, status=None, overdue_at=None, search=None, lender=None):
    """Loans with item and patron joined, newest first, filtered as asked."""
    query = (Loan.select(Loan, Item, Patron).join(Item).switch(Loan)
             .join(Patron, JOIN.LEFT_OUTER).order_by(Loan.checked_out_at.desc(), Loan.id.desc()))
    if institution:
        query = query.where(Patron.institution == institution)
    if home_id:
        query = query.where(Patron.home_id == home_id)
    if status:
        query = query.where(Loan.status == status)
    if lender:
        query = query.where(Loan.lender == lender)
    if overdue_at is not None:
        query = query.where((Loan.status == "open") & (Loan.due_at < overdue_at))
    if search:
        like = f"%{search}%"
        # A search, not a lookup for lending: a barcode matches in any case, whatever [desk] barcode_case says.
        query = query.where((Item.barcode.collate("NOCASE") == search) | (Patron.home_id == search)
                            | (Item.title ** like))
    return query


def count_open_loans(patron):
    """How many open loans PATRON holds (anywhere in the network, when PATRON is ours)."""
    count, = database.execute_sql(_OPEN_LOANS, (patron.id,)).fetchone()
    return count


_OPEN_LOANS = "SELECT COUNT(*) FROM loan WHERE patron_id = ? AND status = 'open'"
