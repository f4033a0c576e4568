"""Keep the demo's processes honest: free ports before starting, each node checked to be ours,
failures named, and one node stopped and started again while the rest keep running.

The running demo (``circnode demo``) owns every process. Other terminals talk to it through small
files in the demo folder (``circnode demo stop SOUTH`` writes ``south/demo.stop``; ``start`` removes
it), so a node stopped on request is restarted by the same supervisor that stops everything on Ctrl-C.
"""
import errno
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import requests

SUPERVISOR_PID = "demo.pid"  # in the demo folder: the running ``circnode demo``
STOP_REQUEST = "demo.stop"  # in a node's folder: stop this node and keep it stopped
NODE_PID = "node.pid"  # in a node's folder: its ``circnode run`` while it runs
DEFAULT_DIR = "./demo-data"  # node/cli/demo.py's --dir default, relative to where the command is run


def demo_command(base_dir, *words):
    """'circnode demo WORDS...' for the demo in BASE_DIR, to type as it is: with --dir unless it is the default.

    The hints a demo prints must work when pasted (stop/start/status read the folder, not --port-base).
    """
    line = "circnode demo " + " ".join(shlex.quote(word) for word in words)
    if os.path.abspath(base_dir) != os.path.abspath(DEFAULT_DIR):
        line += f" --dir {shlex.quote(str(base_dir))}"
    return line


class DemoError(Exception):
    """The demo cannot start or go on; MESSAGE says what and where, EXIT_STATUS is the exit status."""

    def __init__(self, message, exit_status=1):
        super().__init__(message)
        self.message = message
        self.exit_status = exit_status


@dataclass
class Service:
    """One process of the demo: a node, an IdP, or any other server the demo starts beside a node."""
    code: str  # the institution it belongs to (NORTH)
    kind: str  # what it is, as printed ("node", "IdP")
    port: int
    log_path: str
    start: Callable[[], subprocess.Popen]
    wait: Callable[[subprocess.Popen], None]  # returns once it answers as ours, else raises DemoError
    folder: str = ""  # where its stop request and pid file live (nodes only: only a node can be stopped alone)
    process: Optional[subprocess.Popen] = field(default=None, repr=False)
    held: bool = False  # stopped on request, to be started again when the request is withdrawn

    @property
    def label(self):
        return f"{self.code} {self.kind}" if self.kind != "node" else self.code

    @property
    def stoppable(self):
        return bool(self.folder)


# --- ports -------------------------------------------------------------------------------------------

def port_is_free(port):
    """True when a server may listen on 127.0.0.1:PORT (SO_REUSEADDR, as waitress: TIME_WAIT is no obstacle)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port_block(count):
    """A first port such that it and the COUNT-1 after it are free on 127.0.0.1 (for a demo of one's own)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + count <= 65000 and all(port_is_free(port) for port in range(base, base + count)):
            return base
    raise DemoError(f"no {count} free ports in a row on 127.0.0.1")


def _listening_inodes(port):
    """Inodes of the sockets listening on PORT, from /proc/net/tcp{,6} (Linux; empty elsewhere)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle)
                for line in handle:
                    fields = line.split()
                    local, state, inode = fields[1], fields[3], fields[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                        inodes.add(inode)
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return inodes


def port_holder(port):
    """Who listens on PORT, as far as this user may see: 'pid N: command line', or ''."""
    inodes = _listening_inodes(port)
    if not inodes:
        return ""
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:  # gone, or another user's: not knowable
            continue
        return f"pid {pid}: {command}"
    return ""


def check_ports(wanted):
    """Raise DemoError (status 2) naming each port of WANTED [(port, what for)] that something else holds."""
    taken = []
    for port, label in wanted:
        if not port_is_free(port):
            holder = port_holder(port)
            taken.append(f"  port {port} (for {label}) is in use by {holder or 'another program'}")
    if taken:
        raise DemoError("\n".join(["cannot start the demo, its ports are taken:", *taken,
                                   "Stop what holds them, or choose other ports with --port-base (and another "
                                   "--dir)."]), exit_status=2)


# --- is it ours? ---------------------------------------------------------------------------------------

def answers_as(url, code, token, timeout, process):
    """Wait until the node at URL answers as the node CODE we started (its admin TOKEN works there).

    A node of another demo on the same port answers /healthz too, even with the same institution code:
    only our own node knows TOKEN, which make_network drew at random for this demo folder.
    Raises DemoError if PROCESS exits first, or something else answers, or nothing does in TIMEOUT.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            # 2 is circnode's answer to a bad setting or command line: the demo's own problem is then one too
            raise DemoError(f"{code} stopped ({_how(process.returncode)}) while starting on {url}",
                            exit_status=2 if process.returncode == 2 else 1)
        try:
            health = requests.get(url + "/healthz", timeout=2)
        except requests.RequestException:
            time.sleep(0.1)
            continue
        if health.status_code == 200:
            try:
                institution = health.json().get("institution")
            except ValueError:
                institution = None
            if institution != code:
                raise DemoError(f"{url} answers as {institution or 'something else'}, not as the {code} "
                                f"node this demo started", exit_status=2)
            mine = requests.get(url + "/api/v1/loans?limit=1", timeout=5,
                                headers={"Authorization": f"Bearer {token}"})
            if mine.status_code != 200:
                raise DemoError(f"{url} answers as {code}, but not as the {code} of this demo (its admin "
                                f"token is refused): another demo holds the port", exit_status=2)
            return
        time.sleep(0.1)
    raise DemoError(f"{code} did not answer on {url} within {timeout:.0f} s")


# --- stop one node, start it again ---------------------------------------------------------------------

def supervisor_pid(base_dir):
    """The pid of the ``circnode demo`` running from BASE_DIR, or None."""
    try:
        with open(os.path.join(base_dir, SUPERVISOR_PID)) as handle:
            pid = int(handle.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def stop_requested(folder):
    return os.path.exists(os.path.join(folder, STOP_REQUEST))


def request_stop(folder):
    with open(os.path.join(folder, STOP_REQUEST), "w") as handle:
        handle.write("stop\n")


def request_start(folder):
    try:
        os.remove(os.path.join(folder, STOP_REQUEST))
    except FileNotFoundError:
        pass


def _write_pid(folder, process):
    with open(os.path.join(folder, NODE_PID), "w") as handle:
        handle.write(f"{process.pid}\n")


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _how(returncode):
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def _terminate(process, grace=10):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Supervisor:
    """Start SERVICES, watch them, stop or restart a node on request; stop everything at the end."""

    def __init__(self, base_dir, services, echo, other_ports=()):
        """OTHER_PORTS [(port, what for)]: ports the services also listen on, checked free with theirs."""
        self.base_dir = base_dir
        self.services = services
        self.echo = echo
        self.other_ports = list(other_ports)

    def start_all(self):
        """Refuse if another demo runs here or a port is taken; start every service and check it is ours."""
        pid = supervisor_pid(self.base_dir)
        if pid is not None and pid != os.getpid():
            raise DemoError(f"a demo is already running from {self.base_dir} (pid {pid}); stop it with "
                            f"Ctrl-C there, or choose another --dir and --port-base", exit_status=2)
        check_ports([(service.port, service.label) for service in self.services] + self.other_ports)
        with open(os.path.join(self.base_dir, SUPERVISOR_PID), "w") as handle:
            handle.write(f"{os.getpid()}\n")
        for service in self.services:
            if service.stoppable:
                request_start(service.folder)  # a stop left from an earlier run does not carry over
        for service in self.services:
            self._start(service, wait=False)
        for service in self.services:
            self._wait(service)

    def _start(self, service, wait=True):
        service.process = service.start()
        if service.stoppable:
            _write_pid(service.folder, service.process)
        if wait:
            self._wait(service)

    def _wait(self, service):
        try:
            service.wait(service.process)
        except DemoError as exc:
            raise DemoError(f"{exc.message}; see its log: {service.log_path}", exc.exit_status) from None

    def watch(self, interval=0.5):
        """Until a service stops unbidden: apply stop and start requests. Raises DemoError naming it."""
        while True:
            for service in self.services:
                self._step(service)
            time.sleep(interval)

    def _step(self, service):
        running = service.process is not None and service.process.poll() is None
        wanted_stopped = service.stoppable and stop_requested(service.folder)
        if running and wanted_stopped:
            _terminate(service.process)
            _remove(os.path.join(service.folder, NODE_PID))
            service.held = True
            others = [s.code for s in self.services if s.kind == "node" and s is not service]
            self.echo(f"{service.label} stopped on request; {', '.join(others)} keep running. "
                      f"Start it again: {demo_command(self.base_dir, 'start', service.code)}")
        elif service.held:
            if not wanted_stopped:
                self._start(service)
                service.held = False
                self.echo(f"{service.label} is running again on http://127.0.0.1:{service.port}")
        elif not running:
            raise DemoError(f"{service.label} stopped unexpectedly ({_how(service.process.returncode)}); "
                            f"the demo stops. See its log: {service.log_path}")

    def stop_all(self):
        for service in self.services:
            if service.process is not None and service.process.poll() is None:
                os.killpg(service.process.pid, signal.SIGTERM)
        for service in self.services:
            if service.process is not None:  # only what this demo started: a refused second demo leaves all alone
                _terminate(service.process)
                if service.stoppable:
                    _remove(os.path.join(service.folder, NODE_PID))
        if supervisor_pid(self.base_dir) == os.getpid():
            _remove(os.path.join(self.base_dir, SUPERVISOR_PID))
