"""circnode sip2 account add|list|disable, and the [sip2] and card_pattern settings refused with one line."""
import subprocess
import sys

import pytest

from node import config
from tests.helpers.config import write_config
from tests.network import free_port


@pytest.fixture
def sip2_ini(tmp_path):
    return write_config(str(tmp_path / "north"), peers=[("SOUTH", "South College", "http://127.0.0.1:9", "")],
                        extra=f"\n[sip2]\nport = {free_port()}\n")


def circnode(ini, *args, input=None):
    return subprocess.run([sys.executable, "-m", "node.cli", "--config", ini, *args], capture_output=True,
                          text=True, input=input, timeout=120)


def test_kiosk_accounts_are_added_listed_and_disabled(sip2_ini):
    done = circnode(sip2_ini, "sip2", "account", "add", "lobby-1", "--password-stdin", "--location", "LOBBY",
                    input="kiosk-secret-2026\n")
    assert done.returncode == 0, done.stderr
    assert "kiosk account lobby-1 added (location LOBBY)" in done.stdout
    listed = circnode(sip2_ini, "sip2", "account", "list")
    assert listed.returncode == 0 and "lobby-1" in listed.stdout and "active" in listed.stdout
    assert "kiosk-secret-2026" not in listed.stdout
    again = circnode(sip2_ini, "sip2", "account", "add", "lobby-1", "--password-stdin", input="kiosk-secret-2026\n")
    assert again.returncode == 2 and "[sip2_account_exists]" in again.stderr
    weak = circnode(sip2_ini, "sip2", "account", "add", "lobby-2", "--password-stdin", input="short\n")
    assert weak.returncode == 2 and "[weak_password]" in weak.stderr
    assert circnode(sip2_ini, "sip2", "account", "disable", "lobby-1").returncode == 0
    assert "disabled" in circnode(sip2_ini, "sip2", "account", "list").stdout
    unknown = circnode(sip2_ini, "sip2", "account", "disable", "nobody")
    assert unknown.returncode == 2 and "[sip2_account_not_found]" in unknown.stderr


def test_a_disabled_kiosk_cannot_log_in_and_its_session_ends(kiosk_node):
    import datetime

    from node.domain.kiosks import disable_account
    from tests.sip2.kiosk import KIOSK_PASSWORD, Raw
    kiosk = Raw(kiosk_node.port)
    assert kiosk.ask(f"9300CNkiosk1|CO{KIOSK_PASSWORD}|\r".encode()) == b"941"
    disable_account("kiosk1", datetime.datetime.now(datetime.timezone.utc))
    assert kiosk.ask(b"9900802.00\r") == b""
    again = Raw(kiosk_node.port)
    assert again.ask(f"9300CNkiosk1|CO{KIOSK_PASSWORD}|\r".encode()) == b"940"
    again.close()


@pytest.mark.parametrize("extra, key, expected", [
    ("[sip2]\nhost = 0.0.0.0\n", "host", "not loopback"),
    ("[sip2]\ntls_certificate = cert.pem\n", "tls_key", "missing"),
    ("[sip2]\nencoding = latin-1\n", "encoding", "utf-8 or cp850"),
    ("[sip2]\nport = 0\n", "port", "whole number"),
    ("[sip2]\ntls_certificate = nothing.pem\ntls_key = nothing.key\n", "tls_certificate", "cannot read"),
    ("[peer:EAST]\nname = East\nbase_url = http://127.0.0.1:9\ncard_pattern = E[0-9\n", "card_pattern",
     "regular expression"),
])
def test_bad_sip2_settings_stop_every_command_with_one_line(tmp_path, extra, key, expected):
    ini = write_config(str(tmp_path / "north"), extra="\n" + extra)
    with pytest.raises(config.ConfigError) as refused:
        config.load(ini)
    assert refused.value.key == key and expected in str(refused.value)
    done = circnode(ini, "sip2", "account", "list")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and ini in done.stderr and key in done.stderr and "Traceback" not in done.stderr


def test_plain_tcp_off_loopback_is_allowed_only_when_asked(tmp_path):
    ini = write_config(str(tmp_path / "north"), extra="\n[sip2]\nhost = 0.0.0.0\nallow_plain = yes\n")
    cfg = config.load(ini)
    assert cfg.sip2["host"] == "0.0.0.0"
    assert config.load(write_config(str(tmp_path / "other"))).sip2 is None  # no [sip2]: no server


def test_run_refuses_a_sip2_port_in_use(sip2_ini):
    import socket
    cfg = config.load(sip2_ini)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", cfg.sip2["port"]))
        taken.listen()
        done = subprocess.run([sys.executable, "-m", "node.cli", "--config", sip2_ini, "run", "--port",
                               str(free_port())], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "[sip2] port: cannot listen" in done.stderr and "Traceback" not in done.stderr
