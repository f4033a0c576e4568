"""The client's real address behind reverse proxies named in ``[node] trusted_proxies``.

werkzeug's ProxyFix believes the last N entries of X-Forwarded-For from
whoever connects: when the node's port is also reachable directly, or N is
one too many, a client writes the header itself and signs in as any address
it likes (dodging its own throttle, or locking another desk out).  Here trust
goes by address instead: the header is read only when the connection comes
from a trusted proxy, and it is walked from the right, skipping further
trusted proxies, to the first address no trusted proxy vouches for.  Only
the address is taken: the node's scheme and host come from ``base_url``,
never from a request.
"""
import ipaddress
import logging

log = logging.getLogger(__name__)


def _address(text):
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address  # ::ffff:10.0.0.1 is 10.0.0.1


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR becomes the client behind the trusted proxies, if any."""

    def __init__(self, app, networks):
        self.app = app
        self.networks = tuple(networks)

    def trusted(self, address):
        return address is not None and any(address in network for network in self.networks)

    def client_address(self, remote_addr, forwarded_for):
        """The client's address given the connection's REMOTE_ADDR and its X-Forwarded-For header."""
        hop = _address(remote_addr or "")
        if not self.trusted(hop) or not forwarded_for:
            return remote_addr
        for entry in reversed(forwarded_for.split(",")):
            address = _address(entry)
            if address is None:  # garbage: nothing left of it can be believed; the last hop answers for it
                break
            hop = address
            if not self.trusted(address):
                break
        return str(hop)

    def __call__(self, environ, start_response):
        remote = environ.get("REMOTE_ADDR", "")
        client = self.client_address(remote, environ.get("HTTP_X_FORWARDED_FOR", ""))
        if client != remote:
            environ["circnode.proxy_addr"] = remote
            environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)


def init_app(app, networks):
    """Honour X-Forwarded-For from NETWORKS only; with none, the header is ignored."""
    if networks:
        app.wsgi_app = TrustedProxies(app.wsgi_app, networks)
