"""The daily jobs: overdue, lost, notices, purge.

``run_daily(cfg, now)`` runs them as of NOW (``circnode jobs run --at`` passes
a time, for operators catching up and for tests); ``circnode run`` (node/cli/runner.py) schedules
them once a day at ``[jobs] daily_at`` and retries unsent notices every
``[smtp] retry_minutes``.  Each step is idempotent, so a run repeated or
overlapping another does nothing twice.  A failing step is logged and
recorded for the admin page; it never stops the other steps or the scheduler.
"""
import json
import logging

from node.domain import billing, notices, privacy
from node.clock import utcnow
from node.store.db import database
from node.store.models import JobRun

log = logging.getLogger(__name__)


def _overdue(cfg, now):
    return {"overdue_loans": billing.overdue_count(cfg, now),
            "notices_planned": notices.plan(cfg, now, kinds=("courtesy", "overdue"))}


def _notices(cfg, now):
    planned = notices.plan(cfg, now, kinds=("lost",))
    return {"notices_planned": planned, **notices.send_due(cfg, now)}


STEPS = {"overdue": _overdue, "lost": billing.declare_lost_loans, "notices": _notices,
         "purge": privacy.purge}


def run_daily(cfg, now, only=None):
    """Run the daily steps (or ONLY those named) as of NOW; return {step: summary or {"error": ...}}."""
    results = {}
    for name, step in STEPS.items():
        if only and name not in only:
            continue
        started = utcnow()
        try:
            summary, error = step(cfg, now), ""
        except Exception as exc:  # one step failing must not stop the others
            log.exception("daily job %s failed", name)
            summary, error = {}, f"{exc.__class__.__name__}: {exc}"[:500]
        with database.atomic():
            JobRun.insert(name=name, started_at=started, finished_at=utcnow(), as_of=now,
                          summary=json.dumps(summary, sort_keys=True), error=error).on_conflict_replace().execute()
        results[name] = {"error": error} if error else summary
    return results


def run_daily_safely(cfg):
    """The scheduler's daily job: never raises."""
    try:
        run_daily(cfg, utcnow())
    except Exception:
        log.exception("daily jobs crashed")


def last_runs():
    return {run.name: run for run in JobRun.select()}


def describe(run):
    """RUN's summary in words for the admin page, e.g. "overdue loans: 2 · notices planned: 1" (stored as JSON)."""
    try:
        summary = json.loads(run.summary or "{}")
    except ValueError:
        return run.summary  # not ours to parse: shown as stored
    if not isinstance(summary, dict):
        return str(summary)
    return " · ".join(f"{name.replace('_', ' ')}: {_words(value)}" for name, value in summary.items()) or "nothing to do"


def _words(value):
    if isinstance(value, dict):
        return ", ".join(f"{name.replace('_', ' ')} {_words(inner)}" for name, inner in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(_words(inner) for inner in value) or "none"
    return str(value)
