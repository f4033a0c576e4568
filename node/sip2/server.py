"""The SIP2 server: kiosks connect over TCP (TLS when configured), one thread per kiosk.

Each connection reads messages ended by CR, LF or CRLF, answers each in turn
(node/sip2/session.py) and ends when the kiosk closes it, sends nothing for
``[sip2] idle_timeout_seconds``, sends a message longer than
``MAX_MESSAGE`` bytes, or its session says so.  A failed TLS handshake, a
vanished client or a bug ends only that kiosk's connection; the server goes
on serving the others, up to ``MAX_KIOSKS`` at once.
"""
import logging
import re
import socket
import socketserver
import ssl
import threading

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
        self.server.slots.release()
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
        sock.settimeout(server.idle_timeout)
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
            try:
                chunk = sock.recv(4096)
            except (socket.timeout, TimeoutError):
                log.info("kiosk %s at %s: idle for %d s; closing", session.account or "-", address,
                         self.server.idle_timeout)
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
        self.slots = threading.BoundedSemaphore(MAX_KIOSKS)
        super().__init__((sip2["host"], sip2["port"]), _Kiosk)

    def process_request(self, request, client_address):
        """A thread per kiosk; past MAX_KIOSKS the new connection is closed at once."""
        if not self.slots.acquire(blocking=False):  # released by the handler's finish, on its own thread
            log.warning("kiosk at %s refused: %d kiosks connected already", client_address[0], MAX_KIOSKS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

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
