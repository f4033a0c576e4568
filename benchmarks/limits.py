"""Raw limits measured in the same run as the node: a bare transaction, a bare batched POST."""
import datetime
import json
import os
import subprocess
import sys
import threading
import time

import requests
from peewee import SqliteDatabase

from benchmarks.history import stamp, uuid7_at
from node.store.db import PRAGMAS
from node.store.migrations import migrate
from sync import wire

UTC = datetime.timezone.utc


class BareCheckout:
    """The checkout-shaped transaction alone, on the node's schema and SQLite settings.

    Read item, read patron, insert loan, insert outbox row, update item, commit:
    a peewee transaction with ``BEGIN IMMEDIATE`` and ``synchronous=FULL`` as in
    node/store/db.py, without HTTP, auth, policy or serialisation.
    """

    def __init__(self, folder, items):
        path = os.path.join(folder, "bare-checkout.db")
        self.db = SqliteDatabase(path, pragmas=PRAGMAS, lock_type="IMMEDIATE", timeout=10,
                                 check_same_thread=False)
        self.db.connect()
        migrate(self.db)
        now = stamp(datetime.datetime.now(UTC))
        with self.db.atomic():
            self.db.execute_sql("INSERT INTO patron (institution, home_id, name, email, blocked, block_reason, "
                                "updated_at) VALUES ('SOUTH', 'bare-1', 'P', '', 0, '', ?)", (now,))
            for n in range(items):
                self.db.execute_sql("INSERT INTO item (owner, barcode, title, call_number, item_type, status, "
                                    "updated_at) VALUES ('NORTH', ?, 'T', '', 'book', 'available', ?)",
                                    (f"X{n:07d}", now))
        self.items = items
        self.next_item = 0
        self.sequence = 0
        self.lock = threading.Lock()

    def _take(self):
        with self.lock:
            self.next_item += 1
            self.sequence += 1
            return f"X{(self.next_item - 1) % self.items:07d}", self.sequence

    def one(self):
        barcode, sequence = self._take()
        now = datetime.datetime.now(UTC)
        with self.db.atomic():
            item_id, = self.db.execute_sql("SELECT id FROM item WHERE owner = 'NORTH' AND barcode = ?",
                                           (barcode,)).fetchone()
            patron_id, = self.db.execute_sql("SELECT id FROM patron WHERE institution = 'SOUTH' AND "
                                             "home_id = 'bare-1'").fetchone()
            loan_id = uuid7_at(now)
            self.db.execute_sql("INSERT INTO loan (id, item_id, patron_id, lender, checked_out_at, due_at, status, "
                                "updated_at, renewals, provisional, disputed, dispute_reason, made_offline) "
                                "VALUES (?, ?, ?, 'NORTH', ?, ?, 'closed', ?, 0, 0, 0, '', 0)",
                                (loan_id, item_id, patron_id, stamp(now), stamp(now), stamp(now)))
            self.db.execute_sql("INSERT INTO outbox_event (destination, sequence, event_id, type, payload, "
                                "created_at, state, attempts, last_error) VALUES ('SOUTH', ?, ?, 'loan.created', "
                                "?, ?, 'pending', 0, '')",
                                (sequence, uuid7_at(now), json.dumps({"loan_id": loan_id}), stamp(now)))
            self.db.execute_sql("UPDATE item SET status = 'available', updated_at = ? WHERE id = ?",
                                (stamp(now), item_id))

    def close(self):
        self.db.close()


def run_for(seconds, threads, action):
    """Call ACTION(session) in THREADS loops for SECONDS; return (rate, latencies, errors)."""
    latencies, errors = [], []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def loop():
        session = requests.Session()
        mine, failed = [], []
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                action(session)
            except Exception as exc:  # counted and reported, never hidden
                failed.append(f"{exc.__class__.__name__}: {exc}"[:200])
            else:
                mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)
            errors.extend(failed)

    started = time.perf_counter()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


class BareDrain:
    """A bare batched POST + insert-or-ignore server (benchmarks/bare_server.py) and its client."""

    def __init__(self, folder, port):
        self.url = f"http://127.0.0.1:{port}/events"
        self.log = open(os.path.join(folder, "bare-server.log"), "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.bare_server", str(port),
                                         os.path.join(folder, "bare-drain.db")],
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.session = requests.Session()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.session.post(self.url, data=b'{"events": []}', timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError("the bare drain server did not start")

    def drain(self, origin, destination, rows, batch_size):
        """POST ROWS ((destination, sequence, event_id, type, payload, created) as queued) in batches; events/s."""
        bodies = []
        for start in range(0, len(rows), batch_size):
            events = []
            for _, sequence, event_id, kind, text, _created in rows[start:start + batch_size]:
                stored = json.loads(text)
                events.append({"event_id": event_id, "type": kind, "version": 1, "origin": origin,
                               "destination": destination, "sequence": sequence,
                               "occurred_at": stored["occurred_at"], "data": stored["data"]})
            bodies.append(events)
        began = time.perf_counter()
        for events in bodies:
            body = wire.dumps({"events": events})
            answer = self.session.post(self.url, data=body, timeout=30,
                                       headers={"Content-Type": "application/json"})
            answer.raise_for_status()
        return len(rows) / (time.perf_counter() - began)

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()
