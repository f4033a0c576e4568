"""Security headers on every answer: desk, patron pages, JSON and peer APIs, errors, the demo IdP.

Every script and style is a file under ``node/static/`` (the demo IdP's under
``node/demo/static/``), so the policy allows nothing inline.  The headers are set after each request (error pages go
through the same hook), never over a header a view set for itself.
"""
from urllib.parse import urlsplit

from flask import g

# No inline scripts, no inline styles: both are files under /static/.  data: images are
# allowed for the browser's own favicon fallbacks; the QR codes are inline SVG elements.
POLICY = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self'"),
    ("img-src", "'self' data:"),
    ("connect-src", "'self'"),
    ("object-src", "'none'"),
    ("base-uri", "'none'"),
    ("form-action", "'self'"),
    ("frame-ancestors", "'none'"),
)
HSTS_SECONDS = 365 * 24 * 3600


def content_security_policy(form_action=()):
    """The policy text; FORM_ACTION adds origins a form on this answer may post to."""
    parts = []
    for name, value in POLICY:
        if name == "form-action" and form_action:
            value = " ".join((value, *form_action))
        parts.append(f"{name} {value}")
    return "; ".join(parts)


def allow_form_action(url):
    """Let this one answer's forms post to URL's origin (the IdP's answer to a library, cross-site)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc and not any(c in parts.netloc for c in " ;,'\""):
        g.setdefault("csp_form_action", []).append(f"{parts.scheme}://{parts.netloc}")


def init_app(app, base_url):
    """Send the headers on every answer of APP; HSTS only when BASE_URL is https."""
    hsts = base_url.lower().startswith("https://")

    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", content_security_policy(g.get("csp_form_action", ())))
        headers.setdefault("X-Content-Type-Options", "nosniff")
        # same-origin, not no-referrer: Flask-WTF's CSRF check over https wants a same-site Referer.
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")  # frame-ancestors for browsers without CSP 2
        if hsts:
            headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_SECONDS}")
        return response
