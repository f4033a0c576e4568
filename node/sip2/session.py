"""One kiosk's connection: who logged in, the patron at the kiosk now, the last answer (for 97).

``Session.answer(raw, now)`` turns one message's bytes into the bytes to send
back, or None when the connection must close.  Nothing here raises: a
damaged message is answered 96, a message before login or of a code this
server does not serve closes the connection, and a bug in a handler is
logged (without the message, which may name a patron) and closes only this
kiosk's connection.
"""
import logging

from node.domain import errors, kiosks, throttle
from node.sip2 import codec, handlers

log = logging.getLogger(__name__)


class Session:
    """The state of one kiosk connection."""

    def __init__(self, cfg, address):
        self.cfg = cfg
        self.address = address  # the kiosk's IP address: the throttle counts wrong passwords per address
        self.encoding = cfg.sections["sip2"]["encoding"]
        self.account = None  # the kiosk account's name once logged in
        self.location = ""
        self.last_response = None
        self.last_raw = None  # the message last answered, as sent: a repeat with its sequence number is not redone
        self.patron_text = None  # AA of the patron at the kiosk now; a new AA begins a new visit
        self.borrower = None

    @property
    def staff(self):
        """Who the audit log says made a kiosk's loans: sip2:NAME."""
        return kiosks.AUDIT_PREFIX + self.account

    def answer(self, raw, now):
        """The response bytes to RAW (one message without its terminator), or None to close the connection."""
        try:
            request = codec.parse(raw, self.encoding)
        except codec.Malformed as exc:
            log.info("kiosk %s at %s: damaged message (%s), asked to resend", self.account or "-", self.address, exc)
            return codec.resend_request(with_checksum=b"AZ" in raw[-6:])
        except codec.Unsupported as exc:
            log.warning("kiosk %s at %s: message %s is not served; closing", self.account or "-", self.address,
                        exc.code)
            return None
        if request.code == "97":
            return self.last_response or codec.resend_request(request.checksummed)
        if request.sequence is not None and raw == self.last_raw and self.last_response is not None:
            # The same message with the same sequence number: the kiosk did not get our answer and sent it
            # again.  It gets the same answer; nothing is done twice.
            log.info("kiosk %s at %s: message %s repeated (sequence %s), answered again", self.account or "-",
                     self.address, request.code, request.sequence)
            return self.last_response
        if request.code != "93" and self.account is None:
            log.warning("kiosk at %s sent %s before logging in; closing", self.address, request.code)
            return None
        if request.code != "93" and not kiosks.is_active(self.account):
            log.warning("kiosk %s at %s was disabled; closing", self.account, self.address)
            return None
        try:
            code, fixed, fields = self._dispatch(request, now)
        except codec.Malformed as exc:  # a fixed field of the right length but the wrong form (a date)
            log.info("kiosk %s at %s: damaged %s (%s), asked to resend", self.account or "-", self.address,
                     request.code, exc)
            return codec.resend_request(request.checksummed)
        except Exception as exc:  # a bug: this kiosk's connection ends, the others go on
            log.error("kiosk %s at %s: message %s failed (%s); closing", self.account or "-", self.address,
                      request.code, type(exc).__name__)
            return None
        response = codec.format_response(code, fixed, fields, self.encoding, request.sequence, request.checksummed)
        self.last_response, self.last_raw = response, raw
        return response

    def _dispatch(self, request, now):
        if request.code == "93":
            return self._login(request, now)
        return handlers.HANDLERS[request.code](self, request, now)

    def _login(self, request, now):
        """93 -> 94: the kiosk account's name (CN) and password (CO), throttled like staff sign-in."""
        name, password = request.get("CN"), request.get("CO")
        try:
            account = kiosks.check_login(name, password, self.address, now,
                                         throttle.SignInLimits.from_config(self.cfg))
        except (errors.Unauthorized, errors.TooManyAttempts) as exc:
            log.warning("kiosk login refused at %s: %s", self.address, exc.code)  # never the name tried
            self.account = None
            return "94", "0", []
        self.account, self.location = account.name, request.get("CP") or account.location
        self.end_visit()
        log.info("kiosk %s logged in from %s", account.name, self.address)
        return "94", "1", []

    # --- the patron at the kiosk ---

    def visit(self, patron_text):
        """The Borrower for PATRON_TEXT (AA), kept for this patron's visit; a new patron begins a new one.

        Raises PatronUnknown when AA is neither a network pass nor a patron this kiosk may lend to.
        """
        if patron_text != self.patron_text or self.borrower is None:
            self.borrower = handlers.borrower_for(self.cfg, patron_text)  # refuses before the visit changes
            self.patron_text = patron_text
        return self.borrower

    def end_visit(self):
        self.patron_text, self.borrower = None, None
