"""This node as a SAML service provider: keys, metadata, and the checks on every answer.

pysaml2 does the XML signature work (with xmlsec1); this module adds what a
library must be sure of before it lends: the answer replies to a request we
sent and still hold (server-side, single use), it comes from the identity
provider of the institution the patron chose, its assertion is signed by that
provider's key from metadata, made for us (audience), sent to us
(destination, recipient), fresh (small clock skew) and never seen before.
No Flask here: the views in ``node/web/saml.py`` and ``node/web/phone.py`` call ``start_login`` and
``verify_response``.
"""
import base64
import binascii
import datetime
import json
import logging
import os
import re
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import requests
from defusedxml import ElementTree as SafeET
from peewee import IntegrityError

from node.identity import saml_attributes, saml_crypto, saml_federation, saml_keys
from node.identity.saml_names import acs_url, entity_id, xmlsec_binary
from node.domain import errors
from node.store.db import database
from node.store.models import SamlAssertion, SamlRequest

log = logging.getLogger(__name__)
# pysaml2 logs whole documents and NameIDs in its messages (even at ERROR);
# our own log line names the refusal without them.
logging.getLogger("saml2").setLevel(logging.CRITICAL)
logging.getLogger("xmlschema").setLevel(logging.WARNING)  # chatty at import

SP_KEY_FILE, SP_CERT_FILE = "saml_sp.key", "saml_sp.crt"  # the current signing pair (node/identity/saml_keys.py)
make_self_signed = saml_keys.make_self_signed  # the demo IdP and the tests make their keys with it
MAX_RESPONSE_BYTES = 256 * 1024  # a real response is a few KB; this caps what the ACS reads
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
      "ds": "http://www.w3.org/2000/09/xmldsig#"}
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
_lock = threading.RLock()  # pysaml2 clients keep state; sign-ins are rare, so one at a time
_clients = {}
_lib = None


def pysaml2():
    """pysaml2's names, imported on first use: the import costs 1-2 s of CPU (schema building),
    which a node that never signs a patron in (and every test app) should not pay."""
    global _lib
    if _lib is None:
        with warnings.catch_warnings():
            # pysaml2 imports a cipher mode cryptography has deprecated; nothing of ours uses it.
            warnings.simplefilter("ignore")
            import saml2
            from saml2.client import Saml2Client
            from saml2.config import SPConfig
            from saml2.metadata import entity_descriptor
            from saml2.response import StatusError
            from saml2.sigver import DecryptError, SignatureError
            from saml2.validate import ResponseLifetimeExceed, ToEarly
            from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

        class PlainPostClient(Saml2Client):
            @staticmethod
            def unravel(txt, binding, msgtype="response"):
                # The POST binding carries base64 of plain XML.  pysaml2 would first try to
                # inflate it, which lets a crafted 256 KB body expand a thousandfold.
                if binding != saml2.BINDING_HTTP_POST:
                    raise ValueError("only the HTTP-POST binding is accepted for responses")
                return base64.b64decode(txt)
        _lib = SimpleNamespace(
            POST=saml2.BINDING_HTTP_POST, REDIRECT=saml2.BINDING_HTTP_REDIRECT, Saml2Client=PlainPostClient,
            SPConfig=SPConfig, entity_descriptor=entity_descriptor, SIG_RSA_SHA256=SIG_RSA_SHA256,
            DIGEST_SHA256=DIGEST_SHA256,
            refusals=((ResponseLifetimeExceed, errors.SamlExpired, "The sign-in answer has expired. Start again."),
                      (ToEarly, errors.SamlExpired, "The sign-in answer is not valid yet (check the clocks)."),
                      (SignatureError, errors.SamlBadSignature,
                       "The signature does not verify with the key in the identity provider's metadata."),
                      (StatusError, errors.SamlInvalid, "The identity provider did not sign the patron in."),
                      (DecryptError, errors.SamlCannotDecrypt, "The encrypted NameID cannot be decrypted with this "
                       "library's encryption keys: the identity provider needs this library's current metadata.")))
    return _lib


@dataclass
class Identity:
    """A patron as their home institution's identity provider vouched for them."""

    institution: str
    id: str
    name: str = ""
    email: str = ""
    verified_at: str = ""
    via: str = "saml"

    def to_dict(self):
        return asdict(self)


# --- keys, certificate, metadata -------------------------------------------

def sp_files(cfg):
    """(key, certificate) paths of the current signing pair."""
    signing = saml_keys.pair(cfg, saml_keys.SIGNING)
    return signing.key, signing.cert


def ensure_sp_certificate(cfg):
    """Create the SP signing pair and the encryption pair where missing; return (signing cert path, created)."""
    signing, created = saml_keys.ensure(cfg, saml_keys.SIGNING)
    _, encryption_created = saml_keys.ensure(cfg, saml_keys.ENCRYPTION)
    return signing.cert, created or encryption_created


def _settings(cfg):
    return cfg.sections["saml"]


def _sp_config(cfg, idp_xml=None):
    lib = pysaml2()
    key_path, cert_path = sp_files(cfg)
    if not os.path.exists(cert_path):
        raise errors.SignInUnavailable("This node has no SAML certificate yet: run 'circnode init'.")
    # Decryption (of an encrypted NameID; node/identity/saml_crypto.py decrypts assertions) tries these in order.
    encryption = [{"key_file": p.key, "cert_file": p.cert} for p in saml_keys.published(cfg, saml_keys.ENCRYPTION)]
    settings = {
        "entityid": entity_id(cfg),
        "key_file": key_path, "cert_file": cert_path,
        "encryption_keypairs": encryption or None,
        "xmlsec_binary": xmlsec_binary(cfg),
        "service": {"sp": {
            "name": cfg.node["name"],
            "endpoints": {"assertion_consumer_service": [(acs_url(cfg), lib.POST)]},
            "authn_requests_signed": True,
            "want_assertions_signed": True,
            "want_response_signed": False,  # many IdPs sign only the assertion; that one is required
            "allow_unsolicited": False,
        }},
        "metadata": {"inline": [idp_xml]} if idp_xml else {},
        "accepted_time_diff": _settings(cfg)["clock_skew_seconds"],
        "allow_unknown_attributes": True,
        "only_use_keys_in_metadata": True,  # never trust a certificate the message brings along
        "signing_algorithm": lib.SIG_RSA_SHA256, "digest_algorithm": lib.DIGEST_SHA256,
    }
    config = lib.SPConfig()
    config.load(settings)
    return config


# --- identity providers of the institutions --------------------------------

def idp_settings(cfg, institution):
    """(metadata source, patron id attribute) for INSTITUTION; refuse when none is configured.

    The source is a URL, a file path, or a saml_federation.Source: the IdP's entity id in the
    federation's aggregate ([peer:CODE] idp_entity_id).
    """
    if institution == cfg.institution:
        source, attribute = cfg.node.get("idp_metadata", ""), cfg.node.get("patron_id_attribute", "uid")
        entity_id = cfg.node.get("idp_entity_id", "")
    elif institution in cfg.peers:
        peer = cfg.peers[institution]
        source, attribute, entity_id = peer.idp_metadata, peer.patron_id_attribute, peer.idp_entity_id
    else:
        raise errors.UnknownInstitution(f"{institution!r} is not a library of this network.")
    if entity_id:
        return saml_federation.Source(entity_id), attribute
    if not source:
        raise errors.SignInUnavailable(f"Sign-in at {institution} is not set up at this library.")
    if not source.startswith(("http://", "https://")):
        source = os.path.join(os.path.dirname(cfg.path), source)
    return source, attribute


def sign_in_problem(cfg, institution, now):
    """Why sign-in at INSTITUTION (one of sign_in_institutions) cannot work now, as a refusal, or None.

    Only what can be known without a network call: an IdP from the federation's aggregate that is
    missing from the last good copy, or no usable copy.  An IdP's own metadata URL is tried at sign-in.
    """
    source, _ = idp_settings(cfg, institution)
    if not isinstance(source, saml_federation.Source):
        return None
    try:
        saml_federation.idp_metadata(cfg, source, cfg.library_name(institution), now, fetch=False)
    except errors.SignInUnavailable as exc:
        return exc
    return None


def _read_metadata(source, cached, refresh_seconds):
    """(xml text, version) of SOURCE; a URL is fetched again after REFRESH_SECONDS."""
    if source.startswith(("http://", "https://")):
        if cached and time.monotonic() - cached[1] < refresh_seconds:
            return cached[0], cached[1]
        try:
            response = requests.get(source, timeout=10)
            response.raise_for_status()
            if len(response.content) > 5 * 1024 * 1024:
                raise ValueError("metadata larger than 5 MB")
            return response.text, time.monotonic()
        except (requests.RequestException, ValueError) as exc:
            if cached:
                log.warning("could not refresh IdP metadata %s (%s); keeping the copy we have", source, exc)
                return cached[0], cached[1]
            raise errors.SignInUnavailable(f"The identity provider's metadata could not be fetched "
                                           f"({exc.__class__.__name__}).") from None
    try:
        version = os.stat(source).st_mtime_ns
        if cached and cached[1] == version:
            return cached[0], version
        with open(source, encoding="utf-8") as handle:
            return handle.read(), version
    except OSError:
        raise errors.SignInUnavailable(f"The identity provider's metadata file {source} cannot be read.") from None


def _metadata(cfg, institution, source, cached, now):
    """(xml text, version) of INSTITUTION's IdP metadata from SOURCE; CACHED: the (text, version) in hand."""
    if isinstance(source, saml_federation.Source):  # the last good copy of the aggregate, valid at NOW
        return saml_federation.idp_metadata(cfg, source, cfg.library_name(institution), now)
    return _read_metadata(source, cached, _settings(cfg)["metadata_refresh_seconds"])


def client_for(cfg, institution, now):
    """(pysaml2 client that knows only INSTITUTION's IdP, that IdP's entity id).

    One client per institution, so a response signed by another institution's
    IdP finds no key and cannot pass for the chosen one.
    """
    source, attribute = idp_settings(cfg, institution)
    key = (cfg.path, institution)
    keys_version = saml_keys.version(cfg)  # a key rollover (another process) makes older clients stale
    with _lock:
        cached = _clients.get(key)
        if cached and cached["source"] == source and cached["keys"] == keys_version:
            text, version = _metadata(cfg, institution, source, (cached["xml"], cached["version"]), now)
            if version == cached["version"]:
                return cached["client"], cached["idp"], attribute
        else:
            text, version = _metadata(cfg, institution, source, None, now)
        try:
            client = pysaml2().Saml2Client(_sp_config(cfg, text))
            idps = list(client.metadata.identity_providers())
        except errors.CircnodeError:
            raise
        except Exception as exc:
            log.error("IdP metadata for %s from %s is not usable: %s", institution, source, exc.__class__.__name__)
            raise errors.SignInUnavailable(f"The identity provider metadata of {institution} is not usable.") from None
        if len(idps) != 1:
            raise errors.SignInUnavailable(
                f"The metadata of {institution} must describe exactly one identity provider (found {len(idps)}).")
        _clients[key] = {"source": source, "xml": text, "version": version, "client": client, "idp": idps[0],
                         "keys": keys_version}
        return client, idps[0], attribute


# --- sending the patron to their IdP ---------------------------------------

def start_login(cfg, institution, purpose, now, handle_hash="", phone_link_id=None):
    """Record a new outstanding AuthnRequest for INSTITUTION and return the IdP URL to redirect to."""
    client, idp, _ = client_for(cfg, institution, now)
    lib = pysaml2()
    with _lock:
        # On a shared desk computer, the previous patron's IdP session must not sign in the next one.
        extra = {"force_authn": "true"} if purpose == "desk" else {}
        request_id, info = client.prepare_for_authenticate(
            entityid=idp, relay_state="", binding=lib.REDIRECT, sign=True,
            sigalg=lib.SIG_RSA_SHA256, digest_alg=lib.DIGEST_SHA256, **extra)
    location = dict(info["headers"])["Location"]
    lifetime = datetime.timedelta(seconds=_settings(cfg)["request_seconds"])
    with database.atomic():
        SamlRequest.delete().where(SamlRequest.expires_at < now - datetime.timedelta(days=1)).execute()
        SamlRequest.create(id=request_id, institution=institution, purpose=purpose, handle_hash=handle_hash,
                           phone_link_id=phone_link_id, created_at=now, expires_at=now + lifetime)
    return location


# --- checking the answer ---------------------------------------------------

def _refuse(cls, reason, request_id="", institution=""):
    """Log why (never the document or the patron's attributes) and return the refusal to raise."""
    request_id = re.sub(r"[^A-Za-z0-9_.:-]", "?", request_id or "-")[:80]  # it may come from an attacker
    log.warning("SAML response refused: %s (institution=%s, request=%s)", cls.code, institution or "-",
                request_id)
    return cls(reason)


def _parse(saml_response):
    """(raw XML bytes, root element) of a POSTed SAMLResponse, or SamlInvalid."""
    if not saml_response or len(saml_response) > MAX_RESPONSE_BYTES:
        raise _refuse(errors.SamlInvalid, "No sign-in answer was received, or it was too large.")
    try:
        xml = base64.b64decode(saml_response.strip(), validate=False)
    except (binascii.Error, ValueError):
        raise _refuse(errors.SamlInvalid, "The sign-in answer is not valid base64.") from None
    # The POST binding carries plain XML; refusing anything else keeps deflate bombs out.
    if not xml.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise _refuse(errors.SamlInvalid, "The sign-in answer is not an XML document.")
    try:
        root = SafeET.fromstring(xml, forbid_dtd=True)
    except Exception:
        raise _refuse(errors.SamlInvalid, "The sign-in answer is not well-formed XML.") from None
    if root.tag != f"{{{NS['samlp']}}}Response":
        raise _refuse(errors.SamlInvalid, "The sign-in answer is not a SAML Response.")
    return xml, root


def _claim_request(request_id, now):
    """Mark the outstanding request answered (once); refuse unknown, used or expired ones."""
    if not request_id:
        raise _refuse(errors.SamlUnsolicited, "This sign-in answer does not reply to a request of this library.")
    with database.atomic():
        claimed = (SamlRequest.update(state="consumed")
                   .where((SamlRequest.id == request_id) & (SamlRequest.state == "pending")
                          & (SamlRequest.expires_at > now)).execute())
        row = SamlRequest.get_or_none(SamlRequest.id == request_id)
    if row is None:
        raise _refuse(errors.SamlUnsolicited, "This sign-in answer does not reply to a request of this library.",
                      request_id)
    if not claimed:
        if row.state != "pending":
            raise _refuse(errors.SamlReplay, "This sign-in answer was used already. Start again.",
                          request_id, row.institution)
        raise _refuse(errors.SamlExpired, "The sign-in took too long. Start again.", request_id, row.institution)
    return row


def _time(text):
    return datetime.datetime.strptime(text.strip()[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)


def _assertion_place(root, decrypted):
    """The elements an assertion may be a child of: the Response, or (decrypted) its one EncryptedAssertion."""
    if not decrypted:
        return [root]
    return [element for element in root if element.tag == f"{{{NS['saml']}}}EncryptedAssertion"]


def _precheck(cfg, root, row, idp, now, decrypted=False):
    """Structural checks on the raw (or decrypted) document that name the fault clearly (pysaml2 verifies after)."""
    refuse = lambda cls, reason: _refuse(cls, reason, row.id, row.institution)  # noqa: E731
    issuer = root.find("saml:Issuer", NS)
    assertions = root.findall(".//saml:Assertion", NS)
    if (not decrypted and root.findall(".//saml:EncryptedAssertion", NS)) or len(assertions) != 1:
        raise refuse(errors.SamlInvalid, "The sign-in answer must hold exactly one assertion.")
    ids = [element.get("ID") for element in root.iter() if element.get("ID") is not None]
    if len(ids) != len(set(ids)):  # duplicate IDs are the stuff of signature wrapping
        raise refuse(errors.SamlInvalid, "The sign-in answer is malformed (duplicate IDs).")
    assertion = assertions[0]
    if not any(assertion in list(parent) for parent in _assertion_place(root, decrypted)):
        raise refuse(errors.SamlInvalid, "The assertion is not where a SAML Response keeps it.")
    saml_crypto.check_signature_algorithms(root, _settings(cfg)["allow_sha1"], refuse)
    saml_crypto.check_encrypted_ids(cfg, assertion, refuse)
    a_issuer = assertion.find("saml:Issuer", NS)
    issuers = {(element.text or "").strip() for element in (issuer, a_issuer) if element is not None}
    if issuers != {idp}:
        raise refuse(errors.SamlWrongInstitution, "This answer comes from another institution's sign-in "
                                                  "service than the one chosen at the desk.")
    if root.get("Destination") != acs_url(cfg):
        raise refuse(errors.SamlWrongDestination, "This sign-in answer was addressed to another service.")
    if assertion.find("ds:Signature", NS) is None:
        raise refuse(errors.SamlUnsigned, "The sign-in answer carries no signed assertion.")
    audiences = [[(a.text or "").strip() for a in restriction.findall("saml:Audience", NS)]
                 for restriction in assertion.findall("saml:Conditions/saml:AudienceRestriction", NS)]
    if not audiences or any(entity_id(cfg) not in group for group in audiences):
        raise refuse(errors.SamlWrongAudience, "The assertion was made for another service, not this library.")
    skew = datetime.timedelta(seconds=_settings(cfg)["clock_skew_seconds"])
    limits = [element.get("NotOnOrAfter") for element in
              assertion.findall("saml:Conditions", NS) + assertion.findall(".//saml:SubjectConfirmationData", NS)]
    starts = [element.get("NotBefore") for element in assertion.findall("saml:Conditions", NS)]
    try:
        if not all(limits) or any(_time(limit) <= now - skew for limit in limits):
            raise refuse(errors.SamlExpired, "The sign-in answer has expired. Start again.")
        if any(start and _time(start) > now + skew for start in starts):
            raise refuse(errors.SamlExpired, "The sign-in answer is not valid yet (check the clocks).")
    except ValueError:
        raise refuse(errors.SamlInvalid, "The sign-in answer has malformed times.") from None


def _pysaml2_verify(cfg, client, saml_response, row):
    """pysaml2's full check: signature by the IdP's metadata key (xmlsec1), conditions, subject."""
    lib = pysaml2()
    try:
        with _lock:
            answer = client.parse_authn_request_response(
                saml_response, lib.POST, outstanding={row.id: row.purpose},
                conv_info={"entity_id": entity_id(cfg)})
            if answer is not None and answer.name_id is not None:
                try:  # pysaml2 keeps a person cache we never read; do not let it grow
                    client.users.remove_person(answer.name_id)
                except KeyError:
                    pass
    except Exception as exc:
        for cause, cls, reason in lib.refusals:
            if isinstance(exc, cause):
                raise _refuse(cls, reason, row.id, row.institution) from None
        log.info("pysaml2 refused the response: %s", exc.__class__.__name__)
        raise _refuse(errors.SamlBadSignature if "sign" in exc.__class__.__name__.lower() else errors.SamlInvalid,
                      "The sign-in answer could not be verified.", row.id, row.institution) from None
    if answer is None or answer.assertion is None:
        raise _refuse(errors.SamlInvalid, "The sign-in answer could not be verified.", row.id, row.institution)
    return answer


def _postcheck(cfg, answer, row, idp, now):
    """Re-check on the verified objects what the raw pre-check saw, and record the assertion id."""
    refuse = lambda cls, reason: _refuse(cls, reason, row.id, row.institution)  # noqa: E731
    assertion = answer.assertion
    if not assertion.signature:
        raise refuse(errors.SamlUnsigned, "The sign-in answer carries no signed assertion.")
    # The Response's own Issuer is optional in SAML; the assertion's is not.
    if (assertion.issuer.text or "").strip() != idp or answer.issuer() not in ("", idp):
        raise refuse(errors.SamlWrongInstitution, "This answer comes from another institution's sign-in service.")
    if answer.response.destination != acs_url(cfg) or answer.in_response_to != row.id:
        raise refuse(errors.SamlWrongDestination, "This sign-in answer was addressed to another service.")
    restrictions = assertion.conditions.audience_restriction if assertion.conditions else []
    if not restrictions or any(entity_id(cfg) not in [(a.text or "").strip() for a in r.audience]
                               for r in restrictions):
        raise refuse(errors.SamlWrongAudience, "The assertion was made for another service, not this library.")
    confirmations = [c for c in assertion.subject.subject_confirmation
                     if c.method == BEARER and c.subject_confirmation_data is not None
                     and c.subject_confirmation_data.recipient == acs_url(cfg)
                     and c.subject_confirmation_data.in_response_to == row.id
                     and c.subject_confirmation_data.not_on_or_after]
    if not confirmations:
        raise refuse(errors.SamlInvalid, "The assertion is not confirmed for this sign-in.")
    skew = datetime.timedelta(seconds=_settings(cfg)["clock_skew_seconds"])
    expires = max(_time(c.subject_confirmation_data.not_on_or_after) for c in confirmations) + skew
    try:
        with database.atomic():
            SamlAssertion.delete().where(SamlAssertion.expires_at < now).execute()
            SamlAssertion.create(issuer=idp, assertion_id=assertion.id, expires_at=max(expires, now))
    except IntegrityError:
        raise refuse(errors.SamlReplay, "This sign-in answer was used already. Start again.") from None


def _identity(answer, row, attribute, now):
    """The Identity the verified ANSWER vouches for; ATTRIBUTE is matched by any of its names (friendly, OID)."""
    ava = answer.ava or {}
    if attribute.lower() == "name_id":
        text = (answer.name_id.text or "").strip() if answer.name_id is not None else ""
        values = [text] if text else []
    else:
        values = saml_attributes.values(ava, attribute)
    if len(values) != 1 or len(values[0]) > 200:
        raise _refuse(errors.SamlNoPatronId, f"Your library did not tell us your patron id ({attribute}). "
                                             "Ask its staff to release it to this library.", row.id, row.institution)

    def first(*names):
        for name in names:
            found = saml_attributes.values(ava, name)
            if found:
                return found[0][:200]
        return ""
    name = first(*saml_attributes.NAME_ATTRIBUTES) or " ".join(
        filter(None, [first(saml_attributes.GIVEN_NAME), first(saml_attributes.SURNAME, "surname")]))
    return Identity(institution=row.institution, id=values[0], name=name,
                    email=first(saml_attributes.EMAIL_ATTRIBUTE, "email"), verified_at=now.isoformat())


def verify_response(cfg, saml_response, now):
    """The verified (SamlRequest row, Identity) of a POSTed SAMLResponse; refuse with a stable code.

    The outstanding request is claimed before anything else, so an answer is
    good for one sign-in at most, whatever happens next.
    """
    xml, root = _parse(saml_response)
    row = _claim_request(root.get("InResponseTo"), now)
    try:
        client, idp, attribute = client_for(cfg, row.institution, now)
        decrypted = saml_crypto.is_encrypted(root)
        if decrypted:  # every check below then runs on the decrypted assertion; pysaml2 decrypts its own copy
            xml, root = saml_crypto.decrypt_response(
                cfg, xmlsec_binary(cfg), xml, root,
                lambda cls, reason: _refuse(cls, reason, row.id, row.institution))
        _precheck(cfg, root, row, idp, now, decrypted)
        answer = _pysaml2_verify(cfg, client, saml_response.strip(), row)
        _postcheck(cfg, answer, row, idp, now)
        identity = _identity(answer, row, attribute, now)
    except errors.CircnodeError:
        SamlRequest.update(state="refused").where(SamlRequest.id == row.id).execute()
        raise
    with database.atomic():
        SamlRequest.update(state="verified", identity=json.dumps(identity.to_dict())).where(
            SamlRequest.id == row.id).execute()
    log.info("patron of %s signed in (request %s, %s)", row.institution, row.id, row.purpose)
    return row, identity


def take_verified(request_id, handle_hash, now):
    """The Identity of a verified request started by the browser holding HANDLE; usable once."""
    with database.atomic():
        taken = (SamlRequest.update(state="used")
                 .where((SamlRequest.id == request_id) & (SamlRequest.state == "verified")
                        & (SamlRequest.handle_hash == handle_hash) & (SamlRequest.handle_hash != "")
                        & (SamlRequest.expires_at > now)).execute())
        row = SamlRequest.get_or_none(SamlRequest.id == request_id)
    if not taken or row is None:
        raise errors.SamlReplay("This sign-in was already used, or was started in another browser. Start again.")
    return row, Identity(**json.loads(row.identity))
