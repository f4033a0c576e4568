"""Calls on a live tests.network.Network: checkouts, returns, loans, rows, waiting for outboxes to drain."""
import sqlite3
import time


FAST = {"sync": {"interval_seconds": "1", "max_backoff_seconds": "2", "timeout_seconds": "2",
                 "standing_timeout_seconds": "1", "batch_size": "25"},
        "policy": {"offline_max_loans": "5", "max_loans": "20"}}


def wait_until(check, timeout=30.0, interval=0.2, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


def db_rows(net, code, sql, args=()):
    """Read a node's SQLite file directly (WAL lets us read beside the running node)."""
    path = f"{net.info(code).folder}/var/circnode.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(sql, args).fetchall()


def checkout(net, lender, barcode, home, patron):
    r = net.api(lender, "POST", "/api/v1/checkouts",
                {"item_barcode": barcode, "patron": {"institution": home, "id": patron}})
    assert r.status_code == 201, r.text
    return r.json()


def give_back(net, code, barcode, owner=None):
    body = {"item_barcode": barcode}
    if owner:
        body["owner"] = owner
    r = net.api(code, "POST", "/api/v1/returns", body)
    assert r.status_code == 200, r.text
    return r.json()


def loans_of(net, code, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    r = net.api(code, "GET", f"/api/v1/loans?limit=1000&{query}")
    assert r.status_code == 200, r.text
    return {loan["id"]: loan for loan in r.json()["loans"]}


def pending(net, code):
    return db_rows(net, code, "SELECT COUNT(*) FROM outbox_event WHERE state IN ('pending','failed')")[0][0]


def drained(net, code, timeout=60.0):
    return wait_until(lambda: pending(net, code) == 0, timeout=timeout, message=f"{code}'s outbox to drain")
