"""GET /openapi.json describes the API the server runs; a fuzzer driven by it finds no 5xx."""

from __future__ import annotations

import json
import urllib.request

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from conftest import Server
from rbl.http.app import make_app
from rbl.http.openapi import DELIST_EXAMPLE, spec


def test_every_route_is_described():
    app = make_app(service=None)
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}
    described = {(method, path) for path, operations in spec()["paths"].items() for method in operations}
    assert routes == described


def test_every_example_validates():
    document = spec()
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content and "example" in content:
                schema = {**content["schema"], "components": document["components"]}
                jsonschema_rs.validate(schema, content["example"])
                checked += 1
    assert checked == 6
    with pytest.raises(ValueError):
        schema = {"$ref": "#/components/schemas/EvidenceBody", "components": document["components"]}
        jsonschema_rs.validate(schema, {"items": [{"subject": "3.5.140.7"}]})


def test_a_fuzzer_driven_by_the_description_finds_no_5xx(workspace):
    # Room for the fuzzer past the delisting limit (it still meets it), and the example's subject listed.
    listing = workspace.policy / "listing.yaml"
    text = listing.read_text()
    listing.write_text(text[:text.index("delisting:")] + "delisting: {requests_per_hour: 3600, burst: 100}\n")
    workspace.rbl("listing", "add", DELIST_EXAMPLE["subject"])
    server = Server(workspace)
    try:
        fuzz_all(server, workspace)
    finally:
        server.stop()


def fuzz_all(server, workspace):
    vendor = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    operator = workspace.rbl("operator", "token", "create").stdout.split()[-1]
    base = f"http://127.0.0.1:{server.http_port}"
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as response:
        assert json.loads(response.read())["paths"] == json.loads(json.dumps(spec()["paths"]))
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    statuses: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def fuzz(case):
            if isinstance((case.query or {}).get("wait"), int):
                case.query["wait"] = 0  # the long poll's wait is its own test's: here it would cost minutes
            for token in (None, vendor, operator):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                response = case.call(base_url=base, headers=headers, timeout=10)
                statuses.setdefault(operation.label, set()).add(response.status_code)
                assert response.status_code < 500, (operation.label, case, response.text[:300], "".join(server.log[-30:]))
                if response.status_code >= 400:
                    assert "error" in response.json()

        fuzz()
    assert {"GET /v1/lookup/{subject}", "POST /v1/evidence", "POST /v1/listings", "DELETE /v1/listings",
            "GET /v1/vendors/{vendor}", "GET /v1/vendors/{vendor}/events", "POST /v1/delist-requests", "GET /v1/delist-requests",
            "POST /v1/delist-requests/{id}/close", "GET /metrics"} <= set(statuses)
    assert {200, 400} <= statuses["GET /v1/lookup/{subject}"] and {202, 400, 401, 403} <= statuses["POST /v1/evidence"]
    assert {400, 429} <= statuses["POST /v1/delist-requests"] and {401, 403} <= statuses["GET /v1/delist-requests"]
    assert {200, 401, 403} <= statuses["GET /metrics"]
    assert {401, 403, 404} <= statuses["GET /v1/vendors/{vendor}/events"]
    assert not any("Traceback" in line for line in server.log)
