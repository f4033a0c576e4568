"""``circnode saml``: the SP metadata for a federation, and the rollover of the SP keys (docs/identity.md)."""
import os

import click

from node.cli_errors import fail, refusals


@click.group("saml")
def saml_group():
    """This node as a SAML service provider: metadata and key rollover."""


@saml_group.command("metadata")
@click.option("--output", "output", metavar="FILE", help="Write the metadata to FILE instead of standard output.")
@click.pass_obj
@refusals
def saml_metadata(ctx, output):
    """Print (or write to FILE) this node's SP metadata, for a federation operator or an IdP admin."""
    from node import saml_metadata as metadata
    from node.clock import utcnow
    from node.saml_sp import sp_metadata_xml
    cfg = ctx.cfg
    if output:
        folder = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(output) or not os.path.isdir(folder):
            fail(f"{output}: not a file in an existing folder")
    text = sp_metadata_xml(cfg, utcnow())
    for missing in metadata.missing_for_federations(cfg):
        click.echo(f"circnode: note: {missing} is empty; federations require it", err=True)
    if not output:
        click.echo(text, nl=False)
        return
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        fail(f"{output}: cannot write ({exc.strerror})")
    click.echo(f"metadata of {cfg.institution}: {output}")


@saml_group.group("rollover")
def rollover():
    """Replace the SP's signing and encryption keys without a sign-in outage."""


@rollover.command("start")
@click.pass_obj
@refusals
def rollover_start(ctx):
    """Make new keys; the metadata publishes old and new, the old ones still sign and decrypt."""
    from node import saml_keys
    cfg = ctx.cfg
    made = saml_keys.rollover_start(cfg)
    for keypair in made:
        click.echo(f"new certificate: {keypair.cert}")
    click.echo(f"The metadata ({cfg.node['base_url']}/saml/metadata) now publishes old and new certificates. "
               "Give it to every IdP and federation that does not fetch it by itself, wait until all have it, "
               "then run 'circnode saml rollover finish'.")


@rollover.command("finish")
@click.pass_obj
@refusals
def rollover_finish(ctx):
    """Retire the old keys: the new ones sign and decrypt, and only they are published."""
    from node import saml_keys
    from node.clock import utcnow
    cfg = ctx.cfg
    retired = saml_keys.rollover_finish(cfg, utcnow())
    click.echo(f"old keys retired to {retired} (delete them once no IdP uses the old certificates)")
    click.echo(f"The metadata ({cfg.node['base_url']}/saml/metadata) now publishes only the new certificates.")
