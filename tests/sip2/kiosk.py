"""The independent PyPI SIP2 client (``sip2``, module ``Sip2``) as a kiosk, and raw kiosk connections."""
import os
import socket
import tempfile

from Sip2.sip2 import Sip2

KIOSK_PASSWORD = "kiosk-secret-2026"
BLANK = " " * 18  # a blank 18-character SIP2 date (nb due date)


class Kiosk(Sip2):
    """The PyPI client, unchanged but for one thing: it cuts every field at 255 characters.

    The standard's variable fields are at most 255 characters, but a network
    pass held to the 2D scanner is about 260 (docs/sip2.md, "Network passes"):
    AA is sent whole.  Every other field goes through the client's own code.
    """

    def __init__(self, port, tls=False, institution="NORTH"):
        super().__init__()
        self.hostName, self.hostPort = "127.0.0.1", port
        self.tlsEnable = tls
        self.socketTimeout = 30
        self.institutionId = institution
        self.scLocation = "LOBBY"
        self.logfile_path = tempfile.gettempdir()

    def _request_addOpt_var(self, field, value, optional=False):
        if field != "AA" or len(str(value)) <= 255:
            return super()._request_addOpt_var(field, value, optional)
        self._noFixed = True
        self._rqstBuild += field + str(value) + self.fldTerminator
        return True

    def __del__(self):  # the client prints on collection; a test's output stays quiet
        try:
            if self._socket is not None:
                self._socket.close()
        except Exception:
            pass

    def ask(self, request, parse):
        return parse(self.get_response(request))

    def login(self, name="kiosk1", password=KIOSK_PASSWORD):
        return self.ask(self.sip_login_request(name, password), self.sip_login_response)


def field(response, tag):
    """The first value of TAG in a parsed response of the client, else None."""
    values = response["variable"].get(tag)
    return values[0] if values else None


class Raw:
    """A kiosk's bare socket: send exact bytes, read one answer up to CR (or the connection's end)."""

    def __init__(self, port, timeout=10, wrap=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if wrap is not None:
            self.sock = wrap(self.sock)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def read(self):
        """One response without its CR; b"" when the server closed the connection."""
        while b"\r" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                rest, self.buffer = self.buffer, b""
                return rest
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\r", 1)
        return message

    def ask(self, data):
        self.send(data)
        return self.read()

    def close(self):
        self.sock.close()


def add_kiosk_account(net, code="NORTH", name="kiosk1", password=KIOSK_PASSWORD, location="LOBBY"):
    done = net.cli(code, "sip2", "account", "add", name, "--password-stdin", "--location", location,
                   input=password + "\n")
    assert done.returncode == 0, done.stderr
    return done


def enable_sip2(info, port, extra=""):
    """Give the node of INFO a [sip2] section on PORT (loopback, plain TCP)."""
    with open(info.config, "a", encoding="utf-8") as handle:
        handle.write(f"\n[sip2]\nhost = 127.0.0.1\nport = {port}\nidle_timeout_seconds = 30\n{extra}")
    assert os.path.exists(info.config)


def logged_in(port, timeout=10):
    """A Raw connection to the kiosk server on PORT, logged in as kiosk1."""
    kiosk = Raw(port, timeout=timeout)
    assert kiosk.ask(f"9300CNkiosk1|CO{KIOSK_PASSWORD}|\r".encode()) == b"941"
    return kiosk


def rows(sql, *args):
    """SQL rows of the kiosk node's database, opened in this test process (the kiosk_node fixture)."""
    from node.store.db import database
    return database.execute_sql(sql, args).fetchall()
