"""circnode items/patrons import, run as a real subprocess on real CSV files."""
import datetime
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from tests.helpers.cli import REPO, circnode, ok, refused

ITEM_HEADER = "barcode,title,call_number,item_type,replacement_cost\n"
PATRON_HEADER = "id,name,email,expires_on,blocked\n"


@pytest.fixture
def ini(tmp_path):
    from tests.helpers.config import write_config
    path = write_config(str(tmp_path / "north"))
    ok(circnode("--config", path, "init"))
    return path


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def rows(sql, ini):
    """Rows of SQL read straight from the node's SQLite file (no shared handle)."""
    import sqlite3

    from node import config
    with sqlite3.connect(config.load(ini).database_path) as conn:
        return conn.execute(sql).fetchall()


def test_items_import_adds_items_and_reimport_updates_without_duplicates(ini, tmp_path):
    first = write(tmp_path, "items.csv", ITEM_HEADER + "".join(
        f"B{n:03d},Book {n},QA{n},book,{n}.50\n" for n in range(1, 121)) + "R1,Atlas,G1,reference,\n")
    result = ok(circnode("--config", ini, "items", "import", first))
    assert "121 items imported" in result.stdout
    assert rows("SELECT COUNT(*), COUNT(DISTINCT barcode) FROM item WHERE owner='NORTH'", ini) == [(121, 121)]
    assert rows("SELECT title, replacement_cost, status FROM item WHERE barcode='B007'", ini) == [
        ("Book 7", 7.5, "available")]
    rows("UPDATE item SET status='on_loan' WHERE barcode='B007'", ini)
    again = write(tmp_path, "again.csv", ITEM_HEADER + "B007,Book Seven (2nd ed.),QA7,book,9.00\n")
    ok(circnode("--config", ini, "items", "import", again))
    assert rows("SELECT COUNT(*) FROM item", ini) == [(121,)]
    # The import updates the description, never the circulation status.
    assert rows("SELECT title, status FROM item WHERE barcode='B007'", ini) == [("Book Seven (2nd ed.)", "on_loan")]


BAD_ITEMS = ITEM_HEADER + (
    "G1,Good one,,book,1.00\n"
    ",No barcode,,book,\n"                   # line 3
    "G2,,,book,\n"                           # line 4: no title
    "G3,Cost,,book,twelve\n"                 # line 5
    "G4,Cost,,book,1.234\n"                  # line 6
    "G1,Again,,book,\n"                      # line 7: repeats line 2
    "G5,Too,many,book,1,extra\n"             # line 8
    "G6,Good two,,book,\n")


def test_items_import_reports_every_bad_row_and_imports_nothing(ini, tmp_path):
    path = write(tmp_path, "bad.csv", BAD_ITEMS)
    result = circnode("--config", ini, "items", "import", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    reported = [line for line in result.stderr.splitlines() if ": line " in line]
    assert [line.split(": line ")[1].split(":")[0] for line in reported] == ["3", "4", "5", "6", "7", "8"]
    assert "barcode is empty" in reported[0] and "title is empty" in reported[1]
    assert "'twelve'" in reported[2] and "2 decimals" in reported[3]
    assert "repeats line 2" in reported[4] and "more columns" in reported[5]
    assert "nothing imported" in result.stderr.splitlines()[-1]
    assert rows("SELECT COUNT(*) FROM item", ini) == [(0,)]


def test_items_import_skip_bad_imports_the_good_rows(ini, tmp_path):
    path = write(tmp_path, "bad.csv", BAD_ITEMS)
    result = ok(circnode("--config", ini, "items", "import", "--skip-bad", path))
    assert "2 items imported" in result.stdout and "6 bad rows skipped" in result.stdout
    assert sum(": line " in line for line in result.stderr.splitlines()) == 6
    assert rows("SELECT barcode FROM item ORDER BY barcode", ini) == [("G1",), ("G6",)]


@pytest.mark.parametrize("cost", ["1E+30", "1e999999", "-1E+30", "NaN", "Infinity", "1000000000.01", "1e-999999"])
def test_items_import_refuses_an_absurd_replacement_cost_without_a_traceback(ini, tmp_path, cost):
    path = write(tmp_path, "costs.csv", ITEM_HEADER + f"B1,Atlas,,book,{cost}\n")
    result = circnode("--config", ini, "items", "import", path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if ": line " in line] == [
        line for line in result.stderr.splitlines() if "replacement_cost" in line]
    assert "nothing imported" in result.stderr.splitlines()[-1]
    assert rows("SELECT COUNT(*) FROM item", ini) == [(0,)]


@pytest.mark.parametrize("content, encoding, fragments", [
    ("code,title\nB1,x\n", "utf-8", ["line 1", "header must be barcode,title", "missing barcode"]),
    (ITEM_HEADER.replace("title", "titel") + "B1,x,,,\n", "utf-8", ["missing title", "unknown titel"]),
    ("", "utf-8", ["line 1", "header"]),
    (ITEM_HEADER + "B1,Zürich guide,,book,\n", "latin-1", ["not a UTF-8"]),
])
def test_items_import_refuses_a_bad_file_in_one_line(ini, tmp_path, content, encoding, fragments):
    path = write(tmp_path, "file.csv", content, encoding)
    refused(circnode("--config", ini, "items", "import", path), path, *fragments)
    assert rows("SELECT COUNT(*) FROM item", ini) == [(0,)]


def test_items_import_of_a_missing_file_is_one_line(ini, tmp_path):
    path = str(tmp_path / "nowhere.csv")
    refused(circnode("--config", ini, "items", "import", path), path, "cannot open")


def test_byte_order_mark_from_spreadsheet_export_is_accepted(ini, tmp_path):
    path = write(tmp_path, "excel.csv", "\ufeff" + ITEM_HEADER + "X1,Excel item,,book,\n")
    ok(circnode("--config", ini, "items", "import", path))
    assert rows("SELECT barcode FROM item", ini) == [("X1",)]


def test_patrons_import_with_optional_columns(ini, tmp_path):
    path = write(tmp_path, "patrons.csv", PATRON_HEADER
                 + "p1,Pat One,p1@north.example,2030-06-30,no\n"
                 + "p2,Pat Two,,,yes\n"
                 + "p3,Pat Three,p3@north.example,,\n")
    assert "3 patrons imported" in ok(circnode("--config", ini, "patrons", "import", path)).stdout
    assert rows("SELECT home_id, institution, email, expires_on, blocked FROM patron ORDER BY home_id", ini) == [
        ("p1", "NORTH", "p1@north.example", "2030-06-30", 0),
        ("p2", "NORTH", "", None, 1),
        ("p3", "NORTH", "p3@north.example", None, 0)]
    minimal = write(tmp_path, "minimal.csv", "id,name,email\np4,Pat Four,p4@north.example\n")
    ok(circnode("--config", ini, "patrons", "import", minimal))
    assert rows("SELECT COUNT(*) FROM patron", ini) == [(4,)]


def test_patrons_import_reports_bad_rows_by_line(ini, tmp_path):
    path = write(tmp_path, "patrons.csv", PATRON_HEADER
                 + "p1,Fine,,,\n"
                 + ",No id,,,\n"
                 + "p3,Bad mail,not-an-address,,\n"
                 + "p4,Bad date,,31.12.2030,\n"
                 + "p5,Bad flag,,,maybe\n")
    result = circnode("--config", ini, "patrons", "import", path)
    assert result.returncode == 2
    reported = [line for line in result.stderr.splitlines() if ": line " in line]
    assert [line.split(": line ")[1].split(":")[0] for line in reported] == ["3", "4", "5", "6"]
    assert rows("SELECT COUNT(*) FROM patron", ini) == [(0,)]


def test_patrons_import_refuses_an_item_file(ini, tmp_path):
    path = write(tmp_path, "items.csv", ITEM_HEADER + "B1,x,,,\n")
    refused(circnode("--config", ini, "patrons", "import", path), "header must be id,name,email",
            "optional: expires_on,blocked")


def test_import_shows_a_progress_bar_on_a_terminal_stderr(ini, tmp_path):
    path = write(tmp_path, "items.csv", ITEM_HEADER + "".join(f"T{n},Title {n},,book,\n" for n in range(1200)))
    master, slave = pty.openpty()
    # A fresh pty is 0 columns wide, which tqdm would honour with an empty bar.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {**os.environ, "PYTHONPATH": REPO, "COLUMNS": "100"}
    env.pop("CIRCNODE_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "node.cli", "--config", ini, "items", "import", path],
                               stdout=subprocess.PIPE, stderr=slave, env=env, cwd=REPO, text=True)
    os.close(slave)
    terminal = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        terminal += chunk
    os.close(master)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "1200 items imported" in stdout and "importing items" not in stdout  # stdout stays clean
    assert b"importing items" in terminal and b"1200" in terminal
    assert rows("SELECT COUNT(*) FROM item", ini) == [(1200,)]


def test_imported_items_and_patrons_circulate(ini, tmp_path):
    ok(circnode("--config", ini, "items", "import", write(tmp_path, "i.csv", ITEM_HEADER + "C1,Circ,,book,\n")))
    ok(circnode("--config", ini, "patrons", "import", write(tmp_path, "p.csv", "id,name,email\nc-1,C,\n")))
    from node.domain import circulation
    from node import config
    from node.store.db import database, open_database
    cfg = config.load(ini)
    open_database(cfg.database_path)
    try:
        now = datetime.datetime.now(datetime.timezone.utc)
        loan = circulation.checkout(cfg, "C1", "NORTH", "c-1", circulation.own_patron_standing(cfg, "c-1", now), now)
        assert loan.status == "open"
    finally:
        database.close()
