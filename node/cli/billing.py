"""``circnode bursar``, ``circnode fees`` and ``circnode settlement``: billing at the desk's side.

Thin wrappers over node.domain.bursar and node.domain.billing (docs/billing.md).
"""
import json

import click

from node.cli.common import pass_ctx, refusals
from node.clock import utcnow


@click.group("bursar")
def bursar():
    """Export fees of our patrons to the student-account office."""


@bursar.command("export")
@click.option("--output", metavar="FILE", help="Write the CSV here ('-': standard output). "
              "Default: data_dir/bursar/bursar-CODE-NNNNN.csv.")
@click.option("--batch", "batch_id", type=int, metavar="N", help="Print past batch N again instead.")
@pass_ctx
@refusals
def bursar_export(ctx, output, batch_id):
    """Put every fee not yet exported in a new batch and write its CSV (docs/billing.md)."""
    from node.domain import bursar as bursar_module
    cfg = ctx.open()
    if batch_id is not None:
        batch = bursar_module.get_batch(batch_id)
        text = bursar_module.render_csv(cfg, batch.id)
        path = _emit(output, text, bursar_module.default_path(cfg, batch.id), bursar_module)
        click.echo(f"batch {batch.id} ({batch.fee_count} fees, {batch.totals}) printed again"
                   + (f" to {path}" if path else ""), err=path is None)
        return
    to_stdout = output == "-"
    target = None if to_stdout else (output or (lambda number: bursar_module.default_path(cfg, number)))
    batch = bursar_module.export(cfg, utcnow(), staff="cli", output=target)
    if batch is None:
        click.echo("nothing to export: every fee is in a batch already", err=to_stdout)
        return
    if to_stdout:
        click.echo(bursar_module.render_csv(cfg, batch.id), nl=False)
        click.echo(f"batch {batch.id}: {batch.fee_count} fees, {batch.totals}", err=True)
        return
    path = output or bursar_module.default_path(cfg, batch.id)
    click.echo(f"batch {batch.id}: {batch.fee_count} fees, {batch.totals} -> {path}")


def _emit(output, text, default, bursar_module):
    if output == "-":
        click.echo(text, nl=False)
        return None
    path = output or default
    bursar_module.write_file(path, text)
    return path


@bursar.command("batches")
@pass_ctx
def bursar_batches(ctx):
    """List past export batches, newest first."""
    from node.domain import bursar as bursar_module
    cfg = ctx.open()
    for batch in bursar_module.batches():
        click.echo(f"{batch.id:6d}  {batch.created_at.astimezone(cfg.tz):%Y-%m-%d %H:%M}  "
                   f"{batch.fee_count:5d} fees  {batch.totals}  by {batch.staff}")


@click.group("fees")
def fees():
    """Fees: list, record a payment or a waiver (at the patron's home library)."""


@fees.command("list")
@click.option("--patron", "home_id", metavar="ID", help="Fees of this patron of ours.")
@click.option("--status", type=click.Choice(["open", "paid", "waived"]))
@pass_ctx
def fees_list(ctx, home_id, status):
    """Fees of one of our patrons, or (without --patron) the fees this library assessed."""
    from node.domain import billing
    cfg = ctx.open()
    query = billing.fees_query(cfg, home_id=home_id, lender=None if home_id else cfg.institution, status=status)
    click.echo(f"{'fee':36}  {'lender':8} {'patron':20} {'barcode':12} {'title':24} {'reason':11} {'amount':>9} "
               f"{'cur':3}  {'status':6} {'paid':>9}")
    for fee in query.limit(1000):
        patron = f"{fee.patron.institution}:{fee.patron.home_id}" if fee.patron_id else "(anonymised)"
        click.echo(f"{fee.id:36}  {fee.lender:8} {_cut(patron, 20)} {_cut(fee.item_barcode, 12)} "
                   f"{_cut(fee.item_title, 24)} {fee.reason:11} {fee.amount:>9} {fee.currency:3}  {fee.status:6} "
                   f"{fee.paid:>9}")


def _cut(text, width):
    """TEXT in a column of WIDTH characters: cut with '~' when longer, padded when shorter."""
    text = " ".join(str(text).split())  # a title's newline or tab would break the table
    return (text[:width - 1] + "~" if len(text) > width else text).ljust(width)


def _fee_or_patron(fee_id, amount, home_id, amount_option):
    """FEE_ID AMOUNT (one fee) or --patron ID --amount X (the balance, oldest first), never both or half."""
    if home_id is None:
        if fee_id is None or amount is None or amount_option is not None:
            raise click.UsageError("give FEE_ID AMOUNT, or --patron ID --amount X")
        return None
    if fee_id is not None or amount is not None:
        raise click.UsageError("give FEE_ID AMOUNT, or --patron ID --amount X, not both")
    if amount_option is None:
        raise click.UsageError("--patron needs --amount X (the whole balance or part of it)")
    return home_id


def _echo_receipt(receipt):
    for payment in receipt.payments:
        fee = payment.fee
        click.echo(f"  {payment.kind:7} {payment.amount:>9} {fee.currency}  {fee.item_barcode} {fee.item_title} "
                   f"({fee.reason}, {fee.lender}; fee {fee.id} now {fee.status})")
    done = f"paid {receipt.paid}" if receipt.paid else f"waived {receipt.waived}"
    click.echo(f"patron {receipt.patron.home_id}: {done} {receipt.currency}"
               + (f" ({receipt.method})" if receipt.paid and receipt.method else "")
               + f"; {receipt.remaining} {receipt.currency} left")


@fees.command("pay")
@click.argument("fee_id", required=False)
@click.argument("amount", required=False)
@click.option("--patron", "home_id", metavar="ID", help="Pay this patron's balance, oldest fees first.")
@click.option("--amount", "amount_option", metavar="X", help="With --patron: how much (the balance or part of it).")
@click.option("--method", default="cash", show_default=True,
              help="With --patron: how the patron paid: cash, card, transfer or other (printed on the receipt).")
@click.option("--currency", metavar="CODE", help="With --patron: when the patron owes in several currencies.")
@click.option("--note", default="", help="Receipt number or other note.")
@pass_ctx
@refusals
def fees_pay(ctx, fee_id, amount, home_id, amount_option, method, currency, note):
    """Record AMOUNT (e.g. 12.50) paid on fee FEE_ID, or --amount X on patron ID's fees (oldest first);
    the lender of each fee is told."""
    from node.domain import billing
    home_id = _fee_or_patron(fee_id, amount, home_id, amount_option)
    cfg = ctx.open()
    if home_id is not None:
        _echo_receipt(billing.pay_balance(cfg, home_id, amount_option, method, utcnow(), staff="cli",
                                          currency=currency, note=note))
        return
    fee = billing.record_payment(cfg, fee_id, amount, utcnow(), staff="cli", note=note)
    click.echo(f"fee {fee.id}: paid {fee.paid} of {fee.amount} {fee.currency} ({fee.status})")


@fees.command("waive")
@click.argument("fee_id", required=False)
@click.option("--patron", "home_id", metavar="ID", help="Waive whole fees of this patron's balance, oldest first.")
@click.option("--amount", "amount_option", metavar="X", help="With --patron: how much (ends on a whole fee).")
@click.option("--currency", metavar="CODE", help="With --patron: when the patron owes in several currencies.")
@click.option("--reason", required=True, help="Why the fee is waived (sent to the lender).")
@pass_ctx
@refusals
def fees_waive(ctx, fee_id, home_id, amount_option, currency, reason):
    """Waive what is open on fee FEE_ID, or --amount X of patron ID's fees (whole fees, oldest first);
    the lender of each fee is told."""
    from node.domain import billing
    if home_id is not None:
        if fee_id is not None or amount_option is None:
            raise click.UsageError("give FEE_ID, or --patron ID --amount X")
    elif fee_id is None or amount_option is not None:
        raise click.UsageError("give FEE_ID, or --patron ID --amount X")
    cfg = ctx.open()
    if home_id is not None:
        _echo_receipt(billing.waive_balance(cfg, home_id, amount_option, reason, utcnow(), staff="cli",
                                            currency=currency))
        return
    fee = billing.record_waiver(cfg, fee_id, reason, utcnow(), staff="cli")
    click.echo(f"fee {fee.id}: waived ({fee.amount - fee.paid} {fee.currency})")


@click.command("settlement")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def settlement(ctx, as_json):
    """Per peer: what was collected for each lender and is owed on, and what is still open."""
    from node.domain import billing
    cfg = ctx.open()
    rows = billing.settlement(cfg)
    if as_json:
        click.echo(json.dumps({"institution": cfg.institution, "rows": rows}, indent=2))
        return
    click.echo(f"{'peer':8} {'we are':7} {'cur':4} {'charged':>10} {'credited':>10} {'collected':>10} "
               f"{'waived':>10} {'open':>10} {'owed to lender':>15}")
    for row in rows:
        click.echo(f"{row['peer']:8} {row['role']:7} {row['currency']:4} {row['charged']:>10} {row['credited']:>10} "
                   f"{row['collected']:>10} {row['waived']:>10} {row['open']:>10} {row['owed_to_lender']:>15}")


COMMANDS = [bursar, fees, settlement]
