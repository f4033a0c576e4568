"""The benchmark suite runs end to end in its quick mode and reports every figure (no thresholds: CI is noisy)."""
import json
import subprocess
import sys
from tests.helpers import REPO as ROOT

FIGURES = ["checkout_1_client", "checkout_4_clients", "checkout_4_vs_1", "checkout_vs_bare_transaction",
           "checkout_1_client_ceiling", "drain", "resend", "growth_checkout", "growth_drain", "memory_drain_peak",
           "memory_idle", "week_offline"]


def test_quick_benchmark_reports_every_figure_with_median_spread_ratio_and_goal(tmp_path):
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(out),
                          "--workdir", str(tmp_path / "work")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert sorted(report["figures"]) == sorted(FIGURES)
    for name, figure in report["figures"].items():
        for key in ("median", "spread", "ratio"):
            assert isinstance(figure[key], (int, float)) and figure[key] >= 0, (name, key, figure)
        assert figure["median"] > 0 and figure["limit"]["median"] > 0, (name, figure)
        assert figure["goal"] and figure["goal"] in run.stdout, name
    assert report["figures"]["checkout_1_client"]["errors"] == 0, report["figures"]["checkout_1_client"]
    assert report["figures"]["checkout_4_vs_1"]["locked_errors"] == 0
    week = report["figures"]["week_offline"]
    assert week["events"] == week["transactions"] > 0  # every desk transaction of the week reached the home node
    assert report["raw"]["big_drain"]["left_pending"] == 0
    cpu = report["raw"]["levels"][0]["desk_1"]["cpu_ms"]
    assert set(cpu) == {"healthz", "checkout"} and set(cpu["checkout"]) == {"lender", "home", "client"}
    assert cpu["checkout"]["lender"] > 0 and cpu["checkout"]["home"] > 0  # each visit asks the home node
    assert "lender ms" in run.stdout
    for key in ("kiosk_1", "kiosk_4"):  # SIP2 kiosks against the same node's HTTP checkout (issue 15, point 7)
        kiosks = report["raw"]["levels"][0][key]
        assert kiosks["errors"] == 0, kiosks["error_sample"]
        assert kiosks["kiosk"]["median"] > 0 and kiosks["http"]["median"] > 0 and kiosks["kiosk"]["p99_ms"] > 0
    assert "SIP2 checkout" in run.stdout
    assert report["machine"]["nproc"] >= 1 and report["machine"]["sqlite"]
