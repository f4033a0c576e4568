"""Encrypted assertions and NameIDs, OID attribute names and SHA-1, against real processes (issue 16, points 1-3).

NORTH runs as a ``circnode run`` process; SOUTH's demo IdP answers in the
clear, EAST's (``encrypt_assertions = yes``) encrypts every assertion for
NORTH's encryption certificate from its metadata, and NORTH names EAST's
patron id attribute by its OID.  Other answers are made with pysaml2's IdP
code and encrypted with xmlsec1 (node/demo/idp.py), then posted to NORTH's
assertion consumer like a browser would: each is accepted, or refused with a
code that names the cause.
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
from tests.helpers.cli import circnode, ok
from tests.helpers.saml import b64, crafted, idp_sign_in, me, post_acs, refused, start

XMLSEC = "/usr/bin/xmlsec1"
OID_UID = "urn:oid:0.9.2342.19200300.100.1.1"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    base = tmp_path_factory.mktemp("saml_encryption")
    infos = {info.code: info for info in make_network(
        str(base), nodes=DEMO_NODES, items=5, patrons=3, ports=[free_port() for _ in DEMO_NODES], idps=True)}
    north, south, east = infos["NORTH"], infos["SOUTH"], infos["EAST"]
    with open(north.config) as handle:  # NORTH knows EAST's patron id by its OID name
        text = handle.read()
    line = f"idp_metadata = {east.idp_metadata}\n"
    with open(north.config, "w") as handle:
        handle.write(text.replace(line, line + f"patron_id_attribute = {OID_UID}\n", 1))
    with open(east.idp_config, "a") as handle:  # EAST's IdP encrypts, as Shibboleth does by default
        handle.write("encrypt_assertions = yes\n")
    processes = [start_node(north), start_idp(south), start_idp(east)]
    try:
        wait_healthy(north, timeout=60, process=processes[0])
        wait_idp(south, timeout=60, process=processes[1])
        wait_idp(east, timeout=60, process=processes[2])
        yield SimpleNamespace(infos=infos, north=north, south=south, east=east, tmp=base)
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=15)


def north_cfg(net):
    from node import config
    return config.load(net.north.config)


def north_cert(net, use="encryption", stage="current"):
    from node.identity import saml_keys
    return saml_keys.certificate_text(saml_keys.pair(north_cfg(net), use, stage).cert)


def idp_key(net, idp="SOUTH"):
    from node.demo.idp import load_settings
    return load_settings(net.infos[idp].idp_config)["key_file"]


def rogue_cert(net):
    from node.identity.saml_keys import certificate_text, make_self_signed
    key, cert = str(net.tmp / "rogue.key"), str(net.tmp / "rogue.crt")
    if not os.path.exists(key):
        make_self_signed(key, cert, "rogue SP")
    return certificate_text(cert)


def encrypted(net, xml, cert=None, **algorithms):
    """XML (a signed response of SOUTH's IdP) with its assertion encrypted, and the Response signed again."""
    from node.demo.idp import encrypt_assertion, sign_element
    xml = encrypt_assertion(xml, cert or north_cert(net), XMLSEC, **algorithms)
    return sign_element(xml, "Response", idp_key(net), XMLSEC) if 'Reference URI="#' in xml else xml


def with_encrypted_name_id(net, xml, cert=None):
    """XML with its NameID replaced by an EncryptedID for CERT, the assertion and response signed anew."""
    from node.demo.idp import _with_namespaces, encrypt_element, sign_element
    name_id = re.search(r"<(\w+:)NameID\b.*?</\1NameID>", xml, re.S)
    prefix = name_id.group(1)
    data = encrypt_element(_with_namespaces(name_id.group(0), xml), cert or north_cert(net), XMLSEC)
    xml = xml[:name_id.start()] + f"<{prefix}EncryptedID>{data}</{prefix}EncryptedID>" + xml[name_id.end():]
    xml = sign_element(xml, "Assertion", idp_key(net), XMLSEC)
    return sign_element(xml, "Response", idp_key(net), XMLSEC)


def signed_in_as(net, browser, answer, patron_id):
    assert answer.status_code == 303, re.findall(r'id="refusal-code">([^<]+)<', answer.text) or answer.text[:300]
    assert browser.get(net.north.url + answer.headers["Location"]).status_code == 200
    assert me(net, browser).json()["id"] == patron_id


# --- point 1: encrypted assertions ---------------------------------------------------

def test_idp_that_encrypts_by_default_signs_the_patron_in_with_an_oid_attribute_name(net):
    browser, _, location = start(net, "EAST")
    action, response = idp_sign_in(browser, location, user="east-1")
    xml = base64.b64decode(response).decode()
    assert "EncryptedAssertion" in xml and "east-1" not in xml  # nothing of the patron in the clear
    answer = post_acs(net, browser, response)
    signed_in_as(net, browser, answer, "east-1")
    identity = me(net, browser).json()
    assert identity["name"] == "East Patron 1" and identity["email"] == "patron1@east.example"


@pytest.mark.parametrize("data_alg", ["http://www.w3.org/2009/xmlenc11#aes256-gcm",
                                      "http://www.w3.org/2001/04/xmlenc#aes128-cbc"])
def test_encrypted_signed_assertion_is_accepted(net, data_alg):
    browser, request_id, _ = start(net)
    signed_in_as(net, browser, post_acs(net, browser, b64(encrypted(net, crafted(net, request_id),
                                                                     data_alg=data_alg))), "south-1")


def test_encrypted_for_another_key_is_refused_by_name(net):
    browser, request_id, _ = start(net)
    answer = post_acs(net, browser, b64(encrypted(net, crafted(net, request_id), cert=rogue_cert(net))))
    refused(answer, "saml_encrypted_for_another_key")
    assert "exactly one assertion" not in answer.text
    assert me(net, browser).status_code == 401


def test_encrypted_for_the_signing_certificate_says_the_idp_needs_the_new_metadata(net):
    browser, request_id, _ = start(net)
    answer = post_acs(net, browser, b64(encrypted(net, crafted(net, request_id), cert=north_cert(net, "signing"))))
    refused(answer, "saml_encrypted_for_another_key")
    assert "signing certificate" in answer.text


def test_encrypted_for_an_unnamed_other_key_cannot_be_decrypted(net):
    browser, request_id, _ = start(net)
    answer = post_acs(net, browser, b64(encrypted(net, crafted(net, request_id), cert=rogue_cert(net),
                                                  name_cert=False)))
    refused(answer, "saml_cannot_decrypt")


@pytest.mark.parametrize("algorithms", [
    {"key_alg": "http://www.w3.org/2001/04/xmlenc#rsa-1_5"},
    {"data_alg": "http://www.w3.org/2001/04/xmlenc#tripledes-cbc"}])
def test_weak_encryption_is_refused(net, algorithms):
    browser, request_id, _ = start(net)
    refused(post_acs(net, browser, b64(encrypted(net, crafted(net, request_id), **algorithms))),
            "saml_weak_algorithm")


def test_encrypted_but_unsigned_assertion_is_refused(net):
    browser, request_id, _ = start(net)
    unsigned = re.sub(r"<(\w+:)?Signature\b.*?</\1?Signature>", "", crafted(net, request_id), flags=re.S)
    assert "Signature" not in unsigned
    refused(post_acs(net, browser, b64(encrypted(net, unsigned))), "saml_unsigned")
    assert me(net, browser).status_code == 401


def test_encrypted_assertion_altered_before_encryption_is_refused_even_in_a_signed_response(net):
    browser, request_id, _ = start(net)
    altered = crafted(net, request_id).replace(">south-1<", ">south-2<")
    refused(post_acs(net, browser, b64(encrypted(net, altered))), "saml_bad_signature")
    assert me(net, browser).status_code == 401


def test_encrypted_assertion_for_another_audience_is_refused(net):
    browser, request_id, _ = start(net)
    for_east = crafted(net, request_id, audience=net.infos["EAST"].url + "/saml/metadata")
    refused(post_acs(net, browser, b64(encrypted(net, for_east))), "saml_wrong_audience")


def test_encrypted_assertion_is_refused_when_replayed(net):
    browser, request_id, _ = start(net)
    xml = encrypted(net, crafted(net, request_id))
    signed_in_as(net, browser, post_acs(net, browser, b64(xml)), "south-1")
    refused(post_acs(net, requests.Session(), b64(xml)), "saml_replay")
    database = os.path.join(net.north.folder, "var", "circnode.sqlite3")
    with sqlite3.connect(database) as db:
        db.execute("UPDATE saml_request SET state = 'pending' WHERE id = ?", (request_id,))
    refused(post_acs(net, requests.Session(), b64(xml)), "saml_replay")


def test_expired_encrypted_assertion_is_refused(net):
    browser, request_id, _ = start(net)
    refused(post_acs(net, browser, b64(encrypted(net, crafted(net, request_id, lifetime={"minutes": -10})))),
            "saml_expired")


def test_a_second_assertion_beside_the_encrypted_one_is_refused(net):
    browser, request_id, _ = start(net)
    xml = crafted(net, request_id)
    assertion = re.search(r"<(\w+:)?Assertion\b.*?</\1?Assertion>", xml, re.S).group(0)
    response_end = re.search(r"</(\w+:)?Response>", xml).group(0)
    both = encrypted(net, xml).replace(response_end, assertion.replace('ID="', 'ID="x') + response_end)
    answer = post_acs(net, browser, b64(both))
    assert re.search(r'id="refusal-code">saml_(invalid|bad_signature)<', answer.text), answer.text[:500]
    assert me(net, browser).status_code == 401


# --- encrypted NameIDs -----------------------------------------------------------------

def test_encrypted_name_id_is_decrypted(net):
    browser, request_id, _ = start(net)
    signed_in_as(net, browser, post_acs(net, browser, b64(with_encrypted_name_id(net, crafted(net, request_id)))),
                 "south-1")


def test_encrypted_name_id_inside_an_encrypted_assertion_is_decrypted(net):
    browser, request_id, _ = start(net)
    xml = encrypted(net, with_encrypted_name_id(net, crafted(net, request_id)))
    signed_in_as(net, browser, post_acs(net, browser, b64(xml)), "south-1")


def test_name_id_encrypted_for_another_key_is_refused_by_name(net):
    browser, request_id, _ = start(net)
    xml = with_encrypted_name_id(net, crafted(net, request_id), cert=rogue_cert(net))
    refused(post_acs(net, browser, b64(xml)), "saml_encrypted_for_another_key")


# --- point 3: SHA-1 --------------------------------------------------------------------

def test_response_signed_with_rsa_sha1_is_refused(net):
    from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

    from node.demo.idp import entity_id, load_settings, make_server
    browser, request_id, _ = start(net)
    settings = load_settings(net.south.idp_config)
    north = net.north.url
    response = make_server(settings).create_authn_response(
        {"uid": ["south-1"]}, userid="south-1", sign_assertion=True, sign_response=True,
        sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1, in_response_to=request_id,
        destination=north + "/saml/acs", sp_entity_id=north + "/saml/metadata", name_id_policy=None,
        binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
        authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
               "authn_auth": entity_id(settings)})
    assert "xmldsig#rsa-sha1" in str(response)
    refused(post_acs(net, browser, b64(str(response))), "saml_weak_algorithm")
    assert me(net, browser).status_code == 401


# --- point 4: rollover while the node runs (last: it changes NORTH's keys) --------------

def test_rollover_decrypts_for_old_and_new_keys_then_only_the_new(net):
    old = north_cert(net)
    ok(circnode("--config", net.north.config, "saml", "rollover", "start"))
    new = north_cert(net, stage="next")
    published = requests.get(net.north.url + "/saml/metadata").text
    assert old in published and new in published
    for cert, user in ((old, "south-1"), (new, "south-2")):
        browser, request_id, _ = start(net)
        xml = encrypted(net, crafted(net, request_id, user=user), cert=cert)
        signed_in_as(net, browser, post_acs(net, browser, b64(xml)), user)
    ok(circnode("--config", net.north.config, "saml", "rollover", "finish"))
    published = requests.get(net.north.url + "/saml/metadata").text
    assert old not in published and new in published
    browser, request_id, _ = start(net)
    refused(post_acs(net, browser, b64(encrypted(net, crafted(net, request_id), cert=old))),
            "saml_encrypted_for_another_key")
    browser, request_id, _ = start(net)
    signed_in_as(net, browser, post_acs(net, browser, b64(encrypted(net, crafted(net, request_id), cert=new))),
                 "south-1")
