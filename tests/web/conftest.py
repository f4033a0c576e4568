"""Fixtures of the web tests."""
import pytest

from tests.helpers.browser import new_desk_page


@pytest.fixture
def page(chromium):
    """A desk's browser page at 1366x768, in a context (cookies) of its own."""
    page = new_desk_page(chromium)
    yield page
    page.context.close()
