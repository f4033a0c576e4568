"""A real SimpleSAMLphp 1.19 identity provider on loopback, for the interop tests.

Debian's ``simplesamlphp`` package is served by ``php -S`` from its own www
folder, with a configuration of the test's own (``SIMPLESAMLPHP_CONFIG_DIR``):
``config.php``, ``authsources.php`` (``exampleauth:UserPass`` accounts with
uid, displayName and mail), a hosted IdP with a key and certificate made for
the session, and ``saml20-sp-remote.php`` written from circnode's
``/saml/metadata`` the way a university's admin does it: SimpleSAMLphp's own
metadata parser turns the XML into its PHP array, then the admin's options
(attribute name format, encryption, signature algorithm) are added.  PHP reads
the metadata files on every request (opcache is off), so ``register_sp``
switches variants without a restart.  docs/identity.md ("Connecting
SimpleSAMLphp") is the same recipe for a librarian.  ``signed_aggregate``
makes a federation's metadata aggregate of IdPs, signed with xmlsec1.
"""
import html
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from urllib.parse import urljoin

import pytest
import requests

SSP_ROOT = "/usr/share/simplesamlphp"
SSP_WWW = os.path.join(SSP_ROOT, "www")
PASSWORD = "ssp-patron"
URI_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
OID = {"uid": "urn:oid:0.9.2342.19200300.100.1.1", "mail": "urn:oid:0.9.2342.19200300.100.1.3",
       "displayName": "urn:oid:2.16.840.1.113730.3.1.241"}


def missing():
    """What is missing to run SimpleSAMLphp here, or '' when nothing is."""
    absent = [name for name, present in (("php-cli", shutil.which("php")),
                                         ("simplesamlphp", os.path.isdir(SSP_WWW))) if not present]
    if not absent and subprocess.run(["php", "-r", "exit(extension_loaded('dom') && extension_loaded('mbstring')"
                                      " ? 0 : 1);"], capture_output=True).returncode:
        absent = ["php-xml", "php-mbstring"]
    return ", ".join(absent)


def require():
    """Skip the calling test when SimpleSAMLphp is not installed; fail instead when CI is set."""
    absent = missing()
    if not absent:
        return
    message = f"the SimpleSAMLphp interop tests need Debian's {absent} (apt-get install " \
              "simplesamlphp php-cli php-xml php-mbstring; ./quickstart test installs them)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must never skip them", pytrace=False)
    pytest.skip(message)


def php(value, indent=""):
    """VALUE (dict, list, str, bool, int, None) as a PHP literal."""
    inner = indent + "    "
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, dict):
        items = [f"{inner}{php(key)} => {php(item, inner)}," for key, item in value.items()]
    else:
        items = [f"{inner}{php(item, inner)}," for item in value]
    return "[\n" + "\n".join(items) + f"\n{indent}]"


def _write_php(path, body):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("<?php\n// Written by tests/simplesamlphp.py\n" + body)


class SimpleSamlPhpIdp:
    """One SimpleSAMLphp IdP: its configuration folder and its ``php -S`` process.

    USERS maps an account name to its attributes ({"uid": [...], "displayName": [...], ...});
    every account's password is ``PASSWORD``.
    """

    def __init__(self, folder, port, users, organization="Test University"):
        self.folder = str(folder)
        self.port = port
        self.users = users
        self.organization = organization
        self.process = None
        self.sp = {}  # entity id -> (parsed metadata, variant options), what saml20-sp-remote.php holds
        self.config_dir = os.path.join(self.folder, "config")
        self.metadata_dir = os.path.join(self.config_dir, "metadata")
        self.cert_dir = os.path.join(self.config_dir, "cert")
        self.data_dir = os.path.join(self.folder, "data")
        for folder_path in (self.metadata_dir, self.cert_dir, self.data_dir, os.path.join(self.data_dir, "sessions"),
                            os.path.join(self.data_dir, "log"), os.path.join(self.data_dir, "tmp")):
            os.makedirs(folder_path, exist_ok=True)
        self._write_config()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def entity_id(self):
        return self.url + "/saml2/idp/metadata.php"

    metadata_url = entity_id  # SimpleSAMLphp publishes its metadata at its entity id

    @property
    def log_path(self):
        return os.path.join(self.data_dir, "log", "simplesamlphp.log")

    # --- configuration ---------------------------------------------------------

    def _write_config(self):
        from node.identity.saml_sp import make_self_signed
        key = os.path.join(self.cert_dir, "idp.key")
        if not os.path.exists(key):
            make_self_signed(key, os.path.join(self.cert_dir, "idp.crt"), f"{self.organization} IdP")
        config = {
            "baseurlpath": self.url + "/",
            "certdir": self.cert_dir,
            "loggingdir": os.path.join(self.data_dir, "log"),
            "datadir": self.data_dir,
            "tempdir": os.path.join(self.data_dir, "tmp"),
            "metadatadir": self.metadata_dir,
            "attributenamemapdir": "/etc/simplesamlphp/attributemap/",  # the package's maps (name2oid, ...)
            "technicalcontact_name": "Test", "technicalcontact_email": "it@example.org",
            "timezone": "UTC",
            "secretsalt": secrets.token_hex(16),
            "auth.adminpassword": secrets.token_hex(16),
            "admin.protectindexpage": True, "admin.protectmetadata": False, "admin.checkforupdates": False,
            "showerrors": True, "errorreporting": False,
            "logging.level": 7,  # SimpleSAML\Logger::DEBUG: the log says why a sign-in failed
            "logging.handler": "file", "logging.logfile": "simplesamlphp.log",
            "enable.saml20-idp": True,
            # As in Debian's config.php: each SP gets only the attributes its metadata entry lists.
            "authproc.idp": {50: "core:AttributeLimit"},
            "module.enable": {"exampleauth": True, "core": True, "saml": True, "admin": True},
            "store.type": "phpsession",
            "session.phpsession.savepath": os.path.join(self.data_dir, "sessions"),
            "session.cookie.secure": False, "session.cookie.samesite": None,
            "language.cookie.secure": False, "language.cookie.samesite": None,
            "production": True,
        }
        _write_php(os.path.join(self.config_dir, "config.php"), "$config = " + php(config) + ";\n")
        users = {f"{name}:{PASSWORD}": attributes for name, attributes in self.users.items()}
        _write_php(os.path.join(self.config_dir, "authsources.php"), "$config = " + php({
            "admin": ["core:AdminPassword"],
            "example-userpass": {0: "exampleauth:UserPass", **users},
        }) + ";\n")
        _write_php(os.path.join(self.metadata_dir, "saml20-idp-hosted.php"),
                   "$metadata['__DYNAMIC:1__'] = " + php({
                       "host": "__DEFAULT__", "privatekey": "idp.key", "certificate": "idp.crt",
                       "auth": "example-userpass",
                       "OrganizationName": {"en": self.organization},
                       "OrganizationURL": {"en": self.url + "/"},
                   }) + ";\n")
        self._write_sp_remote()

    def parse_sp_metadata(self, xml):
        """SimpleSAMLphp's own reading of SP metadata XML (what its metadata converter shows an admin)."""
        script = ("require '%s/lib/_autoload.php';"
                  "$xml = stream_get_contents(STDIN);"
                  "$out = [];"
                  "foreach (\\SimpleSAML\\Metadata\\SAMLParser::parseDescriptorsString($xml) as $id => $entity) {"
                  "  $sp = $entity->getMetadata20SP(); if ($sp !== null) { $out[$id] = $sp; } }"
                  "echo json_encode($out);") % SSP_ROOT
        done = subprocess.run(["php", "-r", script], input=xml.encode(), capture_output=True, timeout=30,
                              env={**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": self.config_dir})
        assert done.returncode == 0, f"SimpleSAMLphp cannot read the SP metadata: {done.stdout!r} {done.stderr!r}"
        parsed = json.loads(done.stdout)
        assert len(parsed) == 1, f"expected one SP in the metadata, found {list(parsed)}"
        return next(iter(parsed.values()))

    def register_sp(self, metadata_xml, uri_names=False, encrypt_assertion=False, encrypt_nameid=False,
                    signature_algorithm=None, sign_assertion=True, encryption_certificate=None,
                    release=("uid", "displayName", "mail")):
        """Register (or re-register) an SP from its metadata XML with the admin's options; its entity id.

        URI_NAMES sends attributes by their urn:oid: names (NameFormat uri, name2oid);
        RELEASE lists the attributes the SP gets (None: those the metadata requests);
        ENCRYPTION_CERTIFICATE (PEM) replaces the encryption keys of the metadata, as
        an admin who pasted the wrong certificate would.
        """
        parsed = self.parse_sp_metadata(metadata_xml)
        parsed.pop("entityDescriptor", None)  # the XML again, in base64: nothing reads it
        if encryption_certificate:
            body = "".join(line for line in encryption_certificate.strip().splitlines() if "-----" not in line)
            parsed["keys"] = [{**key, "encryption": False} for key in parsed.get("keys", []) if key.get("signing")]
            parsed["keys"].append({"encryption": True, "signing": False, "type": "X509Certificate",
                                   "X509Certificate": body})
        options = {}
        if release is not None:
            options["attributes"] = list(release)
        names = options.get("attributes", parsed.get("attributes", []))
        oid_release = any(name.startswith("urn:oid:") for name in names)
        if uri_names:
            options["attributes.NameFormat"] = URI_FORMAT
        if uri_names or oid_release:
            # The accounts' attributes have friendly names: name2oid renames them before the
            # release list applies (core:AttributeLimit, 50) when it names OIDs, else after.
            options["authproc"] = {40 if oid_release else 90: {"class": "core:AttributeMap", 0: "name2oid"}}
        if not sign_assertion:  # the Response alone is signed
            options.update({"saml20.sign.assertion": False, "saml20.sign.response": True})
        if encrypt_assertion:
            options["assertion.encryption"] = True
        if encrypt_nameid:
            options["nameid.encryption"] = True
        if signature_algorithm:
            options["signature.algorithm"] = signature_algorithm
        self.sp[parsed["entityid"]] = (parsed, options)
        self._write_sp_remote()
        return parsed["entityid"]

    def _write_sp_remote(self):
        body = "$metadata = [];\n"
        for entity, (parsed, options) in self.sp.items():
            body += f"$metadata[{php(entity)}] = " + php({**parsed, **options}) + ";\n"
        path = os.path.join(self.metadata_dir, "saml20-sp-remote.php")
        _write_php(path + ".new", body)
        os.replace(path + ".new", path)  # a request in flight never reads half a file

    def certificate_pem(self):
        with open(os.path.join(self.cert_dir, "idp.crt")) as handle:
            return handle.read()

    # --- the process -----------------------------------------------------------

    def start(self, timeout=20.0):
        """Serve SimpleSAMLphp with ``php -S`` on the port; wait until its metadata answers."""
        log = open(os.path.join(self.data_dir, "log", "php-server.log"), "ab")
        env = {**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": self.config_dir}
        # opcache off (php -S follows opcache.enable, not enable_cli): it would serve a metadata file
        # rewritten within the last 2 s (revalidate_freq) from its cache, the previous test's variant.
        self.process = subprocess.Popen(
            ["php", "-d", "opcache.enable=0", "-d", "opcache.enable_cli=0", "-d", "display_errors=0",
             "-d", "log_errors=1",
             "-S", f"127.0.0.1:{self.port}", "-t", SSP_WWW],
            cwd=SSP_WWW, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                answer = requests.get(self.metadata_url, timeout=2)
                if answer.status_code == 200 and "EntityDescriptor" in answer.text:
                    return self
                if answer.status_code == 200:  # an error page: the configuration is wrong
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        with open(os.path.join(self.data_dir, "log", "php-server.log"), errors="replace") as handle:
            server_log = handle.read()[-2000:]
        raise RuntimeError(f"SimpleSAMLphp did not start on {self.url}:\n{server_log}\n{self.tail()}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def tail(self, lines=12):
        """SimpleSAMLphp's last errors and warnings, for a failing test's message."""
        if not os.path.exists(self.log_path):
            return "(SimpleSAMLphp wrote no log)"
        with open(self.log_path, errors="replace") as handle:
            found = [line.rstrip() for line in handle if re.search(r" (ERROR|WARNING|CRITICAL|ALERT) ", line)
                     and not re.search(r"\] (\d+ |Backtrace:)", line)]  # the causes, not the backtraces
        return f"--- {self.log_path}, last errors:\n" + "\n".join(found[-lines:])

    # --- a browser's part --------------------------------------------------------

    def sign_in(self, browser, location, user, password=PASSWORD):
        """Follow LOCATION (the AuthnRequest) to the login form, sign in as USER: (ACS URL, form fields).

        The fields are those of SimpleSAMLphp's auto-submitting form (SAMLResponse, RelayState).
        """
        form = browser.get(location, timeout=30)
        assert form.status_code == 200 and 'name="password"' in form.text, self._fault("login form", form)
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.text))
        fields = {name: html.unescape(value) for name, value in fields.items()}
        fields.update(username=user, password=password)
        posted = browser.post(urljoin(form.url, "?"), data=fields, timeout=30)
        return self.post_form(posted)

    def post_form(self, page):
        """(action, fields) of the auto-submitting SAMLResponse form on PAGE, or a failure naming why."""
        assert page.status_code == 200 and 'name="SAMLResponse"' in page.text, self._fault("SAMLResponse form", page)
        action = html.unescape(re.search(r'<form[^>]* action="([^"]+)"', page.text).group(1))
        fields = {name: html.unescape(value) for name, value in
                  re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)}
        return action, fields

    def _fault(self, wanted, page):
        text = re.sub(r"<[^>]+>", " ", page.text)
        text = re.sub(r"\s+", " ", text)[:1500]
        return f"SimpleSAMLphp did not show the {wanted} ({page.status_code} {page.url}): {text}\n{self.tail()}"


# --- a federation's signed metadata aggregate ------------------------------------

AGGREGATE_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"
    xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="{id}" Name="{name}" validUntil="{valid_until}">
<ds:Signature><ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
<ds:Reference URI="#{id}"><ds:Transforms>
<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>
<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference>
</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data/></ds:KeyInfo></ds:Signature>
{entities}
</md:EntitiesDescriptor>
"""


def signed_aggregate(path, entity_xmls, key, cert, valid_until, name="urn:example:federation:test"):
    """Write to PATH a federation aggregate of ENTITY_XMLS (EntityDescriptor documents), signed
    (RSA-SHA256, enveloped, as federations sign) by KEY with CERT (PEM files), valid until VALID_UNTIL."""
    entities = "\n".join(re.sub(r"^<\?xml[^>]*\?>\s*", "", xml.strip()) for xml in entity_xmls)
    template = AGGREGATE_TEMPLATE.format(id="fed-" + secrets.token_hex(8), name=name, entities=entities,
                                         valid_until=valid_until.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with open(path + ".tmpl", "w", encoding="utf-8") as handle:
        handle.write(template)
    done = subprocess.run(["xmlsec1", "--sign", "--privkey-pem", f"{key},{cert}",
                           "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:metadata:EntitiesDescriptor",
                           "--output", path, path + ".tmpl"], capture_output=True, text=True, timeout=30)
    os.remove(path + ".tmpl")
    assert done.returncode == 0, f"xmlsec1 could not sign the aggregate: {done.stderr}"
    assert aggregate_verifies(path, cert), "the aggregate just signed does not verify"
    return path


def aggregate_verifies(path, cert):
    """True when xmlsec1 verifies the aggregate at PATH with CERT (PEM file)."""
    return subprocess.run(["xmlsec1", "--verify", "--pubkey-cert-pem", cert,
                           "--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:metadata:EntitiesDescriptor", path],
                          capture_output=True, timeout=30).returncode == 0
