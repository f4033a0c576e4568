"""A NORTH node in this process with its SIP2 server on a real loopback socket (SOUTH is a peer that is down)."""
import datetime
import textwrap
from types import SimpleNamespace

import pytest

from tests.helpers.config import write_config
from tests.network import free_port
from tests.sip2.kiosk import KIOSK_PASSWORD

UTC = datetime.timezone.utc


def kiosk_node_config(folder, south_public_key, sip2_extra="", idle_timeout=5):
    """NORTH's node.ini: SOUTH a peer (down) whose card numbers look like S123456, a [sip2] section."""
    extra = textwrap.dedent(f"""
        [peer:SOUTH]
        name = South College
        base_url = http://127.0.0.1:9
        public_key = {south_public_key}
        card_pattern = S\\d{{6}}

        [sip2]
        host = 127.0.0.1
        port = {free_port()}
        idle_timeout_seconds = {idle_timeout}
        card_numbers = yes
        """) + textwrap.dedent(sip2_extra)
    return write_config(folder, extra=extra)


@pytest.fixture
def south_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from node.keys import encode_public_key
    key = Ed25519PrivateKey.generate()
    return key, encode_public_key(key.public_key())


def start_kiosk_node(path):
    """Load PATH, open its database with a few items, a patron and kiosk1, and start its SIP2 server."""
    from node import config
    from node.domain.kiosks import add_account
    from node.keys import ensure_key
    from node.sip2.server import start
    from node.store.db import open_database
    from node.store.models import Item, Patron
    cfg = config.load(path)
    ensure_key(cfg)
    open_database(cfg.database_path)
    now = datetime.datetime.now(UTC)
    for n in range(1, 9):
        Item.create(owner="NORTH", barcode=f"N{n:04d}", title=f"Book {n}", item_type="book", updated_at=now)
    Item.create(owner="NORTH", barcode="R0001", title="Atlas", item_type="reference", updated_at=now)
    Patron.create(institution="NORTH", home_id="n-100", name="Nora North", updated_at=now)
    Patron.create(institution="NORTH", home_id="n-blocked", name="Bo", blocked=True, block_reason="Lost card.",
                  updated_at=now)
    add_account("kiosk1", KIOSK_PASSWORD, now, location="LOBBY")
    return cfg, start(cfg)


@pytest.fixture
def kiosk_node(tmp_path, south_key):
    """NORTH with its SIP2 server running; .cfg, .port, .south_key (SOUTH's private key, for its passes)."""
    from node.store.db import database
    cfg, server = start_kiosk_node(kiosk_node_config(str(tmp_path / "north"), south_key[1]))
    yield SimpleNamespace(cfg=cfg, server=server, port=server.server_address[1], south_key=south_key[0])
    server.shutdown()
    server.server_close()
    database.close()


def south_pass(node, home_id="s-7", name="Sam", days=7, issued=None):
    """A network pass SOUTH signed for its patron HOME_ID."""
    from node.domain.patron_pass import encode
    issued = issued or datetime.datetime.now(UTC)
    return encode(node.south_key, "SOUTH", home_id, name, issued, issued + datetime.timedelta(days=days))
