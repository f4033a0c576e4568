"""``circnode keys``: the node's key pair (node/keys.py)."""
import click

from node.cli.common import fail, pass_ctx


@click.group("keys")
def keys():
    """The node's key pair."""


@keys.command("show")
@pass_ctx
def keys_show(ctx):
    """Print the node's public key (last line), for peers' [peer:CODE] public_key."""
    from node.keys import public_key_text
    cfg = ctx.cfg
    try:
        text = public_key_text(cfg)
    except FileNotFoundError as exc:
        fail(str(exc))
    except (ValueError, TypeError):  # a damaged or foreign key file: say which, no traceback
        from node.keys import key_path
        fail(f"{key_path(cfg)}: not an unencrypted Ed25519 private key in PEM form")
    click.echo(f"# {cfg.institution} node key; peers put it in [peer:{cfg.institution}] public_key")
    click.echo(text)


COMMANDS = [keys]
