"""``circnode run``: the waitress server and the APScheduler jobs in one process."""
import logging

from apscheduler.schedulers.background import BackgroundScheduler
from waitress import serve as waitress_serve

from node.app import create_app
from node.clock import utcnow

log = logging.getLogger(__name__)


def start_scheduler(cfg):
    """Start the background jobs; each runs one at a time and never kills the scheduler."""
    from sync.push import push_due
    from sync.receive import purge_nonces

    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(push_due, "interval", args=[cfg, utcnow], seconds=cfg.sync["interval_seconds"],
                      id="sync_push", next_run_time=utcnow())
    scheduler.add_job(lambda: purge_nonces(cfg, utcnow()), "interval", minutes=10, id="purge_nonces")
    scheduler.start()
    return scheduler


def serve(cfg, host, port, threads=8):
    app = create_app(cfg)
    scheduler = start_scheduler(cfg)
    log.info("%s (%s) serving on http://%s:%d", cfg.node["name"], cfg.institution, host, port)
    try:
        waitress_serve(app, host=host, port=port, threads=threads, ident="circnode")
    finally:
        scheduler.shutdown(wait=False)
