"""The whole benchmark run: one two-node network grown level by level, every figure measured at each level."""
import datetime
import os
import time
from dataclasses import dataclass

from benchmarks import history
from benchmarks.desk import DeskLoad, desk_benchmark
from benchmarks.drain import DrainBench, cli_drain_peak_mb, desk_week, push_all
from benchmarks.kiosk import KioskLoad, kiosk_benchmark
from benchmarks.limits import BareCheckout, BareDrain
from benchmarks.stats import rss_mb

from node.demo.network import DEMO_KIOSK, DEMO_PASSWORD

UTC = datetime.timezone.utc
LENDER, HOME = ("NORTH", "North University"), ("SOUTH", "South College")
# The demo's settings, with the scheduler's push out of the way: the benchmark pushes itself.
# The desk figures ask the home node hundreds of standing questions a second: far past the
# per-peer rate a home allows by default ([sync] standing_per_minute, 120), which would turn
# the measurement into a count of 429s.  The limit itself costs one indexed count per question.
OVERRIDES = {"sync": {"interval_seconds": "3600", "standing_per_minute": "1000000"}}


@dataclass
class Sizes:
    levels: tuple          # history sizes: loans (and their events) already on both nodes
    rounds: int            # interleaved rounds per figure
    desk_seconds: float    # length of one desk measurement
    backlog_loans: int     # a drain round queues 2 x this many events
    week: int              # desk transactions (checkouts + returns) of the week offline
    big_backlog: int       # events queued for the memory check of a large drain
    patrons: int
    desk_items: int


QUICK = Sizes(levels=(1_000, 5_000), rounds=3, desk_seconds=0.25, backlog_loans=50, week=300,
              big_backlog=400, patrons=1_500, desk_items=4_000)
# The memory check drains 20,000 events on top of the 1M-event history: a drain reads one
# batch at a time, so its peak does not depend on the backlog (the quick run's 400 shows it).
FULL = Sizes(levels=(10_000, 100_000, 1_000_000), rounds=5, desk_seconds=2.0, backlog_loans=500, week=20_000,
             big_backlog=20_000, patrons=12_000, desk_items=60_000)


def run(sizes, workdir, progress):
    """Measure everything; return the raw results (see benchmarks/report.py for the figures)."""
    from node import config as config_module
    from node.store.db import database, open_database
    from tests.network import Network, free_port

    net = Network(os.path.join(workdir, "net"), nodes=[LENDER, HOME], items=20, patrons=5, overrides=OVERRIDES)
    lender, home = net.info("NORTH"), net.info("SOUTH")
    kiosk_port = kiosks_by_card_number(lender, free_port())
    cfg = config_module.load(lender.config)
    lender_db, home_db = cfg.database_path, config_module.load(home.config).database_path
    results = {"levels": [], "sizes": sizes.__dict__, "batch_size": cfg.sync["batch_size"]}
    bare_checkout = BareCheckout(workdir, items=2_000)
    bare_drain = BareDrain(workdir, free_port())
    try:
        progress("writing desk stock and patrons")
        desk_barcodes = [f"D{n:07d}" for n in range(sizes.desk_items)]
        history_barcodes = [f"H{n:07d}" for n in range(5_000)]
        week_barcodes = [f"W{n:07d}" for n in range(1_000)]
        patron_ids = [f"bench-{n:06d}" for n in range(sizes.patrons)]
        item_ids = history.add_items(lender_db, "NORTH", desk_barcodes + history_barcodes + week_barcodes)
        home_item_ids = history.add_items(home_db, "NORTH", history_barcodes)
        lender_patrons = history.add_patrons(lender_db, "SOUTH", patron_ids)
        home_patrons = history.add_patrons(home_db, "SOUTH", patron_ids)
        plan = history.Plan("NORTH", "SOUTH", history_barcodes, patron_ids)
        # Desk visits take patrons from the far end of the list, the week offline from the start.
        load = DeskLoad(lender.direct_url, lender.token, "SOUTH", desk_barcodes, reversed(patron_ids))
        kiosks = KioskLoad(kiosk_port, DEMO_KIOSK, DEMO_PASSWORD, load)
        grown = 0
        for number, level in enumerate(sizes.levels):
            progress(f"growing history to {level:,} loans and events on both nodes")
            began = time.perf_counter()
            history.grow(lender_db, home_db, plan, level - grown, history.last_sequence(lender_db, "SOUTH") + 1,
                         item_ids, lender_patrons, home_item_ids, home_patrons)
            grown = level
            # History is written without fsync (set-up, not measurement): flush it now, or the
            # kernel writes gigabytes back while the next level is being measured.
            os.sync()
            progress(f"history written and flushed in {time.perf_counter() - began:.0f}s; starting both nodes")
            net.start_all()
            time.sleep(1.5)  # let the scheduler's first run and imports settle before reading memory
            one = {"history": level, "idle_rss_mb": {"NORTH": rss_mb(net.processes["NORTH"].pid),
                                                     "SOUTH": rss_mb(net.processes["SOUTH"].pid)}}
            open_database(lender_db)
            label = f"[{level:,}]"
            pids = {"lender": net.processes["NORTH"].pid, "home": net.processes["SOUTH"].pid}
            one["desk_1"] = desk_benchmark(load, bare_checkout, sizes.rounds, sizes.desk_seconds, 1, progress, label,
                                           pids)
            one["desk_4"] = desk_benchmark(load, bare_checkout, sizes.rounds, sizes.desk_seconds, 4, progress, label,
                                           pids)
            if number == 0:  # SIP2 kiosks against the same node's HTTP checkout, in the same rounds
                one["kiosk_1"] = kiosk_benchmark(load, kiosks, sizes.rounds, sizes.desk_seconds, 1, progress, label)
                one["kiosk_4"] = kiosk_benchmark(load, kiosks, sizes.rounds, sizes.desk_seconds, 4, progress, label)
                kiosks.close()
            one["locked_in_logs"] = _locked_lines(net)
            drain = DrainBench(cfg, "SOUTH", lender_db, plan, item_ids, lender_patrons, bare_drain, progress)
            one["drain"] = drain.run(sizes.rounds, sizes.backlog_loans, label)
            one["receiver_peak_rss_mb"] = rss_mb(net.processes["SOUTH"].pid, "VmHWM")
            if number == 0:
                one["week"] = week_offline(net, cfg, week_barcodes, patron_ids, sizes.week, progress)
            one["loans_on_lender"] = history.count(lender_db, "SELECT COUNT(*) FROM loan")
            one["inbox_on_home"] = history.count(home_db, "SELECT COUNT(*) FROM inbox_record")
            results["levels"].append(one)
            database.close()
            net.stop_all()
        results["big_drain"] = big_drain(net, cfg, plan, item_ids, lender_patrons, sizes.big_backlog, workdir,
                                         progress)
    finally:
        database.close()
        net.stop_all()
        bare_drain.close()
        bare_checkout.close()
    return results


def kiosks_by_card_number(lender, port):
    """The lender's SIP2 server on PORT (the demo's kiosk account), SOUTH's patrons by card number; its port."""
    from node.demo.network import enable_kiosks
    with open(lender.config, encoding="utf-8") as handle:
        text = handle.read()
    if "card_pattern" not in text:  # the benchmark's patron ids are SOUTH's card numbers
        text = text.replace("[peer:SOUTH]\n", "[peer:SOUTH]\ncard_pattern = bench-\\d{6}\n", 1)
        with open(lender.config, "w", encoding="utf-8") as handle:
            handle.write(text + "\n[sip2]\nhost = 127.0.0.1\n" f"port = {port}\ncard_numbers = yes\n")
    return enable_kiosks(lender, port)


def week_offline(net, cfg, barcodes, patron_ids, transactions, progress):
    """A busy desk's week with the home node down, then the drain when it comes back."""
    net.stop("SOUTH")
    start = datetime.datetime.now(UTC) - datetime.timedelta(days=7)
    progress(f"week offline: making {transactions:,} desk transactions with SOUTH down")
    made = desk_week(cfg, "SOUTH", barcodes, patron_ids, transactions, start, progress)
    net.start("SOUTH")
    progress("week offline: SOUTH is back; draining")
    sent, seconds, result = push_all(cfg, "SOUTH")
    if sent != made or result.rejected:
        raise RuntimeError(f"the week drained {result.delivered} and rejected {result.rejected} of {made} events")
    progress(f"week offline: {sent:,} events drained in {seconds:.1f}s ({sent / seconds:.0f}/s)")
    return {"transactions": made, "events": sent, "seconds": seconds, "rate": sent / seconds}


def big_drain(net, cfg, plan, item_ids, lender_patrons, events, workdir, progress):
    """Peak memory of ``circnode sync`` and of the home node while a large backlog drains."""
    lender_db = cfg.database_path
    progress(f"queueing {events:,} events for the memory check")
    first = history.last_sequence(lender_db, "SOUTH") + 1
    history.queue_backlog(lender_db, plan, events // 2, first, item_ids, lender_patrons,
                          at=datetime.datetime.now(UTC))
    net.start("SOUTH")  # a fresh process: its peak is this drain's
    progress(f"draining {events:,} events with 'circnode sync' (its own process)")
    seconds, sender_mb = cli_drain_peak_mb(net.info("NORTH").config, "SOUTH", workdir)
    receiver_mb = rss_mb(net.processes["SOUTH"].pid, "VmHWM")
    pending = history.count(lender_db, "SELECT COUNT(*) FROM outbox_event WHERE state != 'delivered'")
    net.stop("SOUTH")
    progress(f"drained {events:,} events in {seconds:.0f}s; peak RSS sender {sender_mb:.0f} MB, "
             f"receiver {receiver_mb:.0f} MB")
    return {"events": events, "seconds": seconds, "rate": events / seconds, "sender_peak_mb": sender_mb,
            "receiver_peak_mb": receiver_mb, "left_pending": pending}


def _locked_lines(net):
    count = 0
    for info in net.infos.values():
        path = os.path.join(info.folder, "node.log")
        if os.path.exists(path):
            with open(path, errors="replace") as handle:
                count += sum("database is locked" in line for line in handle)
    return count
