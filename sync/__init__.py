"""The protocol layer: events between nodes (catalogue, outbox, push, receive, inbox), signing, peer requests."""


def connect():
    """Put the protocol behind the domain's ports (node/domain/ports.py); safe to call again.

    Called where a process starts: ``create_app``, the ``circnode`` command group and the tests.
    """
    from types import SimpleNamespace

    from node.domain import ports
    from sync import catalogue, client, lookups, outbox

    ports.outbox.connect(SimpleNamespace(build=catalogue.build, enqueue=outbox.enqueue))
    ports.home_node.connect(SimpleNamespace(ask_standing=client.ask_standing, record_refusal=client.record_refusal))
    ports.lenders.connect(SimpleNamespace(ask_renewal=client.ask_renewal))
    ports.retention.connect(SimpleNamespace(
        purge=lambda cfg, now: {"standing_lookups_dropped": lookups.purge(cfg, now)}))  # after standing_lookup_days
