"""JSON API v1: the answers of every endpoint, and every bad request refused in JSON without a change."""
import datetime
import json

import pytest

from node.store.db import database
from node.store.models import Item, Loan, OutboxEvent

TABLES = ["item", "patron", "loan", "outbox_event", "audit_log"]


def snapshot():
    return {table: database.execute_sql(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in TABLES}


@pytest.fixture
def api(client, seeded, token):
    """Call the API as desk staff: api(method, path, json=..., data=..., headers=...)."""
    def call(method, path, auth=True, headers=None, **kwargs):
        headers = dict(headers or {})
        if auth:
            headers.setdefault("Authorization", f"Bearer {token}")
        return client.open(path, method=method, headers=headers, **kwargs)
    return call


@pytest.fixture
def state(api):
    """N0002 on loan to n-100, N0003 missing; returns the open loan's id."""
    answer = api("POST", "/api/v1/checkouts", json={"item_barcode": "N0002",
                                                     "patron": {"institution": "NORTH", "id": "n-100"}})
    assert answer.status_code == 201, answer.get_json()
    Item.update(status="missing").where(Item.barcode == "N0003").execute()
    from node.store.models import Patron
    Patron.create(institution="NORTH", home_id="n-blocked", blocked=True, updated_at=datetime.datetime.now(
        datetime.timezone.utc))
    return answer.get_json()["id"]


def checkout_body(barcode="N0001", institution="NORTH", home_id="n-100"):
    return {"item_barcode": barcode, "patron": {"institution": institution, "id": home_id}}


BIG = "x" * (2 * 1024 * 1024 + 10)

# (case, method, path, request kwargs, status, code); "LOAN" in a path is the open loan's id.
BAD_REQUESTS = [
    ("bad JSON", "POST", "/api/v1/checkouts", {"data": "{not json", "content_type": "application/json"}, 400,
     "bad_request"),
    ("JSON not an object", "POST", "/api/v1/checkouts", {"json": ["N0001"]}, 400, "bad_request"),
    ("JSON null", "POST", "/api/v1/checkouts", {"data": "null", "content_type": "application/json"}, 400,
     "bad_request"),
    ("JSON nested too deep", "POST", "/api/v1/checkouts", {"data": "[" * 100000, "content_type": "application/json"},
     400, "body_too_deep"),
    ("JSON nested deeper than the API takes", "POST", "/api/v1/checkouts",
     {"data": '{"a":' * 40 + "1" + "}" * 40, "content_type": "application/json"}, 400, "body_too_deep"),
    ("JSON number beyond range", "POST", "/api/v1/checkouts",
     {"data": '{"item_barcode": 1e999999}', "content_type": "application/json"}, 400, "number_out_of_range"),
    ("JSON integer of 5000 digits", "POST", "/api/v1/checkouts",
     {"data": '{"item_barcode": ' + "9" * 5000 + "}", "content_type": "application/json"}, 400,
     "number_out_of_range"),
    ("JSON NaN", "POST", "/api/v1/checkouts", {"data": '{"item_barcode": NaN}', "content_type": "application/json"},
     400, "bad_request"),
    ("JSON not UTF-8", "POST", "/api/v1/checkouts", {"data": b'{"item_barcode": "\xff"}',
                                                     "content_type": "application/json"}, 400, "bad_request"),
    ("barcode a lone surrogate", "POST", "/api/v1/checkouts",
     {"data": '{"item_barcode": "\\ud800", "patron": {"institution": "NORTH", "id": "n-100"}}',
      "content_type": "application/json"}, 400, "invalid_field"),
    ("patron id a lone surrogate", "POST", "/api/v1/checkouts",
     {"data": '{"item_barcode": "N0001", "patron": {"institution": "NORTH", "id": "\\udfff"}}',
      "content_type": "application/json"}, 400, "invalid_field"),
    ("not JSON at all", "POST", "/api/v1/checkouts", {"data": "item_barcode=N0001"}, 400, "bad_request"),
    ("missing item_barcode", "POST", "/api/v1/checkouts", {"json": {"patron": {"institution": "NORTH",
                                                                               "id": "n-100"}}}, 400, "invalid_field"),
    ("item_barcode a number", "POST", "/api/v1/checkouts", {"json": {**checkout_body(), "item_barcode": 1}}, 400,
     "invalid_field"),
    ("item_barcode blank", "POST", "/api/v1/checkouts", {"json": {**checkout_body(), "item_barcode": "  "}}, 400,
     "invalid_field"),
    ("item_barcode too long", "POST", "/api/v1/checkouts", {"json": checkout_body("N" * 201)}, 400, "invalid_field"),
    ("missing patron", "POST", "/api/v1/checkouts", {"json": {"item_barcode": "N0001"}}, 400, "invalid_field"),
    ("patron a string", "POST", "/api/v1/checkouts", {"json": {"item_barcode": "N0001", "patron": "n-100"}}, 400,
     "invalid_field"),
    ("patron id a number", "POST", "/api/v1/checkouts", {"json": checkout_body(home_id=100)}, 400, "invalid_field"),
    ("patron institution missing", "POST", "/api/v1/checkouts",
     {"json": {"item_barcode": "N0001", "patron": {"id": "n-100"}}}, 400, "invalid_field"),
    ("return without barcode", "POST", "/api/v1/returns", {"json": {}}, 400, "invalid_field"),
    ("return barcode a list", "POST", "/api/v1/returns", {"json": {"item_barcode": ["N0002"]}}, 400,
     "invalid_field"),
    ("return owner blank", "POST", "/api/v1/returns", {"json": {"item_barcode": "N0002", "owner": ""}}, 400,
     "invalid_field"),
    ("loans bad status", "GET", "/api/v1/loans?status=lost", {}, 400, "invalid_field"),
    ("loans limit not a number", "GET", "/api/v1/loans?limit=ten", {}, 400, "invalid_field"),
    ("loans limit too big", "GET", "/api/v1/loans?limit=100000", {}, 400, "invalid_field"),
    ("body too large", "POST", "/api/v1/checkouts",
     {"data": json.dumps({"item_barcode": "N0001", "pad": BIG}), "content_type": "application/json"}, 413,
     "too_large"),
    ("unknown barcode", "POST", "/api/v1/checkouts", {"json": checkout_body("NOPE")}, 404, "item_not_found"),
    ("unknown loan", "GET", "/api/v1/loans/no-such-loan", {}, 404, "loan_not_found"),
    ("renew unknown loan", "POST", "/api/v1/loans/no-such-loan/renew", {}, 404, "loan_not_found"),
    ("renew on the day of checkout", "POST", "/api/v1/loans/LOAN/renew", {}, 409, "renewal_too_early"),
    ("unknown item", "GET", "/api/v1/items/NOPE", {}, 404, "item_not_found"),
    ("return unknown item", "POST", "/api/v1/returns", {"json": {"item_barcode": "NOPE"}}, 404, "item_not_found"),
    ("unknown API path", "GET", "/api/v1/nothing-here", {}, 404, "not_found"),
    ("unknown API version", "GET", "/api/v2/loans", {}, 404, "not_found"),
    ("wrong method", "GET", "/api/v1/checkouts", {}, 405, "method_not_allowed"),
    ("wrong method on a loan", "DELETE", "/api/v1/loans/LOAN", {}, 405, "method_not_allowed"),
    ("item on loan", "POST", "/api/v1/checkouts", {"json": checkout_body("N0002")}, 409, "item_on_loan"),
    ("reference item", "POST", "/api/v1/checkouts", {"json": checkout_body("R0001")}, 422, "item_not_loanable"),
    ("missing item", "POST", "/api/v1/checkouts", {"json": checkout_body("N0003")}, 422, "item_not_available"),
    ("unknown institution", "POST", "/api/v1/checkouts", {"json": checkout_body(institution="WEST")}, 422,
     "unknown_institution"),
    ("unknown own patron", "POST", "/api/v1/checkouts", {"json": checkout_body(home_id="n-nobody")}, 422,
     "patron_unknown"),
    ("blocked own patron", "POST", "/api/v1/checkouts", {"json": checkout_body(home_id="n-blocked")}, 422,
     "patron_blocked"),
    ("return of an item not on loan", "POST", "/api/v1/returns", {"json": {"item_barcode": "N0001"}}, 422,
     "not_on_loan"),
    ("return of a missing item", "POST", "/api/v1/returns", {"json": {"item_barcode": "N0003"}}, 422,
     "not_on_loan"),
    ("desk sets an item status", "POST", "/api/v1/items/N0001/status", {"json": {"status": "missing"}}, 403,
     "forbidden"),
]


@pytest.mark.parametrize("case, method, path, kwargs, status, code", BAD_REQUESTS, ids=[r[0] for r in BAD_REQUESTS])
def test_bad_request_is_refused_in_json_and_changes_nothing(api, state, case, method, path, kwargs, status, code):
    before = snapshot()
    answer = api(method, path.replace("LOAN", state), **kwargs)
    assert answer.status_code == status, answer.data[:300]
    assert answer.mimetype == "application/json"
    error = answer.get_json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert snapshot() == before


def test_healthz_says_ok_and_names_the_node(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["status"] == "ok" and body["institution"] == "NORTH" and body["api_version"] == 1


def _assert_loan_shape(loan):
    for key in ("id", "status", "lender", "item", "patron", "checked_out_at", "due_at", "renewals",
                "returned_at", "returned_at_institution"):
        assert key in loan, key
    assert set(loan["item"]) >= {"institution", "barcode", "title"}
    assert set(loan["patron"]) == {"institution", "id"}
    for key in ("checked_out_at", "due_at", "returned_at"):
        if loan[key] is not None:
            assert datetime.datetime.fromisoformat(loan[key]).utcoffset() is not None, loan[key]


def test_checkout_answers_201_with_the_loan(api):
    answer = api("POST", "/api/v1/checkouts", json=checkout_body("N0001", institution="north"))
    assert answer.status_code == 201, answer.get_json()
    loan = answer.get_json()
    _assert_loan_shape(loan)
    assert (loan["status"], loan["lender"], loan["renewals"]) == ("open", "NORTH", 0)
    assert loan["item"] == {"institution": "NORTH", "barcode": "N0001", "title": "Book 1"}
    assert loan["patron"] == {"institution": "NORTH", "id": "n-100"}
    assert loan["returned_at"] is None and loan["returned_at_institution"] is None
    due = datetime.datetime.fromisoformat(loan["due_at"])
    assert (due.hour, due.minute, due.second) == (23, 59, 59)  # end of the local day, Zurich offset shown
    assert Loan.get_by_id(loan["id"]).status == "open"
    assert Item.get(barcode="N0001").status == "on_loan"


def test_checkout_to_visiting_patron_is_provisional_when_home_is_unreachable(api):
    answer = api("POST", "/api/v1/checkouts", json=checkout_body("N0001", institution="SOUTH", home_id="s-7"))
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["provisional"] is True
    assert [(e.destination, e.type) for e in OutboxEvent.select()] == [("SOUTH", "loan.created")]


def test_return_answers_200_with_the_closed_loan(api, state):
    answer = api("POST", "/api/v1/returns", json={"item_barcode": "N0002"})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    loan = body["loan"]
    _assert_loan_shape(loan)
    assert loan["id"] == state and loan["status"] == "closed"
    assert loan["returned_at_institution"] == "NORTH" and loan["returned_at"]
    assert body["item"]["status"] == "available" and body["transit"] is None
    assert Loan.get_by_id(state).status == "closed"


def later(monkeypatch, days):
    """The node's clock DAYS ahead (its own CIRCNODE_CLOCK_OFFSET_SECONDS, read at each request)."""
    monkeypatch.setenv("CIRCNODE_CLOCK_OFFSET_SECONDS", str(days * 86400))


def test_renew_answers_200_and_extends_until_the_limit(api, state, monkeypatch):
    later(monkeypatch, 1)  # on the day of checkout a renewal would not move the due date
    first = api("POST", f"/api/v1/loans/{state}/renew")
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["renewals"] == 1
    later(monkeypatch, 2)
    api("POST", f"/api/v1/loans/{state}/renew")
    later(monkeypatch, 3)
    before = snapshot()
    third = api("POST", f"/api/v1/loans/{state}/renew")
    assert third.status_code == 422 and third.get_json()["error"]["code"] == "renewal_limit_reached"
    assert snapshot() == before
    api("POST", "/api/v1/returns", json={"item_barcode": "N0002"})
    closed = api("POST", f"/api/v1/loans/{state}/renew")
    assert closed.status_code == 422 and closed.get_json()["error"]["code"] == "loan_closed"


def test_loans_are_listed_by_patron_and_status(api, state):
    api("POST", "/api/v1/checkouts", json=checkout_body("N0004"))
    api("POST", "/api/v1/returns", json={"item_barcode": "N0004"})
    api("POST", "/api/v1/checkouts", json=checkout_body("N0005", institution="SOUTH", home_id="s-1"))

    def ids(query):
        answer = api("GET", "/api/v1/loans" + query)
        assert answer.status_code == 200
        loans = answer.get_json()["loans"]
        for loan in loans:
            _assert_loan_shape(loan)
        return [(loan["item"]["barcode"], loan["status"]) for loan in loans]

    assert sorted(ids("?patron_institution=NORTH&patron_id=n-100")) == [("N0002", "open"), ("N0004", "closed")]
    assert ids("?patron_institution=NORTH&patron_id=n-100&status=open") == [("N0002", "open")]
    assert ids("?patron_institution=NORTH&patron_id=n-100&status=closed") == [("N0004", "closed")]
    assert ids("?patron_institution=south&patron_id=s-1") == [("N0005", "open")]
    assert sorted(ids("?status=open")) == [("N0002", "open"), ("N0005", "open")]
    assert ids("?patron_institution=NORTH&patron_id=nobody") == []


def test_one_loan_and_one_item_can_be_read(api, state):
    loan = api("GET", f"/api/v1/loans/{state}")
    assert loan.status_code == 200
    _assert_loan_shape(loan.get_json())
    assert loan.get_json()["id"] == state
    item = api("GET", "/api/v1/items/N0002").get_json()
    assert item["barcode"] == "N0002" and item["status"] == "on_loan" and item["loan"]["id"] == state
    free = api("GET", "/api/v1/items/N0001").get_json()
    assert free["status"] == "available" and free["loan"] is None


def test_html_pages_still_get_html_errors(client):
    answer = client.get("/no-such-page")
    assert answer.status_code == 404 and answer.mimetype == "text/html"


def test_wrong_method_answers_json_405_with_allow_header(client, token):
    r = client.delete("/api/v1/checkouts", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 405
    assert r.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in r.headers["Allow"]
