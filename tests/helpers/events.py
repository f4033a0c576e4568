"""Sync events as a peer sends them, for the inbox."""


def created(sequence, loan_id, patron="s-1", extra=None):
    data = {"loan_id": loan_id, "lender": "SOUTH", "patron": {"institution": "NORTH", "id": patron},
            "item": {"institution": "SOUTH", "barcode": f"S{sequence}", "title": "A South book"},
            "checked_out_at": "2026-03-01T10:00:00+01:00", "due_at": "2026-03-22T23:59:59+01:00",
            "renewals": 0, **(extra or {})}
    return {"event_id": f"ev-{sequence}", "type": "loan.created", "version": 1, "origin": "SOUTH",
            "sequence": sequence, "occurred_at": "2026-03-01T10:00:00+01:00", "data": data}
