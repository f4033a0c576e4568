"""CSV imports of items and patrons: all rows checked first, then one transaction.

A bad row is reported with its line number and reason; nothing is imported
when any row is bad unless the caller asks to skip bad rows.
"""
import csv
import datetime
from dataclasses import dataclass, field
import functools

from node.domain import barcodes, money
from node.store.db import database
from node.store.models import Item, Patron

ITEM_COLUMNS = ["barcode", "title", "call_number", "item_type", "replacement_cost"]
PATRON_COLUMNS = ["id", "name", "email"]
PATRON_OPTIONAL = ["expires_on", "blocked"]
CHUNK = 500


class ImportFileError(Exception):
    """The file as a whole cannot be read (missing, not UTF-8, wrong header)."""


@dataclass
class ImportReport:
    rows: int = 0
    imported: int = 0
    bad: list = field(default_factory=list)  # (line number, reason)


def _read(path, required, optional=()):
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        try:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            unknown = [c for c in header if c not in required and c not in optional]
            if missing or unknown:
                raise ImportFileError(
                    f"{path}: line 1: header must be {','.join(required)}"
                    + (f" (optional: {','.join(optional)})" if optional else "")
                    + (f"; missing {','.join(missing)}" if missing else "")
                    + (f"; unknown {','.join(unknown)}" if unknown else ""))
            return [(reader.line_num, row) for row in reader]
        except UnicodeDecodeError:
            raise ImportFileError(f"{path}: not a UTF-8 text file") from None
        except csv.Error as exc:
            raise ImportFileError(f"{path}: line {reader.line_num}: {exc}") from None


def _item_row(row, currency=None, barcode_case="exact"):
    if None in row:
        raise ValueError("more columns than the header")
    barcode = barcodes.in_case(barcode_case, row.get("barcode"))
    if not barcode:
        raise ValueError("barcode is empty")
    if len(barcode) > 64 or any(ch.isspace() for ch in barcode):
        raise ValueError("barcode must be at most 64 characters without spaces")
    title = (row.get("title") or "").strip()
    if not title:
        raise ValueError("title is empty")
    cost_text = (row.get("replacement_cost") or "").strip()
    cost = None
    if cost_text:
        try:
            cost = money.parse(cost_text, currency)
        except money.AmountError as exc:
            raise ValueError(f"replacement_cost {cost_text[:40]!r}: {exc}") from None
    return {"barcode": barcode, "title": title, "call_number": (row.get("call_number") or "").strip(),
            "item_type": (row.get("item_type") or "").strip(), "replacement_cost": cost}


def _patron_row(row):
    if None in row:
        raise ValueError("more columns than the header")
    home_id = (row.get("id") or "").strip()
    if not home_id or len(home_id) > 128:
        raise ValueError("id is empty or longer than 128 characters")
    email = (row.get("email") or "").strip()
    if email and ("@" not in email or " " in email):
        raise ValueError(f"email {email!r} is not an address")
    expires = (row.get("expires_on") or "").strip()
    expires_on = None
    if expires:
        try:
            expires_on = datetime.date.fromisoformat(expires)
        except ValueError:
            raise ValueError(f"expires_on {expires!r} is not a date (YYYY-MM-DD)") from None
    blocked_text = (row.get("blocked") or "").strip().lower()
    if blocked_text not in ("", "0", "1", "yes", "no", "true", "false"):
        raise ValueError(f"blocked {blocked_text!r} must be yes or no")
    return {"home_id": home_id, "name": (row.get("name") or "").strip(), "email": email,
            "expires_on": expires_on, "blocked": blocked_text in ("1", "yes", "true")}


def _check(rows, parse, key):
    good, bad, seen = [], [], {}
    for line, row in rows:
        try:
            value = parse(row)
        except ValueError as exc:
            bad.append((line, str(exc)))
            continue
        if value[key] in seen:
            bad.append((line, f"{key} {value[key]!r} repeats line {seen[value[key]]}"))
            continue
        seen[value[key]] = line
        good.append(value)
    return good, bad


def import_items(path, owner, now, skip_bad=False, progress=None, currency=None, barcode_case="exact"):
    """Add or update this library's items from a CSV file (status is never changed); costs in CURRENCY.

    New barcodes are stored in BARCODE_CASE (``[desk] barcode_case``); a row whose
    barcode an item already has in another case updates that item, spelled as stored.
    """
    good, bad = _check(_read(path, ITEM_COLUMNS),
                       functools.partial(_item_row, currency=currency, barcode_case=barcode_case), "barcode")
    report = ImportReport(rows=len(good) + len(bad), bad=bad)
    if bad and not skip_bad:
        return report
    fields = ["title", "call_number", "item_type", "replacement_cost"]
    with database.atomic():
        for start in range(0, len(good), CHUNK):
            chunk = [dict(value, owner=owner, updated_at=now) for value in good[start:start + CHUNK]]
            if barcode_case != "exact":
                _keep_stored_spelling(owner, chunk)
            (Item.insert_many(chunk)
             .on_conflict(conflict_target=[Item.owner, Item.barcode],
                          update=_excluded(Item, fields + ["updated_at"]))
             .execute())
            if progress:
                progress(len(chunk))
    report.imported = len(good)
    return report


def _keep_stored_spelling(owner, rows):
    """Give each row the barcode its item is stored under when only case differs (one indexed query)."""
    wanted = [row["barcode"] for row in rows]
    stored = {barcode.upper(): barcode for barcode, in database.execute_sql(
        f"SELECT barcode FROM item WHERE owner = ? AND barcode COLLATE NOCASE IN ({', '.join('?' * len(wanted))})",
        [owner, *wanted]).fetchall()}
    for row in rows:
        row["barcode"] = stored.get(row["barcode"].upper(), row["barcode"])


def _excluded(model, names):
    from peewee import EXCLUDED
    return {getattr(model, name): getattr(EXCLUDED, name) for name in names}


def import_patrons(path, institution, now, skip_bad=False, progress=None):
    """Add or update this library's own patrons from a CSV file."""
    good, bad = _check(_read(path, PATRON_COLUMNS, PATRON_OPTIONAL), _patron_row, "home_id")
    report = ImportReport(rows=len(good) + len(bad), bad=bad)
    if bad and not skip_bad:
        return report
    fields = ["name", "email", "expires_on", "blocked", "updated_at"]
    with database.atomic():
        for start in range(0, len(good), CHUNK):
            chunk = [dict(value, institution=institution, updated_at=now) for value in good[start:start + CHUNK]]
            (Patron.insert_many(chunk)
             .on_conflict(conflict_target=[Patron.institution, Patron.home_id],
                          update=_excluded(Patron, fields))
             .execute())
            if progress:
                progress(len(chunk))
    report.imported = len(good)
    return report
