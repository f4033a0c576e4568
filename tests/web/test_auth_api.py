"""Staff tokens on the JSON API: 401 without a valid token, 403 for the wrong role."""
import datetime

import pytest

from node.store.db import database
from node.store.models import ApiToken, AuditLog, Item, Staff

ENDPOINTS = [
    ("POST", "/api/v1/checkouts", {"item_barcode": "N0001", "patron": {"institution": "NORTH", "id": "n-100"}}),
    ("POST", "/api/v1/returns", {"item_barcode": "N0001"}),
    ("POST", "/api/v1/loans/x/renew", None),
    ("GET", "/api/v1/loans", None),
    ("GET", "/api/v1/loans/x", None),
    ("GET", "/api/v1/items/N0001", None),
    ("POST", "/api/v1/items/N0001/status", {"status": "missing"}),
]
IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]


def _call(client, method, path, body, authorization=None):
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.open(path, method=method, json=body, headers=headers)


def _refused(answer, status, code):
    assert answer.status_code == status, answer.get_json()
    assert answer.mimetype == "application/json"
    assert answer.get_json()["error"]["code"] == code


NOT_VALID = [None, "Bearer ", "Bearer cn_not-a-token", "Basic ZGVzazE6eA==", "bearer-ish", "Token cn_x"]


@pytest.mark.parametrize("method, path, body", ENDPOINTS, ids=IDS)
def test_api_without_a_valid_token_is_401_and_changes_nothing(client, seeded, method, path, body):
    before = database.execute_sql("SELECT status FROM item ORDER BY id").fetchall()
    for authorization in NOT_VALID:
        answer = _call(client, method, path, body, authorization)
        assert answer.status_code == 401, (authorization, answer.get_json())
        _refused(answer, 401, "unauthorized")
    assert database.execute_sql("SELECT status FROM item ORDER BY id").fetchall() == before
    assert database.execute_sql("SELECT COUNT(*) FROM loan").fetchone()[0] == 0


def test_healthz_needs_no_token(client):
    assert client.get("/healthz").status_code == 200


def test_token_of_a_deactivated_staff_member_is_refused(client, seeded, token):
    assert _call(client, "GET", "/api/v1/loans", None, f"Bearer {token}").status_code == 200
    Staff.update(active=False).where(Staff.name == "desk1").execute()
    _refused(_call(client, "GET", "/api/v1/loans", None, f"Bearer {token}"), 401, "unauthorized")


def test_only_the_token_hash_is_stored(client, seeded, token):
    stored = [row.token_hash for row in ApiToken.select()]
    assert stored and token not in stored
    assert all(len(value) == 64 for value in stored)


def _circulation_audit():
    """The audit lines of loans and items, without those of making the staff accounts and tokens."""
    staff_actions = ("staff_added", "token_issued")
    return AuditLog.select().where(AuditLog.action.not_in(staff_actions)).order_by(AuditLog.id)


def test_desk_role_may_circulate(client, seeded, token, monkeypatch):
    bearer = f"Bearer {token}"
    out = _call(client, *ENDPOINTS[0][:3], bearer)
    assert out.status_code == 201, out.get_json()
    loan_id = out.get_json()["id"]
    monkeypatch.setenv("CIRCNODE_CLOCK_OFFSET_SECONDS", "86400")  # a day later: the renewal moves the due date
    assert _call(client, "POST", f"/api/v1/loans/{loan_id}/renew", None, bearer).status_code == 200
    assert _call(client, "GET", f"/api/v1/loans/{loan_id}", None, bearer).status_code == 200
    assert _call(client, "POST", "/api/v1/returns", {"item_barcode": "N0001"}, bearer).status_code == 200
    audit = [(row.staff, row.action) for row in _circulation_audit()]
    assert audit == [("desk1", "checkout"), ("desk1", "renew"), ("desk1", "return")]


def test_item_status_is_admin_only(client, seeded, token, admin_token):
    _refused(_call(client, "POST", "/api/v1/items/N0001/status", {"status": "missing"}, f"Bearer {token}"),
             403, "forbidden")
    assert Item.get(barcode="N0001").status == "available"
    answer = _call(client, "POST", "/api/v1/items/N0001/status", {"status": "missing"}, f"Bearer {admin_token}")
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["status"] == "missing"
    assert Item.get(barcode="N0001").status == "missing"
    row = AuditLog.get(AuditLog.action == "item_status")
    assert (row.staff, row.target, row.detail) == ("admin1", "N0001", "missing")
    desk_checkout = _call(client, *ENDPOINTS[0][:3], f"Bearer {token}")
    _refused(desk_checkout, 422, "item_not_available")
    found = _call(client, "POST", "/api/v1/items/N0001/status", {"status": "available"}, f"Bearer {admin_token}")
    assert found.status_code == 200 and Item.get(barcode="N0001").status == "available"


@pytest.mark.parametrize("barcode, body, status, code", [
    ("N0001", {"status": "lost"}, 400, "invalid_field"),
    ("N0001", {"status": ["missing"]}, 400, "invalid_field"),
    ("N0001", {}, 400, "invalid_field"),
    ("N0001", ["missing"], 400, "bad_request"),
    ("NOPE", {"status": "missing"}, 404, "item_not_found"),
    ("N0002", {"status": "missing"}, 409, "item_on_loan"),
])
def test_item_status_refusals(client, seeded, token, admin_token, barcode, body, status, code):
    _call(client, "POST", "/api/v1/checkouts", {"item_barcode": "N0002", "patron": {"institution": "NORTH",
                                                                                      "id": "n-100"}},
          f"Bearer {token}")
    before = database.execute_sql("SELECT * FROM item ORDER BY id").fetchall()
    audits = AuditLog.select().count()
    _refused(_call(client, "POST", f"/api/v1/items/{barcode}/status", body, f"Bearer {admin_token}"), status, code)
    assert database.execute_sql("SELECT * FROM item ORDER BY id").fetchall() == before
    assert AuditLog.select().count() == audits


def test_admin_role_may_also_circulate(client, seeded, admin_token):
    out = _call(client, *ENDPOINTS[0][:3], f"Bearer {admin_token}")
    assert out.status_code == 201


def test_each_token_names_its_staff_member(client, seeded, token, admin_token):
    _call(client, *ENDPOINTS[0][:3], f"Bearer {admin_token}")
    _call(client, "POST", "/api/v1/returns", {"item_barcode": "N0001"}, f"Bearer {token}")
    assert [row.staff for row in _circulation_audit()] == ["admin1", "desk1"]


def test_tokens_survive_only_while_the_staff_member_exists(client, seeded, token):
    Staff.delete().where(Staff.name == "desk1").execute()  # ON DELETE CASCADE removes the token
    assert ApiToken.select().count() == 0
    _refused(_call(client, "GET", "/api/v1/loans", None, f"Bearer {token}"), 401, "unauthorized")


def test_staff_names_and_roles_are_checked(app):
    from node.domain import errors
    from node.domain.accounts import add_staff
    now = datetime.datetime.now(datetime.timezone.utc)
    with pytest.raises(errors.InvalidField):
        add_staff("two words", "desk", "a fine long password", now)
    with pytest.raises(errors.InvalidField):
        add_staff("root", "superuser", "a fine long password", now)
    assert Staff.select().count() == 0
