"""The browser the tests drive."""
import os

import pytest

# Debian's chromium, driven by playwright's Python API (never playwright's own browser download).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                    reason=f"{CHROMIUM} is not installed (CI installs it and never skips)")
