"""One item, at most one open loan: concurrent checkouts on a real SQLite file and a real server."""
import collections
import concurrent.futures
import datetime
import os
import threading

import pytest
import requests

from node.domain import circulation, errors
from node.domain.circulation import Standing
from node.store.db import database, open_database
from node.store.models import Item, Loan, OutboxEvent, Patron

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
THREADS = 8


@pytest.fixture
def cfg(opened_node):
    for n in range(THREADS):
        Item.create(owner="NORTH", barcode=f"C{n}", title=f"Contested {n}", item_type="book", updated_at=NOW)
        Patron.create(institution="NORTH", home_id=f"p{n}", updated_at=NOW)
    return opened_node


def _race(work):
    """Run WORK(i) in THREADS threads released at the same moment; return outcome per thread."""
    start = threading.Barrier(THREADS)

    def one(index):
        start.wait()
        try:
            return work(index)
        except errors.CircnodeError as exc:
            return exc.code
        except Exception as exc:  # e.g. "database is locked": the test must see it, not lose it
            return f"{type(exc).__name__}: {exc}"
        finally:
            database.close()  # this thread's connection

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(one, range(THREADS)))


def test_same_item_from_many_threads_gives_exactly_one_loan(cfg):
    def checkout(index):
        # Half the desks lend to visiting patrons, so the outbox is written under the race too.
        if index % 2:
            circulation.checkout(cfg, "C0", "SOUTH", f"s{index}", Standing(True), NOW)
        else:
            circulation.checkout(cfg, "C0", "NORTH", f"p{index}", Standing(True), NOW)
        return "loan"

    outcomes = collections.Counter(_race(checkout))
    assert outcomes == {"loan": 1, "item_on_loan": THREADS - 1}
    item = Item.get(barcode="C0")
    assert item.status == "on_loan"
    assert Loan.select().where((Loan.item == item) & (Loan.status == "open")).count() == 1
    assert Loan.select().count() == 1
    assert OutboxEvent.select().count() == (1 if Loan.get().patron.institution == "SOUTH" else 0)
    assert Patron.select().where(Patron.institution == "SOUTH").count() <= 1  # refused ones left no record


def test_different_items_from_many_threads_all_succeed_with_ordered_events(cfg):
    def checkout(index):
        return circulation.checkout(cfg, f"C{index}", "SOUTH", f"s{index}", Standing(True), NOW).id

    outcomes = _race(checkout)
    assert all(len(outcome) == 36 for outcome in outcomes), outcomes  # loan ids, no error codes
    assert Loan.select().where(Loan.status == "open").count() == THREADS
    sequences = sorted(e.sequence for e in OutboxEvent.select().where(OutboxEvent.destination == "SOUTH"))
    assert sequences == list(range(1, THREADS + 1))  # no gap, no duplicate under concurrent writers


def test_checkout_and_return_racing_leave_a_consistent_item(cfg):
    circulation.checkout(cfg, "C0", "NORTH", "p0", Standing(True), NOW)

    def work(index):
        if index % 2:
            circulation.return_item(cfg, "C0", NOW)
            return "returned"
        circulation.checkout(cfg, "C0", "NORTH", f"p{index}", Standing(True), NOW)
        return "loan"

    outcomes = _race(work)
    assert not [o for o in outcomes if o not in ("returned", "loan", "item_on_loan", "not_on_loan")], outcomes
    open_loans = Loan.select().where(Loan.status == "open").count()
    assert open_loans <= 1
    assert Item.get(barcode="C0").status == ("on_loan" if open_loans else "available")


def test_a_thread_closing_mid_transaction_rolls_back_and_others_write_on(cfg):
    # Write transactions of all threads share one connection (node/store/db.py): a thread that
    # gives up mid-transaction must end it there, not leave it open for the next writer.
    def abandon():
        database.connect(reuse_if_open=True)
        database.begin()
        Item.update(title="half-written").where(Item.barcode == "C1").execute()
        database.close()

    worker = threading.Thread(target=abandon)
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
    assert Item.get(barcode="C1").title == "Contested 1"
    done = []
    writer = threading.Thread(target=lambda: done.append(
        circulation.checkout(cfg, "C1", "SOUTH", "s1", Standing(True), NOW).id), daemon=True)
    writer.start()
    writer.join(10)
    assert done, "the abandoned transaction still holds the writer lock"
    assert Loan.get_by_id(done[0]).status == "open"


def test_a_writer_connection_left_in_a_transaction_is_rolled_back_not_fatal(cfg, caplog):
    circulation.checkout(cfg, "C3", "NORTH", "p3", Standing(True), NOW)  # opens the writer connection
    stray = database.writer.take()
    stray.execute("BEGIN")  # as after a failure that skipped the rollback
    stray.execute("UPDATE item SET title = 'stray' WHERE barcode = 'C4'")
    database.writer.give_back()
    loan = circulation.checkout(cfg, "C4", "NORTH", "p4", Standing(True), NOW)
    assert Loan.get_by_id(loan.id).status == "open"
    assert Item.get(barcode="C4").title == "Contested 4"  # the stray write was rolled back
    assert "left in a transaction" in caplog.text


def test_reads_on_other_threads_see_each_committed_write(cfg):
    seen = []

    def read(index):
        seen.append(Item.get(barcode="C2").status)
        return index

    circulation.checkout(cfg, "C2", "NORTH", "p2", Standing(True), NOW)
    _race(read)
    assert seen == ["on_loan"] * THREADS


# --- the same race against the real server: waitress, 8 threads, loopback ------

@pytest.fixture(scope="module")
def live_node(tmp_path_factory):
    from tests.network import Network
    net = Network(tmp_path_factory.mktemp("race"), items=40, patrons=THREADS)
    net.start("NORTH")
    yield net
    net.stop_all()


def _post_all(net, bodies):
    start = threading.Barrier(len(bodies))

    def post(body):
        start.wait()
        return net.api("NORTH", "POST", "/api/v1/checkouts", body, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def _log(net):
    with open(os.path.join(net.info("NORTH").folder, "node.log"), errors="replace") as handle:
        return handle.read()


def test_same_item_over_http_gives_one_201_and_the_rest_409(live_node):
    bodies = [{"item_barcode": "N00001", "patron": {"institution": "NORTH", "id": f"north-{n + 1}"}}
              for n in range(THREADS)]
    answers = _post_all(live_node, bodies)
    statuses = collections.Counter(answer.status_code for answer in answers)
    assert statuses == {201: 1, 409: THREADS - 1}, ([a.text for a in answers], _log(live_node)[-3000:])
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"item_on_loan"}
    open_loans = live_node.api("NORTH", "GET", "/api/v1/loans?status=open").json()["loans"]
    assert [loan["item"]["barcode"] for loan in open_loans].count("N00001") == 1
    item = live_node.api("NORTH", "GET", "/api/v1/items/N00001").json()
    assert item["status"] == "on_loan" and item["loan"]["status"] == "open"
    log = _log(live_node)
    assert "database is locked" not in log, log[-3000:]
    assert "unexpected error on POST /api/v1/checkouts" not in log, log[-3000:]


def test_different_items_over_http_all_succeed(live_node):
    bodies = [{"item_barcode": f"N{n + 10:05d}", "patron": {"institution": "NORTH", "id": f"north-{n + 1}"}}
              for n in range(THREADS)]
    answers = _post_all(live_node, bodies)
    assert [a.status_code for a in answers] == [201] * THREADS, ([a.text for a in answers], _log(live_node)[-3000:])
    assert len({a.json()["id"] for a in answers}) == THREADS
    assert "database is locked" not in _log(live_node)


def test_live_node_answers_health_and_unknown_paths_in_json(live_node):
    health = requests.get(live_node.url("NORTH", "/healthz"), timeout=5)
    assert health.status_code == 200 and health.json()["institution"] == "NORTH"
    missing = requests.get(live_node.url("NORTH", "/api/v1/nothing"), timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_background_checkpoints_leave_the_commit_alone_and_write_the_wal_back_later(tmp_path):
    from node.store.db import checkpoint, checkpoints_in_background
    path = str(tmp_path / "ckpt" / "node.sqlite3")
    open_database(path)
    checkpoints_in_background()
    try:
        size = os.path.getsize(path)
        with database.atomic():  # about 1,500 pages: past the 1,000 at which a commit would checkpoint
            for n in range(1500):
                Item.create(owner="NORTH", barcode=f"K{n}", title="x" * 3000, updated_at=NOW)
        assert os.path.getsize(path) == size  # the commit wrote the WAL only
        busy, frames, written = checkpoint()
        assert (busy, written) == (0, frames) and frames > 1000
        assert os.path.getsize(path) > size + 4_000_000
        assert Item.select().where(Item.barcode.startswith("K")).count() == 1500
    finally:
        database.close()


def test_a_query_read_across_a_write_sees_nothing_stale_afterwards(cfg):
    # Rows are taken when a statement runs (node/store/db.py), so a loop over a query
    # that writes as it goes holds no snapshot: reads after each write see it.
    for item in Item.select().where(Item.barcode.in_(["C5", "C6"])).order_by(Item.barcode):
        with database.atomic():
            Item.update(title=f"seen {item.barcode}").where(Item.id == item.id).execute()
        assert Item.get_by_id(item.id).title == f"seen {item.barcode}"


def test_a_cursor_opened_in_a_write_transaction_reads_after_it_ends(cfg):
    with database.atomic():
        cursor = database.execute_sql("SELECT barcode FROM item ORDER BY barcode")
        query = Item.select(Item.barcode).order_by(Item.barcode).tuples().execute()
    assert not database.writer.holds()
    assert [row[0] for row in cursor] == [f"C{n}" for n in range(THREADS)]
    assert [row[0] for row in query] == [f"C{n}" for n in range(THREADS)]


def test_the_writer_is_taken_by_one_thread_at_a_time_and_given_back(cfg):
    with database.atomic():
        assert database.writer.holds()
        other = []
        thread = threading.Thread(target=lambda: other.append(database.writer.holds()))
        thread.start()
        thread.join()
        assert other == [False]
        assert database.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
    assert not database.writer.holds()
