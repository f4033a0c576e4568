"""``circnode staff``: staff accounts and their API tokens (every change audited)."""

import click

from node.cli.common import cli_actor, local, pass_ctx, read_password, refusals
from node.clock import utcnow


@click.group("staff")
def staff():
    """Staff accounts: add, list, passwd, disable, enable, token, tokens, revoke (all audited)."""


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
    add_staff(name, role, read_password(password_stdin), utcnow(), actor=cli_actor())
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
                   f"{local(row.created_at, cfg):16}  {local(row.last_sign_in_at, cfg):16}  {row.tokens}")
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
    ended = set_password(name, read_password(password_stdin), utcnow(), cli_actor())
    click.echo(f"staff {name}: password set, {ended} desk sessions ended")


@staff.command("disable")
@click.argument("name")
@pass_ctx
@refusals
def staff_disable(ctx, name):
    """Disable NAME: no sign-in, and its desk sessions and API tokens end at once."""
    from node.domain.staff import disable_staff
    ctx.open()
    sessions, tokens = disable_staff(name, utcnow(), cli_actor())
    click.echo(f"staff {name} disabled: {sessions} desk sessions and {tokens} API tokens ended")


@staff.command("enable")
@click.argument("name")
@pass_ctx
@refusals
def staff_enable(ctx, name):
    """Let a disabled NAME sign in again (old sessions and tokens stay ended)."""
    from node.domain.staff import enable_staff
    ctx.open()
    changed = enable_staff(name, utcnow(), cli_actor())
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
        click.echo(f"{row.id:>6}  {local(row.created_at, cfg):16}  {local(row.last_used_at, cfg)}")
    click.echo(f"{len(rows)} tokens of {name}")


@staff.command("revoke")
@click.argument("token_id")
@pass_ctx
@refusals
def staff_revoke(ctx, token_id):
    """End the API token TOKEN_ID (from circnode staff tokens NAME); others stay."""
    from node.domain.staff import revoke_token
    ctx.open()
    name = revoke_token(token_id, utcnow(), cli_actor())
    click.echo(f"token {token_id} of {name} revoked")


@staff.command("token")
@click.argument("name")
@pass_ctx
@refusals
def staff_token(ctx, name):
    """Issue a new API token for NAME (printed as the last line; shown once)."""
    from node.domain.accounts import new_token
    ctx.open()
    token = new_token(name, utcnow(), actor=cli_actor())
    click.echo(f"# API token for {name}; send it as 'Authorization: Bearer TOKEN'. It is not stored.")
    click.echo(token)


COMMANDS = [staff]
