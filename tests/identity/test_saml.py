"""Patron sign-in (SAML) against a real pysaml2 IdP process, over real HTTP.

NORTH runs as a ``circnode run`` process; SOUTH's demo IdP (node/idp.py) as
a ``python -m node.demo.idp`` process.  AuthnRequests travel by HTTP-Redirect,
responses by HTTP-POST, signed by xmlsec1.  Attacks either tamper with what
the real IdP sent, or are made by pysaml2's IdP code with the right (or a
wrong) key, then are posted to NORTH's assertion consumer like a browser
would.  Each one must be refused with its stable code, and leave no patron
signed in.
"""
import base64
import os
import re
import signal
import sqlite3
from types import SimpleNamespace

import pytest
import requests

from node.demo.network import DEMO_NODES, make_network, start_idp, start_node, wait_healthy, wait_idp
from tests.network import free_port
from tests.helpers.saml import b64, crafted, idp_sign_in, me, post_acs, refused, start


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("saml")
    infos = {info.code: info for info in make_network(
        str(base), nodes=DEMO_NODES, items=5, patrons=3, ports=[free_port() for _ in DEMO_NODES], idps=True)}
    north, south = infos["NORTH"], infos["SOUTH"]
    processes = [start_node(north), start_idp(south)]
    try:
        wait_healthy(north, timeout=60, process=processes[0])
        wait_idp(south, timeout=60, process=processes[1])
        yield SimpleNamespace(infos=infos, north=north, south=south, tmp=base)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=15)


# --- a browser's part, done with requests ---------------------------------


def real_response(net, user="south-1"):
    browser, request_id, location = start(net)
    action, response = idp_sign_in(browser, location, user)
    assert action == net.north.url + "/saml/acs"
    return browser, request_id, base64.b64decode(response).decode()


# --- the happy path ----------------------------------------------------------

def test_patron_signs_in_at_the_chosen_institution_and_me_answers_the_verified_identity(net):
    browser, request_id, location = start(net)
    assert me(net, browser).status_code == 401
    assert me(net, browser).json()["error"]["code"] == "unauthorized"
    action, response = idp_sign_in(browser, location)
    answer = post_acs(net, browser, response)
    assert answer.status_code == 303 and "Set-Cookie" not in answer.headers  # the ACS never touches sessions
    page = browser.get(net.north.url + answer.headers["Location"])
    assert page.status_code == 200 and "South Patron 1" in page.text
    identity = me(net, browser).json()
    assert {k: identity[k] for k in ("institution", "id", "name", "email", "via")} == {
        "institution": "SOUTH", "id": "south-1", "name": "South Patron 1", "email": "patron1@south.example",
        "via": "saml"}
    assert me(net, requests.Session()).status_code == 401  # bound to that browser only


def test_the_answer_is_only_taken_in_the_browser_that_started_the_sign_in(net):
    browser, request_id, location = start(net)
    action, response = idp_sign_in(browser, location)
    answer = post_acs(net, requests.Session(), response)  # the ACS itself needs no cookie
    other = requests.Session()
    refused(other.get(net.north.url + answer.headers["Location"]), "saml_replay")
    assert me(net, other).status_code == 401
    assert browser.get(net.north.url + answer.headers["Location"]).status_code == 200
    assert me(net, browser).json()["id"] == "south-1"


# --- every attack of the issue, refused --------------------------------------

def test_unsigned_response_is_refused(net):
    browser, _, xml = real_response(net)
    stripped = re.sub(r"<ns2:Signature\b.*?</ns2:Signature>", "", xml, flags=re.S)
    assert "Signature" not in stripped
    refused(post_acs(net, browser, b64(stripped)), "saml_unsigned")
    assert me(net, browser).status_code == 401


def test_assertion_signed_by_a_key_not_in_the_metadata_is_refused(net):
    from node.identity.saml_sp import make_self_signed
    key, cert = str(net.tmp / "rogue.key"), str(net.tmp / "rogue.crt")
    if not os.path.exists(key):
        make_self_signed(key, cert, "rogue")
    browser, request_id, _ = start(net)
    forged = crafted(net, request_id, key_file=key, cert_file=cert)
    refused(post_acs(net, browser, b64(forged)), "saml_bad_signature")
    assert me(net, browser).status_code == 401


def _wrap_evil_first(xml):
    assertion = re.search(r"<ns1:Assertion\b.*?</ns1:Assertion>", xml, re.S).group(0)
    evil = re.sub(r"<ns2:Signature\b.*?</ns2:Signature>", "", assertion, flags=re.S).replace(">south-1<", ">south-2<")
    evil = re.sub(r' ID="[^"]+"', ' ID="id-evil"', evil, count=1)
    return xml.replace(assertion, evil + assertion)


def _wrap_same_id_signed_copy_in_extensions(xml):
    # The classic XSW: the signed original hides in Extensions, an altered copy with
    # the same ID (and the original's signature) takes its place.
    xml = re.sub(r"(<ns1:Issuer[^>]*>[^<]*</ns1:Issuer>)<ns2:Signature\b.*?</ns2:Signature>", r"\1", xml,
                 count=1, flags=re.S)
    assertion = re.search(r"<ns1:Assertion\b.*?</ns1:Assertion>", xml, re.S).group(0)
    evil = assertion.replace(">south-1<", ">south-2<")
    return xml.replace(assertion, evil).replace(
        "</ns1:Issuer>", "</ns1:Issuer><ns0:Extensions>" + assertion + "</ns0:Extensions>", 1)


def _wrap_in_advice(xml):
    xml = re.sub(r"(<ns1:Issuer[^>]*>[^<]*</ns1:Issuer>)<ns2:Signature\b.*?</ns2:Signature>", r"\1", xml,
                 count=1, flags=re.S)
    assertion = re.search(r"<ns1:Assertion\b.*?</ns1:Assertion>", xml, re.S).group(0)
    evil = re.sub(r' ID="[^"]+"', ' ID="id-evil"', assertion.replace(">south-1<", ">south-2<"), count=1)
    evil = evil.replace("</ns1:Conditions>", "</ns1:Conditions><ns1:Advice>" + assertion + "</ns1:Advice>", 1)
    return xml.replace(assertion, evil)


@pytest.mark.parametrize("wrap", [_wrap_evil_first, _wrap_same_id_signed_copy_in_extensions, _wrap_in_advice])
def test_signature_wrapping_is_refused(net, wrap):
    browser, _, xml = real_response(net)
    wrapped = wrap(xml)
    assert ">south-2<" in wrapped
    answer = post_acs(net, browser, b64(wrapped))
    assert answer.status_code == 403, answer.text[:300]
    assert re.search(r'id="refusal-code">saml_(invalid|bad_signature|unsigned)<', answer.text)
    assert me(net, browser).status_code == 401


def test_altered_attribute_is_refused(net):
    browser, _, xml = real_response(net)
    assert xml.count(">south-1<") == 1
    refused(post_acs(net, browser, b64(xml.replace(">south-1<", ">south-2<"))), "saml_bad_signature")
    assert me(net, browser).status_code == 401


def test_replayed_response_is_refused_even_if_its_request_were_open_again(net):
    browser, request_id, xml = real_response(net)
    first = post_acs(net, browser, b64(xml))
    assert first.status_code == 303
    refused(post_acs(net, requests.Session(), b64(xml)), "saml_replay")
    # Second line of defence: the consumed assertion id, kept until it expires.
    database = os.path.join(net.north.folder, "var", "circnode.sqlite3")
    with sqlite3.connect(database) as db:
        db.execute("UPDATE saml_request SET state = 'pending' WHERE id = ?", (request_id,))
    refused(post_acs(net, requests.Session(), b64(xml)), "saml_replay")


def test_expired_response_is_refused(net):
    browser, request_id, _ = start(net)
    stale = crafted(net, request_id, lifetime={"minutes": -10})
    refused(post_acs(net, browser, b64(stale)), "saml_expired")
    assert me(net, browser).status_code == 401


@pytest.mark.parametrize("in_response_to", [None, "id-never-sent-by-north"])
def test_unsolicited_response_is_refused(net, in_response_to):
    browser = requests.Session()
    unsolicited = crafted(net, in_response_to)
    refused(post_acs(net, browser, b64(unsolicited)), "saml_unsolicited")
    assert me(net, browser).status_code == 401


def test_assertion_for_another_audience_is_refused(net):
    browser, request_id, _ = start(net)
    for_east = crafted(net, request_id, audience=net.infos["EAST"].url + "/saml/metadata")
    refused(post_acs(net, browser, b64(for_east)), "saml_wrong_audience")


def test_response_addressed_to_another_destination_is_refused(net):
    browser, request_id, _ = start(net)
    elsewhere = crafted(net, request_id, destination=net.infos["EAST"].url + "/saml/acs")
    refused(post_acs(net, browser, b64(elsewhere)), "saml_wrong_destination")


def test_idp_of_another_institution_than_the_chosen_one_is_refused(net):
    # EAST's IdP is genuine (its own key, in NORTH's metadata for EAST), but the patron chose SOUTH.
    browser, request_id, _ = start(net, "SOUTH")
    from_east = crafted(net, request_id, idp="EAST", user="east-1")
    refused(post_acs(net, browser, b64(from_east)), "saml_wrong_institution")
    assert me(net, browser).status_code == 401


def test_refusals_are_logged_with_their_reason_and_without_the_document(net):
    browser, _, xml = real_response(net, user="south-2")
    refused(post_acs(net, browser, b64(xml.replace(">south-2<", ">south-3<"))), "saml_bad_signature")
    with open(os.path.join(net.north.folder, "node.log"), errors="replace") as handle:
        log = handle.read()
    assert "SAML response refused: saml_bad_signature (institution=SOUTH" in log
    assert "South Patron 2" not in log and "south-3" not in log and "<ns0:Response" not in log


# --- the assertion consumer's edges ----------------------------------------

def test_oversized_post_to_the_acs_is_refused_before_parsing(net):
    answer = requests.post(net.north.url + "/saml/acs", data={"SAMLResponse": "A" * (400 * 1024)})
    assert answer.status_code == 413 and "too_large" in answer.text


def test_acs_is_the_only_patron_form_without_csrf(net):
    browser = requests.Session()
    refused(post_acs(net, browser, "bm90IHhtbA=="), "saml_invalid")  # processed: no CSRF refusal
    for path in ("/patron/pass", "/patron/phone/start", "/patron/logout"):
        answer = browser.post(net.north.url + path, data={"pass": "x", "institution": "SOUTH"},
                              allow_redirects=False)
        assert answer.status_code == 403 and "csrf_failed" in answer.text, (path, answer.status_code)


def test_sp_metadata_names_the_acs_and_requires_signed_assertions(net):
    answer = requests.get(net.north.url + "/saml/metadata")
    assert answer.status_code == 200
    assert 'WantAssertionsSigned="true"' in answer.text and 'AuthnRequestsSigned="true"' in answer.text
    assert f'Location="{net.north.url}/saml/acs"' in answer.text


# --- set-up: init makes the SP certificate; run refuses without xmlsec1 ------

def test_init_creates_the_sp_certificate_and_run_refuses_without_xmlsec1(tmp_path):
    from tests.helpers.config import write_config
    from tests.helpers.cli import circnode, ok
    ini = write_config(str(tmp_path / "north"), peers=[("SOUTH", "South College", "http://127.0.0.1:9", "")],
                       extra="\n[saml]\nxmlsec_binary = /nonexistent/xmlsec1\n")
    with open(ini) as handle:
        text = handle.read()
    with open(ini, "w") as handle:  # SOUTH's patrons sign in at an IdP: sign-in is configured
        handle.write(text.replace("public_key = \n", "public_key = \nidp_metadata = south-idp.xml\n", 1))
    first = ok(circnode("--config", ini, "init"))
    key, cert = tmp_path / "north" / "var" / "saml_sp.key", tmp_path / "north" / "var" / "saml_sp.crt"
    assert "SAML certificate:" in first.stdout and "(created)" in first.stdout
    assert oct(key.stat().st_mode & 0o777) == "0o600" and b"BEGIN CERTIFICATE" in cert.read_bytes()
    before = cert.read_bytes()
    assert "(kept)" in ok(circnode("--config", ini, "init")).stdout and cert.read_bytes() == before
    run = circnode("--config", ini, "run", "--port", str(free_port()))
    assert run.returncode == 2 and "xmlsec1" in run.stderr and "apt-get install xmlsec1" in run.stderr


def test_idp_lockout_page_links_back_to_the_library_that_asked(net):
    import html as htmllib
    import re
    browser, _, location = start(net)
    key = re.search(r'name="key" value="([^"]+)"', browser.get(location).text).group(1)
    idp = location.split("/idp/")[0]
    for _ in range(5):
        answer = browser.post(idp + "/idp/login", data={"key": key, "username": "south-1", "password": "wrong"})
    assert answer.status_code == 400 and "Too many wrong passwords" in answer.text
    back = htmllib.unescape(re.search(r'<a id="back-to-library" href="([^"]+)"', answer.text).group(1))
    assert back == net.north.url + "/"
    expired = browser.post(idp + "/idp/login", data={"key": key, "username": "south-1", "password": "x"})
    assert expired.status_code == 400 and "expired" in expired.text  # the key is gone: no way to guess on
