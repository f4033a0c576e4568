"""This node's SAML service provider keys: one pair for signing, one for encryption, and their rollover.

Every key is an RSA key (mode 0600) with a self-signed certificate, kept in
the node's data_dir:

    saml_sp.key / saml_sp.crt                        signs AuthnRequests
    saml_sp_encryption.key / saml_sp_encryption.crt  IdPs encrypt assertions for it
    saml_sp_next.*, saml_sp_encryption_next.*        only during a rollover

Signing and encryption keys are separate on purpose: a key that decrypts what
anyone sends it must never be the one whose signatures the IdPs trust.

A rollover (``circnode saml rollover start``) makes the *next* pair of each
role; the metadata then publishes old and new side by side, the old key still
signs, and decryption tries both.  ``finish`` retires the old pairs (moved to
data_dir/saml_retired/STAMP/) and the next ones become current.  Nothing here
knows Flask.
"""
import datetime
import logging
import os
from dataclasses import dataclass

from node.domain import errors

log = logging.getLogger(__name__)
SIGNING, ENCRYPTION = "signing", "encryption"
_STEMS = {SIGNING: "saml_sp", ENCRYPTION: "saml_sp_encryption"}
RETIRED_DIR = "saml_retired"


@dataclass(frozen=True)
class KeyPair:
    """One RSA key and its certificate, as file paths."""

    key: str
    cert: str

    def exists(self):
        return os.path.exists(self.key) and os.path.exists(self.cert)


def pair(cfg, use, stage="current"):
    """The KeyPair of USE (signing or encryption) at STAGE (current or next); the files may not exist."""
    stem = _STEMS[use] + ("_next" if stage == "next" else "")
    return KeyPair(os.path.join(cfg.data_dir, stem + ".key"), os.path.join(cfg.data_dir, stem + ".crt"))


def make_self_signed(key_path, cert_path, common_name, years=10):
    """Write a new RSA key (mode 0600) and a self-signed certificate for it; never overwrite."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365 * years)).sign(key, hashes.SHA256()))
    os.makedirs(os.path.dirname(os.path.abspath(key_path)), exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))


def _make(cfg, keypair, use):
    if os.path.exists(keypair.key):  # a key without its certificate: keep neither half-made
        os.remove(keypair.key)
    make_self_signed(keypair.key, keypair.cert, f"circnode {cfg.institution} SAML SP {use}")


def ensure(cfg, use):
    """Create the current pair of USE if it is missing; return (KeyPair, created)."""
    keypair = pair(cfg, use)
    if keypair.exists():
        return keypair, False
    _make(cfg, keypair, use)
    return keypair, True


def ensure_encryption_on_start(cfg):
    """Give a node initialised before encryption keys existed its encryption pair; return it if made now."""
    if not pair(cfg, SIGNING).exists():
        return None  # never initialised: 'circnode init' makes both
    keypair, created = ensure(cfg, ENCRYPTION)
    if created:
        log.warning("made the SAML encryption key and certificate %s; identity providers that encrypt need "
                    "this node's metadata again (BASE_URL/saml/metadata)", keypair.cert)
    return keypair if created else None


def published(cfg, use):
    """The pairs of USE the metadata publishes (and decryption tries), both during a rollover.

    The next encryption certificate comes first: IdPs such as SimpleSAMLphp
    encrypt for the first one they find, and the next key outlives ``finish``,
    so an IdP that took the metadata during the rollover keeps working after it.
    """
    stages = ("next", "current") if use == ENCRYPTION else ("current", "next")
    return [p for p in (pair(cfg, use, stage) for stage in stages) if p.exists()]


def rolling_over(cfg):
    """True between ``rollover start`` and ``rollover finish``."""
    return any(pair(cfg, use, "next").exists() for use in (SIGNING, ENCRYPTION))


def version(cfg):
    """Changes whenever a key file is made, replaced or retired (clients built on the old set are stale)."""
    stamps = []
    for use in (SIGNING, ENCRYPTION):
        for stage in ("current", "next"):
            keypair = pair(cfg, use, stage)
            try:
                stamps.append((os.stat(keypair.key).st_mtime_ns, os.stat(keypair.cert).st_mtime_ns))
            except OSError:
                stamps.append(None)
    return tuple(stamps)


def certificate_text(path):
    """The base64 body of the PEM certificate at PATH (what metadata and KeyInfo carry)."""
    with open(path, encoding="ascii") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("-----")]
    return "".join(lines)


def certificate_expiry(path):
    from cryptography import x509
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read()).not_valid_after_utc


# --- rollover ---------------------------------------------------------------

def rollover_start(cfg):
    """Make the next signing and encryption pairs (published beside the current ones); return them.

    Refuses (KeyRolloverRefused) when a rollover is already under way or the node has no current keys.
    """
    if not pair(cfg, SIGNING).exists():
        raise errors.KeyRolloverRefused("This node has no SAML keys yet: run 'circnode init' first.")
    if rolling_over(cfg):
        raise errors.KeyRolloverRefused("A rollover is already under way: finish it first "
                                        "('circnode saml rollover finish').")
    ensure(cfg, ENCRYPTION)
    made = []
    for use in (SIGNING, ENCRYPTION):
        keypair = pair(cfg, use, "next")
        _make(cfg, keypair, use)
        made.append(keypair)
    return made


def rollover_finish(cfg, now):
    """Retire the current pairs and make the next ones current; return the folder the old ones went to."""
    if not all(pair(cfg, use, "next").exists() for use in (SIGNING, ENCRYPTION)):
        raise errors.KeyRolloverRefused("No rollover is under way: start one with 'circnode saml rollover start'.")
    retired = os.path.join(cfg.data_dir, RETIRED_DIR, now.strftime("%Y%m%dT%H%M%SZ"))
    os.makedirs(retired, mode=0o700, exist_ok=True)
    for use in (SIGNING, ENCRYPTION):
        current, following = pair(cfg, use), pair(cfg, use, "next")
        for old, new in ((current.cert, following.cert), (current.key, following.key)):
            if os.path.exists(old):  # a hard link keeps a copy; the replace below is atomic
                os.link(old, os.path.join(retired, os.path.basename(old)))
            os.replace(new, old)
    return retired
