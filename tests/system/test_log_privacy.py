"""No patron id, name or email in any log line: the sync, billing and identity stories over real processes.

NORTH and SOUTH run as ``circnode run`` processes, SOUTH's demo IdP as
``python -m node.demo.idp``; their logs are each folder's node.log and idp.log.
Patrons with names found nowhere else (``zz-patron-7``, Quentin Xylophone)
borrow, are refused, billed, exported, paid, signed in and given a network
pass; a peer's request about one of them fails its signature check, and a
peer's events about them are rejected.  Then every log is searched for every
id, name and email the test used.
"""
import base64
import csv
import datetime
import glob
import json
import os
from types import SimpleNamespace

import pytest
import requests

from tests.rogue import Rogue, loan_created
from tests.helpers.billing import TERMS
from tests.helpers.saml import b64, idp_sign_in, me, post_acs, refused, start

QUENTIN = ("zz-patron-7", "Quentin Xylophone", "quentin.xylophone@south.example")  # SOUTH's, in good standing
URSULA = ("zz-patron-8", "Ursula Vexillum", "ursula.vexillum@south.example")  # SOUTH's, blocked
WILHELMINA = ("zz-north-3", "Wilhelmina Quasar", "wilhelmina.quasar@north.example")  # NORTH's own
GHOST = ("zz-ghost-4", "Yolanda Ghostwhistle", "yolanda.ghostwhistle@south.example")  # at SOUTH's IdP only
NOBODY = "zz-nobody-9"  # known nowhere
EVERYONE = (QUENTIN, URSULA, WILHELMINA, GHOST)


def secrets_of(people):
    """Every id, name, name part, email and email local part: none may appear in a log."""
    words = {NOBODY}
    for home_id, name, email in people:
        words |= {home_id, name, *name.split(), email, email.split("@")[0]}
    return words


def write_patrons(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "email", "expires_on", "blocked"])
        writer.writerows(rows)


def add_idp_account(info, uid, name, email):
    """One more account at INFO's demo IdP (it reads users.csv at each sign-in), with the demo password."""
    users = os.path.join(os.path.dirname(info.idp_config), "users.csv")
    with open(users, newline="", encoding="utf-8") as handle:
        password_hash = list(csv.DictReader(handle))[0]["password_hash"]
    with open(users, "a", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerow([uid, password_hash, name, email])


@pytest.fixture
def net(network, smtp, tmp_path):
    net = network(nodes=[("NORTH", "North University"), ("SOUTH", "South College"), ("EAST", "East Institute")],
                  items=5, patrons=1, idps=True,
                  overrides={**TERMS, "smtp": {"host": "127.0.0.1", "port": str(smtp.port),
                                               "sender": "circulation@north.test"}})
    write_patrons(tmp_path / "south.csv", [[*QUENTIN, "", "no"], [*URSULA, "", "yes"]])
    write_patrons(tmp_path / "north.csv", [[*WILHELMINA, "", "no"]])
    for code, path in (("SOUTH", "south.csv"), ("NORTH", "north.csv")):
        result = net.cli(code, "patrons", "import", str(tmp_path / path))
        assert result.returncode == 0, result.stderr
    for person in (QUENTIN, GHOST):
        add_idp_account(net.info("SOUTH"), *person)
    net.start_idp("SOUTH")
    net.start("NORTH")
    net.start("SOUTH")
    net.cli_errors = []
    return net


def cli(net, code, *args):
    """Run a command whose standard error is log output; keep that output for the search."""
    result = net.cli(code, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    net.cli_errors.append(result.stderr)
    return result


def checkout(net, lender, barcode, home_id, institution="SOUTH"):
    return net.api(lender, "POST", "/api/v1/checkouts",
                   {"item_barcode": barcode, "patron": {"institution": institution, "id": home_id}})


def signed_standing_request(net, home_id, key):
    """SOUTH's standing endpoint asked about HOME_ID in NORTH's name, signed with KEY."""
    from sync.client import standing_path
    from sync.signing import sign_request
    url = net.info("SOUTH").url + standing_path(home_id)
    return requests.get(url, headers=sign_request("GET", url, b"", "NORTH", key, now=datetime.datetime.now(datetime.timezone.utc)), timeout=10)


def sync_story(net):
    """Lend, refuse, return; a forged standing question and a rogue peer's events about our patrons."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    r = checkout(net, "NORTH", "N00001", QUENTIN[0])
    assert r.status_code == 201, r.text
    net.due = datetime.date.fromisoformat(r.json()["due_at"][:10])
    for home_id, code in ((URSULA[0], "patron_blocked"), (NOBODY, "patron_unknown")):
        r = checkout(net, "NORTH", "N00003", home_id)
        assert (r.status_code, r.json()["error"]["code"]) == (422, code), r.text
    own = checkout(net, "NORTH", "N00004", WILHELMINA[0], institution="NORTH")
    assert own.status_code == 201, own.text
    assert net.api("NORTH", "POST", "/api/v1/returns", {"item_barcode": "N00004"}).status_code == 200
    cli(net, "NORTH", "sync")
    at_home = net.api("SOUTH", "GET", f"/api/v1/loans?patron_institution=SOUTH&patron_id={QUENTIN[0]}").json()
    assert [loan["item"]["barcode"] for loan in at_home["loans"]] == ["N00001"]

    forged = signed_standing_request(net, QUENTIN[0], Ed25519PrivateKey.generate())
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, "bad_signature")

    rogue = Rogue(net, "EAST")
    fee = {"fee_id": "fee-rogue", "loan_id": "loan-nowhere", "lender": "EAST",
           "patron": {"institution": "SOUTH", "id": QUENTIN[0]}, "item": {"barcode": "E00001", "title": "East"},
           "amount": "5.00", "currency": "CHF", "reason": "fine", "refund_of": None,
           "assessed_at": datetime.datetime.now(datetime.UTC).isoformat()}
    events = rogue.number("SOUTH", [("loan.created", loan_created("EAST", ("SOUTH", GHOST[0]), ("EAST", "E00001"))),
                                    ("fee.assessed", fee)])
    answer = rogue.post("SOUTH", events)
    assert answer.status_code == 200, answer.text
    assert [(r["status"], r["reason"]) for r in answer.json()["results"]] == [
        ("rejected", "patron_unknown"), ("rejected", "loan_unknown")]


def identity_story(net):
    """Sign-in at NORTH through SOUTH's IdP (kept, tampered, a stranger); a network pass, good and forged."""
    north = SimpleNamespace(north=net.info("NORTH"))
    browser, _, location = start(north)
    _, response = idp_sign_in(browser, location, user=QUENTIN[0])
    answer = post_acs(north, browser, response)
    assert answer.status_code == 303, answer.text
    assert browser.get(net.url("NORTH", answer.headers["Location"])).status_code == 200
    assert me(north, browser).json()["id"] == QUENTIN[0]
    again, _, location = start(north)
    _, response = idp_sign_in(again, location, user=QUENTIN[0])
    tampered = base64.b64decode(response).decode().replace(f">{QUENTIN[0]}<", f">{URSULA[0]}<")
    refused(post_acs(north, again, b64(tampered)), "saml_bad_signature")
    stranger, _, location = start(north)
    _, response = idp_sign_in(stranger, location, user=GHOST[0])
    answer = post_acs(north, stranger, response)
    stranger.get(net.url("NORTH", answer.headers["Location"]))  # signed in at SOUTH's IdP, unknown to SOUTH's node

    issued = cli(net, "SOUTH", "pass", "issue", QUENTIN[0]).stdout.strip().splitlines()[-1]
    r = net.api("NORTH", "POST", "/api/v1/checkouts", {"item_barcode": "N00002", "pass": issued})
    assert r.status_code == 201, r.text
    head, body, signature = issued.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    forged_body = base64.urlsafe_b64encode(json.dumps({**claims, "id": URSULA[0]}).encode()).decode().rstrip("=")
    forged = f"{head}.{forged_body}.{signature}"
    r = net.api("NORTH", "POST", "/api/v1/checkouts", {"item_barcode": "N00003", "pass": forged})
    assert 400 <= r.status_code < 500, r.text


def billing_story(net, tmp_path):
    """Quentin's loans go lost at NORTH, the fees reach SOUTH, are exported and one is paid."""
    lost_day = net.due + datetime.timedelta(days=31)
    assert "declared lost 2" in cli(net, "NORTH", "jobs", "run", "--at", f"{lost_day.isoformat()}T08:00").stdout
    cli(net, "NORTH", "sync")
    fees = net.api("SOUTH", "GET", f"/api/v1/fees?patron_id={QUENTIN[0]}").json()["fees"]
    assert len(fees) >= 3
    cli(net, "SOUTH", "bursar", "export", "--output", str(tmp_path / "bursar.csv"))
    r = net.api("SOUTH", "POST", f"/api/v1/fees/{fees[0]['id']}/pay", {"amount": fees[0]["amount"]})
    assert r.status_code == 200, r.text
    r = checkout(net, "NORTH", "N00005", QUENTIN[0])
    assert (r.status_code, r.json()["error"]["code"]) == (422, "patron_blocked"), r.text
    cli(net, "SOUTH", "sync")


@pytest.mark.slow
def test_no_patron_id_name_or_email_reaches_any_log(net, smtp, tmp_path):
    sync_story(net)
    identity_story(net)
    billing_story(net, tmp_path)
    assert smtp.messages, "the notices went out, to the patron's address"

    logs = {path: open(path, encoding="utf-8", errors="replace").read()
            for path in glob.glob(os.path.join(net.base_dir, "**", "*.log"), recursive=True)}
    assert {os.path.basename(path) for path in logs} >= {"node.log", "idp.log"}
    logs["standard error of the commands"] = "\n".join(net.cli_errors)
    for where, text in logs.items():
        for secret in sorted(secrets_of(EVERYONE)):
            assert secret.lower() not in text.lower(), (where, secret)

    # What the log says instead: the route, the reason, and the patron's keyed hash.
    south_log = logs[os.path.join(net.info("SOUTH").folder, "node.log")]
    tag = net.cli("SOUTH", "log-hash", QUENTIN[0]).stdout.strip()
    line = f"refused peer request to /api/v1/patrons/<patron_id:home_id>/standing (patron {tag}): bad_signature"
    assert line in south_log


# --- the helpers every line uses (node/logs.py) ----------------------------------

def test_log_hash_is_ten_hex_digits_keyed_by_the_node_and_printed_by_the_cli(node_config, tmp_path, runner):
    from node import config
    from node.keys import ensure_key
    from node.logs import patron_hash
    from tests.helpers.config import write_config
    tag = patron_hash(node_config, QUENTIN[0])
    assert len(tag) == 10 and int(tag, 16) >= 0
    assert patron_hash(node_config, QUENTIN[0]) == tag != patron_hash(node_config, URSULA[0])
    other = config.load(write_config(str(tmp_path / "other")))
    ensure_key(other)
    assert patron_hash(other, QUENTIN[0]) != tag  # another node's key: another hash, nothing to link
    printed = runner(node_config, "log-hash", QUENTIN[0])
    assert (printed.exit_code, printed.output) == (0, tag + "\n")


def test_waitress_never_logs_a_path_and_verbose_never_logs_sql_or_urls(caplog):
    import logging

    from node.logs import configure
    configure(verbose=True)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("waitress").info("Client disconnected while serving %s"
                                           % f"/api/v1/patrons/{QUENTIN[0]}/standing")
        logging.getLogger("peewee").debug("('SELECT 1 WHERE home_id = ?', ['%s'])", QUENTIN[0])
        logging.getLogger("urllib3.connectionpool").debug('"GET /api/v1/patrons/%s/standing HTTP/1.1"', QUENTIN[0])
    assert caplog.messages == ["Client disconnected while serving a request"]
