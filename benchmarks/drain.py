"""Sync drain: a lender's queued events pushed to a real home node, against a bare batched POST.

The node's side is ``sync.push.push_peer`` run here on the lender's database
(what ``circnode sync`` and the scheduler run), talking to the home node's
``circnode run`` over loopback: signed batches, the inbox applying each
event once, signed acknowledgements, the outbox marked delivered.  The limit
is the same events, at the same batch size, POSTed to a server that only
parses them and inserts them with ``INSERT OR IGNORE``.
"""
import datetime
import os
import subprocess
import sys
import time

from benchmarks import history
from benchmarks.stats import median, rss_mb, spread
from node.domain.circulation import Standing

UTC = datetime.timezone.utc


def push_all(cfg, peer):
    """Push PEER's whole queue now; (events delivered or rejected, seconds, result)."""
    from node.clock import utcnow
    from sync.push import push_peer
    began = time.perf_counter()
    result = push_peer(cfg, peer, utcnow)
    elapsed = time.perf_counter() - began
    if result.error:
        raise RuntimeError(f"push to {peer} failed: {result.error}")
    return result.delivered + result.rejected, elapsed, result


class DrainBench:
    """Rounds of: queue a backlog, drain it (node), POST it bare (limit), resend it (node)."""

    def __init__(self, cfg, peer, lender_db, plan, item_ids, lender_patrons, bare, progress):
        self.cfg, self.peer, self.lender_db, self.plan = cfg, peer, lender_db, plan
        self.item_ids, self.lender_patrons = item_ids, lender_patrons
        self.bare, self.progress = bare, progress
        self.batch_size = cfg.sync["batch_size"]

    def round(self, loans, node_first):
        first = history.last_sequence(self.lender_db, self.peer) + 1
        rows = history.queue_backlog(self.lender_db, self.plan, loans, first, self.item_ids, self.lender_patrons,
                                     at=datetime.datetime.now(UTC))
        last = first + len(rows) - 1
        bare_rate = None
        if not node_first:
            bare_rate = self.bare.drain(self.cfg.institution, self.peer, rows, self.batch_size)
        sent, seconds, result = push_all(self.cfg, self.peer)
        if sent != len(rows) or result.rejected:
            raise RuntimeError(f"drain delivered {result.delivered} and rejected {result.rejected} "
                               f"of {len(rows)} events")
        if node_first:
            bare_rate = self.bare.drain(self.cfg.institution, self.peer, rows, self.batch_size)
        history.requeue(self.lender_db, self.peer, first, last)
        resent, resend_seconds, _ = push_all(self.cfg, self.peer)
        if resent != len(rows):
            raise RuntimeError(f"resend acknowledged {resent} of {len(rows)} events")
        return {"node": sent / seconds, "bare": bare_rate, "resend": resent / resend_seconds}

    def run(self, rounds, loans, label):
        """Median and spread of drain, bare and resend rates over ROUNDS rounds of 2 x LOANS events."""
        push_all(self.cfg, self.peer)  # whatever the desk queued is not part of the backlog
        rates = {"node": [], "bare": [], "resend": []}
        for number in range(rounds):
            one = self.round(loans, node_first=number % 2 == 0)
            for name, value in one.items():
                rates[name].append(value)
            self.progress(f"{label} drain round {number + 1}/{rounds} ({2 * loans} events): node "
                          f"{one['node']:.0f}/s, bare POST {one['bare']:.0f}/s, resend {one['resend']:.0f}/s")
        return {name: {"median": median(values), "spread": spread(values), "rounds": values}
                for name, values in rates.items()} | {"events_per_round": 2 * loans, "batch_size": self.batch_size}


def desk_week(cfg, home, barcodes, patron_ids, transactions, start, progress, open_at_once=300):
    """TRANSACTIONS checkouts and returns at the desk over a week, the home node unreachable.

    Runs the node's own ``circulation.checkout`` and ``return_item`` with the
    standing a lender gets when the home node is down (provisional), so the
    outbox fills exactly as at a desk.  Fsyncs are skipped while the week is
    made up (it is set-up); they are back on for the drain.
    """
    import sync
    from node.domain import circulation
    from node.store.db import database
    sync.connect()  # the outbox behind circulation's port, as in a running node
    offline = Standing(True, provisional=True, reason="home node unreachable")
    step = datetime.timedelta(days=7) / transactions
    now, open_loans, made = start, [], 0
    checkouts = transactions // 2
    database.execute_sql("PRAGMA synchronous=OFF")
    try:
        for n in range(checkouts):
            barcode, patron_id = barcodes[n % len(barcodes)], patron_ids[n % len(patron_ids)]
            circulation.checkout(cfg, barcode, home, patron_id, offline, now, staff="desk")
            open_loans.append(barcode)
            now += step
            made += 1
            if len(open_loans) >= open_at_once:
                circulation.return_item(cfg, open_loans.pop(0), now, staff="desk")
                now += step
                made += 1
            if n and n % 2000 == 0:
                progress(f"week offline: {made} desk transactions made")
        while open_loans:
            circulation.return_item(cfg, open_loans.pop(0), now, staff="desk")
            now += step
            made += 1
    finally:
        database.execute_sql("PRAGMA synchronous=FULL")
    return made


def cli_drain_peak_mb(config_path, peer, folder):
    """Run ``circnode sync --peer PEER`` as its own process; (seconds, its peak RSS in MB).

    The peak is the process's own ``VmHWM``, polled until it exits: ``wait4``'s
    ``ru_maxrss`` also counts the parent's pages the child had between fork and
    exec, which made a 60 MB drain look like the benchmark's own 1.4 GB.
    """
    log = open(os.path.join(folder, "cli-sync.log"), "ab")
    began = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "node.cli", "--config", config_path, "sync", "--peer", peer],
                               stdout=log, stderr=subprocess.STDOUT)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, rss_mb(process.pid, "VmHWM"))
        time.sleep(0.05)
    log.close()
    if process.returncode != 0:
        raise RuntimeError(f"circnode sync exited {process.returncode}; see {log.name}")
    return time.perf_counter() - began, peak
