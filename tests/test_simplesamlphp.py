"""Patron sign-in against SimpleSAMLphp 1.19, the IdP many universities run (issue 16, point 6).

NORTH runs as a ``circnode run`` process; a real SimpleSAMLphp (Debian's
package, ``php -S`` on loopback, tests/simplesamlphp.py) is the identity
provider of SOUTH and of EAST, registered in NORTH's node.ini by its metadata
URL.  SOUTH's patron id attribute is ``uid``, EAST's the same attribute by
its OID name.  NORTH's ``/saml/metadata`` is registered at SimpleSAMLphp the
way a university's admin does it; each test sets the admin's options it is
about (attribute name format, encryption, signature algorithm) and drives a
whole sign-in with ``requests``: circnode's redirect, SimpleSAMLphp's login
form, its auto-submitting form back to NORTH's assertion consumer.
"""
import base64
import os
import re
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest
import requests

from node.demo import make_network, start_node, wait_healthy
from tests import simplesamlphp as ssp
from tests.network import free_port

UID_OID = ssp.OID["uid"]
WEAK_ALGORITHM = "saml_weak_algorithm"  # [saml] allow_sha1 = no (the default) refuses SHA-1 and MD5
# Why an encrypted assertion cannot be read, named plainly: SimpleSAMLphp does not say which key
# it encrypted for, so NORTH may only find out that none of its keys decrypts it.
CANNOT_DECRYPT = {"saml_encrypted_for_another_key", "saml_cannot_decrypt"}
# telephoneNumber is never released to a library: it shows that the release list applies.
USERS = {name: {"uid": [uid], "displayName": [display], "mail": [f"{name}@idp.example"],
                "telephoneNumber": ["+41 00 000 00 00"], "eduPersonAffiliation": ["member", "student"]}
         for name, uid, display in (("ada", "ssp-1", "Ada Patron"), ("bob", "ssp-2", "Bob Patron"))}


def _add_to_section(ini, section, lines):
    with open(ini) as handle:
        text = handle.read()
    header = f"[{section}]\n"
    assert header in text, (section, text)
    with open(ini, "w") as handle:
        handle.write(text.replace(header, header + "".join(line + "\n" for line in lines), 1))


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ssp.require()
    base = tmp_path_factory.mktemp("simplesamlphp")
    idp = ssp.SimpleSamlPhpIdp(base / "idp", free_port(), USERS, organization="Test University")
    nodes = [("NORTH", "North University"), ("SOUTH", "South College"), ("EAST", "East Institute")]
    infos = {info.code: info for info in make_network(
        str(base), nodes=nodes, items=3, patrons=2, ports=[free_port() for _ in nodes])}
    north = infos["NORTH"]
    # Both institutions sign in at the same SimpleSAMLphp, known by its metadata URL; they differ in
    # how NORTH names the patron id attribute.
    _add_to_section(north.config, "peer:SOUTH", [f"idp_metadata = {idp.metadata_url}", "patron_id_attribute = uid"])
    _add_to_section(north.config, "peer:EAST", [f"idp_metadata = {idp.metadata_url}",
                                                f"patron_id_attribute = {UID_OID}"])
    init = subprocess.run([sys.executable, "-m", "node.cli", "--config", north.config, "init"],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    idp.start()
    process = start_node(north)
    try:
        wait_healthy(north, timeout=60, process=process)
        metadata = requests.get(north.url + "/saml/metadata", timeout=10)
        assert metadata.status_code == 200, metadata.text
        yield SimpleNamespace(north=north, idp=idp, sp_metadata=metadata.text, tmp=base)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        idp.stop()


# --- a browser's part, done with requests ---------------------------------

def sign_in(net, institution="SOUTH", user="ada", **idp_options):
    """Register NORTH at SimpleSAMLphp with IDP_OPTIONS, then sign in there as USER.

    Returns (browser, the decoded SAMLResponse XML, NORTH's answer to the POST to its ACS).
    """
    net.idp.register_sp(net.sp_metadata, **idp_options)
    browser = requests.Session()
    answer = browser.get(net.north.url + f"/patron/login?institution={institution}", allow_redirects=False)
    assert answer.status_code == 303, answer.text[:500]
    assert answer.headers["Location"].startswith(net.idp.url + "/saml2/idp/SSOService.php?")
    action, fields = net.idp.sign_in(browser, answer.headers["Location"], user)
    assert action == net.north.url + "/saml/acs"
    acs = browser.post(action, data=fields, allow_redirects=False)
    return browser, base64.b64decode(fields["SAMLResponse"]).decode(), acs


def me(net, browser):
    return browser.get(net.north.url + "/api/v1/me")


def signed_in(net, browser, acs):
    """The identity NORTH took from the answer, once the browser is back (fails with NORTH's refusal)."""
    assert acs.status_code == 303, f"NORTH refused the sign-in: {_refusal(acs)}"
    page = browser.get(net.north.url + acs.headers["Location"])
    assert page.status_code == 200, page.text[:500]
    answer = me(net, browser)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _refusal(answer):
    code = re.search(r'id="refusal-code">([^<]+)<', answer.text)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.text))
    return f"{answer.status_code} {code.group(1) if code else '(no code)'}: {text[:600]}"


def refused(net, browser, answer, code):
    """ANSWER is NORTH's refusal CODE, and nobody is signed in; the refusal page's text."""
    assert answer.status_code in (400, 403), _refusal(answer)
    found = re.search(r'id="refusal-code">([^<]+)<', answer.text)
    assert found and found.group(1) == code, _refusal(answer)
    assert me(net, browser).status_code == 401
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.text))


def identity(found):
    return {key: found[key] for key in ("institution", "id", "name", "email", "via")}


ADA_AT_SOUTH = {"institution": "SOUTH", "id": "ssp-1", "name": "Ada Patron", "email": "ada@idp.example", "via": "saml"}
ADA_AT_EAST = {**ADA_AT_SOUTH, "institution": "EAST"}


# --- what works with SimpleSAMLphp as installed ------------------------------

def test_patron_signs_in_with_simplesamlphps_default_settings(net):
    browser, xml, acs = sign_in(net)
    assert "<saml:Assertion" in xml and "EncryptedAssertion" not in xml
    assert "rsa-sha256" in xml  # SimpleSAMLphp's default signature algorithm
    assert "telephoneNumber" not in xml and "eduPersonAffiliation" not in xml  # only the release list
    assert identity(signed_in(net, browser, acs)) == ADA_AT_SOUTH


# --- point 2: attribute names by OID -----------------------------------------

@pytest.mark.parametrize("institution, uri_names, expected", [
    ("SOUTH", True, ADA_AT_SOUTH),  # patron_id_attribute = uid, the IdP sends urn:oid: names
    ("EAST", True, ADA_AT_EAST),  # patron_id_attribute = urn:oid:..., the IdP sends urn:oid: names
    ("EAST", False, ADA_AT_EAST),  # patron_id_attribute = urn:oid:..., the IdP sends plain names
], ids=["uid-config-oid-names", "oid-config-oid-names", "oid-config-plain-names"])
def test_patron_id_attribute_by_friendly_or_oid_name_gives_the_same_patron(net, institution, uri_names, expected):
    browser, xml, acs = sign_in(net, institution, uri_names=uri_names)
    if uri_names:
        assert f'Name="{UID_OID}"' in xml and f'NameFormat="{ssp.URI_FORMAT}"' in xml
    else:
        assert 'Name="uid"' in xml
    assert identity(signed_in(net, browser, acs)) == expected


# --- point 4: metadata SimpleSAMLphp can act on -------------------------------

def test_simplesamlphp_releases_what_the_metadata_requests_without_a_hand_written_list(net):
    parsed = net.idp.parse_sp_metadata(net.sp_metadata)
    requested = parsed.get("attributes", [])
    assert set(requested) & {"uid", UID_OID}, f"the metadata must request the patron id attribute: {parsed}"
    assert any(key.get("encryption") for key in parsed.get("keys", [])), "the metadata must carry an encryption key"
    browser, xml, acs = sign_in(net, release=None)
    assert "telephoneNumber" not in xml and "eduPersonAffiliation" not in xml
    assert identity(signed_in(net, browser, acs)) == ADA_AT_SOUTH


# --- point 1: encryption ----------------------------------------------------

def test_encrypted_assertion_signs_in(net):
    browser, xml, acs = sign_in(net, encrypt_assertion=True)
    assert "EncryptedAssertion" in xml and "<saml:Assertion" not in xml and "ssp-1" not in xml
    assert identity(signed_in(net, browser, acs)) == ADA_AT_SOUTH


def test_encrypted_nameid_signs_in(net):
    browser, xml, acs = sign_in(net, encrypt_nameid=True)
    assert "<saml:EncryptedID" in xml and "<saml:NameID" not in xml
    assert identity(signed_in(net, browser, acs)) == ADA_AT_SOUTH


def test_encrypted_assertion_and_nameid_with_oid_names_sign_in(net):
    # Shibboleth IdP's defaults, as near as SimpleSAMLphp comes: everything encrypted, OID names.
    browser, xml, acs = sign_in(net, "EAST", uri_names=True, encrypt_assertion=True, encrypt_nameid=True)
    assert "EncryptedAssertion" in xml
    assert identity(signed_in(net, browser, acs)) == ADA_AT_EAST


def test_encrypted_assertion_that_is_not_itself_signed_is_refused(net):
    # Decryption does not stand in for the assertion's own signature (only the Response is signed here).
    browser, xml, acs = sign_in(net, encrypt_assertion=True, sign_assertion=False)
    assert "EncryptedAssertion" in xml and "<ds:Signature" in xml
    refused(net, browser, acs, "saml_unsigned")


def test_assertion_encrypted_for_another_key_is_refused_naming_encryption(net):
    from node.saml_sp import make_self_signed
    key, cert = str(net.tmp / "other-enc.key"), str(net.tmp / "other-enc.crt")
    if not os.path.exists(cert):
        make_self_signed(key, cert, "not NORTH")
    with open(cert) as handle:
        other = handle.read()
    browser, xml, acs = sign_in(net, encrypt_assertion=True, encryption_certificate=other)
    assert "EncryptedAssertion" in xml
    assert acs.status_code == 403, _refusal(acs)
    code = re.search(r'id="refusal-code">([^<]+)<', acs.text)
    assert code and code.group(1) in CANNOT_DECRYPT, _refusal(acs)
    text = refused(net, browser, acs, code.group(1))
    assert "encrypt" in text.lower(), f"the refusal must name encryption as the cause: {_refusal(acs)}"


# --- point 3: algorithms ------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                                       "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"],
                         ids=["rsa-sha256", "rsa-sha512"])
def test_sha2_signed_response_signs_in(net, algorithm):
    browser, xml, acs = sign_in(net, signature_algorithm=algorithm)
    assert f'Algorithm="{algorithm}"' in xml
    assert identity(signed_in(net, browser, acs)) == ADA_AT_SOUTH


def test_sha1_signed_response_is_refused_by_default(net):
    browser, xml, acs = sign_in(net, signature_algorithm=ssp.RSA_SHA1)
    assert f'Algorithm="{ssp.RSA_SHA1}"' in xml and "xmldsig#sha1" in xml  # SHA-1 signature and digest
    refused(net, browser, acs, WEAK_ALGORITHM)

