"""What the node's log may say about a patron: never an id, name or email, at most a short keyed hash.

A line that must tell two patrons apart carries ``patron_hash(cfg, id)``: the
first 10 hex digits of HMAC-SHA256 over the id, keyed by a secret derived
from the node's own key (node/keys.py).  Only someone holding the node key
can link a hash to an id (``circnode log-hash ID`` prints the hash of ID),
and two nodes give the same patron different hashes.  A request's path may
carry a patron id (``/api/v1/patrons/<id>/standing``), so lines name the
route's rule, never the path as sent.
"""
import hashlib
import hmac
import logging

from cryptography.hazmat.primitives import serialization

from node.keys import key_path, private_key

HASH_DIGITS = 10
_PURPOSE = b"circnode log hash v1"  # a key of its own, never the signing key itself
_secrets = {}
# Third-party loggers whose DEBUG lines quote SQL parameters (peewee) or request paths (urllib3).
_TALKATIVE = ("peewee", "urllib3")


def _secret(cfg):
    path = key_path(cfg)
    if path not in _secrets:  # like the key itself, read once per process
        raw = private_key(cfg).private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption())
        _secrets[path] = hmac.new(raw, _PURPOSE, hashlib.sha256).digest()
    return _secrets[path]


def patron_hash(cfg, patron_id):
    """The patron's log name: 10 hex digits of HMAC-SHA256(node secret, id), the same on every line."""
    return hmac.new(_secret(cfg), str(patron_id).encode("utf-8"), hashlib.sha256).hexdigest()[:HASH_DIGITS]


def route(request):
    """REQUEST's route as the app declares it (``/api/v1/patrons/<patron_id:home_id>/standing``), never its path."""
    rule = request.url_rule
    return rule.rule if rule is not None else "(no route)"


class _WithoutPaths(logging.Filter):
    """waitress names the request's path when a client goes away (a lender's standing check timing out)
    or a request crashes: keep the line, drop the path."""

    def filter(self, record):
        message = record.getMessage()
        if " while serving " in message:
            record.msg, record.args = message.split(" while serving ", 1)[0] + " while serving a request", ()
        return True


def configure(verbose=False):
    """Log to standard error; with VERBOSE circnode's own DEBUG lines, never peewee's or urllib3's."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in _TALKATIVE:
        logging.getLogger(name).setLevel(logging.INFO)
    waitress = logging.getLogger("waitress")
    if not any(isinstance(f, _WithoutPaths) for f in waitress.filters):
        waitress.addFilter(_WithoutPaths())
