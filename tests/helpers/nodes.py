"""Nodes for a test: built in this process, or started as real processes."""
import contextlib
import datetime
import os
import signal
from types import SimpleNamespace

from node import config
from node.demo.network import DEMO_NODES, make_network, start_idp, start_node, wait_healthy, wait_idp
from node.keys import ensure_key
from node.store.db import database
from node.store.models import Item, Loan, Patron
from node.web.app import create_app
from tests.helpers.config import write_config
from tests.network import free_port

UTC = datetime.timezone.utc

NOW = datetime.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def network_node(folder):
    path = write_config(str(folder), peers=[("SOUTH", "South College", "http://127.0.0.1:9", "")],
                        extra="[policy:book]\nfine_per_day = 0.50\n")
    cfg = config.load(path)
    ensure_key(cfg)
    create_app(cfg, {"TESTING": True})
    with database.atomic():
        Patron.create(institution="NORTH", home_id="s-1", name="One", updated_at=NOW)
        Patron.create(institution="NORTH", home_id="s-2", name="Two", blocked=True, updated_at=NOW)
        visitor = Patron.create(institution="SOUTH", home_id="v-1", name="Visitor", updated_at=NOW)
        one = Item.create(owner="SOUTH", barcode="S1", title="Old title", status="on_loan", updated_at=NOW)
        Item.create(owner="SOUTH", barcode="S2", status="available", updated_at=NOW)
        Item.create(owner="SOUTH", barcode="S3", status="available", updated_at=NOW)
        Loan.create(id="OLD", item=one, patron=Patron.get(home_id="s-1"), lender="SOUTH",
                    checked_out_at=NOW - datetime.timedelta(days=9), due_at=NOW, updated_at=NOW)
        own = Item.create(owner="NORTH", barcode="N1", item_type="book", status="on_loan", updated_at=NOW)
        Loan.create(id="NL1", item=own, patron=visitor, lender="NORTH", checked_out_at=NOW - datetime.timedelta(days=30),
                    due_at=NOW - datetime.timedelta(days=10), updated_at=NOW)
    return cfg


@contextlib.contextmanager
def north_and_south_with_idp(base):
    """NORTH and SOUTH as real processes in folder BASE, with SOUTH's demo IdP; stopped afterwards."""
    nodes = DEMO_NODES[:2]
    # A generous standing timeout: on a busy test machine SOUTH must still count as reachable.
    infos = {info.code: info for info in make_network(
        str(base), nodes=nodes, items=10, patrons=3, ports=[free_port() for _ in nodes], idps=True,
        overrides={"sync": {"standing_timeout_seconds": "20"}})}
    processes = [start_node(infos["NORTH"]), start_node(infos["SOUTH"]), start_idp(infos["SOUTH"])]
    try:
        wait_healthy(infos["NORTH"], timeout=60, process=processes[0])
        wait_healthy(infos["SOUTH"], timeout=60, process=processes[1])
        wait_idp(infos["SOUTH"], timeout=60, process=processes[2])
        yield SimpleNamespace(north=infos["NORTH"], south=infos["SOUTH"])
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=15)
