"""``quickstart`` waits for a busy package manager instead of failing, and says so.

A child process holds a lock the way dpkg and apt do (a POSIX record lock, fcntl), on a file of the
test's own (QUICKSTART_APT_LOCKS), so the machine's real dpkg lock is never touched. The quickstart
functions run from the script itself (sourced, it only defines them) in a real bash.
"""
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO

HOLD = """
import fcntl, sys, time
handle = open(sys.argv[1], "w")
fcntl.lockf(handle, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def lock(tmp_path):
    """Hold a lock on a file for some seconds in a child process; yields (start, path)."""
    path = str(tmp_path / "lock-frontend")
    holders = []

    def hold(seconds):
        holder = subprocess.Popen([sys.executable, "-c", HOLD, path, str(seconds)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        holders.append(holder)
        return holder

    yield hold, path
    for holder in holders:
        holder.kill()
        holder.wait()


def quickstart(call, path, timeout, extra_path=None):
    env = {**os.environ, "QUICKSTART_APT_LOCKS": path, "QUICKSTART_APT_LOCK_TIMEOUT": str(timeout)}
    if extra_path:
        env["PATH"] = extra_path + os.pathsep + env["PATH"]
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", f'source "{REPO}/quickstart" && {call}'], env=env,
                            capture_output=True, text=True, timeout=120)
    return result, time.monotonic() - started


def test_a_held_lock_is_waited_for_then_refused_with_its_holder_named(lock):
    hold, path = lock
    holder = hold(60)
    result, took = quickstart("wait_for_apt_lock", path, timeout=2)
    assert result.returncode == 1, result.stderr
    assert 1 <= took < 30  # bash counts whole seconds: a 2 s wait may end after just over 1 s
    assert f"waiting for the package manager: {path} is locked by pid {holder.pid}" in result.stderr
    assert f"{path} is still locked by pid {holder.pid}" in result.stderr and "after 2 s" in result.stderr


def test_apt_get_runs_once_the_lock_is_let_go_and_is_told_to_wait_too(lock, tmp_path):
    hold, path = lock
    fake = tmp_path / "bin"
    fake.mkdir()
    record = tmp_path / "apt-get.args"
    (fake / "apt-get").write_text(f'#!/bin/sh\necho "$@" > "{record}"\n')
    (fake / "apt-get").chmod(0o755)
    holder = hold(2)
    result, took = quickstart("apt_get update -qq", path, timeout=60, extra_path=str(fake))
    assert result.returncode == 0, result.stderr
    assert holder.poll() is not None  # it ran only after the holder had let go
    assert 1.5 <= took < 30
    assert "waiting for the package manager" in result.stderr
    assert record.read_text().split() == ["-o", "DPkg::Lock::Timeout=60", "update", "-qq"]


def test_a_free_lock_is_not_waited_for(lock):
    _, path = lock
    open(path, "w").close()
    result, took = quickstart("wait_for_apt_lock", path, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    assert took < 5


def test_sourcing_quickstart_installs_and_starts_nothing(tmp_path):
    result = subprocess.run(["bash", "-c", f'source "{REPO}/quickstart" && type main >/dev/null && pwd'],
                            cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == str(tmp_path) and result.stderr == ""
