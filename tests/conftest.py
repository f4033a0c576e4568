"""Shared fixtures: a fresh node (config, SQLite file, key) per test, plus app/client/runner.

Plain helper functions live in tests/helpers/; test modules import from there, never from each other.
"""
import datetime

import pytest

import sync
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS
from tests.helpers.config import write_config

sync.connect()  # the domain's ports, as create_app and the circnode group connect them

UTC = datetime.timezone.utc


@pytest.fixture
def node_config(tmp_path):
    from node import config
    from node.keys import ensure_key
    path = write_config(str(tmp_path / "north"), peers=[
        ("SOUTH", "South College", "http://127.0.0.1:9", "")])
    cfg = config.load(path)
    ensure_key(cfg)
    return cfg


@pytest.fixture
def opened_node(node_config):
    """node_config with its database opened in this process (no app), closed after the test."""
    from node.store.db import database, open_database
    open_database(node_config.database_path)
    yield node_config
    database.close()


@pytest.fixture
def ini(tmp_path):
    """The path of a node.ini for NORTH with SOUTH as a peer; nothing is created yet (the CLI's init does)."""
    return write_config(str(tmp_path / "north"), peers=[("SOUTH", "South College", "http://127.0.0.1:9", "")])


@pytest.fixture
def app(node_config):
    from node.web.app import create_app
    app = create_app(node_config, {"TESTING": True})
    yield app
    from node.store.db import database
    database.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner():
    """Run the circnode CLI group in this process on a node's config: runner(cfg, *args) -> click's Result."""
    from click.testing import CliRunner

    from node.cli.main import main
    cli = CliRunner()

    def invoke(cfg, *args, **kwargs):
        kwargs.setdefault("catch_exceptions", False)
        return cli.invoke(main, ["--config", cfg.path, *args], **kwargs)
    return invoke


@pytest.fixture
def seeded(app, node_config):
    """A few items and one own patron."""
    from node.store.models import Item, Patron
    now = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    for n in range(1, 6):
        Item.create(owner="NORTH", barcode=f"N{n:04d}", title=f"Book {n}", item_type="book",
                    replacement_cost="40.00", updated_at=now)
    Item.create(owner="NORTH", barcode="R0001", title="Atlas", item_type="reference", updated_at=now)
    Patron.create(institution="NORTH", home_id="n-100", name="Nora North", email="nora@north.test",
                  updated_at=now)
    return node_config


@pytest.fixture
def token(app):
    from node.domain.accounts import add_staff, new_token
    now = datetime.datetime.now(UTC)
    add_staff("desk1", "desk", "correct horse", now)
    return new_token("desk1", now)


@pytest.fixture
def admin_token(app):
    from node.domain.accounts import add_staff, new_token
    now = datetime.datetime.now(UTC)
    add_staff("admin1", "admin", "battery staple", now)
    return new_token("admin1", now)


@pytest.fixture
def lender(tmp_path):
    """NORTH with billing terms and a calendar; SOUTH is a peer (never reached in these tests)."""
    from tests.helpers.billing import build_lender
    yield build_lender(tmp_path)
    from node.store.db import database
    database.close()


@pytest.fixture
def smtp():
    """A real mail server on loopback; its handler (tests.helpers.mail.Inbox) keeps every message."""
    from aiosmtpd.controller import Controller

    from tests.helpers.mail import Inbox
    from tests.network import free_port
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


@pytest.fixture
def network(tmp_path):
    """A factory of real node networks; every process is stopped after the test."""
    from tests.network import Network
    made = []

    def build(**kwargs):
        net = Network(tmp_path / f"net{len(made)}", **kwargs)
        made.append(net)
        return net
    yield build
    for net in made:
        net.stop_all()


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session; tests open their own contexts."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
