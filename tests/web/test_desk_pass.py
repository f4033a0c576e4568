"""A network pass at the desk through Flask's test client: the summary says the home was not asked, and a
pass scanned into the patron-id field is taken as the pass it is.

NORTH knows SOUTH's node key; SOUTH's address is a port nobody answers (9), which a pass never needs.
"""
import datetime
import html as htmllib
import re

import pytest

from node.store.models import Loan
from tests.helpers.config import write_config
from tests.helpers.desk import PASSWORD, banners, post_form, sign_in

UTC = datetime.timezone.utc


def _south_key(folder):
    """SOUTH's node key, made the way 'circnode init' makes it: (private key, 'ed25519:...')."""
    from node import config
    from node.keys import ensure_key, private_key, public_key_text
    cfg = config.load(write_config(folder, institution="SOUTH", name="South College"))
    ensure_key(cfg)
    return private_key(cfg), public_key_text(cfg)


@pytest.fixture
def south_key(tmp_path):
    return _south_key(str(tmp_path / "south"))


@pytest.fixture
def desk(tmp_path, south_key):
    from node import config
    from node.domain.accounts import add_staff
    from node.keys import ensure_key
    from node.store.db import database
    from node.store.models import Item
    from node.web.app import create_app
    cfg = config.load(write_config(str(tmp_path / "north"), peers=[
        ("SOUTH", "South College", "http://127.0.0.1:9", south_key[1])]))
    ensure_key(cfg)
    client = create_app(cfg, {"TESTING": True}).test_client()
    now = datetime.datetime.now(UTC)
    for n in range(1, 4):
        Item.create(owner="NORTH", barcode=f"N000{n}", title=f"Book {n}", item_type="book", updated_at=now)
    add_staff("desk1", "desk", PASSWORD, now)
    assert sign_in(client).status_code == 302
    yield client
    database.close()


def south_pass(south_key, home_id="south-5", name="South Patron 5", days=7, issued=None):
    from node.domain.patron_pass import encode
    issued = issued or datetime.datetime.now(UTC)
    return encode(south_key[0], "SOUTH", home_id, name, issued, issued + datetime.timedelta(days=days))


def part(response, element_id):
    html = response.get_data(as_text=True)
    found = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert found, f"no #{element_id}"
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", found.group(2))).split())


def follow(client, response):
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client.get(response.headers["Location"])


# --- finding 1: a pass visit's home was not asked; it was not found unreachable ---

def test_the_summary_of_a_pass_visit_says_the_home_was_not_asked_not_that_it_could_not_be_reached(desk, south_key):
    page = follow(desk, post_form(desk, "/patron/pass", {"pass": south_pass(south_key)}, from_page="/checkout"))
    assert part(page, "summary-provisional") == ("Provisional: network pass; South College was not asked. "
                                                 "At most 2 loans may be made offline.")
    assert "could not be" not in page.get_data(as_text=True)
    assert part(page, "summary-answer") == "not asked: the network pass vouches for the patron"


# --- finding 4: a pass scanned into the patron-id field ---

def test_a_pass_scanned_into_the_patron_id_field_begins_the_pass_visit(desk, south_key):
    npass = south_pass(south_key)
    assert len(npass) > 200  # longer than any patron id the field keeps
    form = desk.get("/checkout").get_data(as_text=True)
    field = re.search(r'<input[^>]*id="patron_id"[^>]*>', form).group(0)
    assert int(re.search(r'maxlength="(\d+)"', field).group(1)) >= 2000  # the browser keeps the whole pass
    # The chooser still shows this library: the pass names its own, and the home node is not asked.
    answer = post_form(desk, "/checkout", {"institution": "NORTH", "patron_id": npass, "barcode": "N0002"})
    assert answer.headers["Location"] == "/checkout/scan?barcode=N0002"  # a lost scan is still offered
    page = desk.get(answer.headers["Location"])
    assert banners(page)[0] == ("success", "South Patron 5 (network pass).")
    assert part(page, "visit-pass") == "network pass: home library not asked"
    assert "Provisional: network pass; South College was not asked" in part(page, "summary-provisional")
    assert npass not in page.get_data(as_text=True)
    lent = post_form(desk, "/checkout/scan", {"item_barcode": "N0002"})
    assert lent.status_code == 302
    loan = Loan.get()
    assert (loan.patron.institution, loan.patron.home_id, loan.provisional, loan.made_offline) == (
        "SOUTH", "south-5", True, False)


@pytest.mark.parametrize("kind, expected", [
    ("expired", "pass_expired"), ("tampered", "pass_invalid"), ("cut", "pass_invalid"),
    ("too long", "pass_invalid"), ("lower case", "pass_invalid")])
def test_a_bad_pass_in_the_patron_id_field_is_refused_as_a_pass_without_echoing_it(desk, south_key, kind, expected):
    good = south_pass(south_key)
    text = {"expired": south_pass(south_key, issued=datetime.datetime.now(UTC) - datetime.timedelta(days=9)),
            "tampered": good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"),
            "cut": good[:200],  # what the old 200-character field sent home as a patron id
            "too long": good + "A" * 2000,
            "lower case": "cnp1." + good[5:]}[kind]
    page = follow(desk, post_form(desk, "/checkout", {"institution": "SOUTH", "patron_id": text}))
    assert page.request.path == "/checkout"
    [(level, message)] = banners(page)
    assert level == "error" and message.startswith("Network pass refused: ") and f"[{expected}]" in message
    assert "Not a registered patron" not in message and "South College patron" not in message
    html = page.get_data(as_text=True)
    assert text[:40] not in html and text[-40:] not in html  # the pass text is never shown
    assert Loan.select().count() == 0


def test_a_patron_id_that_is_no_pass_is_still_asked_of_the_home_node(desk):
    page = follow(desk, post_form(desk, "/checkout", {"institution": "NORTH", "patron_id": "CNP1-not-a-pass"}))
    assert banners(page) == [("error", "North University patron CNP1-not-a-pass: Not a registered patron here.")]


def test_a_pass_scanned_into_an_item_field_is_not_taken_for_a_barcode_nor_shown(desk, south_key):
    npass = south_pass(south_key)
    follow(desk, post_form(desk, "/patron/pass", {"pass": npass}, from_page="/checkout"))
    for path in ("/checkout/scan", "/return"):
        page = follow(desk, post_form(desk, path, {"item_barcode": npass}))
        [(level, message)] = banners(page)
        assert level == "error" and message.startswith("That was a network pass, not an item barcode: "), message
        assert npass[:40] not in page.get_data(as_text=True)
    assert Loan.select().count() == 0
