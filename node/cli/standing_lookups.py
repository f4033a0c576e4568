"""``circnode standing lookups``: which peer asked about which of our patrons, and the answer."""
import click

from node.cli.common import pass_ctx, refusals


@click.group("standing")
def standing_group():
    """Peers' standing questions about this node's patrons."""


@standing_group.command("lookups")
@click.option("--peer", "peer_code", metavar="CODE", help="Lookups by this peer only.")
@click.option("--patron", "home_id", metavar="ID", help="Lookups about this patron of ours only.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
@pass_ctx
@refusals
def standing_lookups(ctx, peer_code, home_id, limit):
    """Which peer asked about which of our patrons, when, and the answer (newest first)."""
    from sync import lookups
    cfg = ctx.open()
    rows = lookups.recent(peer=peer_code, home_id=home_id, limit=limit)
    click.echo("\n".join(lookups.render_text(rows, cfg.tz)))


COMMANDS = [standing_group]
