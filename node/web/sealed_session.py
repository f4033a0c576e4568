"""The session cookie, encrypted as well as signed.

Flask's own cookie is signed but readable: anyone at the browser can decode it. The desk keeps a
visit in it across staff sign-out (node/web/auth.py KEPT_ACROSS_SIGN_IN: the patron's name, id,
e-mail and network pass), so a signed-out desk would still carry, readable, whom it was lending to.
Here the cookie is Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``, already a
dependency) under a key derived from ``[node] secret_key``: the same session, unreadable, and a
cookie that was altered or is older than the session's life is no session, as before.
"""
import base64
import zlib

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature


class _Sealed:
    """Dumps and loads a session like Flask's signing serializer, sealing the bytes with Fernet."""

    def __init__(self, secret):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"circnode.session").derive(secret.encode() if isinstance(secret, str) else secret)
        self.fernet = Fernet(base64.urlsafe_b64encode(key))
        self.tagged = TaggedJSONSerializer()

    def dumps(self, value):
        return self.fernet.encrypt(zlib.compress(self.tagged.dumps(value).encode())).decode("ascii")

    def loads(self, text, max_age=None):
        try:
            raw = self.fernet.decrypt(text.encode("ascii") if isinstance(text, str) else text, ttl=max_age)
            return self.tagged.loads(zlib.decompress(raw).decode())
        except (InvalidToken, ValueError, zlib.error):  # altered, too old, a plain Flask cookie: no session
            raise BadSignature("not a session of this node") from None


class SealedSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session, with the cookie encrypted (see the module)."""

    def get_signing_serializer(self, app):
        if not app.secret_key:
            return None
        return _Sealed(app.secret_key)
