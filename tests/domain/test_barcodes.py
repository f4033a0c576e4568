"""Barcodes found whatever their case ([desk] barcode_case): desk, API and CLI share circulation.find_items."""
import dataclasses
import datetime

import pytest

from node.domain import circulation, errors, imports
from node.domain.circulation import Standing
from node.store.db import database
from node.store.models import Item

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def with_case(cfg, case):
    return dataclasses.replace(cfg, sections={**cfg.sections, "desk": {**cfg.sections["desk"], "barcode_case": case}})


@pytest.fixture
def cfg(opened_node):
    Item.create(owner="NORTH", barcode="N00010", title="Upper", item_type="book", updated_at=NOW)
    Item.create(owner="NORTH", barcode="old-7", title="Stored before the setting", item_type="book", updated_at=NOW)
    Item.create(owner="SOUTH", barcode="S00001", title="South's", item_type="book", updated_at=NOW)
    return opened_node


def test_default_is_upper_and_a_lower_case_scan_finds_the_item(cfg):
    assert cfg.sections["desk"]["barcode_case"] == "upper"
    assert [item.title for item in circulation.find_items(cfg, "n00010")] == ["Upper"]
    assert circulation.find_item(cfg, " n00010 ").barcode == "N00010"


def test_checkout_by_a_lower_case_scan_lends_the_stored_item(cfg):
    loan = circulation.checkout(cfg, "n00010", "NORTH", "n-1", Standing(True), NOW)
    assert loan.item.barcode == "N00010"
    assert Item.get(Item.barcode == "N00010").status == "on_loan"
    result = circulation.return_item(cfg, "N00010", NOW)
    assert result.loan.id == loan.id


def test_mixed_case_barcodes_stored_earlier_are_found_in_any_case(cfg):
    assert circulation.find_item(cfg, "OLD-7").barcode == "old-7"
    with pytest.raises(errors.ItemNotOwned):  # a peer's item, found in any case, is still not ours to lend
        circulation.checkout(cfg, "s00001", "NORTH", "n-1", Standing(True), NOW)


def test_exact_matches_case_and_all(cfg):
    exact = with_case(cfg, "exact")
    assert circulation.find_items(exact, "n00010") == []
    with pytest.raises(errors.ItemNotFound):
        circulation.checkout(exact, "n00010", "NORTH", "n-1", Standing(True), NOW)
    assert circulation.find_item(exact, "N00010").title == "Upper"


def test_two_own_items_differing_only_in_case_are_refused_not_guessed(cfg):
    Item.create(owner="NORTH", barcode="n00010", title="Lower twin", item_type="book", updated_at=NOW)
    with pytest.raises(errors.AmbiguousBarcode):
        circulation.checkout(cfg, "N00010", "NORTH", "n-1", Standing(True), NOW)
    assert Item.select().where(Item.status == "on_loan").count() == 0


def test_import_stores_new_barcodes_upper_and_updates_an_item_stored_in_another_case(cfg, tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("barcode,title,call_number,item_type,replacement_cost\nn00099,New one,,book,\nOLD-7,Renamed,,book,\n")
    report = imports.import_items(str(path), "NORTH", NOW, barcode_case="upper")
    assert report.imported == 2 and not report.bad
    assert Item.get(Item.barcode == "N00099").title == "New one"
    assert Item.get(Item.barcode == "old-7").title == "Renamed"  # updated in place, not a twin "OLD-7"
    assert Item.select().where(Item.barcode == "OLD-7").count() == 0


def test_find_items_searches_the_nocase_index(cfg):
    for case, index in (("upper", "item_barcode_nocase"), ("exact", "item_barcode")):
        query = circulation.Item.select().where(
            (circulation.Item.barcode.collate("NOCASE") if case == "upper" else circulation.Item.barcode) == "x")
        sql, params = query.sql()
        plan = " ".join(row[3] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params))
        assert f"USING INDEX {index} " in plan and "SCAN" not in plan, plan
