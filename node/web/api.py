"""JSON API v1 for desks and scripts (docs/api.md).  Thin: parse, call the domain, answer."""
import json
from decimal import Decimal

from flask import Blueprint, current_app, jsonify, request
from itsdangerous import BadSignature, URLSafeSerializer

from node.clock import utcnow
from node.domain import circulation, errors, lending
from node.web.context import get_config
from node.web.auth import api_role, current_staff_name

bp = Blueprint("api", __name__)


def init_app(app):
    """Register the JSON API; CSRF-exempt, it takes Bearer tokens only, never cookies."""
    from node.web.context import csrf
    app.register_blueprint(bp)
    csrf.exempt(bp)



# Limits of a request body's JSON (docs/api.md): no field of the API nests deeper than a few levels, and
# no number it takes is beyond I-JSON's exact integers (RFC 7493: +-2**53).
MAX_DEPTH = 32
MAX_NUMBER = 2 ** 53


class _OutOfRange(Exception):
    """Raised from inside the parser: a number beyond MAX_NUMBER (not a ValueError, so it is told apart)."""


def _int(text):
    if len(text) > 17 or abs(int(text)) > MAX_NUMBER:  # length first: int() of 4301 digits is a ValueError
        raise _OutOfRange(text[:20])
    return int(text)


def _decimal(text):
    if len(text) > 40:  # "1e999999" is short, but "0.000...1" with a million zeros is not
        raise _OutOfRange(text[:20])
    value = Decimal(text)
    if abs(value) > MAX_NUMBER:
        raise _OutOfRange(text[:20])
    return value


def _constant(name):
    raise ValueError(f"{name} is not JSON")  # Python's parser takes NaN and Infinity unless told not to


def _depth(value):
    """How deeply VALUE nests lists and dicts (a scalar is 0), without recursion."""
    deepest, level = 0, [(value, 1)]
    while level:
        node, depth = level.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        level.extend((child, depth + 1) for child in children)
    return deepest


def json_body():
    """The request's JSON object, numbers as int or Decimal (never float), or a 400 that names what is wrong."""
    if not request.is_json:
        raise errors.BadRequest("Send a JSON object with Content-Type: application/json.")
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH this raises the 413
    try:
        body = json.loads(raw, parse_float=_decimal, parse_int=_int, parse_constant=_constant)
    except RecursionError:  # "[[[[..." nested deeper than the parser goes
        raise errors.BodyTooDeep(f"The body nests deeper than {MAX_DEPTH} levels.", limit=MAX_DEPTH) from None
    except _OutOfRange:
        raise errors.NumberOutOfRange(f"A number in the body is beyond +-{MAX_NUMBER}.", limit=MAX_NUMBER) from None
    except ValueError:  # UnicodeDecodeError included: JSON is UTF-8
        raise errors.BadRequest("The body is not valid JSON.") from None
    if _depth(body) > MAX_DEPTH:
        raise errors.BodyTooDeep(f"The body nests deeper than {MAX_DEPTH} levels.", limit=MAX_DEPTH)
    if not isinstance(body, dict):
        raise errors.BadRequest("The body is not a JSON object.")
    return body


def text_field(body, name, required=True, max_length=200):
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_length or not _encodable(value):
        raise errors.InvalidField(f"'{name}' must be a non-empty string of at most {max_length} characters.",
                                  field=name)
    return value.strip()


def _encodable(value):
    # JSON may carry lone surrogates ("\ud800") that SQLite cannot store as UTF-8.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def loan_json(loan, now=None):
    cfg = get_config()
    return loan.to_dict(cfg.tz, now or utcnow())


@bp.get("/healthz")
def healthz():
    cfg = get_config()
    from node.store.db import database
    database.execute_sql("SELECT 1")
    return jsonify({"status": "ok", "institution": cfg.institution, "name": cfg.node["name"],
                    "api_version": 1})


@bp.get("/api/v1/openapi.json")
def openapi_document():
    """The OpenAPI 3.1 description of this API (no token needed: it holds no data)."""
    from node.web import openapi
    return jsonify(openapi.document())


@bp.post("/api/v1/checkouts")
@api_role("desk")
def checkout():
    cfg = get_config()
    body = json_body()
    barcode = text_field(body, "item_barcode")
    now = utcnow()
    borrower = _borrower(body)
    borrower.standing = _visit_standing(body, borrower)
    loan = lending.lend(cfg, barcode, borrower, now, staff=current_staff_name())
    # The new loan already holds its item and patron: reading it back cost a joined query per checkout.
    answer = loan_json(loan, now)
    if borrower.standing is not None and borrower.standing.source == circulation.HOME:
        standing = {key: value for key, value in borrower.standing.to_dict().items() if key not in ("name", "email")}
        answer["visit"] = _visits().dumps({"patron": [borrower.institution, borrower.home_id], "standing": standing})
    return jsonify(answer), 201


def _visits():
    """Signs the 'visit' of a checkout's answer: the home node's answer, for the visit's next checkouts."""
    return URLSafeSerializer(current_app.secret_key, salt="circnode.api-visit")


def _visit_standing(body, borrower):
    """The home node's answer an earlier checkout of this visit gave (its answer's 'visit'), or None.

    As at the desk, the rest of a visit lends on it while ``standing.reusable`` (a yes, at most
    ``[sync] standing_cache_seconds`` old); a new visit sends none and the home node is asked.
    """
    if body.get("visit") is None:
        return None
    token = text_field(body, "visit", max_length=4000)
    try:
        visit = _visits().loads(token)
    except BadSignature:
        raise errors.InvalidField("'visit' is not the 'visit' of a checkout answer of this node.",
                                  field="visit") from None
    if borrower.network_pass is not None:
        return None  # a pass is verified at every checkout (it may have been revoked)
    if visit.get("patron") != [borrower.institution, borrower.home_id]:
        raise errors.InvalidField("'visit' is another patron's visit.", field="visit")
    return circulation.Standing.from_dict(visit["standing"])


def _borrower(body):
    """Who borrows, as the body says: 'patron' {institution, id}, or a network 'pass' (docs/identity.md)."""
    from node.domain.patron_pass import MAX_TEXT
    patron = body.get("patron")
    if "pass" in body:
        text_field(body, "pass", max_length=MAX_TEXT)
        borrower = lending.Borrower(network_pass=body["pass"])  # as sent: a pass has one spelling, spaces included
        if patron is None:
            return borrower
        if not isinstance(patron, dict):
            raise errors.InvalidField("'patron' must be an object {institution, id}.", field="patron")
    elif not isinstance(patron, dict):
        raise errors.InvalidField("'patron' must be an object {institution, id}, or send 'pass'.",
                                  field="patron")
    else:
        borrower = lending.Borrower()
    borrower.institution = text_field(patron, "institution", max_length=32).upper()
    borrower.home_id = text_field(patron, "id")
    return borrower


@bp.post("/api/v1/returns")
@api_role("desk")
def return_item():
    cfg = get_config()
    body = json_body()
    barcode = text_field(body, "item_barcode")
    owner = text_field(body, "owner", required=False, max_length=32)
    now = utcnow()
    result = lending.give_back(cfg, barcode, now, owner=owner and owner.upper(),
                                  staff=current_staff_name())
    answer = {"loan": loan_json(circulation.get_loan(result.loan.id), now) if result.loan else None,
              "item": result.item.to_dict(), "received": result.received,
              "transit": {"to": result.transit_to, "name": cfg.library_name(result.transit_to)}
              if result.transit_to else None,
              "lost": {**result.lost.to_dict(cfg.tz), "message": result.lost.describe(cfg)} if result.lost else None}
    return jsonify(answer), 200




@bp.post("/api/v1/loans/<loan_id>/renew")
@api_role("desk")
def renew(loan_id):
    cfg = get_config()
    now = utcnow()
    loan = lending.renew(cfg, loan_id, now, staff=current_staff_name())
    return jsonify(loan_json(circulation.get_loan(loan.id), now))


@bp.get("/api/v1/loans")
@api_role("desk")
def loans():
    args = request.args
    status = args.get("status")
    if status not in (None, "", "open", "closed"):
        raise errors.InvalidField("status is open or closed.", field="status")
    limit = int_arg("limit", 100, 1, 1000)
    offset = int_arg("offset", 0, 0, 10**9)
    now = utcnow()
    query = circulation.loans_query(
        institution=(args.get("patron_institution") or "").upper() or None,
        home_id=args.get("patron_id") or None, status=status or None,
        overdue_at=now if args.get("overdue") in ("1", "true", "yes") else None,
        search=args.get("q") or None, lender=(args.get("lender") or "").upper() or None)
    rows = list(query.limit(limit).offset(offset))
    return jsonify({"loans": [loan_json(loan, now) for loan in rows], "limit": limit, "offset": offset})


def int_arg(name, default, low, high):
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidField(f"{name} must be a whole number.", field=name) from None
    if not low <= value <= high:
        raise errors.InvalidField(f"{name} must be between {low} and {high}.", field=name)
    return value


@bp.get("/api/v1/loans/<loan_id>")
@api_role("desk")
def loan(loan_id):
    return jsonify(loan_json(circulation.get_loan(loan_id)))


@bp.get("/api/v1/items/<barcode>")
@api_role("desk")
def item(barcode):
    owner = request.args.get("owner")
    found = circulation.find_item(get_config(), barcode, owner.upper() if owner else None)
    body = found.to_dict()
    open_loan = circulation.open_loan_of(found)
    body["loan"] = loan_json(circulation.get_loan(open_loan.id)) if open_loan else None
    return jsonify(body)


@bp.post("/api/v1/items/<barcode>/status")
@api_role("admin")
def item_status(barcode):
    """Declare an own item missing, or found again (admin only; audited)."""
    cfg = get_config()
    body = json_body()
    status = body.get("status")
    if status not in ("missing", "available"):
        raise errors.InvalidField("'status' must be \"missing\" or \"available\".", field="status")
    found = circulation.set_item_status(cfg, barcode, status, utcnow(), staff=current_staff_name())
    return jsonify(found.to_dict())

