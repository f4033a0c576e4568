"""The SIP2 server: kiosks connect over TCP (TLS when configured), one thread per kiosk.

Each connection reads messages ended by CR, LF or CRLF, answers each in turn
(node/sip2/session.py) and ends when the kiosk closes it, has not logged in
within ``[sip2] login_timeout_seconds``, sends nothing for
``[sip2] idle_timeout_seconds``, sends a message longer than
``MAX_MESSAGE`` bytes, or its session says so.  A failed TLS handshake, a
vanished client or a bug ends only that kiosk's connection; the server goes
on serving the others, up to ``MAX_KIOSKS`` at once and
``[sip2] max_connections_per_address`` from one address (so that one host's
idle sockets cannot shut every kiosk out).
"""
import logging
import re
import socket
import socketserver
import ssl
import threading
from collections import Counter

from node.clock import utcnow
from node.sip2.session import Session
from node.store.db import database

log = logging.getLogger(__name__)

MAX_MESSAGE = 8192  # bytes without a terminator: a kiosk message is a few hundred (a network pass ~260 in AA)
MAX_KIOSKS = 64  # connections at once; one more is closed at once (and logged)
HANDSHAKE_SECONDS = 15
_TERMINATOR = re.compile(rb"\r\n|\r|\n")


def tls_context(sip2):
    """The server's TLS context ([sip2] tls_certificate and tls_key), or None for plain TCP."""
    if not sip2["tls_certificate"]:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(sip2["tls_certificate"], sip2["tls_key"])
    return context


class _Kiosk(socketserver.BaseRequestHandler):
    """One kiosk connection: read messages, answer each, until the end."""

    def finish(self):
        self.server.leave(self.client_address[0])
        database.close()  # this thread's reading connection

    def handle(self):
        server, address = self.server, self.client_address[0]
        sock = self.request
        if server.tls is not None:
            sock.settimeout(HANDSHAKE_SECONDS)
            try:
                sock = server.tls.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.info("kiosk at %s: TLS handshake failed (%s)", address, type(exc).__name__)
                return
        session = Session(server.cfg, address)
        try:
            self._serve(sock, session, address)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _serve(self, sock, session, address):
        buffer = b""
        while True:
            # Until it logs in, a connection gets the short timeout: it holds a thread and a slot.
            timeout = self.server.idle_timeout if session.account else self.server.login_timeout
            sock.settimeout(timeout)
            try:
                chunk = sock.recv(4096)
            except (socket.timeout, TimeoutError):
                log.info("kiosk %s at %s: %s for %d s; closing", session.account or "-", address,
                         "idle" if session.account else "not logged in", timeout)
                return
            except (OSError, ssl.SSLError):
                return  # the kiosk went away
            if not chunk:
                return
            buffer += chunk
            *messages, buffer = _TERMINATOR.split(buffer)
            for raw in messages:
                if not raw.strip():
                    continue
                if len(raw) > MAX_MESSAGE:
                    log.warning("kiosk %s at %s: message of %d bytes; closing", session.account or "-", address,
                                len(raw))
                    return
                response = session.answer(raw, utcnow())
                if response is None:
                    return
                try:
                    sock.sendall(response)
                except (OSError, ssl.SSLError):
                    return
            if len(buffer) > MAX_MESSAGE:
                log.warning("kiosk %s at %s: more than %d bytes without a terminator; closing",
                            session.account or "-", address, MAX_MESSAGE)
                return


class Sip2Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 32

    def __init__(self, cfg):
        sip2 = cfg.sip2 or cfg.sections["sip2"]
        self.cfg = cfg
        self.tls = tls_context(sip2)
        self.idle_timeout = sip2["idle_timeout_seconds"]
        self.login_timeout = min(sip2["login_timeout_seconds"], self.idle_timeout)
        self.per_address = sip2["max_connections_per_address"]
        self.open = Counter()  # client address -> its connections now, under self.lock
        self.lock = threading.Lock()
        super().__init__((sip2["host"], sip2["port"]), _Kiosk)

    def process_request(self, request, client_address):
        """A thread per kiosk; past MAX_KIOSKS, or past the cap of its address, the new one is closed at once."""
        address = client_address[0]
        with self.lock:
            refusal = None
            if self.open[address] >= self.per_address:
                refusal = f"{self.per_address} connections from this address already"
            elif sum(self.open.values()) >= MAX_KIOSKS:
                refusal = f"{MAX_KIOSKS} kiosks connected already"
            else:
                self.open[address] += 1  # given back by the handler's finish (leave), on its own thread
        if refusal is not None:
            log.warning("kiosk at %s refused: %s", address, refusal)  # the address only: no message was read
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.leave(address)  # no thread started: nobody else gives the slot back
            raise

    def leave(self, address):
        """One connection of ADDRESS ended."""
        with self.lock:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]

    def handle_error(self, request, client_address):
        log.error("kiosk at %s: connection failed", client_address[0])  # never the traceback's locals or data

    @property
    def address(self):
        host, port = self.server_address[:2]
        return f"{'tls' if self.tls else 'tcp'}://{host}:{port}"


def start(cfg):
    """Start the SIP2 server of [sip2] on its own thread; return it (``.shutdown()`` stops it)."""
    server = Sip2Server(cfg)
    thread = threading.Thread(target=server.serve_forever, name="sip2", daemon=True)
    thread.start()
    log.info("SIP2 server for kiosks on %s", server.address)
    return server
