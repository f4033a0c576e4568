"""The SQLite file: durable pragmas, constraints, and migrations that keep data."""
import datetime
import sqlite3
import threading

import pytest
from peewee import IntegrityError, SqliteDatabase

from node.store import migrations
from node.store.db import PRAGMAS, database, open_database
from node.store.models import ALL_MODELS, Item, Loan, Patron

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STAMP = "2026-03-02T09:00:00.000000Z"


@pytest.fixture
def db_file(tmp_path):
    path = str(tmp_path / "data" / "node.sqlite3")
    open_database(path)
    yield path
    database.close()


def _pragma(name):
    return database.execute_sql(f"PRAGMA {name}").fetchone()[0]


def test_database_file_is_wal_with_foreign_keys_and_full_sync(db_file):
    assert _pragma("journal_mode") == "wal"
    assert _pragma("foreign_keys") == 1
    assert _pragma("synchronous") == 2  # FULL
    assert _pragma("busy_timeout") >= 5000
    # WAL is a property of the file: a plain connection sees it too.
    with sqlite3.connect(db_file) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_every_thread_connection_gets_the_pragmas(db_file):
    seen = {}

    def look():
        seen["foreign_keys"] = _pragma("foreign_keys")
        seen["synchronous"] = _pragma("synchronous")
        database.close()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join()
    assert seen == {"foreign_keys": 1, "synchronous": 2}


def test_items_are_unique_per_owner_and_barcode(db_file):
    Item.create(owner="NORTH", barcode="B1", title="One", updated_at=NOW)
    Item.create(owner="SOUTH", barcode="B1", title="Theirs", updated_at=NOW)  # another owner may reuse it
    with pytest.raises(IntegrityError):
        with database.atomic():
            Item.create(owner="NORTH", barcode="B1", title="Copy", updated_at=NOW)
    assert Item.select().where(Item.barcode == "B1").count() == 2


def test_foreign_keys_are_enforced(db_file):
    with pytest.raises(IntegrityError):
        with database.atomic():
            Loan.create(item=9999, lender="NORTH", checked_out_at=NOW, due_at=NOW, updated_at=NOW)
    assert Loan.select().count() == 0


def test_an_item_has_at_most_one_open_loan_in_the_schema(db_file):
    item = Item.create(owner="NORTH", barcode="B1", title="One", updated_at=NOW)
    Loan.create(item=item, lender="NORTH", checked_out_at=NOW, due_at=NOW, updated_at=NOW, status="closed")
    Loan.create(item=item, lender="NORTH", checked_out_at=NOW, due_at=NOW, updated_at=NOW)
    with pytest.raises(IntegrityError):
        with database.atomic():
            Loan.create(item=item, lender="NORTH", checked_out_at=NOW, due_at=NOW, updated_at=NOW)


def _raw_database(path):
    """A database handle of its own (not the node's shared one), with the node's pragmas."""
    db = SqliteDatabase(path, pragmas=PRAGMAS)
    db.connect()
    return db


def test_version_1_database_with_data_upgrades_to_latest_keeping_it(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    old = _raw_database(path)
    assert migrations.migrate(old, target=1) == 1
    assert migrations.current_version(old) == 1
    old.execute_sql("INSERT INTO item (id, owner, barcode, title, item_type, replacement_cost, status, updated_at)"
                    " VALUES (1, 'NORTH', 'B1', 'Old book', 'book', 12.5, 'on_loan', ?)", (STAMP,))
    old.execute_sql("INSERT INTO patron (id, institution, home_id, name, updated_at)"
                    " VALUES (1, 'SOUTH', 's-1', 'Sam South', ?)", (STAMP,))
    old.execute_sql("INSERT INTO loan (id, item_id, patron_id, lender, checked_out_at, due_at, updated_at)"
                    " VALUES ('loan-1', 1, 1, 'NORTH', ?, ?, ?)", (STAMP, "2026-03-16T22:59:59.000000Z", STAMP))
    old.execute_sql("INSERT INTO outbox_event (destination, sequence, event_id, type, payload, created_at)"
                    " VALUES ('SOUTH', 1, 'ev-1', 'loan.created', '{}', ?)", (STAMP,))
    old.close()

    open_database(path)  # what a node does on start: migrate to the latest version
    try:
        assert migrations.current_version(database) == max(migrations.MIGRATIONS)
        loan = Loan.get_by_id("loan-1")
        assert (loan.item.barcode, loan.item.status, loan.patron.home_id) == ("B1", "on_loan", "s-1")
        assert loan.due_at == datetime.datetime(2026, 3, 16, 22, 59, 59, tzinfo=UTC)
        body = loan.to_dict(datetime.timezone.utc)
        assert body["item"]["title"] == "Old book" and body["patron"] == {"institution": "SOUTH", "id": "s-1"}
        assert database.execute_sql("SELECT COUNT(*) FROM outbox_event").fetchone()[0] == 1
        # New rows can be written through the models after the upgrade.
        Patron.create(institution="NORTH", home_id="n-1", updated_at=NOW)
    finally:
        database.close()


def test_migrating_again_changes_nothing(db_file):
    before = database.execute_sql("SELECT version, applied_at FROM schema_version").fetchall()
    migrations.migrate(database)
    assert database.execute_sql("SELECT version, applied_at FROM schema_version").fetchall() == before
    assert [row[0] for row in before] == sorted(migrations.MIGRATIONS)


def test_a_failing_migration_leaves_the_database_as_it_was(db_file, monkeypatch):
    version = migrations.current_version(database)
    monkeypatch.setitem(migrations.MIGRATIONS, version + 1,
                        ["CREATE TABLE half_done (x INTEGER)", "THIS IS NOT SQL"])
    with pytest.raises(Exception):
        migrations.migrate(database)
    assert migrations.current_version(database) == version
    assert "half_done" not in database.get_tables()


def _columns(table):
    return {row[1]: row for row in database.execute_sql(f'PRAGMA table_info("{table}")').fetchall()}


def test_migrated_schema_matches_the_models(db_file):
    tables = set(database.get_tables())
    problems = []
    for model in ALL_MODELS:
        table = model._meta.table_name
        if table not in tables:
            problems.append(f"{model.__name__}: no table {table!r}")
            continue
        columns = _columns(table)
        fields = {field.column_name for field in model._meta.sorted_fields}
        for name in sorted(fields - set(columns)):
            problems.append(f"{model.__name__}.{name}: no column in {table}")
        for name, (_, _, _, notnull, default, pk) in columns.items():
            # A column the model does not know must not be required, or every insert fails.
            if name not in fields and notnull and default is None and not pk:
                problems.append(f"{table}.{name}: NOT NULL without default, unknown to {model.__name__}")
    assert not problems, "\n".join(problems)


def test_model_indexes_declared_unique_exist_as_unique_indexes(db_file):
    problems = []
    for model in ALL_MODELS:
        table = model._meta.table_name
        unique_sets = []
        for index in database.execute_sql(f'PRAGMA index_list("{table}")').fetchall():
            if index[2]:  # unique
                cols = tuple(r[2] for r in database.execute_sql(f'PRAGMA index_info("{index[1]}")').fetchall())
                unique_sets.append(cols)
        for fields, unique in model._meta.indexes:
            if unique:
                wanted = tuple(getattr(model, f).column_name for f in fields)
                if wanted not in unique_sets:
                    problems.append(f"{table}: no unique index on {wanted}")
        for field in model._meta.sorted_fields:
            if field.unique and (field.column_name,) not in unique_sets:
                problems.append(f"{table}.{field.column_name}: declared unique, not unique in the schema")
    assert not problems, "\n".join(problems)
