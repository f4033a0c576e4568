"""The desk in a Flask test client: CSRF tokens, forms, sign-in and banners."""
import html as htmllib
import re


PASSWORD = "desk-password-1"


def token_of(page):
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, "the page has no CSRF token"
    return match.group(1)


def post_form(client, path, data, from_page=None):
    """POST DATA to PATH with the CSRF token of FROM_PAGE (default: PATH itself)."""
    token = token_of(client.get(from_page or path))
    return client.post(path, data={**data, "csrf_token": token})


def banners(response):
    """(kind, text) of every banner on a page."""
    html = response.get_data(as_text=True)
    return [(kind, htmllib.unescape(re.sub(r"\s+", " ", text).strip()))
            for kind, text in re.findall(r'<div class="banner (\w+)"[^>]*>(.*?)</div>', html, re.S)]


def sign_in(client, name="desk1", password=PASSWORD):
    return post_form(client, "/login", {"name": name, "password": password})
