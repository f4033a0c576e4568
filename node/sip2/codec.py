"""SIP2 messages as bytes on the wire: parsing requests, formatting responses, sequence numbers and checksums.

A message is a two-digit code, the message's fixed-length fields in the
standard's order, then variable fields ``XXvalue|`` (a two-letter tag, the
value, a pipe), optionally ``AYn`` (sequence number) and ``AZxxxx`` (the
checksum), and a carriage return.  The checksum is the two's complement of
the 16-bit sum of every byte from the first to the ``AZ``, as four upper-case
hex digits: summed with it, the message adds up to zero.

Written here rather than taken from PyPI: most SIP2 packages there (``sip2``
among them) are clients, the other half of the conversation; the one
server-side codec, ``pysip2``, is a single alpha release, AnyIO-only, and
refuses any field over 255 bytes, while a network pass in AA is about 260
(docs/sip2.md, "Why our own codec").
"""
import datetime
import re
from dataclasses import dataclass, field

MAX_FIELD = 255  # the standard's longest variable field; longer values are cut when we send them
MAX_PASS_FIELD = 2000  # but a network pass in AA may be longer (node/domain/patron_pass.py MAX_TEXT)

# Each request this server answers: its name and its fixed-length fields (name, length) in order.
REQUESTS = {
    "93": ("login", (("uid_algorithm", 1), ("pwd_algorithm", 1))),
    "99": ("sc_status", (("status_code", 1), ("max_print_width", 3), ("protocol_version", 4))),
    "97": ("resend", ()),
    "23": ("patron_status", (("language", 3), ("transaction_date", 18))),
    "63": ("patron_information", (("language", 3), ("transaction_date", 18), ("summary", 10))),
    "11": ("checkout", (("sc_renewal_policy", 1), ("no_block", 1), ("transaction_date", 18), ("nb_due_date", 18))),
    "09": ("checkin", (("no_block", 1), ("transaction_date", 18), ("return_date", 18))),
    "29": ("renew", (("third_party_allowed", 1), ("no_block", 1), ("transaction_date", 18), ("nb_due_date", 18))),
    "17": ("item_information", (("transaction_date", 18),)),
    "35": ("end_patron_session", (("transaction_date", 18),)),
}
# The standard's other requests (block patron, hold, item status update, patron enable, fee paid, renew all):
# well-formed, but not served; the 98 status response says so (docs/sip2.md, "Not supported").
UNSUPPORTED = {"01", "15", "19", "25", "37", "65"}

# The 16 positions of 98's "supported messages" (BX), in the standard's order, and the request code of each.
SUPPORTED_ORDER = ("23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19", "25", "15", "29", "65")

_CHECKSUM = re.compile(rb"AZ([0-9A-Fa-f]{4})$")
_SEQUENCE = re.compile(r"AY(\d)$")
_TAG = re.compile(r"[A-Z][A-Z]")


class Malformed(Exception):
    """The message cannot be read as sent (damaged, truncated, bad checksum): answered with 96."""


class Unsupported(Exception):
    """A message code this server does not serve (unknown, or listed as not supported in 98)."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


@dataclass
class Request:
    code: str
    name: str
    fixed: dict
    fields: dict = field(default_factory=dict)  # tag -> [values], in the order sent
    sequence: str = None  # the AY digit, when sent
    checksummed: bool = False  # AZ was sent (and was right)

    def get(self, tag, default=""):
        """The first value of TAG, else DEFAULT."""
        values = self.fields.get(tag)
        return values[0] if values else default


def checksum(data):
    """The four hex digits that make DATA (bytes, from the code up to and including "AZ") sum to zero."""
    return f"{-sum(data) & 0xFFFF:04X}"


def checksum_ok(raw):
    """True when RAW (bytes, no terminator) ends with an AZ checksum that adds up; None when it has none."""
    found = _CHECKSUM.search(raw)
    if found is None:
        return None
    return (sum(raw[:found.start() + 2]) + int(found.group(1), 16)) & 0xFFFF == 0


def parse(raw, encoding="utf-8"):
    """The Request in RAW (one message's bytes, without its terminator).

    Raises Malformed for a message that cannot be read and Unsupported for a
    readable one of a code this server does not serve.
    """
    raw = raw.lstrip(b"\n")  # the LF of a CRLF terminator before this message
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    checked = checksum_ok(raw)
    if checked is False:
        raise Malformed("bad checksum")
    if checked is None and re.search(rb"AZ.{0,3}$", raw):
        raise Malformed("damaged checksum field")
    if checked:
        raw = raw[:-6]
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        raise Malformed(f"not {encoding} text") from None
    if len(text) < 2 or not text[:2].isdigit() or not text[:2].isascii():
        raise Malformed("no message code")
    code = text[:2]
    if code not in REQUESTS:
        raise Unsupported(code)
    name, layout = REQUESTS[code]
    sequence = None
    found = _SEQUENCE.search(text)
    # AYn ends the fields: after a field's pipe, or right after the fixed part (no fields at all).
    if found and (text[found.start() - 1:found.start()] == "|"
                  or found.start() == 2 + sum(length for _, length in layout)):
        sequence, text = found.group(1), text[:found.start()]
    position, fixed = 2, {}
    for field_name, length in layout:
        value = text[position:position + length]
        if field_name == "nb_due_date" and value.strip() and not value[:1].isdigit():
            value, length = "", 0  # a kiosk that leaves the blank due date out altogether: AO follows
        elif len(value) < length:
            raise Malformed(f"truncated: {field_name} is {length} characters")
        fixed[field_name] = value
        position += length
    fields = {}
    for part in text[position:].split("|"):
        if not part:
            continue
        if len(part) < 2 or not _TAG.fullmatch(part[:2]):
            raise Malformed("a variable field without its two-letter tag")
        limit = MAX_PASS_FIELD if part[:2] == "AA" else MAX_FIELD * 4
        if len(part) - 2 > limit:
            raise Malformed(f"field {part[:2]} is too long")
        fields.setdefault(part[:2], []).append(part[2:])
    if "AY" in fields or "AZ" in fields:
        raise Malformed("a sequence number or checksum that is not one, or not at the end")
    return Request(code, name, fixed, fields, sequence, bool(checked))


def _clean(tag, value):
    """VALUE as field TAG may carry it: no separators; at most MAX_FIELD characters (a pass in AA: more)."""
    text = str(value)
    for bad in ("|", "\r", "\n"):
        text = text.replace(bad, " ")
    return text[:MAX_PASS_FIELD if tag == "AA" else MAX_FIELD]


def format_response(code, fixed, fields, encoding="utf-8", sequence=None, with_checksum=False):
    """A response's bytes: CODE, the FIXED text, FIELDS [(tag, value or None)], AY/AZ as asked, and CR.

    Fields whose value is None are left out; an empty string is sent as an empty field.
    """
    text = code + fixed + "".join(f"{tag}{_clean(tag, value)}|" for tag, value in fields if value is not None)
    if sequence is not None:
        text += f"AY{sequence}"
    data = text.encode(encoding, errors="replace")
    if with_checksum:
        data += b"AZ"
        data += checksum(data).encode("ascii")
    return data + b"\r"


def resend_request(with_checksum):
    """96, "please resend": the answer to a message that arrived damaged."""
    return format_response("96", "", [], with_checksum=with_checksum)


# --- dates: "YYYYMMDDZZZZHHMMSS"; ZZZZ blank for the library's local time, "   Z" for UTC ---

def sip_date(moment, tz):
    """MOMENT (aware) as an 18-character SIP2 date in the library's local time (zone blank)."""
    return moment.astimezone(tz).strftime("%Y%m%d    %H%M%S")


def parse_date(text, tz):
    """The aware UTC datetime of an 18-character SIP2 date; None when blank; Malformed when not a date.

    A blank zone is the library's local time (TZ); a zone ending in Z is UTC.
    Other zone letters are read as local time (kiosks send local time).
    """
    if not text.strip():
        return None
    if len(text) != 18 or not (text[:8] + text[12:]).isdigit():
        raise Malformed("not a date")
    try:
        moment = datetime.datetime.strptime(text[:8] + text[12:], "%Y%m%d%H%M%S")
    except ValueError:
        raise Malformed("not a date") from None
    zone = datetime.timezone.utc if text[8:12].rstrip().endswith("Z") else tz
    try:
        return moment.replace(tzinfo=zone).astimezone(datetime.timezone.utc)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it: before or after any datetime
        raise Malformed("not a date") from None


def yes(flag):
    return "Y" if flag else "N"
