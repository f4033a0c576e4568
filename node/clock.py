"""The one place the wall clock is read (domain code takes ``now`` as a parameter).

``CIRCNODE_CLOCK_OFFSET_SECONDS`` shifts this node's clock; the fault tests
use it to run real node processes whose clocks disagree, as real ones do.
"""
import datetime
import os

UTC = datetime.timezone.utc


def utcnow():
    """The current time in UTC, shifted by the configured offset (normally 0)."""
    offset = float(os.environ.get("CIRCNODE_CLOCK_OFFSET_SECONDS") or 0)
    return datetime.datetime.now(UTC) + datetime.timedelta(seconds=offset)
