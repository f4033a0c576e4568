"""The desk's patron summary (node/domain/patron_summary.py) on a real SQLite file, time passed in."""
import datetime

from node.domain import circulation, patron_summary
from node.domain.circulation import Standing
from node.store.models import Item, Patron

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_offline_loans_count_against_the_offline_limit_and_a_pass_is_not_an_answer(opened_node):
    cfg = opened_node
    for n in range(1, 4):
        Item.create(owner="NORTH", barcode=f"N{n}", title=f"Book {n}", item_type="book", updated_at=NOW)
    circulation.checkout(cfg, "N1", "SOUTH", "s-1", Standing(True, name="Sam"), NOW)
    circulation.checkout(cfg, "N2", "SOUTH", "s-1", Standing(True, provisional=True), NOW)
    summary = patron_summary.summarise(cfg, "SOUTH", "s-1", NOW, asked_at=NOW, provisional=True)
    assert [loan.item.barcode for loan in summary.loans_here] == ["N1", "N2"]
    assert (summary.max_loans, summary.offline_max_loans) == (5, 2)
    assert summary.loans_left == 1  # one more offline loan: two allowed, one made
    assert summary.expires_on is None  # the home node keeps a visitor's registration
    later = NOW + datetime.timedelta(days=30)
    assert patron_summary.summarise(cfg, "SOUTH", "s-1", later).overdue_here == 2
    by_pass = patron_summary.summarise(cfg, "SOUTH", "s-1", NOW, asked_at=NOW, via="pass")
    assert by_pass.asked_at is None and by_pass.answer.startswith("not asked")
    assert by_pass.offline_max_loans is None and by_pass.loans_left == 3


def test_a_first_visit_has_nothing_here_and_our_own_patron_shows_expiry_and_block(opened_node):
    cfg = opened_node
    first = patron_summary.summarise(cfg, "SOUTH", "s-new", NOW, asked_at=NOW)
    assert (first.loans_here, first.fees_here, first.loans_left) == ([], {}, 5)
    Patron.create(institution="NORTH", home_id="n-1", name="Nora", expires_on=datetime.date(2027, 1, 31),
                  blocked=True, block_reason="Unpaid bill", updated_at=NOW)
    own = patron_summary.summarise(cfg, "NORTH", "n-1", NOW, asked_at=NOW)
    assert (own.name, own.expires_on, own.blocked_reason) == ("Nora", datetime.date(2027, 1, 31), "Unpaid bill")
