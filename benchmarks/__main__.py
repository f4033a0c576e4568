"""``python -m benchmarks [--quick] [--json PATH] [--plot PATH] [--workdir DIR] [--keep]``."""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from benchmarks import report
from benchmarks.run import FULL, QUICK, run
from benchmarks.stats import Progress


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute (the CI smoke run)")
    parser.add_argument("--json", metavar="PATH", help="write every figure and raw round to PATH")
    parser.add_argument("--plot", metavar="PATH", help="draw rates against history size into PATH (PNG; "
                        "needs the 'bench' extra)")
    parser.add_argument("--markdown", metavar="PATH", help="write the result tables in Markdown (for "
                        "docs/benchmarks.md)")
    parser.add_argument("--workdir", metavar="DIR", help="where the nodes' databases go (default: a temporary "
                        "folder on the same disk as /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (node logs, databases)")
    args = parser.parse_args(argv)

    progress = Progress()
    workdir = args.workdir or tempfile.mkdtemp(prefix="circnode-bench-")
    sizes = QUICK if args.quick else FULL
    began = time.monotonic()
    info = report.machine()
    progress(f"{'quick' if args.quick else 'full'} run on {info['nproc']} cores ({info['cpu']}), "
             f"SQLite {info['sqlite']}, Python {info['python']}, fsync {info['fsync_ms']:.1f} ms; in {workdir}")
    try:
        raw = run(sizes, workdir, progress)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    figs = report.figures(raw)
    info["loadavg_end"] = os.getloadavg()
    print()
    print(report.level_table(raw))
    print()
    print(report.table(figs))
    print()
    print(report.cpu_table(raw))
    print()
    print(report.kiosk_table(raw))
    print(f"\n{'quick' if args.quick else 'full'} run in {time.monotonic() - began:.0f}s; "
          f"ratios are the node's median over the limit's median, measured interleaved")
    if args.plot:
        if report.plot(raw, args.plot):
            print(f"plot written to {args.plot}")
        else:
            print("no plot: matplotlib is not installed (pip install -e '.[bench]')", file=sys.stderr)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(report.markdown(figs, raw, info) + "\n")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"mode": "quick" if args.quick else "full", "machine": info, "figures": figs, "raw": raw},
                      handle, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
