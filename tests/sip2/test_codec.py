"""The SIP2 codec: checksums, fixed fields, sequence numbers, and what is damaged or not served."""
import datetime
from zoneinfo import ZoneInfo

import pytest

from node.sip2 import codec

ZURICH = ZoneInfo("Europe/Zurich")


def test_checksum_matches_the_standards_worked_example():
    # The example checksum quoted in the PyPI sip2 client's documentation.
    message = b"09N20160419    12200820160419    122008APReading Room 1|AO830|AB830$28170815|AC|AY2AZ"
    assert codec.checksum(message) == "EB80"
    assert codec.checksum_ok(message + b"EB80") is True
    assert codec.checksum_ok(message + b"EB81") is False
    assert codec.checksum_ok(b"9900802.00") is None


def test_parse_reads_fixed_fields_variable_fields_and_the_sequence_number():
    request = codec.parse(b"11YN20260302    101600" + b" " * 18 + b"AONORTH|AAn-100|ABN0001|AC||AY7")
    assert request.name == "checkout" and request.sequence == "7" and not request.checksummed
    assert request.fixed == {"sc_renewal_policy": "Y", "no_block": "N", "transaction_date": "20260302    101600",
                             "nb_due_date": " " * 18}
    assert request.get("AA") == "n-100" and request.get("AB") == "N0001" and request.get("AC") == ""
    assert request.get("AD", None) is None


def test_a_value_ending_like_a_sequence_number_is_not_one():
    request = codec.parse(b"1720260302    101700AONORTH|ABXAY3")
    assert request.sequence is None and request.get("AB") == "XAY3"


@pytest.mark.parametrize("raw, why", [
    (b"9900802.00AY1AZ0000", "bad checksum"),
    (b"9900802.00AY1AZ12", "damaged checksum"),
    (b"11YN2026", "truncated"),
    (b"zz9900802.00", "no message code"),
    (b"99008\xff2.00", "not utf-8"),
    (b"1720260302    101700AONORTH|X|", "tag"),
])
def test_damaged_messages_are_malformed(raw, why):
    with pytest.raises(codec.Malformed, match=why):
        codec.parse(raw)


def test_codes_not_served_are_unsupported():
    with pytest.raises(codec.Unsupported) as refused:
        codec.parse(b"37" + b"x" * 40)
    assert refused.value.code == "37"


def test_a_response_is_answered_in_kind_and_its_fields_cannot_be_split():
    data = codec.format_response("36", "Y20260302    101900", [("AO", "NORTH"), ("AF", "a|b\rc"), ("AG", None)],
                                 sequence="4", with_checksum=True)
    assert data.startswith(b"36Y20260302    101900AONORTH|AFa b c|AY4AZ") and data.endswith(b"\r")
    assert codec.checksum_ok(data[:-1]) is True
    assert codec.format_response("94", "1", []) == b"941\r"
    assert codec.format_response("12", "", [("AJ", "x" * 400)]).count(b"x") == 255


def test_dates_are_local_unless_marked_utc():
    moment = codec.parse_date("20260302    101600", ZURICH)
    assert moment == datetime.datetime(2026, 3, 2, 9, 16, tzinfo=datetime.timezone.utc)
    assert codec.parse_date("20260302   Z101600", ZURICH).hour == 10
    assert codec.parse_date(" " * 18, ZURICH) is None
    assert codec.sip_date(moment, ZURICH) == "20260302    101600"
    with pytest.raises(codec.Malformed):
        codec.parse_date("20261302    101600", ZURICH)


@pytest.mark.parametrize("text, zone", [("00010101    000000", ZURICH),
                                        ("99991231    235959", ZoneInfo("America/New_York"))])
def test_a_date_outside_what_a_datetime_holds_is_malformed_not_an_overflow(text, zone):
    with pytest.raises(codec.Malformed):  # was OverflowError: the kiosk's connection closed instead of 96
        codec.parse_date(text, zone)


def test_cp850_kiosks_get_cp850():
    data = codec.format_response("18", "", [("AJ", "Bücher")], encoding="cp850")
    assert "Bücher".encode("cp850") in data
    assert codec.parse("1720260302    101700ABé|".encode("cp850"), "cp850").get("AB") == "é"
