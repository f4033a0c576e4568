"""This node's SAML service provider metadata, as federations register it.

One EntityDescriptor: entity id, validUntil and cacheDuration, the accepted
signature and digest algorithms (SAML V2.0 Metadata Profile for Algorithm
Support), and one SPSSODescriptor with mdui:UIInfo (display name,
description, privacy statement = BASE_URL/privacy), the signing and the
encryption certificates (both of each during a key rollover), NameIDFormat,
the assertion consumer (HTTP-POST) and the attributes requested (the patron
id of every institution required, name and email optional); then the
Organization and the technical, support and security contacts from
``[saml]``.  Built with ElementTree (it is written, never parsed, here).
"""
import datetime
import os
import xml.etree.ElementTree as ET

from node.domain import errors
from node.identity import saml_attributes, saml_crypto, saml_keys
from node.identity.saml_names import acs_url, entity_id, sign_in_institutions

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
MDUI = "urn:oasis:names:tc:SAML:metadata:ui"
ALG = "urn:oasis:names:tc:SAML:metadata:algsupport"
REMD = "http://refeds.org/metadata"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
XML = "http://www.w3.org/XML/1998/namespace"
PREFIXES = {"md": MD, "ds": saml_crypto.DS, "mdui": MDUI, "alg": ALG, "remd": REMD, "saml": SAML}
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
SECURITY_CONTACT = "http://refeds.org/metadata/contactType/security"
NAME_AND_EMAIL = ("displayName", "mail")
LANG = "en"

for _prefix, _uri in PREFIXES.items():
    ET.register_namespace(_prefix, _uri)


def _el(parent, ns, tag, text=None, **attrs):
    element = ET.SubElement(parent, f"{{{ns}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        element.text = text
    return element


def _lang(parent, ns, tag, text):
    element = _el(parent, ns, tag, text)
    element.set(f"{{{XML}}}lang", LANG)
    return element


def patron_id_attributes(cfg):
    """The distinct patron id attributes of the institutions whose patrons sign in here (name_id left out)."""
    codes = sign_in_institutions(cfg) or [cfg.institution]
    names = []
    for code in codes:
        name = cfg.node["patron_id_attribute"] if code == cfg.institution else cfg.peers[code].patron_id_attribute
        if name.lower() != "name_id" and name not in names:
            names.append(name)
    return names


def _uses_name_id(cfg):
    return any((cfg.node["patron_id_attribute"] if code == cfg.institution
                else cfg.peers[code].patron_id_attribute).lower() == "name_id" for code in sign_in_institutions(cfg))


def _key_descriptor(parent, use, cert_path):
    descriptor = _el(parent, MD, "KeyDescriptor", use=use)
    info = _el(descriptor, saml_crypto.DS, "KeyInfo")
    _el(_el(info, saml_crypto.DS, "X509Data"), saml_crypto.DS, "X509Certificate",
        saml_keys.certificate_text(cert_path))
    if use == "encryption":
        for algorithm in saml_crypto.DATA_ENCRYPTION + saml_crypto.KEY_TRANSPORT:
            _el(descriptor, MD, "EncryptionMethod", Algorithm=algorithm)


def _contact(parent, kind, contact):
    name, address = contact
    if kind == "security":
        person = _el(parent, MD, "ContactPerson", contactType="other")
        person.set(f"{{{REMD}}}contactType", SECURITY_CONTACT)
    else:
        person = _el(parent, MD, "ContactPerson", contactType=kind)
    if name:
        _el(person, MD, "GivenName", name)
    _el(person, MD, "EmailAddress", "mailto:" + address)


def _duration(hours):
    return f"P{hours // 24}D" if hours % 24 == 0 else f"PT{hours}H"


def sp_metadata_xml(cfg, now):
    """This node's SP metadata as identity providers and federations need it; refused before 'circnode init'."""
    if not os.path.exists(saml_keys.pair(cfg, saml_keys.SIGNING).cert):
        raise errors.SignInUnavailable("This node has no SAML certificate yet: run 'circnode init'.")
    return metadata_xml(cfg, now)


def metadata_xml(cfg, now):
    """The SP metadata document (text) of this node at NOW."""
    settings = cfg.sections["saml"]
    base = cfg.node["base_url"]
    root = ET.Element(f"{{{MD}}}EntityDescriptor", {"entityID": entity_id(cfg)})
    if settings["metadata_valid_days"]:
        until = now.astimezone(datetime.timezone.utc) + datetime.timedelta(days=settings["metadata_valid_days"])
        root.set("validUntil", until.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if settings["metadata_cache_hours"]:
        root.set("cacheDuration", _duration(settings["metadata_cache_hours"]))
    extensions = _el(root, MD, "Extensions")
    for algorithm in saml_crypto.accepted_digests(settings["allow_sha1"]):
        _el(extensions, ALG, "DigestMethod", Algorithm=algorithm)
    for algorithm in saml_crypto.accepted_signatures(settings["allow_sha1"]):
        _el(extensions, ALG, "SigningMethod", Algorithm=algorithm)

    sp = _el(root, MD, "SPSSODescriptor", AuthnRequestsSigned="true", WantAssertionsSigned="true",
             protocolSupportEnumeration=PROTOCOL)
    display_name = settings["display_name"] or cfg.node["name"]
    ui = _el(_el(sp, MD, "Extensions"), MDUI, "UIInfo")
    _lang(ui, MDUI, "DisplayName", display_name)
    _lang(ui, MDUI, "Description", settings["description"] or (
        f"{cfg.node['name']}: patrons of the libraries of its network sign in to borrow here."))
    _lang(ui, MDUI, "PrivacyStatementURL", base + "/privacy")
    for use in (saml_keys.SIGNING, saml_keys.ENCRYPTION):
        for keypair in saml_keys.published(cfg, use):
            _key_descriptor(sp, use, keypair.cert)
    formats = [PERSISTENT, TRANSIENT] if _uses_name_id(cfg) else [TRANSIENT, PERSISTENT]
    for name_format in formats:
        _el(sp, MD, "NameIDFormat", name_format)
    _el(sp, MD, "AssertionConsumerService", Binding=POST, Location=acs_url(cfg), index="0", isDefault="true")
    service = _el(sp, MD, "AttributeConsumingService", index="0", isDefault="true")
    _lang(service, MD, "ServiceName", display_name)
    required = patron_id_attributes(cfg)
    asked = set()  # one attribute configured by two of its names (uid, urn:oid:...) is requested once
    for name in required + list(NAME_AND_EMAIL):
        attr_name, name_format, friendly = saml_attributes.requested(name)
        if attr_name.lower() in asked:
            continue
        asked.add(attr_name.lower())
        _el(service, MD, "RequestedAttribute", Name=attr_name, NameFormat=name_format,
            FriendlyName=friendly or None, isRequired="true" if name in required else "false")

    organization = _el(root, MD, "Organization")
    org_name = settings["organization_name"] or cfg.node["name"]
    _lang(organization, MD, "OrganizationName", org_name)
    _lang(organization, MD, "OrganizationDisplayName", org_name)
    _lang(organization, MD, "OrganizationURL", settings["organization_url"] or base)
    for kind in ("technical", "support", "security"):
        if settings[f"{kind}_contact"]:
            _contact(root, kind, settings[f"{kind}_contact"])
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def missing_for_federations(cfg):
    """What federations (eduGAIN, most national ones) require that this node's [saml] settings leave out."""
    settings = cfg.sections["saml"]
    return [f"[saml] {kind}_contact" for kind in ("technical", "support", "security")
            if not settings[f"{kind}_contact"]]
