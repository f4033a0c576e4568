"""The circnode command as a real subprocess, and what its answers must look like."""
import os
import subprocess
import sys
from tests.helpers import REPO




def circnode(*args, input=None, env=None, cwd=None):
    """Run ``python -m node.cli ARGS`` and return the CompletedProcess (text)."""
    environment = dict(os.environ)
    environment.pop("CIRCNODE_CONFIG", None)  # only what the test says counts
    environment.update(env or {})
    environment["PYTHONPATH"] = REPO + os.pathsep + environment.get("PYTHONPATH", "")
    # A new session has no controlling terminal, so password prompts read stdin.
    return subprocess.run([sys.executable, "-m", "node.cli", *args], input=input, env=environment,
                          cwd=cwd or REPO, capture_output=True, text=True, timeout=60,
                          start_new_session=True)


def ok(result):
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def refused(result, *fragments):
    """Assert the CLI refused with exit 2 and one line holding FRAGMENTS."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
