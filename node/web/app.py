"""The Flask application factory: one node, built from one config."""
import datetime
import logging

from flask import Flask, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

import sync
from node import config as config_module
from node.domain import errors
from node.store.db import connection, open_database
from node.domain.notices import templates_folder
from node.logs import route
from node.web.context import csrf, error_response, wants_json

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024


def create_app(cfg, test_config=None):
    """Build the node for CFG (a loaded Config or a path to node.ini)."""
    if isinstance(cfg, str):
        cfg = config_module.load(cfg)
    app = Flask("node", template_folder=templates_folder())
    secure = {"yes": True, "no": False}.get(cfg.node["secure_cookies"],
                                           cfg.node["base_url"].startswith("https://"))
    app.config.update(
        SECRET_KEY=cfg.node["secret_key"],
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_NAME=f"circnode_{cfg.institution.lower()}",
        PERMANENT_SESSION_LIFETIME=datetime.timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # the session bounds the token's life
    )
    app.json.sort_keys = False
    from node.web.sealed_session import SealedSessionInterface
    app.session_interface = SealedSessionInterface()  # the desk's kept visit is unreadable in the cookie
    if test_config:
        app.config.update(test_config)
    app.extensions["circnode"] = cfg
    open_database(cfg.database_path)
    sync.connect()  # the domain's ports: outbox, home node, retention
    csrf.init_app(app)
    from node.web import headers
    headers.init_app(app, cfg.node["base_url"])  # CSP, nosniff, Referrer-Policy; HSTS on https

    # One blueprint per URL area, in the order they were always registered.
    from node.web import (account, api, billing_api, billing_ui, desk, federation, me, network_pass, phone, privacy,
                          saml, slips, standing_lookups, sync_queue)
    from sync import receive
    api.init_app(app)  # the JSON API: Bearer tokens only, CSRF-exempt
    desk.init_app(app)
    receive.init_app(app)  # the peer endpoints: signed requests, CSRF-exempt
    sync_queue.init_app(app)  # the admin sync queue: its JSON is CSRF-exempt, its page is not
    standing_lookups.init_app(app)  # peers' standing lookups: JSON (CSRF-exempt) and page, for admins
    saml.init_app(app, csrf)  # patron sign-in: only its assertion consumer is CSRF-exempt
    phone.init_app(app)  # sign-in on the patron's phone, started at the desk
    network_pass.init_app(app)  # the desk scans a network pass
    me.init_app(app)  # /api/v1/me, the signed-in patron
    federation.init_app(app)  # the federation's aggregate, for admins
    billing_api.init_app(app)  # fees and bursar API (CSRF-exempt)
    billing_ui.init_app(app)  # cashier, ledger and bursar pages
    account.init_app(app)  # the patron's account page and renew at the lender
    privacy.init_app(app)  # /privacy
    slips.init_app(app)  # printable receipts and transit slips

    @app.before_request
    def _connect():
        connection()

    from node.web import proxies
    proxies.init_app(app, cfg.node["trusted_proxies"])  # the client's address, from trusted proxies only

    register_error_handlers(app)
    app.jinja_env.globals["node"] = cfg
    return app


def register_error_handlers(app):
    from node.web.desk import error_page

    @app.errorhandler(errors.CircnodeError)
    def _refusal(exc):
        if wants_json():
            return error_response(exc)
        return error_page(exc)

    @app.errorhandler(CSRFError)
    def _csrf(exc):
        from node.web.auth import repeat_path
        repeat = repeat_path()  # a scan: offer it again rather than lose it (the token is never waived)
        refusal = errors.CsrfFailed("The form expired or did not come from this site. Reload and try again."
                                    if repeat is None else
                                    "The form expired or did not come from this site: the scan was not made.")
        return error_page(refusal, repeat=repeat)

    @app.errorhandler(HTTPException)
    def _http(exc):
        kind = {400: errors.BadRequest, 404: errors.NotFound, 405: errors.MethodNotAllowed,
                413: errors.TooLarge}.get(exc.code)
        message = exc.description or exc.name
        refusal = kind(message) if kind else errors.HttpError(message, status=exc.code)
        response = error_response(refusal) if wants_json() else error_page(refusal)
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response = app.make_response(response)
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # RFC 9110 requires it on 405
        return response

    @app.errorhandler(Exception)
    def _crash(exc):
        log.exception("unexpected error on %s %s", request.method, route(request))  # a path may hold a patron id
        refusal = errors.InternalError("Something went wrong on this node; it was logged.")
        if wants_json():
            return error_response(refusal)
        return error_page(refusal)
