"""The admin sync queue's helpers: bearer headers, CSRF, recorded SQL and its plans, the CLI on a config."""
import os
import re
import subprocess
import sys

from node.store.db import database
from tests.helpers import REPO


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def _csrf(page):
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match
    return match.group(1)


def _plans(statements):
    """EXPLAIN QUERY PLAN of each recorded SELECT that reads STATEMENTS' tables."""
    plans = {}
    for sql in statements:
        if sql.lstrip().upper().startswith("SELECT"):
            plans[sql] = [row[3] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql).fetchall()]
    return plans


def _recorded(function):
    statements = []
    database.connection().set_trace_callback(statements.append)
    try:
        function()
    finally:
        database.connection().set_trace_callback(None)
    return statements


def circnode(cfg, *args):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("CIRCNODE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "node.cli", "--config", cfg.path, *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=REPO)
