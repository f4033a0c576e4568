"""Reading and checking node.ini.

Every setting is declared once in ``SETTINGS`` as (section, key, default,
parser, help); the loader, ``node.ini.example`` and a test that keeps the two
in step all read that one table.  A bad file never starts a half-configured
node: ``ConfigError`` names the file, section and key and what was expected,
and the CLI turns it into one line and exit status 2.
"""
import configparser
import os
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

INSTITUTION_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,31}$")
ENV_VAR = "CIRCNODE_CONFIG"


class ConfigError(Exception):
    """A setting is missing or invalid; ``str()`` is the one line shown."""

    def __init__(self, path, section, key, expected):
        self.path, self.section, self.key, self.expected = path, section, key, expected
        where = f"[{section}]" + (f" {key}" if key else "")
        super().__init__(f"{path}: {where}: {expected}")


# --- value parsers: each returns the value or raises ValueError(expected) ---

def _text(value):
    if not value.strip():
        raise ValueError("expected a non-empty value")
    return value.strip()


def _optional_text(value):
    return value.strip()


def _institution(value):
    value = value.strip()
    if not INSTITUTION_RE.match(value):
        raise ValueError("expected an institution code: 2-32 capitals, digits or _ (e.g. NORTH)")
    return value


def _url(value):
    value = value.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("expected an http:// or https:// URL")
    return value


def _timezone(value):
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone name such as Europe/Zurich")
    return value.strip()


def _int_at_least(minimum):
    def parse(value):
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(f"expected a whole number >= {minimum}")
        if number < minimum:
            raise ValueError(f"expected a whole number >= {minimum}")
        return number
    return parse


def _money(value):
    from decimal import Decimal, InvalidOperation
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError("expected an amount such as 12.50")
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError("expected a non-negative amount with at most 2 decimals")
    return amount


def _bool(value):
    lowered = value.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    raise ValueError("expected yes or no")


def _int_list(value):
    try:
        numbers = sorted({int(part) for part in value.replace(",", " ").split()})
    except ValueError:
        raise ValueError("expected whole numbers separated by commas, e.g. 1, 7, 14")
    if any(n < 0 for n in numbers):
        raise ValueError("expected non-negative whole numbers")
    return numbers


def _secret(value):
    if len(value.strip()) < 16:
        raise ValueError("expected a random secret of at least 16 characters")
    return value.strip()


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    default: object  # None: required
    parse: object
    help: str


REQUIRED = None

# Policy keys may appear in [policy] and in any [policy:ITEM_TYPE].
POLICY_SETTINGS = [
    Setting("policy", "loan_days", "21", _int_at_least(1), "Days a loan runs before it is due."),
    Setting("policy", "renewals_allowed", "2", _int_at_least(0), "How many times one loan may be renewed."),
    Setting("policy", "max_loans", "10", _int_at_least(0),
            "Most open loans one visiting patron may hold from this library."),
    Setting("policy", "max_network_loans", "20", _int_at_least(0),
            "At the home node: most open loans one of our patrons may hold in the whole network."),
    Setting("policy", "loanable", "yes", _bool,
            "no: items of this type never leave the building (reference, reserve)."),
    Setting("policy", "offline_max_loans", "3", _int_at_least(0),
            "Most open provisional loans for one patron while their home node cannot be reached."),
]

SETTINGS = [
    Setting("node", "institution", REQUIRED, _institution, "This library's institution code, e.g. NORTH."),
    Setting("node", "name", REQUIRED, _text, "The library's name as patrons and peers see it."),
    Setting("node", "base_url", REQUIRED, _url,
            "The URL peers and patrons use to reach this node (no trailing slash)."),
    Setting("node", "data_dir", "./var", _text,
            "Directory for the database and keys; relative to the config file's folder."),
    Setting("node", "database", "", _optional_text,
            "SQLite file path; empty means circnode.sqlite3 in data_dir."),
    Setting("node", "timezone", "UTC", _timezone,
            "IANA time zone of the library: due dates end at 23:59 local time."),
    Setting("node", "secret_key", REQUIRED, _secret,
            "Random secret that signs staff sessions and CSRF tokens (python -c 'import secrets; print(secrets.token_hex(32))')."),
    Setting("node", "secure_cookies", "auto", _optional_text,
            "yes, no or auto (auto: Secure cookies when base_url is https)."),
    *POLICY_SETTINGS,
    Setting("sync", "interval_seconds", "30", _int_at_least(1), "How often the scheduler pushes the outbox."),
    Setting("sync", "batch_size", "200", _int_at_least(1), "Events sent per request."),
    Setting("sync", "timeout_seconds", "10", _int_at_least(1), "Timeout of one push request."),
    Setting("sync", "standing_timeout_seconds", "3", _int_at_least(1),
            "Timeout of a standing check; past it the lender lends provisionally."),
    Setting("sync", "standing_cache_seconds", "300", _int_at_least(0),
            "How long a home node's standing answer is reused during a desk visit (0: ask every time)."),
    Setting("sync", "max_backoff_seconds", "900", _int_at_least(1), "Cap of the per-peer retry delay."),
    Setting("sync", "clock_skew_seconds", "300", _int_at_least(1),
            "Largest accepted difference between a peer's signature time and ours."),
    Setting("sync", "dedup_days", "400", _int_at_least(30),
            "Days the record of each received event is kept to refuse duplicates."),
]

PEER_SETTINGS = [
    Setting("peer", "name", REQUIRED, _text, "The peer institution's name."),
    Setting("peer", "base_url", REQUIRED, _url, "The peer node's URL."),
    Setting("peer", "public_key", "", _optional_text,
            "The peer's node key, as printed by 'circnode keys show' there (ed25519:...). Required for sync."),
]


@dataclass
class Peer:
    code: str
    name: str
    base_url: str
    public_key: str


@dataclass
class Config:
    path: str
    node: dict
    policy: dict  # item type ("" for the default) -> resolved policy dict
    peers: dict  # code -> Peer
    sync: dict
    raw: configparser.ConfigParser = field(repr=False, default=None)

    @property
    def institution(self):
        return self.node["institution"]

    @property
    def tz(self):
        return ZoneInfo(self.node["timezone"])

    def policy_for(self, item_type):
        """The policy that applies to ITEM_TYPE: its own section over [policy]."""
        return self.policy.get(item_type) or self.policy[""]

    @property
    def data_dir(self):
        return self.node["data_dir"]

    @property
    def database_path(self):
        return self.node["database"] or os.path.join(self.data_dir, "circnode.sqlite3")


def _read_section(parser, path, section_name, settings):
    values = {}
    data = parser[section_name] if parser.has_section(section_name) else {}
    for setting in settings:
        raw = data.get(setting.key) if data else None
        if raw is None:
            if setting.default is REQUIRED:
                raise ConfigError(path, section_name, setting.key, "missing; " + setting.help)
            raw = setting.default
        try:
            values[setting.key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(path, section_name, setting.key, f"{exc} (got {raw!r})") from None
    known = {s.key for s in settings}
    for key in (data or {}):
        if key not in known:
            raise ConfigError(path, section_name, key, "unknown key; see node.ini.example")
    return values


def _read_policy_section(parser, path, name, defaults):
    """Parse an override section: only the keys it names replace the defaults."""
    policy = dict(defaults)
    known = {s.key: s for s in POLICY_SETTINGS}
    for key, raw in parser[name].items():
        setting = known.get(key)
        if setting is None:
            raise ConfigError(path, name, key, "unknown key; see node.ini.example")
        try:
            policy[key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(path, name, key, f"{exc} (got {raw!r})") from None
    return policy


def known_sections():
    return {s.section for s in SETTINGS}


def load(path):
    """Read and check the INI file at PATH; raise ConfigError on the first fault."""
    if not path:
        raise ConfigError("(no file)", "node", "", f"no config file: pass --config PATH or set {ENV_VAR}")
    path = os.path.abspath(path)
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise ConfigError(path, "node", "", "file not found") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        raise ConfigError(path, "node", "", f"not a valid INI file{where}: {exc.__class__.__name__}") from None

    for section in parser.sections():
        base = section.split(":", 1)[0]
        if base not in known_sections() | {"peer", "policy"}:
            raise ConfigError(path, section, "", "unknown section; see node.ini.example")

    by_section = {}
    for section in known_sections():
        by_section[section] = _read_section(
            parser, path, section, [s for s in SETTINGS if s.section == section])

    node = by_section["node"]
    folder = os.path.dirname(path)
    node["data_dir"] = os.path.normpath(os.path.join(folder, node["data_dir"]))
    if node["database"]:
        node["database"] = os.path.normpath(os.path.join(folder, node["database"]))
    if node["secure_cookies"] not in ("auto", "yes", "no"):
        raise ConfigError(path, "node", "secure_cookies", "expected yes, no or auto")

    policy = {"": by_section["policy"]}
    peers = {}
    for section in parser.sections():
        kind, _, name = section.partition(":")
        if kind == "policy" and name:
            policy[name] = _read_policy_section(parser, path, section, policy[""])
        elif kind == "peer":
            if not INSTITUTION_RE.match(name):
                raise ConfigError(path, section, "", "peer sections are named [peer:CODE] with an institution code")
            if name == node["institution"]:
                raise ConfigError(path, section, "", "a node cannot be its own peer")
            values = _read_section(parser, path, section, PEER_SETTINGS)
            if values["public_key"]:
                from sync.signing import decode_public_key
                try:
                    decode_public_key(values["public_key"])
                except ValueError:
                    raise ConfigError(path, section, "public_key",
                                      "expected the peer's key as printed by 'circnode keys show' (ed25519:...)") from None
            peers[name] = Peer(code=name, **values)
        elif kind == "policy" and section != "policy":
            raise ConfigError(path, section, "", "policy overrides are named [policy:ITEM_TYPE]")
    return Config(path=path, node=node, policy=policy, peers=peers,
                  sync=by_section["sync"], raw=parser)
