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
        # A fault of the file as a whole (not found, not INI) names no section.
        where = (f"[{section}]" + (f" {key}" if key else "") + ": ") if section else ""
        super().__init__((f"{path}: " if path else "") + f"{where}{expected}")


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


def _int_at_least(minimum, maximum=None):
    expected = f"expected a whole number >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")

    def parse(value):
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(expected)
        if number < minimum or (maximum is not None and number > maximum):
            raise ValueError(expected)
        return number
    return parse


def _one_of(*choices):
    """A parser of one of CHOICES, in any case."""
    def parse(value):
        value = value.strip().lower()
        if value not in choices:
            raise ValueError(f"expected {', '.join(choices[:-1])} or {choices[-1]}")
        return value
    return parse


def _money(value):
    from node.domain.money import AmountError, parse
    try:  # finite, non-negative, in hundredths and at most money.CEILING
        return parse(value)
    except AmountError as exc:
        raise ValueError(str(exc)) from None


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


def _networks(value):
    """Addresses and networks (CIDR), separated by commas or spaces; empty: none."""
    import ipaddress
    networks = []
    for part in value.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"expected IP addresses or networks such as 127.0.0.1, 10.0.0.0/8 ({part!r} is neither)")
    return tuple(networks)


def _optional_url(value):
    return _url(value) if value.strip() else ""


def _url_or_path(value):
    """An http(s) URL, or a file path (anything without '://'); empty: none."""
    value = value.strip()
    if "://" in value or value.startswith(("http:", "https:")):
        return _url(value)
    return value


def _contact(value):
    """'Name <address>' or an address: (name, address); empty: None."""
    value = value.strip()
    if not value:
        return None
    found = re.match(r"^(?:(.*?)\s*<([^<>\s]+)>|([^<>\s]+))$", value)
    address = found and (found.group(2) or found.group(3))
    if not address or not re.match(r"^(mailto:)?[^@\s]+@[^@\s]+\.[^@\s]+$", address):
        raise ValueError("expected an e-mail address, or 'Name <address@example.org>'")
    return ((found.group(1) or "").strip(), address.removeprefix("mailto:"))


def _secret(value):
    if len(value.strip()) < 16:
        raise ValueError("expected a random secret of at least 16 characters")
    return value.strip()


# --- billing, calendar, notices, privacy (issue 5; docs/billing.md) ---

def _positive_money(value):
    amount = _money(value)
    if amount <= 0:
        raise ValueError("expected an amount above zero such as 10000.00")
    return amount


def _optional_money(value):
    return None if not value.strip() else _money(value)


def _currency(value):
    value = value.strip().upper()
    if not re.match(r"^[A-Z]{3}$", value):
        raise ValueError("expected an ISO 4217 currency code such as EUR or CHF")
    return value


def _weekdays(value):
    from node.domain.calendar import parse_weekdays
    return parse_weekdays(value)


def _closed_dates(value):
    from node.domain.calendar import parse_dates
    return parse_dates(value)


def _time_of_day(value):
    value = value.strip()
    if not value:
        return None
    match = re.match(r"^([01]?\d|2[0-3]):([0-5]\d)$", value)
    if not match:
        raise ValueError("expected a local time HH:MM such as 02:30, or empty")
    return int(match.group(1)), int(match.group(2))


def _print_slips(value):
    """no: a Print link on each slip; auto (or yes): each slip opens and prints by itself."""
    lowered = value.strip().lower()
    if lowered in ("auto", "yes", "true", "on", "1"):
        return "auto"
    if lowered in ("no", "false", "off", "0"):
        return "no"
    raise ValueError("expected no or auto")


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
    # The lender's billing terms (docs/billing.md): they follow its items wherever they are returned.
    Setting("policy", "fine_per_day", "0.00", _money,
            "Fine per open day an item is overdue (0: no fines)."),
    Setting("policy", "max_fine", "", _optional_money,
            "Most one loan's fine can reach; empty: no cap, 0: no fines."),
    Setting("policy", "lost_after_days", "30", _int_at_least(1),
            "Days overdue after which the daily job declares the item lost and bills it."),
    Setting("policy", "processing_fee", "0.00", _money,
            "Fee added to the replacement cost of a lost item."),
    Setting("policy", "default_replacement_cost", "0.00", _money,
            "Replacement cost billed for a lost item that has none of its own."),
    Setting("policy", "refund_on_return", "replacement", _one_of("none", "replacement", "all"),
            "What is refunded when a lost item comes back: none, replacement, or all (with the processing fee)."),
    Setting("policy", "courtesy_notice_days", "3", _int_at_least(0),
            "Days before the due date the courtesy notice is sent (0: none)."),
    Setting("policy", "overdue_notice_days", "1, 7, 14", _int_list,
            "Days after the due date an overdue notice is sent (empty: none)."),
]

BILLING_SETTINGS = [
    Setting("billing", "currency", "EUR", _currency, "Currency of the fees this library assesses."),
    Setting("billing", "block_threshold", "50.00", _money,
            "At the home node: an open balance (in currency) at or above this blocks the patron network-wide."),
    Setting("billing", "max_fee_amount", "10000.00", _positive_money,
            "At the home node: the largest single fee a lender may post on one of our patrons; a larger one "
            "is rejected (amount_out_of_range)."),
    Setting("calendar", "closed_weekdays", "", _weekdays,
            "Weekdays the library is closed, e.g. sun or sat, sun."),
    Setting("calendar", "closed_dates", "", _closed_dates,
            "Closed dates and ranges, e.g. 2026-12-24..2027-01-02, 2027-04-18."),
    Setting("smtp", "host", "", _optional_text,
            "Mail server for notices; empty: notices are written as .eml files to data_dir/mail."),
    Setting("smtp", "port", "25", _int_at_least(1), "Mail server port."),
    Setting("smtp", "sender", "", _optional_text, "From address of notices; empty: circnode@ the node's host."),
    Setting("smtp", "username", "", _optional_text, "Login at the mail server (optional)."),
    Setting("smtp", "password", "", _optional_text, "Password at the mail server (optional)."),
    Setting("smtp", "starttls", "no", _bool, "Upgrade the connection with STARTTLS before logging in."),
    Setting("smtp", "timeout_seconds", "10", _int_at_least(1), "Timeout of one connection to the mail server."),
    Setting("smtp", "retry_minutes", "15", _int_at_least(1),
            "How often notices that could not be sent are tried again (the delay doubles, at most a day)."),
    Setting("privacy", "loan_retention_days", "30", _int_at_least(0),
            "Days after which a returned loan with no open fee loses its link to the patron."),
    Setting("privacy", "event_payload_days", "30", _int_at_least(1),
            "Days after which delivered and received event payloads are trimmed to their dedup record."),
    Setting("privacy", "fee_audit_days", "2555", _int_at_least(1),
            "Days a settled fee keeps its patron (the audit period); then it is anonymised."),
    Setting("privacy", "standing_lookup_days", "30", _int_at_least(1),
            "Days the record of a peer's standing question about one of our patrons is kept."),
    Setting("jobs", "daily_at", "02:30", _time_of_day,
            "Local time circnode run starts the daily jobs (notices, overdue, lost, purge); empty: never."),
]

# Patron sign-in and network passes (issue 4; docs/identity.md).
IDENTITY_SETTINGS = [
    Setting("saml", "clock_skew_seconds", "60", _int_at_least(0),
            "Allowed difference between an identity provider's clock and ours."),
    Setting("saml", "request_seconds", "600", _int_at_least(60),
            "How long a patron has to sign in at their library before the request is void."),
    Setting("saml", "phone_link_seconds", "300", _int_at_least(30),
            "How long the single-use sign-in link shown as a QR code at the desk stays valid."),
    Setting("saml", "patron_session_minutes", "120", _int_at_least(1),
            "How long a patron stays signed in after signing in at their library."),
    Setting("saml", "metadata_refresh_seconds", "3600", _int_at_least(60),
            "How often identity provider metadata given as a URL is fetched again."),
    Setting("saml", "xmlsec_binary", "", _optional_text,
            "Path of xmlsec1; empty: found on PATH."),
    # Algorithms and the published metadata (issue 16; docs/identity.md, "Metadata").
    Setting("saml", "allow_sha1", "no", _bool,
            "yes: also accept RSA-SHA1 signatures and SHA-1 digests from identity providers (MD5: never)."),
    Setting("saml", "metadata_valid_days", "14", _int_at_least(0, 3650),
            "validUntil of the SP metadata, in days from when it is served or written (0: none)."),
    Setting("saml", "metadata_cache_hours", "6", _int_at_least(0, 720),
            "cacheDuration of the SP metadata: how often IdPs should fetch it again, in hours (0: none)."),
    Setting("saml", "display_name", "", _optional_text,
            "Name of this service in the IdP's consent and login screens (mdui:DisplayName); empty: [node] name."),
    Setting("saml", "description", "", _optional_text,
            "One sentence on what this service does (mdui:Description); empty: a sentence naming the library."),
    Setting("saml", "organization_name", "", _optional_text,
            "Legal name of the organization running this node (Organization); empty: [node] name."),
    Setting("saml", "organization_url", "", _optional_url,
            "Web site of that organization (OrganizationURL); empty: [node] base_url."),
    Setting("saml", "technical_contact", "", _contact,
            "Who runs this node, as 'Name <address@example.org>' or an address (ContactPerson technical)."),
    Setting("saml", "support_contact", "", _contact,
            "Where patrons and IdP admins get help (ContactPerson support)."),
    Setting("saml", "security_contact", "", _contact,
            "Who answers security incidents (ContactPerson other, REFEDS security contact type)."),
    # A federation's signed metadata aggregate (issue 16, point 5; docs/identity.md, "Federations").
    Setting("saml", "federation_metadata", "", _url_or_path,
            "The federation's metadata aggregate (https:// URL or file path); [peer:CODE] idp_entity_id "
            "picks each institution's IdP from it."),
    Setting("saml", "federation_signer", "", _optional_text,
            "PEM certificate file of the key the federation signs its aggregate with (required with "
            "federation_metadata)."),
    Setting("saml", "federation_refresh_hours", "6", _int_at_least(1, 168),
            "How often the federation's aggregate is fetched and verified again, in hours."),
    Setting("pass", "valid_days", "7", _int_at_least(1),
            "Days a network pass issued by this node stays valid (never past the patron's expiry)."),
]

# Staff sign-in throttling (issue 12, point 7; node/domain/throttle.py).
SIGN_IN_SETTINGS = [
    Setting("sign_in", "account_failures", "5", _int_at_least(1),
            "Wrong passwords for one staff name (since its last sign-in, within a day) before the name is locked."),
    Setting("sign_in", "account_lock_minutes", "15", _int_at_least(1, 1440),
            "The first lock of a name; each further wrong password after a lock doubles it, up to a day."),
    Setting("sign_in", "address_failures", "50", _int_at_least(1),
            "Wrong passwords from one client address, for any names, within address_window_minutes before "
            "that address may not sign in."),
    Setting("sign_in", "address_window_minutes", "15", _int_at_least(1, 1440),
            "The window in which address_failures are counted."),
]


def _regex(value):
    """A regular expression (Python syntax) matched against a whole card number; empty: none."""
    value = value.strip()
    if value:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"expected a regular expression ({exc})") from None
    return value


# Self-check kiosks (issue 15; docs/sip2.md).  The SIP2 server starts only when node.ini has a [sip2] section.
SIP2_SETTINGS = [
    Setting("sip2", "host", "127.0.0.1", _text, "Address the SIP2 server listens on."),
    Setting("sip2", "port", "6001", _int_at_least(1, 65535), "TCP port of the SIP2 server."),
    Setting("sip2", "tls_certificate", "", _optional_text,
            "PEM certificate (chain) of the SIP2 server; with tls_key, kiosks connect over TLS."),
    Setting("sip2", "tls_key", "", _optional_text, "PEM private key of tls_certificate."),
    Setting("sip2", "allow_plain", "no", _bool,
            "yes: plain TCP on an address other than loopback (only on a network you trust)."),
    Setting("sip2", "encoding", "utf-8", _one_of("utf-8", "cp850"), "Character set of SIP2 messages: utf-8 or cp850 (older kiosks)."),
    Setting("sip2", "idle_timeout_seconds", "600", _int_at_least(5, 86400),
            "A kiosk connection that sends nothing this long is closed."),
    Setting("sip2", "login_timeout_seconds", "30", _int_at_least(5, 86400),
            "A kiosk connection that has not logged in this long is closed (at most idle_timeout_seconds)."),
    Setting("sip2", "max_connections_per_address", "8", _int_at_least(1, 64),
            "Connections one client address may hold open at once; one more is closed at once."),
    Setting("sip2", "no_block_max_age_days", "7", _int_at_least(1, 3650),
            "A no-block (offline-stored) checkout or checkin dated further back than this many days is refused."),
    Setting("sip2", "card_numbers", "no", _bool,
            "yes: visiting patrons may also borrow by card number (institution found by [peer:CODE] card_pattern)."),
]


# The desk's habits (issue 14; docs/desk.md): how scanned barcodes are matched, the refusal sound.
DESK_SETTINGS = [
    Setting("desk", "barcode_case", "upper", _one_of("upper", "lower", "exact"),
            "How barcodes are matched: upper or lower (stored in that case, found whatever case is scanned "
            "or typed), or exact (case matters)."),
    Setting("desk", "sound", "yes", _bool, "A short tone at the desk when a scan is refused (yes or no)."),
    Setting("desk", "print_slips", "no", _print_slips,
            "no: the desk shows a Print link for each slip (due-date receipt, transit slip, payment receipt); "
            "auto: each slip opens and its print dialog comes up as soon as it is made."),
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
    # Patron sign-in (issue 4; docs/identity.md).
    Setting("node", "idp_metadata", "", _optional_text,
            "SAML metadata (file path or URL) of this institution's identity provider, for our own patrons."),
    Setting("node", "patron_id_attribute", "uid", _text,
            "SAML attribute holding our patrons' id (name_id: the NameID)."),
    Setting("node", "idp_entity_id", "", _optional_text,
            "Entity id of this institution's IdP in [saml] federation_metadata (instead of idp_metadata)."),
    # Staff sign-in (issue 12, point 7): who may say who the client is, and the throttle's limits.
    Setting("node", "trusted_proxies", "", _networks,
            "Reverse proxies (addresses or CIDR networks) whose X-Forwarded-For names the client; empty: none."),
    *SIGN_IN_SETTINGS,
    *POLICY_SETTINGS,
    Setting("sync", "interval_seconds", "30", _int_at_least(1), "How often the scheduler pushes the outbox."),
    # At most 1,000: a peer takes batches of up to 8 MB (sync/receive.py), 8 KB an event.
    Setting("sync", "batch_size", "200", _int_at_least(1, 1000), "Events sent per request (1 to 1000)."),
    Setting("sync", "timeout_seconds", "10", _int_at_least(1), "Timeout of one push request."),
    Setting("sync", "standing_timeout_seconds", "3", _int_at_least(1),
            "Timeout of a standing check; past it the lender lends provisionally."),
    Setting("sync", "standing_cache_seconds", "300", _int_at_least(0),
            "Longest one desk visit lends on its home node's yes before asking again; a new visit "
            "always asks (0: ask at every checkout)."),
    Setting("sync", "standing_per_minute", "120", _int_at_least(1),
            "Standing questions one peer may ask in any minute; more are answered 429 (rate_limited)."),
    Setting("sync", "max_backoff_seconds", "900", _int_at_least(1), "Cap of the per-peer retry delay."),
    Setting("sync", "clock_skew_seconds", "300", _int_at_least(1),
            "Largest accepted difference between a peer's signature time and ours."),
    Setting("sync", "dedup_days", "400", _int_at_least(30),
            "Days the record of each received event is kept to refuse duplicates."),
    *BILLING_SETTINGS,
    *IDENTITY_SETTINGS,
    *DESK_SETTINGS,
    *SIP2_SETTINGS,
]

PEER_SETTINGS = [
    Setting("peer", "name", REQUIRED, _text, "The peer institution's name."),
    Setting("peer", "base_url", REQUIRED, _url, "The peer node's URL."),
    Setting("peer", "public_key", "", _optional_text,
            "The peer's node key, as printed by 'circnode keys show' there (ed25519:...). Required for sync."),
    Setting("peer", "idp_metadata", "", _optional_text,
            "SAML metadata (file path or URL) of the peer institution's identity provider."),
    Setting("peer", "patron_id_attribute", "uid", _text,
            "SAML attribute holding the peer's patron id, as its home node knows it (name_id: the NameID)."),
    Setting("peer", "idp_entity_id", "", _optional_text,
            "Entity id of the peer institution's IdP in [saml] federation_metadata (instead of idp_metadata)."),
    Setting("peer", "card_pattern", "", _regex,
            "Regular expression matching the whole card number of the peer's patrons, for SIP2 kiosks "
            "([sip2] card_numbers)."),
]


@dataclass
class Peer:
    code: str
    name: str
    base_url: str
    public_key: str
    idp_metadata: str = ""
    patron_id_attribute: str = "uid"
    idp_entity_id: str = ""  # its IdP in the federation's aggregate ([saml] federation_metadata)
    card_pattern: str = ""  # its patrons' card numbers, for SIP2 kiosks ([sip2] card_numbers)


@dataclass
class Config:
    path: str
    node: dict
    policy: dict  # item type ("" for the default) -> resolved policy dict
    peers: dict  # code -> Peer
    sync: dict
    raw: configparser.ConfigParser = field(repr=False, default=None)
    sections: dict = field(default_factory=dict)  # every [section] as parsed, e.g. sections["billing"]

    @property
    def institution(self):
        return self.node["institution"]

    @property
    def tz(self):
        return ZoneInfo(self.node["timezone"])

    def library_name(self, code):
        """The name of this library or of peer CODE, for people (the code when unknown)."""
        if code == self.institution:
            return self.node["name"]
        peer = self.peers.get(code)
        return peer.name if peer else code

    @property
    def sip2(self):
        """The [sip2] settings when node.ini has that section (the SIP2 server runs), else None."""
        return self.sections["sip2"] if self.raw is not None and self.raw.has_section("sip2") else None

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


def _ini_fault(exc):
    """One line saying where and why configparser refused the file."""
    if isinstance(exc, configparser.ParsingError) and exc.errors:
        line = exc.errors[0][0]
        return f"not a valid INI file: line {line}: expected 'key = value', a [section] or a # comment"
    line = getattr(exc, "lineno", None)
    where = f"line {line}: " if line else ""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"not a valid INI file: {where}a setting before the first [section]"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"not a valid INI file: {where}section [{exc.section}] appears twice"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"not a valid INI file: {where}key {exc.option!r} appears twice in [{exc.section}]"
    return f"not a valid INI file: {where}{exc.__class__.__name__}"


def _check_federation(path, saml, sections):
    """Resolve the aggregate and signer paths; refuse a signer that is not a PEM certificate and an
    idp_entity_id with no aggregate to find it in.  SECTIONS: (section name, its parsed values)."""
    folder = os.path.dirname(path)
    source, signer = saml["federation_metadata"], saml["federation_signer"]
    if source and not source.startswith(("http://", "https://")):
        saml["federation_metadata"] = os.path.normpath(os.path.join(folder, source))
    if source and not signer:
        raise ConfigError(path, "saml", "federation_signer", "missing; federation_metadata needs the PEM "
                                                             "certificate the federation signs its aggregate with")
    if signer and not source:
        raise ConfigError(path, "saml", "federation_signer", "set federation_metadata too, or remove this key")
    if signer:
        saml["federation_signer"] = signer = os.path.normpath(os.path.join(folder, signer))
        try:
            with open(signer, "rb") as handle:
                pem = handle.read(1024 * 1024)
        except OSError as exc:
            raise ConfigError(path, "saml", "federation_signer", f"cannot read {signer} ({exc.strerror})") from None
        from cryptography import x509
        try:
            x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise ConfigError(path, "saml", "federation_signer",
                              f"{signer} is not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    for section, values in sections:
        if not values.get("idp_entity_id"):
            continue
        if values.get("idp_metadata"):
            raise ConfigError(path, section, "idp_entity_id", "set either idp_metadata or idp_entity_id, not both")
        if not source:
            raise ConfigError(path, section, "idp_entity_id",
                              "needs [saml] federation_metadata, the aggregate the IdP is looked up in")


def _check_sip2(path, sip2):
    """Resolve the TLS files and refuse a server that would take kiosk passwords in plain text off loopback."""
    import ipaddress
    import ssl
    folder = os.path.dirname(path)
    certificate, key = sip2["tls_certificate"], sip2["tls_key"]
    if bool(certificate) != bool(key):
        missing = "tls_key" if certificate else "tls_certificate"
        raise ConfigError(path, "sip2", missing, "missing; TLS needs both tls_certificate and tls_key")
    if certificate:
        sip2["tls_certificate"] = certificate = os.path.normpath(os.path.join(folder, certificate))
        sip2["tls_key"] = key = os.path.normpath(os.path.join(folder, key))
        for name, file in (("tls_certificate", certificate), ("tls_key", key)):
            if not os.path.isfile(file):
                raise ConfigError(path, "sip2", name, f"cannot read {file}")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certificate, key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(path, "sip2", "tls_certificate",
                              f"{certificate} and {key} are not a PEM certificate and its key ({exc})") from None
        return
    try:
        loopback = ipaddress.ip_address(sip2["host"]).is_loopback
    except ValueError:
        loopback = sip2["host"] == "localhost"
    if not loopback and not sip2["allow_plain"]:
        raise ConfigError(path, "sip2", "host", f"{sip2['host']} is not loopback: set tls_certificate and "
                                                "tls_key, or allow_plain = yes on a network you trust")


def known_sections():
    return {s.section for s in SETTINGS}


def load(path):
    """Read and check the INI file at PATH; raise ConfigError on the first fault."""
    if not path:
        raise ConfigError("", "", "", f"no config file: pass --config PATH or set {ENV_VAR}")
    path = os.path.abspath(path)
    parser = configparser.ConfigParser(interpolation=None, default_section="__none__")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise ConfigError(path, "", "", "file not found") from None
    except OSError as exc:  # a directory, no permission: still one line, no traceback
        raise ConfigError(path, "", "", f"cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "", "not UTF-8 text") from None
    except configparser.Error as exc:
        raise ConfigError(path, "", "", _ini_fault(exc)) from None

    for section in parser.sections():
        base, colon, _ = section.partition(":")
        # Only policy and peer sections take a name after the colon ([node:x] is a typo).
        if base not in known_sections() | {"peer", "policy"} or (colon and base not in ("peer", "policy")):
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
                from node.keys import decode_public_key
                try:
                    decode_public_key(values["public_key"])
                except ValueError:
                    raise ConfigError(path, section, "public_key",
                                      "expected the peer's key as printed by 'circnode keys show' (ed25519:...)") from None
            peers[name] = Peer(code=name, **values)
        elif kind == "policy" and section != "policy":
            raise ConfigError(path, section, "", "policy overrides are named [policy:ITEM_TYPE]")
    _check_sip2(path, by_section["sip2"])
    _check_federation(path, by_section["saml"],
                      [("node", node)] + [(f"peer:{code}", vars(peer)) for code, peer in peers.items()])
    return Config(path=path, node=node, policy=policy, peers=peers,
                  sync=by_section["sync"], raw=parser, sections=by_section)
