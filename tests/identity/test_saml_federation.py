"""A federation's signed metadata aggregate (issue 16, point 5): verified, kept, refreshed, and each
institution's IdP taken from it.

The federation is a key made here and a web server on loopback serving an
aggregate signed with it by xmlsec1 (tests/simplesamlphp.py's
``signed_aggregate``: RSA-SHA256, enveloped, as federations sign); it holds
the demo IdPs (node/demo/idp.py) of SOUTH and EAST.  NORTH's node.ini names those
IdPs only by ``idp_entity_id``.  The first tests call node/identity/saml_federation.py
as of a time they pass in; the last ones run NORTH as ``circnode run`` with
both IdPs and sign patrons in through it, then make the federation drop EAST,
send an altered aggregate and go offline, while the admin page and the CLI
say what happened.
"""
import datetime
import html
import os
import pathlib
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import requests

from node import config
from node.identity import saml_federation
from node.domain import errors
from node.demo.network import DEMO_NODES, DEMO_PASSWORD
from node.demo.idp import DEMO_PATRON_PASSWORD
from node.identity.saml_sp import make_self_signed
from tests.network import Network
from tests.simplesamlphp import signed_aggregate

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC)


class FederationServer:
    """The federation's web server on loopback: serves ``body``, or answers ``status`` (an outage)."""

    def __init__(self):
        server = self
        self.body, self.status = b"", 200

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(server.status)
                body = server.body if server.status == 200 else b"down for maintenance"
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/federation-metadata.xml"

    def serve(self, body, status=200):
        self.body, self.status = body, status

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _entity_id(metadata_path):
    with open(metadata_path, encoding="utf-8") as handle:
        return re.search(r'entityID="([^"]+)"', handle.read()).group(1)


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    """NORTH (not yet running) knows SOUTH's and EAST's IdPs only from the federation's aggregate."""
    base = tmp_path_factory.mktemp("federation")
    keys = {name: (str(base / f"{name}.key"), str(base / f"{name}.crt")) for name in ("federation", "attacker")}
    for name, (key, cert) in keys.items():
        make_self_signed(key, cert, f"{name} of the test federation")
    server = FederationServer()
    net = Network(base / "net", nodes=DEMO_NODES, items=5, patrons=3, idps=True,
                  extra_config=f"\n[saml]\nfederation_metadata = {server.url}\n"
                               f"federation_signer = {keys['federation'][1]}\n")
    north = net.info("NORTH")
    idps = {code: net.info(code).idp_metadata for code in ("SOUTH", "EAST")}
    entity_ids = {code: _entity_id(path) for code, path in idps.items()}
    with open(north.config, encoding="utf-8") as handle:
        text = handle.read()
    for code, path in idps.items():  # from per-institution metadata files to the federation's entity ids
        assert f"idp_metadata = {path}\n" in text
        text = text.replace(f"idp_metadata = {path}\n", f"idp_entity_id = {entity_ids[code]}\n")
    with open(north.config, "w", encoding="utf-8") as handle:
        handle.write(text)

    def aggregate(codes=("SOUTH", "EAST"), key="federation", valid_until=None, name="good"):
        entities = []
        for code in codes:
            with open(idps[code], encoding="utf-8") as handle:
                entities.append(handle.read())
        path = signed_aggregate(str(base / f"{name}.xml"), entities, keys[key][0], keys[key][1],
                                valid_until or NOW + datetime.timedelta(days=7))
        with open(path, "rb") as handle:
            return handle.read()

    try:
        yield SimpleNamespace(net=net, north=north, server=server, keys=keys, entity_ids=entity_ids,
                              aggregate=aggregate, base=base)
    finally:
        net.stop_all()
        server.close()


@pytest.fixture
def cfg(fed):
    """NORTH's config with an empty federation folder (each test starts with no good copy)."""
    cfg = config.load(fed.north.config)
    folder = saml_federation.folder(cfg)
    for name in (os.listdir(folder) if os.path.isdir(folder) else []):
        os.remove(os.path.join(folder, name))
    return cfg


def refused(cfg, code, now=NOW):
    with pytest.raises(errors.FederationRefused) as refusal:
        saml_federation.refresh(cfg, now)
    assert refusal.value.code == code, refusal.value.message
    return refusal.value


# --- verification -------------------------------------------------------------

def test_aggregate_signed_by_the_federation_is_taken_with_each_institutions_idp(fed, cfg):
    fed.server.serve(fed.aggregate())
    aggregate = saml_federation.refresh(cfg, NOW)
    assert aggregate.idps == set(fed.entity_ids.values())
    for code, entity_id in fed.entity_ids.items():
        text, version = saml_federation.idp_metadata(cfg, saml_federation.Source(entity_id), code, NOW)
        # A standalone document of that one IdP, with the namespaces it inherited from the aggregate.
        assert text.startswith("<") and text.count("EntityDescriptor ") == 1 and entity_id in text
        assert 'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"' in text or "xmlns=" in text
        assert version == aggregate.sha256
    status = saml_federation.status(cfg, NOW)
    assert status["last_error"] is None and status["copy"]["identity_providers"] == 2
    assert [row["state"] for row in status["institutions"]] == ["ok", "ok"]


def test_aggregate_altered_after_signing_is_refused(fed, cfg):
    good = fed.aggregate().decode()
    with open(fed.keys["attacker"][1]) as handle:
        attacker = "".join(line for line in handle.read().splitlines() if "-----" not in line)
    south_cert = re.search(r"<ds:X509Certificate>([^<]+)</ds:X509Certificate>",
                           good.split(fed.entity_ids["SOUTH"], 1)[1]).group(1)
    fed.server.serve(good.replace(south_cert, attacker).encode())
    refused(cfg, "federation_bad_signature")
    assert not os.path.exists(os.path.join(saml_federation.folder(cfg), saml_federation.GOOD_COPY))


def test_aggregate_signed_with_another_key_than_the_federations_is_refused(fed, cfg):
    # The attacker's own certificate travels in the signature's KeyInfo: it must not be used.
    body = fed.aggregate(key="attacker", name="attacker")
    with open(fed.keys["attacker"][1]) as handle:
        assert "".join(line for line in handle.read().splitlines() if "-----" not in line)[:60] in body.decode()
    fed.server.serve(body)
    refused(cfg, "federation_bad_signature")


def test_unsigned_aggregate_is_refused(fed, cfg):
    body = re.sub(rb"<ds:Signature>.*?</ds:Signature>", b"", fed.aggregate(), flags=re.S)
    fed.server.serve(body)
    refused(cfg, "federation_unsigned")


def test_aggregate_past_its_valid_until_is_refused(fed, cfg):
    fed.server.serve(fed.aggregate(valid_until=NOW - datetime.timedelta(hours=1), name="old"))
    assert "has passed" in refused(cfg, "federation_expired").message


def test_aggregate_without_valid_until_is_refused(fed, cfg):
    body = fed.aggregate().decode()
    without_time = re.sub(r' validUntil="[^"]+"', "", body)
    # Removing it breaks the signature; a federation that signs without one is refused all the same.
    fed.server.serve(without_time.encode())
    refused(cfg, "federation_bad_signature")
    template_path = fed.base / "no-valid-until.xml"
    from tests import simplesamlphp
    original = simplesamlphp.AGGREGATE_TEMPLATE
    simplesamlphp.AGGREGATE_TEMPLATE = original.replace(' validUntil="{valid_until}"', "")
    try:
        entities = [pathlib.Path(fed.net.info(code).idp_metadata).read_text(encoding="utf-8")
                    for code in ("SOUTH", "EAST")]
        simplesamlphp.signed_aggregate(str(template_path), entities, *fed.keys["federation"], NOW)
    finally:
        simplesamlphp.AGGREGATE_TEMPLATE = original
    fed.server.serve(template_path.read_bytes())
    refused(cfg, "federation_no_valid_until")


def test_a_document_with_a_dtd_is_refused_before_any_signature_check(fed, cfg):
    fed.server.serve(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
                     b'<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">&a;'
                     b'</md:EntitiesDescriptor>')
    refused(cfg, "federation_invalid")


# --- the last good copy -----------------------------------------------------------

def test_a_refused_or_unreachable_aggregate_keeps_the_last_good_copy_and_says_so(fed, cfg):
    fed.server.serve(fed.aggregate())
    good = saml_federation.refresh(cfg, NOW)
    later = NOW + datetime.timedelta(hours=6)
    fed.server.serve(b"", status=503)
    refused(cfg, "federation_unreachable", later)
    status = saml_federation.status(cfg, later)
    assert status["keeping_last_good_copy"] and status["last_error"]["code"] == "federation_unreachable"
    assert status["copy"]["sha256"] == good.sha256 and status["last_success_at"] == NOW.isoformat(timespec="seconds")
    source = saml_federation.Source(fed.entity_ids["EAST"])
    assert saml_federation.idp_metadata(cfg, source, "East", later)[1] == good.sha256
    # Past the copy's own validUntil it is not used any more, whatever the federation's server does.
    after = NOW + datetime.timedelta(days=8)
    with pytest.raises(errors.SignInUnavailable) as unavailable:
        saml_federation.idp_metadata(cfg, source, "East", after, fetch=False)
    assert unavailable.value.code == "sign_in_unavailable" and "expired" in unavailable.value.message
    assert saml_federation.status(cfg, after)["institutions"][0]["state"] == "sign_in_unavailable"


def test_a_peer_whose_idp_vanished_from_the_aggregate_is_told_why(fed, cfg):
    fed.server.serve(fed.aggregate(codes=("SOUTH",), name="south-only"))
    saml_federation.refresh(cfg, NOW)
    with pytest.raises(errors.SamlIdpNotInFederation) as gone:
        saml_federation.idp_metadata(cfg, saml_federation.Source(fed.entity_ids["EAST"]), "East Institute", NOW)
    assert gone.value.code == "saml_idp_not_in_federation" and gone.value.status == 503
    assert "East Institute" in gone.value.message and fed.entity_ids["EAST"] in gone.value.message
    states = {row["institution"]: row["state"] for row in saml_federation.status(cfg, NOW)["institutions"]}
    assert states == {"SOUTH": "ok", "EAST": "saml_idp_not_in_federation"}


def cli(fed, *args):
    return subprocess.run([sys.executable, "-m", "node.cli", "--config", fed.north.config, *args],
                          capture_output=True, text=True, timeout=120)


def test_the_stored_copy_is_verified_again_when_a_process_reads_it(fed, cfg):
    fed.server.serve(fed.aggregate())
    saml_federation.refresh(cfg, NOW)
    done = cli(fed, "saml", "federation", "status")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SOUTH: " + fed.entity_ids["SOUTH"] + ": ok" in done.stdout
    path = os.path.join(saml_federation.folder(cfg), saml_federation.GOOD_COPY)
    with open(path, "rb") as handle:
        text = handle.read()
    with open(path, "wb") as handle:  # someone with write access to data_dir edits the copy
        handle.write(text.replace(b'Location="http://127.0.0.1:', b'Location="http://127.0.0.2:', 1))
    done = cli(fed, "saml", "federation", "status")
    assert done.returncode == 1 and "no longer verifies (federation_bad_signature" in done.stdout, done.stdout


# --- configuration ------------------------------------------------------------------

@pytest.mark.parametrize("saml, peer, section, key, expected", [
    ("federation_metadata = https://fed.example/md.xml\nfederation_signer = missing.crt", "", "saml",
     "federation_signer", "cannot read"),
    ("federation_metadata = https://fed.example/md.xml\nfederation_signer = node.ini", "", "saml",
     "federation_signer", "is not a PEM certificate"),
    ("federation_metadata = htps://fed.example/md.xml\nfederation_signer = fed.crt", "", "saml",
     "federation_metadata", "expected an http:// or https:// URL"),
    ("federation_metadata = https://fed.example/md.xml", "", "saml", "federation_signer", "missing"),
    ("", "idp_entity_id = https://idp.south.example/idp", "peer:SOUTH", "idp_entity_id",
     "needs [saml] federation_metadata"),
    ("federation_metadata = md.xml\nfederation_signer = fed.crt",
     "idp_entity_id = https://idp.south.example/idp\nidp_metadata = south.xml", "peer:SOUTH", "idp_entity_id",
     "either idp_metadata or idp_entity_id"),
], ids=["signer-unreadable", "signer-not-a-certificate", "bad-url", "no-signer", "entity-id-without-federation",
        "entity-id-and-metadata"])
def test_bad_federation_settings_stop_the_node_naming_file_section_and_key(fed, tmp_path, saml, peer, section,
                                                                            key, expected):
    with open(fed.keys["federation"][1], "rb") as handle:
        (tmp_path / "fed.crt").write_bytes(handle.read())
    ini = tmp_path / "node.ini"
    ini.write_text("[node]\ninstitution = NORTH\nname = North\nbase_url = http://127.0.0.1:1\n"
                   f"secret_key = {'s' * 32}\n\n[saml]\n{saml}\n\n"
                   f"[peer:SOUTH]\nname = South\nbase_url = http://127.0.0.1:2\n{peer}\n")
    done = subprocess.run([sys.executable, "-m", "node.cli", "--config", str(ini), "saml", "federation", "status"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    line = done.stderr.strip()
    assert line.startswith(f"circnode: {ini}: [{section}] {key}: ") and expected in line, line


# --- a running node ---------------------------------------------------------------------

def desk(fed):
    """A browser signed in at NORTH's desk as the demo admin."""
    browser = requests.Session()
    url = fed.north.direct_url
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(url + "/login").text).group(1)
    answer = browser.post(url + "/login", data={"name": "admin", "password": DEMO_PASSWORD, "csrf_token": token})
    assert answer.status_code == 200 and "Sign out" in answer.text, answer.text[:500]
    return browser


def sign_in(fed, institution, user):
    """A fresh browser signs in at INSTITUTION's demo IdP through NORTH: (browser, NORTH's answer to the ACS)."""
    browser = requests.Session()
    url = fed.north.direct_url
    answer = browser.get(url + f"/patron/login?institution={institution}", allow_redirects=False)
    if answer.status_code != 303:
        return browser, answer
    location = answer.headers["Location"]
    assert location.startswith(fed.net.info(institution).idp_url), location
    form = browser.get(location)
    key = re.search(r'name="key" value="([^"]+)"', form.text).group(1)
    posted = browser.post(location.split("/idp/")[0] + "/idp/login",
                          data={"key": key, "username": user, "password": DEMO_PATRON_PASSWORD})
    response = html.unescape(re.search(r'name="SAMLResponse" value="([^"]+)"', posted.text).group(1))
    acs = browser.post(url + "/saml/acs", data={"SAMLResponse": response}, allow_redirects=False)
    return browser, acs


def signed_in_as(fed, browser, acs):
    assert acs.status_code == 303, acs.text[:800]
    browser.get(fed.north.direct_url + acs.headers["Location"])
    return browser.get(fed.north.direct_url + "/api/v1/me").json()


def refusal_code(answer):
    found = re.search(r'id="refusal-code">([^<]+)<', answer.text)
    return found and found.group(1)


@pytest.fixture(scope="module")
def running(fed):
    """NORTH as ``circnode run`` (its scheduler fetches the aggregate at start), both IdPs running."""
    folder = os.path.join(config.load(fed.north.config).data_dir, saml_federation.FOLDER)
    for name in (os.listdir(folder) if os.path.isdir(folder) else []):
        os.remove(os.path.join(folder, name))
    fed.server.serve(fed.aggregate())
    fed.net.start_idp("SOUTH")
    fed.net.start_idp("EAST")
    fed.net.start("NORTH")
    return fed


def test_patrons_sign_in_at_each_institutions_idp_found_in_the_aggregate(running):
    for institution, user in (("SOUTH", "south-1"), ("EAST", "east-2")):
        browser, acs = sign_in(running, institution, user)
        identity = signed_in_as(running, browser, acs)
        assert (identity["institution"], identity["id"]) == (institution, user)
    page = desk(running).get(running.north.direct_url + "/admin/federation")
    assert page.status_code == 200 and 'id="federation-problem"' not in page.text
    assert page.text.count(">available<") == 2


def test_running_node_follows_the_aggregate_and_keeps_the_last_good_copy_when_refused(running):
    url = running.north.direct_url
    # The federation drops EAST; the admin refreshes by the CLI, the running node takes the copy by itself.
    running.server.serve(running.aggregate(codes=("SOUTH",), name="south-only"))
    done = cli(running, "saml", "federation", "refresh")
    assert done.returncode == 0 and "1 identity providers" in done.stdout, done.stdout + done.stderr
    browser, answer = sign_in(running, "EAST", "east-1")
    assert answer.status_code == 503 and refusal_code(answer) == "saml_idp_not_in_federation", answer.text[:800]
    assert browser.get(url + "/api/v1/me").status_code == 401
    staff = desk(running)
    checkout = staff.get(url + "/checkout").text
    east = re.search(r'data-code="EAST">(.*?)</li>', checkout, re.S).group(1)
    assert 'data-code="saml_idp_not_in_federation"' in east and "Sign in at your library" not in east
    assert "not in the federation" in html.unescape(east)
    south = re.search(r'data-code="SOUTH">(.*?)</li>', checkout, re.S).group(1)
    assert "Sign in at your library" in south
    admin = staff.get(url + "/admin/federation").text
    row = re.search(r'data-institution="EAST">(.*?)</tr>', admin, re.S).group(1)
    assert "saml_idp_not_in_federation" in row
    done = cli(running, "saml", "federation", "status")
    assert done.returncode == 1 and "saml_idp_not_in_federation" in done.stdout, done.stdout

    # The federation's server sends an altered copy, then goes down: SOUTH keeps signing in on the last good copy.
    altered = running.aggregate(name="both").replace(b'Location="http://127.0.0.1:', b'Location="http://127.0.0.2:', 1)
    for body, status, code in ((altered, 200, "federation_bad_signature"), (b"", 503, "federation_unreachable")):
        running.server.serve(body, status)
        done = cli(running, "saml", "federation", "refresh")
        assert done.returncode == 2 and f"[{code}]" in done.stderr, done.stderr
        admin = staff.get(url + "/admin/federation").text
        assert f'id="federation-error-code">{code}<' in admin
        assert "keeps using its last good copy" in admin
        browser, acs = sign_in(running, "SOUTH", "south-3")
        assert signed_in_as(running, browser, acs)["id"] == "south-3"

    # The admin page's button fetches again: the federation is back with both IdPs.
    running.server.serve(running.aggregate(name="both-again"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', admin).group(1)
    answer = staff.post(url + "/admin/federation/refresh", data={"csrf_token": token})
    assert answer.status_code == 200 and "2 identity providers" in answer.text, answer.text[:800]
    assert 'id="federation-problem"' not in answer.text
    browser, acs = sign_in(running, "EAST", "east-1")
    assert signed_in_as(running, browser, acs)["id"] == "east-1"
