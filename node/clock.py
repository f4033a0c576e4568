"""The one place the wall clock is read (domain code takes ``now`` as a parameter).

The web views, the CLI commands and the scheduler's jobs call ``utcnow()``
once and pass the time down.  Below them (node/domain, node/store, sync, the
SAML modules) nothing reads the clock but the edges tests/system/test_clock.py lists
with their reasons: the protocol's HTTP views (sync/receive.py), a signed
request's own time (sync/client.py), the scheduler's daily job and the
timing of its steps (node/domain/jobs.py), an id's time part, a migration's
date and a new certificate's validity.

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
