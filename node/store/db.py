"""The node's SQLite database: one deferred handle, its pragmas, and migrations.

Durability first: WAL with ``synchronous=FULL`` so a loan the desk was told
about survives a power cut, ``foreign_keys=ON``, and every write transaction
starts with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy
timeout instead of failing with "database is locked" half-way through.
Connections stay open per thread (waitress keeps a fixed thread pool):
reopening per request cost 2-3x in measurements.

Writers of this process also queue on a lock before ``BEGIN IMMEDIATE``,
and then write on one shared connection: SQLite's busy handler polls with
sleeps of up to 100 ms, so a desk thread waiting for another's commit slept
long after the lock was free (p99 of 4 desk clients 544 ms;
docs/benchmarks.md), and a write on another thread's connection made each
writer re-read its pages.  Other processes still meet the busy timeout.
"""
import logging
import os
import threading

from peewee import SqliteDatabase
from peewee import __exception_wrapper__ as _map_errors

log = logging.getLogger(__name__)
_peewee_log = logging.getLogger("peewee")

PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10000,
}

class _QueuedWriters(SqliteDatabase):
    """A SqliteDatabase whose write transactions in this process take turns on one connection.

    Each thread reads on its own connection; a write transaction waits for a
    lock, then runs on the one writer connection.  A connection must drop its
    page cache whenever another connection has written since its last
    transaction, so write transactions spread over waitress's threads re-read
    every page they touched (34 page reads per checkout under strace); on the
    one writer connection they stay cached.

    Two rules follow.  Take a query's rows (``list(...)``) before writing in
    the same thread: a statement still being read keeps its connection's
    snapshot, so reads after the write would not see it yet.  And read a
    cursor opened inside a write transaction before the transaction ends: it
    belongs to the shared connection.
    """

    def __init__(self, *args, **kwargs):
        self._writer = threading.Lock()
        self._holder = threading.local()
        self._writer_conn = None
        super().__init__(*args, **kwargs)  # calls init()

    def init(self, *args, **kwargs):
        self._close_writer()
        super().init(*args, **kwargs)

    def begin(self, lock_type=None):
        if self.is_closed():
            self.connect()  # this thread's own connection, for its reads
        self._writer.acquire()
        self._holder.own = self._state.conn
        try:
            if self._writer_conn is None:
                self._writer_conn = self._connect()
            elif self._writer_conn.in_transaction:
                # Left open by a failure that skipped the rollback: end it, or every writer of
                # the process would fail from now on.
                log.error("the writer connection was left in a transaction; rolling it back")
                self._writer_conn.execute("ROLLBACK")
            self._state.conn = self._writer_conn
            super().begin(lock_type)
        except BaseException:
            self._release()
            raise

    def execute_sql(self, sql, params=None):
        """Run SQL on this thread's connection (the writer's in a write transaction).

        Straight to sqlite3, with peewee's exceptions: peewee's own path (query
        logging, hooks, a new cursor each time) doubled the cost of a small
        statement (3.6 against 1.7 µs), and an event of a sync batch runs about ten.
        """
        if self._state.closed or self.query_hooks or _peewee_log.isEnabledFor(logging.DEBUG):
            return super().execute_sql(sql, params)
        with _map_errors:
            return self._state.conn.execute(sql, params or ())

    def commit(self):
        super().commit()  # on failure the transaction is still open: rollback() releases
        self._release()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._release()

    def close(self):
        if self._holds_writer():  # closed mid-transaction: end it, never close the shared connection
            try:
                self._writer_conn.execute("ROLLBACK")
            except Exception:  # the transaction may already be over
                pass
            self._release()
            self._state.transactions = []
        try:
            return super().close()
        finally:
            self._close_writer()  # reopened by the next write transaction

    def _holds_writer(self):
        return hasattr(self._holder, "own")

    def _release(self):
        if self._holds_writer():
            self._state.conn = self._holder.__dict__.pop("own")
            self._writer.release()

    def _close_writer(self):
        # Another thread's transaction may be running: wait for it, but never hang a shutdown.
        if not self._writer.acquire(timeout=15):
            log.error("a write transaction is still open; leaving the writer connection open")
            return
        try:
            if self._writer_conn is not None:
                self._writer_conn.close()
                self._writer_conn = None
        finally:
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
    from node.store.migrations import migrate
    migrate(database)
    # The migration ran on the writer connection; PRAGMAs such as index_list on this
    # thread's connection would show the schema it cached before.
    database.close()
    database.connect()
    return database


def checkpoints_in_background():
    """Leave WAL checkpoints to ``checkpoint()``, run by a scheduler job, from the next connection on.

    A checkpoint writes the WAL's pages back into the database file and syncs
    it.  Left to SQLite, the commit that takes the WAL past 1,000 pages does
    it, and a desk checkout or a sync batch waits for it: 15% of a drain at 1M
    history (docs/benchmarks.md).  Call before other threads connect.
    """
    database.pragma("wal_autocheckpoint", 0, permanent=True)
    database.close()  # this thread's and the writer's connections reopen with it


def checkpoint():
    """Write the WAL back into the database file, waiting for no reader or writer.

    Returns SQLite's (busy, frames in the WAL, frames written back).
    """
    return tuple(database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone())


def connection():
    """Make sure this thread has an open connection (cheap when it has)."""
    database.connect(reuse_if_open=True)
    return database
