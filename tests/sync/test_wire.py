"""JSON on the wire and in the event tables (sync/wire.py): JSON's own rules, text for TEXT columns."""
import pytest

from sync import wire


def test_stored_payload_is_sorted_text_and_reads_back():
    stored = wire.text({"occurred_at": "2026-03-01T10:00:00+01:00", "data": {"title": "Zürich", "n": 2}})
    assert isinstance(stored, str)  # a TEXT column: bytes would be stored as a BLOB
    assert stored == '{"data":{"n":2,"title":"Zürich"},"occurred_at":"2026-03-01T10:00:00+01:00"}'
    assert wire.loads(stored) == {"data": {"title": "Zürich", "n": 2}, "occurred_at": "2026-03-01T10:00:00+01:00"}


def test_body_with_a_byte_order_mark_is_read():
    assert wire.loads("\ufeff{\"events\": []}".encode()) == {"events": []}


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e400}', b'"\\ud800"', b"{not json",
                                  b'{"a": 1', "{\"a\": 1}".encode("utf-16")])
def test_what_is_not_json_is_a_value_error(body):
    with pytest.raises(ValueError):
        wire.loads(body)
