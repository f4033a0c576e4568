"""The raw limit of a sync drain: a bare batched POST + insert-or-ignore server.

``python -m benchmarks.bare_server PORT DB`` serves one endpoint on waitress
(the node's server, same thread count) that parses a batch of events and
inserts them with ``INSERT OR IGNORE`` in one transaction, on the node's
SQLite settings, reading and writing JSON with the node's library (sync/wire.py).
No Flask, no signatures, no per-event logic: what is left of a drain when the
node's work is taken away.
"""
import sys
import threading

from waitress import serve

from node.store.db import PRAGMAS
from sync import wire

_local = threading.local()


def _db(path):
    import sqlite3
    if not hasattr(_local, "db"):
        db = sqlite3.connect(path, isolation_level=None, timeout=10)
        for name, value in PRAGMAS.items():
            db.execute(f"PRAGMA {name}={value}")
        _local.db = db
    return _local.db


def make_app(path):
    db = _db(path)
    db.execute("CREATE TABLE IF NOT EXISTS inbox (origin TEXT NOT NULL, sequence INTEGER NOT NULL, "
               "event_id TEXT NOT NULL, type TEXT NOT NULL, payload TEXT, PRIMARY KEY (origin, sequence))")

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        events = wire.loads(environ["wsgi.input"].read(length))["events"]
        rows = [(e["origin"], e["sequence"], e["event_id"], e["type"], wire.text(e))
                for e in events]
        db = _db(path)
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO inbox VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        body = wire.dumps({"acked_through": max(r[1] for r in rows)})
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    return app


if __name__ == "__main__":
    port, path = int(sys.argv[1]), sys.argv[2]
    serve(make_app(path), host="127.0.0.1", port=port, threads=8, ident="bare")
