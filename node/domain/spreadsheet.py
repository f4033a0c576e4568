"""CSV files a spreadsheet opens as data: every CSV the node hands out is written here.

A cell a spreadsheet would run as a formula (OWASP, "CSV Injection": one
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a
single quote in front, which spreadsheets show as text.  A plain negative
number (``-45.00``, a credit) is not a formula and stays a number.  Patron
names, barcodes and titles reach these files from desks and from peers, so
no cell is trusted.
"""
import csv
import io
import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(\.[0-9]+)?")


def safe_cell(value):
    """VALUE as text a spreadsheet shows and never runs ('=1+1' becomes "'=1+1"; -45.00 stays)."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not _NEGATIVE_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(columns, rows):
    """CSV text (header row, comma separated, CRLF line ends) of ROWS, dicts keyed by COLUMNS, every cell safe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(name) for name in columns])
    for row in rows:
        writer.writerow([safe_cell(row.get(name, "")) for name in columns])
    return out.getvalue()
