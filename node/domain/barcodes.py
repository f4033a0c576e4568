"""How a barcode typed or scanned at any front-end is matched to an item (``[desk] barcode_case``).

Scanners and people disagree on case: a label printed ``N00010`` gets typed
``n00010``.  With ``upper`` or ``lower`` a new or imported barcode is stored
in that case and a lookup ignores case, so barcodes stored before the
setting existed (or a peer's, stored as the peer spells them) are found
too, through a NOCASE index (migration 12), never a scan of the item table.
Existing rows are not rewritten: a peer's events name its items by the
barcode it sent, and two rows differing only in case would collide.
With ``exact`` case matters, as before.
"""


def setting(cfg):
    return cfg.sections["desk"]["barcode_case"]


def normalise(cfg, text):
    """TEXT as this node stores a new barcode: upper- or lower-cased, or as given."""
    return in_case(setting(cfg), text)


def in_case(case, text):
    """TEXT in CASE (upper, lower or exact: as given), stripped."""
    text = (text or "").strip()
    return text.upper() if case == "upper" else text.lower() if case == "lower" else text


def any_case(cfg):
    """True when a lookup ignores case (upper or lower)."""
    return setting(cfg) != "exact"
