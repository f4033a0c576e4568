"""Which XML signature and encryption algorithms this node accepts, and decrypting an encrypted assertion.

Weak algorithms are refused before any signature is checked: MD5 always,
SHA-1 unless ``[saml] allow_sha1 = yes``; RSA PKCS#1 v1.5 key transport
always (its padding oracle would let an attacker decrypt what IdPs send us);
3DES always.  The metadata advertises exactly the accepted lists below.

Decryption is done here, with xmlsec1 and the node's encryption keys (current,
then next during a rollover), so that the checks in node/identity/saml_sp.py run on
the decrypted document and a failure names its cause.  Every failure of
decryption itself, whatever xmlsec1 said, is the same refusal
(``saml_cannot_decrypt``), so the answer reveals nothing about padding.
"""
import logging
import os
import subprocess
import tempfile

from defusedxml import ElementTree as SafeET

from node.domain import errors

from node.identity import saml_keys

log = logging.getLogger(__name__)

DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
MORE = "http://www.w3.org/2001/04/xmldsig-more#"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
      "ds": DS, "xenc": XENC}

# Strongest first: the order the metadata lists them in.
DIGESTS = [XENC + "sha512", MORE + "sha384", XENC + "sha256"]
SIGNATURES = [MORE + "rsa-sha512", MORE + "rsa-sha384", MORE + "rsa-sha256",
              MORE + "ecdsa-sha512", MORE + "ecdsa-sha384", MORE + "ecdsa-sha256"]
SHA1_DIGESTS = [DS + "sha1"]
SHA1_SIGNATURES = [DS + "rsa-sha1", MORE + "ecdsa-sha1"]
DATA_ENCRYPTION = [XENC11 + "aes256-gcm", XENC11 + "aes128-gcm", XENC11 + "aes192-gcm",
                   XENC + "aes256-cbc", XENC + "aes128-cbc", XENC + "aes192-cbc"]
KEY_TRANSPORT = [XENC + "rsa-oaep-mgf1p", XENC11 + "rsa-oaep"]
# The OAEP mask digest is part of key transport, not a signature: SHA-1 there is fine (RFC 8017).
OAEP_DIGESTS = [DS + "sha1", XENC + "sha256", MORE + "sha384", XENC + "sha512"]


def accepted_digests(allow_sha1):
    return DIGESTS + (SHA1_DIGESTS if allow_sha1 else [])


def accepted_signatures(allow_sha1):
    return SIGNATURES + (SHA1_SIGNATURES if allow_sha1 else [])


def _short(uri):
    return (uri or "none").rsplit("#", 1)[-1][:40]


def check_signature_algorithms(root, allow_sha1, refuse):
    """Refuse (saml_weak_algorithm) any signature in ROOT made or digested with an algorithm not accepted."""
    signatures, digests = accepted_signatures(allow_sha1), accepted_digests(allow_sha1)
    for signed_info in root.iter(f"{{{DS}}}SignedInfo"):
        method = signed_info.find("ds:SignatureMethod", NS)
        algorithm = method.get("Algorithm") if method is not None else None
        if algorithm not in signatures:
            raise refuse(errors.SamlWeakAlgorithm, f"The identity provider signed with {_short(algorithm)}, "
                         "which this library does not accept; ask it to sign with RSA-SHA256.")
        for digest in signed_info.findall("ds:Reference/ds:DigestMethod", NS):
            if digest.get("Algorithm") not in digests:
                raise refuse(errors.SamlWeakAlgorithm, f"The identity provider used the digest "
                             f"{_short(digest.get('Algorithm'))}, which this library does not accept; "
                             "ask it to use SHA-256.")


def _check_encryption_algorithms(encrypted_data, refuse, what):
    method = encrypted_data.find("xenc:EncryptionMethod", NS)
    data_alg = method.get("Algorithm") if method is not None else None
    if data_alg not in DATA_ENCRYPTION:
        raise refuse(errors.SamlWeakAlgorithm, f"The {what} is encrypted with {_short(data_alg)}, which this "
                     "library does not accept; ask the identity provider to use AES (GCM or CBC).")
    for encrypted_key in encrypted_data.iter(f"{{{XENC}}}EncryptedKey"):
        method = encrypted_key.find("xenc:EncryptionMethod", NS)
        key_alg = method.get("Algorithm") if method is not None else None
        if key_alg not in KEY_TRANSPORT:
            raise refuse(errors.SamlWeakAlgorithm, f"The key of the {what} is encrypted with {_short(key_alg)}, "
                         "which this library does not accept; ask the identity provider to use RSA-OAEP.")
        for digest in method.findall("ds:DigestMethod", NS):
            if digest.get("Algorithm") not in OAEP_DIGESTS:
                raise refuse(errors.SamlWeakAlgorithm, f"The key of the {what} is encrypted with an unknown digest.")


def _check_recipient(cfg, encrypted_data, refuse, what):
    """Refuse (saml_encrypted_for_another_key) when the IdP names the certificate it encrypted for, not ours."""
    named = _recipient_certificates(encrypted_data)
    ours = {saml_keys.certificate_text(p.cert) for p in saml_keys.published(cfg, saml_keys.ENCRYPTION)}
    if not named or ours.intersection(named):
        return
    signing = {saml_keys.certificate_text(p.cert) for p in saml_keys.published(cfg, saml_keys.SIGNING)}
    if signing.intersection(named):
        raise refuse(errors.SamlEncryptedForAnotherKey,
                     f"The identity provider encrypted the {what} for this library's signing certificate, "
                     "not its encryption certificate: it needs this library's current metadata.")
    raise refuse(errors.SamlEncryptedForAnotherKey,
                 f"The identity provider encrypted the {what} for a certificate that is not this library's "
                 "encryption certificate: it needs this library's current metadata.")


def check_encrypted_ids(cfg, assertion, refuse):
    """Refuse an encrypted NameID made with a refused algorithm or for another key (pysaml2 decrypts it)."""
    for encrypted_id in assertion.iter(f"{{{NS['saml']}}}EncryptedID"):
        data = encrypted_id.find("xenc:EncryptedData", NS)
        if data is None:
            raise refuse(errors.SamlInvalid, "The encrypted NameID is malformed.")
        _check_encryption_algorithms(data, refuse, "NameID")
        _check_recipient(cfg, data, refuse, "NameID")


def is_encrypted(root):
    """True when the Response carries an EncryptedAssertion (anywhere: the checks decide if it is allowed)."""
    return root.find(".//saml:EncryptedAssertion", NS) is not None


def _recipient_certificates(encrypted_data):
    """The certificates the IdP says it encrypted for (base64, whitespace removed), if it says."""
    found = []
    for encrypted_key in encrypted_data.iter(f"{{{XENC}}}EncryptedKey"):
        for cert in encrypted_key.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS):
            found.append("".join((cert.text or "").split()))
    return [cert for cert in found if cert]


def _xmlsec_decrypt(xmlsec, xml, key_file):
    """The document XML with its assertion's EncryptedData decrypted by KEY_FILE, or None."""
    with tempfile.TemporaryDirectory(prefix="circnode-saml-") as folder:
        path = os.path.join(folder, "response.xml")
        with open(path, "wb") as handle:
            handle.write(xml)
        command = [xmlsec, "--decrypt", "--privkey-pem", key_file,
                   "--enabled-cipher-reference-uris", "empty", "--enabled-retrieval-method-uris", "empty",
                   "--node-xpath", "/*[local-name()='Response']/*[local-name()='EncryptedAssertion']"
                                   "/*[local-name()='EncryptedData']",
                   "--output", os.path.join(folder, "plain.xml"), path]
        try:
            done = subprocess.run(command, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if done.returncode != 0:
            return None
        with open(os.path.join(folder, "plain.xml"), "rb") as handle:
            return handle.read()


def decrypt_response(cfg, xmlsec, xml, root, refuse):
    """(XML, root) of the Response with its one encrypted assertion decrypted in place.

    The result still holds ``EncryptedAssertion`` around the decrypted
    ``Assertion`` (whose signature covers only itself); an encrypted NameID
    inside stays encrypted, as it was when the IdP signed the assertion.
    """
    encrypted = root.findall(".//saml:EncryptedAssertion", NS)
    if len(encrypted) != 1 or encrypted[0] not in list(root) or root.find(".//saml:Assertion", NS) is not None:
        raise refuse(errors.SamlInvalid, "The sign-in answer must hold exactly one assertion, encrypted or not.")
    datas = root.findall(".//xenc:EncryptedData", NS)
    if len(datas) != 1 or datas[0] not in list(encrypted[0]):
        raise refuse(errors.SamlInvalid, "The encrypted assertion is malformed.")
    _check_encryption_algorithms(datas[0], refuse, "assertion")
    _check_recipient(cfg, datas[0], refuse, "assertion")
    keypairs = saml_keys.published(cfg, saml_keys.ENCRYPTION)
    for keypair in keypairs:
        plain = _xmlsec_decrypt(xmlsec, xml, keypair.key)
        if plain is None:
            continue
        try:
            plain_root = SafeET.fromstring(plain, forbid_dtd=True)
        except Exception:
            break  # decrypted to something that is not XML: the same answer as any failure
        return plain, plain_root
    raise refuse(errors.SamlCannotDecrypt,
                 "The encrypted assertion cannot be decrypted with this library's encryption key"
                 + ("s" if len(keypairs) > 1 else "") + ": it was made for another key or damaged on the way. "
                 "The identity provider needs this library's current metadata.")
