"""The demo gives NORTH a SIP2 server and a kiosk login (node/demo/network.py enable_kiosks)."""
import os
import signal

import pytest

from node.demo.network import DEMO_KIOSK, DEMO_NODES, DEMO_PASSWORD, enable_kiosks, make_network, start_node, wait_healthy
from tests.network import free_port
from tests.sip2.kiosk import Raw

pytestmark = pytest.mark.slow


def test_the_demos_north_serves_kiosks_with_the_printed_login(tmp_path):
    north, = make_network(str(tmp_path), nodes=DEMO_NODES[:1], items=5, patrons=2, ports=[free_port()])
    port = enable_kiosks(north, free_port())
    assert enable_kiosks(north, 1) == port  # run twice (a demo started again): the same server, one account
    process = start_node(north)
    try:
        wait_healthy(north, timeout=60, process=process)
        kiosk = Raw(port)
        assert kiosk.ask(f"9300CN{DEMO_KIOSK}|CO{DEMO_PASSWORD}|\r".encode()) == b"941"
        answer = kiosk.ask(b"11NN20260302    101600" + b" " * 18 + b"AONORTH|AAnorth-1|ABN00001|AC|\r")
        assert answer.startswith(b"121"), answer
        kiosk.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
