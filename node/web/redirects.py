"""Where a user-supplied redirect target may send a browser: only to a path on this node.

A ``next=`` value comes from a link anyone can craft.  Browsers forgive a lot
in a Location header (they drop tabs and newlines, read ``\\`` as ``/``,
treat ``//host`` as another site), so a target is taken only when it is
plainly a path of ours, checked as given and again after percent-decoding.
"""
import unicodedata
from urllib.parse import unquote, urlsplit

MAX_TARGET = 2000  # longer than any page of ours with its query


def _unsafe_char(char):
    # Cc: controls (tab, CR, LF, NUL...); Cf: invisible format marks (bidi overrides, zero widths);
    # Zl, Zp: line and paragraph separators.  Browsers strip or misread all of them in a URL.
    return unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def _plain_path(text):
    if not text.startswith("/") or text.startswith("//") or "\\" in text:
        return False
    if any(_unsafe_char(char) for char in text):
        return False
    parts = urlsplit(text)
    return not parts.scheme and not parts.netloc


def local_path(target):
    """TARGET if it is a path on this node (``/checkout?x=1``), else None.

    Refused: anything with a scheme or a host, a leading ``//``, any backslash,
    control or invisible characters, whether plain or percent-encoded (up to
    three layers of encoding are looked through).
    """
    if not isinstance(target, str) or not target or len(target) > MAX_TARGET:
        return None
    text = target
    for _ in range(4):
        if not _plain_path(text):
            return None
        decoded = unquote(text, errors="replace") if "%" in text else text
        if decoded == text:
            return target
        text = decoded
    return None  # still encoded after three rounds: nothing of ours looks like that
