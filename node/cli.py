"""The ``circnode`` command: thin wrappers over the same domain functions as the web."""
import datetime
import functools
import logging
import os
import sys

import click

from node.clock import utcnow
from node import config as config_module
from node.domain import errors
from node.cli_errors import fail, refusals

UTC = datetime.timezone.utc
log = logging.getLogger("circnode")



class Context:
    def __init__(self, config_path):
        self.config_path = config_path
        self._cfg = None

    @property
    def cfg(self):
        if self._cfg is None:
            try:
                self._cfg = config_module.load(self.config_path)
            except config_module.ConfigError as exc:
                fail(str(exc))
        return self._cfg

    def open(self):
        """Load the config and open (and migrate) the database."""
        from node.store.db import open_database
        cfg = self.cfg
        try:
            open_database(cfg.database_path)
        except Exception as exc:  # a locked, unreadable or corrupt file: say which
            fail(f"{cfg.database_path}: cannot open the database ({exc})")
        return cfg


pass_ctx = click.make_pass_decorator(Context)


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


@main.group()
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


@main.command("log-hash")
@click.argument("patron_id")
@pass_ctx
def log_hash(ctx, patron_id):
    """Print the hash that stands for PATRON_ID in this node's log (README, Logs)."""
    from node.logs import patron_hash
    try:
        click.echo(patron_hash(ctx.cfg, patron_id))
    except FileNotFoundError as exc:
        fail(str(exc))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@pass_ctx
def run(ctx, host, port, threads):
    """Serve the node with waitress and run the scheduler in the same process."""
    from node.runner import serve
    from node.identity.saml_keys import ensure_encryption_on_start
    from node.identity.saml_sp import sign_in_institutions, xmlsec_binary
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


@main.group()
def staff():
    """Staff accounts: add, list, passwd, disable, enable, token, tokens, revoke (all audited)."""


def _cli_actor():
    """Who ran the command, for the audit log: cli:USER."""
    import getpass
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"cli:{os.getuid()}"


def _read_password(password_stdin):
    """The password from one line of stdin, or from a prompt asked twice."""
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")  # empty: the domain refuses it, naming why
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _local(value, cfg):
    return value.astimezone(cfg.tz).strftime("%Y-%m-%d %H:%M") if value else "never"


@staff.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["desk", "admin"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
@refusals
def staff_add(ctx, name, role, password_stdin):
    """Create a staff account (password from a prompt or --password-stdin)."""
    from node.domain.accounts import add_staff
    ctx.open()
    add_staff(name, role, _read_password(password_stdin), utcnow(), actor=_cli_actor())
    click.echo(f"staff {name} added ({role})")


@staff.command("list")
@pass_ctx
@refusals
def staff_list(ctx):
    """Every staff account: role, state, created, last desk sign-in, API tokens."""
    from node.domain.staff import list_staff
    cfg = ctx.open()
    rows = list_staff()
    click.echo(f"{'name':24} {'role':6} {'state':9} {'created':16}  {'last sign-in':16}  tokens")
    for row in rows:
        click.echo(f"{row.name:24} {row.role:6} {'active' if row.active else 'disabled':9} "
                   f"{_local(row.created_at, cfg):16}  {_local(row.last_sign_in_at, cfg):16}  {row.tokens}")
    click.echo(f"{len(rows)} staff")


@staff.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@pass_ctx
@refusals
def staff_passwd(ctx, name, password_stdin):
    """Set NAME's password; ends its desk sessions and lifts its sign-in lock (tokens stay)."""
    from node.domain.accounts import staff_named
    from node.domain.staff import set_password
    ctx.open()
    staff_named(name)  # an unknown name is refused before a password is asked for
    ended = set_password(name, _read_password(password_stdin), utcnow(), _cli_actor())
    click.echo(f"staff {name}: password set, {ended} desk sessions ended")


@staff.command("disable")
@click.argument("name")
@pass_ctx
@refusals
def staff_disable(ctx, name):
    """Disable NAME: no sign-in, and its desk sessions and API tokens end at once."""
    from node.domain.staff import disable_staff
    ctx.open()
    sessions, tokens = disable_staff(name, utcnow(), _cli_actor())
    click.echo(f"staff {name} disabled: {sessions} desk sessions and {tokens} API tokens ended")


@staff.command("enable")
@click.argument("name")
@pass_ctx
@refusals
def staff_enable(ctx, name):
    """Let a disabled NAME sign in again (old sessions and tokens stay ended)."""
    from node.domain.staff import enable_staff
    ctx.open()
    changed = enable_staff(name, utcnow(), _cli_actor())
    click.echo(f"staff {name} {'enabled' if changed else 'was enabled already'}")


@staff.command("tokens")
@click.argument("name")
@pass_ctx
@refusals
def staff_tokens(ctx, name):
    """NAME's API tokens: id, created, last used (the tokens themselves are never stored)."""
    from node.domain.staff import tokens_of
    cfg = ctx.open()
    rows = tokens_of(name)
    click.echo(f"{'id':>6}  {'created':16}  last used")
    for row in rows:
        click.echo(f"{row.id:>6}  {_local(row.created_at, cfg):16}  {_local(row.last_used_at, cfg)}")
    click.echo(f"{len(rows)} tokens of {name}")


@staff.command("revoke")
@click.argument("token_id")
@pass_ctx
@refusals
def staff_revoke(ctx, token_id):
    """End the API token TOKEN_ID (from circnode staff tokens NAME); others stay."""
    from node.domain.staff import revoke_token
    ctx.open()
    name = revoke_token(token_id, utcnow(), _cli_actor())
    click.echo(f"token {token_id} of {name} revoked")


@staff.command("token")
@click.argument("name")
@pass_ctx
@refusals
def staff_token(ctx, name):
    """Issue a new API token for NAME (printed as the last line; shown once)."""
    from node.domain.accounts import new_token
    ctx.open()
    token = new_token(name, utcnow(), actor=_cli_actor())
    click.echo(f"# API token for {name}; send it as 'Authorization: Bearer TOKEN'. It is not stored.")
    click.echo(token)


def _run_import(ctx, kind, path, skip_bad):
    from tqdm import tqdm

    from node.domain import imports
    cfg = ctx.open()
    importer = imports.import_patrons
    if kind == "items":
        importer = functools.partial(imports.import_items, currency=cfg.sections["billing"]["currency"])
    bar = tqdm(unit=" rows", desc=f"importing {kind}", disable=None, file=sys.stderr)
    try:
        report = importer(path, cfg.institution, utcnow(), skip_bad=skip_bad, progress=bar.update)
    except imports.ImportFileError as exc:
        bar.close()
        fail(str(exc))
    bar.close()
    for line, reason in report.bad:
        click.echo(f"{path}: line {line}: {reason}", err=True)
    if report.bad and not skip_bad:
        fail(f"{path}: {len(report.bad)} bad rows; nothing imported (fix them, or pass --skip-bad)")
    skipped = f", {len(report.bad)} bad rows skipped" if report.bad else ""
    click.echo(f"{report.imported} {kind} imported from {path}{skipped}")


@main.group()
def items():
    """This library's items."""


@items.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--skip-bad", is_flag=True, help="Import the good rows even when some are bad.")
@pass_ctx
def items_import(ctx, path, skip_bad):
    """Import items from CSV: barcode,title,call_number,item_type,replacement_cost."""
    _run_import(ctx, "items", path, skip_bad)


@main.group()
def patrons():
    """This library's own patrons."""


@patrons.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--skip-bad", is_flag=True, help="Import the good rows even when some are bad.")
@pass_ctx
def patrons_import(ctx, path, skip_bad):
    """Import patrons from CSV: id,name,email[,expires_on,blocked]."""
    _run_import(ctx, "patrons", path, skip_bad)


@main.command()
@click.option("--open", "only_open", is_flag=True, help="Open loans only.")
@click.option("--overdue", is_flag=True, help="Overdue loans only.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1, 100000))
@pass_ctx
def loans(ctx, only_open, overdue, limit):
    """List loans, newest first."""
    from node.domain.circulation import loans_query
    cfg = ctx.open()
    now = utcnow()
    query = loans_query(status="open" if only_open else None, overdue_at=now if overdue else None)
    rows = list(query.limit(limit))
    click.echo(f"{'loan':36}  {'item':14} {'lender':8} {'patron':24} {'due':16} status")
    for loan in rows:
        patron = f"{loan.patron.institution}:{loan.patron.home_id}" if loan.patron_id else "-"
        flags = "".join([" OVERDUE" if loan.is_overdue(now) else "",
                         " provisional" if loan.provisional else "", " disputed" if loan.disputed else ""])
        click.echo(f"{loan.id:36}  {loan.item.barcode:14} {loan.lender:8} {patron:24} "
                   f"{loan.due_at.astimezone(cfg.tz):%Y-%m-%d %H:%M} {loan.status}{flags}")
    click.echo(f"{len(rows)} loans")


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


@main.command()
@click.option("--dir", "base_dir", default="./demo-data", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo nodes keep their configs, databases and logs.")
@click.option("--port-base", default=8101, show_default=True, type=click.IntRange(1024, 65000),
              help="The first node listens here, the next on the port after, ...")
def demo(base_dir, port_base):
    """Start a demo network (NORTH, SOUTH, EAST) on loopback with sample data; Ctrl-C stops it."""
    from node.demo.network import run_demo
    run_demo(os.path.abspath(base_dir), port_base, echo=click.echo)


@main.command("sync")
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


@main.group("queue", invoke_without_command=True)
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
    import getpass

    from sync import queue
    ctx.open()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    queue.resolve_dispute(ctx.cfg, loan_id, note, utcnow(), staff=f"cli:{user}")
    click.echo(f"loan {loan_id}: dispute resolved")


@main.group("standing")
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


@main.group("pass")
def pass_group():
    """Network passes for this node's own patrons (docs/identity.md)."""


@pass_group.command("issue")
@click.argument("patron_id")
@click.option("--qr", "qr_path", type=click.Path(dir_okay=False),
              help="Also write the pass as a QR code image (.svg or .png).")
@pass_ctx
@refusals
def pass_issue(ctx, patron_id, qr_path):
    """Issue a signed network pass for PATRON_ID (printed as the last line)."""
    from node.domain.patron_pass import issue
    cfg = ctx.open()
    try:
        npass = issue(cfg, patron_id, utcnow())
    except FileNotFoundError as exc:
        fail(str(exc))
    if qr_path:
        import segno
        segno.make(npass.text, error="m", micro=False).save(qr_path, scale=4, border=4)
        click.echo(f"# QR code written to {qr_path}")
    click.echo(f"# network pass for {npass.name or npass.home_id} ({cfg.institution} {npass.home_id}), "
               f"valid until {npass.expires_at.astimezone(cfg.tz):%Y-%m-%d %H:%M}")
    click.echo(npass.text)


from node.billing_cli import COMMANDS as _BILLING_COMMANDS  # noqa: E402  (jobs, bursar, fees, settlement)

for _command in _BILLING_COMMANDS:
    main.add_command(_command)

from node.cli_saml import saml_group as _saml_group  # noqa: E402  (saml metadata, saml rollover)

main.add_command(_saml_group)


def entry():
    main(prog_name="circnode")


if __name__ == "__main__":
    entry()
