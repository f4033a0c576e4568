"""A demo network on loopback: several nodes with keys exchanged and sample data.

``make_network`` is also what the multi-process tests use, so the demo a new
user runs and the network the fault tests kill are built the same way.
"""
import csv
import datetime
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import requests

DEMO_NODES = [("NORTH", "North University"), ("SOUTH", "South College"), ("EAST", "East Institute")]
DEMO_PASSWORD = "circnode-demo"


@dataclass
class NodeInfo:
    code: str
    name: str
    port: int
    folder: str
    config: str
    token: str = ""  # an admin API token
    public_key: str = ""
    listen_port: int = 0  # where it listens, when base_url (port) is a proxy in front of it
    idp_port: int = 0  # its institution's demo identity provider (0: none)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def direct_url(self):
        return f"http://127.0.0.1:{self.listen_port or self.port}"

    @property
    def idp_url(self):
        return f"http://127.0.0.1:{self.idp_port}"

    @property
    def idp_config(self):
        return os.path.join(self.folder, "idp", "idp.ini")

    @property
    def idp_metadata(self):
        return os.path.join(self.folder, "idp", "metadata.xml")


DEMO_SETTINGS = {
    "policy": {"loan_days": "21", "renewals_allowed": "2", "max_loans": "10", "offline_max_loans": "3",
               "fine_per_day": "0.50", "max_fine": "10.00", "processing_fee": "10.00"},  # docs/billing.md
    "policy:reference": {"loanable": "no"},
    "sync": {"interval_seconds": "2", "max_backoff_seconds": "30"},
}


def _config_text(node, peers, extra="", overrides=None):
    lines = ["[node]", f"institution = {node.code}", f"name = {node.name}", f"base_url = {node.url}",
             "data_dir = ./var", "timezone = Europe/Zurich", f"secret_key = {secrets.token_hex(24)}"]
    lines += [f"idp_metadata = {node.idp_metadata}", ""] if node.idp_port else [""]
    sections = {name: dict(values) for name, values in DEMO_SETTINGS.items()}
    for name, values in (overrides or {}).items():
        sections.setdefault(name, {}).update(values)
    for name, values in sections.items():
        lines += [f"[{name}]"] + [f"{key} = {value}" for key, value in values.items()] + [""]
    for peer in peers:
        lines += [f"[peer:{peer.code}]", f"name = {peer.name}", f"base_url = {peer.url}",
                  f"public_key = {peer.public_key}"]
        lines += [f"idp_metadata = {peer.idp_metadata}", ""] if peer.idp_port else [""]
    return "\n".join(lines) + extra


def _sample_files(folder, code, items, patrons):
    # Input for our own importers, not a file handed out: written as is (a quote from node/domain/spreadsheet.py
    # would become part of the imported data), and every cell is our fixed sample text.
    item_path, patron_path = os.path.join(folder, "items.csv"), os.path.join(folder, "patrons.csv")
    prefix = code[0]
    with open(item_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["barcode", "title", "call_number", "item_type", "replacement_cost"])
        for n in range(1, items + 1):
            item_type = "reference" if n % 50 == 0 else "book"
            writer.writerow([f"{prefix}{n:05d}", f"{code.title()} sample book {n}", f"QA{n}.{prefix}",
                             item_type, "45.00"])
    with open(patron_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "expires_on", "blocked"])
        for n in range(1, patrons + 1):
            writer.writerow([f"{code.lower()}-{n}", f"{code.title()} Patron {n}",
                             f"patron{n}@{code.lower()}.example", "", "no"])
        writer.writerow([f"{code.lower()}-blocked", "Blocked Patron", "", "", "yes"])
        writer.writerow([f"{code.lower()}-expired", "Expired Patron", "", "2020-01-01", "no"])
    return item_path, patron_path


def make_network(base_dir, nodes=DEMO_NODES, base_port=8101, items=200, patrons=20, extra_config="",
                 ports=None, overrides=None, idps=False):
    """Create (or reuse) configs, keys and sample data for NODES under BASE_DIR.

    Ports are BASE_PORT, BASE_PORT+1, ... unless PORTS lists one per node.
    With IDPS each institution gets a demo identity provider (node/demo/idp.py) on
    the ports after the nodes' (free ports when PORTS is given), and every
    node names them in idp_metadata.
    OVERRIDES ({section: {key: value}}) replace the demo settings.
    """
    from node import config as config_module
    from node.domain import imports
    from node.domain.accounts import add_staff, new_token
    from node.store.db import database, open_database
    from node.keys import ensure_key, public_key_text
    from node.identity.saml_sp import ensure_sp_certificate

    made = load_network(base_dir)
    if made is not None:
        return made
    manifest = os.path.join(base_dir, "network.json")
    infos = []
    for index, (code, name) in enumerate(nodes):
        folder = os.path.join(base_dir, code.lower())
        os.makedirs(folder, exist_ok=True)
        port = ports[index] if ports else base_port + index
        infos.append(NodeInfo(code, name, port, folder, os.path.join(folder, "node.ini")))
        if idps:
            infos[-1].idp_port = _free_port() if ports else base_port + len(nodes) + index
    for info in infos:  # first pass: keys, so peers can be told each other's
        with open(info.config, "w") as handle:
            handle.write(_config_text(info, [], extra_config, overrides))
        cfg = config_module.load(info.config)
        ensure_key(cfg)
        if idps:
            ensure_sp_certificate(cfg)
        info.public_key = public_key_text(cfg)
    now = datetime.datetime.now(datetime.timezone.utc)
    for info in infos:
        with open(info.config, "w") as handle:
            handle.write(_config_text(info, [p for p in infos if p is not info], extra_config, overrides))
        cfg = config_module.load(info.config)
        open_database(cfg.database_path)
        item_path, patron_path = _sample_files(info.folder, info.code, items, patrons)
        imports.import_items(item_path, info.code, now, barcode_case=cfg.sections["desk"]["barcode_case"])
        imports.import_patrons(patron_path, info.code, now)
        add_staff("admin", "admin", DEMO_PASSWORD, now)
        add_staff("desk", "desk", DEMO_PASSWORD, now)
        info.token = new_token("admin", now)
        database.close()
        if info.idp_port:
            _write_idp(info, infos, cfg, patrons)
    with open(manifest, "w") as handle:
        json.dump([asdict(info) for info in infos], handle, indent=2)
    return infos


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_idp(info, infos, cfg, patrons):
    """INFO's SP metadata and its institution's demo IdP, whose accounts match the sample patrons."""
    from node.demo.idp import write_demo_idp
    from node.identity.saml_metadata import sp_metadata_xml
    with open(os.path.join(info.folder, "sp_metadata.xml"), "w", encoding="utf-8") as handle:
        handle.write(sp_metadata_xml(cfg, datetime.datetime.now(datetime.timezone.utc)))
    code = info.code.lower()
    users = [(f"{code}-{n}", f"{info.code.title()} Patron {n}", f"patron{n}@{code}.example")
             for n in range(1, patrons + 1)]
    users += [(f"{code}-blocked", "Blocked Patron", ""), (f"{code}-expired", "Expired Patron", ""),
              (f"{code}-stranger", "Not A Patron", "")]  # an account the library does not know
    write_demo_idp(os.path.dirname(info.idp_config), info.code, info.name, info.idp_url, users,
                   [os.path.join(node.folder, "sp_metadata.xml") for node in infos])


def _spawn(module, config, log_path, args=(), env=None):
    """Start ``python -m MODULE --config CONFIG ARGS`` in its own session, output to LOG_PATH."""
    log = open(log_path, "ab")
    process = subprocess.Popen([sys.executable, "-m", module, "--config", config, *args],
                               stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                               start_new_session=True)
    log.close()
    return process


def _answers(url, timeout, process):
    """True once URL answers 200 within TIMEOUT; False if it never does or PROCESS exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


def start_idp(info, log_path=None):
    """Start INFO's demo identity provider (``python -m node.demo.idp``) as a child process."""
    return _spawn("node.demo.idp", info.idp_config,
                  log_path or os.path.join(os.path.dirname(info.idp_config), "idp.log"))


def wait_idp(info, timeout=20.0, process=None):
    """Wait until INFO's IdP serves its metadata."""
    if not _answers(info.idp_url + "/idp/metadata", timeout, process):
        raise RuntimeError(f"the IdP of {info.code} did not start on {info.idp_url}; see its idp.log")


def start_node(info, env=None, log_path=None):
    """Start ``circnode run`` for INFO as a child process; return the Popen."""
    return _spawn("node.cli", info.config, log_path or os.path.join(info.folder, "node.log"),
                  args=["run", "--port", str(info.listen_port or info.port)], env=env)


def wait_healthy(info, timeout=20.0, process=None):
    """Wait until INFO's node answers /healthz; raise with the log's tail if it never does."""
    if _answers(info.direct_url + "/healthz", timeout, process):
        return
    tail = ""
    log_path = os.path.join(info.folder, "node.log")
    if os.path.exists(log_path):
        with open(log_path, errors="replace") as handle:
            tail = handle.read()[-2000:]
    raise RuntimeError(f"{info.code} did not start on {info.url}:\n{tail}")


DEMO_KIOSK = "kiosk"


def enable_kiosks(info, port):
    """Give INFO's node a SIP2 server on loopback PORT and a kiosk account (docs/sip2.md); safe to run twice."""
    from node import config as config_module
    from node.domain.kiosks import add_account
    from node.store.db import database, open_database
    from node.store.models import Sip2Account
    with open(info.config, encoding="utf-8") as handle:
        configured = "\n[sip2]" in handle.read()
    if not configured:
        with open(info.config, "a", encoding="utf-8") as handle:
            handle.write(f"\n[sip2]\nhost = 127.0.0.1\nport = {port}\n")
    cfg = config_module.load(info.config)
    open_database(cfg.database_path)
    if not Sip2Account.get_or_none(name=DEMO_KIOSK):
        add_account(DEMO_KIOSK, DEMO_PASSWORD, datetime.datetime.now(datetime.timezone.utc), location="LOBBY")
    database.close()
    return cfg.sip2["port"]


def demo_services(infos):
    """The processes of the demo, in starting order: each node, then each institution's IdP.

    Another server beside a node (e.g. a SIP2 server) is one more Service here.
    """
    from node.demo.supervisor import DemoError, Service, answers_as

    def node(info):
        return Service(info.code, "node", info.port, os.path.join(info.folder, "node.log"),
                       start=lambda: start_node(info),
                       wait=lambda process: answers_as(info.url, info.code, info.token, 60, process),
                       folder=info.folder)

    def idp(info):
        def wait(process):
            try:
                wait_idp(info, timeout=60, process=process)
            except RuntimeError as exc:
                raise DemoError(str(exc).split(";")[0]) from None
            if not idp_is_ours(info):
                raise DemoError(f"{info.idp_url} answers as an IdP, but not as the {info.code} IdP of this demo "
                                f"(its certificate differs): another demo holds the port", exit_status=2)
        return Service(info.code, "IdP", info.idp_port, os.path.join(os.path.dirname(info.idp_config), "idp.log"),
                       start=lambda: start_idp(info), wait=wait)

    return [node(info) for info in infos] + [idp(info) for info in infos if info.idp_port]


def idp_is_ours(info):
    """True when INFO's IdP serves metadata with the certificate make_network wrote for it (drawn per demo)."""
    from node.demo.idp import load_settings
    with open(load_settings(info.idp_config)["cert_file"]) as handle:
        certificate = "".join(line.strip() for line in handle if "-----" not in line)
    try:
        served = requests.get(info.idp_url + "/idp/metadata", timeout=5).text
    except requests.RequestException:
        return False
    return certificate in "".join(served.split())


def load_network(base_dir):
    """The nodes of the demo made in BASE_DIR (its network.json), or None when there is none."""
    manifest = os.path.join(base_dir, "network.json")
    if not os.path.exists(manifest):
        return None
    with open(manifest) as handle:
        return [NodeInfo(**entry) for entry in json.load(handle)]


def _print(message, err=False):
    print(message, file=sys.stderr if err else sys.stdout, flush=True)


def run_demo(base_dir, base_port, echo=_print):
    """Build and start the demo network; block until Ctrl-C, then stop every node.

    Returns the exit status: 0 after Ctrl-C, 2 when it cannot start (ports taken, another demo
    here), 1 when a process failed; the message names the node and its log.
    """
    from node.demo.supervisor import DemoError, Supervisor, check_ports
    made = load_network(base_dir)
    supervisor = None

    def _stop(signum, frame):
        raise KeyboardInterrupt  # SIGTERM stops the children too, like Ctrl-C

    signal.signal(signal.SIGTERM, _stop)
    try:
        if made and made[0].port != base_port:
            raise DemoError(f"the demo in {base_dir} was made for ports from {made[0].port}; run it with "
                            f"--port-base {made[0].port}, or choose another --dir", exit_status=2)
        if made is None:  # before making anything: ports that are taken leave no half-made demo folder
            nodes = [code for code, _ in DEMO_NODES]
            check_ports([(base_port + n, label) for n, label in enumerate(nodes + [f"{c} IdP" for c in nodes])])
        infos = make_network(base_dir, base_port=base_port, idps=True)
        # What the nodes serve besides HTTP (e.g. a SIP2 port): [(port, what for)] checked free before
        # starting, and lines printed with the addresses.
        other_ports, notes = [], []
        sip2_port = enable_kiosks(infos[0], 6001 if base_port == 8101 else base_port + 99)  # NORTH's kiosks
        other_ports.append((sip2_port, f"{infos[0].code} SIP2 server"))
        notes.append(f"{infos[0].name}'s SIP2 server for self-check kiosks: 127.0.0.1:{sip2_port}, kiosk login "
                     f"{DEMO_KIOSK} / {DEMO_PASSWORD} (docs/sip2.md)")
        supervisor = Supervisor(base_dir, demo_services(infos), echo, other_ports=other_ports)
        supervisor.start_all()
        _print_running(infos, base_dir, echo, notes)
        supervisor.watch()
    except DemoError as exc:
        echo(f"circnode: {exc.message}", err=True)
        return exc.exit_status
    except KeyboardInterrupt:
        echo("stopping")
    finally:
        if supervisor is not None:
            supervisor.stop_all()
    return 0


def _print_running(infos, base_dir, echo, notes=()):
    echo("circnode demo network is running (Ctrl-C stops it):")
    for info in infos:
        echo(f"  {info.name:18} {info.code:6} desk: {info.url}/login")
    echo(f"  staff logins on every node: admin / {DEMO_PASSWORD} (admin), desk / {DEMO_PASSWORD} (desk)")
    first, second = infos[0], infos[1]
    echo(f"  try: at {first.name}'s desk, choose {second.name} and patron id "
         f"{second.code.lower()}-1, then scan {first.code[0]}00001")
    with_idp = [info for info in infos if info.idp_port]
    if with_idp:
        from node.demo.idp import DEMO_PATRON_PASSWORD
        for info in with_idp:
            echo(f"  {info.name:18} sign-in (demo IdP): {info.idp_url}/idp/metadata")
        echo(f"  patron accounts at every IdP: <code>-1 ... <code>-20 (e.g. {second.code.lower()}-1), "
             f"password {DEMO_PATRON_PASSWORD}")
        echo(f"  or: at {first.name}'s checkout, click 'Sign in at your library' next to {second.name}, "
             f"sign in as {second.code.lower()}-1, scan {first.code[0]}00001; after a sync the loan "
             f"shows at {second.url}/patron/account")
    from node.demo.supervisor import demo_command
    echo(f"  offline: '{demo_command(base_dir, 'stop', second.code)}' in another terminal stops {second.code} "
         f"alone; '{demo_command(base_dir, 'start', second.code)}' starts it again")
    for note in notes:
        echo(f"  {note}")
    echo(f"  data and logs: {base_dir}")
