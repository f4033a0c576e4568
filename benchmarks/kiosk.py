"""Kiosk checkout over SIP2 against the same node's HTTP checkout, in the same rounds (issue 15, point 7).

Each kiosk is one SIP2 connection to a real ``circnode run``, logged in
before the round.  It serves the same stream of visits as the desk clients
(benchmarks/desk.py): a visiting patron of the home node, identified by card
number (``[sip2] card_numbers``), borrows 3-5 items, one checkout (11) each.
The first checkout of a visit asks the home node for the patron's standing,
as the desk's first checkout does; the rest of the visit reuses it.  Rounds
alternate which of the two goes first.
"""
import queue
import socket
import threading

from benchmarks.limits import run_for
from benchmarks.stats import median, percentile, spread

BLANK = " " * 18


class KioskLoad:
    """Logged-in SIP2 connections, one per kiosk thread of a round, checking out the desk load's visits."""

    def __init__(self, port, account, password, load):
        self.port, self.account, self.password, self.load = port, account, password, load
        self.free, self.taken = queue.Queue(), []
        self._local = threading.local()
        self._lock = threading.Lock()

    def connect(self, kiosks):
        """Have KIOSKS logged-in connections ready (logins are not part of a round)."""
        while self.free.qsize() + len(self.taken) < kiosks:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            reader = sock.makefile("rb")
            sock.sendall(f"9300CN{self.account}|CO{self.password}|\r".encode())
            if _answer(reader) != b"941":
                raise RuntimeError("the benchmark kiosk could not log in")
            self.free.put((sock, reader))

    def release(self):
        """After a round: every connection is free for the next one."""
        with self._lock:
            for connection in self.taken:
                self.free.put(connection)
            self.taken.clear()

    def checkout(self, _session):
        """One checkout of this kiosk's current visit (a new visit, a new patron, when the last is done)."""
        if getattr(self._local, "connection", None) is None or self._local.round != id(self.taken):
            self._local.connection, self._local.round = self.free.get(timeout=30), id(self.taken)
            self._local.visit = None
            with self._lock:
                self.taken.append(self._local.connection)
        sock, reader = self._local.connection
        visit = self._local.visit
        if not visit or not visit[1]:
            visit = self._local.visit = self.load.next_visit()
        patron_id, barcodes = visit
        barcode = barcodes.pop()
        sock.sendall(f"11NN20260101    000000{BLANK}AONORTH|AA{patron_id}|AB{barcode}|AC|\r".encode())
        answer = _answer(reader)
        if not answer.startswith(b"121"):
            raise RuntimeError(f"kiosk checkout {barcode}: {answer[:200]!r}")

    def close(self):
        self.release()
        while not self.free.empty():
            sock, reader = self.free.get()
            reader.close()
            sock.close()


def _answer(reader):
    data = bytearray()
    while not data.endswith(b"\r"):
        byte = reader.read(1)
        if not byte:
            break
        data += byte
    return bytes(data).rstrip(b"\r")


def kiosk_benchmark(load, kiosks, rounds, seconds, clients, progress, label):
    """SIP2 checkouts with CLIENTS kiosks vs HTTP checkouts with CLIENTS desk clients, interleaved."""
    kiosks.connect(clients)
    rates = {"kiosk": [], "http": []}
    latencies = {"kiosk": [], "http": []}
    errors = []
    for number in range(rounds):
        order = ["kiosk", "http"] if number % 2 == 0 else ["http", "kiosk"]
        for name in order:
            action = kiosks.checkout if name == "kiosk" else load.checkout
            rate, lat, errs = run_for(seconds, clients, action)
            kiosks.release()
            rates[name].append(rate)
            latencies[name].extend(lat)
            errors.extend(f"{name}: {e}" for e in errs)
        progress(f"{label} kiosks {clients}: SIP2 checkout {rates['kiosk'][-1]:.0f}/s, "
                 f"HTTP checkout {rates['http'][-1]:.0f}/s")
    return {"clients": clients,
            **{name: {"median": median(values), "spread": spread(values), "rounds": values,
                      "p50_ms": percentile(latencies[name], 0.50) * 1000,
                      "p99_ms": percentile(latencies[name], 0.99) * 1000}
               for name, values in rates.items()},
            "errors": len(errors), "error_sample": errors[:3]}
