"""Every refusal circnode gives, as a named exception with a stable code.

The code is the contract: the JSON API returns it, the desk shows the
message, the CLI prints it.  Codes never change meaning once released.
"""


class CircnodeError(Exception):
    """Base refusal: ``code`` is stable, ``status`` is the HTTP status."""

    status = 400
    code = "bad_request"

    def __init__(self, message, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self):
        body = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


def _refusal(name, status, code, doc):
    return type(name, (CircnodeError,), {"status": status, "code": code, "__doc__": doc})


BadRequest = _refusal("BadRequest", 400, "bad_request", "The request is malformed.")
InvalidField = _refusal("InvalidField", 400, "invalid_field", "A field is missing or of the wrong form.")
Unauthorized = _refusal("Unauthorized", 401, "unauthorized", "No valid credentials.")
BadSignature = _refusal("BadSignature", 401, "bad_signature", "A peer request's signature was refused.")
Forbidden = _refusal("Forbidden", 403, "forbidden", "Credentials valid but the role may not do this.")
NotFound = _refusal("NotFound", 404, "not_found", "No such resource.")
ItemNotFound = _refusal("ItemNotFound", 404, "item_not_found", "No item with that barcode here.")
LoanNotFound = _refusal("LoanNotFound", 404, "loan_not_found", "No loan with that id.")
PatronNotFound = _refusal("PatronNotFound", 404, "patron_not_found", "No patron with that id here.")
ItemOnLoan = _refusal("ItemOnLoan", 409, "item_on_loan", "The item is already on an open loan.")
AmbiguousBarcode = _refusal("AmbiguousBarcode", 409, "ambiguous_barcode",
                            "Two owners' items share the barcode; say which owner.")
TooLarge = _refusal("TooLarge", 413, "too_large", "The request body is too large.")
ItemNotAvailable = _refusal("ItemNotAvailable", 422, "item_not_available",
                            "The item is in transit, lost or missing.")
ItemNotOwned = _refusal("ItemNotOwned", 422, "item_not_owned", "The item belongs to another library.")
ItemNotLoanable = _refusal("ItemNotLoanable", 422, "item_not_loanable", "Items of this type do not circulate.")
NotOnLoan = _refusal("NotOnLoan", 422, "not_on_loan", "The item is not on loan.")
LoanClosed = _refusal("LoanClosed", 422, "loan_closed", "The loan is already closed.")
RenewalLimit = _refusal("RenewalLimit", 422, "renewal_limit_reached", "No renewals left under the policy.")
LoanLimit = _refusal("LoanLimit", 422, "loan_limit_reached",
                            "The patron holds as many loans from this library as the policy allows.")
PatronBlocked = _refusal("PatronBlocked", 422, "patron_blocked", "The patron is blocked.")
PatronExpired = _refusal("PatronExpired", 422, "patron_expired", "The patron's registration has expired.")
PatronUnknown = _refusal("PatronUnknown", 422, "patron_unknown", "The home institution does not know the patron.")
PatronLimitReached = _refusal("PatronLimitReached", 422, "patron_limit_reached",
                              "The patron's home institution allows no more network loans.")
OfflineLimitReached = _refusal("OfflineLimitReached", 422, "offline_limit_reached",
                               "The home node cannot be reached and the offline loan limit is used up.")
UnknownInstitution = _refusal("UnknownInstitution", 422, "unknown_institution",
                              "The institution is neither this node nor a configured peer.")
PeerUnreachable = _refusal("PeerUnreachable", 503, "peer_unreachable", "A peer node could not be reached.")
TooManyAttempts = _refusal("TooManyAttempts", 429, "too_many_attempts", "Too many failed logins; wait and retry.")
