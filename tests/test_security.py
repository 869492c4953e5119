"""Who may do what over HTTP, and where tokens must never show up.

What tests/test_tokens.py, test_evidence.py, test_http_listings.py and
test_vendor_record.py already hold (a vendor token refused for another vendor's
range and for POST /v1/listings, a revoked vendor token refused for evidence,
the gcp view refused to aws's token, no token on disk after the CLI or in
stderr after evidence) is not repeated here. This file holds the rest: mixed
batches store nothing, Idempotency-Keys do not cross vendors, a refused vendor
view says nothing about which vendors exist, every operator route refuses a
vendor token and changes nothing, revoking any kind of token refuses it at
once on every route, and no token (used, refused, revoked, or sent where it
does not belong) reaches the server's output, verbose, or the database.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing

from conftest import Server, stored_bytes


def token(workspace, *args: str) -> str:
    return workspace.rbl(*args).stdout.split()[-1]


def counts(workspace) -> tuple:
    with closing(sqlite3.connect(workspace.db)) as db:
        return tuple(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("submissions", "evidence", "audit", "delist_requests"))


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def item(subject: str) -> dict:
    return {"subject": subject, "action": "tenant_terminated", "reference": "T-9", "acted_at": now()}


def test_a_vendor_token_stays_in_its_own_lane(server, workspace):
    aws = token(workspace, "vendor", "token", "create", "aws")
    gcp = token(workspace, "vendor", "token", "create", "gcp")
    operator = token(workspace, "operator", "token", "create")
    workspace.rbl("listing", "add", "3.5.140.7", "34.35.0.9", "192.0.2.10")
    server.wait_for(lambda: server.addresses("7.140.5.3.bl.example") == {"127.0.0.2"}, timeout=3)
    before = counts(workspace)

    # One item of its own does not carry another vendor's: the batch is refused whole.
    for items, bad in [([item("34.35.0.9"), item("3.5.140.7")], 1),
                       ([item("2a05:d034:8000::1"), item("34.35.0.9")], 0),  # aws's IPv6 space
                       ([item("34.35.0.0/16"), item("34.34.0.0/16")], 1),  # gcp's /16 and the one beside it
                       ([item("198.19.254.3")], 0)]:  # aws's dedicated block
        status, body = server.http("POST", "/v1/evidence", {"items": items}, gcp)
        assert (status, body["item"], body["field"]) == (403, bad, "subject"), body
    assert counts(workspace) == before
    assert server.addresses("7.140.5.3.bl.example") == {"127.0.0.2"}  # aws's listing untouched

    # Idempotency-Keys are each vendor's own: gcp reusing aws's key neither replays nor conflicts.
    key = {"Idempotency-Key": "shared-key"}
    first = server.http("POST", "/v1/evidence", {"items": [item("3.5.140.7")]}, aws, key)
    other = server.http("POST", "/v1/evidence", {"items": [item("34.35.0.9")]}, gcp, key)
    assert first[0] == other[0] == 202 and not other[1]["replayed"]
    assert other[1]["submission"] != first[1]["submission"] and other[1]["evidence"] != first[1]["evidence"]

    # Another vendor's view, or one that does not exist: the same 403, no data either way.
    for path in ("/v1/vendors/aws", "/v1/vendors/nope", "/v1/vendors/AWS", "/v1/vendors/gcp%2F..%2Faws"):
        status, body = server.get(path, gcp)
        assert status == 403 and set(body) == {"error"}, (path, body)

    # Every operator route: 403 for a vendor token, and nothing changes.
    made = server.http("POST", "/v1/delist-requests", {"subject": "192.0.2.10", "reason": "fixed",
                                                       "email": "postmaster@example.com"})
    assert made[0] == 202
    before = counts(workspace)
    for method, path, body in [("DELETE", "/v1/listings", {"subjects": ["3.5.140.7"]}),
                               ("GET", "/v1/delist-requests", None),
                               ("GET", "/v1/delist-requests?state=all", None),
                               ("POST", f"/v1/delist-requests/{made[1]['id']}/close",
                                {"resolution": "delisted", "note": "n"})]:
        for vendor in (aws, gcp):
            status, reply = server.http(method, path, body, vendor)
            assert status == 403 and "operator" in reply["error"], (method, path, reply)
            assert "postmaster@example.com" not in str(reply)
    assert counts(workspace) == before
    assert server.addresses("10.2.0.192.bl.example") == {"127.0.0.2"}
    status, queue = server.get("/v1/delist-requests", operator)
    assert status == 200 and [r["state"] for r in queue["requests"]] == ["open"]


def test_revoking_any_token_refuses_it_on_every_route_at_once(server, workspace):
    aws = token(workspace, "vendor", "token", "create", "aws")
    kept = token(workspace, "vendor", "token", "create", "aws")
    op1 = token(workspace, "operator", "token", "create")
    op2 = token(workspace, "operator", "token", "create")
    workspace.rbl("listing", "add", "192.0.2.10")
    close = {"resolution": "rejected", "note": "n"}
    operator_routes = [("POST", "/v1/listings", {"subjects": ["192.0.2.11"]}),
                       ("DELETE", "/v1/listings", {"subjects": ["192.0.2.10"]}),
                       ("GET", "/v1/delist-requests", None), ("GET", "/v1/vendors/aws", None),
                       ("POST", "/v1/delist-requests/1/close", close)]
    assert server.get("/v1/vendors/aws", aws)[0] == 200
    assert server.get("/v1/delist-requests", op1)[0] == 200

    workspace.rbl("vendor", "token", "revoke", "1")
    workspace.rbl("operator", "token", "revoke", "3")
    # No cache to wait out: the very next request is refused, on every route the token had.
    assert server.get("/v1/vendors/aws", aws)[0] == 401
    assert server.http("POST", "/v1/evidence", {"items": [item("3.5.140.7")]}, aws)[0] == 401
    for method, path, body in operator_routes:
        status, reply = server.http(method, path, body, op1)
        assert status == 401 and "bearer token" in reply["error"], (method, path, reply)
    assert counts(workspace)[:2] == (0, 0)
    assert server.addresses("10.2.0.192.bl.example") == {"127.0.0.2"}  # the DELETE did nothing

    # The tokens beside them still work.
    assert server.get("/v1/vendors/aws", kept)[0] == 200
    assert server.http("POST", "/v1/listings", {"subjects": ["192.0.2.11"]}, op2)[0] == 201
    assert server.get("/v1/delist-requests", op2)[0] == 200


def test_no_token_reaches_the_servers_output_or_the_database(workspace):
    server = Server(workspace, "-v")  # verbose: everything the server would ever say
    try:
        aws = token(workspace, "vendor", "token", "create", "aws")
        gcp = token(workspace, "vendor", "token", "create", "gcp")
        operator = token(workspace, "operator", "token", "create")
        revoked = token(workspace, "operator", "token", "create")
        workspace.rbl("operator", "token", "revoke", "4")
        secrets = [aws, gcp, operator, revoked]
        workspace.rbl("listing", "add", "3.5.140.7", "192.0.2.10")
        server.wait_for(lambda: server.addresses("7.140.5.3.bl.example") == {"127.0.0.2"}, timeout=3)

        # Every route, with every token: accepted, refused, revoked, and sent where it does not belong.
        for secret in secrets:
            server.http("POST", "/v1/evidence", {"items": [item("3.5.140.7")]}, secret)
            server.http("POST", "/v1/listings", {"subjects": ["192.0.2.12"], "reason": "r"}, secret)
            server.http("DELETE", "/v1/listings", {"subjects": ["192.0.2.99"]}, secret)
            server.get("/v1/vendors/aws", secret)
            server.get(f"/v1/vendors/{secret}", secret)
            server.get("/v1/delist-requests?state=all", secret)
            server.http("POST", "/v1/delist-requests/1/close", {"resolution": "rejected", "note": "n"}, secret)
            server.get(f"/v1/lookup/{secret}")
            server.get(f"/v1/lookup/192.0.2.10?token={secret}")
            server.http("POST", "/v1/evidence", None, headers={"Authorization": f"Basic {secret}"}, raw=b"{}")
            server.http("POST", "/v1/evidence", None, headers={"Authorization": f"Bearer  {secret}x"}, raw=b"{")
            server.http("GET", "/v1/nowhere", None, secret)
        status, _ = server.http("POST", "/v1/delist-requests", {"subject": "192.0.2.10", "reason": "fixed",
                                                                "email": "postmaster@example.com"})
        assert status == 202
        assert server.http("POST", "/v1/delist-requests/1/close", {"resolution": "delisted", "note": "ok"},
                           operator)[0] == 200
        server.wait_for(lambda: server.query("10.2.0.192.bl.example").rcode() == 3, timeout=3)
    finally:
        server.stop()

    output = "".join(server.log)
    assert "HTTP on http://" in output and "serving snapshot" in output  # verbose output was captured
    on_disk = stored_bytes(workspace)
    assert b"delist_requests" in on_disk and b"operator token:3" in on_disk  # the scan sees real content
    for secret in secrets:
        # The hint (the first 8 characters) may be shown; nothing after it may.
        for text in (secret, secret[8:]):
            assert text not in output, "a token in the server's output"
            assert text.encode() not in on_disk, "a token in the database"
