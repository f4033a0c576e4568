"""The node's SQLite database: one deferred handle, its pragmas, and migrations.

Durability first: WAL with ``synchronous=FULL`` so a loan the desk was told
about survives a power cut, ``foreign_keys=ON``, and every write transaction
starts with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy
timeout instead of failing with "database is locked" half-way through.
Connections stay open per thread (waitress keeps a fixed thread pool):
reopening per request cost 2-3x in measurements.  Write transactions of this
process take turns on one connection: see ``node/store/writer.py``.
"""
import contextlib
import functools
import itertools
import logging
import os
import sqlite3

import peewee
from peewee import SqliteDatabase

from node.store.writer import Writer

log = logging.getLogger(__name__)
_peewee_log = logging.getLogger("peewee")

PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10000,
}
TIMEOUT = 10  # seconds a connection waits on another process's write lock

# sqlite3's exceptions as peewee's, so callers catch peewee.IntegrityError whichever path ran the SQL.
_PEEWEE_ERRORS = {
    sqlite3.IntegrityError: peewee.IntegrityError,
    sqlite3.OperationalError: peewee.OperationalError,
    sqlite3.ProgrammingError: peewee.ProgrammingError,
    sqlite3.InterfaceError: peewee.InterfaceError,
    sqlite3.DataError: peewee.DataError,
    sqlite3.NotSupportedError: peewee.NotSupportedError,
    sqlite3.InternalError: peewee.InternalError,
    sqlite3.DatabaseError: peewee.DatabaseError,
}


def _as_peewee_error(exc):
    for kind in type(exc).__mro__:
        if kind in _PEEWEE_ERRORS:
            return _PEEWEE_ERRORS[kind](exc, *exc.args)
    return None


class TakenRows:
    """A cursor whose statement was read to its end when it ran.

    A SELECT still being read keeps its connection's snapshot, and on the
    writer's connection it would outlive the turn; once its rows are taken it
    holds neither, so any query may be read at any time, inside or outside a
    write transaction.  Statements without result columns (INSERT, UPDATE, ...)
    are already complete when ``execute`` returns.
    """

    __slots__ = ("_connection", "_rows", "description", "lastrowid", "rowcount", "fetchone")

    def __init__(self, connection):
        self._connection = connection

    def execute(self, sql, params=()):
        """Run SQL with PARAMS and take its rows."""
        return self._take(self._connection.execute(sql, params))

    def executemany(self, sql, rows):
        """Run SQL once per parameter tuple of ROWS."""
        return self._take(self._connection.executemany(sql, rows))

    def _take(self, cursor):
        self._rows = rows = iter(cursor.fetchall() if cursor.description else ())
        self.description, self.lastrowid, self.rowcount = cursor.description, cursor.lastrowid, cursor.rowcount
        self.fetchone = functools.partial(next, rows, None)
        return self

    def fetchall(self):
        return list(self._rows)

    def fetchmany(self, size=1):
        return list(itertools.islice(self._rows, size))

    def __iter__(self):
        return self._rows

    def close(self):
        self._rows = iter(())


class Database(SqliteDatabase):
    """The node's database: readers on a connection per thread, write transactions on the writer's.

    ``begin()`` takes the writer's turn (``node/store/writer.py``) and
    ``commit()``/``rollback()`` give it back; between them this thread's
    statements run on the write connection.  Every cursor is a ``TakenRows``,
    so no statement outlives a turn or holds a stale snapshot.
    """

    def __init__(self, *args, **kwargs):
        self.writer = Writer()
        super().__init__(*args, **kwargs)

    def init(self, database, pragmas=None, timeout=TIMEOUT, **kwargs):
        """Point the handle at the file DATABASE, for readers and the writer."""
        super().init(database, pragmas=pragmas, timeout=timeout, **kwargs)
        if database is None:
            self.writer.close()
        else:
            self.writer.open(database, PRAGMAS if pragmas is None else pragmas, timeout)

    def connection(self):
        """The connection this thread's statements run on: the writer's during its turn."""
        return self.writer.current() or super().connection()

    def cursor(self, named_cursor=None):
        """A cursor on ``connection()`` that takes its statement's rows when it runs."""
        if self.is_closed():
            self.connect()  # this thread's own connection, for its reads
        return TakenRows(self.connection())

    def execute_sql(self, sql, params=None):
        """Run SQL on ``connection()``; returns a cursor (its rows already taken when it has any).

        Straight to sqlite3 unless peewee's query log or hooks are on: peewee's
        own path (logging, hooks, a new cursor object each time) doubled the
        cost of a small statement (3.6 against 1.7 µs), and an event of a sync
        batch runs about ten.
        """
        if self.query_hooks or _peewee_log.isEnabledFor(logging.DEBUG):
            return super().execute_sql(sql, params)
        try:
            cursor = (self.writer.current() or super().connection()).execute(sql, params or ())
        except sqlite3.Error as exc:
            mapped = _as_peewee_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        if cursor.description is None:  # no rows: the statement is complete already
            return cursor
        return TakenRows(None)._take(cursor)

    def begin(self, lock_type=None):
        """Take the writer's turn, then ``BEGIN IMMEDIATE`` on its connection."""
        if self.is_closed():
            self.connect()
        self.writer.take()
        try:
            super().begin(lock_type)
        except BaseException:
            self.writer.give_back()
            raise

    def commit(self):
        """Commit, then give the turn back (on failure the transaction stays open: roll back)."""
        super().commit()
        self.writer.give_back()

    def rollback(self):
        """Roll back, and give the turn back whatever happens."""
        try:
            super().rollback()
        finally:
            self.writer.give_back()

    def close(self):
        """Close this thread's connection, first ending any write transaction it left open.

        A thread that closes mid-transaction (an abandoned request) must not
        leave the writer's connection in a transaction, nor keep the turn.
        """
        if self.writer.holds():
            while self.transaction_depth():
                self.pop_transaction()
            self.writer.abandon()
        try:
            return super().close()
        finally:
            self.writer.close()  # reopened by the next write transaction


database = Database(None, lock_type="IMMEDIATE")


def open_database(path):
    """Point the shared handle at PATH (creating its folder) and migrate it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if not database.is_closed():
        database.close()
    database.init(path, pragmas=PRAGMAS, timeout=TIMEOUT, check_same_thread=False)
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
    database.writer.add_pragma("wal_autocheckpoint", 0)
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


@contextlib.contextmanager
def savepoint(name):
    """Undo what the block wrote if it raises (a SAVEPOINT of a fixed NAME: prepared once)."""
    database.execute_sql(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        database.execute_sql(f"ROLLBACK TO {name}")
        raise
    finally:
        database.execute_sql(f"RELEASE {name}")
