"""Issue 14 at the desk through Flask's test client: the patron summary, search, item history, messages."""
import datetime
import html as htmllib
import re

import pytest

from node.domain import circulation
from node.domain.accounts import add_staff
from node.domain.circulation import Standing
from node.store.models import Fee, Item, Loan, Patron
from tests.helpers.desk import PASSWORD, banners, post_form, sign_in

UTC = datetime.timezone.utc


@pytest.fixture
def desk(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    assert sign_in(client).status_code == 302
    return client


def text_of(response):
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"\s+", " ", response.get_data(as_text=True))))


def part(response, element_id):
    """The text of the element with ELEMENT_ID (its first closing tag of the same name ends it)."""
    html = response.get_data(as_text=True)
    found = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert found, f"no #{element_id}"
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", found.group(2))).split())


def start_visit(client, institution, patron_id):
    response = post_form(client, "/checkout", {"institution": institution, "patron_id": patron_id})
    assert response.status_code == 302
    return client.get(response.headers["Location"])


# --- point 2: the staff form first ---

def test_checkout_page_puts_the_staff_form_before_the_patron_sign_in_panel(desk):
    html = desk.get("/checkout").get_data(as_text=True)
    assert html.index('id="patron_id"') < html.index('id="patron-signin"')


# --- point 3: the patron summary before the first scan ---

def test_visit_page_summarises_loans_fees_limits_and_expiry_of_an_own_patron(desk, seeded):
    now = datetime.datetime.now(UTC)
    patron = Patron.get(institution="NORTH", home_id="n-100")
    Patron.update(expires_on=datetime.date(2031, 6, 30)).where(Patron.id == patron.id).execute()
    loan = circulation.checkout(seeded, "N0001", "NORTH", "n-100", Standing(True), now)
    Loan.update(due_at=now - datetime.timedelta(days=1)).where(Loan.id == loan.id).execute()
    Fee.create(lender="NORTH", home="NORTH", loan_id=loan.id, patron=patron, reason="fine", amount="2.50",
               currency="EUR", assessed_at=now, updated_at=now)
    page = start_visit(desk, "NORTH", "n-100")
    assert "may borrow (this library's own records), asked " in part(page, "summary-answer")
    assert part(page, "summary-loans") == "1 open (1 overdue) · 4 more allowed (limit 5)"
    assert "N0001" in part(page, "summary-loan-list") and "Book 1" in part(page, "summary-loan-list")
    assert part(page, "summary-fees") == "2.50 EUR"
    assert part(page, "summary-expiry") == "until 2031-06-30"
    assert 'id="summary-provisional"' not in page.get_data(as_text=True)


def test_visit_page_warns_when_the_home_node_cannot_be_asked(desk, seeded):
    # SOUTH's address in the test config is a closed port: the home node is unreachable.
    page = start_visit(desk, "SOUTH", "s-1")
    assert part(page, "summary-provisional") == ("Provisional: South College could not be reached. "
                                                 "At most 2 loans may be made offline.")
    assert "South College could not be reached" in part(page, "summary-answer")
    assert part(page, "summary-loans") == "0 open · 2 more allowed (limit 5, offline limit 2)"
    assert part(page, "summary-fees") == "none"
    assert part(page, "summary-expiry") == "kept by South College"


# --- point 6: search, barcodes in any case, item history ---

def test_item_search_by_barcode_in_any_case_title_words_and_call_number(desk, seeded):
    now = datetime.datetime.now(UTC)
    Item.create(owner="NORTH", barcode="N0042", title="The Art of Computer Programming", call_number="QA76.6 K",
                item_type="book", updated_at=now)
    page = desk.get("/items?q=n0042")
    assert 'href="/items/NORTH/N0042"' in page.get_data(as_text=True)
    page = desk.get("/items?q=computer art")
    assert "The Art of Computer Programming" in text_of(page)
    assert "Book 1" not in text_of(page)
    page = desk.get("/items?q=QA76")
    assert "The Art of Computer Programming" in text_of(page)
    page = desk.get("/items?q=100%25")  # LIKE's wildcards are matched literally
    assert banners(page) == [("error", "No item matches 100%.")]
    assert desk.get("/items?barcode=n0005").get_data(as_text=True).count('class="card item"') == 1


def test_patron_search_by_id_or_name_words_links_to_the_patron_page(desk, seeded):
    now = datetime.datetime.now(UTC)
    Patron.create(institution="SOUTH", home_id="s-7", name="Sam Southerland", updated_at=now)
    page = desk.get("/patrons?q=N-100")
    assert 'href="/patrons/NORTH/n-100"' in page.get_data(as_text=True)
    page = desk.get("/patrons?q=south sam")
    assert 'href="/patrons/SOUTH/s-7"' in page.get_data(as_text=True)
    assert "Nora North" not in part(page, "patron-results")
    assert banners(desk.get("/patrons?q=nobody")) == [("error", "No patron matches nobody.")]


def test_item_page_lists_its_loans_and_hides_the_patron_of_anonymised_ones(desk, seeded):
    now = datetime.datetime.now(UTC)
    first = circulation.checkout(seeded, "N0003", "NORTH", "n-100", Standing(True), now)
    circulation.return_item(seeded, "N0003", now)
    Loan.update(patron=None).where(Loan.id == first.id).execute()  # as the privacy purge leaves it
    second = circulation.checkout(seeded, "n0003", "NORTH", "n-100", Standing(True), now)
    page = desk.get("/items/NORTH/n0003")
    assert page.status_code == 200
    history = page.get_data(as_text=True)
    assert f'data-loan="{first.id}"' in history and f'data-loan="{second.id}"' in history
    assert part(page, "item-history").count("NORTH · n-100") == 1
    assert "(anonymised)" in part(page, "item-history")
    assert desk.get("/items/NORTH/NOPE").status_code == 404


def test_api_finds_an_item_whatever_the_case_typed(client, seeded, token):
    response = client.get("/api/v1/items/n0002", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["barcode"] == "N0002"
    response = client.post("/api/v1/checkouts", headers={"Authorization": f"Bearer {token}"},
                           json={"item_barcode": "n0002", "patron": {"institution": "NORTH", "id": "n-100"}})
    assert response.status_code == 201, response.get_json()
    assert Item.get(Item.barcode == "N0002").status == "on_loan"


# --- point 9a: a signed-out desk keeps the visit; a lost scan is offered again ---

def _scan_token(client):
    from tests.helpers.desk import token_of
    return token_of(client.get("/checkout/scan"))


def test_scan_with_a_form_from_before_sign_out_offers_the_same_visit_and_barcode_again(desk, seeded):
    start_visit(desk, "NORTH", "n-100")
    stale = _scan_token(desk)
    post_form(desk, "/logout", {}, from_page="/checkout/scan")
    refused = desk.post("/checkout/scan", data={"csrf_token": stale, "item_barcode": "N0002",
                                                "institution": "NORTH", "patron_id": "n-100"})
    assert refused.status_code == 403
    page = refused.get_data(as_text=True)
    assert "csrf_failed" in page
    assert 'id="repeat-scan" href="/checkout/scan?barcode=N0002"' in page
    # Whoever is at the signed-out screen is not told whose visit it is.
    assert "Sign in again to return to the visit and scan N0002 again" in text_of(refused)
    assert "Nora North" not in page and "n-100" not in page
    assert Loan.select().count() == 0  # CSRF is not waived: nothing was lent

    to_login = desk.get("/checkout/scan?barcode=N0002")
    assert to_login.status_code == 302 and "/login?next=" in to_login.headers["Location"]
    signed_in = post_form(desk, to_login.headers["Location"], {"name": "desk1", "password": PASSWORD})
    assert signed_in.headers["Location"] == "/checkout/scan?barcode=N0002"
    visit_page = desk.get(signed_in.headers["Location"])
    assert "Checkout for Nora North" in text_of(visit_page)
    assert 'id="item_barcode" value="N0002"' in visit_page.get_data(as_text=True)
    response = post_form(desk, "/checkout/scan", {"item_barcode": "N0002"})
    assert response.status_code == 302
    assert Loan.select().join(Item).where(Item.barcode == "N0002").count() == 1


def test_an_expired_scan_form_names_the_visits_patron_only_to_a_signed_in_staff_member(desk, seeded):
    start_visit(desk, "NORTH", "n-100")
    stale = "not-the-token"  # signed in, the form's token is wrong: the same page, with the patron named
    refused = desk.post("/checkout/scan", data={"csrf_token": stale, "item_barcode": "N0002"})
    assert refused.status_code == 403
    assert "Back to the visit of Nora North and scan N0002 again" in text_of(refused)
    assert "The visit is kept" not in text_of(refused)
    post_form(desk, "/logout", {}, from_page="/checkout/scan")
    refused = desk.post("/checkout/scan", data={"csrf_token": stale, "item_barcode": "N0002"})
    assert refused.status_code == 403
    assert "Sign in again to return to the visit and scan N0002 again" in text_of(refused)
    assert "The visit is kept for the staff member who began it." in text_of(refused)
    assert "Nora North" not in refused.get_data(as_text=True) and "n-100" not in refused.get_data(as_text=True)
    for path in ("/checkout", "/checkout/scan", "/patrons/NORTH/n-100", "/loans"):  # signed out: only the sign-in
        assert desk.get(path).status_code == 302, path


def _readable_parts(value):
    """Whatever a person at the browser could decode from a cookie VALUE (base64 pieces, zlib or not)."""
    import base64
    import zlib
    for piece in value.lstrip(".").split("."):
        try:
            raw = base64.urlsafe_b64decode(piece + "=" * (-len(piece) % 4))
        except ValueError:
            continue
        yield raw
        try:
            yield zlib.decompress(raw)
        except zlib.error:
            pass


def test_a_signed_out_desks_cookie_keeps_the_visit_unreadable(app, desk, seeded):
    from flask.sessions import SecureCookieSessionInterface
    from itsdangerous import BadSignature
    start_visit(desk, "NORTH", "n-100")
    post_form(desk, "/logout", {}, from_page="/checkout/scan")
    value = desk.get_cookie("circnode_north").value
    with pytest.raises(BadSignature):  # not Flask's readable cookie
        SecureCookieSessionInterface().get_signing_serializer(app).loads(value)
    for part_bytes in _readable_parts(value):
        assert b"n-100" not in part_bytes and b"Nora" not in part_bytes
    sign_in(desk)  # the visit is kept all the same, for the staff member who began it
    assert "Checkout for Nora North" in text_of(desk.get("/checkout/scan"))
    altered = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    thief = app.test_client()
    thief.set_cookie("circnode_north", altered)  # an altered cookie is no session
    assert thief.get("/checkout").status_code == 302


def test_scan_after_the_staff_session_timed_out_signs_in_and_comes_back_to_the_visit(desk, seeded):
    from node.store.models import StaffSession
    start_visit(desk, "NORTH", "n-100")
    token = _scan_token(desk)
    long_ago = datetime.datetime(2020, 1, 1, tzinfo=UTC)
    StaffSession.update(last_seen_at=long_ago).execute()  # the session idled out
    response = desk.post("/checkout/scan", data={"csrf_token": token, "item_barcode": "N0003"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/checkout/scan?barcode%3DN0003"
    signed_in = post_form(desk, response.headers["Location"], {"name": "desk1", "password": PASSWORD})
    assert signed_in.headers["Location"] == "/checkout/scan?barcode=N0003"
    assert 'value="N0003"' in desk.get("/checkout/scan?barcode=N0003").get_data(as_text=True)


def test_scan_whose_session_is_gone_offers_the_checkout_form_filled_with_the_visit(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    sign_in(client)
    start_visit(client, "NORTH", "n-100")
    stale = _scan_token(client)
    client.delete_cookie("circnode_north")  # the browser lost the session cookie altogether
    refused = client.post("/checkout/scan", data={"csrf_token": stale, "item_barcode": "N0004",
                                                  "institution": "NORTH", "patron_id": "n-100"})
    assert refused.status_code == 403
    html = refused.get_data(as_text=True)
    assert 'id="repeat-scan" href="/checkout?barcode=N0004"' in html
    assert "n-100" not in html and "Nora North" not in html  # the patron is kept in the new session, not shown
    to_login = client.get("/checkout?barcode=N0004")
    assert "n-100" not in to_login.headers["Location"]  # nor in the sign-in page's address
    signed_in = post_form(client, to_login.headers["Location"], {"name": "desk1", "password": PASSWORD})
    assert signed_in.headers["Location"] == "/checkout?barcode=N0004"
    page = client.get("/checkout?barcode=N0004")
    assert 'value="n-100"' in page.get_data(as_text=True) and 'name="barcode" value="N0004"' in page.get_data(as_text=True)
    assert 'value="n-100"' not in client.get("/checkout").get_data(as_text=True)  # read once
    response = post_form(client, "/checkout", {"institution": "NORTH", "patron_id": "n-100", "barcode": "N0004"},
                         from_page="/checkout")
    assert response.headers["Location"] == "/checkout/scan?barcode=N0004"


def test_return_with_an_expired_form_offers_the_return_again(desk, seeded):
    from tests.helpers.desk import token_of
    stale = token_of(desk.get("/return"))
    post_form(desk, "/logout", {}, from_page="/return")
    refused = desk.post("/return", data={"csrf_token": stale, "item_barcode": "N0001"})
    assert refused.status_code == 403
    assert 'href="/return?barcode=N0001"' in refused.get_data(as_text=True)


def test_a_visit_is_kept_for_the_staff_member_who_began_it_not_for_a_colleague(desk, seeded):
    add_staff("desk2", "desk", PASSWORD, datetime.datetime.now(UTC))
    start_visit(desk, "NORTH", "n-100")
    post_form(desk, "/logout", {}, from_page="/checkout/scan")
    sign_in(desk, name="desk2")
    assert desk.get("/checkout/scan").headers["Location"] == "/checkout"  # no visit: desk2 never admitted n-100
    start_visit(desk, "NORTH", "n-100")
    post_form(desk, "/logout", {}, from_page="/checkout/scan")
    assert sign_in(desk, name="desk2").headers["Location"] == "/checkout/scan"  # back to the same visit


# --- point 9d: the refusal tone can be turned off ---

def test_desk_pages_load_the_refusal_tone_unless_sound_is_off(desk, tmp_path):
    assert 'src="/static/refusal-tone.js"' in desk.get("/checkout").get_data(as_text=True)
    from node import config
    from node.keys import ensure_key
    from node.web.app import create_app
    from tests.helpers.config import write_config
    cfg = config.load(write_config(str(tmp_path / "quiet"), extra="[desk]\nsound = no\n"))
    ensure_key(cfg)
    quiet = create_app(cfg, {"TESTING": True}).test_client()
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    sign_in(quiet)
    assert "refusal-tone.js" not in quiet.get("/checkout").get_data(as_text=True)


def test_loans_search_finds_a_barcode_typed_in_lower_case(desk, seeded):
    circulation.checkout(seeded, "N0004", "NORTH", "n-100", Standing(True), datetime.datetime.now(UTC))
    assert 'data-barcode="N0004"' in desk.get("/loans?q=n0004").get_data(as_text=True)
