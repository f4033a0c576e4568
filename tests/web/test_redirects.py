"""Every redirect the node answers stays on the node, whatever a crafted link asks for.

The sign-in's ``next=`` is the one place a user-supplied target is followed;
it is tried here through the real login form (valid credentials, CSRF token
from the page) with known open-redirect bypasses.  The other redirects build
their target with ``url_for`` from user input; they are tried with hostile
values too.
"""
import datetime
from urllib.parse import urljoin, urlsplit

import pytest

from node.domain.accounts import add_staff
from node.web.redirects import local_path
from tests.helpers.desk import PASSWORD, post_form, token_of

UTC = datetime.timezone.utc
NODE = "http://127.0.0.1:8080"

# (name, next= exactly as it appears in the query string of the crafted link)
BYPASSES = [
    ("scheme-relative", "//evil.example/x"),
    ("absolute https", "https://evil.example/"),
    ("absolute, encoded", "https%3A%2F%2Fevil.example%2F"),
    ("scheme without slashes", "http:evil.example"),
    ("javascript", "javascript:alert(document.domain)"),
    ("data", "data:text/html,%3Cscript%3Ealert(1)%3C/script%3E"),
    ("ftp", "ftp://evil.example/"),
    ("three slashes", "///evil.example"),
    ("backslash after slash", "/%5Cevil.example"),
    ("two backslashes", "%5C%5Cevil.example"),
    ("slash backslash", "/%5C/evil.example"),
    ("https slash backslash", "https:/%5Cevil.example"),
    ("tab between slashes (issue 12)", "/%09/evil.example"),
    ("CR LF between slashes (a 500 before)", "/%0d%0a/evil.example"),
    ("LF between slashes", "/%0a/evil.example"),
    ("NUL between slashes", "/%00/evil.example"),
    ("double-encoded tab", "/%2509/evil.example"),
    ("double-encoded slashes", "/%252F%252Fevil.example"),
    ("double-encoded backslash", "/%255Cevil.example"),
    ("triple-encoded slashes", "/%25252F%25252Fevil.example"),
    ("leading space", "%20//evil.example"),
    ("fullwidth solidus", "%EF%BC%8F%EF%BC%8Fevil.example"),
    ("right-to-left override", "/%E2%80%AE/evil.example"),
    ("zero-width space", "/%E2%80%8B/evil.example"),
    ("line separator", "/%E2%80%A8/evil.example"),
    ("bare host", "evil.example"),
    ("relative path", "checkout/../..//evil.example"),
    ("empty", ""),
    ("overlong", "/" + "a" * 5000),
]

# (next= as in the query string, the Location the browser must be sent to)
KEPT = [
    ("/loans?status%3Dall", "/loans?status=all"),
    ("/items?barcode%3DN0001", "/items?barcode=N0001"),
    ("/patrons/NORTH/n-100", "/patrons/NORTH/n-100"),
    ("/billing", "/billing"),
    ("/checkout/scan", "/checkout/scan"),
    ("/items?barcode%3Da%252Fb", "/items?barcode=a%2Fb"),  # a slash inside a query value is fine
]


def stays_on_node(location):
    """True when a browser at the node, sent LOCATION, stays on the node."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in location) or "\\" in location:
        return False
    return urlsplit(urljoin(NODE + "/login", location)).netloc == urlsplit(NODE).netloc


def sign_in_with_next(client, raw_next):
    token = token_of(client.get("/login"))
    return client.post(f"/login?next={raw_next}",
                       data={"name": "desk1", "password": PASSWORD, "csrf_token": token})


@pytest.fixture
def staff(app, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    return app


@pytest.mark.parametrize("raw_next", [raw for _, raw in BYPASSES], ids=[name for name, _ in BYPASSES])
def test_sign_in_with_a_hostile_next_lands_on_the_desk_home(staff, raw_next):
    client = staff.test_client()
    response = sign_in_with_next(client, raw_next)
    assert response.status_code == 302
    assert response.headers["Location"] == "/checkout"
    assert client.get("/checkout").status_code == 200  # signed in all the same


@pytest.mark.parametrize("raw_next,location", KEPT)
def test_sign_in_returns_to_a_page_of_the_node(staff, raw_next, location):
    response = sign_in_with_next(staff.test_client(), raw_next)
    assert response.status_code == 302
    assert response.headers["Location"] == location
    assert stays_on_node(location)


def test_the_bypass_table_is_large_enough_and_every_entry_is_refused_by_the_check():
    assert len(BYPASSES) >= 15
    from urllib.parse import unquote
    for name, raw in BYPASSES:
        assert local_path(unquote(raw)) is None, name


def test_a_desk_page_asked_for_before_sign_in_is_where_the_sign_in_returns(staff):
    client = staff.test_client()
    response = client.get("/items?barcode=N0001")
    login = response.headers["Location"]
    assert login.startswith("/login?next=")
    token = token_of(client.get(login))
    response = client.post(login, data={"name": "desk1", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/items?barcode=N0001"


@pytest.fixture
def desk(staff):
    client = staff.test_client()
    assert post_form(client, "/login", {"name": "desk1", "password": PASSWORD}).status_code == 302
    return client


HOSTILE_IDS = ["//evil.example", "/\\evil.example", "https://evil.example/", "\t/evil.example", "..//evil.example"]


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_patron_lookup_redirect_stays_on_the_node(desk, hostile):
    response = desk.get("/patrons", query_string={"institution": hostile, "id": hostile})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/patrons/")
    assert stays_on_node(response.headers["Location"])


@pytest.mark.parametrize("hostile", HOSTILE_IDS)
def test_cashier_lookup_redirect_stays_on_the_node(desk, hostile):
    response = desk.get("/billing", query_string={"patron_id": hostile})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/billing/patrons/")
    assert stays_on_node(response.headers["Location"])


def test_patron_sign_in_for_the_desk_sends_a_signed_out_desk_to_the_staff_sign_in(staff):
    response = staff.test_client().get("/patron/login?institution=//evil.example&next=desk")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/checkout"


def test_sync_queue_retry_keeps_only_its_filters(app, seeded):
    add_staff("admin1", "admin", PASSWORD, datetime.datetime.now(UTC))
    client = app.test_client()
    assert post_form(client, "/login", {"name": "admin1", "password": PASSWORD}).status_code == 302
    response = post_form(client, "/admin/queue/retry",
                         {"retry_peer": "SOUTH", "peer": "//evil.example", "state": "https://evil.example/"},
                         from_page="/admin/queue")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/queue")
    assert stays_on_node(response.headers["Location"])
