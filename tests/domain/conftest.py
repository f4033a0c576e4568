"""Fixtures of the domain's tests: the JSON API over a module's own ``home`` node."""
import datetime

import pytest

UTC = datetime.timezone.utc


@pytest.fixture
def api(home):
    """CALL(method, path, role="desk"|"admin", **kwargs): the JSON API of the module's HOME, with a bearer token."""
    from node.domain.accounts import add_staff, new_token
    from node.web.app import create_app
    app = create_app(home, {"TESTING": True})
    now = datetime.datetime.now(UTC)
    add_staff("cashier", "desk", "correct horse", now)
    add_staff("boss", "admin", "battery staple", now)
    client = app.test_client()
    tokens = {"desk": new_token("cashier", now), "admin": new_token("boss", now)}

    def call(method, path, role="desk", **kwargs):
        return client.open(path, method=method, headers={"Authorization": f"Bearer {tokens[role]}"}, **kwargs)
    call.client = client
    return call
