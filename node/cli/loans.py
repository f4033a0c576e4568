"""``circnode loans``: the loans of this node, newest first; ``circnode return``: check an item in."""
import click

from node.cli.common import cli_actor, pass_ctx, refusals
from node.clock import utcnow


@click.command("loans")
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
        lost = ""
        if loan.lost_at is not None:  # declared lost; a closed one came back after
            lost = f" {'LOST' if loan.status == 'open' else 'was-lost'}:{loan.lost_at.astimezone(cfg.tz):%Y-%m-%d}"
        flags = "".join([" OVERDUE" if loan.is_overdue(now) else "", lost,
                         " provisional" if loan.provisional else "", " disputed" if loan.disputed else ""])
        click.echo(f"{loan.id:36}  {loan.item.barcode:14} {loan.lender:8} {patron:24} "
                   f"{loan.due_at.astimezone(cfg.tz):%Y-%m-%d %H:%M} {loan.status}{flags}")
    click.echo(f"{len(rows)} loans")


@click.command("return")
@click.argument("barcode")
@click.option("--owner", help="Whose item, when several libraries use the barcode.")
@pass_ctx
@refusals
def return_item(ctx, barcode, owner):
    """Check item BARCODE in at this library, as the desk's Return does, and say what to do with it."""
    from node.domain import lending
    cfg = ctx.open()
    result = lending.give_back(cfg, barcode, utcnow(), owner=owner.upper() if owner else None, staff=cli_actor())
    click.echo(result.summary(cfg))


COMMANDS = [loans, return_item]
