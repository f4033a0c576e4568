"""The node's SQLite database: one deferred handle, its pragmas, and migrations.

Durability first: WAL with ``synchronous=FULL`` so a loan the desk was told
about survives a power cut, ``foreign_keys=ON``, and every write transaction
starts with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy
timeout instead of failing with "database is locked" half-way through.
Connections stay open per thread (waitress keeps a fixed thread pool):
reopening per request cost 2-3x in measurements.

Writers of this process also queue on a lock before ``BEGIN IMMEDIATE``:
SQLite's busy handler polls with sleeps of up to 100 ms, so a desk thread
waiting for another's commit slept long after the lock was free (p99 of 4
desk clients 544 ms; docs/benchmarks.md).  Other processes still meet the
busy timeout.
"""
import logging
import os
import threading

from peewee import SqliteDatabase

log = logging.getLogger(__name__)

PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10000,
}

class _QueuedWriters(SqliteDatabase):
    """A SqliteDatabase whose write transactions in this process wait their turn on a lock."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._writer = threading.Lock()
        self._holder = threading.local()

    def begin(self, lock_type=None):
        self._writer.acquire()
        self._holder.held = True
        try:
            super().begin(lock_type)
        except BaseException:
            self._release()
            raise

    def commit(self):
        super().commit()  # on failure the transaction is still open: rollback() releases
        self._release()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._release()

    def close(self):
        try:
            return super().close()
        finally:
            self._release()  # a connection closed mid-transaction ends it

    def _release(self):
        if getattr(self._holder, "held", False):
            self._holder.held = False
            self._writer.release()


database = _QueuedWriters(None, lock_type="IMMEDIATE")


def open_database(path):
    """Point the shared handle at PATH (creating its folder) and migrate it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not database.is_closed():
        database.close()
    database.init(path, pragmas=PRAGMAS, timeout=10, check_same_thread=False)
    database.connect(reuse_if_open=True)
    from node.migrations import migrate
    migrate(database)
    return database


def connection():
    """Make sure this thread has an open connection (cheap when it has)."""
    database.connect(reuse_if_open=True)
    return database
