"""node.ini: a bad file stops the node with one line; every setting is documented in node.ini.example."""
import os
import re
import secrets

import pytest

from node import config
from tests.helpers.config import write_config
from tests.helpers.cli import circnode
from tests.helpers import REPO

EXAMPLE = os.path.join(REPO, "node.ini.example")
GOOD_KEY = "ed25519:" + "A" * 43 + "="


def _rewrite(path, old, new):
    with open(path) as handle:
        text = handle.read()
    assert old in text, f"{old!r} not in the test config"
    with open(path, "w") as handle:
        handle.write(text.replace(old, new, 1))


def _line_of(path, needle):
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if needle in line:
                return number
    raise AssertionError(needle)


# (case, change the good config, the fragments the one error line must hold)
BAD_CONFIGS = [
    ("missing institution", lambda p: _rewrite(p, "institution = NORTH\n", ""),
     ["[node] institution", "missing"]),
    ("bad timezone", lambda p: _rewrite(p, "timezone = Europe/Zurich", "timezone = Mars/Olympus_Mons"),
     ["[node] timezone", "IANA time zone", "Mars/Olympus_Mons"]),
    ("bad base_url", lambda p: _rewrite(p, "base_url = http://127.0.0.1:8080", "base_url = ftp://north"),
     ["[node] base_url", "http:// or https://"]),
    ("bad integer in a policy override", lambda p: _rewrite(p, "[sync]", "[policy:book]\nloan_days = soon\n\n[sync]"),
     ["[policy:book] loan_days", "whole number", "'soon'"]),
    ("negative integer", lambda p: _rewrite(p, "max_loans = 5", "max_loans = -1"),
     ["[policy] max_loans", ">= 0"]),
    ("batch larger than a peer takes", lambda p: _rewrite(p, "[sync]", "[sync]\nbatch_size = 5000"),
     ["[sync] batch_size", "<= 1000"]),
    ("standing rate limit of zero", lambda p: _rewrite(p, "[sync]", "[sync]\nstanding_per_minute = 0"),
     ["[sync] standing_per_minute", ">= 1", "'0'"]),
    ("standing rate limit not a number", lambda p: _rewrite(p, "[sync]", "[sync]\nstanding_per_minute = lots"),
     ["[sync] standing_per_minute", "whole number", "'lots'"]),
    ("standing lookups kept no day", lambda p: _rewrite(p, "[sync]", "[privacy]\nstanding_lookup_days = 0\n\n[sync]"),
     ["[privacy] standing_lookup_days", ">= 1"]),
    ("barcode case not one of the three", lambda p: _rewrite(p, "[sync]", "[desk]\nbarcode_case = title\n\n[sync]"),
     ["[desk] barcode_case", "upper, lower or exact", "'title'"]),
    ("desk sound neither yes nor no", lambda p: _rewrite(p, "[sync]", "[desk]\nsound = loud\n\n[sync]"),
     ["[desk] sound", "yes or no"]),
    ("unknown key", lambda p: _rewrite(p, "timezone =", "colour = blue\ntimezone ="),
     ["[node] colour", "unknown key"]),
    ("unknown key in a policy override", lambda p: _rewrite(p, "loanable = no", "loanable = no\nloan_dayz = 3"),
     ["[policy:reference] loan_dayz", "unknown key"]),
    ("unknown section", lambda p: _rewrite(p, "[sync]", "[synch]\nbatch_size = 3\n\n[sync]"),
     ["[synch]", "unknown section"]),
    ("a name on a section that takes none", lambda p: _rewrite(p, "[sync]", "[node:extra]\n\n[sync]"),
     ["[node:extra]", "unknown section"]),
    ("peer with a bad public key", lambda p: _rewrite(p, f"public_key = {GOOD_KEY}", "public_key = ed25519:not-a-key!"),
     ["[peer:SOUTH] public_key", "ed25519:"]),
    ("peer named like this node", lambda p: _rewrite(p, "[peer:SOUTH]", "[peer:NORTH]"),
     ["[peer:NORTH]", "own peer"]),
    ("short secret", lambda p: _rewrite(p, "secret_key = test-secret-NORTH-0123456789", "secret_key = abc"),
     ["[node] secret_key", "16 characters"]),
]


@pytest.fixture
def good_config(tmp_path):
    return write_config(str(tmp_path / "north"), peers=[("SOUTH", "South College", "http://127.0.0.1:9", GOOD_KEY)])


def _assert_one_line(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def test_good_test_config_loads(good_config):
    cfg = config.load(good_config)
    assert cfg.institution == "NORTH"
    assert cfg.peers["SOUTH"].public_key == GOOD_KEY


@pytest.mark.parametrize("case, change, fragments", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_stops_the_cli_with_one_line_naming_file_section_and_key(good_config, case, change, fragments):
    change(good_config)
    result = circnode("--config", good_config, "keys", "show")
    _assert_one_line(result, good_config, *fragments)


def test_missing_config_file_is_named(tmp_path):
    path = str(tmp_path / "nowhere.ini")
    _assert_one_line(circnode("--config", path, "init"), path, "file not found")
    assert not os.path.exists(tmp_path / "var")


def test_config_that_is_a_folder_is_one_line(tmp_path):
    _assert_one_line(circnode("--config", str(tmp_path), "init"), str(tmp_path), "cannot read")


def test_no_config_given_says_how_to_give_one(tmp_path):
    result = circnode("init", env={"CIRCNODE_CONFIG": ""}, cwd=str(tmp_path))
    _assert_one_line(result, "--config PATH", "CIRCNODE_CONFIG")


def test_malformed_ini_names_the_line(good_config):
    _rewrite(good_config, "renewals_allowed = 2", "renewals_allowed = 2\nthis line is not a setting")
    line = _line_of(good_config, "this line is not a setting")
    _assert_one_line(circnode("--config", good_config, "keys", "show"), good_config, f"line {line}")


def test_duplicate_key_names_the_line(good_config):
    _rewrite(good_config, "max_loans = 5", "max_loans = 5\nmax_loans = 6")
    line = _line_of(good_config, "max_loans = 6")
    _assert_one_line(circnode("--config", good_config, "keys", "show"), f"line {line}", "max_loans", "twice")


def test_non_utf8_config_is_one_line(good_config):
    with open(good_config, "ab") as handle:
        handle.write("\n# Zürich\n".encode("latin-1"))
    _assert_one_line(circnode("--config", good_config, "keys", "show"), good_config, "UTF-8")


def test_config_from_environment_variable(good_config):
    result = circnode("init", env={"CIRCNODE_CONFIG": good_config})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("public key: ed25519:")


def test_policy_override_inherits_the_default_policy(good_config):
    _rewrite(good_config, "loanable = no", "loanable = no\nloan_days = 3")
    cfg = config.load(good_config)
    assert cfg.policy_for("reference")["loanable"] is False
    assert cfg.policy_for("reference")["loan_days"] == 3
    assert cfg.policy_for("reference")["max_loans"] == 5  # from [policy]
    assert cfg.policy_for("book") == cfg.policy[""]


def test_relative_paths_are_taken_from_the_config_folder(good_config, tmp_path):
    cfg = config.load(good_config)
    assert cfg.data_dir == os.path.join(str(tmp_path), "north", "var")
    assert cfg.database_path == os.path.join(cfg.data_dir, "circnode.sqlite3")


# --- node.ini.example: the first thing a new user reads ---------------------

KEY_LINE = re.compile(r"^#?\s*([a-z_][a-z0-9_]*)\s*=")
SECTION_LINE = re.compile(r"^#?\s*\[([^\]\s]+)\]\s*$")


def documented_keys(text):
    """{section: {key: has a prose comment above it}} as written in TEXT.

    Keys count whether set ("key = v") or shown commented out ("# key = v");
    a key is documented when a prose comment line stands between it and the
    key or section header before it.
    """
    found, section, prose = {}, None, False
    for raw in text.splitlines():
        line = raw.strip()
        header = SECTION_LINE.match(line)
        if header:
            section, prose = header.group(1), False
            found.setdefault(section, {})
            continue
        key = KEY_LINE.match(line)
        if key and section:
            found[section].setdefault(key.group(1), prose)
            prose = False
        elif line.startswith("#") and line.strip("# "):
            prose = True
    return found


def _example_text():
    with open(EXAMPLE, encoding="utf-8") as handle:
        return handle.read()


def _wanted():
    wanted = [(s.section, s.key) for s in config.SETTINGS]
    wanted += [("policy:*", s.key) for s in config.POLICY_SETTINGS]
    wanted += [("peer:*", s.key) for s in config.PEER_SETTINGS]
    return wanted


def test_every_setting_is_documented_in_node_ini_example():
    found = documented_keys(_example_text())
    problems = []
    for section, key in _wanted():
        if section.endswith(":*"):
            # Settings of named sections ([peer:CODE]) must appear in at least one example of that kind.
            kind = section[:-1]
            if section == "policy:*":
                continue  # [policy] documents them; overrides reuse the same keys
            candidates = [found[name] for name in found if name.startswith(kind)]
            docs = [keys.get(key) for keys in candidates if key in keys]
        else:
            docs = [found.get(section, {}).get(key)] if key in found.get(section, {}) else []
        if not docs:
            problems.append(f"[{section}] {key} is not in node.ini.example")
        elif not any(docs):
            problems.append(f"[{section}] {key} has no comment explaining it in node.ini.example")
    assert not problems, "\n".join(problems)


def test_node_ini_example_has_no_setting_the_loader_does_not_know():
    found = documented_keys(_example_text())
    known = {(s.section, s.key) for s in config.SETTINGS}
    policy = {s.key for s in config.POLICY_SETTINGS}
    peer = {s.key for s in config.PEER_SETTINGS}
    stray = []
    for section, keys in found.items():
        for key in keys:
            kind = section.partition(":")[0]
            ok = ((section, key) in known or (kind == "policy" and key in policy)
                  or (kind == "peer" and key in peer))
            if not ok:
                stray.append(f"[{section}] {key}")
    assert not stray, stray


def test_the_documentation_check_notices_an_undocumented_key():
    text = "[node]\n# The code.\ninstitution = X\nname = Y\n"
    assert documented_keys(text) == {"node": {"institution": True, "name": False}}


def test_node_ini_example_loads_once_a_secret_is_set(tmp_path):
    text = _example_text()
    assert "secret_key = CHANGE-ME" in text
    with pytest.raises(config.ConfigError) as refused:  # the placeholder must not start a node
        path = tmp_path / "as-shipped.ini"
        path.write_text(text)
        config.load(str(path))
    assert refused.value.key == "secret_key"
    path = tmp_path / "node.ini"
    path.write_text(text.replace("secret_key = CHANGE-ME", f"secret_key = {secrets.token_hex(32)}"))
    cfg = config.load(str(path))
    assert cfg.institution == "NORTH"
    assert cfg.policy_for("reference")["loanable"] is False
    assert "SOUTH" in cfg.peers
