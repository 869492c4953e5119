"""Delisting requests: anyone asks over HTTP (rate-limited per client), the operator closes them.

A request never delists by itself; closing it as delisted removes the listing
through the listing store's audited remove, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import sqlite3
from contextlib import closing
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT, Server
from rbl.addresses import parse_subject
from rbl.http.ratelimit import RateLimiter, client_key
from rbl.policy.delisting import DelistError, Request, parse_close, parse_request
from rbl.policy.listing import Delisting, load_listing_policy
from rbl.store import ListingStore
from rbl.store.delisting import AlreadyClosed, DelistStore, NoSuchRequest, StillListed, still_listing
from rbl.store.listings import Entry

ZONES = {"bl.example": "listings", "cloud.bl.example": "cloud", "dkim.bl.example": "listings"}
ASK = {"subject": "192.0.2.10", "reason": "The hacked account is closed.", "email": "postmaster@example.com"}


def set_delisting(workspace, per_hour: int, burst: int) -> None:
    path = workspace.policy / "listing.yaml"
    text = path.read_text()
    head = text[:text.index("delisting:")]
    path.write_text(head + f"delisting:\n  requests_per_hour: {per_hour}\n  burst: {burst}\n")


def ask(server, body, source: str = "127.0.0.1", raw: bytes | None = None) -> tuple[int, dict, dict]:
    """POST /v1/delist-requests from a chosen loopback address: status, headers, JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10, source_address=(source, 0))
    try:
        conn.request("POST", "/v1/delist-requests", body=raw if raw is not None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), json.loads(reply.read())
    finally:
        conn.close()


def audit(workspace, *actions: str) -> list[tuple]:
    marks = ",".join("?" * len(actions))
    with closing(sqlite3.connect(workspace.db)) as db:
        return db.execute(f"SELECT actor, action, subject, before, after FROM audit WHERE action IN ({marks}) "
                          "ORDER BY id", actions).fetchall()


def test_anyone_asks_the_operator_decides(workspace):
    set_delisting(workspace, 3600, 100)  # this test is about the queue, not the limit
    workspace.rbl("listing", "add", "192.0.2.10", "198.51.100.0/24", "spam.example", "--reason", "trap hits")
    server = Server(workspace)
    try:
        operator = workspace.rbl("operator", "token", "create").stdout.split()[-1]
        server.wait_for(lambda: server.addresses("10.2.0.192.bl.example") == {"127.0.0.2"}, timeout=3)

        status, _, made = ask(server, ASK)
        assert status == 202, made
        assert made["state"] == "open" and made["subject"] == "192.0.2.10" and made["zone"] == "bl.example"
        assert made["listed_as"] == {"codes": ["127.0.0.2"], "listings": ["192.0.2.10"]}
        assert "postmaster@example.com" in made["next"] and "Nothing is delisted automatically" in made["next"]
        assert not made["duplicate"]
        # Pressing the button twice is one request.
        status, _, again = ask(server, ASK)
        assert status == 202 and again["id"] == made["id"] and again["duplicate"]
        # A wider listing and a domain can be asked about too; a CIDR by what overlaps it.
        assert ask(server, {**ASK, "subject": "198.51.100.7"})[2]["listed_as"]["listings"] == ["198.51.100.0/24"]
        assert ask(server, {**ASK, "subject": "Spam.Example."})[0] == 202
        assert ask(server, {**ASK, "subject": "198.51.100.0/25"})[2]["listed_as"]["listings"] == ["198.51.100.0/24"]

        for body, field in [({k: v for k, v in ASK.items() if k != "email"}, "email"),
                            ({**ASK, "email": "postmaster at example.com"}, "email"),
                            ({**ASK, "reason": "  "}, "reason"), ({**ASK, "reason": 7}, "reason"),
                            ({**ASK, "subject": "999.1.2.3"}, "subject"), ({**ASK, "subject": "127.0.0.2"}, "subject"),
                            ({**ASK, "zone": "cloud.bl.example"}, "zone"), ({**ASK, "zone": "nope.example"}, "zone"),
                            ({**ASK, "urgent": True}, "urgent"), ([ASK], "body")]:
            status, _, reply = ask(server, body)
            assert status == 400 and reply["field"] == field and reply["error"], (body, reply)
        status, _, reply = ask(server, None, raw=b"{not json")
        assert status == 400 and reply["field"] == "body"
        status, _, reply = ask(server, {**ASK, "subject": "192.0.2.11"})
        assert status == 404 and reply["field"] == "subject" and "not listed" in reply["error"]

        # The operator's queue (tests/test_security.py: vendor tokens are refused).
        assert server.get("/v1/delist-requests")[0] == 401
        assert server.get("/v1/delist-requests?state=everything", operator)[0] == 400
        status, queue = server.get("/v1/delist-requests", operator)
        assert status == 200 and [r["subject"] for r in queue["requests"]] == [
            "192.0.2.10", "198.51.100.7", "spam.example", "198.51.100.0/25"]
        first = queue["requests"][0]
        assert (first["email"], first["client"], first["reason"]) == (
            "postmaster@example.com", "127.0.0.1", "The hacked account is closed.")
        # Queued is all it is: still listed, in the store and over DNS.
        assert server.addresses("10.2.0.192.bl.example") == {"127.0.0.2"}

        close = f"/v1/delist-requests/{queue['requests'][1]['id']}/close"
        assert server.http("POST", close, {"resolution": "delisted", "note": "n"})[0] == 401
        for body, field in [({"resolution": "maybe", "note": "n"}, "resolution"), ({"resolution": "rejected"}, "note"),
                            ({"resolution": "rejected", "note": "n", "cc": "x"}, "cc")]:
            status, reply = server.http("POST", close, body, operator)
            assert status == 400 and reply["field"] == field, reply
        # 198.51.100.7 is listed by the /24: closing it as delisted would be a lie, so nothing changes.
        status, reply = server.http("POST", close, {"resolution": "delisted", "note": "n"}, operator)
        assert status == 409 and "198.51.100.0/24" in reply["error"] and "--exclude" in reply["error"]
        assert server.get("/v1/delist-requests", operator)[1]["requests"][1]["state"] == "open"
        status, reply = server.http("POST", close, {"resolution": "rejected", "note": "The /24 still hits traps."},
                                    operator)
        assert status == 200 and reply["removed"] == [] and reply["request"]["resolution"] == "rejected"
        assert reply["request"]["closed_by"] == "operator token:1"
        status, reply = server.http("POST", close, {"resolution": "delisted", "note": "n"}, operator)
        assert status == 409 and "was closed rejected" in reply["error"]
        assert server.http("POST", "/v1/delist-requests/999/close", {"resolution": "rejected", "note": "n"},
                           operator)[0] == 404
        assert server.http("POST", "/v1/delist-requests/abc/close", {"resolution": "rejected", "note": "n"},
                           operator)[0] == 404

        # The CLI shows the queue and closes as delisted: the listing goes, audited, and DNS follows.
        listed = workspace.rbl("delist", "list").stdout.splitlines()
        assert listed[0].split("\t")[:4] == ["id", "state", "zone", "subject"]
        assert [line.split("\t")[3] for line in listed[1:]] == ["192.0.2.10", "spam.example", "198.51.100.0/25"]
        everything = [json.loads(line) for line in workspace.rbl("delist", "list", "--state", "all", "--json")
                      .stdout.splitlines()]
        assert [r["state"] for r in everything] == ["open", "closed", "open", "open"]
        done = workspace.rbl("delist", "close", str(made["id"]), "--resolution", "delisted", "--note", "fixed")
        assert done.stdout.strip() == (f"delisting request {made['id']} (192.0.2.10 in bl.example) closed: delisted; "
                                       "removed 192.0.2.10 from bl.example")
        server.wait_for(lambda: server.query("10.2.0.192.bl.example").rcode() == 3, timeout=3)
        removal = audit(workspace, "remove")
        assert [(r[1], r[2]) for r in removal] == [("remove", "192.0.2.10")] and removal[0][0].startswith("cli")
        again = workspace.rbl("delist", "close", str(made["id"]), "--resolution", "rejected", "--note", "x",
                              check=False)
        assert again.returncode == 2 and "was closed delisted" in again.stderr
        missing = workspace.rbl("delist", "close", "999", "--resolution", "rejected", "--note", "x", check=False)
        assert missing.returncode == 2 and "no delisting request 999" in missing.stderr
        blank = workspace.rbl("delist", "close", "3", "--resolution", "rejected", "--note", " ", check=False)
        assert blank.returncode == 2 and "--note: 1 to 2000 characters" in blank.stderr
        assert not any("Traceback" in line for line in server.log)
    finally:
        server.stop()


def test_each_client_is_limited_by_the_policy_numbers(workspace):
    set_delisting(workspace, 60, 2)  # one a minute, two at once
    workspace.rbl("listing", "add", "192.0.2.10")
    server = Server(workspace)
    try:
        # Malformed requests count too: the limit protects the operator's queue.
        assert ask(server, {"subject": "192.0.2.10"})[0] == 400
        assert ask(server, ASK)[0] == 202
        status, headers, reply = ask(server, ASK)
        assert status == 429 and reply["retry_after"] == int(headers["Retry-After"])
        assert 59 <= reply["retry_after"] <= 60 and "at most 2 at once and 60 an hour" in reply["error"]
        assert ask(server, ASK)[0] == 429
        # Another client has its own bucket.
        other = {**ASK, "email": "abuse@example.net"}
        assert ask(server, other, source="127.0.0.2")[0] == 202
        assert ask(server, other, source="127.0.0.2")[0] == 202
        assert ask(server, other, source="127.0.0.2")[0] == 429
        with closing(sqlite3.connect(workspace.db)) as db:
            clients = db.execute("SELECT client FROM delist_requests ORDER BY id").fetchall()
        assert clients == [("127.0.0.1",), ("127.0.0.2",)]  # the refused ones stored nothing
    finally:
        server.stop()


# -- the store, with a clock of its own -----------------------------------------------------------

NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.timezone.utc)


def request(text: str, zone: str = "bl.example", email: str = "a@example.com") -> Request:
    return Request(parse_subject(text), zone, "please", email)


def test_closing_as_delisted_removes_exactly_what_lists_the_subject(tmp_path):
    store = ListingStore(tmp_path / "rbl.db", clock=lambda: NOW)
    try:
        store.add([Entry(parse_subject(s)) for s in ("192.0.2.0/24", "198.51.100.9", ".spam.example")],
                  zone="bl.example", actor="test", expires=dt.timedelta(days=7))
        requests = DelistStore(store)
        generation = store.generation()
        wide, _ = requests.create(request("192.0.2.10"), "127.0.0.1", {"codes": ["127.0.0.2"]}, "public:127.0.0.1")
        exact, _ = requests.create(request("198.51.100.9"), "127.0.0.1", {}, "public:127.0.0.1")
        domain, _ = requests.create(request("www.spam.example"), "127.0.0.1", {}, "public:127.0.0.1")
        assert store.generation() == generation  # a request changes no answer: no snapshot for it

        with pytest.raises(StillListed, match="by 192.0.2.0/24"):
            requests.close(wide.id, "delisted", "n", "op")
        assert requests.get(wide.id).state == "open"
        # An exclusion cuts the hole, then closing finds nothing left to remove.
        store.add([Entry(parse_subject("192.0.2.10"), exclude=True)], zone="bl.example", actor="test")
        closed, removed = requests.close(wide.id, "delisted", "excluded", "op")
        assert removed == [] and closed.state == "closed" and closed.closed_at == "2026-11-28T12:00:00Z"

        closed, removed = requests.close(exact.id, "delisted", "fixed", "op")
        assert removed == ["198.51.100.9"] and store.get("bl.example", parse_subject("198.51.100.9")).state == "removed"
        with pytest.raises(AlreadyClosed):
            requests.close(exact.id, "rejected", "n", "op")
        with pytest.raises(StillListed, match="by .spam.example"):
            requests.close(domain.id, "delisted", "n", "op")
        with pytest.raises(NoSuchRequest):
            requests.close(99, "rejected", "n", "op")
        generation = store.generation()
        requests.close(domain.id, "rejected", "still spamming", "op")
        assert store.generation() == generation  # rejected: no answer changes
        assert [r.id for r in requests.list()] == [] and len(requests.list("closed")) == 3

        # The audit keeps the decision, not the requester's email or address (erasable in delist_requests).
        rows = store.db.execute("SELECT actor, action, subject, after FROM audit WHERE action LIKE 'delist%' "
                                "ORDER BY id").fetchall()
        assert [(r[0], r[1], r[2]) for r in rows] == [("public:127.0.0.1", "delist-request", None)] * 3 + [
            ("op", "delist-close", None)] * 3
        assert all("a@example.com" not in r[3] and "127.0.0.1" not in r[3] for r in rows)
    finally:
        store.close()


class Row:
    def __init__(self, text: str, exclude: bool = False):
        subject = parse_subject(text)
        self.subject, self.kind, self.plen, self.exclude = subject.text, subject.kind, subject.plen, exclude


@pytest.mark.parametrize("rows, left", [
    ([Row("192.0.2.0/24")], ["192.0.2.0/24"]),
    ([Row("192.0.2.0/24"), Row("192.0.2.10", True)], []),
    # All of them cover the subject (192.0.2.10): the exclusion cuts the wider ones only.
    ([Row("192.0.0.0/16"), Row("192.0.2.0/24"), Row("192.0.2.0/26", True), Row("192.0.2.0/28")], ["192.0.2.0/28"]),
    ([Row("192.0.2.0/28"), Row("192.0.2.0/24", True)], ["192.0.2.0/28"]),  # the narrower listing wins
    ([Row(".spam.example"), Row("www.spam.example", True)], []),
    ([Row("www.spam.example"), Row("*.spam.example", True)], ["www.spam.example"]),
    ([], []),
])
def test_still_listing(rows, left):
    assert still_listing(rows) == left


def test_request_and_close_bodies():
    made = parse_request({**ASK, "zone": "DKIM.bl.example."}, ZONES)
    assert (made.subject.text, made.zone, made.email) == ("192.0.2.10", "dkim.bl.example", "postmaster@example.com")
    assert parse_request(ASK, ZONES).zone == "bl.example"  # the first zone
    assert parse_request({**ASK, "reason": "line one\nline two"}, ZONES).reason == "line one\nline two"
    for body, field in [(None, "body"), ({**ASK, "email": "x" * 250 + "@example.com"}, "email"),
                        ({**ASK, "email": "a@b"}, "email"), ({**ASK, "email": "<a@example.com>"}, "email"),
                        ({**ASK, "reason": "x" * 2001}, "reason"), ({**ASK, "reason": "bell\x07"}, "reason"),
                        ({**ASK, "subject": "::ffff:127.0.0.2"}, "subject"),
                        ({**ASK, "subject": "127.0.0.0/24"}, "subject"),
                        ({**ASK, "subject": "invalid"}, "subject"), ({**ASK, "zone": None}, "zone"),
                        ({**ASK, "subject": "10.0.0.0/15"}, "subject"),
                        ({**ASK, "subject": "2001:db8::/63"}, "subject")]:
        with pytest.raises(DelistError) as caught:
            parse_request(body, ZONES)
        assert caught.value.status == 400 and caught.value.field == field, body
    assert parse_close({"resolution": "rejected", "note": " no "}) == ("rejected", "no")
    with pytest.raises(DelistError, match="resolution"):
        parse_close({"resolution": "DELISTED", "note": "n"})


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["subject", "zone", "reason", "email", "x"]) | st.text(max_size=5), inner,
                        max_size=5), max_leaves=12))
def test_any_json_body_is_a_request_or_a_400_naming_the_field(body):
    try:
        made = parse_request(body, ZONES)
    except DelistError as exc:
        assert exc.status == 400 and exc.field is not None and str(exc)
    else:
        assert made.zone in ("bl.example", "dkim.bl.example") and "@" in made.email


def test_the_policy_section():
    assert load_listing_policy(ROOT / "policy").delisting == Delisting(10, 3)


# -- the token bucket ---------------------------------------------------------------------------

class Gcra:
    """The slow twin: the generic cell rate algorithm (virtual scheduling, ITU-T I.371),
    known to admit exactly what a token bucket of the same rate and size admits."""

    def __init__(self):
        self.tat = None

    def take(self, now, rate, burst):
        period = 1 / rate
        tat = now if self.tat is None else max(self.tat, now)
        earliest = tat - (burst - 1) * period
        if now < earliest:
            return earliest - now
        self.tat = tat + period
        return 0


times = st.lists(st.fractions(min_value=0, max_value=100, max_denominator=1000), min_size=1, max_size=60).map(sorted)


@settings(max_examples=300, deadline=None)
@given(times, st.fractions(min_value=Fraction(1, 3600), max_value=10, max_denominator=3600), st.integers(1, 5))
def test_the_bucket_admits_what_its_twin_admits_and_no_more_than_the_rate(moments, rate, burst):
    limiter, twin = RateLimiter(), Gcra()
    allowed = []
    for now in moments:
        wait = limiter.take("c", rate, burst, now=now)
        assert wait == twin.take(now, rate, burst)
        if wait:
            # Retry-After is honest: asking again after exactly that long is allowed.
            probe = RateLimiter()
            probe._buckets = {k: type(v)(v.tokens, v.at) for k, v in limiter._buckets.items()}
            assert probe.take("c", rate, burst, now=now + wait) == 0
        else:
            allowed.append(now)
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= burst + rate * (allowed[j] - start)


def test_buckets_are_per_client_bounded_and_ipv6_counts_by_64():
    limiter = RateLimiter(max_clients=3)
    assert [limiter.take("a", 1, 1, now=0), limiter.take("a", 1, 1, now=0)] == [0, 1]
    assert limiter.take("b", 1, 1, now=0) == 0
    for key in ("c", "d", "e"):
        limiter.take(key, 1, 1, now=0)
    assert len(limiter) == 3 and limiter.take("a", 1, 1, now=0) == 0  # forgotten: a full bucket again
    assert limiter.take("x", 1, 2, now=10) == 0 and limiter.take("x", 1, 2, now=5) == 0  # a clock going back
    assert limiter.take("x", 1, 2, now=5) == 1
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:192.0.2.1") == client_key("192.0.2.1") == "192.0.2.1"
    assert client_key("fe80::1%eth0") == "fe80::/64" and client_key(None) == "unknown"
