"""From raw results to figures: each a median, a spread, a ratio and the issue's goal beside it."""
import os
import platform
import sqlite3
import time

# name: (what, goal text, test on the ratio)
GOALS = {
    "checkout_1_client": ("checkouts/s, 1 client, vs /healthz", ">= 0.80", lambda r: r >= 0.80),
    "checkout_4_clients": ("checkouts/s, 4 clients, vs /healthz", ">= 0.80", lambda r: r >= 0.80),
    "checkout_4_vs_1": ("checkouts/s, 4 clients vs 1 client", ">= 1.00, 0 locked", lambda r: r >= 1.0),
    "checkout_vs_bare_transaction": ("checkouts/s vs bare transaction", "(limit)", None),
    # One client waits for each answer: no checkout beats a /healthz round trip followed by
    # the bare durable transaction, so this ratio caps checkout_1_client (docs/benchmarks.md).
    "checkout_1_client_ceiling": ("/healthz round trip + bare transaction in series, vs /healthz", "(ceiling)",
                                  None),
    "drain": ("events/s drained vs bare batched POST", ">= 0.75", lambda r: r >= 0.75),
    "resend": ("events/s resent vs first send", ">= 1.00", lambda r: r >= 1.0),
    "growth_checkout": ("checkouts/s, largest vs smallest history", ">= 0.90", lambda r: r >= 0.90),
    "growth_drain": ("events/s drained, largest vs smallest history", ">= 0.90", lambda r: r >= 0.90),
    "memory_drain_peak": ("peak MB while draining, of 100 MB", "< 1.00", lambda r: r < 1.0),
    "memory_idle": ("MB of an idle node, of 60 MB", "< 1.00", lambda r: r < 1.0),
    "week_offline": ("events/s of a week's backlog vs bare POST", ">= 0.75", lambda r: r >= 0.75),
}


def _figure(name, median, spread, unit, limit_name, limit_median, limit_spread, **extra):
    what, goal, test = GOALS[name]
    ratio = median / limit_median if limit_median else 0.0
    met = test(ratio) if test else None
    return {"what": what, "unit": unit, "median": median, "spread": spread,
            "limit": {"name": limit_name, "median": limit_median, "spread": limit_spread},
            "ratio": ratio, "goal": goal, "met": met, **extra}


def figures(raw):
    """The figures of the issue, from the first (smallest) and last (largest) history levels."""
    first, last = raw["levels"][0], raw["levels"][-1]
    d1, d4 = first["desk_1"], first["desk_4"]
    out = {}
    for name, desk in (("checkout_1_client", d1), ("checkout_4_clients", d4)):
        out[name] = _figure(name, desk["checkout"]["median"], desk["checkout"]["spread"], "checkouts/s",
                            f"/healthz, {desk['clients']} client(s)", desk["healthz"]["median"],
                            desk["healthz"]["spread"], p50_ms=desk["p50_ms"], p99_ms=desk["p99_ms"],
                            errors=desk["errors"], error_sample=desk["error_sample"])
    locked = d1["locked_errors"] + d4["locked_errors"] + first["locked_in_logs"]
    out["checkout_4_vs_1"] = _figure("checkout_4_vs_1", d4["checkout"]["median"], d4["checkout"]["spread"],
                                     "checkouts/s", "1 client", d1["checkout"]["median"], d1["checkout"]["spread"],
                                     locked_errors=locked)
    if locked:
        out["checkout_4_vs_1"]["met"] = False
    out["checkout_vs_bare_transaction"] = _figure(
        "checkout_vs_bare_transaction", d1["checkout"]["median"], d1["checkout"]["spread"], "checkouts/s",
        "bare checkout-shaped transaction", d1["bare"]["median"], d1["bare"]["spread"])
    serial = 1 / (1 / d1["healthz"]["median"] + 1 / d1["bare"]["median"])
    out["checkout_1_client_ceiling"] = _figure(
        "checkout_1_client_ceiling", serial, max(d1["healthz"]["spread"], d1["bare"]["spread"]), "checkouts/s",
        "/healthz, 1 client", d1["healthz"]["median"], d1["healthz"]["spread"])
    drain = first["drain"]
    out["drain"] = _figure("drain", drain["node"]["median"], drain["node"]["spread"], "events/s",
                           f"bare batched POST + insert-or-ignore ({raw['batch_size']} a batch)",
                           drain["bare"]["median"], drain["bare"]["spread"], events=drain["events_per_round"])
    out["resend"] = _figure("resend", drain["resend"]["median"], drain["resend"]["spread"], "events/s",
                            "first send", drain["node"]["median"], drain["node"]["spread"])
    out["growth_checkout"] = _figure(
        "growth_checkout", last["desk_1"]["checkout"]["median"], last["desk_1"]["checkout"]["spread"], "checkouts/s",
        f"{first['history']:,} loans", d1["checkout"]["median"], d1["checkout"]["spread"], history=last["history"])
    out["growth_drain"] = _figure(
        "growth_drain", last["drain"]["node"]["median"], last["drain"]["node"]["spread"], "events/s",
        f"{first['history']:,} events", drain["node"]["median"], drain["node"]["spread"], history=last["history"])
    big = raw["big_drain"]
    peak = max(big["sender_peak_mb"], big["receiver_peak_mb"])
    out["memory_drain_peak"] = _figure("memory_drain_peak", peak, 0.0, "MB", "100 MB", 100.0, 0.0,
                                       events=big["events"], sender_mb=big["sender_peak_mb"],
                                       receiver_mb=big["receiver_peak_mb"], seconds=big["seconds"])
    idle = max(max(level["idle_rss_mb"].values()) for level in raw["levels"])
    out["memory_idle"] = _figure("memory_idle", idle, 0.0, "MB", "60 MB", 60.0, 0.0)
    week = first["week"]
    out["week_offline"] = _figure("week_offline", week["rate"], 0.0, "events/s", "bare batched POST (point 3)",
                                  drain["bare"]["median"], drain["bare"]["spread"], seconds=week["seconds"],
                                  events=week["events"], transactions=week["transactions"])
    return out


def _fmt(value, unit):
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:,.0f}/s"


def table(figs):
    """The summary table as text: node, limit, ratio and goal side by side."""
    lines = [f"{'figure':30} {'node':>16} {'limit':>16} {'ratio':>6}  {'goal':18} met",
             "-" * 96]
    for name, f in figs.items():
        node = f"{_fmt(f['median'], f['unit'])} ±{f['spread'] * 100:.0f}%"
        limit = f"{_fmt(f['limit']['median'], f['unit'])} ±{f['limit']['spread'] * 100:.0f}%"
        met = {True: "yes", False: "NO", None: "-"}[f["met"]]
        lines.append(f"{name:30} {node:>16} {limit:>16} {f['ratio']:6.2f}  {f['goal']:18} {met}")
    return "\n".join(lines)


def level_table(raw):
    """Rates at each history size (the plot's data)."""
    head = (f"{'history':>10} {'checkout 1c':>12} {'p50/p99 ms':>11} {'healthz 1c':>11} {'bare tx':>8} "
            f"{'checkout 4c':>12} {'p50/p99 ms':>11} {'drain':>7} {'bare POST':>10} {'resend':>7} {'idle MB':>8}")
    lines = [head, "-" * len(head)]
    for level in raw["levels"]:
        d1, d4 = level["desk_1"], level["desk_4"]
        lines.append(f"{level['history']:>10,} {d1['checkout']['median']:>12,.0f} "
                     f"{_latency(d1):>11} {d1['healthz']['median']:>11,.0f} {d1['bare']['median']:>8,.0f} "
                     f"{d4['checkout']['median']:>12,.0f} {_latency(d4):>11} {level['drain']['node']['median']:>7,.0f} "
                     f"{level['drain']['bare']['median']:>10,.0f} {level['drain']['resend']['median']:>7,.0f} "
                     f"{max(level['idle_rss_mb'].values()):>8.0f}")
    return "\n".join(lines)


def cpu_rows(raw):
    """(clients, request, lender, home, client, total): CPU ms per request at the smallest history."""
    rows = []
    for key in ("desk_1", "desk_4"):
        desk = raw["levels"][0][key]
        for name in ("healthz", "checkout"):
            cpu = desk.get("cpu_ms", {}).get(name)
            if cpu:
                rows.append((desk["clients"], name, cpu.get("lender", 0.0), cpu.get("home", 0.0), cpu["client"],
                             sum(cpu.values())))
    return rows


def cpu_table(raw):
    """Where the CPU of one request goes, by process: what a checkout costs that /healthz does not."""
    lines = [f"{'clients':>7} {'request':9} {'lender ms':>10} {'home ms':>8} {'clients ms':>10} {'total ms':>9}"]
    lines += [f"{c:>7} {name:9} {lender:>10.2f} {home:>8.2f} {client:>10.2f} {total:>9.2f}"
              for c, name, lender, home, client, total in cpu_rows(raw)]
    return "\n".join(lines)


def kiosk_rows(raw):
    """(kiosks, SIP2 rate, p50, p99, HTTP rate, p50, p99, ratio) at the smallest history, when measured."""
    rows = []
    for key in ("kiosk_1", "kiosk_4"):
        one = raw["levels"][0].get(key)
        if one:
            kiosk, http = one["kiosk"], one["http"]
            rows.append((one["clients"], kiosk["median"], kiosk["p50_ms"], kiosk["p99_ms"], http["median"],
                         http["p50_ms"], http["p99_ms"], kiosk["median"] / http["median"] if http["median"] else 0))
    return rows


def kiosk_table(raw):
    """SIP2 kiosk checkouts against the same node's HTTP checkouts, measured in the same rounds."""
    lines = [f"{'kiosks':>6} {'SIP2 checkout':>14} {'p50/p99 ms':>11} {'HTTP checkout':>14} {'p50/p99 ms':>11} "
             f"{'ratio':>6}"]
    lines += [f"{n:>6} {k:>12,.0f}/s {kp50:>5.0f}/{kp99:<5.0f} {h:>12,.0f}/s {hp50:>5.0f}/{hp99:<5.0f} {r:>6.2f}"
              for n, k, kp50, kp99, h, hp50, hp99, r in kiosk_rows(raw)]
    return "\n".join(lines)


def _latency(desk):
    return f"{desk['p50_ms']:.0f}/{desk['p99_ms']:.0f}"


def machine():
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "sqlite": sqlite3.sqlite_version,
            "python": platform.python_version(), "platform": platform.platform(),
            "loadavg": os.getloadavg(), "fsync_ms": fsync_ms()}


def fsync_ms(rounds=50):
    """Median time of one 4 KiB write + fsync in the working folder: the floor of a durable commit."""
    import tempfile
    times = []
    with tempfile.NamedTemporaryFile(dir=".", prefix=".fsync-probe-") as handle:
        for _ in range(rounds):
            began = time.perf_counter()
            handle.write(b"x" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
            times.append(time.perf_counter() - began)
    times.sort()
    return times[len(times) // 2] * 1000


def plot(raw, path):
    """Rates against history size, one line per benchmark and limit; False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sizes = [level["history"] for level in raw["levels"]]

    def series(key, part):
        return [level[key][part]["median"] for level in raw["levels"]]

    fig, (desk, sync) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, values, style in (("checkout, 1 client", series("desk_1", "checkout"), "o-"),
                                 ("checkout, 4 clients", series("desk_4", "checkout"), "s-"),
                                 ("/healthz, 1 client (limit)", series("desk_1", "healthz"), "o--"),
                                 ("bare transaction (limit)", series("desk_1", "bare"), "^:")):
        desk.plot(sizes, values, style, label=label)
    for label, values, style in (("drain", series("drain", "node"), "o-"),
                                 ("resend", series("drain", "resend"), "s-"),
                                 ("bare batched POST (limit)", series("drain", "bare"), "o--")):
        sync.plot(sizes, values, style, label=label)
    for axis, title, unit in ((desk, "Desk checkout", "checkouts/s"), (sync, "Sync drain", "events/s")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("loans and events already in the database")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def markdown(figs, raw, info):
    """The tables of docs/benchmarks.md, from one run."""
    lines = [f"Machine: {info['nproc']} cores ({info['cpu']}), SQLite {info['sqlite']}, Python {info['python']}, "
             f"{info['platform']}; median fsync {info['fsync_ms']:.1f} ms; load average "
             f"{info['loadavg'][0]:.1f} at the start, {info.get('loadavg_end', info['loadavg'])[0]:.1f} at the end.",
             "", "| figure | node | limit | ratio | goal | met |", "| --- | ---: | ---: | ---: | --- | --- |"]
    for name, f in figs.items():
        met = {True: "yes", False: "**no**", None: "-"}[f["met"]]
        lines.append(f"| `{name}`: {f['what']} | {_fmt(f['median'], f['unit'])} ±{f['spread'] * 100:.0f}% "
                     f"| {f['limit']['name']}: {_fmt(f['limit']['median'], f['unit'])} "
                     f"±{f['limit']['spread'] * 100:.0f}% | {f['ratio']:.2f} | {f['goal']} | {met} |")
    lines += ["", "| history | checkout 1 client (p50/p99 ms) | /healthz 1 client | bare transaction "
              "| checkout 4 clients (p50/p99 ms) | /healthz 4 clients | drain | bare POST | resend | idle MB |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for level in raw["levels"]:
        d1, d4 = level["desk_1"], level["desk_4"]
        lines.append(f"| {level['history']:,} | {d1['checkout']['median']:,.0f} ({_latency(d1)}) "
                     f"| {d1['healthz']['median']:,.0f} | {d1['bare']['median']:,.0f} "
                     f"| {d4['checkout']['median']:,.0f} ({_latency(d4)}) | {d4['healthz']['median']:,.0f} "
                     f"| {level['drain']['node']['median']:,.0f} | {level['drain']['bare']['median']:,.0f} "
                     f"| {level['drain']['resend']['median']:,.0f} | {max(level['idle_rss_mb'].values()):.0f} |")
    lines += ["", f"CPU milliseconds per request by process ({raw['levels'][0]['history']:,} history; the home "
              "node's share is its standing answers, one per visit):", "",
              "| clients | request | lender | home | clients | total |", "| ---: | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {c} | {name} | {lender:.2f} | {home:.2f} | {client:.2f} | {total:.2f} |"
              for c, name, lender, home, client, total in cpu_rows(raw)]
    lines += ["", "Self-check kiosks (SIP2) against the same node's HTTP checkout, in the same rounds:", "",
              "| kiosks | SIP2 checkout (p50/p99 ms) | HTTP checkout (p50/p99 ms) | ratio |",
              "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {k:,.0f}/s ({kp50:.0f}/{kp99:.0f}) | {h:,.0f}/s ({hp50:.0f}/{hp99:.0f}) | {r:.2f} |"
              for n, k, kp50, kp99, h, hp50, hp99, r in kiosk_rows(raw)]
    return "\n".join(lines)
