"""``circnode items import`` and ``circnode patrons import``: this library's items and patrons from CSV."""
import functools
import sys

import click

from node.cli.common import fail, pass_ctx
from node.clock import utcnow


def _run_import(ctx, kind, path, skip_bad):
    from tqdm import tqdm

    from node.domain import imports
    cfg = ctx.open()
    importer = imports.import_patrons
    if kind == "items":
        importer = functools.partial(imports.import_items, currency=cfg.sections["billing"]["currency"],
                                     barcode_case=cfg.sections["desk"]["barcode_case"])
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


@click.group("items")
def items():
    """This library's items."""


@items.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--skip-bad", is_flag=True, help="Import the good rows even when some are bad.")
@pass_ctx
def items_import(ctx, path, skip_bad):
    """Import items from CSV: barcode,title,call_number,item_type,replacement_cost."""
    _run_import(ctx, "items", path, skip_bad)


@click.group("patrons")
def patrons():
    """This library's own patrons."""


@patrons.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--skip-bad", is_flag=True, help="Import the good rows even when some are bad.")
@pass_ctx
def patrons_import(ctx, path, skip_bad):
    """Import patrons from CSV: id,name,email[,expires_on,blocked]."""
    _run_import(ctx, "patrons", path, skip_bad)


COMMANDS = [items, patrons]
