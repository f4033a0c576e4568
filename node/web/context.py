"""What every view module shares: the node's config, the CSRF guard, and how a refusal answers JSON.

Kept apart from app.py (the factory, which imports every view module) so the
views import this and nothing imports the factory back: no import cycle.
"""
from flask import current_app, jsonify, request
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def get_config():
    """The running node's Config."""
    return current_app.extensions["circnode"]


def wants_json():
    """Whether this request is answered in JSON (the API and the health check), not a page."""
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_response(exc):
    """A CircnodeError as its JSON body and HTTP status."""
    return jsonify(exc.to_dict()), exc.status
