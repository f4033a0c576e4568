"""Single-use sign-in links: the desk shows one as a QR code, the patron opens it on their phone.

So that no password is typed on a shared desk computer, the patron signs in
at their IdP on their own phone; the verified identity lands on the link, and
the desk that created the link picks it up.  Only a hash of the link's token
is stored.  States: new -> opened (the phone went to the IdP) -> verified
(the IdP's answer passed every check) -> used (the desk continued).
"""
import datetime
import hashlib
import json
import secrets

from node.domain import errors
from node.store.db import database
from node.store.models import PhoneLink
from node.identity.saml_sp import Identity


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def create(cfg, institution, now):
    """A new link for INSTITUTION's patrons: (row, secret token for the URL)."""
    token = secrets.token_urlsafe(24)
    lifetime = datetime.timedelta(seconds=cfg.sections["saml"]["phone_link_seconds"])
    with database.atomic():
        PhoneLink.delete().where(PhoneLink.expires_at < now - datetime.timedelta(days=1)).execute()
        link = PhoneLink.create(token_hash=_hash(token), institution=institution, created_at=now,
                                expires_at=now + lifetime)
    return link, token


def open_link(token, now):
    """Mark the link behind TOKEN opened (once) and return it; refuse unknown, expired or used links."""
    with database.atomic():
        link = PhoneLink.get_or_none(PhoneLink.token_hash == _hash(token or ""))
        if link is None:
            raise errors.LinkUnknown("This sign-in link is not valid. Ask at the desk for a new code.")
        if link.state != "new":
            raise errors.LinkUsed("This sign-in link was used already. Ask at the desk for a new code.")
        if link.expires_at <= now:
            raise errors.LinkExpired("This sign-in link has expired. Ask at the desk for a new code.")
        PhoneLink.update(state="opened").where((PhoneLink.id == link.id) & (PhoneLink.state == "new")).execute()
    return link


def complete(link_id, identity, now):
    """Put a verified IDENTITY on an opened link, so the desk can continue with it."""
    with database.atomic():
        done = (PhoneLink.update(state="verified", identity=json.dumps(identity.to_dict()))
                .where((PhoneLink.id == link_id) & (PhoneLink.state == "opened")).execute())
    if not done:
        raise errors.LinkUsed("This sign-in link was used already. Ask at the desk for a new code.")


def status(link_id, now):
    """new, opened, verified, used or expired: what the waiting desk shows."""
    link = PhoneLink.get_or_none(PhoneLink.id == link_id)
    if link is None:
        return "expired"
    if link.state in ("new", "opened") and link.expires_at <= now:
        return "expired"
    return link.state


def take(link_id, now):
    """The Identity verified on the link, handed to the desk once."""
    with database.atomic():
        taken = (PhoneLink.update(state="used")
                 .where((PhoneLink.id == link_id) & (PhoneLink.state == "verified")).execute())
        link = PhoneLink.get_or_none(PhoneLink.id == link_id)
    if not taken or link is None:
        raise errors.LinkUsed("The phone sign-in was already used at the desk.")
    return Identity(**json.loads(link.identity))
