"""Kiosk transcripts replayed byte for byte over a real socket, in the style of Koha's and Evergreen's SIP tests.

Each step sends exactly what a kiosk sends (with and without AY/AZ, CR or CRLF, a blank or missing
"nb due date") and checks the answer's fixed fields and tags.  The checksums here are computed by
this file's own few lines, not by the server's codec.
"""
import re

import pytest

from tests.sip2.conftest import south_pass
from tests.sip2.kiosk import BLANK, KIOSK_PASSWORD, Raw

DATE = r"\d{8} {4}\d{6}"  # YYYYMMDDZZZZHHMMSS, local time


def with_checksum(text, sequence):
    """TEXT + AYn + AZ + the four hex digits that make every byte sum to zero (mod 2**16)."""
    body = f"{text}AY{sequence}AZ".encode()
    return body + f"{(-sum(body)) & 0xFFFF:04X}".encode()


def sums_to_zero(message):
    return (sum(message[:-4]) + int(message[-4:], 16)) & 0xFFFF == 0


@pytest.fixture
def kiosk(kiosk_node):
    raw = Raw(kiosk_node.port)
    yield raw
    raw.close()


def login(kiosk, checksummed=True):
    text = f"9300CNkiosk1|CO{KIOSK_PASSWORD}|CPLOBBY|"
    answer = kiosk.ask((with_checksum(text, 0) if checksummed else text.encode()) + b"\r")
    assert answer.startswith(b"941"), answer
    return answer


def test_transcript_with_sequence_numbers_and_checksums(kiosk_node, kiosk):
    answer = login(kiosk)
    assert re.fullmatch(rb"941AY0AZ[0-9A-F]{4}", answer) and sums_to_zero(answer)

    answer = kiosk.ask(with_checksum("9900802.00", 1) + b"\r")
    assert sums_to_zero(answer)
    text = answer.decode()
    assert re.match(rf"98NYYYNY\d{{3}}003{DATE}2\.00AONORTH\|AMNorth University\|BXYYYNYYYYYNYNNNYN\|ANLOBBY\|",
                    text) or re.match(rf"98YYYYNY\d{{3}}003{DATE}2\.00AONORTH\|", text), text
    assert re.search(r"\|AY1AZ[0-9A-F]{4}$", text)

    # Patron status for one of our own patrons, by id: valid, no PIN kept.
    answer = kiosk.ask(with_checksum(f"23000{'20260302    101500'}AONORTH|AAn-100|AC|AD1234|", 2) + b"\r").decode()
    assert re.match(rf"24 {{14}}000{DATE}AONORTH\|AAn-100\|AENora North\|BLY\|CQN\|BHEUR\|BV0\.00\|AF", answer), answer
    assert "keeps no PINs" in answer

    # Checkout with a blank nb due date (18 spaces), as most kiosks send it.
    answer = kiosk.ask(with_checksum(f"11YN20260302    101600{BLANK}AONORTH|AAn-100|ABN0001|AC|", 3) + b"\r").decode()
    assert re.match(rf"121NNY{DATE}AONORTH\|AAn-100\|ABN0001\|AJBook 1\|AH{DATE}\|BK[0-9a-f-]{{36}}\|AFChecked out\.\|AY3AZ",
                    answer), answer

    # Item information: charged (04), with its due date, never who has it.
    answer = kiosk.ask(with_checksum("1720260302    101700AONORTH|ABN0001|AC|", 4) + b"\r").decode()
    assert re.match(rf"18040001{DATE}AH{DATE}\|AONORTH\|ABN0001\|AJBook 1\|AQNORTH\|", answer), answer
    assert "n-100" not in answer

    # Checkin: our own item stays here (resensitize Y, no alert).
    answer = kiosk.ask(with_checksum(f"09N20260302    101800{'20260302    101800'}APLOBBY|AONORTH|ABN0001|AC|", 5)
                       + b"\r").decode()
    assert re.match(rf"101YNN{DATE}AONORTH\|ABN0001\|AQNORTH\|AJBook 1\|AFReturned\.\|AY5AZ", answer), answer

    answer = kiosk.ask(with_checksum("3520260302    101900AONORTH|AAn-100|", 6) + b"\r").decode()
    assert re.match(rf"36Y{DATE}AONORTH\|AAn-100\|AFThank you\.\|AY6AZ", answer), answer


def test_transcript_without_error_detection_and_with_crlf(kiosk_node, kiosk):
    answer = kiosk.ask(f"9300CNkiosk1|CO{KIOSK_PASSWORD}|\r\n".encode())
    assert answer == b"941"  # answered in kind: no AY, no AZ
    answer = kiosk.ask(b"9900802.00\r\n")
    assert answer.startswith(b"98") and b"AY" not in answer and b"AZ" not in answer
    # A kiosk that leaves the blank nb due date out altogether.
    answer = kiosk.ask(b"11NN20260302    101600AONORTH|AAn-100|ABN0002|AC|\r\n").decode()
    assert answer.startswith("121NNY") and "|ABN0002|" in answer and "AY" not in answer
    answer = kiosk.ask(b"97\r\n")
    assert answer.decode().startswith("121NNY")  # 97: the last answer again


def test_visitor_with_a_network_pass_borrows_provisionally_and_the_pass_is_the_proof(kiosk_node, kiosk):
    login(kiosk, checksummed=False)
    npass = south_pass(kiosk_node)
    answer = kiosk.ask(f"6300020260302    101500  Y       AONORTH|AA{npass}|AC|BP1|BQ5|\r".encode()).decode()
    assert re.match(rf"64 {{14}}000{DATE}{'0' * 24}AONORTH\|AA{re.escape(npass)}\|AESam\|CB0005\|BLY\|CQY\|",
                    answer), answer
    assert "provisional" in answer
    answer = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AA{npass}|ABN0003|AC|\r".encode()).decode()
    assert answer.startswith("121NNY") and "(provisional: home library not asked)" in answer  # a pass: not asked
    answer = kiosk.ask(f"6300020260302    101500  Y       AONORTH|AA{npass}|AC|\r".encode()).decode()
    assert answer[45:49] == "0001" and "|AUN0003|" in answer


@pytest.mark.parametrize("patron, reason", [
    ("nobody", "Not a patron of this library"),
    ("n-blocked", "Lost card."),
    ("CNP1.bm90LWEtcGFzcw.c2ln", "network pass"),
])
def test_unknown_or_refused_patron_is_not_valid_and_told_why(kiosk_node, kiosk, patron, reason):
    login(kiosk, checksummed=False)
    answer = kiosk.ask(f"23000{'20260302    101500'}AONORTH|AA{patron}|AC|AD|\r".encode()).decode()
    assert re.match(rf"24YYYY {{10}}000{DATE}AONORTH\|AA{re.escape(patron)}\|AE\|BLN\|CQN\|", answer), answer
    assert reason in answer.split("|AF", 1)[1]
    answer = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AA{patron}|ABN0004|AC|\r".encode()).decode()
    assert answer.startswith("120NNN"), answer
    assert reason in answer.split("|AF", 1)[1]


def test_visitor_by_card_number_found_by_card_pattern(kiosk_node, kiosk):
    login(kiosk, checksummed=False)
    # S123456 matches SOUTH's card_pattern; SOUTH is down, so the loan is provisional.
    answer = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AAS123456|ABN0005|AC|\r".encode()).decode()
    assert answer.startswith("121NNY") and "provisional" in answer, answer
    answer = kiosk.ask(f"11NN20260302    101600{BLANK}AONORTH|AAX123456|ABN0006|AC|\r".encode()).decode()
    assert answer.startswith("120") and "Not a patron" in answer


def test_bad_checksum_is_answered_96_and_the_session_goes_on(kiosk_node, kiosk):
    login(kiosk)
    good = with_checksum("9900802.00", 1)
    answer = kiosk.ask(good[:-4] + b"0000\r")
    assert answer.startswith(b"96")
    assert kiosk.ask(good + b"\r").startswith(b"98")


def test_a_message_before_login_closes_the_connection(kiosk_node, kiosk):
    assert kiosk.ask(b"9900802.00\r") == b""


def test_wrong_kiosk_password_is_refused_and_throttled(kiosk_node, kiosk):
    for _ in range(5):
        assert kiosk.ask(b"9300CNkiosk1|COwrong-password|\r") == b"940"
    # The sixth try is refused even with the right password: the name is locked, as a staff name would be.
    assert kiosk.ask(f"9300CNkiosk1|CO{KIOSK_PASSWORD}|\r".encode()) == b"940"
    assert kiosk.ask(b"9900802.00\r") == b""  # still not logged in


def test_a_message_repeated_with_its_sequence_number_is_answered_again_not_redone(kiosk_node, kiosk):
    from node.store.db import database
    login(kiosk)
    checkout = with_checksum(f"11NN20260302    101600{BLANK}AONORTH|AAn-100|ABN0006|AC|", 3) + b"\r"
    first = kiosk.ask(checkout)
    assert first.startswith(b"121")
    assert kiosk.ask(checkout) == first  # the kiosk missed our answer: the same answer, no second checkout
    assert database.execute_sql("SELECT COUNT(*) FROM loan").fetchone() == (1,)
    # A new sequence number is a new message: the item is on loan to this patron now (answered anew, ok).
    again = kiosk.ask(with_checksum(f"11NN20260302    101600{BLANK}AONORTH|AAn-100|ABN0006|AC|", 4) + b"\r")
    assert again.startswith(b"121NNY") and b"Already checked out to you" in again and again != first
    assert database.execute_sql("SELECT COUNT(*), SUM(renewals) FROM loan").fetchone() == (1, 0)
    assert kiosk.ask(b"9900802.00AYx\r").startswith(b"96")  # a sequence number that is none: damaged
