"""``circnode sync`` and ``circnode queue``: push queued events now, and what waits, fails and is disputed."""
import sys

import click

from node.cli.common import cli_actor, fail, pass_ctx, refusals
from node.clock import utcnow


@click.command("sync")
@click.option("--peer", "peer_code", metavar="CODE", help="Push to this peer only.")
@pass_ctx
def sync_now(ctx, peer_code):
    """Push queued events now (ignores the back-off); non-zero exit if a peer cannot be reached."""
    from tqdm import tqdm

    from node.clock import utcnow as clock
    from sync.push import pending_count, push_peer
    cfg = ctx.open()
    if peer_code:
        peer_code = peer_code.upper()
        if peer_code not in cfg.peers:
            fail(f"{cfg.path}: no [peer:{peer_code}] section")
    failed = []
    for code in [peer_code] if peer_code else sorted(cfg.peers):
        total = pending_count(code)
        if not total:
            click.echo(f"{code}: nothing to send")
            continue
        with tqdm(total=total, unit=" events", desc=f"sync {code}", disable=None, file=sys.stderr) as bar:
            result = push_peer(cfg, code, clock, progress=bar.update)
        if result.error:
            failed.append(code)
            click.echo(f"{code}: {result.error} ({pending_count(code)} events stay queued)", err=True)
        else:
            rejected = f", {result.rejected} rejected" if result.rejected else ""
            click.echo(f"{code}: {result.delivered} delivered{rejected}")
    if failed:
        sys.exit(1)


@click.group("queue", invoke_without_command=True)
@click.option("--peer", "peer_code", metavar="CODE", help="One peer only.")
@click.option("--state", metavar="STATE", help="Events in this state: pending, failed, delivered, rejected.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@click.option("--offset", default=0, type=click.IntRange(0))
@click.option("--oldest-first", is_flag=True, help="Events in sending order instead of newest first.")
@click.pass_context
@refusals
def queue_cmd(click_ctx, peer_code, state, limit, offset, oldest_first):
    """The sync queue: per peer what waits and fails, the events, refusals, loans to watch."""
    if click_ctx.invoked_subcommand:
        return
    from sync import queue
    cfg = click_ctx.obj.open()
    view = queue.queue_view(cfg, utcnow(), peer=peer_code, state=state, limit=limit, offset=offset,
                            oldest_first=oldest_first)
    click.echo("\n".join(queue.render_text(view, cfg.tz)))


@queue_cmd.command("retry")
@click.option("--peer", "peer_code", metavar="CODE", required=True, help="The peer to push to now.")
@pass_ctx
@refusals
def queue_retry(ctx, peer_code):
    """Forget PEER's back-off and push its queued events now (exit 1 if it cannot be reached)."""
    from sync import queue
    cfg = ctx.open()
    result, queued = queue.retry_peer(cfg, peer_code, utcnow)
    if result.error:
        click.echo(f"{result.peer}: {result.error} ({queued} events stay queued)", err=True)
        sys.exit(1)
    rejected = f", {result.rejected} rejected" if result.rejected else ""
    click.echo(f"{result.peer}: {result.delivered} delivered{rejected}, {queued} queued")


@queue_cmd.command("resolve")
@click.argument("loan_id")
@click.option("--note", required=True, help="How the dispute was resolved (kept in the audit log).")
@pass_ctx
@refusals
def queue_resolve(ctx, loan_id, note):
    """Clear a disputed loan's flag with a note (audited as cli:USER)."""
    from sync import queue
    ctx.open()
    queue.resolve_dispute(ctx.cfg, loan_id, note, utcnow(), staff=cli_actor())
    click.echo(f"loan {loan_id}: dispute resolved")


COMMANDS = [sync_now, queue_cmd]
