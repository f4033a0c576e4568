"""A rogue peer for the trust tests (issue 11): a peer's real key, any event, a running receiver.

A signature says who is speaking, not that they are right.  ``Rogue`` signs
exactly as a node does (sync/client.py ``peer_request``) with the private key
in that node's data folder, numbers its events as that node's next at the
receiver, and verifies the receiver's signed answer, so everything the
receiver does with a forged event is what it would do with the real peer's.

``snapshot`` and ``changes`` read a receiver's SQLite file read-only (WAL lets
a reader sit beside the running node) and say, row by row, what a batch
changed, leaving out what its honest events were meant to change.
"""
import datetime
import itertools
import json
import secrets
import sqlite3
import uuid

import requests

from node import config
from node.keys import private_key
from sync.signing import decode_public_key, sign_request, verify_response

UTC = datetime.UTC
STATUSES = ("applied", "rejected", "duplicate", "gap")


def db_path(net, code):
    return f"{net.info(code).folder}/var/circnode.sqlite3"


def db_rows(net, code, sql, args=()):
    """CODE's rows for SQL, read from its SQLite file in read-only mode."""
    with sqlite3.connect(f"file:{db_path(net, code)}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


def new_id():
    return str(uuid.uuid4())


def iso(moment):
    return moment.isoformat()


class Rogue:
    """Peer CODE turned rogue: its real key, its next sequence numbers at each receiver."""

    def __init__(self, net, code="EAST"):
        self.net, self.code = net, code
        self.key = private_key(config.load(net.info(code).config))

    def received_through(self, receiver):
        """Where RECEIVER's record of this peer's events stands (its peer_state row)."""
        rows = db_rows(self.net, receiver, "SELECT received_through FROM peer_state WHERE peer = ?", (self.code,))
        return rows[0][0] if rows else 0

    def envelope(self, receiver, sequence, event_type, data, **extra):
        """One event in the wire form of docs/protocol.md, from this peer to RECEIVER."""
        return {"event_id": new_id(), "type": event_type, "version": 1, "origin": self.code,
                "destination": receiver, "sequence": sequence,
                "occurred_at": iso(datetime.datetime.now(UTC)), "data": data, **extra}

    def number(self, receiver, typed):
        """Envelopes for TYPED [(type, data)], numbered from this peer's next sequence at RECEIVER."""
        start = self.received_through(receiver)
        return [self.envelope(receiver, sequence, event_type, data)
                for sequence, (event_type, data) in zip(itertools.count(start + 1), typed)]

    def post(self, receiver, events, timeout=30):
        """POST EVENTS signed to RECEIVER's events endpoint; the response, its signature checked if 200."""
        info = self.net.info(receiver)
        url = info.url + "/api/v1/sync/events"
        body = json.dumps({"events": events}, ensure_ascii=False, allow_nan=False).encode()
        nonce = secrets.token_urlsafe(16)
        headers = sign_request("POST", url, body, self.code, self.key, nonce=nonce, now=datetime.datetime.now(datetime.timezone.utc))
        headers["Content-Type"] = "application/json"
        response = requests.post(url, data=body, headers=headers, timeout=timeout)
        if response.status_code == 200:  # a real sender trusts only a verified answer
            verify_response(response.status_code, response.headers, response.content, expected_key_id=receiver,
                            public_key=decode_public_key(info.public_key), request_nonce=nonce,
                            now=datetime.datetime.now(datetime.timezone.utc))
        return response


def loan_created(lender, patron, item, loan_id=None, now=None, **item_fields):
    """A ``loan.created`` payload as node/domain/circulation.py ``loan_event_data`` builds it.

    PATRON is (institution, id), ITEM (owner, barcode).
    """
    now = now or datetime.datetime.now(UTC)
    owner, barcode = item
    return {"loan_id": loan_id or new_id(), "lender": lender,
            "patron": {"institution": patron[0], "id": patron[1]},
            "item": {"institution": owner, "barcode": barcode, "title": f"{owner.title()} book {barcode}",
                     "call_number": f"QA{barcode}", "item_type": "book", **item_fields},
            "checked_out_at": iso(now), "due_at": iso(now + datetime.timedelta(days=21)),
            "renewals": 0, "provisional": False}


DROP = object()  # in ``merged``: remove the field


def merged(data, changes):
    """DATA with CHANGES: a dict merges into the nested object of that name, DROP removes a field."""
    out = dict(data)
    for name, value in changes.items():
        if value is DROP:
            out.pop(name, None)
        elif isinstance(value, dict) and isinstance(out.get(name), dict):
            out[name] = merged(out[name], value)
        else:
            out[name] = value
    return out


# --- what a receiver holds -------------------------------------------------

# table: (the columns naming a row, for the readable diff)
TABLES = {"loan": ("id",), "item": ("owner", "barcode"), "fee": ("id",), "fee_payment": ("id",),
          "patron": ("institution", "home_id"), "outbox_event": ("destination", "sequence")}


def snapshot(net, code, honest_loans=(), honest_items=()):
    """CODE's loans, items, fees, payments, patrons, outbox and what each own patron's standing rests on.

    Rows an honest event of the batch made (HONEST_LOANS ids, HONEST_ITEMS
    (owner, barcode)) are left out, so what is left must not change.
    """
    tables = {}
    with sqlite3.connect(f"file:{db_path(net, code)}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        for table, key in TABLES.items():
            rows = {}
            for row in conn.execute(f"SELECT * FROM {table}"):
                values = dict(row)
                if table == "item":
                    values.pop("id")  # a surrogate key: the rows are named by owner and barcode
                name = tuple(values[column] for column in key)
                if (table == "loan" and values["id"] in honest_loans) or (table == "item" and name in honest_items):
                    continue
                rows[name] = values
            tables[table] = rows
    tables["standing"] = standing(code, tables)
    return tables


def standing(code, tables):
    """{patron: what their home node's standing rests on}: blocks, expiry, open balance, open loans.

    Read from the same rows as the node's standing answer (node/domain/circulation.py
    ``own_patron_standing``), so a forged fee or loan shows as the standing it moves.
    """
    result = {}
    for (institution, home_id), patron in tables["patron"].items():
        if institution != code:
            continue
        balance = {}
        for fee in tables["fee"].values():
            if fee["patron_id"] == patron["id"] and fee["status"] == "open":
                balance[fee["currency"]] = balance.get(fee["currency"], 0) + fee["amount"] - fee["paid"]
        result[(home_id,)] = {
            "blocked": bool(patron["blocked"]), "expires_on": patron["expires_on"], "open_balance_cents": balance,
            "open_loans": sum(1 for loan in tables["loan"].values()
                              if loan["patron_id"] == patron["id"] and loan["status"] == "open")}
    return result


def changes(before, after):
    """What differs between two snapshots, one readable line per row."""
    lines = []
    for table in before:
        old, new = before[table], after[table]
        for name in sorted(set(old) | set(new), key=repr):
            label = f"{table} {'/'.join(map(str, name))}"
            if name not in new:
                lines.append(f"{label}: removed {old[name]}")
            elif name not in old:
                lines.append(f"{label}: added {new[name]}")
            elif old[name] != new[name]:
                moved = {column: f"{old[name].get(column)!r} -> {new[name].get(column)!r}"
                         for column in sorted(set(old[name]) | set(new[name]))
                         if old[name].get(column) != new[name].get(column)}
                lines.append(f"{label}: {moved}")
    return lines
