"""Desk checkout through the JSON API of a real ``circnode run``, against its own /healthz.

Each client plays a desk: a visiting patron of the home node comes in and
borrows 3-5 items, one checkout request per item.  The first checkout of a
visit makes the lender ask the home node for the patron's standing (signed,
over loopback); the visit's other checkouts send back the first answer's
``visit`` and lend on it (docs/api.md).  Every visit is a new patron.
"""
import random
import threading

from benchmarks.limits import run_for
from benchmarks.stats import cpu_seconds, median, percentile, spread

LOCKED = "database is locked"


class DeskLoad:
    """The stream of visits all desk clients draw from (thread-safe)."""

    def __init__(self, url, token, home, barcodes, patron_ids, seed=6):
        self.url, self.home = url, home
        self.headers = {"Authorization": f"Bearer {token}"}
        self._barcodes = iter(barcodes)
        self._patrons = iter(patron_ids)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._random = random.Random(seed)

    def next_visit(self):
        """(patron id, barcodes) of the next visit: a new patron, 3-5 items none has borrowed."""
        with self._lock:
            size = self._random.randint(3, 5)
            return next(self._patrons), [next(self._barcodes) for _ in range(size)]

    def checkout(self, session):
        """One checkout of the current visit (a new visit when the last one is done)."""
        visit = getattr(self._local, "visit", None)
        if not visit or not visit[1]:
            visit = self._local.visit = [*self.next_visit(), None]
        patron_id, barcodes, token = visit
        barcode = barcodes.pop()
        body = {"item_barcode": barcode, "patron": {"institution": self.home, "id": patron_id}}
        if token:
            body["visit"] = token  # the visit's first answer: its other checkouts lend on it (docs/api.md)
        answer = session.post(self.url + "/api/v1/checkouts", headers=self.headers, timeout=30, json=body)
        if answer.status_code != 201:
            raise RuntimeError(f"checkout {barcode} for {patron_id}: HTTP {answer.status_code} {answer.text[:200]}")
        visit[2] = answer.json().get("visit")

    def healthz(self, session):
        answer = session.get(self.url + "/healthz", timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"healthz: HTTP {answer.status_code}")


def measure_round(load, bare, seconds, clients, order, pids):
    """One interleaved round: /healthz, checkouts and the bare transaction, in ORDER.

    For /healthz and checkouts also the CPU milliseconds per request of each
    process in PIDS ({"lender": pid, ...}) and of the clients (this process).
    """
    out, cpu = {}, {}
    for name in order:
        if name == "bare":
            out[name] = run_for(seconds, clients, lambda session: bare.one())
            continue
        before = {who: cpu_seconds(pid) for who, pid in pids.items()} | {"client": cpu_seconds()}
        out[name] = run_for(seconds, clients, load.healthz if name == "healthz" else load.checkout)
        after = {who: cpu_seconds(pid) for who, pid in pids.items()} | {"client": cpu_seconds()}
        requests = max(1, len(out[name][1]))
        cpu[name] = {who: (after[who] - before[who]) * 1000 / requests for who in before}
    return out, cpu


def desk_benchmark(load, bare, rounds, seconds, clients, progress, label, pids=None):
    """Median, spread and latencies of checkouts vs /healthz vs the bare transaction."""
    names = ["healthz", "checkout", "bare"]
    rates = {name: [] for name in names}
    cpu_rounds = {"healthz": [], "checkout": []}
    latencies, errors = [], []
    for number in range(rounds):
        order = names[number % 3:] + names[:number % 3]  # who goes first rotates
        result, cpu = measure_round(load, bare, seconds, clients, order, pids or {})
        for name in cpu_rounds:
            cpu_rounds[name].append(cpu[name])
        for name in names:
            rate, lat, errs = result[name]
            rates[name].append(rate)
            errors.extend(f"{name}: {e}" for e in errs)
            if name == "checkout":
                latencies.extend(lat)
        progress(f"{label} desk {clients} client(s) round {number + 1}/{rounds}: checkout "
                 f"{rates['checkout'][-1]:.0f}/s, healthz {rates['healthz'][-1]:.0f}/s, "
                 f"bare transaction {rates['bare'][-1]:.0f}/s")
    return {
        "clients": clients,
        "checkout": {"median": median(rates["checkout"]), "spread": spread(rates["checkout"]),
                     "rounds": rates["checkout"]},
        "healthz": {"median": median(rates["healthz"]), "spread": spread(rates["healthz"]),
                    "rounds": rates["healthz"]},
        "bare": {"median": median(rates["bare"]), "spread": spread(rates["bare"]), "rounds": rates["bare"]},
        "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
        # CPU ms per request by process, median over the rounds (the clock is coarse: 10 ms ticks).
        "cpu_ms": {name: {who: median([one[who] for one in per_round]) for who in per_round[0]}
                   for name, per_round in cpu_rounds.items()},
        "errors": len(errors), "locked_errors": sum(LOCKED in e for e in errors), "error_sample": errors[:3],
    }

