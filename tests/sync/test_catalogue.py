"""The event catalogue is the one declaration of the protocol: docs, privacy page, both ends agree with it."""
import os
import re

import pytest

from sync import catalogue, inbox  # noqa: F401  (inbox binds every handler)
from tests.helpers import REPO



def between(text, marker):
    match = re.search(rf"<!-- catalogue:{marker} -->\n(.*?)\n<!-- /catalogue:{marker} -->", text, re.S)
    assert match, f"docs/protocol.md has no catalogue:{marker} block"
    return match.group(1)


def test_protocol_document_holds_the_catalogue_as_declared():
    with open(os.path.join(REPO, "docs", "protocol.md"), encoding="utf-8") as handle:
        text = handle.read()
    assert between(text, "events") == catalogue.markdown_table(), "run: python -m sync.catalogue"
    assert between(text, "reasons") == catalogue.reasons_table(), "run: python -m sync.catalogue"


def test_every_declared_event_is_applied_by_a_function_and_names_who_may_send_it():
    expected = {"loan.created", "loan.renewed", "loan.returned", "item.received", "loan.lost", "fee.assessed",
                "fee.paid", "fee.waived", "loan.dispute_resolved"}
    assert set(catalogue.EVENTS) == expected
    for spec in catalogue.EVENTS.values():
        assert callable(spec.apply), spec.name
        assert callable(spec.authority) and spec.authority_doc, spec.name
        assert spec.version == 1
    assert inbox.event_types() == sorted(expected)


def test_privacy_page_rows_carry_every_shared_field_of_each_event():
    rows = {name: fields for name, _, _, fields in catalogue.shared_rows()}
    assert set(rows) == set(catalogue.EVENTS)
    for spec in catalogue.EVENTS.values():
        for field in spec.fields:
            if field.shared:
                assert field.shared in rows[spec.name]
    assert "patron institution and id" in rows["loan.created"]


def test_the_send_side_builds_only_declared_and_valid_payloads():
    good = dict(loan_id="L1", lender="NORTH", due_at="2026-03-01T10:00:00+00:00", renewals=1)
    assert catalogue.build("loan.renewed", **good) == good
    with pytest.raises(TypeError):
        catalogue.build("loan.renewed", **good, patron_name="Sam")  # nothing undeclared leaves the node
    with pytest.raises(ValueError):
        catalogue.build("loan.renewed", **dict(good, due_at="tomorrow"))


class Facts:
    """A receiver (SOUTH) that holds nothing: enough for the checks that come before any lookup."""

    institution, max_fee_amount = "SOUTH", catalogue.Decimal("10000")

    def loan(self, loan_id):
        return None

    fee = payment = patron = loan

    def item_loan(self, owner, barcode):
        return None


def fee_event(**changes):
    data = {"fee_id": "F1", "loan_id": "L1", "lender": "EAST", "patron": {"institution": "SOUTH", "id": "s-1"},
            "amount": "5.00", "currency": "EUR", "reason": "fine", "assessed_at": "2026-03-01T10:00:00+00:00",
            **changes}
    return {"type": "fee.assessed", "data": data}


@pytest.mark.parametrize("changes, reason", [
    ({"amount": "NaN"}, "malformed_event"), ({"amount": "Infinity"}, "malformed_event"),
    ({"amount": 5}, "malformed_event"), ({"amount": "five"}, "malformed_event"),
    ({"lender": "NORTH"}, "not_authoritative"), ({"patron": {"institution": "NORTH", "id": "n-1"}}, "wrong_home"),
    ({"patron": {"institution": "SOUTH", "id": "s\x001"}}, "malformed_event"),
    ({"assessed_at": "2026-03-01T10:00:00"}, "malformed_event"), ({}, "loan_unknown"),
])
def test_admission_validates_then_checks_authority_before_any_handler(changes, reason):
    with pytest.raises(catalogue.EventRejected) as refused:
        catalogue.admit(Facts(), "EAST", fee_event(**changes))
    assert refused.value.code == reason


def test_an_unknown_type_is_admitted_as_unknown_not_refused():
    assert catalogue.admit(Facts(), "EAST", {"type": "loan.teleported", "data": {}}) == (None, None)


def test_every_reason_is_documented_and_used():
    source = "".join(open(os.path.join(REPO, "sync", name), encoding="utf-8").read()
                     for name in ("catalogue.py", "billing_events.py", "loan_events.py", "inbox.py"))
    for code in catalogue.REASONS:
        assert f'"{code}"' in source.replace(f'    "{code}": ', "", 1), f"{code} is declared but never given"
