"""The staff desk through Flask's test client: sign-in, CSRF, scan loops, banners, lists.

CSRF stays on in these tests (TESTING does not turn it off): every POST carries
the token read from the page's own form, as a browser would send it.
"""
import datetime
import re

import pytest

from node.domain import circulation
from node.domain.accounts import add_staff
from node.domain.circulation import Standing
from node.store.models import Item, Loan, OutboxEvent, Patron, StaffSession
from tests.helpers.desk import PASSWORD, banners, post_form, sign_in, token_of

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def desk(client, seeded):
    """A client signed in as desk staff at NORTH, with the seeded items and patron."""
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    response = sign_in(client)
    assert response.status_code == 302
    return client


def start_visit(client, institution, patron_id):
    response = post_form(client, "/checkout", {"institution": institution, "patron_id": patron_id})
    assert response.status_code == 302
    return client.get(response.headers["Location"])


def scan(client, barcode):
    """Scan BARCODE on the scan page; return the page the redirect lands on."""
    response = post_form(client, "/checkout/scan", {"item_barcode": barcode})
    assert response.status_code == 302 and response.headers["Location"].endswith("/checkout/scan")
    page = client.get("/checkout/scan")
    assert page.status_code == 200
    return page


def return_scan(client, barcode, owner=None):
    data = {"item_barcode": barcode, **({"owner": owner} if owner else {})}
    response = post_form(client, "/return", data)
    if response.status_code == 302:
        return client.get(response.headers["Location"])
    return response


# --- sign-in, sessions, cookies, CSRF ---

def test_desk_pages_require_sign_in_and_return_after_it(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    response = client.get("/loans?status=all")
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]
    token = token_of(client.get("/login"))
    response = client.post("/login?next=/loans?status%3Dall",
                           data={"name": "desk1", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/loans?status=all"


def test_login_never_redirects_off_site(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        token = token_of(client.get("/login"))
        response = client.post(f"/login?next={target}",
                               data={"name": "desk1", "password": PASSWORD, "csrf_token": token})
        assert response.headers["Location"] == "/checkout", target
        post_form(client, "/logout", {}, from_page="/checkout")


def test_wrong_password_shows_banner_and_no_session(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    response = sign_in(client, password="not-the-password")
    assert response.status_code == 401
    assert banners(response) == [("error", "Wrong name or password.")]
    assert StaffSession.select().count() == 0
    assert client.get("/checkout").status_code == 302


def test_five_failed_logins_refuse_even_the_right_password(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    for _ in range(5):
        assert sign_in(client, password="guess-guess").status_code == 401
    response = sign_in(client)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in banners(response)[0][1]
    assert StaffSession.select().count() == 0
    assert client.get("/checkout").status_code == 302


def test_login_starts_a_fresh_session(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    with client.session_transaction() as planted:
        planted["sid"] = "planted-by-an-attacker"
        planted["visit"] = {"institution": "NORTH", "id": "n-100"}
    sign_in(client)
    with client.session_transaction() as session:
        assert session["sid"] != "planted-by-an-attacker"
        assert "visit" not in session


def test_session_cookie_is_httponly_and_samesite_lax(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    response = sign_in(client)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("circnode_north=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # base_url is http: a Secure cookie would never come back


def test_session_cookie_is_secure_when_base_url_is_https(tmp_path):
    from node.web.app import create_app
    from node.config import load
    from node.store.db import database
    from tests.helpers.config import write_config
    path = write_config(str(tmp_path / "https"))
    with open(path) as handle:
        text = handle.read().replace("http://127.0.0.1:8080", "https://desk.north.example")
    with open(path, "w") as handle:
        handle.write(text)
    app = create_app(load(path), {"TESTING": True})
    try:
        add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
        client = app.test_client()
        token = token_of(client.get("/login", base_url="https://desk.north.example"))
        # Over https Flask-WTF also wants a same-site Referer, as a browser sends it.
        response = client.post("/login", base_url="https://desk.north.example",
                               headers={"Referer": "https://desk.north.example/login"},
                               data={"name": "desk1", "password": PASSWORD, "csrf_token": token})
        assert response.status_code == 302
        cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        database.close()


def test_logout_ends_the_session_even_for_a_copied_cookie(app, desk):
    copied = desk.get_cookie("circnode_north").value
    assert desk.get("/loans").status_code == 200
    response = post_form(desk, "/logout", {}, from_page="/loans")
    assert response.headers["Location"] == "/login"
    assert StaffSession.select().count() == 0
    thief = app.test_client()
    thief.set_cookie("circnode_north", copied)
    response = thief.get("/loans")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_post_without_csrf_token_is_refused_and_changes_nothing(desk):
    start_visit(desk, "NORTH", "n-100")
    response = desk.post("/checkout/scan", data={"item_barcode": "N0001"})
    assert response.status_code == 403
    assert "did not come from this site" in banners(response)[0][1]
    assert "csrf_failed" in response.get_data(as_text=True)
    assert Loan.select().count() == 0
    assert Item.get(barcode="N0001").status == "available"
    response = desk.post("/checkout/scan", data={"item_barcode": "N0001", "csrf_token": "forged"})
    assert response.status_code == 403
    assert Loan.select().count() == 0


def test_login_form_without_csrf_token_is_refused(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    client.get("/login")
    response = client.post("/login", data={"name": "desk1", "password": PASSWORD})
    assert response.status_code == 403
    assert StaffSession.select().count() == 0


# --- checkout scan loop ---

def test_checkout_own_patron_two_items_with_success_banners(desk):
    page = start_visit(desk, "NORTH", "n-100")
    assert "Checkout for Nora North" in page.get_data(as_text=True)
    page = scan(desk, "N0001")
    assert banners(page)[0][0] == "success"
    assert banners(page)[0][1].startswith("N0001 checked out: Book 1 — due ")
    page = scan(desk, "N0002")
    assert banners(page) and banners(page)[0][0] == "success"
    html = page.get_data(as_text=True)
    assert "This visit: 2 items" in html and "Book 1" in html and "Book 2" in html
    loans = list(Loan.select().where(Loan.status == "open"))
    assert sorted(loan.item.barcode for loan in loans) == ["N0001", "N0002"]
    assert not any(loan.provisional for loan in loans)
    assert desk.get("/checkout/scan").get_data(as_text=True).count("autofocus") == 1


@pytest.mark.parametrize("barcode, message", [
    ("N0001", "N0001: Item N0001 is already on loan."),
    ("NOPE-1", "NOPE-1: No item with barcode 'NOPE-1'."),
    ("R0001", "R0001: Items of type 'reference' do not leave the library."),
    ("S0001", "S0001: Item S0001 belongs to another library."),
    ("", "Scan an item barcode."),
])
def test_scan_refusals_are_banners_on_the_scan_page(desk, barcode, message):
    Item.create(owner="SOUTH", barcode="S0001", title="South book", updated_at=NOW)
    start_visit(desk, "NORTH", "n-100")
    scan(desk, "N0001")
    before = Loan.select().count()
    page = scan(desk, barcode)
    assert banners(page) == [("error", message)]
    assert 'id="item_barcode"' in page.get_data(as_text=True)
    assert Loan.select().count() == before


def test_blocked_and_unknown_patrons_are_refused_on_the_checkout_page(desk):
    Patron.create(institution="NORTH", home_id="n-bad", blocked=True, block_reason="Unpaid fees.", updated_at=NOW)
    for patron_id, message in [("n-bad", "North University patron n-bad: Unpaid fees."),
                               ("n-nobody", "North University patron n-nobody: Not a registered patron here."),
                               ("", "Scan or type the patron's id.")]:
        response = post_form(desk, "/checkout", {"institution": "NORTH", "patron_id": patron_id})
        assert response.headers["Location"] == "/checkout"
        page = desk.get("/checkout")
        assert banners(page) == [("error", message)]
    assert desk.get("/checkout/scan").headers["Location"] == "/checkout"


def test_unknown_institution_is_a_banner(desk):
    response = post_form(desk, "/checkout", {"institution": "WEST", "patron_id": "w-1"})
    page = desk.get(response.headers["Location"])
    assert banners(page) == [("error", "WEST patron w-1: 'WEST' is not a library of this network.")]


def test_visiting_patron_with_home_unreachable_gets_provisional_loans_up_to_the_limit(desk):
    # SOUTH in the test config has no key and a dead port: it can never answer.
    page = start_visit(desk, "SOUTH", "s-7")
    assert banners(page)[0][0] == "warning"
    assert "South College cannot be reached" in banners(page)[0][1]
    assert "offline: home library unreachable" in page.get_data(as_text=True)
    kind, text = banners(scan(desk, "N0001"))[0]
    assert kind == "success" and text.endswith("(made offline, provisional)")
    scan(desk, "N0002")
    page = scan(desk, "N0003")  # offline_max_loans = 2 in the test config
    assert banners(page)[0][0] == "error"
    assert "cannot be reached" in banners(page)[0][1]
    loans = list(Loan.select())
    assert len(loans) == 2 and all(loan.provisional and loan.made_offline for loan in loans)
    assert OutboxEvent.select().where(OutboxEvent.destination == "SOUTH").count() == 2
    listing = desk.get("/loans").get_data(as_text=True)
    assert listing.count('<span class="tag offline">offline</span>') == 2


def test_done_ends_the_visit(desk):
    start_visit(desk, "NORTH", "n-100")
    post_form(desk, "/checkout/done", {}, from_page="/checkout/scan")
    assert desk.get("/checkout/scan").headers["Location"] == "/checkout"


# --- returns ---

def test_return_own_item_closes_loan_with_banner(desk):
    start_visit(desk, "NORTH", "n-100")
    scan(desk, "N0001")
    page = return_scan(desk, "N0001")
    assert banners(page) == [("success", "N0001 returned: Book 1. Shelve it.")]
    assert Loan.get().status == "closed"
    assert Item.get(barcode="N0001").status == "available"
    page = return_scan(desk, "N0001")
    assert banners(page) == [("error", "N0001: Item N0001 is not on loan (available).")]
    page = return_scan(desk, "ZZZ")
    assert banners(page) == [("error", "ZZZ: No item with barcode 'ZZZ'.")]


def _network_loan(barcode, patron_id="n-100", due_days=14):
    """A SOUTH item lent to a NORTH patron, as NORTH's inbox records it."""
    now = datetime.datetime.now(UTC)
    item = Item.create(owner="SOUTH", barcode=barcode, title=f"South book {barcode}", status="on_loan",
                       updated_at=NOW)
    patron = Patron.get(institution="NORTH", home_id=patron_id)
    return Loan.create(item=item, patron=patron, lender="SOUTH", checked_out_at=now,
                       due_at=now + datetime.timedelta(days=due_days), updated_at=now)


def test_peer_item_returned_at_home_library_says_where_to_send_it(desk):
    loan = _network_loan("S0042")
    page = return_scan(desk, "S0042")
    assert banners(page) == [("transit", "S0042 returned: South book S0042. Send to South College.")]
    assert Loan.get_by_id(loan.id).returned_at_institution == "NORTH"
    assert Item.get(owner="SOUTH", barcode="S0042").status == "in_transit"
    assert OutboxEvent.get(OutboxEvent.destination == "SOUTH").type == "loan.returned"


def test_shared_barcode_asks_whose_item_then_returns_the_chosen_one(desk):
    Item.create(owner="SOUTH", barcode="N0003", title="South twin", status="available", updated_at=NOW)
    start_visit(desk, "NORTH", "n-100")
    scan(desk, "N0003")
    page = return_scan(desk, "N0003")
    assert page.status_code == 200
    assert banners(page) == [("warning", "N0003: several libraries use this barcode. Whose item is it?")]
    html = page.get_data(as_text=True)
    assert 'value="NORTH">North University (NORTH)' in html and 'value="SOUTH">South College (SOUTH)' in html
    assert Loan.get().status == "open"
    response = desk.post("/return", data={"item_barcode": "N0003", "owner": "NORTH", "csrf_token": token_of(page)})
    page = desk.get(response.headers["Location"])
    assert banners(page) == [("success", "N0003 returned: Book 3. Shelve it.")]
    assert Loan.get().status == "closed"


# --- loans list, item lookup, patron page ---

def test_loans_list_searches_and_highlights_overdue_and_offline(desk, seeded):
    past = datetime.datetime.now(UTC) - datetime.timedelta(days=30)
    own = Standing(True, name="Nora North")
    circulation.checkout(seeded, "N0001", "NORTH", "n-100", own, past, staff="desk1")
    circulation.checkout(seeded, "N0002", "NORTH", "n-100", own, datetime.datetime.now(UTC), staff="desk1")
    offline = circulation.checkout(seeded, "N0004", "SOUTH", "s-9", Standing(True, provisional=True),
                                   datetime.datetime.now(UTC), staff="desk1")
    Loan.update(disputed=True, dispute_reason="home refused").where(Loan.id == offline.id).execute()
    html = desk.get("/loans").get_data(as_text=True)
    rows = {barcode: css for css, barcode in re.findall(r'<tr class="(\w*)" data-barcode="(\w+)"', html)}
    assert rows == {"N0001": "overdue", "N0002": "", "N0004": ""}
    assert '<span class="tag overdue">overdue</span>' in html
    assert 'title="home refused">disputed</span>' in html and ">provisional</span>" in html
    html = desk.get("/loans?overdue=1").get_data(as_text=True)
    assert 'data-barcode="N0001"' in html and 'data-barcode="N0002"' not in html
    html = desk.get("/loans?q=s-9").get_data(as_text=True)
    assert re.findall(r'data-barcode="(\w+)"', html) == ["N0004"]
    circulation.return_item(seeded, "N0001", datetime.datetime.now(UTC))
    html = desk.get("/loans?status=closed").get_data(as_text=True)
    assert re.findall(r'data-barcode="(\w+)"', html) == ["N0001"]


def test_item_lookup_shows_status_and_borrower(desk):
    start_visit(desk, "NORTH", "n-100")
    scan(desk, "N0005")
    html = desk.get("/items?barcode=N0005").get_data(as_text=True)
    assert '<strong class="item-status">on loan</strong>' in html
    assert "/patrons/NORTH/n-100" in html
    page = desk.get("/items?barcode=NOPE")
    assert banners(page) == [("error", "No item with barcode NOPE.")]


def test_patron_page_at_home_node_shows_network_loans(desk):
    _network_loan("S0100")
    start_visit(desk, "NORTH", "n-100")
    scan(desk, "N0001")
    html = desk.get("/patrons/NORTH/n-100").get_data(as_text=True)
    assert "Open loans in the network: 2" in html
    assert 'data-barcode="S0100"' in html and "<td>SOUTH</td>" in html
    assert 'data-barcode="N0001"' in html
    response = desk.get("/patrons?institution=NORTH&id=n-100")
    assert response.headers["Location"] == "/patrons/NORTH/n-100"
    page = desk.get("/patrons/NORTH/n-nobody")
    assert page.status_code == 200
    assert banners(page) == [("error", "This library has no record of patron NORTH · n-nobody.")]


def test_every_desk_page_renders_for_desk_staff(desk):
    for path in ("/checkout", "/return", "/loans", "/loans?status=all", "/items", "/patrons"):
        response = desk.get(path)
        assert response.status_code == 200, path
        assert "Sign out" in response.get_data(as_text=True)
    assert desk.get("/").headers["Location"] == "/checkout"
    assert desk.get("/login").headers["Location"] == "/checkout"


def test_admin_staff_may_also_circulate(client, seeded):
    add_staff("boss", "admin", PASSWORD, datetime.datetime.now(UTC))
    assert sign_in(client, name="boss").status_code == 302
    start_visit(client, "NORTH", "n-100")
    assert banners(scan(client, "N0001"))[0][0] == "success"
    assert Loan.get().item.barcode == "N0001"
