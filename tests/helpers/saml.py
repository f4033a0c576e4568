"""Patron sign-in through SAML against a live NORTH and the demo IdPs (tests/identity/test_saml.py).
"""
import base64
import html
import re
import zlib
from urllib.parse import parse_qs, urlparse

import requests

from node.demo.idp import DEMO_PATRON_PASSWORD


def start(net, institution="SOUTH"):
    """A fresh browser asks NORTH to sign in at INSTITUTION: (session, request id, IdP URL)."""
    browser = requests.Session()
    answer = browser.get(net.north.url + f"/patron/login?institution={institution}", allow_redirects=False)
    assert answer.status_code == 303, answer.text
    location = answer.headers["Location"]
    query = parse_qs(urlparse(location).query)
    request_xml = zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15).decode()
    assert "Signature" in query, "the AuthnRequest must be signed (Redirect binding)"
    return browser, re.search(r' ID="([^"]+)"', request_xml).group(1), location


def idp_sign_in(browser, location, user="south-1", password=DEMO_PATRON_PASSWORD):
    """Sign in at the real IdP: (ACS URL, SAMLResponse as the IdP posts it)."""
    form = browser.get(location)
    assert form.status_code == 200, form.text
    key = re.search(r'name="key" value="([^"]+)"', form.text).group(1)
    idp = location.split("/idp/")[0]
    posted = browser.post(idp + "/idp/login", data={"key": key, "username": user, "password": password})
    assert posted.status_code == 200, posted.text
    action = html.unescape(re.search(r'action="([^"]+)"', posted.text).group(1))
    return action, html.unescape(re.search(r'name="SAMLResponse" value="([^"]+)"', posted.text).group(1))


def post_acs(net, browser, saml_response):
    return browser.post(net.north.url + "/saml/acs", data={"SAMLResponse": saml_response}, allow_redirects=False)


def me(net, browser):
    return browser.get(net.north.url + "/api/v1/me")


def refused(answer, code):
    assert answer.status_code in (400, 403), (answer.status_code, answer.text[:500])
    found = re.search(r'id="refusal-code">([^<]+)<', answer.text)
    assert found and found.group(1) == code, answer.text[:800]


def b64(xml):
    return base64.b64encode(xml.encode()).decode()


def crafted(net, request_id, idp="SOUTH", user="south-1", audience=None, destination=None, **overrides):
    """A response made by pysaml2's IdP code with IDP's settings (and OVERRIDES: lifetime, keys)."""
    from node.demo.idp import authn_response, load_settings, make_server
    settings = load_settings(net.infos[idp].idp_config)
    server = make_server(settings, **overrides)
    north = net.north.url
    args = {"in_response_to": request_id, "destination": destination or north + "/saml/acs",
            "sp_entity_id": audience or north + "/saml/metadata", "name_id_policy": None,
            "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"}
    people = {"south-1": {"uid": "south-1", "name": "South Patron 1", "email": "patron1@south.example"}}
    return authn_response(server, settings, people.get(user, {"uid": user, "name": user}), args)
