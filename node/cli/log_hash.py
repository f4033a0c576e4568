"""``circnode log-hash``: the hash that stands for a patron in this node's log (node/logs.py)."""
import click

from node.cli.common import fail, pass_ctx


@click.command("log-hash")
@click.argument("patron_id")
@pass_ctx
def log_hash(ctx, patron_id):
    """Print the hash that stands for PATRON_ID in this node's log (README, Logs)."""
    from node.logs import patron_hash
    try:
        click.echo(patron_hash(ctx.cfg, patron_id))
    except FileNotFoundError as exc:
        fail(str(exc))


COMMANDS = [log_hash]
