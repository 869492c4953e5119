"""POST /v1/evidence on a real `rbl serve --http`: vendors' remediation claims, checked whole."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.policy.classify import Classification, Range
from rbl.policy.evidence import EvidenceError, parse_items, parse_time

ACTED = "2026-11-27T10:00:00Z"


def post(server, body, token=None, headers=None, raw=None) -> tuple[int, dict]:
    return server.http("POST", "/v1/evidence", body, token, headers, raw)


def token(workspace, *args) -> str:
    return workspace.rbl(*args).stdout.split()[-1]


def stored(workspace) -> list[tuple]:
    with closing(sqlite3.connect(workspace.db)) as db:
        return db.execute("SELECT vendor, subject, action, reference, acted_at, identity FROM evidence").fetchall()


def item(subject="3.5.140.7", **extra) -> dict:
    return {"subject": subject, "action": "tenant_terminated", "reference": "T-1", "acted_at": ACTED, **extra}


def test_a_vendor_submits_evidence_for_its_own_ranges(server, workspace):
    aws = token(workspace, "vendor", "token", "create", "aws")
    gcp = token(workspace, "vendor", "token", "create", "gcp")
    operator = token(workspace, "operator", "token", "create")

    assert post(server, {"items": [item()]})[0] == 401
    assert post(server, {"items": [item()]}, token="rbl_not-a-token")[0] == 401
    status, body = post(server, {"items": [item()]}, token=operator)
    assert status == 403 and "vendor" in body["error"]
    status, body = post(server, {"items": [item()]}, token=gcp)  # aws's range, gcp's token
    assert status == 403 and body["item"] == 0 and body["field"] == "subject"

    status, body = post(server, {"items": [item(), item("3.5.140.0/28", action="port25_blocked",
                                                         identity="Mail.Tenant.example")]}, token=aws)
    assert status == 202 and body["accepted"] == 2 and not body["replayed"]
    assert stored(workspace) == [
        ("aws", "3.5.140.7", "tenant_terminated", "T-1", "2026-11-27T10:00:00Z", None),
        ("aws", "3.5.140.0/28", "port25_blocked", "T-1", "2026-11-27T10:00:00Z", "mail.tenant.example")]
    with closing(sqlite3.connect(workspace.db)) as db:
        actors = db.execute("SELECT actor FROM audit WHERE action = 'evidence'").fetchall()
    assert actors == [("vendor:aws token:1",)] * 2  # the first token created: aws's

    # The batch is checked whole: one bad item and nothing is stored.
    for items, status_, field in [
        ([item(), item("8.8.8.8")], 403, "subject"),
        ([item(), item(action="deleted_it")], 400, "action"),
        ([item(), item(acted_at="yesterday")], 400, "acted_at"),
        ([item(), item(acted_at="2099-01-01T00:00:00Z")], 400, "acted_at"),
        ([item(), {"subject": "3.5.140.8", "action": "tenant_suspended", "acted_at": ACTED}], 400, "reference"),
        ([item(), item("spam.example")], 400, "subject"),
        ([item(), item(colour="red")], 400, "colour"),
    ]:
        status, body = post(server, {"items": items}, token=aws)
        assert (status, body["item"], body["field"]) == (status_, 1, field), body
    assert len(stored(workspace)) == 2
    assert post(server, None, token=aws, raw=b"{not json")[0] == 400
    status, body = post(server, None, token=aws, raw=b'{"items": ["' + b"x" * (2 << 20) + b'"]}')
    assert status == 413 and body["error"]
    assert len(stored(workspace)) == 2

    # Retries with an Idempotency-Key are stored once; the key with another body is a conflict.
    retry = {"items": [item("3.5.140.9")]}
    first = post(server, retry, token=aws, headers={"Idempotency-Key": "batch-7"})
    again = post(server, retry, token=aws, headers={"Idempotency-Key": "batch-7"})
    assert first[0] == again[0] == 202 and again[1]["replayed"] and again[1]["evidence"] == first[1]["evidence"]
    assert post(server, {"items": [item("3.5.140.10")]}, token=aws, headers={"Idempotency-Key": "batch-7"})[0] == 409
    assert len(stored(workspace)) == 3

    # Revoked: refused. No token in the log or the database.
    workspace.rbl("vendor", "token", "revoke", "1")
    assert post(server, retry, token=aws)[0] == 401
    log = "".join(server.log)
    data = b"".join(p.read_bytes() for p in workspace.root.glob("rbl.db*"))
    for secret in (aws, gcp, operator):
        assert secret not in log and secret.encode() not in data


RANGES = Classification([Range("ip4", 0x03058C00, 22, "aws", "shared"), Range("ip4", 0x03050000, 16, "aws", "shared")])


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=12))
def test_any_json_body_is_items_or_a_4xx_naming_the_problem(body):
    import datetime as dt

    now = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
    try:
        items = parse_items(body, "aws", RANGES, now)
    except EvidenceError as exc:
        assert exc.status in (400, 403, 413) and str(exc)
    else:
        assert items and all(i.subject.kind == "ip4" for i in items)


@pytest.mark.parametrize("text", ["2026-11-28T09:30:00Z", "2026-11-28t09:30:00.123456789+02:00", "2026-11-28T09:30:00-05:30"])
def test_rfc3339_times(text):
    assert parse_time(text).tzinfo is not None


@pytest.mark.parametrize("text", ["2026-11-28 09:30:00Z", "2026-11-28T09:30:00", "28/11/2026", "2026-13-01T00:00:00Z"])
def test_not_rfc3339(text):
    with pytest.raises(ValueError):
        parse_time(text)


def test_accepted_evidence_turns_a_shared_listing_into_throttle_until_its_shortened_expiry(server, workspace):
    import datetime as dt
    import time

    aws = token(workspace, "vendor", "token", "create", "aws")
    workspace.rbl("listing", "add", "3.5.140.7", "3.5.140.8", "198.19.254.3")  # EC2 shared; a dedicated /28
    server.wait_for(lambda: server.addresses("7.140.5.3.bl.example") == {"127.0.0.2"}, timeout=3)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    recent = (now - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    long_ago = (now - dt.timedelta(hours=7)).isoformat().replace("+00:00", "Z")
    # (Listed just now: evidence acted before the listing is about earlier abuse. Shift first_seen back.)
    with closing(sqlite3.connect(workspace.db)) as db, db:
        db.execute("UPDATE listings SET first_seen = unixepoch('2026-01-01T00:00:00Z')")
    started = time.monotonic()
    status, _ = post(server, {"items": [item("3.5.140.7", acted_at=recent), item("3.5.140.8", acted_at=long_ago),
                                        item("198.19.254.3", acted_at=recent)]}, token=aws)
    assert status == 202
    delay = server.wait_for(lambda: server.addresses("7.140.5.3.bl.example") == {"127.0.0.4"}, timeout=3)
    print(f"evidence 2xx to throttle over DNS: {time.monotonic() - started:.2f} s (poll {delay:.2f} s)")
    # Acted 7 hours ago: the shortened expiry (6 h) has passed, the listing is gone.
    server.wait_for(lambda: server.query("8.140.5.3.bl.example").rcode() == 3, timeout=3)
    # Dedicated space is the customer's own: evidence does not soften it.
    assert server.addresses("3.254.19.198.bl.example") == {"127.0.0.2"}
    with closing(sqlite3.connect(workspace.db)) as db:
        expires = db.execute("SELECT strftime('%Y-%m-%dT%H:%M:%SZ', expires_at, 'unixepoch') FROM listings WHERE subject = '3.5.140.7'").fetchone()[0]
    assert expires == (now + dt.timedelta(hours=5)).isoformat().replace("+00:00", "Z")
    explained = workspace.rbl("explain", "3.5.140.7").stdout
    assert "remediated" in explained and "127.0.0.4" in explained
    # Listed again: new abuse after the remediation blocks again.
    workspace.rbl("listing", "add", "3.5.140.7")
    server.wait_for(lambda: server.addresses("7.140.5.3.bl.example") == {"127.0.0.2"}, timeout=3)
