"""Finding items and patrons at the desk from what staff type: an id or barcode, or some words.

An exact barcode or patron id is an index search (barcodes in any case as
``[desk] barcode_case`` says).  Words match inside titles and names, and a
call number from its start; those are LIKE comparisons that read the item or
patron table, fine for a person's search (capped at LIMIT rows, never on a
scan, a checkout or a sync path).
"""
from node.domain import circulation
from node.store.models import Item, Patron

LIMIT = 50


def _like(text):
    """TEXT as a LIKE operand matched literally (its % and _ escaped with backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def items(cfg, text, limit=LIMIT):
    """Items whose barcode is TEXT, then those whose title holds every word or whose call number begins with it."""
    text = " ".join(text.split())
    if not text:
        return []
    found = circulation.find_items(cfg, text)
    words = text.split()
    title = " AND ".join("title LIKE ? ESCAPE '\\'" for _ in words)
    rows = Item.all(f"SELECT * FROM item WHERE ({title}) OR call_number LIKE ? ESCAPE '\\' "
                    "ORDER BY title, owner, barcode LIMIT ?",
                    *[f"%{_like(word)}%" for word in words], f"{_like(text)}%", limit)
    seen = {item.id for item in found}
    return (found + [item for item in rows if item.id not in seen])[:limit]


def patrons(cfg, text, limit=LIMIT):
    """Patrons known here whose id is TEXT (any institution, any case), then those whose name holds every word."""
    text = " ".join(text.split())
    if not text:
        return []
    found = Patron.all("SELECT * FROM patron WHERE home_id = ? COLLATE NOCASE ORDER BY institution LIMIT ?",
                       text, limit)
    words = text.split()
    names = " AND ".join("name LIKE ? ESCAPE '\\'" for _ in words)
    rows = Patron.all(f"SELECT * FROM patron WHERE {names} ORDER BY name, institution, home_id LIMIT ?",
                      *[f"%{_like(word)}%" for word in words], limit)
    seen = {patron.id for patron in found}
    return (found + [patron for patron in rows if patron.id not in seen])[:limit]


def item_loans(item, limit=100):
    """ITEM's loans, newest first: its history as far as the privacy rules keep it.

    A returned loan loses its patron after ``[privacy] loan_retention_days``
    (node/domain/privacy.py); such a loan is still listed, with no patron.
    """
    from node.store.models import Loan
    return list(circulation.loans_query().where(Loan.item == item).limit(limit))
