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
# Subclasses of BadRequest: a body the JSON parser must not be asked to hold (docs/api.md, "Errors").
BodyTooDeep = type("BodyTooDeep", (BadRequest,), {"code": "body_too_deep",
                                                  "__doc__": "The JSON body nests arrays or objects too deeply."})
NumberOutOfRange = type("NumberOutOfRange", (BadRequest,), {
    "code": "number_out_of_range", "__doc__": "A JSON number in the body is beyond what any field takes."})
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
LoanNotDisputed = _refusal("LoanNotDisputed", 422, "loan_not_disputed", "The loan is not disputed.")
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
# A peer that answers and says no (any 4xx), or whose answer fails our signature check, is not
# offline: nothing is lent provisionally on it (docs/protocol.md section 1).
PeerRefused = _refusal("PeerRefused", 502, "peer_refused",
                       "A peer node refused this node's signed request, or its answer failed our signature check.")
HomeRefused = _refusal("HomeRefused", 502, "home_refused",
                       "The patron's home node refused this node's standing check (keys, clocks or configuration "
                       "between the two nodes); nothing is lent.")
StaffExists = _refusal("StaffExists", 409, "staff_exists", "A staff account with that name exists already.")
StaffNotFound = _refusal("StaffNotFound", 404, "staff_not_found", "No staff account with that name.")
TokenNotFound = _refusal("TokenNotFound", 404, "token_not_found", "No API token with that id.")
WeakPassword = _refusal("WeakPassword", 422, "weak_password", "The password is too easy to guess.")
TooManyAttempts = _refusal("TooManyAttempts", 429, "too_many_attempts", "Too many failed logins; wait and retry.")
RateLimited = _refusal("RateLimited", 429, "rate_limited",
                       "The peer asked more often than this node answers; retry after Retry-After seconds.")
# Billing (issue 5; docs/billing.md)
FeeNotFound = _refusal("FeeNotFound", 404, "fee_not_found", "No fee with that id here.")
FeeSettled = _refusal("FeeSettled", 409, "fee_settled", "The fee is already paid or waived.")
FeeNotHome = _refusal("FeeNotHome", 422, "fee_not_home",
                      "Payments and waivers are recorded at the patron's home library.")
AmountTooLarge = _refusal("AmountTooLarge", 422, "amount_too_large", "The amount is more than the fee's open balance.")
BatchNotFound = _refusal("BatchNotFound", 404, "batch_not_found", "No bursar export batch with that number.")
ItemLost = _refusal("ItemLost", 422, "item_lost", "The item was declared lost; the loan cannot be renewed.")

# --- patron sign-in and network passes (issue 4; docs/identity.md) ---
SignInUnavailable = _refusal("SignInUnavailable", 503, "sign_in_unavailable",
                             "Sign-in at this institution is not configured or not working here.")
SamlRefused = _refusal("SamlRefused", 403, "saml_refused", "The sign-in answer was refused.")
# A subclass of SignInUnavailable: every place that shows one shows it too, with its own code.
SamlIdpNotInFederation = type("SamlIdpNotInFederation", (SignInUnavailable,), {
    "code": "saml_idp_not_in_federation",
    "__doc__": "The institution's identity provider is not in the federation's metadata aggregate."})
# Why the federation's metadata aggregate was not taken (docs/identity.md, "Federations"); the node keeps
# its last good copy.  Shown on /admin/federation and by 'circnode saml federation refresh'.
FederationRefused = _refusal("FederationRefused", 502, "federation_refused",
                             "The federation's metadata aggregate was not taken.")


def _federation_refusal(name, code, doc):
    return type(name, (FederationRefused,), {"code": code, "__doc__": doc})


FederationUnreachable = _federation_refusal("FederationUnreachable", "federation_unreachable",
                                            "The aggregate could not be fetched or read.")
FederationInvalid = _federation_refusal("FederationInvalid", "federation_invalid",
                                        "The aggregate is not a well-formed, DTD-free SAML EntitiesDescriptor.")
FederationUnsigned = _federation_refusal("FederationUnsigned", "federation_unsigned",
                                         "The aggregate carries no signature over the whole document.")
FederationBadSignature = _federation_refusal("FederationBadSignature", "federation_bad_signature",
                                             "The aggregate's signature does not verify with the federation's "
                                             "certificate (altered, or signed by another key).")
FederationWeakAlgorithm = _federation_refusal("FederationWeakAlgorithm", "federation_weak_algorithm",
                                              "The aggregate is signed or digested with an algorithm this node "
                                              "refuses.")
FederationExpired = _federation_refusal("FederationExpired", "federation_expired",
                                        "The aggregate's validUntil has passed.")
FederationNoValidUntil = _federation_refusal("FederationNoValidUntil", "federation_no_valid_until",
                                             "The aggregate states no validUntil, so an old copy could be "
                                             "replayed for ever.")


def _saml_refusal(name, code, doc):
    # Subclasses of SamlRefused: one ``except`` catches them all, each keeps its own stable code.
    return type(name, (SamlRefused,), {"status": 403, "code": code, "__doc__": doc})


SamlInvalid = _saml_refusal("SamlInvalid", "saml_invalid", "The sign-in answer is malformed or was not a success.")
SamlUnsigned = _saml_refusal("SamlUnsigned", "saml_unsigned", "The sign-in answer carries no signed assertion.")
SamlBadSignature = _saml_refusal("SamlBadSignature", "saml_bad_signature",
                                 "The signature does not verify with the identity provider's key from its metadata.")
SamlUnsolicited = _saml_refusal("SamlUnsolicited", "saml_unsolicited",
                                "The answer does not reply to a sign-in this node started.")
SamlReplay = _saml_refusal("SamlReplay", "saml_replay", "This sign-in answer was used already.")
SamlExpired = _saml_refusal("SamlExpired", "saml_expired", "The sign-in answer or request has expired.")
SamlWrongAudience = _saml_refusal("SamlWrongAudience", "saml_wrong_audience",
                                  "The assertion was made for another service.")
SamlWrongDestination = _saml_refusal("SamlWrongDestination", "saml_wrong_destination",
                                     "The answer was addressed to another place.")
SamlWrongInstitution = _saml_refusal("SamlWrongInstitution", "saml_wrong_institution",
                                     "The answer comes from another institution than the one chosen.")
SamlNoPatronId = _saml_refusal("SamlNoPatronId", "saml_no_patron_id",
                               "The identity provider did not release the patron's id.")
SamlEncryptedForAnotherKey = _saml_refusal("SamlEncryptedForAnotherKey", "saml_encrypted_for_another_key",
                                           "The assertion was encrypted for a key that is not this node's "
                                           "encryption key.")
SamlCannotDecrypt = _saml_refusal("SamlCannotDecrypt", "saml_cannot_decrypt",
                                  "The encrypted assertion or NameID cannot be decrypted with this node's keys.")
SamlWeakAlgorithm = _saml_refusal("SamlWeakAlgorithm", "saml_weak_algorithm",
                                  "The answer is signed, digested or encrypted with an algorithm this node refuses.")
KeyRolloverRefused = _refusal("KeyRolloverRefused", 409, "key_rollover_refused",
                              "The SAML key rollover cannot take this step now.")
LinkUnknown = _refusal("LinkUnknown", 404, "link_unknown", "No such sign-in link.")
LinkExpired = _refusal("LinkExpired", 410, "link_expired", "The sign-in link has expired.")
LinkUsed = _refusal("LinkUsed", 410, "link_used", "The sign-in link was used already.")
PassInvalid = _refusal("PassInvalid", 401, "pass_invalid", "The network pass is malformed or was altered.")
PassWrongIssuer = _refusal("PassWrongIssuer", 401, "pass_wrong_issuer",
                           "The network pass is not signed by its institution's node key.")
PassExpired = _refusal("PassExpired", 422, "pass_expired", "The network pass has expired.")
PassRevoked = _refusal("PassRevoked", 422, "pass_revoked", "The patron was blocked after the pass was issued.")
