"""The OpenAPI 3.1 description of the JSON API, served at /api/v1/openapi.json and kept as docs/openapi.json.

Written by hand from the views (node/web/api.py, node/web/billing_api.py, node/web/sync_queue.py,
node/web/standing_lookups.py, node/web/me.py, sync/receive.py), not generated from them:
it is the contract, and tests/web/test_openapi.py runs schemathesis against a live
node to hold the code to it.  ``python -m node.web.openapi > docs/openapi.json``
writes the file; a test keeps the two identical.
"""
import json

ERROR_CODES = {
    400: "bad_request, body_too_deep, number_out_of_range, invalid_field",
    401: "unauthorized (no or unknown token); pass_invalid, pass_wrong_issuer (network passes)",
    403: "forbidden (a desk token on an admin endpoint)",
    404: "not_found, item_not_found, loan_not_found, patron_not_found, fee_not_found, batch_not_found",
    409: "item_on_loan, ambiguous_barcode, fee_settled, renewal_too_early",
    413: "too_large (bodies over 2 MB)",
    422: "a refusal of the business rules: item_not_available, patron_blocked, renewal_limit_reached, "
         "no_open_fees, amount_splits_fee, ...",
    429: "rate_limited",
    502: "home_refused, peer_refused",
    503: "peer_unreachable",
}
DESCRIPTIONS = {200: "OK", 201: "Created", 400: "Malformed request", 401: "Not authenticated",
                403: "Not allowed for this role", 404: "Not found", 409: "Conflict", 413: "Body too large",
                422: "Refused by the rules", 429: "Too many requests", 502: "A peer node refused",
                503: "A peer node is unreachable"}


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema):
    return {"anyOf": [schema, {"type": "null"}]}


STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
AMOUNT = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "description": "Decimal text with two decimals."}
AMOUNT_IN = {"anyOf": [{"type": "string"}, {"type": "number"}],
             "description": "A positive amount such as \"12.50\" (or a JSON number, read as a decimal) in the "
                            "fee's currency's minor units, at most 1000000000.00."}


def _object(properties, required=None, **extra):
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required, **extra}


SCHEMAS = {
    "Error": _object({"error": _object({
        "code": {"type": "string", "description": "Stable; see docs/api.md."},
        "message": {"type": "string", "description": "For people."},
        "details": {"type": "object"}}, required=["code", "message"])}),
    "PatronRef": _object({"institution": STRING, "id": STRING}),
    "Loan": _object({
        "id": STRING, "status": {"type": "string", "enum": ["open", "closed"]}, "lender": STRING,
        "item": _object({"institution": STRING, "barcode": STRING, "title": STRING}),
        "patron": _nullable(_ref("PatronRef")), "checked_out_at": TIME, "due_at": TIME, "renewals": INTEGER,
        "returned_at": _nullable(TIME), "returned_at_institution": _nullable(STRING), "provisional": BOOLEAN,
        "disputed": BOOLEAN, "dispute_reason": _nullable(STRING), "made_offline": BOOLEAN,
        "lost": {"type": "boolean", "description": "The item was declared lost on this loan (a closed loan: "
                                                   "it came back after)."},
        "lost_at": _nullable(TIME),
        "overdue": {"type": "boolean", "description": "In answers that know the time: checkouts, loan lists."}},
        required=["id", "status", "lender", "item", "patron", "checked_out_at", "due_at", "renewals",
                  "returned_at", "returned_at_institution", "provisional", "disputed", "dispute_reason",
                  "made_offline", "lost", "lost_at"]),
    "Item": _object({
        "institution": STRING, "barcode": STRING, "title": STRING, "call_number": STRING, "item_type": STRING,
        "replacement_cost": _nullable(AMOUNT),
        "status": {"type": "string", "enum": ["available", "on_loan", "in_transit", "lost", "missing"]}}),
    "Fee": _object({
        "id": STRING, "lender": STRING, "home": STRING, "loan_id": _nullable(STRING),
        "patron": _nullable(_ref("PatronRef")), "item": _object({"barcode": STRING, "title": STRING}),
        "amount": AMOUNT, "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}, "reason": STRING,
        "refund_of": _nullable(STRING), "status": {"type": "string", "enum": ["open", "paid", "waived"]},
        "paid": AMOUNT, "outstanding": AMOUNT, "assessed_at": TIME, "settled_at": _nullable(TIME),
        "bursar_batch": _nullable(INTEGER)}),
    "Payment": _object({"id": STRING, "kind": {"type": "string", "enum": ["payment", "waiver"]}, "amount": AMOUNT,
                        "at": TIME, "staff": STRING, "note": STRING}),
    "Receipt": _object({
        "patron": _ref("PatronRef"), "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}, "paid": AMOUNT,
        "waived": AMOUNT, "remaining": AMOUNT, "method": STRING,
        "payments": {"type": "array", "items": _object({
            "id": STRING, "fee_id": STRING, "kind": {"type": "string", "enum": ["payment", "waiver"]},
            "amount": AMOUNT, "lender": STRING, "item": _object({"barcode": STRING, "title": STRING}), "at": TIME,
            "staff": STRING, "note": STRING, "method": STRING})},
        "receipt_url": {"type": "string", "description": "The printable payment receipt (a desk page)."}}),
    "Batch": _object({"id": INTEGER, "created_at": TIME, "staff": STRING, "fee_count": INTEGER, "totals": STRING,
                      "csv": STRING}),
}


_AMOUNTS = {"type": "array", "items": _object({"reason": STRING, "amount": AMOUNT})}
LOST_RETURN = {**_object({
    "declared_at": TIME, "lender": STRING,
    "refund_on_return": _nullable({"type": "string", "enum": ["none", "replacement", "all"]}),
    "refunded": _nullable(_AMOUNTS), "kept": _nullable(_AMOUNTS),
    "credit": _nullable(_object({"fee_id": STRING, "amount": AMOUNT})), "currency": _nullable(STRING),
    "message": STRING}),
    "description": "The item had been declared lost: what its return did to the loan's fees (null fields: "
                   "another library lent it and decides)."}


def _answer(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses):
    return {str(status): {"description": f"{DESCRIPTIONS[status]}: {ERROR_CODES[status]}",
                          "content": {"application/json": {"schema": _ref("Error")}}} for status in statuses}


def _path(name, description):
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}


def _query(name, description, schema=None):
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


def _paging(default, most):
    return [_query("limit", f"How many (1 to {most}, default {default}).",
                   {"type": "integer", "minimum": 1, "maximum": most}),
            _query("offset", "How many to skip.", {"type": "integer", "minimum": 0, "maximum": 10 ** 9})]


def _body(properties, required, description=None):
    body = {"required": True, "content": {"application/json": {"schema": _object(properties, required=required)}}}
    if description:
        body["description"] = description
    return body


def _operation(summary, role, responses, parameters=(), body=None, tag="circulation"):
    """One operation: who may call it (desk, admin, patron, peer or None), what it takes and answers."""
    security = {"desk": [{"staffToken": []}], "admin": [{"staffToken": []}], "patron": [{"patronSession": []}],
                "peer": [{"peerSignature": []}], None: []}[role]
    operation = {"summary": summary, "tags": [tag], "security": security}
    if role in ("desk", "admin"):
        operation["description"] = f"Role: {role}" + (" (admin includes desk)." if role == "desk" else ".")
    if parameters:
        operation["parameters"] = list(parameters)
    if body:
        operation["requestBody"] = body
    operation["responses"] = responses
    return operation


LOAN_ID = _path("loan_id", "The loan's id.")
FEE_ID = _path("fee_id", "The fee's id.")
BARCODE = _path("barcode", "The item's barcode.")
STAFF_WRITE = (400, 401, 404, 413, 422)


def _paths():
    loan, item, fee = _ref("Loan"), _ref("Item"), _ref("Fee")
    return {
        "/healthz": {"get": _operation("Is the node up (and its database readable)?", None, {
            "200": _answer(_object({"status": {"const": "ok"}, "institution": STRING, "name": STRING,
                                    "api_version": {"const": 1}}))}, tag="node")},
        "/api/v1/openapi.json": {"get": _operation("This description.", None, {
            "200": _answer({"type": "object"})}, tag="node")},
        "/api/v1/checkouts": {"post": _operation(
            "Lend an item to a visiting or own patron (asks the home node, or trusts a network pass).", "desk",
            {"201": _answer({"allOf": [loan, _object({"visit": {
                "type": "string", "description": "When the home node said yes: send it with this visit's next "
                "checkouts, which then lend on that answer while it is recent (docs/api.md)."}}, required=[])]},
                "The new loan"), **_errors(400, 401, 404, 409, 413, 422, 502, 503)},
            body=_body({"item_barcode": {"type": "string", "maxLength": 200},
                        "visit": {"type": "string", "maxLength": 4000,
                                  "description": "The 'visit' of this visit's previous checkout answer."},
                        "patron": _object({"institution": {"type": "string", "maxLength": 32},
                                           "id": {"type": "string", "maxLength": 200}}),
                        "pass": {"type": "string", "maxLength": 2000,
                                 "description": "A network pass (docs/identity.md), exactly as issued."}},
                       ["item_barcode"], "Send `patron` or `pass` (or both, then they must agree)."))},
        "/api/v1/returns": {"post": _operation(
            "Return an item here (closes its loan; sends it home when it belongs elsewhere).", "desk",
            {"200": _answer(_object({"loan": _nullable(loan), "item": item, "received": BOOLEAN,
                                     "transit": _nullable(_object({"to": STRING, "name": STRING})),
                                     "lost": _nullable(LOST_RETURN)})),
             **_errors(400, 401, 404, 409, 413, 422)},
            body=_body({"item_barcode": {"type": "string", "maxLength": 200},
                        "owner": {"type": "string", "maxLength": 32,
                                  "description": "Which owner's item, when two share the barcode."}},
                       ["item_barcode"]))},
        "/api/v1/loans": {"get": _operation("Loans, newest first, filtered.", "desk", {
            "200": _answer(_object({"loans": {"type": "array", "items": loan}, "limit": INTEGER,
                                    "offset": INTEGER})), **_errors(400, 401)}, parameters=[
            _query("status", "open or closed (empty: both).", {"type": "string", "enum": ["", "open", "closed"]}),
            *_paging(100, 1000), _query("patron_institution", "The patron's institution."),
            _query("patron_id", "The patron's id at their institution."),
            _query("overdue", "1, true or yes: only open loans past due."), _query("q", "Barcode or title."),
            _query("lender", "The lending institution.")])},
        "/api/v1/loans/{loan_id}": {"get": _operation("One loan.", "desk", {
            "200": _answer(loan), **_errors(401, 404)}, parameters=[LOAN_ID])},
        "/api/v1/loans/{loan_id}/renew": {"post": _operation("Renew a loan under the lender's policy.", "desk", {
            "200": _answer(loan), **_errors(401, 404, 409, 422, 502, 503)}, parameters=[LOAN_ID])},
        "/api/v1/loans/{loan_id}/resolve": {"post": _operation(
            "Clear a disputed loan's flag with a note (audited; the home node is told).", "admin",
            {"200": _answer(loan), **_errors(*STAFF_WRITE, 403)}, parameters=[LOAN_ID],
            body=_body({"note": {"type": "string", "maxLength": 500}}, ["note"]), tag="sync")},
        "/api/v1/items/{barcode}": {"get": _operation("One item and its open loan.", "desk", {
            "200": _answer({**item, "description": "The item, with `loan` (its open loan or null)."}),
            **_errors(401, 404, 409)}, parameters=[BARCODE, _query("owner", "Which owner's item.")])},
        "/api/v1/items/{barcode}/status": {"post": _operation(
            "Declare an own item missing, or found again (audited).", "admin", {
                "200": _answer(item), **_errors(*STAFF_WRITE, 403, 409)}, parameters=[BARCODE],
            body=_body({"status": {"type": "string", "enum": ["missing", "available"]}}, ["status"]))},
        "/api/v1/fees": {"get": _operation(
            "With patron_id: that patron's account here (home); without: the fees this library assessed.", "desk",
            {"200": _answer(_object({"fees": {"type": "array", "items": fee}, "limit": INTEGER, "offset": INTEGER,
                                     "patron": _ref("PatronRef"), "balance": {"type": "object"},
                                     "blocked": BOOLEAN, "blocks": {"type": "array"}, "lender": STRING},
                                    required=["fees", "limit", "offset"])), **_errors(400, 401, 404)},
            parameters=[_query("status", "open, paid or waived.", {"type": "string", "enum": ["open", "paid", "waived"]}),
                        *_paging(200, 1000), _query("patron_id", "One of our patrons."),
                        _query("home", "Only fees posted on patrons of this institution.")], tag="billing")},
        "/api/v1/fees/{fee_id}": {"get": _operation("One fee and its payments.", "desk", {
            "200": _answer({"allOf": [fee, _object({"payments": {"type": "array", "items": _ref("Payment")}})]}),
            **_errors(401, 404)}, parameters=[FEE_ID], tag="billing")},
        "/api/v1/fees/{fee_id}/pay": {"post": _operation(
            "Record a payment on an open fee of one of our patrons (at their home node).", "desk",
            {"200": _answer(fee), **_errors(400, 401, 404, 409, 413, 422)}, parameters=[FEE_ID],
            body=_body({"amount": AMOUNT_IN, "note": {"type": "string", "maxLength": 200}}, ["amount"]),
            tag="billing")},
        "/api/v1/fees/{fee_id}/waive": {"post": _operation(
            "Waive what is open on a fee of one of our patrons.", "admin",
            {"200": _answer(fee), **_errors(*STAFF_WRITE, 403, 409)}, parameters=[FEE_ID],
            body=_body({"reason": {"type": "string", "minLength": 1, "maxLength": 500}}, ["reason"]),
            tag="billing")},
        "/api/v1/fees/pay-balance": {"post": _operation(
            "Pay a patron's balance or part of it: open fees oldest first, the last one partly (home node).", "desk",
            {"200": _answer(_ref("Receipt")), **_errors(400, 401, 404, 413, 422)},
            body=_body({"patron_id": {"type": "string", "minLength": 1, "maxLength": 200}, "amount": AMOUNT_IN,
                        "method": {"type": "string", "enum": ["cash", "card", "transfer", "other"]},
                        "currency": {"type": "string"}, "note": {"type": "string", "maxLength": 500}},
                       ["patron_id", "amount"]), tag="billing")},
        "/api/v1/fees/waive-balance": {"post": _operation(
            "Waive whole open fees of a patron, oldest first, up to an amount that ends on a fee (home node).",
            "admin", {"200": _answer(_ref("Receipt")), **_errors(*STAFF_WRITE, 403)},
            body=_body({"patron_id": {"type": "string", "minLength": 1, "maxLength": 200}, "amount": AMOUNT_IN,
                        "reason": {"type": "string", "minLength": 1, "maxLength": 500},
                        "currency": {"type": "string"}}, ["patron_id", "amount", "reason"]), tag="billing")},
        "/api/v1/settlement": {"get": _operation("What each peer owes and is owed, per currency.", "desk", {
            "200": _answer(_object({"institution": STRING, "rows": {"type": "array", "items": {"type": "object"}}})),
            **_errors(401)}, tag="billing")},
        "/api/v1/bursar/batches": {
            "get": _operation("The bursar export batches.", "admin", {
                "200": _answer(_object({"batches": {"type": "array", "items": _ref("Batch")}})),
                **_errors(401, 403)}, tag="billing"),
            "post": _operation("Export every fee not yet exported into a new batch.", "admin", {
                "201": _answer(_object({"batch": _ref("Batch")}), "A new batch"),
                "200": _answer(_object({"batch": {"type": "null"}}), "Nothing to export"),
                **_errors(401, 403)}, tag="billing")},
        "/api/v1/bursar/batches/{batch_id}.csv": {"get": _operation("One batch as CSV, the same bytes every time.",
                                                                    "admin", {
            "200": {"description": "The batch (docs/billing.md)", "content": {"text/csv": {"schema": STRING}}},
            **_errors(401, 403, 404)}, parameters=[{**_path("batch_id", "The batch number."),
                                                    "schema": {"type": "integer", "minimum": 0}}], tag="billing")},
        "/api/v1/sync/queue": {"get": _operation("The outbox per peer, refusals and loans that need attention.",
                                                 "admin", {
            "200": _answer(_object({"institution": STRING, "peers": {"type": "array"}, "events": {"type": "array"},
                                    "limit": INTEGER, "offset": INTEGER}), "docs/admin-queue.md"),
            **_errors(400, 401, 403)}, parameters=[
            _query("peer", "One peer's code."), _query("state", "pending, failed, rejected or delivered."),
            *_paging(50, 500), _query("order", "newest or oldest.", {"type": "string", "enum": ["newest", "oldest"]})],
            tag="sync")},
        "/api/v1/sync/queue/retry": {"post": _operation("Forget a peer's back-off and push its queue now.", "admin", {
            "200": _answer(_object({"peer": STRING, "ok": BOOLEAN, "delivered": INTEGER, "rejected": INTEGER,
                                    "queued": INTEGER})), **_errors(*STAFF_WRITE, 403)},
            body=_body({"peer": STRING}, ["peer"]), tag="sync")},
        "/api/v1/sync/standing-lookups": {"get": _operation("Peers' standing questions about our patrons, newest "
                                                            "first.", "admin", {
            "200": _answer(_object({"peer": _nullable(STRING), "patron_id": _nullable(STRING), "lookups": {
                "type": "array", "items": _object({"peer": STRING, "patron_id": STRING, "asked_at": TIME,
                                                   "code": STRING})}})),
            **_errors(400, 401, 403)}, parameters=[
            _query("peer", "One peer's code."), _query("patron", "One patron's id."),
            _query("limit", "How many (default 50).", {"type": "integer", "minimum": 1})], tag="sync")},
        "/api/v1/me": {"get": _operation("The patron signed in with this browser session (SAML).", "patron", {
            "200": _answer(_object({"institution": STRING, "id": STRING, "name": STRING},
                                   required=["institution", "id"])),
            **_errors(401)}, tag="patrons")},
        **_peer_paths(),
    }


def _peer_paths():
    signed = "Signed by the peer (docs/protocol-signatures.md); the answer is signed too."
    return {
        "/api/v1/patrons/{patron_id}/standing": {"get": {**_operation(
            "A lender asks whether our patron may borrow.", "peer", {
                "200": _answer(_object({"ok": BOOLEAN, "code": _nullable(STRING), "reason": _nullable(STRING),
                                        "name": STRING, "email": STRING}, required=["ok", "code", "reason"])),
                **_errors(401, 404, 429)}, parameters=[_path("patron_id", "Our patron's id, percent-encoded.")],
            tag="peers"), "description": signed}},
        "/api/v1/sync/events": {"post": {**_operation("A peer pushes a batch of events (docs/protocol.md).", "peer", {
            "200": _answer(_object({"results": {"type": "array"}}, required=["results"])),
            **_errors(400, 401, 413)}, body=_body({"events": {"type": "array", "items": {"type": "object"}}},
                                                  ["events"]), tag="peers"), "description": signed}},
        "/api/v1/peer/loans/{loan_id}/renew": {"post": {**_operation(
            "A home node renews a loan of its patron here.", "peer", {
                "200": _answer(_object({"loan_id": STRING, "due_at": TIME, "renewals": INTEGER})),
                **_errors(401, 404, 409, 422)}, parameters=[LOAN_ID], tag="peers"), "description": signed}},
    }


def document():
    """The OpenAPI 3.1 description of this node's JSON API, as a dict."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "circnode JSON API", "version": "1",
                 "description": "Staff and admin endpoints for desks and scripts, the patron's own session, and "
                                "the signed peer endpoints. Errors are always JSON: "
                                "{\"error\": {\"code\", \"message\", \"details\"?}}; codes in docs/api.md."},
        "paths": _paths(),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "staffToken": {"type": "http", "scheme": "bearer",
                               "description": "A staff token from `circnode staff token NAME`; its role is the "
                                              "staff member's (desk or admin)."},
                "patronSession": {"type": "apiKey", "in": "cookie", "name": "circnode_<INSTITUTION>",
                                  "description": "The session cookie of a patron signed in at /patron/login."},
                "peerSignature": {"type": "apiKey", "in": "header", "name": "Signature",
                                  "description": "HTTP Message Signatures (RFC 9421), Ed25519, keyid the peer's "
                                                 "institution code, with Signature-Input and an RFC 9530 "
                                                 "Content-Digest (docs/protocol-signatures.md)."},
            },
        },
    }


def text():
    """The document as docs/openapi.json holds it."""
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(text(), end="")
