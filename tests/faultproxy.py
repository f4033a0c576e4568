"""A TCP proxy on loopback that stands between nodes and misbehaves on demand.

Modes: ``pass`` (forward), ``refuse`` (close at once: a dead link),
``error500`` (answer 500 without forwarding), ``hang`` (accept, never answer),
``reset`` (forward the request, then reset instead of answering: the peer did
the work, the sender never hears), ``truncate`` (forward, then send only half
of the answer).  The nodes behind it are real; only the wire is faulty.
"""
import socket
import struct
import threading


class FaultProxy:
    def __init__(self, target_port, mode="pass"):
        self.target_port = target_port
        self.mode = mode
        self.requests = 0
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._hanging = []
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def close(self):
        self._stop.set()
        self._server.close()
        for conn in self._hanging:
            conn.close()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn, self.mode), daemon=True).start()

    @staticmethod
    def _reset(conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def _handle(self, conn, mode):
        self.requests += 1
        if mode == "refuse":
            self._reset(conn)
            return
        if mode == "hang":
            self._hanging.append(conn)
            return
        request = _read_http_message(conn)
        if request is None:
            conn.close()
            return
        if mode == "error500":
            body = b'{"error": {"code": "internal_error", "message": "injected"}}'
            conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            conn.close()
            return
        # Forward one request on a fresh upstream connection; "Connection: close" keeps it simple.
        request = request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1) \
            if b"connection:" not in request.split(b"\r\n\r\n", 1)[0].lower() else request
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            self._reset(conn)
            return
        try:
            with upstream:
                upstream.sendall(request)
                response = _read_http_message(upstream) or b""
        except OSError:  # the node died mid-answer (a test killed it): so does the connection
            self._reset(conn)
            return
        if mode == "reset":
            self._reset(conn)
        elif mode == "truncate":
            conn.sendall(response[: max(1, len(response) - 40)])
            conn.close()
        else:
            conn.sendall(response)
            conn.close()


def _read_http_message(sock):
    """Read one HTTP/1.1 message with a Content-Length body (what our nodes send)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data or None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body
