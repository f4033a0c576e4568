"""``circnode sip2``: the accounts self-check kiosks log in with (SIP2 93; docs/sip2.md)."""
import click

from node.cli.common import cli_actor, local, pass_ctx, read_password, refusals
from node.clock import utcnow


@click.group("sip2")
def sip2():
    """Self-check kiosks (SIP2): their accounts."""


@sip2.group("account")
def account():
    """Kiosk accounts: add, list, disable (all audited)."""


@account.command("add")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--location", default="", metavar="CODE", help="The kiosk's location code (shown in 98 as AN).")
@pass_ctx
@refusals
def account_add(ctx, name, password_stdin, location):
    """Create kiosk account NAME (password from a prompt or --password-stdin)."""
    from node.domain.kiosks import add_account
    ctx.open()
    add_account(name, read_password(password_stdin), utcnow(), location=location, actor=cli_actor())
    click.echo(f"kiosk account {name} added" + (f" (location {location})" if location else ""))


@account.command("list")
@pass_ctx
@refusals
def account_list(ctx):
    """Every kiosk account: location, state, created, last login (never passwords)."""
    from node.domain.kiosks import list_accounts
    cfg = ctx.open()
    rows = list_accounts()
    click.echo(f"{'name':24} {'location':12} {'state':9} {'created':16}  last login")
    for row in rows:
        click.echo(f"{row.name:24} {row.location or '-':12} {'active' if row.active else 'disabled':9} "
                   f"{local(row.created_at, cfg):16}  {local(row.last_login_at, cfg)}")
    click.echo(f"{len(rows)} kiosk accounts")


@account.command("disable")
@click.argument("name")
@pass_ctx
@refusals
def account_disable(ctx, name):
    """Disable kiosk NAME: no login, and its open connections close at their next message."""
    from node.domain.kiosks import disable_account
    ctx.open()
    disable_account(name, utcnow(), cli_actor())
    click.echo(f"kiosk account {name} disabled")


COMMANDS = [sip2]
