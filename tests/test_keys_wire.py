"""Keyed names on the fast paths against the general path: the same answers, the same key counts."""

from __future__ import annotations

import dataclasses

import dns.message
import dns.rcode
from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.addresses import reverse_name
from rbl.dns.answer import Responder
from rbl.dns.clients import ClientGate, _key_value, network_key, truncated
from rbl.dns.general import general_answer
from rbl.dns.keys import KeyTable
from rbl.policy.listing import ListingPolicy
from rbl.store.keys import key_hash
from rbl.zone.compile import compile_zone
from rbl.zone.config import RateLimit
from rbl.zone.snapshot import Snapshot
from test_snapshot import CONFIG, row

ROWS = [row("192.0.2.0/24"), row("192.0.2.128/25", exclude=True), row("192.0.2.200", code="127.0.0.3"),
        row("2001:db8::/32"), row("*.example.com"), row("spam.example", code="127.0.0.4")]
GOOD, REVOKED, OVER, ELSEWHERE = "a" * 26, "b" * 26, "c" * 26, "d" * 26
UNKNOWN = "e" * 26
ENTRIES = [
    {"id": 1, "hash": key_hash(GOOD), "zones": None, "quota": None, "period": 86400, "revoked": False},
    {"id": 2, "hash": key_hash(REVOKED), "zones": None, "quota": None, "period": 86400, "revoked": True},
    {"id": 3, "hash": key_hash(OVER), "zones": None, "quota": 10, "period": 86400, "revoked": False},
    {"id": 4, "hash": key_hash(ELSEWHERE), "zones": ["other.example"], "quota": None, "period": 86400,
     "revoked": False},
]


def keyed_snapshot(mode: str) -> Snapshot:
    config = dataclasses.replace(CONFIG, keys=mode, key_info="keys: https://bl.example/keys")
    zone, count = compile_zone(config, ListingPolicy(), ROWS)
    return Snapshot(serial=42, zones={zone.origin: zone}, built_at=0, compile_seconds=0, listings=count)


SNAPSHOTS = {mode: keyed_snapshot(mode) for mode in ("optional", "required")}
SUBJECTS = st.sampled_from([
    reverse_name("192.0.2.1"), reverse_name("192.0.2.200"), reverse_name("192.0.2.129"), reverse_name("192.0.3.1"),
    reverse_name("127.0.0.2"), reverse_name("127.0.0.1"), reverse_name("2001:db8::1"), reverse_name("::ffff:7f00:2"),
    "www.example.com", "spam.example", "1.0.0.2", "ns1", "",
])


def table() -> KeyTable:
    keys = KeyTable([dict(e) for e in ENTRIES])
    keys.set_over([3])
    return keys


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(sorted(SNAPSHOTS)), SUBJECTS, st.sampled_from([None, GOOD, REVOKED, OVER, ELSEWHERE, UNKNOWN]),
       st.sampled_from(["A", "TXT", "ANY", "AAAA"]), st.sampled_from([None, 0]), st.lists(st.booleans(), max_size=26),
       st.integers(1, 3))
def test_keyed_names_answer_on_the_fast_paths_as_on_the_general_path(mode, subject, key, qtype, edns, flips, repeat):
    snapshot = SNAPSHOTS[mode]
    label = "".join(c.upper() if i < len(flips) and flips[i] else c for i, c in enumerate(key)) if key else None
    name = ".".join(part for part in (subject, label, "bl.example") if part)
    query = dns.message.make_query(name, qtype, use_edns=edns).to_wire()
    fast_keys, slow_keys = table(), table()
    responder = Responder(snapshot, keys=fast_keys)
    for _ in range(repeat):  # the second time a key is seen, the hot path has it
        fast = responder.respond(query, True)
        slow = general_answer(query, snapshot, True, keys=slow_keys)
        assert dns.message.from_wire(fast) == dns.message.from_wire(slow), name
    assert fast_keys.totals() == slow_keys.totals()
    reply = dns.message.from_wire(slow)
    codes = {rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == 1}
    if key in (REVOKED, ELSEWHERE, UNKNOWN) and qtype != "AAAA" and subject:
        assert codes == ({"127.255.255.254"} if qtype != "TXT" else set()) and reply.answer
    if key == OVER and qtype in ("A", "ANY") and subject:
        assert codes == {"127.255.255.255"}
    if key is None and mode == "required" and qtype in ("A", "ANY") and subject not in ("", "ns1"):
        assert codes == {"127.255.255.254"}


def test_the_hot_path_answers_a_key_it_has_seen_and_counts_it():
    snapshot = SNAPSHOTS["required"]
    keys = table()
    responder = Responder(snapshot, keys=keys)
    query = dns.message.make_query(f"1.2.0.192.{GOOD}.bl.example", "A").to_wire()
    assert responder.hot(query) is None  # not seen yet: the slower paths hash it once
    assert responder.respond(query) is not None
    hot = responder.hot(query)
    assert hot is not None and {rr.address for rrset in dns.message.from_wire(hot).answer for rr in rrset} == \
        {"127.0.0.2"}
    assert keys.totals() == {1: 2}
    keys.set_over([1])  # the primary says it is past its quota: closed at once, on the hot path too
    assert responder.hot(query) is None
    over = dns.message.from_wire(responder.respond(query))
    assert {rr.address for rrset in over.answer for rr in rrset} == {"127.255.255.255"}


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=80), st.sampled_from(["A", "TXT", "MX"]), st.booleans())
def test_a_slipped_reply_is_the_header_and_question_with_tc(tail, qtype, edns):
    query = dns.message.make_query("1.2.0.192.bl.example", qtype, use_edns=0 if edns else None)
    reply = general_answer(query.to_wire(), SNAPSHOTS["optional"], True) + tail
    cut = dns.message.from_wire(truncated(reply))
    assert cut.flags & dns.flags.TC and cut.id == query.id and cut.question == query.question
    assert not cut.answer and not cut.authority and cut.rcode() == dns.message.from_wire(reply[:len(reply) - len(tail)]).rcode()


def test_rrl_accounts_allow_the_rate_then_drop_and_slip_and_recover():
    limit = RateLimit(responses=10, nxdomains=5, errors=2, window=2, slip=2)
    gate = ClientGate(limit)
    entry = gate.entry(network_key("127.0.3.1"), 0.0)
    answer = general_answer(dns.message.make_query("1.2.0.192.bl.example", "A").to_wire(), SNAPSHOTS["optional"], True)
    verdicts = [gate.account(entry, answer, 0.0) for _ in range(40)]
    assert verdicts[:10] == [0] * 10 and set(verdicts[10:]) == {1, 2}
    assert verdicts[10:].count(2) == 15  # every second limited answer slips
    negative = general_answer(dns.message.make_query("1.3.0.192.bl.example", "A").to_wire(), SNAPSHOTS["optional"],
                              True)
    assert [gate.account(entry, negative, 0.0) for _ in range(5)] == [0] * 5  # its own kind, its own rate
    # Debt is capped at window × rate: after window + 1 seconds the full second's worth is back.
    assert gate.account(entry, answer, 3.0) == 0
    assert gate.totals() == {"answer-dropped": 15, "answer-slipped": 15}


def test_a_network_key_is_the_24_or_the_56_of_the_address():
    assert network_key("192.0.2.1") == network_key("192.0.2.254") != network_key("192.0.3.1")
    assert _key_value(network_key("192.0.2.77")) == (4, 0xC0000200)
    assert network_key("2001:db8:0:1200::1") == network_key("2001:db8:0:12ff::2") != network_key("2001:db8:0:1300::1")
    assert _key_value(network_key("2001:db8:0:12ab::1")) == (6, 0x20010DB8000012 << 72)
    assert _key_value(network_key("::ffff:192.0.2.7")) == (4, 0xC0000200)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["1.2.0.192.bl.example", "1.3.0.192.bl.example", "example.org", "200.2.0.192.bl.example"]),
                min_size=1, max_size=60),
       st.integers(1, 5), st.integers(1, 5), st.integers(1, 5), st.integers(0, 3))
def test_the_batch_loops_inlined_rrl_limits_as_the_gates_own_accounting(names, responses, nxdomains, errors, slip):
    """One batch, one clock reading: the batch loop's inlined accounts against ClientGate.account."""
    import socket

    from rbl.dns import batch

    limit = RateLimit(responses=responses, nxdomains=nxdomains, errors=errors, window=5, slip=slip)
    responder = Responder(SNAPSHOTS["optional"])
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        server.bind(("127.0.0.1", 0))
        client.bind(("127.0.3.1", 0))
        client.settimeout(0.5)
        queries = [dns.message.make_query(name, "A", id=i).to_wire() for i, name in enumerate(names)]
        for query in queries:
            client.sendto(query, server.getsockname())
        gate = ClientGate(limit)
        sock = batch.BatchSocket(server.fileno(), socket.AF_INET)
        assert sock.serve(responder.respond, False, responder.hot, gate)
        twin = ClientGate(limit)
        entry = twin.entry(network_key("127.0.3.1"), 0.0)
        expected = []
        for query in queries:
            reply = responder.respond(query, True)
            verdict = twin.account(entry, reply, 0.0)
            if verdict != 1:
                expected.append(truncated(reply) if verdict == 2 else reply)
        got = [client.recv(4096) for _ in expected]
        client.settimeout(0.02)  # and nothing more
        try:
            got.append(client.recv(4096))
        except TimeoutError:
            pass
        assert got == expected
        assert gate.totals() == twin.totals()
    finally:
        server.close()
        client.close()
