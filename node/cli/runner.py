"""``circnode run``: the waitress server and the APScheduler jobs in one process.

With the CLI, above all it starts: the web app, the protocol's push, the daily jobs, the federation's refresh.
"""
import datetime
import logging

from apscheduler.schedulers.background import BackgroundScheduler
from waitress import serve as waitress_serve

from node.web.app import create_app
from node.domain import jobs, notices
from node.clock import utcnow

log = logging.getLogger(__name__)


def start_scheduler(cfg):
    """Start the background jobs; each runs one at a time and never kills the scheduler.

    The scheduler runs on the machine's real clock; the jobs get ``utcnow``
    (which may be shifted, see node/clock.py) for their business time.
    """
    from node.store.db import checkpoint
    from sync.push import push_due
    from sync.receive import purge_nonces

    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # one line per run drowns the log
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(push_due, "interval", args=[cfg, utcnow], seconds=cfg.sync["interval_seconds"],
                      id="sync_push", next_run_time=datetime.datetime.now(datetime.timezone.utc))
    scheduler.add_job(lambda: purge_nonces(cfg, utcnow()), "interval", minutes=10, id="purge_nonces")
    scheduler.add_job(checkpoint, "interval", seconds=1, id="wal_checkpoint")  # see checkpoints_in_background
    schedule_daily_jobs(scheduler, cfg)  # notices, overdue, lost, purge; notice retries
    from node.identity import saml_federation
    if saml_federation.configured(cfg):  # the federation's aggregate: at start, then every refresh_hours
        scheduler.add_job(saml_federation.refresh_safely, "interval", args=[cfg, utcnow],
                          hours=cfg.sections["saml"]["federation_refresh_hours"], id="federation_refresh",
                          next_run_time=datetime.datetime.now(datetime.timezone.utc))
    scheduler.start()
    return scheduler


def schedule_daily_jobs(scheduler, cfg):
    """Add the daily jobs and the notice retry to SCHEDULER (APScheduler)."""
    from apscheduler.triggers.cron import CronTrigger
    at = cfg.sections["jobs"]["daily_at"]
    if at:
        scheduler.add_job(jobs.run_daily_safely, CronTrigger(hour=at[0], minute=at[1], timezone=cfg.tz), args=[cfg],
                          id="daily_jobs", misfire_grace_time=6 * 3600)
    scheduler.add_job(notices.send_due_safely, "interval", args=[cfg, utcnow],
                      minutes=cfg.sections["smtp"]["retry_minutes"], id="notice_retry")


def start_sip2(cfg):
    """The SIP2 server for self-check kiosks when node.ini has [sip2] (docs/sip2.md), else None."""
    if cfg.sip2 is None:
        return None
    from node.cli.common import fail
    from node.sip2.server import start
    try:
        return start(cfg)
    except OSError as exc:
        fail(f"{cfg.path}: [sip2] port: cannot listen on {cfg.sip2['host']}:{cfg.sip2['port']} ({exc.strerror})")


def serve(cfg, host, port, threads=8):
    from node.store.db import checkpoints_in_background
    app = create_app(cfg)
    kiosks = start_sip2(cfg)  # before the scheduler: a port in use stops the node before anything runs
    checkpoints_in_background()  # the scheduler's job, not a desk's commit, writes the WAL back
    scheduler = start_scheduler(cfg)
    log.info("%s (%s) serving on http://%s:%d", cfg.node["name"], cfg.institution, host, port)
    try:
        waitress_serve(app, host=host, port=port, threads=threads, ident="circnode")
    finally:
        scheduler.shutdown(wait=False)
        if kiosks is not None:
            kiosks.shutdown()
