"""POST and DELETE /v1/listings: the operator's writes over HTTP, audited, all or none."""

from __future__ import annotations

import sqlite3
from contextlib import closing


def call(server, method: str, body, token=None) -> tuple[int, dict]:
    return server.http(method, "/v1/listings", body, token)


def test_the_operator_lists_and_delists_over_http(server, workspace):
    operator = workspace.rbl("operator", "token", "create").stdout.split()[-1]
    vendor = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    body = {"subjects": ["192.0.2.44", "2001:db8::44"], "reason": "trap hit", "expires": "2d"}
    assert call(server, "POST", body)[0] == 401
    assert call(server, "POST", body, vendor)[0] == 403
    status, reply = call(server, "POST", body, operator)
    assert status == 201 and reply == {"zone": "bl.example", "added": 2, "refreshed": 0}
    server.wait_for(lambda: server.addresses("44.2.0.192.bl.example") == {"127.0.0.2"}, timeout=3)
    with closing(sqlite3.connect(workspace.db)) as db:
        actors = {a for (a,) in db.execute("SELECT actor FROM audit WHERE subject = '192.0.2.44'")}
    assert actors == {"operator token:1"}

    for bad, field in [({"subjects": ["192.0.2.1", "not an address!"]}, "subjects"), ({"subjects": []}, "subjects"),
                       ({"subjects": ["192.0.2.1"], "zone": "nope.example"}, "zone"),
                       ({"subjects": ["192.0.2.1"], "expires": "soon"}, "expires"),
                       ({"subjects": ["192.0.2.1"], "colour": "red"}, "colour")]:
        status, reply = call(server, "POST", bad, operator)
        assert status == 400 and reply["field"] == field, (bad, reply)
    assert server.query("1.2.0.192.bl.example").rcode() == 3  # nothing half-written

    status, reply = call(server, "DELETE", {"subjects": ["192.0.2.44", "192.0.2.45"]}, operator)
    assert status == 404 and "192.0.2.45" in reply["error"]  # one not listed: none removed
    assert server.addresses("44.2.0.192.bl.example") == {"127.0.0.2"}
    status, reply = call(server, "DELETE", {"subjects": ["192.0.2.44"]}, operator)
    assert status == 200 and reply["removed"] == 1
    server.wait_for(lambda: server.query("44.2.0.192.bl.example").rcode() == 3, timeout=3)
