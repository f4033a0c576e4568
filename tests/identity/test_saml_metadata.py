"""The SP metadata a federation registers, its keys and their rollover, and attribute names (issue 16, points 2-4).

No processes but the CLI's: the metadata is built from a real node.ini and
real key files, then read back as XML (and by pysaml2's IdP, as an IdP would).
"""
import datetime
import os
import xml.etree.ElementTree as ET

import pytest

from tests.helpers.config import write_config
from tests.helpers.cli import circnode, ok, refused

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS = {"md": MD, "ds": "http://www.w3.org/2000/09/xmldsig#", "mdui": "urn:oasis:names:tc:SAML:metadata:ui",
      "alg": "urn:oasis:names:tc:SAML:metadata:algsupport"}
NOW = datetime.datetime(2027, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
OID_UID = "urn:oid:0.9.2342.19200300.100.1.1"
CONTACTS = """
[saml]
organization_name = North University Library Consortium
organization_url = https://library.north.example
technical_contact = Library IT <it@north.example>
support_contact = help@north.example
security_contact = CSIRT <csirt@north.example>
description = Borrow at North University with your own library's account.
"""


def make_node(tmp_path, extra=CONTACTS, south_attribute="uid"):
    from node import config
    from node.identity.saml_sp import ensure_sp_certificate
    folder = str(tmp_path / "north")
    path = write_config(folder, peers=[("SOUTH", "South College", "http://127.0.0.1:9", "")], extra=extra)
    with open(path) as handle:
        text = handle.read()
    with open(path, "w") as handle:  # SOUTH's patrons sign in here: its IdP and its id attribute
        handle.write(text.replace("public_key = \n", f"public_key = \nidp_metadata = south-idp.xml\n"
                                                     f"patron_id_attribute = {south_attribute}\n", 1))
    cfg = config.load(path)
    ensure_sp_certificate(cfg)
    return cfg


def metadata(cfg, now=NOW):
    from node.identity.saml_metadata import sp_metadata_xml
    return ET.fromstring(sp_metadata_xml(cfg, now).encode())


def certificates(root, use):
    return [cert.text for cert in root.findall(
        f"md:SPSSODescriptor/md:KeyDescriptor[@use='{use}']/ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)]


# --- point 4: what a federation registers --------------------------------------

def test_metadata_publishes_separate_signing_and_encryption_certificates(tmp_path):
    from node.identity import saml_keys
    cfg = make_node(tmp_path)
    root = metadata(cfg)
    signing, encryption = certificates(root, "signing"), certificates(root, "encryption")
    assert signing == [saml_keys.certificate_text(saml_keys.pair(cfg, "signing").cert)]
    assert encryption == [saml_keys.certificate_text(saml_keys.pair(cfg, "encryption").cert)]
    assert signing != encryption
    methods = [m.get("Algorithm") for m in root.findall(
        "md:SPSSODescriptor/md:KeyDescriptor[@use='encryption']/md:EncryptionMethod", NS)]
    assert "http://www.w3.org/2009/xmlenc11#aes256-gcm" in methods
    assert "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p" in methods
    assert not any("rsa-1_5" in m or "tripledes" in m for m in methods)


def test_metadata_has_what_federations_require(tmp_path):
    cfg = make_node(tmp_path)
    root = metadata(cfg)
    assert root.get("entityID") == "http://127.0.0.1:8080/saml/metadata"
    assert root.get("validUntil") == "2027-03-15T12:00:00Z" and root.get("cacheDuration") == "PT6H"
    sp = root.find("md:SPSSODescriptor", NS)
    assert sp.get("AuthnRequestsSigned") == "true" and sp.get("WantAssertionsSigned") == "true"
    ui = sp.find("md:Extensions/mdui:UIInfo", NS)
    assert ui.find("mdui:DisplayName", NS).text == "North University"
    assert ui.find("mdui:Description", NS).text == "Borrow at North University with your own library's account."
    assert ui.find("mdui:PrivacyStatementURL", NS).text == "http://127.0.0.1:8080/privacy"
    assert [f.text for f in sp.findall("md:NameIDFormat", NS)] == [
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"]
    acs = sp.find("md:AssertionConsumerService", NS)
    assert acs.get("Location") == "http://127.0.0.1:8080/saml/acs" and acs.get("Binding").endswith("HTTP-POST")
    organization = root.find("md:Organization", NS)
    assert organization.find("md:OrganizationName", NS).text == "North University Library Consortium"
    assert organization.find("md:OrganizationURL", NS).text == "https://library.north.example"
    contacts = {(c.get("contactType"), c.get("{http://refeds.org/metadata}contactType")):
                (getattr(c.find("md:GivenName", NS), "text", ""), c.find("md:EmailAddress", NS).text)
                for c in root.findall("md:ContactPerson", NS)}
    assert contacts == {
        ("technical", None): ("Library IT", "mailto:it@north.example"),
        ("support", None): ("", "mailto:help@north.example"),
        ("other", "http://refeds.org/metadata/contactType/security"): ("CSIRT", "mailto:csirt@north.example")}


@pytest.mark.parametrize("south_attribute", ["uid", OID_UID])
def test_metadata_requires_the_patron_id_attribute_and_asks_for_name_and_email(tmp_path, south_attribute):
    cfg = make_node(tmp_path, south_attribute=south_attribute)
    requested = {a.get("Name"): (a.get("FriendlyName"), a.get("NameFormat"), a.get("isRequired")) for a in
                 metadata(cfg).findall("md:SPSSODescriptor/md:AttributeConsumingService/md:RequestedAttribute", NS)}
    uri = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
    assert requested == {OID_UID: ("uid", uri, "true"),
                         "urn:oid:2.16.840.1.113730.3.1.241": ("displayName", uri, "false"),
                         "urn:oid:0.9.2342.19200300.100.1.3": ("mail", uri, "false")}


def test_an_attribute_configured_by_two_of_its_names_is_requested_once(tmp_path):
    cfg = make_node(tmp_path, south_attribute=OID_UID)
    cfg.node["idp_metadata"] = "north-idp.xml"  # NORTH's own patrons sign in too, their id named uid
    names = [a.get("Name") for a in
             metadata(cfg).findall("md:SPSSODescriptor/md:AttributeConsumingService/md:RequestedAttribute", NS)]
    assert sorted(names) == sorted(set(names)) and names.count(OID_UID) == 1


def test_metadata_advertises_only_accepted_algorithms(tmp_path):
    cfg = make_node(tmp_path)
    algorithms = [e.get("Algorithm") for e in metadata(cfg).iter() if e.get("Algorithm")]
    assert algorithms and not [a for a in algorithms if "md5" in a or "sha1" in a or "#dsa-" in a]
    signing = [m.get("Algorithm") for m in metadata(cfg).findall("md:Extensions/alg:SigningMethod", NS)]
    assert "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" in signing
    sha1 = make_node(tmp_path / "sha1", extra="[saml]\nallow_sha1 = yes\n")
    signing = [m.get("Algorithm") for m in metadata(sha1).findall("md:Extensions/alg:SigningMethod", NS)]
    digests = [m.get("Algorithm") for m in metadata(sha1).findall("md:Extensions/alg:DigestMethod", NS)]
    assert "http://www.w3.org/2000/09/xmldsig#rsa-sha1" in signing and "http://www.w3.org/2000/09/xmldsig#sha1" in digests
    assert not [m for m in signing + digests if "md5" in m]


def test_metadata_is_schema_valid_and_an_idp_reads_its_encryption_certificate(tmp_path):
    from saml2.xml.schema import validate

    from node.identity import saml_keys
    from node.demo.idp import load_settings, server_config, write_demo_idp
    from node.identity.saml_metadata import sp_metadata_xml
    cfg = make_node(tmp_path)
    text = sp_metadata_xml(cfg, NOW)
    validate(text)
    sp_file = tmp_path / "sp.xml"
    sp_file.write_text(text)
    ini = write_demo_idp(str(tmp_path / "idp"), "SOUTH", "South College", "http://127.0.0.1:9",
                         [("south-1", "South Patron 1", "")], [str(sp_file)])
    from saml2.server import Server
    server = Server(config=server_config(load_settings(ini), [text]))
    encryption = ["".join(cert.split()) for _, cert in server.metadata.certs(cfg.node["base_url"] + "/saml/metadata", "any",
                                                              "encryption")]
    assert encryption == [saml_keys.certificate_text(saml_keys.pair(cfg, "encryption").cert)]


def test_metadata_command_writes_the_file_and_refuses_bad_paths_with_one_line(tmp_path):
    cfg = make_node(tmp_path)
    target = tmp_path / "north-sp.xml"
    done = ok(circnode("--config", cfg.path, "saml", "metadata", "--output", str(target)))
    assert str(target) in done.stdout
    root = ET.fromstring(target.read_bytes())
    assert root.get("entityID") == "http://127.0.0.1:8080/saml/metadata"
    assert "federations require" not in done.stderr  # every contact is set
    printed = ok(circnode("--config", cfg.path, "saml", "metadata"))
    assert printed.stdout.startswith("<?xml")
    refused(circnode("--config", cfg.path, "saml", "metadata", "--output", str(tmp_path / "no" / "such" / "x.xml")),
            "not a file in an existing folder")
    refused(circnode("--config", cfg.path, "saml", "metadata", "--output", str(tmp_path)),
            "not a file in an existing folder")


def test_metadata_command_notes_the_contacts_a_federation_requires(tmp_path):
    cfg = make_node(tmp_path, extra="")
    done = ok(circnode("--config", cfg.path, "saml", "metadata", "--output", str(tmp_path / "md.xml")))
    assert "[saml] security_contact is empty" in done.stderr


# --- keys: init, existing nodes, rollover -------------------------------------------

def test_init_creates_the_encryption_key_and_an_older_node_gets_one_on_start(tmp_path):
    from node import config
    from node.identity import saml_keys
    path = write_config(str(tmp_path / "north"))
    first = ok(circnode("--config", path, "init"))
    assert "SAML encryption certificate:" in first.stdout and "(created)" in first.stdout
    cfg = config.load(path)
    encryption = saml_keys.pair(cfg, "encryption")
    assert oct(os.stat(encryption.key).st_mode & 0o777) == "0o600"
    os.remove(encryption.key)  # a node initialised before encryption keys existed
    os.remove(encryption.cert)
    assert saml_keys.ensure_encryption_on_start(cfg) == encryption and encryption.exists()
    assert saml_keys.ensure_encryption_on_start(cfg) is None  # kept from then on
    assert "(kept)" in ok(circnode("--config", path, "init")).stdout


def test_rollover_publishes_old_and_new_keys_then_retires_the_old(tmp_path):
    from node.identity import saml_keys
    cfg = make_node(tmp_path)
    old = {use: saml_keys.certificate_text(saml_keys.pair(cfg, use).cert) for use in ("signing", "encryption")}
    refused(circnode("--config", cfg.path, "saml", "rollover", "finish"), "key_rollover_refused")
    started = ok(circnode("--config", cfg.path, "saml", "rollover", "start"))
    assert "rollover finish" in started.stdout
    refused(circnode("--config", cfg.path, "saml", "rollover", "start"), "already under way")
    new = {use: saml_keys.certificate_text(saml_keys.pair(cfg, use, "next").cert) for use in ("signing", "encryption")}
    root = metadata(cfg)
    assert certificates(root, "signing") == [old["signing"], new["signing"]]
    # The new encryption certificate first: IdPs encrypt for the first, and it outlives the rollover.
    assert certificates(root, "encryption") == [new["encryption"], old["encryption"]]
    from node.identity.saml_sp import sp_files
    assert saml_keys.certificate_text(sp_files(cfg)[1]) == old["signing"]  # the old key still signs
    ok(circnode("--config", cfg.path, "saml", "rollover", "finish"))
    root = metadata(cfg)
    assert certificates(root, "signing") == [new["signing"]]
    assert certificates(root, "encryption") == [new["encryption"]]
    assert not saml_keys.rolling_over(cfg)
    retired = os.listdir(os.path.join(cfg.data_dir, "saml_retired"))
    assert len(retired) == 1 and "saml_sp.key" in os.listdir(os.path.join(cfg.data_dir, "saml_retired", retired[0]))


# --- point 2: attribute names, both ways ----------------------------------------------

@pytest.mark.parametrize("configured", ["uid", OID_UID, "urn:mace:dir:attribute-def:uid", "UID"])
@pytest.mark.parametrize("sent", ["uid", OID_UID])
def test_patron_id_attribute_matches_friendly_and_oid_names_both_ways(configured, sent):
    from node.identity.saml_attributes import values
    assert values({sent: ["south-1"], "mail": ["x@y.example"]}, configured) == ["south-1"]


def test_attribute_names_pysaml2_knows_but_the_table_does_not_match_too():
    from node.identity.saml_attributes import values
    assert values({"o": ["South College"]}, "urn:oid:2.5.4.10") == ["South College"]
    assert values({"urn:oid:2.5.4.10": ["South College"]}, "o") == ["South College"]


def test_entra_claims_stand_for_mail_and_display_name():
    from node.identity.saml_attributes import values
    ava = {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": ["p@south.example"],
           "http://schemas.microsoft.com/identity/claims/displayname": ["South Patron"],
           "http://schemas.microsoft.com/identity/claims/objectidentifier": ["0f6a-11"]}
    assert values(ava, "mail") == ["p@south.example"]
    assert values(ava, "displayName") == ["South Patron"]
    assert values(ava, "http://schemas.microsoft.com/identity/claims/objectidentifier") == ["0f6a-11"]


def test_two_different_values_under_two_names_of_one_attribute_are_not_one_patron_id():
    from node.identity.saml_attributes import values
    assert values({"uid": ["south-1"], OID_UID: ["south-2"]}, "uid") == ["south-1", "south-2"]
    assert values({"uid": ["south-1"], OID_UID: ["south-1"]}, "uid") == ["south-1"]


# --- point 3: algorithms --------------------------------------------------------------

SIGNED = """<r xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:Signature><ds:SignedInfo>
<ds:SignatureMethod Algorithm="{sig}"/><ds:Reference><ds:DigestMethod Algorithm="{digest}"/></ds:Reference>
</ds:SignedInfo></ds:Signature></r>"""
DS, MORE, XENC = ("http://www.w3.org/2000/09/xmldsig#", "http://www.w3.org/2001/04/xmldsig-more#",
                  "http://www.w3.org/2001/04/xmlenc#")


@pytest.mark.parametrize("sig, digest, allow_sha1, accepted", [
    (MORE + "rsa-sha256", XENC + "sha256", False, True),
    (MORE + "rsa-sha512", XENC + "sha512", False, True),
    (DS + "rsa-sha1", XENC + "sha256", False, False),
    (MORE + "rsa-sha256", DS + "sha1", False, False),
    (DS + "rsa-sha1", DS + "sha1", True, True),
    (MORE + "rsa-md5", XENC + "sha256", True, False),
    (MORE + "rsa-sha256", MORE + "md5", True, False),
    (DS + "dsa-sha1", DS + "sha1", True, False),
])
def test_signature_algorithms_sha1_only_when_allowed_md5_never(sig, digest, allow_sha1, accepted):
    from node.domain import errors
    from node.identity.saml_crypto import check_signature_algorithms

    def refuse(cls, reason):
        return cls(reason)
    root = ET.fromstring(SIGNED.format(sig=sig, digest=digest))
    if accepted:
        check_signature_algorithms(root, allow_sha1, refuse)
    else:
        with pytest.raises(errors.SamlWeakAlgorithm):
            check_signature_algorithms(root, allow_sha1, refuse)
