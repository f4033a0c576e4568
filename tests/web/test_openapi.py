"""The OpenAPI description (node/web/openapi.py): served, kept in docs/, complete, and true of a live node.

The last test runs schemathesis against a real ``circnode run`` on loopback:
it generates requests from the description (valid ones and malformed ones)
and checks that no answer is a 5xx and every answer's status, content type
and body are the ones described.  Bounded (max_examples per operation,
derandomized) so that it takes well under two minutes on two cores.
"""
import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from node.web import openapi
from node.demo.network import DEMO_NODES
from tests.helpers import ROOT

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_the_description_is_served_without_a_token_and_is_docs_openapi_json(client):
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert answer.get_json() == openapi.document()
    assert ROOT.joinpath("docs", "openapi.json").read_text(encoding="utf-8") == openapi.text(), \
        "docs/openapi.json is stale: python -m node.web.openapi > docs/openapi.json"


def test_every_json_endpoint_is_described_with_every_method(app):
    described = {(re.sub(r"\{[^}]+\}", "<>", path), method.upper())
                 for path, operations in openapi.document()["paths"].items() for method in operations}
    routes = {(re.sub(r"<[^>]+>", "<>", rule.rule), method) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api/") or rule.rule == "/healthz"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes - described == set(), "routes missing from node/web/openapi.py"
    assert described - routes == set(), "node/web/openapi.py describes routes that do not exist"


def test_every_error_code_the_description_names_exists():
    from node.domain import errors
    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.CircnodeError)}
    codes |= {"not_found", "method_not_allowed", "too_large"}  # werkzeug's, mapped in node/web/app.py
    named = {code.strip() for line in openapi.ERROR_CODES.values() for code in re.findall(r"\b[a-z]+_[a-z_]+\b", line)}
    assert named - codes == set()


@pytest.fixture(scope="module")
def live_node(tmp_path_factory):
    """NORTH as a real process on loopback, with SOUTH configured as a peer that is not running."""
    from tests.network import Network
    network = Network(tmp_path_factory.mktemp("openapi"), nodes=DEMO_NODES[:2], items=5, patrons=3)
    network.start("NORTH")
    yield network
    network.stop_all()


schema = schemathesis.openapi.from_dict(openapi.document())


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_a_live_node_answers_every_generated_request_as_described(case, live_node):
    info = live_node.info("NORTH")
    case.call_and_validate(base_url=live_node.url("NORTH"), headers={"Authorization": f"Bearer {info.token}"},
                           checks=CHECKS, timeout=30)


# --- what schemathesis found, each kept as a plain regression test ---

def test_a_batch_number_beyond_sqlites_integers_is_404_not_500(client, admin_token):
    from tests.helpers.desk import sign_in
    answer = client.get("/api/v1/bursar/batches/40368274723303858176.csv",
                        headers={"Authorization": f"Bearer {admin_token}"})
    assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"
    assert sign_in(client, "admin1", "battery staple").status_code == 302
    assert client.get("/billing/bursar/40368274723303858176.csv").status_code == 404
    assert client.get(f"/billing/bursar/{2 ** 63 - 1}.csv").status_code == 404  # the largest: looked up, none


def test_docs_openapi_json_is_json():
    json.loads(ROOT.joinpath("docs", "openapi.json").read_text(encoding="utf-8"))
