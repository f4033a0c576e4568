"""A small SAML identity provider for the demo and the tests, built with pysaml2.

It stands in for a library's real IdP (Shibboleth, ADFS, ...): it reads the
service providers' metadata, verifies their signed AuthnRequests (HTTP-Redirect
or HTTP-POST binding), asks for a name and password from a CSV file of demo
accounts, and answers with a signed response and signed assertion over the
HTTP-POST binding, releasing ``uid``, ``displayName`` and ``mail``.

    python -m node.demo.idp --config demo-data/south/idp/idp.ini

The INI file has one ``[idp]`` section: institution, name, base_url,
key_file, cert_file, users (CSV: uid,password_hash,name,email), sp_metadata
(file paths or URLs, one per line) and lifetime_minutes.  Not for production:
it keeps pending sign-ins in memory and has no rate limit.
"""
import argparse
import base64
import configparser
import csv
import logging
import os
import secrets
import sys
import threading
import time
import warnings
from urllib.parse import urlsplit

import requests
from flask import Flask, render_template, request
from werkzeug.security import check_password_hash, generate_password_hash

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pysaml2 imports a cipher mode cryptography has deprecated
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.authn_context import PASSWORDPROTECTEDTRANSPORT
    from saml2.config import IdPConfig
    from saml2.metadata import entity_descriptor
    from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT
    from saml2.server import Server
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

log = logging.getLogger(__name__)
logging.getLogger("saml2").setLevel(logging.CRITICAL)  # its messages carry whole documents
logging.getLogger("xmlschema").setLevel(logging.WARNING)
PENDING_SECONDS = 600
MAX_TRIES = 5


def load_settings(path):
    """The [idp] section of PATH, with file paths made absolute."""
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(path, encoding="utf-8") or not parser.has_section("idp"):
        raise SystemExit(f"{path}: no [idp] section (see node/demo/idp.py)")
    section = parser["idp"]
    folder = os.path.dirname(os.path.abspath(path))

    def local(value):
        return value if value.startswith(("http://", "https://")) else os.path.join(folder, value)
    try:
        return {
            "institution": section["institution"], "name": section["name"],
            "base_url": section["base_url"].rstrip("/"),
            "key_file": local(section.get("key_file", "idp.key")),
            "cert_file": local(section.get("cert_file", "idp.crt")),
            "users": local(section.get("users", "users.csv")),
            "sp_metadata": [local(v) for v in section.get("sp_metadata", "").split() if v],
            "lifetime_minutes": int(section.get("lifetime_minutes", "5")),
            "xmlsec_binary": section.get("xmlsec_binary", "") or "/usr/bin/xmlsec1",
            # yes: encrypt each assertion for the SP's encryption certificate from its metadata
            "encrypt_assertions": section.get("encrypt_assertions", "no").strip().lower() in ("yes", "true", "1"),
        }
    except KeyError as exc:
        raise SystemExit(f"{path}: [idp] {exc.args[0]} is missing") from None


def entity_id(settings):
    return settings["base_url"] + "/idp/metadata"


def server_config(settings, sp_xml=(), lifetime=None, key_file=None, cert_file=None):
    """A loaded pysaml2 IdPConfig; LIFETIME (a timedelta dict) and other key files are for tests."""
    base = settings["base_url"]
    conf = {
        "entityid": entity_id(settings),
        "key_file": key_file or settings["key_file"], "cert_file": cert_file or settings["cert_file"],
        "xmlsec_binary": settings["xmlsec_binary"],
        "service": {"idp": {
            "name": settings["name"],
            "endpoints": {"single_sign_on_service": [(base + "/idp/sso/redirect", BINDING_HTTP_REDIRECT),
                                                     (base + "/idp/sso/post", BINDING_HTTP_POST)]},
            "want_authn_requests_signed": True,
            "policy": {"default": {"lifetime": lifetime or {"minutes": settings["lifetime_minutes"]},
                                   "name_form": NAME_FORMAT_URI, "attribute_restrictions": None}},
            "name_id_format": [NAMEID_FORMAT_TRANSIENT, NAMEID_FORMAT_PERSISTENT],
        }},
        "metadata": {"inline": list(sp_xml)} if sp_xml else {},
        "signing_algorithm": SIG_RSA_SHA256, "digest_algorithm": DIGEST_SHA256,
    }
    config = IdPConfig()
    config.load(conf)
    return config


def metadata_xml(settings):
    """The IdP's metadata (entity id, SSO endpoints, signing certificate)."""
    return str(entity_descriptor(server_config(settings)))


def read_sp_metadata(sources):
    """The text of each SP metadata source; URLs that cannot be fetched yet are left out."""
    texts = []
    for source in sources:
        try:
            if source.startswith(("http://", "https://")):
                response = requests.get(source, timeout=5)
                response.raise_for_status()
                texts.append(response.text)
            else:
                with open(source, encoding="utf-8") as handle:
                    texts.append(handle.read())
        except (OSError, requests.RequestException) as exc:
            log.warning("SP metadata %s not available yet: %s", source, exc.__class__.__name__)
    return texts


def make_server(settings, **overrides):
    """A pysaml2 IdP Server that knows every configured service provider."""
    return Server(config=server_config(settings, read_sp_metadata(settings["sp_metadata"]), **overrides))


def load_users(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["uid"]: row for row in csv.DictReader(handle)}


def authn_response(server, settings, user, resp_args, sign_response=True):
    """A signed SAML Response (XML text) for USER answering the request described by RESP_ARGS.

    With ``encrypt_assertions`` the signed assertion is then encrypted for the
    SP's encryption certificate (AES-256-GCM, RSA-OAEP), as Shibboleth does.
    """
    identity = {"uid": [user["uid"]]}
    if user.get("name"):
        identity["displayName"] = [user["name"]]
    if user.get("email"):
        identity["mail"] = [user["email"]]
    response = server.create_authn_response(
        identity, userid=user["uid"], sign_assertion=True, sign_response=sign_response,
        sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256,  # pysaml2 would sign with SHA-1, which SPs refuse
        authn={"class_ref": PASSWORDPROTECTEDTRANSPORT, "authn_auth": entity_id(settings)}, **resp_args)
    xml = str(response)
    if settings.get("encrypt_assertions"):
        certs = server.metadata.certs(resp_args["sp_entity_id"], "any", "encryption")
        if not certs:
            raise ValueError("the SP's metadata has no encryption certificate")
        xml = encrypt_assertion(xml, certs[0][1], settings["xmlsec_binary"])
        if sign_response:  # the Response signature covers the assertion as sent: sign it again
            xml = sign_element(xml, "Response", settings["key_file"], settings["xmlsec_binary"])
    return xml


# --- XML encryption and signing with xmlsec1 (what pysaml2's IdP cannot choose) ---

SAMLP_NS, SAML_NS = "urn:oasis:names:tc:SAML:2.0:protocol", "urn:oasis:names:tc:SAML:2.0:assertion"
_ENCRYPTED_DATA = (
    '<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" '
    'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Type="http://www.w3.org/2001/04/xmlenc#Element">'
    '<xenc:EncryptionMethod Algorithm="{data_alg}"/><ds:KeyInfo><xenc:EncryptedKey>'
    '<xenc:EncryptionMethod Algorithm="{key_alg}"/>{recipient}'
    '<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo>'
    '<xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>')
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
RSA_OAEP = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"


def _xmlsec(xmlsec, args, files):
    """Run xmlsec1 with ARGS on FILES ({name: text}) in a temporary folder; its output document."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory(prefix="circnode-idp-") as folder:
        paths = {}
        for name, text in files.items():
            paths[name] = os.path.join(folder, name)
            with open(paths[name], "w", encoding="utf-8") as handle:
                handle.write(text)
        command = [xmlsec, *[paths.get(arg, arg) for arg in args]]
        done = subprocess.run(command, capture_output=True, timeout=30, check=False)
        if done.returncode != 0:
            raise ValueError(f"xmlsec1 failed: {done.stderr.decode(errors='replace')[-300:]}")
        text = done.stdout.decode()
    return text.split("?>", 1)[1].lstrip() if text.startswith("<?xml") else text


def _with_namespaces(element_xml, document):
    """ELEMENT_XML (cut out of DOCUMENT) with the namespace declarations of DOCUMENT's root added."""
    import re
    root_tag = re.search(r"<[^!?][^>]*>", document).group(0)
    declared = dict(re.findall(r'xmlns(?::([\w.-]+))?="([^"]*)"', root_tag))
    start = re.match(r"<[^>]*?(?=/?>)", element_xml).group(0)
    extra = "".join(f' xmlns{":" + p if p else ""}="{u}"' for p, u in declared.items()
                    if f'xmlns{":" + p if p else ""}=' not in start)
    return start + extra + element_xml[len(start):]


def encrypt_element(element_xml, cert_b64, xmlsec, data_alg=AES256_GCM, key_alg=RSA_OAEP, name_cert=True):
    """An xenc:EncryptedData (text) holding ELEMENT_XML, for the certificate CERT_B64 (base64 DER)."""
    import textwrap
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(textwrap.wrap("".join(cert_b64.split()), 64)) + \
        "\n-----END CERTIFICATE-----\n"
    recipient = ("<ds:KeyInfo><ds:X509Data><ds:X509Certificate>" + "".join(cert_b64.split())
                 + "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>") if name_cert else ""
    session = {"gcm": "aes-256", "aes128": "aes-128", "aes192": "aes-192", "aes256": "aes-256",
               "tripledes": "des-192"}
    kind = next(v for k, v in session.items() if k in data_alg.rsplit("#", 1)[-1])
    if "aes128-gcm" in data_alg:
        kind = "aes-128"
    template = _ENCRYPTED_DATA.format(data_alg=data_alg, key_alg=key_alg, recipient=recipient)
    return _xmlsec(xmlsec, ["--encrypt", "--pubkey-cert-pem", "cert.pem", "--session-key", kind,
                            "--xml-data", "data.xml", "template.xml"],
                   {"cert.pem": pem, "data.xml": element_xml, "template.xml": template})


def encrypt_assertion(xml, cert_b64, xmlsec, **algorithms):
    """Response XML with its (signed) Assertion replaced by an EncryptedAssertion for CERT_B64."""
    import re
    found = re.search(r"<(\w+:)?Assertion\b.*?</\1?Assertion>", xml, re.S)
    prefix = found.group(1) or ""
    encrypted = encrypt_element(_with_namespaces(found.group(0), xml), cert_b64, xmlsec, **algorithms)
    wrapper = f'<{prefix}EncryptedAssertion xmlns{":" + prefix[:-1] if prefix else ""}="{SAML_NS}">'
    return xml[:found.start()] + wrapper + encrypted + f"</{prefix}EncryptedAssertion>" + xml[found.end():]


def sign_element(xml, element, key_file, xmlsec):
    """XML with the ds:Signature template of its first ELEMENT (Response or Assertion) signed anew."""
    import re
    ns = SAMLP_NS if element == "Response" else SAML_NS
    node_id = re.search(rf"<(?:\w+:)?{element}\b[^>]*?\sID=\"([^\"]+)\"", xml).group(1)
    if element == "Response" and f'Reference URI="#{node_id}"' not in xml:
        raise ValueError("the Response carries no signature template")
    return _xmlsec(xmlsec, ["--sign", "--privkey-pem", key_file, "--id-attr:ID", f"{ns}:{element}",
                            "--node-id", node_id, "doc.xml"], {"doc.xml": xml})


def create_app(settings):
    """The IdP's web app: metadata, SSO (Redirect and POST bindings), login form."""
    from node.web import headers
    from node.domain.notices import templates_folder
    app = Flask("node.demo.idp", template_folder=templates_folder())
    headers.init_app(app, settings["base_url"])
    state = {"server": None, "built": 0.0, "pending": {}, "lock": threading.Lock()}

    def server():
        # Rebuilt until every SP's metadata could be read (a node may start after its IdP).
        complete = state["server"] is not None and state.get("complete")
        if not complete and time.monotonic() - state["built"] > 2:
            texts = read_sp_metadata(settings["sp_metadata"])
            state["server"] = Server(config=server_config(settings, texts))
            state["complete"], state["built"] = len(texts) == len(settings["sp_metadata"]), time.monotonic()
        return state["server"]

    @app.get("/idp/metadata")
    def metadata():
        return metadata_xml(settings), 200, {"Content-Type": "application/samlmetadata+xml"}

    @app.route("/idp/sso/redirect", methods=["GET"])
    @app.route("/idp/sso/post", methods=["POST"])
    def sso():
        binding = BINDING_HTTP_REDIRECT if request.method == "GET" else BINDING_HTTP_POST
        values = request.args if request.method == "GET" else request.form
        if not values.get("SAMLRequest"):
            return _error("No sign-in request was received.")
        with state["lock"]:
            try:
                parsed = server().parse_authn_request(
                    values["SAMLRequest"], binding, relay_state=values.get("RelayState"),
                    sigalg=values.get("SigAlg"), signature=values.get("Signature"))
                resp_args = server().response_args(parsed.message)
            except Exception as exc:  # unsigned, unknown SP, bad signature: no sign-in
                log.warning("refused an AuthnRequest: %s", exc.__class__.__name__)
                return _error("This sign-in request is not valid or comes from an unknown service.")
            now = time.monotonic()
            for key in [k for k, v in state["pending"].items() if v["expires"] < now]:
                state["pending"].pop(key, None)
            key = secrets.token_urlsafe(24)
            state["pending"][key] = {"resp_args": resp_args, "relay": values.get("RelayState") or "",
                                     "expires": now + PENDING_SECONDS, "tries": 0,
                                     "sp": parsed.message.issuer.text if parsed.message.issuer else ""}
        return render_template("idp_login.html", idp=settings, key=key, error="", username="")

    @app.post("/idp/login")
    def login():
        key = request.form.get("key", "")
        username = request.form.get("username", "").strip()
        with state["lock"]:
            pending = state["pending"].get(key)
            if pending is None or pending["expires"] < time.monotonic():
                return _error("This sign-in has expired. Go back to the library and start again.",
                              back=_library(pending))
            user = load_users(settings["users"]).get(username)
            if user is None or not check_password_hash(user["password_hash"], request.form.get("password", "")):
                pending["tries"] += 1
                if pending["tries"] >= MAX_TRIES:
                    state["pending"].pop(key, None)
                    return _error("Too many wrong passwords. Go back to the library and start again.",
                                  back=_library(pending))
                return render_template("idp_login.html", idp=settings, key=key, username=username,
                                       error="Wrong name or password."), 401
            state["pending"].pop(key, None)
            xml = authn_response(server(), settings, user, pending["resp_args"])
        log.info("signed in a patron for %s", pending["sp"])  # never who: the log holds no patron data
        # The answer's form posts cross-site, to the library's assertion consumer: allow that origin only.
        headers.allow_form_action(pending["resp_args"]["destination"])
        return render_template("idp_post.html", idp=settings, action=pending["resp_args"]["destination"],
                               saml_response=base64.b64encode(xml.encode()).decode(), relay=pending["relay"])

    def _error(message, back=None):
        return render_template("idp_error.html", idp=settings, message=message, back=back), 400

    def _library(pending):
        """The front page of the library that asked (the origin of its assertion consumer), or None."""
        if not pending:
            return None
        parts = urlsplit(pending["resp_args"].get("destination") or "")
        return f"{parts.scheme}://{parts.netloc}/" if parts.scheme in ("http", "https") and parts.netloc else None

    @app.errorhandler(404)
    def _not_found(exc):
        return _error("No such page.")[0], 404

    return app


# --- demo set-up -----------------------------------------------------------

DEMO_PATRON_PASSWORD = "demo-patron"


def write_demo_idp(folder, institution, name, base_url, users, sp_metadata):
    """Write a demo IdP for INSTITUTION into FOLDER (keys, accounts, idp.ini, metadata.xml).

    USERS are (uid, name, email) rows; every account's password is DEMO_PATRON_PASSWORD.
    Returns the path of idp.ini.  Existing keys are kept.
    """
    from node.identity.saml_sp import make_self_signed
    os.makedirs(folder, exist_ok=True)
    key_file, cert_file = os.path.join(folder, "idp.key"), os.path.join(folder, "idp.crt")
    if not os.path.exists(key_file):
        make_self_signed(key_file, cert_file, f"demo IdP {institution}")
    # One hash for all demo accounts: they share the documented demo password.
    password_hash = generate_password_hash(DEMO_PATRON_PASSWORD, method="pbkdf2:sha256:20000")
    with open(os.path.join(folder, "users.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uid", "password_hash", "name", "email"])
        for uid, user_name, email in users:
            writer.writerow([uid, password_hash, user_name, email])
    ini = os.path.join(folder, "idp.ini")
    with open(ini, "w", encoding="utf-8") as handle:
        handle.write("\n".join([
            "[idp]", f"institution = {institution}", f"name = {name}", f"base_url = {base_url}",
            "key_file = idp.key", "cert_file = idp.crt", "users = users.csv", "lifetime_minutes = 5",
            "sp_metadata =", *[f"    {path}" for path in sp_metadata], ""]))
    with open(os.path.join(folder, "metadata.xml"), "w", encoding="utf-8") as handle:
        handle.write(metadata_xml(load_settings(ini)))
    return ini


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m node.demo.idp", description="circnode's demo SAML identity provider")
    parser.add_argument("--config", required=True, help="the IdP's INI file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default: the port of base_url")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(args.config)
    port = args.port or int(settings["base_url"].rsplit(":", 1)[-1].split("/")[0])
    from waitress import serve
    log.info("demo IdP of %s on %s", settings["institution"], settings["base_url"])
    serve(create_app(settings), host=args.host, port=port, threads=4, ident="circnode-idp")


if __name__ == "__main__":
    sys.exit(main())
