"""The bursar export: each fee of our patrons goes to the student-account office once.

An export takes every fee posted on our patrons' accounts that no batch holds
yet, records a numbered batch, and writes a CSV whose columns are
documented in docs/billing.md ("Bursar file"), each cell made safe to open in
a spreadsheet (node/domain/spreadsheet.py).  The file is written inside
the batch's transaction: if it cannot be written, no fee is marked exported.
A past batch can be printed again, byte for byte the same.
"""
import os
import tempfile

from peewee import JOIN

from node.domain import errors
from node.store.db import database
from node.store.models import BursarBatch, Fee, Patron
from node.domain.spreadsheet import csv_text

# (column, meaning): the contract with the student-account system.
COLUMNS = [
    ("patron_id", "The patron's id at this institution (student or staff number)."),
    ("patron_name", "The patron's name as registered here."),
    ("charge_type", "FINE, LOST_REPLACEMENT, LOST_PROCESSING or LOST_REFUND (a credit)."),
    ("amount", "Amount with a dot and two decimals; negative for a credit."),
    ("currency", "ISO 4217 code, e.g. EUR."),
    ("assessed_on", "Date the lender assessed the fee, YYYY-MM-DD, in this library's time zone."),
    ("description", "Text for the patron's statement: what, which item, which library."),
    ("lender", "Institution code of the library that lent the item."),
    ("lender_name", "Name of that library."),
    ("item_barcode", "The item's barcode at the lender."),
    ("fee_id", "Unique id of the fee in the network (the same at lender and home node)."),
    ("loan_id", "Unique id of the loan."),
    ("batch", "Number of this export batch."),
]
CHARGE_TYPES = {"fine": "FINE", "replacement": "LOST_REPLACEMENT", "processing": "LOST_PROCESSING",
                "refund": "LOST_REFUND"}
WHAT = {"fine": "Overdue fine", "replacement": "Lost item, replacement cost",
        "processing": "Lost item, processing fee", "refund": "Refund, lost item returned"}




def _rows(cfg, batch_id):
    query = (Fee.select(Fee, Patron).join(Patron, JOIN.LEFT_OUTER, on=(Fee.patron == Patron.id))
             .where(Fee.bursar_batch == batch_id).order_by(Fee.assessed_at, Fee.id))
    for fee in query:
        lender = cfg.library_name(fee.lender)
        title = f"{fee.item_title} ({fee.item_barcode})" if fee.item_title else fee.item_barcode
        yield {"patron_id": fee.patron.home_id if fee.patron_id else "",
               "patron_name": fee.patron.name if fee.patron_id else "",
               "charge_type": CHARGE_TYPES[fee.reason], "amount": f"{fee.amount:.2f}", "currency": fee.currency,
               "assessed_on": fee.assessed_at.astimezone(cfg.tz).date().isoformat(),
               "description": f"{WHAT[fee.reason]}: {title}, {lender}", "lender": fee.lender,
               "lender_name": lender, "item_barcode": fee.item_barcode, "fee_id": fee.id,
               "loan_id": fee.loan_id, "batch": str(batch_id)}


def render_csv(cfg, batch_id):
    """The CSV text of batch BATCH_ID (UTF-8, comma separated, CRLF line ends, header row, formulas defused)."""
    return csv_text([name for name, _ in COLUMNS], _rows(cfg, batch_id))


def _totals(fees):
    sums = {}
    for fee in fees:
        sums[fee.currency] = sums.get(fee.currency, 0) + fee.amount
    return "; ".join(f"{code} {amount:.2f}" for code, amount in sorted(sums.items()))


def export(cfg, now, staff="", output=None):
    """Put every not yet exported fee of our patrons in a new batch; None when there is none.

    With OUTPUT (a path, or a function of the batch number giving one), the
    CSV is written there before the batch commits.
    """
    with database.atomic():
        fees = list(Fee.select().where((Fee.home == cfg.institution) & Fee.bursar_batch.is_null()
                                       & Fee.patron.is_null(False)).order_by(Fee.assessed_at, Fee.id))
        if not fees:
            return None
        batch = BursarBatch.create(created_at=now, staff=staff or "system", fee_count=len(fees),
                                   totals=_totals(fees))
        Fee.update(bursar_batch=batch).where(Fee.id.in_([fee.id for fee in fees])).execute()
        if output:
            write_file(output(batch.id) if callable(output) else output, render_csv(cfg, batch.id))
    return batch


def write_file(path, text):
    """Write TEXT to PATH atomically (a reader never sees half a file)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".bursar-", suffix=".csv")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def get_batch(batch_id):
    batch = BursarBatch.get_or_none(id=batch_id)
    if batch is None:
        raise errors.BatchNotFound(f"No bursar batch {batch_id}.", batch=batch_id)
    return batch


def batches(limit=100):
    return list(BursarBatch.select().order_by(BursarBatch.id.desc()).limit(limit))


def default_path(cfg, batch_id):
    return os.path.join(cfg.data_dir, "bursar", f"bursar-{cfg.institution}-{batch_id:05d}.csv")
