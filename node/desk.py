"""The staff desk: server-rendered pages made for a barcode scanner.

Every scan form autofocuses its field and submits on Enter; each answer is a
banner (success or refusal) above the next scan.  No JavaScript needed.
"""

from flask import (Blueprint, flash, redirect, render_template, request, session, url_for)

from node.clock import utcnow
from node import circulation, errors
from node.app import get_config
from node.auth import check_login, current_staff, desk_role, end_session, start_session
from node.standing import standing_for

bp = Blueprint("desk", __name__)



def error_page(exc):
    return render_template("error.html", error=exc, staff=_safe_staff()), exc.status


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


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        try:
            staff = check_login(name, request.form.get("password", ""), request.remote_addr or "", utcnow())
        except (errors.Unauthorized, errors.TooManyAttempts) as exc:
            _banner("error", exc.message)
            return render_template("login.html", name=name), exc.status
        start_session(staff, utcnow())
        target = request.args.get("next", "")
        if not target.startswith("/") or target.startswith("//"):
            target = url_for("desk.checkout")
        return redirect(target)
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
        institution = request.form.get("institution", "").strip().upper()
        home_id = request.form.get("patron_id", "").strip()
        if not home_id:
            _banner("error", "Scan or type the patron's id.")
            return redirect(url_for("desk.checkout"))
        try:
            standing = standing_for(cfg, institution, home_id, utcnow())
            if not standing.ok:
                circulation.refuse_for_standing(standing)
        except errors.CircnodeError as exc:
            _banner("error", exc.message)
            return redirect(url_for("desk.checkout"))
        session["visit"] = {"institution": institution, "id": home_id, "name": standing.name,
                            "provisional": standing.provisional, "loans": []}
        if standing.provisional:
            _banner("warning", "The patron's home library cannot be reached: loans are made offline "
                               "(provisional) under this library's offline limit.")
        return redirect(url_for("desk.scan"))
    return render_template("checkout.html")


@bp.route("/checkout/scan", methods=["GET", "POST"])
@desk_role()
def scan():
    cfg = get_config()
    visit = session.get("visit")
    if not visit:
        return redirect(url_for("desk.checkout"))
    if request.method == "POST":
        barcode = request.form.get("item_barcode", "").strip()
        if not barcode:
            _banner("error", "Scan an item barcode.")
            return redirect(url_for("desk.scan"))
        now = utcnow()
        try:
            standing = standing_for(cfg, visit["institution"], visit["id"], now)
            loan = circulation.checkout(cfg, barcode, visit["institution"], visit["id"], standing, now,
                                        staff=current_staff().name)
        except errors.CircnodeError as exc:
            _banner("error", f"{barcode}: {exc.message}")
        else:
            due = loan.due_at.astimezone(cfg.tz).strftime("%Y-%m-%d")
            note = " (made offline, provisional)" if loan.provisional else ""
            _banner("success", f"{barcode} checked out: {loan.item.title} — due {due}{note}")
            visit["loans"] = (visit.get("loans") or []) + [loan.id]
            session["visit"] = visit
        return redirect(url_for("desk.scan"))
    loans = [circulation.get_loan(loan_id) for loan_id in visit.get("loans", [])]
    return render_template("scan.html", visit=visit, loans=loans)


@bp.post("/checkout/done")
@desk_role()
def done():
    session.pop("visit", None)
    return redirect(url_for("desk.checkout"))


@bp.route("/return", methods=["GET", "POST"])
@desk_role()
def return_item():
    cfg = get_config()
    owners = None
    if request.method == "POST":
        barcode = request.form.get("item_barcode", "").strip()
        owner = request.form.get("owner", "").strip().upper() or None
        if not barcode:
            _banner("error", "Scan an item barcode.")
            return redirect(url_for("desk.return_item"))
        try:
            result = circulation.return_item(cfg, barcode, utcnow(), owner=owner, staff=current_staff().name)
        except errors.AmbiguousBarcode as exc:
            owners = [(code, _name(cfg, code)) for code in exc.details["owners"]]
            _banner("warning", f"{barcode}: several libraries use this barcode. Whose item is it?")
            return render_template("return.html", owners=owners, barcode=barcode)
        except errors.CircnodeError as exc:
            _banner("error", f"{barcode}: {exc.message}")
            return redirect(url_for("desk.return_item"))
        title = result.item.title
        if result.received:
            _banner("success", f"{barcode} received back from transit: {title} is available.")
        elif result.transit_to:
            _banner("transit", f"{barcode} returned: {title}. Send to {_name(cfg, result.transit_to)}.")
        else:
            _banner("success", f"{barcode} returned: {title}. Shelve it.")
        return redirect(url_for("desk.return_item"))
    return render_template("return.html", owners=owners, barcode="")


def _name(cfg, code):
    if code == cfg.institution:
        return cfg.node["name"]
    peer = cfg.peers.get(code)
    return peer.name if peer else code


@bp.get("/loans")
@desk_role()
def loans():
    now = utcnow()
    q = request.args.get("q", "").strip()
    status = request.args.get("status", "open")
    overdue = request.args.get("overdue") == "1"
    query = circulation.loans_query(status=status if status in ("open", "closed") else None,
                                    overdue_at=now if overdue else None, search=q or None)
    rows = list(query.limit(200))
    return render_template("loans.html", loans=rows, q=q, status=status, overdue=overdue, now=now)


@bp.get("/items")
@desk_role()
def items():
    barcode = request.args.get("barcode", "").strip()
    found, loan = [], None
    if barcode:
        found = circulation.find_items(barcode)
        if not found:
            _banner("error", f"No item with barcode {barcode}.")
    rows = [(item, circulation.open_loan_of(item)) for item in found]
    return render_template("items.html", barcode=barcode, rows=rows, loan=loan)


@bp.get("/patrons/<institution>/<home_id>")
@desk_role()
def patron(institution, home_id):
    now = utcnow()
    rows = list(circulation.loans_query(institution=institution.upper(), home_id=home_id).limit(500))
    return render_template("patron.html", institution=institution.upper(), home_id=home_id,
                           loans=rows, now=now)
