"""``circnode jobs run``: the daily jobs (notices, overdue, lost, purge) now, or as of a time."""
import datetime
import sys

import click

from node.cli.common import fail, pass_ctx
from node.clock import utcnow


def _parse_at(text, tz):
    """--at: an ISO time; without an offset it is the library's local time."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at {text!r}: expected an ISO time such as 2026-05-01T09:00 or 2026-05-01T07:00+00:00")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(datetime.timezone.utc)


@click.group("jobs")
def jobs():
    """The daily jobs: notices, overdue, lost, purge."""


@jobs.command("run")
@click.option("--at", "at", metavar="ISO_TIME", help="Run as of this time instead of now (catching up, tests).")
@click.option("--only", multiple=True, type=click.Choice(["overdue", "lost", "notices", "purge"]),
              help="Run only this step (repeatable).")
@pass_ctx
def jobs_run(ctx, at, only):
    """Run the daily jobs now, or as of --at; exit 1 when a step failed."""
    from node.domain.jobs import run_daily
    cfg = ctx.open()
    now = _parse_at(at, cfg.tz) if at else utcnow()
    results = run_daily(cfg, now, only=set(only) or None)
    failed = False
    for name, summary in results.items():
        if summary.get("error"):
            failed = True
            click.echo(f"{name}: FAILED {summary['error']}", err=True)
        else:
            click.echo(f"{name}: " + (", ".join(f"{k.replace('_', ' ')} {v}" for k, v in summary.items()) or "done"))
    if failed:
        sys.exit(1)


COMMANDS = [jobs]
