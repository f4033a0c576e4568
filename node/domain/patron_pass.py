"""Network passes: a patron's identity and standing, signed by their home node, checked offline.

A branch whose link to the home node is down can still be sure who the
patron is: the pass is signed with the home node's Ed25519 key (the same key
peers already hold as ``[peer:CODE] public_key``), so any lender verifies it
without asking anyone.  Loans made on a pass follow the provisional rules:
the home node accepts or disputes them when the loan event reaches it.

Text form (short enough for a QR code, safe in a URL)::

    CNP1.<base64url(JSON payload)>.<base64url(Ed25519 signature of "CNP1.<payload part>")>

Payload: ``v`` (1), ``iss`` (home institution), ``kid`` (which key signed:
the first 8 bytes of SHA-256 of the raw public key, base64url), ``id``
(home id), ``name``, ``st`` ("ok"), ``iat`` and ``exp`` (Unix seconds).
Specified in docs/identity.md.
"""
import base64
import datetime
import hashlib
import json
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from node.domain import errors
from node.domain.circulation import PASS, Standing, own_patron_standing, refuse_for_standing
from node.store.models import Loan, Patron

PREFIX = "CNP1"
MAX_TEXT = 2000
FUTURE_SKEW = datetime.timedelta(minutes=5)
UTC = datetime.timezone.utc
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass
class NetworkPass:
    institution: str
    home_id: str
    name: str
    issued_at: datetime.datetime
    expires_at: datetime.datetime
    text: str


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    """The bytes of TEXT, which must be the one canonical unpadded base64url spelling of them.

    Python's decoder forgives: it drops characters outside the alphabet
    ("!!!!", "~~~~", spaces) and ignores the unused low bits of the last
    character.  A pass must have one text only (docs/identity.md), so
    anything that does not encode back to itself is a ValueError.
    """
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical base64url of its bytes")
    return data


def key_id(public_key):
    """A short name of an Ed25519 public key: which key a pass claims to be signed with."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(hashlib.sha256(raw).digest()[:8])


def encode(private_key, institution, home_id, name, issued_at, expires_at):
    """The signed text form of a pass (pure: no database, no clock)."""
    payload = {"v": 1, "iss": institution, "kid": key_id(private_key.public_key()), "id": home_id,
               "name": name, "st": "ok", "iat": int(issued_at.timestamp()), "exp": int(expires_at.timestamp())}
    body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    signed = f"{PREFIX}.{body}"
    return f"{signed}.{_b64(private_key.sign(signed.encode()))}"


def issue(cfg, home_id, now):
    """A new pass for our own patron HOME_ID; refused when the patron may not borrow."""
    from node.keys import private_key
    patron = Patron.get_or_none(institution=cfg.institution, home_id=home_id)
    if patron is None:
        raise errors.PatronNotFound(f"No patron {home_id!r} at {cfg.institution}.")
    standing = own_patron_standing(cfg, home_id, now)
    if not standing.ok:
        refuse_for_standing(standing)
    expires = now + datetime.timedelta(days=cfg.sections["pass"]["valid_days"])
    if patron.expires_on:  # never outlive the registration: end of its last day, local time
        last = datetime.datetime.combine(patron.expires_on, datetime.time(23, 59, 59), tzinfo=cfg.tz)
        expires = min(expires, last.astimezone(UTC))
    text = encode(private_key(cfg), cfg.institution, home_id, patron.name, now, expires)
    return NetworkPass(cfg.institution, home_id, patron.name, now, expires, text)


def _issuer_key(cfg, institution):
    from node.keys import decode_public_key
    if institution == cfg.institution:
        from node.keys import private_key
        return private_key(cfg).public_key()
    peer = cfg.peers.get(institution)
    if peer is None or not peer.public_key:
        raise errors.PassWrongIssuer(f"The pass is issued by {institution!r}, whose node key this library "
                                     "does not know.", issuer=institution)
    return decode_public_key(peer.public_key)


def _payload(text):
    parts = text.split(".")
    if len(text) > MAX_TEXT or len(parts) != 3 or parts[0] != PREFIX:
        raise errors.PassInvalid("This is not a circnode network pass.")
    try:
        payload = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except ValueError:
        raise errors.PassInvalid("The network pass is damaged.") from None
    fields = {"iss": str, "kid": str, "id": str, "name": str, "st": str, "iat": int, "exp": int}
    if not isinstance(payload, dict) or payload.get("v") != 1 or not all(
            isinstance(payload.get(key), kind) for key, kind in fields.items()):
        raise errors.PassInvalid("The network pass is damaged or of an unknown version.")
    return payload, f"{parts[0]}.{parts[1]}".encode(), signature


def looks_like_pass(text):
    """True when TEXT was meant as a network pass (it begins "CNP1."), valid or not.

    The desk's patron-id field takes a scanned pass too: such text is never a patron id to send home.
    """
    return isinstance(text, str) and text.strip()[:len(PREFIX) + 1].upper() == f"{PREFIX}."


def verify(cfg, text, now):
    """The NetworkPass in TEXT, checked offline; refuse invalid, foreign, expired or revoked passes.

    TEXT is taken as given: a pass with spaces or a newline around it is another spelling, not the pass.
    """
    if not isinstance(text, str):
        raise errors.PassInvalid("This is not a circnode network pass.")
    payload, signed, signature = _payload(text)
    public_key = _issuer_key(cfg, payload["iss"])
    if payload["kid"] != key_id(public_key):
        raise errors.PassWrongIssuer(f"The pass is not signed with {payload['iss']}'s node key.",
                                     issuer=payload["iss"])
    try:
        public_key.verify(signature, signed)
    except InvalidSignature:
        raise errors.PassInvalid("The network pass was altered: its signature does not match.") from None
    issued = datetime.datetime.fromtimestamp(payload["iat"], UTC)
    expires = datetime.datetime.fromtimestamp(payload["exp"], UTC)
    if payload["st"] != "ok" or issued > now + FUTURE_SKEW:
        raise errors.PassInvalid("The network pass is not valid.")
    if expires <= now:
        raise errors.PassExpired(f"The network pass expired on {expires.astimezone(cfg.tz):%Y-%m-%d %H:%M}. "
                                 "The patron can get a new one from their library's account page.")
    if revoked_since(payload["iss"], payload["id"], issued):
        raise errors.PassRevoked("The patron's home library blocked them after this pass was issued.")
    return NetworkPass(payload["iss"], payload["id"], payload["name"], issued, expires, text)


def revoked_since(institution, home_id, issued_at):
    """True when this node knows the patron was blocked or refused by their home after ISSUED_AT."""
    patron = Patron.get_or_none(institution=institution, home_id=home_id)
    if patron is None:
        return False
    if patron.blocked and patron.updated_at >= issued_at:
        return True
    # A loan the home node refused (unknown or blocked patron) after the pass was issued.
    return Loan.select().where((Loan.patron == patron) & (Loan.disputed == True)  # noqa: E712
                               & (Loan.updated_at >= issued_at)).exists()


def standing_from_pass(cfg, npass, now):
    """The standing a pass gives: our own records for our patrons, else provisional (home not asked)."""
    if npass.institution == cfg.institution:
        return own_patron_standing(cfg, npass.home_id, now)
    return Standing(True, reason="network pass: home node not asked", name=npass.name, provisional=True,
                    source=PASS)


def qr_svg(text, scale=3):
    """TEXT as an inline SVG QR code (for the account page and the desk)."""
    import segno
    return segno.make(text, error="m", micro=False).svg_inline(scale=scale, border=4)
