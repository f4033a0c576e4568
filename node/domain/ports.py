"""What the domain needs from the layers above it: small interfaces the sync layer fills at start.

The domain never imports the protocol (``sync/``); arrows point down only (docs in README, "Layout").
Where a business action must tell another node something, or ask a patron's home node, it calls
the port here, and ``sync.connect()`` (called by ``create_app``, the ``circnode`` group and the test
suite) registers the protocol's functions behind it.  A port used before that raises
``NotConnected``: a process that would silently drop an event is a bug.
"""


class NotConnected(RuntimeError):
    """A domain action needed the network layer, but ``sync.connect()`` was never called."""


class _Port:
    def __init__(self, name):
        self._name = name
        self._impl = None

    def connect(self, impl):
        """Put IMPL (an object or module with this port's functions) behind the port."""
        self._impl = impl

    def _need(self):
        if self._impl is None:
            raise NotConnected(f"the {self._name} port is not connected: call sync.connect() at start")
        return self._impl


class Outbox(_Port):
    """Events for other nodes, written in the caller's write transaction (they commit together)."""

    def build(self, event_type, **fields):
        """The payload of an outgoing EVENT_TYPE: exactly its declared fields, checked as a receiver will."""
        return self._need().build(event_type, **fields)

    def enqueue(self, destination, event_type, data, now):
        """Append one event for DESTINATION; the caller's transaction commits it with the change."""
        return self._need().enqueue(destination, event_type, data, now)


class HomeNode(_Port):
    """A visiting patron's home node, asked over the network."""

    def ask_standing(self, cfg, institution, home_id, now):
        """The home node's answer (a dict) on its patron HOME_ID; raises PeerRefused or PeerUnreachable."""
        return self._need().ask_standing(cfg, institution, home_id, now)

    def record_refusal(self, exc, what, now):
        """Keep a peer's refusal (PeerRefused EXC while doing WHAT) for the admin queue."""
        return self._need().record_refusal(exc, what, now)


class Lenders(_Port):
    """The libraries that lent to our patrons, asked over the network."""

    def ask_renewal(self, cfg, lender, loan_id, home_id, now, timeout=None):
        """LENDER's answer (a dict with due_at, renewals) to renewing LOAN_ID of our patron HOME_ID.

        Raises the lender's refusal (a CircnodeError with its code) or PeerUnreachable.
        """
        return self._need().ask_renewal(cfg, lender, loan_id, home_id, now, timeout)


class Retention(_Port):
    """Patron data kept by the layers above the domain, forgotten by the daily privacy purge."""

    def purge(self, cfg, now):
        """Forget what [privacy] says is no longer needed; return {count name: rows}."""
        return self._need().purge(cfg, now)


outbox = Outbox("outbox")
home_node = HomeNode("home node")
lenders = Lenders("lenders")
retention = Retention("retention")
