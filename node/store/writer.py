"""The writer: the one connection this process writes on, and the lock that gives it to one thread at a time.

SQLite lets one transaction write at a time.  Left to SQLite, a desk thread
waiting for another's commit polls with sleeps of up to 100 ms and sleeps
long after the lock is free (p99 of 4 desk clients 544 ms;
docs/benchmarks.md), and a write on another thread's connection makes each
writer re-read its pages (34 page reads per checkout under strace).  So the
threads of this process take turns on a lock, and all write on one
connection whose page cache stays warm.  Other processes still meet the
busy timeout.

A turn is an explicit pair, ``take()`` and ``give_back()``; ``Database`` in
``node/store/db.py`` takes one at ``BEGIN`` and gives it back at ``COMMIT``
or ``ROLLBACK``, so callers write with ``database.atomic()`` as anywhere.
"""
import logging
import threading

from peewee import SqliteDatabase

log = logging.getLogger(__name__)


class Writer:
    """The write connection of one database file, held by one thread at a time.

    The connection comes from a peewee ``SqliteDatabase`` of its own with
    ``thread_safe=False`` (one connection for every thread, not one per thread),
    so it gets the same pragmas and SQL functions as the readers' connections.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._turn = threading.local()  # .connection: the write connection, on the thread whose turn it is
        self._database = None
        self._settings = None

    def open(self, path, pragmas, timeout):
        """Write to PATH from the next turn on (the connection opens at that turn)."""
        self.close()
        self._settings = (path, dict(pragmas or {}), timeout)
        self._database = SqliteDatabase(path, pragmas=dict(pragmas or {}), timeout=timeout,
                                        check_same_thread=False, thread_safe=False, autoconnect=False)

    def add_pragma(self, name, value):
        """Set PRAGMA NAME to VALUE on the write connection from its next opening on."""
        path, pragmas, timeout = self._settings
        self.open(path, {**pragmas, name: value}, timeout)

    def take(self):
        """Wait for this thread's turn; return the write connection, with no transaction open on it.

        A transaction left open by a failure that skipped its rollback is rolled
        back here: otherwise every writer of the process would fail from now on.
        """
        self._lock.acquire()
        try:
            if self._database is None:
                raise RuntimeError("the writer has no database: call open() first")
            connection = self._database.connection()  # opens it at the first turn
            if connection.in_transaction:
                log.error("the writer connection was left in a transaction; rolling it back")
                connection.execute("ROLLBACK")
        except BaseException:
            self._lock.release()
            raise
        self._turn.connection = connection
        return connection

    def holds(self):
        """Whether it is this thread's turn."""
        return getattr(self._turn, "connection", None) is not None

    def current(self):
        """The write connection if it is this thread's turn, else None."""
        return getattr(self._turn, "connection", None)

    def give_back(self):
        """End this thread's turn (nothing if it has none); the next waiting thread takes it."""
        if self.holds():
            self._turn.connection = None
            self._lock.release()

    def abandon(self):
        """Roll back whatever this thread's turn left open, and end the turn."""
        if not self.holds():
            return
        try:
            connection = self.current()
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        finally:
            self.give_back()

    def close(self, timeout=15):
        """Close the write connection once no turn is running (it reopens at the next turn).

        Waits up to TIMEOUT seconds for another thread's turn, and never hangs a shutdown.
        """
        if not self._lock.acquire(timeout=timeout):
            log.error("a write transaction is still open; leaving the writer connection open")
            return
        try:
            if self._database is not None and not self._database.is_closed():
                self._database.close()
        finally:
            self._lock.release()

    def is_open(self):
        """Whether the write connection is open."""
        return self._database is not None and not self._database.is_closed()
