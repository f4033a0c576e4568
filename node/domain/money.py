"""Amounts of money as people and files write them: finite decimals, in minor units, under one ceiling.

Every amount circnode reads (a payment at the desk, in the API or the CLI, an
item's replacement cost in an import, a money setting in node.ini) goes
through ``parse``: a finite decimal, never above ``CEILING`` in any currency,
with no more decimals than the currency's minor unit.  The ceiling is checked
before anything is rounded, because ``Decimal.quantize`` raises
``InvalidOperation`` instead of answering for a value such as ``1E+30``
(more digits than the context's 28).  Knows nothing of Flask.
"""
import re
from decimal import Decimal, InvalidOperation

# One documented ceiling for a single amount, in any currency (docs/billing.md):
# far above any fee, far below what a cent count in SQLite's 64-bit integers holds.
CEILING = Decimal("1000000000.00")
CENT = Decimal("0.01")

# ISO 4217 currencies without minor units; every other one is kept in hundredths (node/store/models.py CentsField).
# The same list as sync/catalogue.py's, which checks amounts arriving from peers.
WHOLE_UNITS = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
                         "XAF", "XOF", "XPF"})


# An amount as text (docs/billing.md): ASCII digits, then optionally a dot and more digits; a leading
# minus only where the caller allows amounts below zero.  Decimal() alone would also take 1e1, 1_000,
# full-width or Arabic-Indic digits, "+5" and ".5": each another spelling people do not mean as money.
_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z", re.ASCII)


class AmountError(ValueError):
    """The text is not an amount this node takes; the message says what one looks like."""


def minor_unit(currency=None):
    """The smallest amount of CURRENCY: 1 for currencies without minor units, else 0.01."""
    return Decimal(1) if currency in WHOLE_UNITS else CENT


def decimals(currency=None):
    return -minor_unit(currency).as_tuple().exponent


def parse(raw, currency=None, minimum=Decimal(0), allow_minimum=True):
    """RAW (text, int or Decimal) as a Decimal in CURRENCY's minor units, at least MINIMUM, at most CEILING.

    Raises AmountError for anything else: not a number, NaN or infinite, too
    large, too small, or with more decimals than the currency has.  Text is
    ASCII digits with an optional dot and decimals (``_TEXT``), no exponent.
    """
    if isinstance(raw, (bool, float)) or raw is None:
        raise AmountError("expected an amount such as 12.50")
    if isinstance(raw, str):
        raw = raw.strip()
        if not _TEXT.match(raw):
            raise AmountError("expected an amount such as 12.50")
        if raw.startswith("-") and minimum >= 0:  # "-0" too: no minus where no amount below zero is taken
            raise AmountError(_below(minimum, allow_minimum))
    elif isinstance(raw, Decimal) and raw.is_finite() and raw.as_tuple().exponent > 0:
        # A JSON number arrives as Decimal: a positive exponent is only ever written 1e1 / 1E+30, never 10.
        raise AmountError("expected an amount such as 12.50")
    try:
        value = Decimal(raw)
    except (InvalidOperation, TypeError, ValueError):
        raise AmountError("expected an amount such as 12.50") from None
    if not value.is_finite():
        raise AmountError("expected a finite amount such as 12.50")
    if value > CEILING:  # before quantize: 1E+30 has no place in hundredths and quantize would raise
        raise AmountError(f"expected an amount of at most {CEILING}")
    if value < minimum or (value == minimum and not allow_minimum):
        raise AmountError(_below(minimum, allow_minimum))
    unit = minor_unit(currency)
    if value.as_tuple().exponent < unit.as_tuple().exponent and value != value.quantize(unit):
        raise AmountError(f"expected an amount with at most {decimals(currency)} decimals")
    return value.quantize(CENT)


def _below(minimum, allow_minimum):
    return f"expected an amount {'of at least' if allow_minimum else 'above'} {minimum}"
