"""The staff desk: server-rendered pages made for a barcode scanner.

Every scan form autofocuses its field and submits on Enter; each answer is a
banner (success or refusal) above the next scan.  No JavaScript needed.
A refusal at the desk is never an error page: views catch ``CircnodeError``,
flash its message and redirect back to the same scan field (post/redirect/get,
so a browser reload never scans twice).
"""

import datetime

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from node.domain import circulation, errors, lending, patron_summary, search
from node.web import slips
from node.web.context import get_config
from node.domain.accounts import check_login
from node.domain.patron_pass import looks_like_pass
from node.web.auth import RESUME, current_staff, desk_role, end_session, start_session
from node.clock import utcnow
from node.store.models import Loan, Patron
from node.web.redirects import local_path
from node.web.visit import begin_pass_visit
from node.domain.throttle import SignInLimits

bp = Blueprint("desk", __name__)


def init_app(app):
    """Register the desk pages."""
    app.register_blueprint(bp)

MAX_FIELD = 200  # longer input is scanner garbage; cut it so it cannot bloat the session cookie


def error_page(exc, repeat=None):
    """A full-page refusal, for what cannot be a banner on a scan page (CSRF, 403, 404).

    REPEAT: the page where a scan this refusal lost can be made again (auth.repeat_path).
    """
    barcode = request.form.get("item_barcode", "").strip()[:MAX_FIELD] if repeat else ""
    staff = _safe_staff()
    visit = session.get("visit") if repeat else None
    # The visit is kept for the staff member who began it; whoever is at a signed-out screen is not
    # told whose it is (its patron's name or id): only that signing in returns to it.
    return render_template("error.html", error=exc, staff=staff, repeat=repeat, barcode=barcode,
                           visit=visit if staff else None, visit_kept=bool(visit)), exc.status


def _safe_staff():
    try:
        return current_staff()
    except Exception:  # an error page must render even when the database is the problem
        return None


@bp.app_context_processor
def _globals():
    cfg = get_config()
    return {"staff": _safe_staff(), "institutions": _institutions(cfg), "now": utcnow(),
            "local": lambda value: value.astimezone(cfg.tz).strftime("%Y-%m-%d %H:%M") if value else ""}


def _institutions(cfg):
    """This library and its peers, for the institution chooser."""
    return [(cfg.institution, cfg.node["name"])] + sorted(
        ((code, peer.name) for code, peer in cfg.peers.items()), key=lambda pair: pair[1])




def _banner(kind, text):
    flash(text, kind)


def _field(name):
    """The stripped form field NAME, cut to MAX_FIELD characters."""
    return request.form.get(name, "").strip()[:MAX_FIELD]


def _pass_as_item(where):
    """True, with a banner, when the item field got a network pass: the pass is never echoed as a barcode.

    WHERE: what to do with the pass instead.
    """
    if not looks_like_pass(request.form.get("item_barcode", "")):
        return False
    _banner("error", f"That was a network pass, not an item barcode: {where}.")
    return True


def _safe_target(target):
    """TARGET when it is a path on this node, else the checkout page (no open redirect)."""
    return local_path(target) or url_for("desk.checkout")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        name, now = _field("name")[:64], utcnow()
        try:  # request.remote_addr: the client behind a [node] trusted_proxies proxy (node/web/proxies.py)
            staff = check_login(name, request.form.get("password", ""), request.remote_addr or "", now,
                                SignInLimits.from_config(get_config()))
        except (errors.Unauthorized, errors.TooManyAttempts) as exc:
            _banner("error", exc.message)
            retry = exc.details.get("retry_after_seconds")
            return render_template("login.html", name=name), exc.status, {"Retry-After": str(retry)} if retry else {}
        start_session(staff, now)
        target = request.args.get("next", "")
        if not local_path(target) and session.get("visit"):
            target = url_for("desk.scan")  # the desk was signed out mid-visit: back to that visit
        return redirect(_safe_target(target))
    if current_staff() is not None:
        return redirect(url_for("desk.checkout"))
    return render_template("login.html", name="")


@bp.post("/logout")
def logout():
    end_session()
    _banner("success", "Signed out.")
    return redirect(url_for("desk.login"))


@bp.get("/")
@desk_role()
def home():
    return redirect(url_for("desk.checkout"))


@bp.route("/checkout", methods=["GET", "POST"])
@desk_role()
def checkout():
    cfg = get_config()
    if request.method == "POST":
        raw_id = request.form.get("patron_id", "")
        if looks_like_pass(raw_id):  # a network pass scanned into the id field: the pass's way in, uncut
            return begin_pass_visit(cfg, raw_id, utcnow(), pending=_field("barcode"))
        institution = _field("institution").upper()
        home_id = _field("patron_id")
        if not home_id:
            _banner("error", "Scan or type the patron's id.")
            return redirect(url_for("desk.checkout"))
        now = utcnow()
        pending = _field("barcode")  # a scan lost with the session (auth.repeat_path), offered after admission
        try:
            standing = lending.admit(cfg, lending.Borrower(institution, home_id), now)
        except errors.CircnodeError as exc:
            _banner("error", f"{cfg.library_name(institution)} patron {home_id}: {exc.message}")
            session["last_institution"] = institution
            return redirect(url_for("desk.checkout"))
        session["last_institution"] = institution
        # The visit keeps the home node's answer: its next scans lend on it (lending.lend), a new visit asks again.
        session["visit"] = {"institution": institution, "id": home_id, "name": standing.name,
                            "provisional": standing.provisional, "standing": standing.to_dict(), "loans": [],
                            "asked_at": now.isoformat(), "staff": current_staff().name}
        if standing.provisional:
            _banner("warning", f"{cfg.library_name(institution)} cannot be reached: loans are made offline "
                               "(provisional) under this library's offline limit.")
        return redirect(url_for("desk.scan", barcode=pending or None))
    resume = session.pop(RESUME, None) or {}  # the patron of a visit whose session was lost (auth.repeat_path)
    chosen = request.args.get("institution", "").strip().upper()[:32] or resume.get("institution") \
        or session.get("last_institution") or cfg.institution
    patron_id = request.args.get("patron_id", "")[:MAX_FIELD] or resume.get("patron_id", "")
    return render_template("checkout.html", chosen=chosen, patron_id=patron_id,
                           barcode=request.args.get("barcode", "").strip()[:MAX_FIELD])


@bp.route("/checkout/scan", methods=["GET", "POST"])
@desk_role()
def scan():
    cfg = get_config()
    visit = session.get("visit")
    if not visit:
        return redirect(url_for("desk.checkout"))
    if request.method == "POST":
        barcode = _field("item_barcode")
        if not barcode:
            _banner("error", "Scan an item barcode.")
            return redirect(url_for("desk.scan"))
        if _pass_as_item("press “Done: next patron”, then scan it on Checkout to begin that visit"):
            return redirect(url_for("desk.scan"))
        _scan_one(cfg, visit, barcode)
        session["visit"] = visit
        return redirect(url_for("desk.scan"))
    loans = _visit_loans(visit.get("loans") or [])
    summary = _summary(cfg, visit)
    return render_template("scan.html", visit=visit, visit_name=cfg.library_name(visit["institution"]), loans=loans,
                           loans_here=_other_loans_here(summary, visit), summary=summary,
                           barcode=request.args.get("barcode", "").strip()[:MAX_FIELD],
                           receipt=slips.slip_url("visit", [loan.id for loan in loans], print_now=True) if loans else "")


def _summary(cfg, visit):
    """The patron summary panel of VISIT (node/domain/patron_summary.py)."""
    asked_at = visit.get("asked_at")
    return patron_summary.summarise(
        cfg, visit["institution"], visit["id"], utcnow(),
        asked_at=datetime.datetime.fromisoformat(asked_at) if asked_at else None,
        provisional=bool(visit.get("provisional")), via=visit.get("verified", ""))


def _scan_one(cfg, visit, barcode):
    """Check BARCODE out to the visit's patron and flash the outcome; VISIT is updated in place."""
    # A visit begun with a network pass keeps lending on it (home not asked); others lend on the home
    # node's answer of this visit while it is fresh, and ask again after.
    borrower = lending.Borrower(visit["institution"], visit["id"], visit.get("pass") or None,
                                standing=circulation.Standing.from_dict(visit.get("standing")))
    try:
        loan = lending.lend(cfg, barcode, borrower, utcnow(), staff=current_staff().name)
    except errors.CircnodeError as exc:
        _banner("error", f"{barcode}: {exc.message}")
        return
    finally:
        if borrower.standing is not None:  # the home node may have gone away, or come back, since the visit began
            visit["provisional"] = borrower.standing.provisional
            visit["standing"] = borrower.standing.to_dict()
    due = loan.due_at.astimezone(cfg.tz).strftime("%Y-%m-%d")
    note = (" (made offline, provisional)" if loan.made_offline
            else " (provisional: home library not asked)" if loan.provisional else "")
    _banner("success", f"{barcode} checked out: {loan.item.title} — due {due}{note}")
    visit["loans"] = (visit.get("loans") or []) + [loan.id]


def _visit_loans(loan_ids):
    """The loans made during this visit, in scan order."""
    if not loan_ids:
        return []
    found = {loan.id: loan for loan in circulation.loans_query().where(Loan.id.in_(loan_ids))}
    return [found[loan_id] for loan_id in loan_ids if loan_id in found]


def _other_loans_here(summary, visit):
    """The visit's patron's open loans from this library (the SUMMARY's), except this visit's: what they may renew."""
    this_visit = set(visit.get("loans") or [])
    return [loan for loan in summary.loans_here if loan.id not in this_visit][:MAX_RENEW]


# Loan ids one Renew all may post: more than max_loans, and few enough that a banner each fits the session cookie.
MAX_RENEW = 50


@bp.post("/loans/renew")
@desk_role()
def renew():
    """Renew each loan posted (one Renew button, or Renew all): a banner each, then back to the page."""
    cfg = get_config()
    now, staff = utcnow(), current_staff().name
    loan_ids = [value.strip()[:MAX_FIELD] for value in request.form.getlist("loan_id")][:MAX_RENEW]
    if not loan_ids:
        _banner("error", "Choose a loan to renew.")
    for loan_id in loan_ids:
        try:
            loan = lending.renew(cfg, loan_id, now, staff=staff)
        except errors.CircnodeError as exc:
            found = Loan.get_or_none(id=loan_id)
            _banner("error", f"{found.item.barcode if found else loan_id}: not renewed. {exc.message}")
            continue
        due = loan.due_at.astimezone(cfg.tz).strftime("%Y-%m-%d")
        allowed = cfg.policy_for(loan.item.item_type)["renewals_allowed"]
        _banner("success", f"{loan.item.barcode} renewed: {loan.item.title} — now due {due} "
                           f"(renewal {loan.renewals} of {allowed}).")
    return redirect(local_path(request.form.get("next", "")) or url_for("desk.loans"))


@bp.post("/checkout/done")
@desk_role()
def done():
    visit = session.pop("visit", None) or {}
    session.pop("patron", None)  # the patron signed in at this desk is signed out for the next one
    session.pop("phone_link", None)
    if visit.get("loans") and slips.auto_print():  # the due-date receipt prints, then the next patron
        return redirect(slips.slip_url("visit", visit["loans"], print_now=True))
    return redirect(url_for("desk.checkout"))


@bp.route("/return", methods=["GET", "POST"])
@desk_role()
def return_item():
    cfg = get_config()
    if request.method == "GET":  # BARCODE: a scan lost with an expired form, to repeat
        return render_template("return.html", owners=None, barcode="",
                               repeat=request.args.get("barcode", "").strip()[:MAX_FIELD],
                               transit_slip=request.args.get("transit_slip", "")[:2000])
    barcode = _field("item_barcode")
    owner = _field("owner").upper() or None
    if not barcode:
        _banner("error", "Scan an item barcode.")
        return redirect(url_for("desk.return_item"))
    if _pass_as_item("a pass begins a visit on Checkout"):
        return redirect(url_for("desk.return_item"))
    try:
        result = lending.give_back(cfg, barcode, utcnow(), owner=owner, staff=current_staff().name)
    except errors.AmbiguousBarcode as exc:
        # Not a redirect: the owner buttons must carry this barcode into the next POST.
        owners = [(code, cfg.library_name(code)) for code in exc.details["owners"]]
        _banner("warning", f"{barcode}: several libraries use this barcode. Whose item is it?")
        return render_template("return.html", owners=owners, barcode=barcode)
    except errors.CircnodeError as exc:
        _banner("error", f"{barcode}: {exc.message}")
        return redirect(url_for("desk.return_item"))
    _banner("transit" if result.transit_to else "success", result.summary(cfg))
    if result.transit_to and not result.received:
        if slips.auto_print():
            return redirect(slips.slip_url("transit", [result.loan.id], print_now=True))
        return redirect(url_for("desk.return_item", transit_slip=slips.slip_token("transit", [result.loan.id])))
    return redirect(url_for("desk.return_item"))


@bp.get("/loans")
@desk_role()
def loans():
    now = utcnow()
    q = request.args.get("q", "").strip()[:MAX_FIELD]
    status = request.args.get("status", "open")
    overdue = request.args.get("overdue") == "1"
    query = circulation.loans_query(status=status if status in ("open", "closed") else None,
                                    overdue_at=now if overdue else None, search=q or None)
    rows = list(query.limit(200))
    return render_template("loans.html", loans=rows, q=q, status=status, overdue=overdue, now=now)


@bp.get("/items")
@desk_role()
def items():
    """Item search: a barcode (any case, as [desk] barcode_case says), title words or a call number."""
    cfg = get_config()
    by_barcode = request.args.get("barcode", "").strip()[:MAX_FIELD]  # the lookup's older form: barcode only
    q = request.args.get("q", "").strip()[:MAX_FIELD] or by_barcode
    if by_barcode and not request.args.get("q"):
        found = circulation.find_items(cfg, by_barcode)
        if not found:
            _banner("error", f"No item with barcode {by_barcode}.")
    else:
        found = search.items(cfg, q) if q else []
        if q and not found:
            _banner("error", f"No item matches {q}.")
    rows = [(item, circulation.open_loan_of(item)) for item in found]
    return render_template("items.html", q=q, rows=rows)


@bp.get("/items/<owner>/<path:barcode>")
@desk_role()
def item(owner, barcode):
    """One item and its loans, as far as the privacy rules keep them."""
    found = circulation.find_item(get_config(), barcode, owner.upper())
    return render_template("item.html", item=found, loan=circulation.open_loan_of(found),
                           history=search.item_loans(found))


@bp.get("/patrons")
@desk_role()
def find_patron():
    """Patron search (q: an id or name words); with institution and id it opens that patron's page."""
    cfg = get_config()
    institution = request.args.get("institution", "").strip().upper()[:32]
    home_id = request.args.get("id", "").strip()[:MAX_FIELD]
    if home_id:
        return redirect(url_for("desk.patron", institution=institution or cfg.institution, home_id=home_id))
    q = request.args.get("q", "").strip()[:MAX_FIELD]
    found = search.patrons(cfg, q) if q else []
    if q and not found:
        _banner("error", f"No patron matches {q}.")
    return render_template("patron.html", patron=None, institution=cfg.institution, home_id="",
                           open_loans=[], closed_loans=[], q=q, found=found)


@bp.get("/patrons/<institution>/<home_id>")
@desk_role()
def patron(institution, home_id):
    """One patron's loans as this node knows them: at the home node, all their network loans."""
    now = utcnow()
    institution = institution.upper()
    record = Patron.get_or_none(institution=institution, home_id=home_id)
    if record is None:
        _banner("error", f"This library has no record of patron {institution} · {home_id}.")
    query = circulation.loans_query(institution=institution, home_id=home_id)
    open_loans = list(query.where(Loan.status == "open").limit(500)) if record else []
    closed_loans = list(circulation.loans_query(institution=institution, home_id=home_id, status="closed")
                        .limit(50)) if record else []
    return render_template("patron.html", patron=record, institution=institution, home_id=home_id,
                           open_loans=open_loans, closed_loans=closed_loans, now=now)
