"""GET /metrics on a real `rbl serve`: DNS queries counted in the workers, evidence, snapshots."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import sqlite3
import struct
import time
import urllib.error
import urllib.request
from contextlib import closing

import dns.exception
import dns.message
import dns.opcode
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from rbl.addresses import reverse_name
from rbl.dns.answer import Responder
from rbl.dns.counts import QueryCounts, decode, encode
from rbl.dns.general import general_answer
from rbl.metrics import Family, Metrics, render
from rbl.policy.listing import ListingPolicy
from rbl.zone.compile import compile_zone
from rbl.zone.snapshot import Snapshot
from test_snapshot import CONFIG, row

WAIT = 5.0  # workers send their counts once a second


def scrape(server, token: str | None) -> tuple[int, str, str]:
    """GET /metrics: status, content type and body."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def samples(text: str) -> dict[tuple, float]:
    """Every sample, parsed by Prometheus' own client: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(parsed: dict, name: str) -> dict[tuple, float]:
    return {labels: value for (sample, labels), value in parsed.items() if sample == name}


def queries(server, token: str) -> dict[tuple[str, str, str], float]:
    status, _, text = scrape(server, token)
    assert status == 200, text
    return {(dict(labels)["zone"], dict(labels)["rcode"], dict(labels)["code"]): value
            for labels, value in metric(samples(text), "rbl_dns_queries_total").items()}


def operator_token(workspace) -> str:
    return workspace.rbl("operator", "token", "create").stdout.split()[-1]


def raw_udp(server, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(data, ("127.0.0.1", server.port))
        return sock.recv(4096)


@pytest.mark.parametrize("workers", [1, 2])
def test_queries_are_counted_by_zone_rcode_and_code_across_workers(workspace, workers):
    from conftest import Server

    workspace.rbl("listing", "add", "192.0.2.10", "2001:db8::10")
    operator = operator_token(workspace)
    server = Server(workspace, "--workers", str(workers))
    try:
        assert queries(server, operator) == {}  # nothing asked yet
        for _ in range(3):
            assert server.addresses("10.2.0.192.bl.example") == {"127.0.0.2"}  # listed: the hot path
        assert server.query("10.2.0.192.bl.example", "TXT").answer  # the hot path's TXT
        assert server.addresses("2.0.0.127.bl.example") == {"127.0.0.2"}  # the RFC 5782 test point
        assert server.query("10.2.0.192.bl.example", tcp=True).answer  # over TCP
        assert not server.query("10.2.0.192.bl.example", "AAAA").answer  # listed, NODATA: the general path
        assert server.addresses(reverse_name("2001:db8::10") + ".bl.example") == {"127.0.0.2"}  # IPv6
        for _ in range(2):
            assert server.query("11.2.0.192.bl.example").rcode() == dns.rcode.NXDOMAIN
        assert server.query(reverse_name("2001:db8::11") + ".bl.example").rcode() == dns.rcode.NXDOMAIN
        assert server.query("0.0.127.bl.example").rcode() == dns.rcode.NOERROR  # an empty non-terminal
        assert server.query("bl.example", "SOA").answer  # the apex
        assert server.addresses("1.140.5.3.cloud.bl.example") == {"127.0.1.1"}  # the cloud zone: shared
        assert server.query("example.org").rcode() == dns.rcode.REFUSED  # not ours
        assert server.query("10.2.0.192.bl.example", use_edns=1).rcode() == dns.rcode.BADVERS
        formerr = dns.message.make_query("10.2.0.192.bl.example", "A").to_wire()
        formerr = formerr[:4] + struct.pack(">H", 2) + formerr[6:]  # two questions, one present
        assert dns.message.from_wire(raw_udp(server, formerr), question_only=True).rcode() == dns.rcode.FORMERR
        update = dns.message.make_query("bl.example", "SOA")
        update.set_opcode(dns.opcode.UPDATE)
        assert dns.message.from_wire(raw_udp(server, update.to_wire())).rcode() == dns.rcode.NOTIMP

        expected = {
            ("bl.example", "NOERROR", "block"): 3 + 1 + 1 + 1 + 1 + 1,
            ("bl.example", "NXDOMAIN", "none"): 3,
            ("bl.example", "NOERROR", "none"): 2,
            ("cloud.bl.example", "NOERROR", "shared"): 1,
            ("", "REFUSED", "none"): 1,
            ("", "BADVERS", "none"): 1,
            ("", "FORMERR", "none"): 1,
            ("", "NOTIMP", "none"): 1,
        }
        server.wait_for(lambda: queries(server, operator) == expected, timeout=WAIT)
        time.sleep(1.5)  # a worker's next line changes nothing: the counts are totals, not increments
        assert queries(server, operator) == expected
    finally:
        server.stop()


def test_a_killed_worker_keeps_what_it_counted(workspace):
    from conftest import Server
    from test_serve import worker_pids

    operator = operator_token(workspace)
    server = Server(workspace, "--workers", "1")
    try:
        for _ in range(4):
            server.query("1.2.0.192.bl.example")
        key = ("bl.example", "NXDOMAIN", "none")
        server.wait_for(lambda: queries(server, operator).get(key) == 4, timeout=WAIT)
        (pid,) = worker_pids(server)
        os.kill(pid, signal.SIGKILL)
        server.wait_for(lambda: worker_pids(server) not in ([], [pid]), timeout=10)
        server.wait_for(lambda: _answers(server), timeout=10)
        server.wait_for(lambda: queries(server, operator).get(key) == 5, timeout=WAIT)  # 4 kept, 1 by the new one
    finally:
        server.stop()


def _answers(server) -> bool:
    try:
        return server.query("1.2.0.192.bl.example").rcode() == dns.rcode.NXDOMAIN
    except dns.exception.Timeout:
        return False


def now_rfc3339(delta: dt.timedelta = dt.timedelta()) -> str:
    moment = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + delta
    return moment.isoformat().replace("+00:00", "Z")


def test_evidence_accepted_and_rejected_are_counted_and_throttle_is_a_code(server, workspace):
    aws = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    operator = operator_token(workspace)
    workspace.rbl("listing", "add", "3.5.140.7")  # EC2 shared space
    server.wait_for(lambda: server.addresses("7.140.5.3.bl.example") == {"127.0.0.2"}, timeout=3)
    with closing(sqlite3.connect(workspace.db)) as db, db:  # listed before the tenant was shut down
        db.execute("UPDATE listings SET first_seen = unixepoch('2026-01-01T00:00:00Z')")

    def item(subject="3.5.140.7", **extra):
        return {"subject": subject, "action": "tenant_terminated", "reference": "T-1",
                "acted_at": now_rfc3339(-dt.timedelta(hours=1)), **extra}

    def post(body=None, token=aws, headers=None, raw=None) -> int:
        return server.http("POST", "/v1/evidence", body, token, headers, raw)[0]

    key = {"Idempotency-Key": "k-1"}
    assert post({"items": [item(), item("3.5.140.8")]}, headers=key) == 202
    assert post({"items": [item(), item("3.5.140.8")]}, headers=key) == 202  # a retry: replayed
    assert post({"items": [item()]}, headers=key) == 409  # the key again, another body
    assert post({"items": [item()]}, token=None) == 401
    assert post({"items": [item()]}, token="rbl_not-a-token") == 401
    assert post({"items": [item()]}, token=operator) == 403
    assert post({"items": [item("8.8.8.8")]}) == 403  # outside aws's ranges
    assert post({"items": [item(action="deleted_it")]}) == 400
    assert post(raw=b"{not json") == 400
    assert post(raw=b"x" * (1 << 20 | 1)) == 413
    status, _, text = scrape(server, operator)
    assert status == 200
    parsed = samples(text)
    assert metric(parsed, "rbl_evidence_submissions_total") == {
        (("outcome", "accepted"), ("reason", "stored"), ("status", "202")): 1,
        (("outcome", "accepted"), ("reason", "replayed"), ("status", "202")): 1,
        (("outcome", "rejected"), ("reason", "idempotency_conflict"), ("status", "409")): 1,
        (("outcome", "rejected"), ("reason", "unauthorized"), ("status", "401")): 2,
        (("outcome", "rejected"), ("reason", "operator_token"), ("status", "403")): 1,
        (("outcome", "rejected"), ("reason", "outside_ranges"), ("status", "403")): 1,
        (("outcome", "rejected"), ("reason", "malformed"), ("status", "400")): 2,
        (("outcome", "rejected"), ("reason", "too_large"), ("status", "413")): 1,
    }
    assert metric(parsed, "rbl_evidence_items_total") == {(): 2}  # the replay stored nothing

    # Accepted evidence in shared space: the listing answers throttle, and is counted so.
    server.wait_for(lambda: server.addresses("7.140.5.3.bl.example") == {"127.0.0.4"}, timeout=3)
    server.wait_for(lambda: queries(server, operator).get(("bl.example", "NOERROR", "throttle")) == 1, timeout=WAIT)
    assert queries(server, operator)[("bl.example", "NOERROR", "block")] >= 1


def test_snapshot_serial_is_the_soa_serial_and_compiles_are_counted(server, workspace):
    operator = operator_token(workspace)

    def snapshot_numbers() -> dict:
        status, content_type, text = scrape(server, operator)
        assert status == 200 and content_type == "text/plain; version=0.0.4; charset=utf-8"
        parsed = samples(text)
        return {name: metric(parsed, name) for name in (
            "rbl_snapshot_serial", "rbl_snapshot_compiles_total", "rbl_snapshot_compile_seconds",
            "rbl_snapshot_listings", "rbl_snapshot_built_timestamp_seconds", "rbl_snapshot_compile_failures_total")}

    def soa_serial() -> int:
        return server.query("bl.example", "SOA").answer[0][0].serial

    first = snapshot_numbers()
    assert first["rbl_snapshot_serial"] == {(): soa_serial()}
    assert first["rbl_snapshot_compiles_total"][(("kind", "full"),)] >= 1
    assert first["rbl_snapshot_compile_seconds"][(("kind", "full"),)] > 0
    assert first["rbl_snapshot_compile_failures_total"] == {(): 0}
    assert abs(first["rbl_snapshot_built_timestamp_seconds"][()] - time.time()) < 120

    workspace.rbl("listing", "add", "192.0.2.20")  # a few listings: a patch
    server.wait_for(lambda: server.addresses("20.2.0.192.bl.example") == {"127.0.0.2"}, timeout=3)
    after = snapshot_numbers()
    serial = after["rbl_snapshot_serial"][()]
    assert serial == soa_serial() and serial > first["rbl_snapshot_serial"][()]
    assert after["rbl_snapshot_compiles_total"][(("kind", "patch"),)] >= 1
    assert after["rbl_snapshot_compile_seconds"][(("kind", "patch"),)] > 0
    assert after["rbl_snapshot_compile_failures_total"] == {(): 0}


def test_metrics_are_the_operators(server, workspace):
    aws = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    status, content_type, text = scrape(server, None)
    assert status == 401 and content_type.startswith("application/json") and "bearer token" in text
    status, content_type, text = scrape(server, aws)
    assert status == 403 and content_type.startswith("application/json") and "operator" in text
    status, _, text = scrape(server, operator_token(workspace))
    assert status == 200 and "# TYPE rbl_dns_queries_total counter" in text


# -- the worker's counting, without sockets ------------------------------------------------------

ROWS = [row("192.0.2.0/24"), row("192.0.2.128/25", exclude=True), row("192.0.2.200", code="127.0.0.3"),
        row("2001:db8::/32"), row("*.example.com"), row("spam.example", code="127.0.0.4"),
        row("198.51.100.7", txt="")]


def snapshot_of(rows, serial: int = 1) -> Snapshot:
    zone, count = compile_zone(CONFIG, ListingPolicy(), rows)
    return Snapshot(serial=serial, zones={zone.origin: zone}, built_at=0, compile_seconds=0, listings=count)


SNAPSHOT = snapshot_of(ROWS)
NAMES = st.sampled_from([
    reverse_name("192.0.2.1"), reverse_name("192.0.2.200"), reverse_name("192.0.2.129"), reverse_name("192.0.3.1"),
    reverse_name("127.0.0.2"), reverse_name("127.0.0.1"), reverse_name("2001:db8::1"), reverse_name("2001:db9::1"),
    reverse_name("198.51.100.7"), "www.example.com", "example.com", "spam.example", "test", "invalid", "127",
    "0.0.127", "1.0.0.2", "ns1", "", "a.b.c",
])


@settings(max_examples=500, deadline=None)
@given(NAMES, st.sampled_from(["A", "TXT", "ANY", "AAAA", "SOA", "NS"]), st.sampled_from([None, 0, 1]),
       st.sampled_from([512, 1232, 100]), st.sampled_from(["bl.example", "BL.example", "bl.example.org"]))
def test_the_fast_paths_count_as_the_general_path(name, qtype, edns, size, origin):
    kwargs = {"use_edns": edns, "payload": size} if edns is not None else {}
    data = dns.message.make_query(f"{name}.{origin}" if name else origin, qtype, **kwargs).to_wire()
    responder = Responder(SNAPSHOT)
    reply = responder.respond(data)
    slow = QueryCounts()
    assert general_answer(data, SNAPSHOT, True, None, slow) is not None and reply is not None
    assert responder.totals() == slow.totals and sum(slow.totals.values()) == 1


def test_counts_survive_a_snapshot_swap_under_the_old_answers_meaning():
    responder = Responder(SNAPSHOT)
    a = dns.message.make_query("200.2.0.192.bl.example", "A").to_wire()
    nx = dns.message.make_query("1.3.0.192.bl.example", "A").to_wire()
    for data in (a, a, nx):
        responder.respond(data)
    assert responder.wires.hot(a) is not None  # the hot path counted these
    # The next snapshot numbers its answers otherwise: 200 is a plain block now.
    responder.use(snapshot_of([row("192.0.2.200"), row("192.0.3.0/24", code="127.0.0.3")], serial=2))
    for data in (a, nx):
        responder.respond(data)
    assert responder.totals() == {("bl.example", 0, "127.0.0.3"): 3 + 1, ("bl.example", 3, ""): 1,
                                  ("bl.example", 0, "127.0.0.2"): 1}
    assert decode(encode(responder.totals())) == responder.totals()


@pytest.mark.parametrize("line", [b"not json\n", b'{"queries": [["z", 0, "", -1]]}', b'{"queries": [["z", 0]]}',
                                  b"{}", b"[]", b'{"queries": [[1, 0, "", 1]]}', b'{"queries": [7]}',
                                  b'{"queries": {"a": 1}}'])
def test_a_line_that_is_not_ours_is_refused(line):
    with pytest.raises(ValueError):
        decode(line)


def test_workers_totals_add_up_and_survive_their_exit():
    metrics = Metrics()
    metrics.worker_totals(1, {("bl.example", 0, "127.0.0.2"): 5})
    metrics.worker_totals(2, {("bl.example", 0, "127.0.0.2"): 2, ("", 5, ""): 1})
    metrics.worker_totals(1, {("bl.example", 0, "127.0.0.2"): 7})  # totals replace, never add
    metrics.worker_gone(2)
    metrics.worker_totals(3, {("bl.example", 0, "127.0.0.2"): 1})
    assert metrics.queries() == {("bl.example", 0, "127.0.0.2"): 10, ("", 5, ""): 1}
    parsed = samples(metrics.text())
    assert metric(parsed, "rbl_dns_queries_total") == {
        (("code", "127.0.0.2"), ("rcode", "NOERROR"), ("zone", "bl.example")): 10,  # no policy: the address
        (("code", "none"), ("rcode", "REFUSED"), ("zone", "")): 1}


LABEL_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(LABEL_TEXT, st.one_of(st.integers(0, 2**53), st.floats(allow_nan=False))),
                min_size=1, max_size=5, unique_by=lambda t: t[0]), LABEL_TEXT.map(str.strip).filter(bool))
def test_the_text_format_round_trips_through_prometheus_parser(values, help_text):
    # (Parsers strip a help text's ends: ours have none.)
    family = Family("rbl_test", "gauge", help_text, [({"a": label, "b": "x"}, value) for label, value in values])
    (parsed,) = text_string_to_metric_families(render([family]))
    assert parsed.documentation == help_text
    assert {s.labels["a"]: s.value for s in parsed.samples} == {label: float(value) for label, value in values}
