"""Every refusal circnode gives, as a named exception with a stable code: the one catalogue.

The code is the contract: the JSON API returns it, the desk shows the
message, the CLI prints it.  Codes never change meaning once released.  Each
class states its ``status`` (HTTP) and ``code`` once; ``CATALOGUE`` maps each
code to its class, and tests/system/test_documented.py fails when one is missing
from docs/api.md, docs/protocol.md or (sign-in) docs/identity.md.  The
reasons a peer's event is rejected with are the protocol's own catalogue,
``sync.catalogue.REASONS``.
"""

CATALOGUE = {}  # code -> the class that refuses with it


class CircnodeError(Exception):
    """Base refusal: ``code`` is stable, ``status`` is the HTTP status."""

    status = 400
    code = "bad_request"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} states no code of its own")
        if CATALOGUE.setdefault(cls.code, cls) is not cls:
            raise TypeError(f"{cls.__name__} reuses the code {cls.code!r} of {CATALOGUE[cls.code].__name__}")

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self):
        body = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def by_code(code, default):
    """The class refusing with CODE (one another node sent), or DEFAULT when the catalogue has none."""
    return CATALOGUE.get(code, default)


class BadRequest(CircnodeError):
    """The request is malformed."""
    status, code = 400, "bad_request"


class InvalidField(CircnodeError):
    """A field is missing or of the wrong form."""
    status, code = 400, "invalid_field"


# Subclasses of BadRequest: a body the JSON parser must not be asked to hold (docs/api.md, "Errors").
class BodyTooDeep(BadRequest):
    """The JSON body nests arrays or objects too deeply."""
    status, code = 400, "body_too_deep"


class NumberOutOfRange(BadRequest):
    """A JSON number in the body is beyond what any field takes."""
    status, code = 400, "number_out_of_range"


class Unauthorized(CircnodeError):
    """No valid credentials."""
    status, code = 401, "unauthorized"


class BadSignature(CircnodeError):
    """A peer request's signature was refused."""
    status, code = 401, "bad_signature"


class Forbidden(CircnodeError):
    """Credentials valid but the role may not do this."""
    status, code = 403, "forbidden"


class NotFound(CircnodeError):
    """No such resource."""
    status, code = 404, "not_found"


class ItemNotFound(CircnodeError):
    """No item with that barcode here."""
    status, code = 404, "item_not_found"


class LoanNotFound(CircnodeError):
    """No loan with that id."""
    status, code = 404, "loan_not_found"


class PatronNotFound(CircnodeError):
    """No patron with that id here."""
    status, code = 404, "patron_not_found"


class ItemOnLoan(CircnodeError):
    """The item is already on an open loan."""
    status, code = 409, "item_on_loan"


class AmbiguousBarcode(CircnodeError):
    """Two owners' items share the barcode; say which owner."""
    status, code = 409, "ambiguous_barcode"


class TooLarge(CircnodeError):
    """The request body is too large."""
    status, code = 413, "too_large"


class ItemNotAvailable(CircnodeError):
    """The item is in transit, lost or missing."""
    status, code = 422, "item_not_available"


class ItemNotOwned(CircnodeError):
    """The item belongs to another library."""
    status, code = 422, "item_not_owned"


class ItemNotLoanable(CircnodeError):
    """Items of this type do not circulate."""
    status, code = 422, "item_not_loanable"


class NotOnLoan(CircnodeError):
    """The item is not on loan."""
    status, code = 422, "not_on_loan"


class LoanClosed(CircnodeError):
    """The loan is already closed."""
    status, code = 422, "loan_closed"


class LoanNotDisputed(CircnodeError):
    """The loan is not disputed."""
    status, code = 422, "loan_not_disputed"


class RenewalLimit(CircnodeError):
    """No renewals left under the policy."""
    status, code = 422, "renewal_limit_reached"


class RenewalTooEarly(CircnodeError):
    """A renewal today would not move the due date later; nothing was used up."""
    status, code = 409, "renewal_too_early"


class LoanLimit(CircnodeError):
    """The patron holds as many loans from this library as the policy allows."""
    status, code = 422, "loan_limit_reached"


class PatronBlocked(CircnodeError):
    """The patron is blocked."""
    status, code = 422, "patron_blocked"


class PatronExpired(CircnodeError):
    """The patron's registration has expired."""
    status, code = 422, "patron_expired"


class PatronUnknown(CircnodeError):
    """The home institution does not know the patron."""
    status, code = 422, "patron_unknown"


class PatronLimitReached(CircnodeError):
    """The patron's home institution allows no more network loans."""
    status, code = 422, "patron_limit_reached"


class OfflineLimitReached(CircnodeError):
    """The home node cannot be reached and the offline loan limit is used up."""
    status, code = 422, "offline_limit_reached"


class UnknownInstitution(CircnodeError):
    """The institution is neither this node nor a configured peer."""
    status, code = 422, "unknown_institution"


class PeerUnreachable(CircnodeError):
    """A peer node could not be reached."""
    status, code = 503, "peer_unreachable"


# A peer that answers and says no (any 4xx), or whose answer fails our signature check, is not
# offline: nothing is lent provisionally on it (docs/protocol.md section 1).
class PeerRefused(CircnodeError):
    """A peer node refused this node's signed request, or its answer failed our signature check."""
    status, code = 502, "peer_refused"


class HomeRefused(CircnodeError):
    """The patron's home node refused this node's standing check (keys, clocks or configuration between the two
    nodes); nothing is lent."""
    status, code = 502, "home_refused"


class AlreadyApplied(CircnodeError):
    """This transaction (a kiosk's "no block" checkout or checkin, by its key) was applied before: nothing changed."""
    status, code = 409, "already_applied"


class Sip2AccountExists(CircnodeError):
    """A kiosk account with that name exists already."""
    status, code = 409, "sip2_account_exists"


class Sip2AccountNotFound(CircnodeError):
    """No kiosk account has that name."""
    status, code = 404, "sip2_account_not_found"


class StaffExists(CircnodeError):
    """A staff account with that name exists already."""
    status, code = 409, "staff_exists"


class StaffNotFound(CircnodeError):
    """No staff account with that name."""
    status, code = 404, "staff_not_found"


class TokenNotFound(CircnodeError):
    """No API token with that id."""
    status, code = 404, "token_not_found"


class WeakPassword(CircnodeError):
    """The password is too easy to guess."""
    status, code = 422, "weak_password"


class TooManyAttempts(CircnodeError):
    """Too many failed logins; wait and retry."""
    status, code = 429, "too_many_attempts"


class RateLimited(CircnodeError):
    """The peer asked more often than this node answers; retry after Retry-After seconds."""
    status, code = 429, "rate_limited"


# Billing (issue 5; docs/billing.md)
class FeeNotFound(CircnodeError):
    """No fee with that id here."""
    status, code = 404, "fee_not_found"


class FeeSettled(CircnodeError):
    """The fee is already paid or waived."""
    status, code = 409, "fee_settled"


class FeeNotHome(CircnodeError):
    """Payments and waivers are recorded at the patron's home library."""
    status, code = 422, "fee_not_home"


class AmountTooLarge(CircnodeError):
    """The amount is more than what is open on the fee (or on the patron's balance)."""
    status, code = 422, "amount_too_large"


class CreditOffsetsFees(CircnodeError):
    """A credit (a refund) is paid out only beyond what the patron still owes: it settles their open fees first."""
    status, code = 422, "credit_offsets_fees"


class NoOpenFees(CircnodeError):
    """The patron owes nothing (in that currency): there is no balance to pay or waive."""
    status, code = 422, "no_open_fees"


class AmountSplitsFee(CircnodeError):
    """A waiver of part of a balance must end on a whole fee (details: the amounts below and above)."""
    status, code = 422, "amount_splits_fee"


class BatchNotFound(CircnodeError):
    """No bursar export batch with that number."""
    status, code = 404, "batch_not_found"


class ItemLost(CircnodeError):
    """The item was declared lost; the loan cannot be renewed."""
    status, code = 422, "item_lost"



# --- patron sign-in and network passes (issue 4; docs/identity.md) ---
class SignInUnavailable(CircnodeError):
    """Sign-in at this institution is not configured or not working here."""
    status, code = 503, "sign_in_unavailable"


class SamlRefused(CircnodeError):
    """The sign-in answer was refused."""
    status, code = 403, "saml_refused"


# A subclass of SignInUnavailable: every place that shows one shows it too, with its own code.
class SamlIdpNotInFederation(SignInUnavailable):
    """The institution's identity provider is not in the federation's metadata aggregate."""
    status, code = 503, "saml_idp_not_in_federation"


# Why the federation's metadata aggregate was not taken (docs/identity.md, "Federations"); the node keeps
# its last good copy.  Shown on /admin/federation and by 'circnode saml federation refresh'.
class FederationRefused(CircnodeError):
    """The federation's metadata aggregate was not taken."""
    status, code = 502, "federation_refused"


class FederationUnreachable(FederationRefused):
    """The aggregate could not be fetched or read."""
    status, code = 502, "federation_unreachable"


class FederationInvalid(FederationRefused):
    """The aggregate is not a well-formed, DTD-free SAML EntitiesDescriptor."""
    status, code = 502, "federation_invalid"


class FederationUnsigned(FederationRefused):
    """The aggregate carries no signature over the whole document."""
    status, code = 502, "federation_unsigned"


class FederationBadSignature(FederationRefused):
    """The aggregate's signature does not verify with the federation's certificate (altered, or signed by
    another key)."""
    status, code = 502, "federation_bad_signature"


class FederationWeakAlgorithm(FederationRefused):
    """The aggregate is signed or digested with an algorithm this node refuses."""
    status, code = 502, "federation_weak_algorithm"


class FederationExpired(FederationRefused):
    """The aggregate's validUntil has passed."""
    status, code = 502, "federation_expired"


class FederationNoValidUntil(FederationRefused):
    """The aggregate states no validUntil, so an old copy could be replayed for ever."""
    status, code = 502, "federation_no_valid_until"


# Subclasses of SamlRefused: one ``except`` catches them all, each keeps its own stable code.
class SamlInvalid(SamlRefused):
    """The sign-in answer is malformed or was not a success."""
    status, code = 403, "saml_invalid"


class SamlUnsigned(SamlRefused):
    """The sign-in answer carries no signed assertion."""
    status, code = 403, "saml_unsigned"


class SamlBadSignature(SamlRefused):
    """The signature does not verify with the identity provider's key from its metadata."""
    status, code = 403, "saml_bad_signature"


class SamlUnsolicited(SamlRefused):
    """The answer does not reply to a sign-in this node started."""
    status, code = 403, "saml_unsolicited"


class SamlReplay(SamlRefused):
    """This sign-in answer was used already."""
    status, code = 403, "saml_replay"


class SamlExpired(SamlRefused):
    """The sign-in answer or request has expired."""
    status, code = 403, "saml_expired"


class SamlWrongAudience(SamlRefused):
    """The assertion was made for another service."""
    status, code = 403, "saml_wrong_audience"


class SamlWrongDestination(SamlRefused):
    """The answer was addressed to another place."""
    status, code = 403, "saml_wrong_destination"


class SamlWrongInstitution(SamlRefused):
    """The answer comes from another institution than the one chosen."""
    status, code = 403, "saml_wrong_institution"


class SamlNoPatronId(SamlRefused):
    """The identity provider did not release the patron's id."""
    status, code = 403, "saml_no_patron_id"


class SamlEncryptedForAnotherKey(SamlRefused):
    """The assertion was encrypted for a key that is not this node's encryption key."""
    status, code = 403, "saml_encrypted_for_another_key"


class SamlCannotDecrypt(SamlRefused):
    """The encrypted assertion or NameID cannot be decrypted with this node's keys."""
    status, code = 403, "saml_cannot_decrypt"


class SamlWeakAlgorithm(SamlRefused):
    """The answer is signed, digested or encrypted with an algorithm this node refuses."""
    status, code = 403, "saml_weak_algorithm"


class KeyRolloverRefused(CircnodeError):
    """The SAML key rollover cannot take this step now."""
    status, code = 409, "key_rollover_refused"


class LinkUnknown(CircnodeError):
    """No such sign-in link."""
    status, code = 404, "link_unknown"


class LinkExpired(CircnodeError):
    """The sign-in link has expired."""
    status, code = 410, "link_expired"


class LinkUsed(CircnodeError):
    """The sign-in link was used already."""
    status, code = 410, "link_used"


class PassInvalid(CircnodeError):
    """The network pass is malformed or was altered."""
    status, code = 401, "pass_invalid"


class PassWrongIssuer(CircnodeError):
    """The network pass is not signed by its institution's node key."""
    status, code = 401, "pass_wrong_issuer"


class PassExpired(CircnodeError):
    """The network pass has expired."""
    status, code = 422, "pass_expired"


class PassRevoked(CircnodeError):
    """The patron was blocked after the pass was issued."""
    status, code = 422, "pass_revoked"


# --- the web layer's own refusals (node/web/app.py) ---
class CsrfFailed(Forbidden):
    """The form expired or did not come from this site."""
    status, code = 403, "csrf_failed"


class MethodNotAllowed(CircnodeError):
    """The URL does not take this HTTP method."""
    status, code = 405, "method_not_allowed"


class HttpError(CircnodeError):
    """Another HTTP error of the web server; its status is the one the server chose."""
    status, code = 400, "http_error"

    def __init__(self, message, status, **details):
        super().__init__(message, **details)
        self.status = status


class InternalError(CircnodeError):
    """Something went wrong on this node (a bug; logged)."""
    status, code = 500, "internal_error"


class RenewalRefused(CircnodeError):
    """The lending node refused the renewal and gave no code this node knows."""
    status, code = 422, "renewal_refused"
