"""Small statistics and process-memory helpers shared by the benchmarks."""
import os
import resource
import statistics
import sys
import time


def median(values):
    return statistics.median(values) if values else 0.0


def spread(values):
    """Half the range over the median, as a fraction (0.05 = the rounds agree within ±5%)."""
    if len(values) < 2:
        return 0.0
    mid = median(values)
    return (max(values) - min(values)) / 2 / mid if mid else 0.0


def percentile(values, fraction):
    """The FRACTION (0..1) percentile of VALUES, nearest rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def rss_mb(pid, field="VmRSS"):
    """Resident memory of PID in MB (VmHWM: its peak so far), from /proc."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid=None):
    """CPU time (user + system) used so far by process PID, or by this process when None."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class Progress:
    """One line per step on stderr, with the time since the run began."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.started = time.monotonic()

    def __call__(self, message):
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{elapsed:6.1f}s] {message}\n")
        self.stream.flush()
