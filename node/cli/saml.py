"""``circnode saml``: the SP metadata for a federation, the rollover of the SP keys, and the federation's
aggregate (docs/identity.md)."""
import os

import click

from node.cli.common import fail, pass_ctx, refusals


@click.group("saml")
def saml_group():
    """This node as a SAML service provider: metadata and key rollover."""


@saml_group.command("metadata")
@click.option("--output", "output", metavar="FILE", help="Write the metadata to FILE instead of standard output.")
@pass_ctx
@refusals
def saml_metadata(ctx, output):
    """Print (or write to FILE) this node's SP metadata, for a federation operator or an IdP admin."""
    from node.identity import saml_metadata as metadata
    from node.clock import utcnow
    from node.identity.saml_metadata import sp_metadata_xml
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
@pass_ctx
@refusals
def rollover_start(ctx):
    """Make new keys; the metadata publishes old and new, the old ones still sign and decrypt."""
    from node.identity import saml_keys
    cfg = ctx.cfg
    made = saml_keys.rollover_start(cfg)
    for keypair in made:
        click.echo(f"new certificate: {keypair.cert}")
    click.echo(f"The metadata ({cfg.node['base_url']}/saml/metadata) now publishes old and new certificates. "
               "Give it to every IdP and federation that does not fetch it by itself, wait until all have it, "
               "then run 'circnode saml rollover finish'.")


@rollover.command("finish")
@pass_ctx
@refusals
def rollover_finish(ctx):
    """Retire the old keys: the new ones sign and decrypt, and only they are published."""
    from node.identity import saml_keys
    from node.clock import utcnow
    cfg = ctx.cfg
    retired = saml_keys.rollover_finish(cfg, utcnow())
    click.echo(f"old keys retired to {retired} (delete them once no IdP uses the old certificates)")
    click.echo(f"The metadata ({cfg.node['base_url']}/saml/metadata) now publishes only the new certificates.")


@saml_group.group("federation")
def federation():
    """The federation's signed metadata aggregate ([saml] federation_metadata)."""


def _federation_cfg(ctx):
    from node.identity import saml_federation
    cfg = ctx.cfg
    if not saml_federation.configured(cfg):
        fail(f"{cfg.path}: [saml] federation_metadata is empty: no federation is configured")
    return cfg


@federation.command("status")
@pass_ctx
@refusals
def federation_status(ctx):
    """The copy in use, the last attempts, and each institution's IdP in it; exit 1 when sign-in is affected."""
    from node.identity import saml_federation
    from node.clock import utcnow
    cfg = _federation_cfg(ctx)
    status = saml_federation.status(cfg, utcnow())
    click.echo(f"aggregate: {status['source']}")
    click.echo(f"signer: {status['signer']}")
    click.echo(f"last attempt: {status['last_attempt_at'] or 'never'}; "
               f"last good copy taken: {status['last_success_at'] or 'never'}")
    copy = status["copy"]
    if copy:
        click.echo(f"copy in use: {copy['name'] or 'unnamed'}, {copy['entities']} entities, "
                   f"{copy['identity_providers']} identity providers, valid until {copy['valid_until']}"
                   + (" (EXPIRED)" if copy["expired"] else ""))
    else:
        click.echo("copy in use: none" + (f" ({status['copy_problem']})" if status["copy_problem"] else ""))
    error = status["last_error"]
    if error:
        kept = "keeping the last good copy" if status["keeping_last_good_copy"] else "no usable copy"
        click.echo(f"last attempt refused: {error['code']}: {error['message']} ({kept})")
    for row in status["institutions"]:
        click.echo(f"{row['institution']}: {row['entity_id']}: {row['state']}"
                   + ("" if row["state"] == "ok" else f" ({row['message']})"))
    if not copy or copy["expired"] or any(row["state"] != "ok" for row in status["institutions"]):
        raise SystemExit(1)


@federation.command("refresh")
@pass_ctx
@refusals
def federation_refresh(ctx):
    """Fetch and verify the aggregate now; a running node takes the new copy by itself."""
    from node.identity import saml_federation
    from node.clock import utcnow
    cfg = _federation_cfg(ctx)
    aggregate = saml_federation.refresh(cfg, utcnow())
    click.echo(f"federation metadata verified and kept: {len(aggregate.entities)} entities, "
               f"{len(aggregate.idps)} identity providers, valid until {aggregate.valid_until.isoformat()}")


COMMANDS = [saml_group]
