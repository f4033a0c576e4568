"""``circnode demo`` tells the truth when something fails, and one node can be stopped and started again.

Each test runs the demo as a real process (``python -m node.cli demo``) on ports of its own, as a
new user would from README's quick start.
"""
import json
import os
import shlex
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from node.demo.supervisor import DemoError, answers_as, port_is_free
from tests.helpers.cli import circnode
from tests.helpers.demo import DEMO_PORTS, Demo, free_port_block


@pytest.fixture
def demo(tmp_path):
    running = []

    def start():
        started = Demo(tmp_path / "demo", free_port_block())
        running.append(started)
        started.wait_running()
        return started

    yield start
    for started in running:
        started.stop()


def test_demo_refuses_a_taken_port_naming_it_and_its_holder(tmp_path):
    base = free_port_block()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 1))  # SOUTH's port
        holder.listen()
        started = Demo(tmp_path / "demo", base)
        status = started.wait_exit()
    out = started.output()
    assert status == 2, out
    assert f"port {base + 1} (for SOUTH) is in use by pid {os.getpid()}" in out
    assert "is running" not in out and "Traceback" not in out
    assert not os.path.exists(tmp_path / "demo")  # nothing half made


def test_demo_refuses_a_port_that_another_program_took_after_the_check():
    """A node of another demo answers /healthz as NORTH too: only our token tells ours apart."""
    class OtherNorth(BaseHTTPRequestHandler):
        def do_GET(self):
            ours = self.path == "/healthz"
            body = json.dumps({"status": "ok", "institution": "NORTH"} if ours else {"error": "unauthorized"})
            self.send_response(200 if ours else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), OtherNorth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        with pytest.raises(DemoError) as refused:
            answers_as(url, "NORTH", "our-token", 10, None)
        assert refused.value.exit_status == 2 and "another demo holds the port" in refused.value.message
        with pytest.raises(DemoError) as wrong_node:
            answers_as(url, "SOUTH", "our-token", 10, None)
        assert wrong_node.value.exit_status == 2 and "answers as NORTH, not as the SOUTH" in wrong_node.value.message
    finally:
        server.shutdown()
        server.server_close()


def test_demo_names_the_node_that_stopped_and_its_log_and_exits_nonzero(demo):
    running = demo()
    with open(os.path.join(running.folder, "east", "node.pid")) as handle:
        east = int(handle.read())
    os.killpg(east, signal.SIGKILL)
    status = running.wait_exit()
    out = running.output()
    assert status == 1, out
    log = os.path.join(running.folder, "east", "node.log")
    assert f"EAST stopped unexpectedly (killed by SIGKILL); the demo stops. See its log: {log}" in out
    assert "a node stopped; see its node.log" not in out
    for port in range(running.base, running.base + DEMO_PORTS):  # the others were stopped with it
        assert port_is_free(port), port


def test_readme_offline_story_stop_south_lend_at_north_start_south_loan_syncs(demo):
    running = demo()
    # The hints name the folder: pasted as printed, they reach this demo, not ./demo-data.
    assert (f"'circnode demo stop SOUTH --dir {running.folder}' in another terminal stops SOUTH alone; "
            f"'circnode demo start SOUTH --dir {running.folder}' starts it again") in running.output()
    stopped = circnode("demo", "stop", "SOUTH", "--dir", running.folder)
    assert stopped.returncode == 0, stopped.stderr
    assert "SOUTH stopped; NORTH, EAST keep running" in stopped.stdout
    hint = stopped.stdout.split("Start it again: ", 1)[1].strip()
    assert hint == f"circnode demo start SOUTH --dir {running.folder}"
    assert running.process.poll() is None  # the demo goes on
    assert f"SOUTH stopped on request; NORTH, EAST keep running. Start it again: {hint}" in running.output()
    with pytest.raises(requests.ConnectionError):
        requests.get(running.url(1) + "/healthz", timeout=5)
    status = circnode("demo", "status", "--dir", running.folder)
    assert "SOUTH" in status.stdout and "stopped on request" in status.stdout

    lent = running.api(0, "NORTH", "POST", "/api/v1/checkouts",
                       json={"item_barcode": "N00002", "patron": {"institution": "SOUTH", "id": "south-2"}})
    assert lent.status_code == 201, lent.text
    assert lent.json()["provisional"] is True
    loan_id = lent.json()["id"]

    command = shlex.split(hint)
    assert command[:2] == ["circnode", "demo"]
    started = circnode(*command[1:])  # the hint as printed, run from another directory than the demo's
    assert started.returncode == 0, started.stderr
    assert f"SOUTH is running on {running.url(1)}" in started.stdout
    deadline = time.monotonic() + 90  # NORTH retries SOUTH with backoff (max_backoff_seconds 30 in the demo)
    while True:
        at_home = running.api(1, "SOUTH", "GET", "/api/v1/loans?patron_id=south-2&patron_institution=SOUTH")
        if at_home.status_code == 200 and loan_id in [loan["id"] for loan in at_home.json()["loans"]]:
            break
        assert time.monotonic() < deadline, at_home.text
        time.sleep(1)
    assert running.process.poll() is None


def test_a_demo_command_hint_names_the_folder_unless_it_is_the_default(tmp_path, monkeypatch):
    from node.demo.supervisor import demo_command
    monkeypatch.chdir(tmp_path)
    assert demo_command(str(tmp_path / "demo-data"), "start", "SOUTH") == "circnode demo start SOUTH"
    assert demo_command("demo-data", "stop", "SOUTH") == "circnode demo stop SOUTH"
    spaced = str(tmp_path / "my demo")
    assert demo_command(spaced, "start", "SOUTH") == f"circnode demo start SOUTH --dir '{spaced}'"
    assert shlex.split(demo_command(spaced, "start", "SOUTH"))[-1] == spaced


def test_demo_stop_without_a_running_demo_or_with_an_unknown_node_is_refused(demo, tmp_path):
    nothing = circnode("demo", "stop", "SOUTH", "--dir", str(tmp_path / "none"))
    assert nothing.returncode == 2 and "no demo is running from" in nothing.stderr
    running = demo()
    unknown = circnode("demo", "stop", "WEST", "--dir", running.folder)
    assert unknown.returncode == 2 and "no node WEST" in unknown.stderr and "NORTH, SOUTH, EAST" in unknown.stderr
    again = Demo(tmp_path / "demo", running.base)  # the same folder twice
    assert again.wait_exit() == 2
    assert "a demo is already running from" in again.output()
    assert running.process.poll() is None
    assert os.path.exists(os.path.join(running.folder, "south", "node.pid"))  # the refused one touched nothing


def test_a_node_that_cannot_start_is_named_with_its_log_and_the_others_are_stopped(tmp_path):
    from node.demo.network import make_network
    base = free_port_block()
    folder = tmp_path / "demo"
    make_network(str(folder), base_port=base, idps=True, items=5, patrons=2)
    with open(folder / "south" / "node.ini", "a") as handle:
        handle.write("\n[desk]\nno_such_setting = 1\n")
    started = Demo(folder, base)
    status = started.wait_exit(timeout=120)
    out = started.output()
    assert status == 2, out
    assert "SOUTH stopped (exit status 2) while starting" in out
    assert f"see its log: {folder / 'south' / 'node.log'}" in out
    assert "is running" not in out and "Traceback" not in out
    for port in range(base, base + DEMO_PORTS):
        assert port_is_free(port), port


def test_an_idp_of_another_demo_on_our_port_is_not_taken_for_ours(tmp_path):
    """Two demo folders, one IdP running: only the folder that made it recognises it (its certificate)."""
    import dataclasses

    from node.demo.network import idp_is_ours, make_network, start_idp, wait_idp
    from tests.network import free_port
    ours = make_network(str(tmp_path / "ours"), nodes=[("NORTH", "North University")], items=2, patrons=1,
                        ports=[free_port()], idps=True)[0]
    other = make_network(str(tmp_path / "other"), nodes=[("NORTH", "North University")], items=2, patrons=1,
                         ports=[free_port()], idps=True)[0]
    process = start_idp(ours)
    try:
        wait_idp(ours, timeout=60, process=process)
        assert idp_is_ours(ours)
        assert not idp_is_ours(dataclasses.replace(other, idp_port=ours.idp_port))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def test_other_ports_the_nodes_serve_are_checked_with_theirs(tmp_path):
    """A SIP2 port (say) that is taken stops the demo before anything starts, named like the others."""
    from node.demo.supervisor import Supervisor
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        supervisor = Supervisor(str(tmp_path), [], print, other_ports=[(port, "NORTH SIP2 server")])
        with pytest.raises(DemoError) as refused:
            supervisor.start_all()
    assert refused.value.exit_status == 2
    assert f"port {port} (for NORTH SIP2 server) is in use by pid {os.getpid()}" in refused.value.message
    assert not os.path.exists(tmp_path / "demo.pid")
