"""The ``circnode`` group, the node's own commands (init, run, backup), and every other group (demo: cli/demo.py).

Each command group lives in its own module and lists its commands in ``COMMANDS``; ``main`` adds them.
"""
import os

import click

from node import config as config_module
from node.cli import (billing, demo, imports, jobs, keys, loans, log_hash, network_pass, saml, sip2, staff,
                      standing_lookups, sync_queue)
from node.cli.common import Context, fail, pass_ctx
from node.domain import errors


@click.group()
@click.option("--config", "config_path", envvar=config_module.ENV_VAR, metavar="PATH",
              help=f"The node's INI file (or set {config_module.ENV_VAR}).")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def main(ctx, config_path, verbose):
    """circnode: lend to visiting patrons and put every loan on their home record."""
    from node.logs import configure
    configure(verbose)
    import sync
    sync.connect()  # the domain's ports: outbox, home node, retention
    ctx.obj = Context(config_path)


@main.command()
@pass_ctx
def init(ctx):
    """Create the data directory, the database and the node key pair (safe to run twice)."""
    from node.keys import ensure_key, public_key_text
    cfg = ctx.open()
    path, created = ensure_key(cfg)
    click.echo(f"database: {cfg.database_path}")
    click.echo(f"node key: {path} ({'created' if created else 'kept'})")
    from node.identity import saml_keys  # the SAML service provider's signing and encryption keys
    for use, label in ((saml_keys.SIGNING, "SAML certificate"), (saml_keys.ENCRYPTION, "SAML encryption certificate")):
        keypair, made = saml_keys.ensure(cfg, use)
        click.echo(f"{label}: {keypair.cert} ({'created' if made else 'kept'})")
    click.echo(f"SAML metadata: {cfg.node['base_url']}/saml/metadata")
    click.echo(f"public key: {public_key_text(cfg)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@pass_ctx
def run(ctx, host, port, threads):
    """Serve the node with waitress and run the scheduler in the same process."""
    from node.cli.runner import serve
    from node.identity.saml_keys import ensure_encryption_on_start
    from node.identity.saml_names import sign_in_institutions, xmlsec_binary
    cfg = ctx.open()
    ensure_encryption_on_start(cfg)  # a node initialised before encryption keys existed gets one
    if sign_in_institutions(cfg):  # patron sign-in is configured: it cannot work without xmlsec1
        try:
            xmlsec_binary(cfg)
        except errors.SignInUnavailable as exc:
            fail(exc.message)
        import threading

        from node.identity.saml_sp import pysaml2
        threading.Thread(target=pysaml2, daemon=True).start()  # import it now, not on the first sign-in
    serve(cfg, host, port, threads)


@main.command()
@click.argument("target", type=click.Path(dir_okay=False))
@pass_ctx
def backup(ctx, target):
    """Copy the live database to TARGET, consistently, while the node runs."""
    import sqlite3
    cfg = ctx.cfg
    if os.path.exists(target):
        fail(f"{target}: exists already; choose a new file name")
    if not os.path.exists(cfg.database_path):
        fail(f"{cfg.database_path}: no database; run 'circnode init' first")
    try:
        # SQLite's online backup copies committed pages, WAL included, without stopping writers.
        with sqlite3.connect(cfg.database_path) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        copy.close()
    except sqlite3.Error as exc:
        fail(f"{target}: backup failed ({exc})")
    click.echo(f"backed up {cfg.database_path} to {target}")


for _module in (keys, log_hash, staff, imports, loans, jobs, billing, sync_queue, standing_lookups, network_pass,
                saml, sip2, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)


def entry():
    main(prog_name="circnode")
