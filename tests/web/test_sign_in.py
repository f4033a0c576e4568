"""Staff sign-in throttling (issue 12, point 7): per name and per client address, behind trusted proxies only.

Each name has its own lock, so one person's typos never lock out the others
at a shared desk address; one address trying many names is still stopped.
"""
import datetime
import ipaddress

import pytest

from node import config

from node.domain import errors, throttle
from node.domain.accounts import add_staff, check_login
from node.store.models import LoginFailure, Staff
from node.web.proxies import TrustedProxies
from node.domain.throttle import SignInLimits
from tests.helpers.config import write_config
from tests.helpers.desk import PASSWORD, banners, post_form, sign_in, token_of

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DESK = "10.1.1.1"
LIMITS = SignInLimits()  # the defaults: 5 per name with a 15-minute first lock, 50 per address in 15 minutes


def minutes(n):
    return T0 + datetime.timedelta(minutes=n)


@pytest.fixture
def two_staff(app):
    add_staff("desk1", "desk", PASSWORD, T0)
    add_staff("desk2", "desk", "other-password-2", T0)


def typos(name, times, address=DESK, at=T0):
    for _ in range(times):
        with pytest.raises(errors.Unauthorized):
            check_login(name, "typo-typo", address, at, LIMITS)


def refused_as_throttled(name, password, address, at, limits=LIMITS):
    with pytest.raises(errors.TooManyAttempts) as refused:
        check_login(name, password, address, at, limits)
    return refused.value


# --- per name ---

def test_five_typos_lock_that_name_only_not_another_name_at_the_same_address(two_staff):
    typos("desk1", 5)
    refusal = refused_as_throttled("desk1", PASSWORD, DESK, minutes(1))  # the right password too
    assert "for this name" in refusal.message
    assert check_login("desk2", "other-password-2", DESK, minutes(1), LIMITS).name == "desk2"


def test_a_locked_name_is_locked_from_every_address(two_staff):
    typos("desk1", 5)
    refused_as_throttled("desk1", PASSWORD, "192.0.2.50", minutes(1))


def test_the_lock_lifts_after_account_lock_minutes_and_grows_with_each_further_typo(two_staff):
    typos("desk1", 5)
    assert refused_as_throttled("desk1", PASSWORD, DESK, minutes(14)).details["retry_after_seconds"] == 60
    typos("desk1", 1, at=minutes(16))  # the lock lifted; one more typo locks it for 30 minutes
    refused_as_throttled("desk1", PASSWORD, DESK, minutes(16 + 29))
    typos("desk1", 1, at=minutes(16 + 31))  # and the next for 60
    refused_as_throttled("desk1", PASSWORD, DESK, minutes(16 + 31 + 59))
    assert check_login("desk1", PASSWORD, DESK, minutes(16 + 31 + 61), LIMITS).name == "desk1"


def test_a_lock_never_lasts_more_than_a_day(two_staff):
    for n in range(40):  # as many typos within a day as a patient guesser gets: 15 * 2 ** 35 minutes uncapped
        throttle.record_failure("desk1", DESK, minutes(n))
    assert throttle.account_locked_until("desk1", LIMITS, minutes(40)) == minutes(39) + datetime.timedelta(days=1)


def test_a_successful_sign_in_forgets_the_names_typos(two_staff):
    typos("desk1", 4)
    check_login("desk1", PASSWORD, DESK, minutes(1), LIMITS)
    typos("desk1", 4, at=minutes(2))
    assert check_login("desk1", PASSWORD, DESK, minutes(3), LIMITS).name == "desk1"


def test_sign_in_records_when_it_happened(two_staff):
    check_login("desk1", PASSWORD, DESK, minutes(5), LIMITS)
    assert Staff.get(name="desk1").last_sign_in_at == minutes(5)


def test_an_unknown_name_is_answered_and_locked_exactly_like_a_known_one(two_staff):
    answers = []
    for name in ("desk1", "nobody-here"):
        with pytest.raises(errors.Unauthorized) as wrong:
            check_login(name, "typo-typo", DESK, T0, LIMITS)
        typos(name, 4)
        locked = refused_as_throttled(name, "typo-typo", DESK, minutes(1))
        answers.append((wrong.value.message, locked.message, locked.details))
    assert answers[0] == answers[1]


def test_a_disabled_account_with_its_right_password_is_just_a_wrong_password(two_staff):
    Staff.update(active=False).where(Staff.name == "desk1").execute()
    with pytest.raises(errors.Unauthorized) as wrong:
        check_login("desk1", PASSWORD, DESK, T0, LIMITS)
    assert wrong.value.message == "Wrong name or password."


# --- per address ---

def test_one_address_spraying_many_names_is_stopped_at_address_failures(two_staff):
    limits = SignInLimits(address_failures=10)  # each wrong password costs a scrypt; 50 of them, 15 seconds
    for n in range(10):
        with pytest.raises(errors.Unauthorized):
            check_login(f"guess-{n}", "typo-typo", DESK, minutes(n), limits)
    refusal = refused_as_throttled("desk2", "other-password-2", DESK, minutes(10), limits)
    assert "from this address" in refusal.message
    # The window slides: the address may try again once the oldest failure ages out of it.
    assert refusal.details["retry_after_seconds"] == 5 * 60
    assert check_login("desk2", "other-password-2", "10.9.9.9", minutes(10), limits).name == "desk2"
    assert check_login("desk2", "other-password-2", DESK, minutes(15.1), limits).name == "desk2"


def test_the_limits_are_the_sign_in_settings(tmp_path):
    path = write_config(str(tmp_path / "north"), extra="""
        [sign_in]
        account_failures = 2
        account_lock_minutes = 1
        address_failures = 3
        address_window_minutes = 60
        """)
    limits = SignInLimits.from_config(config.load(path))
    assert limits == SignInLimits(account_failures=2, account_lock_minutes=1, address_failures=3,
                                  address_window_minutes=60)


@pytest.mark.parametrize("line, fragment", [
    ("account_failures = 0", ">= 1"),
    ("account_lock_minutes = 2000", "<= 1440"),
    ("address_window_minutes = soon", "whole number"),
    ("address_tries = 3", "unknown key"),
])
def test_bad_sign_in_settings_name_the_key(tmp_path, line, fragment):
    path = write_config(str(tmp_path / "north"), extra=f"\n[sign_in]\n{line}\n")
    with pytest.raises(config.ConfigError) as refused:
        config.load(path)
    assert "[sign_in] " + line.split(" =")[0] in str(refused.value) and fragment in str(refused.value)


# --- the desk ---

def test_at_the_desk_one_members_typos_leave_the_others_signing_in(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    add_staff("desk2", "desk", "other-password-2", datetime.datetime.now(UTC))
    for _ in range(5):
        assert sign_in(client, password="typo-typo").status_code == 401
    locked = sign_in(client)
    assert locked.status_code == 429 and "for this name" in banners(locked)[0][1]
    assert 14 * 60 < int(locked.headers["Retry-After"]) <= 15 * 60
    other = sign_in(client, name="desk2", password="other-password-2")
    assert other.status_code == 302 and other.headers["Location"] == "/checkout"


def test_desk_limits_come_from_node_ini(tmp_path):
    from node.web.app import create_app
    from node.store.db import database
    path = write_config(str(tmp_path / "north"), extra="\n[sign_in]\naccount_failures = 2\n")
    app = create_app(config.load(path), {"TESTING": True})
    try:
        add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
        client = app.test_client()
        for _ in range(2):
            assert sign_in(client, password="typo-typo").status_code == 401
        assert sign_in(client).status_code == 429
    finally:
        database.close()


# --- the client's address behind reverse proxies ---

def _failure_addresses():
    return sorted({row.key for row in LoginFailure.select() if row.key.startswith("addr:")})


def _typo_from(client, remote, forwarded=None, name="desk1"):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token_page = client.get("/login", environ_base={"REMOTE_ADDR": remote})
    return client.post("/login", data={"name": name, "password": "typo-typo", "csrf_token": token_of(token_page)},
                       headers=headers, environ_base={"REMOTE_ADDR": remote})


def test_x_forwarded_for_is_ignored_without_trusted_proxies(client, seeded):
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    assert _typo_from(client, "127.0.0.1", forwarded="198.51.100.7").status_code == 401
    assert _failure_addresses() == ["addr:127.0.0.1"]


@pytest.fixture
def proxied(tmp_path):
    """A node behind nginx on 127.0.0.1 and a load balancer in 10.0.0.0/8; 5 typos stop an address."""
    from node.web.app import create_app
    from node.store.db import database
    path = write_config(str(tmp_path / "north"), extra="")
    with open(path) as handle:
        text = handle.read()
    with open(path, "w") as handle:
        handle.write(text.replace("timezone = Europe/Zurich", "timezone = Europe/Zurich\n"
                                  "trusted_proxies = 127.0.0.1, 10.0.0.0/8", 1) + "\n[sign_in]\naddress_failures = 5\n")
    app = create_app(config.load(path), {"TESTING": True})
    add_staff("desk1", "desk", PASSWORD, datetime.datetime.now(UTC))
    yield app.test_client()
    database.close()


def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(proxied):
    assert _typo_from(proxied, "127.0.0.1", forwarded="198.51.100.7").status_code == 401
    assert _failure_addresses() == ["addr:198.51.100.7"]


def test_a_client_cannot_frame_another_address_past_a_trusted_proxy(proxied):
    # nginx appends the address it saw; whatever the client wrote stays to the left and is not believed.
    _typo_from(proxied, "127.0.0.1", forwarded="192.0.2.99, 198.51.100.7")
    # Straight to the node's port, bypassing the proxy: the header is the client's own, so ignored.
    _typo_from(proxied, "203.0.113.5", forwarded="192.0.2.99")
    assert _failure_addresses() == ["addr:198.51.100.7", "addr:203.0.113.5"]


def test_a_spoofed_header_cannot_dodge_the_address_limit(proxied):
    for n in range(5):
        _typo_from(proxied, "203.0.113.5", forwarded=f"192.0.2.{n}", name=f"guess-{n}")
    response = post_form(proxied, "/login", {"name": "desk1", "password": PASSWORD})  # the test client's 127.0.0.1
    assert response.status_code == 302  # another address, even the proxy's own, is not held up
    spoofer = proxied.application.test_client()
    page = spoofer.get("/login", environ_base={"REMOTE_ADDR": "203.0.113.5"})
    locked = spoofer.post("/login", data={"name": "desk2", "password": "x", "csrf_token": token_of(page)},
                          headers={"X-Forwarded-For": "192.0.2.200"}, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert locked.status_code == 429 and "from this address" in banners(locked)[0][1]


TRUSTED = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"),
           ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize("remote, header, client", [
    ("127.0.0.1", "", "127.0.0.1"),  # no header: the proxy itself
    ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
    ("127.0.0.1", "198.51.100.7, 10.0.0.2", "198.51.100.7"),  # two trusted hops
    ("127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the client's own entry is not believed
    ("127.0.0.1", " 198.51.100.7 ,10.0.0.2 ", "198.51.100.7"),
    ("127.0.0.1", "not-an-address", "127.0.0.1"),  # garbage: the last trusted hop answers for it
    ("127.0.0.1", "198.51.100.7, garbage, 10.0.0.2", "10.0.0.2"),
    ("127.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),  # every hop trusted: the farthest one
    ("::1", "2001:db8::5", "2001:db8::5"),
    ("::ffff:127.0.0.1", "198.51.100.7", "198.51.100.7"),  # a dual-stack socket's IPv4
    ("203.0.113.5", "198.51.100.7", "203.0.113.5"),  # not a trusted proxy: its header is its own
    ("", "198.51.100.7", ""),
])
def test_the_client_address_walks_trusted_proxies_from_the_right(remote, header, client):
    assert TrustedProxies(None, TRUSTED).client_address(remote, header) == client


def test_trusted_proxies_must_be_addresses_or_networks(tmp_path):
    path = write_config(str(tmp_path / "north"))
    with open(path) as handle:
        text = handle.read()
    with open(path, "w") as handle:
        handle.write(text.replace("timezone = Europe/Zurich", "timezone = Europe/Zurich\n"
                                  "trusted_proxies = 127.0.0.1, nginx.local", 1))
    with pytest.raises(config.ConfigError) as refused:
        config.load(path)
    assert "[node] trusted_proxies" in str(refused.value) and "'nginx.local'" in str(refused.value)
