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

Two tests start NORTH nodes of their own: a key rollover (``circnode saml
rollover``) on a running node, and nodes that know the IdPs only from a
federation's signed metadata aggregate (a second SimpleSAMLphp is EAST's IdP
there).  php starts once per module; the file runs in about 15 s.
"""
import base64
import datetime
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import requests

from node.demo.network import make_network, start_node, wait_healthy
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


def make_north(base, peers, extra_config=""):
    """NORTH's node (SOUTH and EAST are peers that never run): PEERS adds lines to [peer:CODE] sections;
    ``circnode init`` made its keys.  Returns its NodeInfo."""
    nodes = [("NORTH", "North University"), ("SOUTH", "South College"), ("EAST", "East Institute")]
    infos = {info.code: info for info in make_network(
        str(base), nodes=nodes, items=3, patrons=2, ports=[free_port() for _ in nodes], extra_config=extra_config)}
    north = infos["NORTH"]
    for code, lines in peers.items():
        _add_to_section(north.config, f"peer:{code}", lines)
    init = subprocess.run([sys.executable, "-m", "node.cli", "--config", north.config, "init"],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, f"circnode init refused NORTH's node.ini: {init.stdout} {init.stderr}"
    return north


def start_nodes(*norths):
    """Start the nodes (at once); their processes, once every one answers."""
    processes = [start_node(north) for north in norths]
    try:
        for north, process in zip(norths, processes):
            wait_healthy(north, timeout=60, process=process)
    except BaseException:
        stop_nodes(processes)
        raise
    return processes


def stop_nodes(processes):
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=15)


def sp_metadata(north):
    answer = requests.get(north.url + "/saml/metadata", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ssp.require()
    base = tmp_path_factory.mktemp("simplesamlphp")
    idp = ssp.SimpleSamlPhpIdp(base / "idp", free_port(), USERS, organization="Test University")
    # Both institutions sign in at the same SimpleSAMLphp, known by its metadata URL; they differ in
    # how NORTH names the patron id attribute.
    north = make_north(base / "nodes", {
        "SOUTH": [f"idp_metadata = {idp.metadata_url}", "patron_id_attribute = uid"],
        "EAST": [f"idp_metadata = {idp.metadata_url}", f"patron_id_attribute = {UID_OID}"]})
    idp.start()
    try:
        processes = start_nodes(north)
        try:
            yield SimpleNamespace(north=north, idp=idp, sp_metadata=sp_metadata(north), tmp=base)
        finally:
            stop_nodes(processes)
    finally:
        idp.stop()


# --- a browser's part, done with requests ---------------------------------

def sign_in(net, institution="SOUTH", user="ada", **idp_options):
    """Register NORTH at SimpleSAMLphp with IDP_OPTIONS, then sign in there as USER.

    Returns (browser, the decoded SAMLResponse XML, NORTH's answer to the POST to its ACS).
    """
    net.idp.register_sp(net.sp_metadata, **idp_options)
    return sign_in_at(net.north, net.idp, institution, user)


def sign_in_at(north, idp, institution, user="ada"):
    """A fresh browser asks NORTH to sign in at INSTITUTION, signs in at IDP as USER, and posts the answer."""
    browser = requests.Session()
    answer = browser.get(north.url + f"/patron/login?institution={institution}", allow_redirects=False)
    assert answer.status_code == 303, _refusal(answer)
    assert answer.headers["Location"].startswith(idp.url + "/saml2/idp/SSOService.php?")
    action, fields = idp.sign_in(browser, answer.headers["Location"], user)
    assert action == north.url + "/saml/acs"
    acs = browser.post(action, data=fields, allow_redirects=False)
    return browser, base64.b64decode(fields["SAMLResponse"]).decode(), acs


def me(north, browser):
    return browser.get(north.url + "/api/v1/me")


def signed_in(north, browser, acs):
    """The identity NORTH took from the answer, once the browser is back (fails with NORTH's refusal)."""
    assert acs.status_code == 303, f"NORTH refused the sign-in: {_refusal(acs)}"
    page = browser.get(north.url + acs.headers["Location"])
    assert page.status_code == 200, page.text[:500]
    answer = me(north, browser)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _refusal(answer):
    code = re.search(r'id="refusal-code">([^<]+)<', answer.text)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", answer.text))
    return f"{answer.status_code} {code.group(1) if code else '(no code)'}: {text[:600]}"


def refused(north, browser, answer, code):
    """ANSWER is NORTH's refusal CODE, and nobody is signed in; the refusal page's text."""
    assert answer.status_code in (400, 403), _refusal(answer)
    found = re.search(r'id="refusal-code">([^<]+)<', answer.text)
    assert found and found.group(1) == code, _refusal(answer)
    assert me(north, browser).status_code == 401
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
    assert identity(signed_in(net.north, browser, acs)) == ADA_AT_SOUTH


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
    assert identity(signed_in(net.north, browser, acs)) == expected


# --- point 4: metadata SimpleSAMLphp can act on -------------------------------

def test_simplesamlphp_releases_what_the_metadata_requests_without_a_hand_written_list(net):
    parsed = net.idp.parse_sp_metadata(net.sp_metadata)
    requested = parsed.get("attributes", [])
    assert set(requested) & {"uid", UID_OID}, f"the metadata must request the patron id attribute: {parsed}"
    # SOUTH and EAST name the same attribute two ways: it is requested once.
    assert len(requested) == len(set(requested)), f"an attribute is requested twice: {requested}"
    assert any(key.get("encryption") for key in parsed.get("keys", [])), "the metadata must carry an encryption key"
    browser, xml, acs = sign_in(net, release=None)
    assert "telephoneNumber" not in xml and "eduPersonAffiliation" not in xml
    assert identity(signed_in(net.north, browser, acs)) == ADA_AT_SOUTH


# --- point 1: encryption ----------------------------------------------------

def test_encrypted_assertion_signs_in(net):
    browser, xml, acs = sign_in(net, encrypt_assertion=True)
    assert "EncryptedAssertion" in xml and "<saml:Assertion" not in xml and "ssp-1" not in xml
    assert identity(signed_in(net.north, browser, acs)) == ADA_AT_SOUTH


def test_encrypted_nameid_signs_in(net):
    browser, xml, acs = sign_in(net, encrypt_nameid=True)
    assert "<saml:EncryptedID" in xml and "<saml:NameID" not in xml
    assert identity(signed_in(net.north, browser, acs)) == ADA_AT_SOUTH


def test_encrypted_assertion_and_nameid_with_oid_names_sign_in(net):
    # Shibboleth IdP's defaults, as near as SimpleSAMLphp comes: everything encrypted, OID names.
    browser, xml, acs = sign_in(net, "EAST", uri_names=True, encrypt_assertion=True, encrypt_nameid=True)
    assert "EncryptedAssertion" in xml
    assert identity(signed_in(net.north, browser, acs)) == ADA_AT_EAST


def test_encrypted_assertion_that_is_not_itself_signed_is_refused(net):
    # Decryption does not stand in for the assertion's own signature (only the Response is signed here).
    browser, xml, acs = sign_in(net, encrypt_assertion=True, sign_assertion=False)
    assert "EncryptedAssertion" in xml and "<ds:Signature" in xml
    refused(net.north, browser, acs, "saml_unsigned")


def test_assertion_encrypted_for_another_key_is_refused_naming_encryption(net):
    from node.identity.saml_sp import make_self_signed
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
    text = refused(net.north, browser, acs, code.group(1))
    assert "encrypt" in text.lower(), f"the refusal must name encryption as the cause: {_refusal(acs)}"


# --- point 3: algorithms ------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                                       "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"],
                         ids=["rsa-sha256", "rsa-sha512"])
def test_sha2_signed_response_signs_in(net, algorithm):
    browser, xml, acs = sign_in(net, signature_algorithm=algorithm)
    assert f'Algorithm="{algorithm}"' in xml
    assert identity(signed_in(net.north, browser, acs)) == ADA_AT_SOUTH


def test_sha1_signed_response_is_refused_by_default(net):
    browser, xml, acs = sign_in(net, signature_algorithm=ssp.RSA_SHA1)
    assert f'Algorithm="{ssp.RSA_SHA1}"' in xml and "xmldsig#sha1" in xml  # SHA-1 signature and digest
    refused(net.north, browser, acs, WEAK_ALGORITHM)



# --- point 4: key rollover, as an IdP sees it ----------------------------------

def _keys(idp, metadata, use):
    """The certificates (base64) SimpleSAMLphp takes from METADATA for USE (signing or encryption)."""
    return [key["X509Certificate"] for key in idp.parse_sp_metadata(metadata).get("keys", []) if key.get(use)]


def test_key_rollover_keeps_patrons_signing_in_through_simplesamlphp_at_every_step(net, tmp_path_factory):
    north = make_north(tmp_path_factory.mktemp("rollover"), {"SOUTH": [f"idp_metadata = {net.idp.metadata_url}"]})
    processes = start_nodes(north)

    def signs_in(metadata, when):
        net.idp.register_sp(metadata, encrypt_assertion=True)
        browser, xml, acs = sign_in_at(north, net.idp, "SOUTH")
        assert "EncryptedAssertion" in xml
        assert acs.status_code == 303, f"{when}: {_refusal(acs)}"
        assert identity(signed_in(north, browser, acs)) == ADA_AT_SOUTH

    def circnode(*args):
        done = subprocess.run([sys.executable, "-m", "node.cli", "--config", north.config, *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"circnode {' '.join(args)}: {done.stdout} {done.stderr}"

    try:
        before = sp_metadata(north)
        signs_in(before, "before the rollover")
        circnode("saml", "rollover", "start")  # the node keeps running: no sign-in outage
        during = sp_metadata(north)
        for use in ("signing", "encryption"):
            assert set(_keys(net.idp, before, use)) < set(_keys(net.idp, during, use)), use
        signs_in(before, "during the rollover, at an IdP that still holds the old metadata")
        signs_in(during, "during the rollover, at an IdP that took the metadata with both keys")
        circnode("saml", "rollover", "finish")
        after = sp_metadata(north)
        for use in ("signing", "encryption"):
            assert not set(_keys(net.idp, before, use)) & set(_keys(net.idp, after, use)), use
        # The point of publishing both: an IdP that took the metadata during the rollover keeps working
        # after it. SimpleSAMLphp encrypts for the first encryption certificate it finds there.
        signs_in(during, "after the rollover, at an IdP that took the metadata during it")
        signs_in(after, "after the rollover, at an IdP that took the new metadata")
    finally:
        stop_nodes(processes)


# --- point 5: a federation's signed aggregate ------------------------------------

@pytest.fixture(scope="module")
def federation(net, tmp_path_factory):
    """Two more NORTH nodes that know SOUTH's and EAST's IdPs only from a federation's aggregate.

    SOUTH's IdP is the module's SimpleSAMLphp, EAST's a second one.  ``good``
    reads the aggregate as the federation signed it; ``tampered`` reads a copy
    in which SOUTH's IdP certificate was swapped for an attacker's after signing.
    """
    from node.identity.saml_sp import make_self_signed
    base = tmp_path_factory.mktemp("federation")
    east_idp = ssp.SimpleSamlPhpIdp(base / "idp-east", free_port(), USERS, organization="East Institute")
    keys = {name: (str(base / f"{name}.key"), str(base / f"{name}.crt")) for name in ("federation", "attacker")}
    for name, (key, cert) in keys.items():
        make_self_signed(key, cert, f"{name} of the test federation")
    east_idp.start()
    processes = []
    try:
        entities = [requests.get(idp.metadata_url, timeout=10).text for idp in (net.idp, east_idp)]
        valid_until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=7)
        good = ssp.signed_aggregate(str(base / "aggregate.xml"), entities, *keys["federation"], valid_until)
        with open(good) as handle:
            text = handle.read()
        south_cert = _certificate_body(net.idp.certificate_pem())
        assert text.count(south_cert) >= 1
        with open(keys["attacker"][1]) as handle:
            tampered_text = text.replace(south_cert, _certificate_body(handle.read()))
        tampered = str(base / "aggregate-tampered.xml")
        with open(tampered, "w") as handle:
            handle.write(tampered_text)
        assert not ssp.aggregate_verifies(tampered, keys["federation"][1])
        norths = {}
        for name, aggregate in (("good", good), ("tampered", tampered)):
            norths[name] = make_north(base / name, {
                "SOUTH": [f"idp_entity_id = {net.idp.entity_id}"],
                "EAST": [f"idp_entity_id = {east_idp.entity_id}"],
            }, extra_config=f"\n[saml]\nfederation_metadata = {aggregate}\n"
                            f"federation_signer = {keys['federation'][1]}\n")
        processes = start_nodes(*norths.values())
        # A node may read the aggregate in the background after it starts: once the good one can
        # send patrons to SOUTH's IdP, the tampered one (started with it) has had its chance too.
        _wait_until_sign_in_ready(norths["good"], "SOUTH")
        metadata = sp_metadata(norths["good"])
        for idp in (net.idp, east_idp):
            idp.register_sp(metadata)
        yield SimpleNamespace(idps={"SOUTH": net.idp, "EAST": east_idp}, **norths)
    finally:
        stop_nodes(processes)
        east_idp.stop()


def _wait_until_sign_in_ready(north, institution, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(north.url + f"/patron/login?institution={institution}", allow_redirects=False)
        if answer.status_code == 303 or time.monotonic() > deadline:
            assert answer.status_code == 303, f"sign-in at {institution} never became ready: {_refusal(answer)}"
            return
        time.sleep(0.2)


def _certificate_body(pem):
    return "".join(line.strip() for line in pem.strip().splitlines() if "-----" not in line)


@pytest.mark.parametrize("institution, user, expected", [
    ("SOUTH", "ada", ADA_AT_SOUTH),
    ("EAST", "bob", {"institution": "EAST", "id": "ssp-2", "name": "Bob Patron", "email": "bob@idp.example",
                     "via": "saml"}),
], ids=["SOUTH", "EAST"])
def test_patrons_sign_in_at_each_institutions_idp_found_in_the_federation_aggregate(federation, institution, user,
                                                                                      expected):
    browser, xml, acs = sign_in_at(federation.good, federation.idps[institution], institution, user)
    assert federation.idps[institution].entity_id in xml
    assert identity(signed_in(federation.good, browser, acs)) == expected


@pytest.mark.parametrize("institution", ["SOUTH", "EAST"])
def test_tampered_federation_aggregate_is_refused(federation, institution):
    # The node never held a good copy, so nobody signs in through it: not at SOUTH, whose IdP
    # certificate the attacker swapped, nor at EAST, whose entry is untouched but came in the same document.
    browser = requests.Session()
    answer = browser.get(federation.tampered.url + f"/patron/login?institution={institution}",
                         allow_redirects=False)
    assert answer.status_code == 503, _refusal(answer)
    assert re.search(r'id="refusal-code">sign_in_unavailable<', answer.text), _refusal(answer)
    assert me(federation.tampered, browser).status_code == 401
