"""The outbox: events written in the same transaction as the change they describe.

Events are numbered per destination (1, 2, 3, ...) so the receiver can see
gaps and keep order.  ``enqueue`` must run inside the caller's write
transaction (``BEGIN IMMEDIATE``), which is what makes taking the next
sequence number safe against a concurrent writer.
"""
from node.store.db import database
from node.store.models import OutboxEvent, new_uuid
from sync import catalogue, wire

EVENT_VERSION = 1
_LAST_SEQUENCE = "SELECT MAX(sequence) FROM outbox_event WHERE destination = ?"  # one seek, end of the index


def enqueue(destination, event_type, data, now):
    """Append one event for DESTINATION; the caller's transaction commits it."""
    assert database.in_transaction(), "outbox events are written inside the change's transaction"
    assert event_type in catalogue.EVENTS, f"{event_type} is not declared in sync/catalogue.py"
    last, = database.execute_sql(_LAST_SEQUENCE, (destination,)).fetchone()
    event = OutboxEvent.add(
        destination=destination, sequence=(last or 0) + 1, event_id=new_uuid(),
        type=event_type, created_at=now,
        payload=wire.text({"occurred_at": now.isoformat(), "data": data}))
    return event


def envelope(event, origin):
    """The wire form of one outbox row (see docs/protocol.md, "Events")."""
    payload = wire.loads(event.payload)
    return {"event_id": event.event_id, "type": event.type, "version": EVENT_VERSION,
            "origin": origin, "destination": event.destination, "sequence": event.sequence,
            "occurred_at": payload["occurred_at"], "data": payload["data"]}
