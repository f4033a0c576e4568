"""The circnode command, run as a real subprocess: init, keys, staff, loans."""
import datetime

import pytest

from tests.helpers.cli import circnode, ok, refused

UTC = datetime.timezone.utc


@pytest.fixture
def opened(ini):
    """The node's database opened in this process too (for setting up and checking state)."""
    from node import config
    from node.store.db import database, open_database
    cfg = config.load(ini)
    open_database(cfg.database_path)
    yield cfg
    database.close()


def test_init_creates_database_and_key_and_is_safe_to_run_twice(ini, tmp_path):
    first = ok(circnode("--config", ini, "init"))
    key_file = tmp_path / "north" / "var" / "node_ed25519.pem"
    db_file = tmp_path / "north" / "var" / "circnode.sqlite3"
    assert key_file.exists() and db_file.exists()
    assert (key_file.stat().st_mode & 0o777) == 0o600
    key_before = key_file.read_bytes()
    ok(circnode("--config", ini, "staff", "add", "ana", "--role", "admin", "--password-stdin",
                input="long enough password\n"))
    second = ok(circnode("--config", ini, "init"))
    assert "kept" in second.stdout and "created" in first.stdout
    assert key_file.read_bytes() == key_before
    assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1]
    again = circnode("--config", ini, "staff", "add", "ana", "--role", "admin", "--password-stdin",
                     input="long enough password\n")
    refused(again, "exists")  # the account made before the second init is still there


def test_keys_show_prints_the_public_key_as_last_line(ini):
    init = ok(circnode("--config", ini, "init"))
    shown = ok(circnode("--config", ini, "keys", "show"))
    last = shown.stdout.strip().splitlines()[-1]
    assert last.startswith("ed25519:")
    assert init.stdout.strip().endswith(last)
    from sync.signing import decode_public_key
    decode_public_key(last)  # a key a peer can paste into its [peer:NORTH] public_key


def test_keys_show_before_init_says_to_run_init(ini):
    refused(circnode("--config", ini, "keys", "show"), "circnode init")


def test_staff_add_from_stdin_then_token_works_on_the_api(ini):
    ok(circnode("--config", ini, "init"))
    added = ok(circnode("--config", ini, "staff", "add", "desk-1", "--role", "desk", "--password-stdin",
                        input="a fine long password\n"))
    assert "desk-1" in added.stdout
    token = ok(circnode("--config", ini, "staff", "token", "desk-1")).stdout.strip().splitlines()[-1]
    other = ok(circnode("--config", ini, "staff", "token", "desk-1")).stdout.strip().splitlines()[-1]
    assert token.startswith("cn_") and token != other
    from node.web.app import create_app
    from node.store.db import database
    app = create_app(ini, {"TESTING": True})
    try:
        client = app.test_client()
        for value in (token, other):  # both tokens are valid: a new one does not revoke the old
            answer = client.get("/api/v1/loans", headers={"Authorization": f"Bearer {value}"})
            assert answer.status_code == 200, answer.get_json()
        assert client.get("/api/v1/loans", headers={"Authorization": "Bearer cn_nope"}).status_code == 401
    finally:
        database.close()


def test_staff_add_prompts_for_the_password_twice(ini, opened):
    ok(circnode("--config", ini, "staff", "add", "bo", "--role", "desk",
                input="prompted password 1\nprompted password 1\n"))
    from node.domain.accounts import check_login
    staff = check_login("bo", "prompted password 1", "127.0.0.1", datetime.datetime.now(UTC))
    assert staff.role == "desk"


@pytest.mark.parametrize("password, reason", [
    ("short", "at least"),
    ("", "at least"),
    ("password123", "common"),
    ("carla-admin", "name"),
])
def test_staff_add_refuses_a_weak_password(ini, opened, password, reason):
    result = circnode("--config", ini, "staff", "add", "carla-admin", "--role", "admin", "--password-stdin",
                      input=password + "\n")
    refused(result, reason)
    from node.store.models import Staff
    assert not Staff.select().where(Staff.name == "carla-admin").exists()


def test_staff_add_refuses_a_taken_name_clearly(ini, opened):
    ok(circnode("--config", ini, "staff", "add", "dora", "--role", "desk", "--password-stdin",
                input="first password here\n"))
    line = refused(circnode("--config", ini, "staff", "add", "dora", "--role", "admin", "--password-stdin",
                            input="second password here\n"), "dora", "exists")
    assert "staff_exists" in line
    from node.store.models import Staff
    assert Staff.get(Staff.name == "dora").role == "desk"


def test_staff_add_refuses_an_unknown_role(ini):
    result = circnode("--config", ini, "staff", "add", "eve", "--role", "boss", "--password-stdin",
                      input="a fine long password\n")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "boss" in result.stderr


def test_staff_token_for_an_unknown_name_is_one_line(ini):
    ok(circnode("--config", ini, "init"))
    refused(circnode("--config", ini, "staff", "token", "nobody"), "nobody")


def _lend(cfg, barcode, patron, now):
    from node.domain import circulation
    return circulation.checkout(cfg, barcode, "NORTH", patron,
                                circulation.own_patron_standing(cfg, patron, now), now)


def test_loans_lists_open_and_overdue_loans(ini, opened):
    from node.domain import circulation
    from node.store.models import Item, Patron
    cfg = opened
    long_ago = datetime.datetime(2020, 1, 6, 10, 0, tzinfo=UTC)
    for n in range(1, 4):
        Item.create(owner="NORTH", barcode=f"B{n}", title=f"Book {n}", item_type="book", updated_at=long_ago)
    Patron.create(institution="NORTH", home_id="p1", name="P One", updated_at=long_ago)
    overdue = _lend(cfg, "B1", "p1", long_ago)
    returned = _lend(cfg, "B2", "p1", long_ago)
    circulation.return_item(cfg, "B2", long_ago + datetime.timedelta(days=1))
    now = datetime.datetime.now(UTC)
    current = _lend(cfg, "B3", "p1", now)

    def listed(*flags):
        result = ok(circnode("--config", ini, "loans", *flags))
        lines = result.stdout.strip().splitlines()
        assert lines[-1] == f"{len(lines) - 2} loans"
        return {line.split()[0] for line in lines[1:-1]}, result.stdout

    everything, text = listed()
    assert everything == {overdue.id, returned.id, current.id}
    assert "OVERDUE" in text and "2020-01-20 23:59" in text  # 14 days, end of day, Zurich time
    assert listed("--open")[0] == {overdue.id, current.id}
    assert listed("--overdue")[0] == {overdue.id}
    assert listed("--open", "--overdue")[0] == {overdue.id}


def test_keys_show_with_a_damaged_key_file_is_one_line(ini, tmp_path):
    ok(circnode("--config", ini, "init"))
    key_file = tmp_path / "north" / "var" / "node_ed25519.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    refused(circnode("--config", ini, "keys", "show"), str(key_file), "Ed25519")
