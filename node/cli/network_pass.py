"""``circnode pass issue``: signed network passes for this node's own patrons (docs/identity.md)."""
import click

from node.cli.common import fail, pass_ctx, refusals
from node.clock import utcnow


@click.group("pass")
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


COMMANDS = [pass_group]
