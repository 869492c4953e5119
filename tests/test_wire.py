"""The fast wire path against the general dnslib path: the same answers."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.addresses import reverse_name
from rbl.dns.answer import Responder
from rbl.dns.general import general_answer
from rbl.dns.wire import SnapshotWire, template_answer, txt_rdata
from rbl.policy.listing import ListingPolicy
from rbl.zone.compile import compile_zone
from rbl.zone.snapshot import Snapshot
from test_snapshot import CONFIG, row

ROWS = [row("192.0.2.0/24"), row("192.0.2.128/25", exclude=True), row("192.0.2.200", code="127.0.0.3"),
        row("2001:db8::/32"), row("*.example.com"), row("spam.example", code="127.0.0.4")]


def fast_answer(data: bytes, snapshot: Snapshot, wires: SnapshotWire, udp: bool) -> bytes | None:
    """The fast paths as Responder.respond takes them: the hot path, then the templates; None for the general path."""
    reply = wires.hot(data) if wires.hot is not None else None
    return reply if reply is not None else template_answer(data, snapshot, wires, udp)


@pytest.fixture(scope="module")
def snapshot():
    zone, count = compile_zone(CONFIG, ListingPolicy(), ROWS)
    return Snapshot(serial=42, zones={zone.origin: zone}, built_at=0, compile_seconds=0, listings=count)


SUBJECTS = st.sampled_from([
    reverse_name("192.0.2.1"), reverse_name("192.0.2.200"), reverse_name("192.0.2.129"), reverse_name("192.0.3.1"),
    reverse_name("127.0.0.2"), reverse_name("127.0.0.1"), reverse_name("2001:db8::1"), reverse_name("2001:db9::1"),
    reverse_name("::ffff:7f00:2"), "www.example.com", "example.com", "com", "spam.example", "test", "invalid",
    "127", "0.0.127", "2.0.192", "8.b.d.0.1.0.0.2", "ns1", "", "1.2.3.4.5", "a.b.c",
])


def mixed_case(draw_text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if i < len(flips) and flips[i] else c for i, c in enumerate(draw_text))


@settings(max_examples=600, deadline=None)
@given(SUBJECTS, st.sampled_from(["A", "TXT", "ANY", "AAAA", "MX", "SOA", "NS"]),
       st.sampled_from([None, 0]), st.booleans(), st.sampled_from([512, 1232, 4096, 100]),
       st.lists(st.booleans(), max_size=40), st.booleans())
def test_fast_path_answers_as_the_general_path(snapshot, subject, qtype, edns, do, size, flips, udp):
    name = mixed_case(f"{subject}.bl.example" if subject else "bl.example", flips)
    kwargs = {}
    if edns is not None:
        kwargs = dict(use_edns=0, payload=size, want_dnssec=do)
    query = dns.message.make_query(name, qtype, **kwargs).to_wire()
    responder = Responder(snapshot)
    fast = fast_answer(query, snapshot, responder.wires, udp)
    slow = general_answer(query, snapshot, udp)
    assert slow is not None
    if fast is None:
        return
    assert dns.message.from_wire(fast) == dns.message.from_wire(slow)
    fast_msg, slow_msg = dns.message.from_wire(fast), dns.message.from_wire(slow)
    assert fast_msg.flags == slow_msg.flags and fast_msg.rcode() == slow_msg.rcode()
    assert fast_msg.ednsflags == slow_msg.ednsflags and fast_msg.payload == slow_msg.payload
    if fast_msg.answer and qtype == "A":
        assert fast == slow  # positive A answers are byte for byte the same


def test_fast_path_takes_the_hot_queries(snapshot):
    responder = Responder(snapshot)
    for name, qtype in [("1.2.0.192.bl.example", "A"), ("1.3.0.192.bl.example", "A"),
                        ("1.2.0.192.bl.example", "TXT"), ("www.example.com.bl.example", "A")]:
        query = dns.message.make_query(name, qtype).to_wire()
        assert fast_answer(query, snapshot, responder.wires, True) is not None, name


def test_codes_and_template(snapshot):
    responder = Responder(snapshot)
    reply = dns.message.from_wire(responder.respond(dns.message.make_query("200.2.0.192.bl.example", "ANY").to_wire()))
    assert reply.flags & dns.flags.AA and not reply.flags & dns.flags.RA
    assert {rr.to_text() for rrset in reply.answer for rr in rrset} == {'127.0.0.3', '"T 192.0.2.200"'}


def test_long_txt_is_split_into_character_strings():
    rdata = txt_rdata(b"x" * 600)
    assert [rdata[0], rdata[256], rdata[512]] == [255, 255, 90]


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["A", "TXT", "ANY"]), st.booleans(),
       st.sampled_from(["bl.example", "BL.Example", "bl.example.org", "xbl.example"]))
def test_the_one_regex_ipv4_shortcut_answers_as_the_general_path(snapshot, value, qtype, edns, origin):
    address = ".".join(str(value >> s & 255) for s in (24, 16, 8, 0))
    query = dns.message.make_query(f"{reverse_name(address)}.{origin}", qtype, use_edns=0 if edns else None)
    data = query.to_wire()
    fast = fast_answer(data, snapshot, Responder(snapshot).wires, True)
    slow = general_answer(data, snapshot, True)
    if origin.lower() != "bl.example":
        assert fast is None and dns.message.from_wire(slow).rcode() == dns.rcode.REFUSED
        return
    assert fast is not None
    assert dns.message.from_wire(fast) == dns.message.from_wire(slow)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["192.0.2.1", "192.0.2.200", "192.0.2.129", "192.0.3.1", "127.0.0.2", "127.0.0.1", "2.0.0.1",
                        "10.20.30.40", "255.255.255.255", "0.0.0.0"]),
       st.sampled_from(["A", "TXT"]), st.sampled_from([None, 512, 1232, 100]), st.booleans(), st.booleans(),
       st.booleans(), st.lists(st.booleans(), max_size=24))
def test_the_hot_path_takes_plain_queries_and_answers_as_the_general_path(snapshot, address, qtype, edns, do, rd, cd,
                                                                          flips):
    name = mixed_case(f"{reverse_name(address)}.bl.example", flips)
    kwargs = dict(use_edns=0, payload=edns, want_dnssec=do) if edns is not None else {}
    query = dns.message.make_query(name, qtype, **kwargs)
    query.flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0)
    data = query.to_wire()
    hot = Responder(snapshot).wires.hot(data)
    slow = general_answer(data, snapshot, True)
    if all(len(octet) == 1 for octet in address.split(".")) and hot is None:
        # "1.0.0.2" is also the nibble path to 2001::/16: unlisted, not the hot path's to decide.
        assert not dns.message.from_wire(slow).answer
        return
    assert hot is not None, (name, qtype)
    hot_msg, slow_msg = dns.message.from_wire(hot), dns.message.from_wire(slow)
    assert hot_msg == slow_msg and hot_msg.flags == slow_msg.flags and hot_msg.rcode() == slow_msg.rcode()
    assert hot_msg.ednsflags == slow_msg.ednsflags and hot_msg.payload == slow_msg.payload
    if hot_msg.answer:
        assert hot == slow  # listed: byte for byte (negative answers differ only in name compression)


def test_the_hot_path_leaves_what_it_does_not_know(snapshot):
    hot = Responder(snapshot).wires.hot
    for name, qtype, kwargs in [("1.2.0.192.bl.example", "ANY", {}), ("1.2.0.192.bl.example", "AAAA", {}),
                                ("01.2.0.192.bl.example", "A", {}), ("1.2.0.192.bl.example.org", "A", {}),
                                ("1.2.0.192.bl.example", "A", dict(use_edns=1)),
                                ("1.2.0.192.bl.example", "A", dict(use_edns=0, options=[dns.edns.GenericOption(10, b"12345678")]))]:
        assert hot(dns.message.make_query(name, qtype, **kwargs).to_wire()) is None, (name, qtype, kwargs)
    assert hot(b"\x12") is None and hot(b"") is None
    data = bytearray(dns.message.make_query("1.2.0.192.bl.example", "A").to_wire())
    data[2] |= 0x80  # a response, not a query
    assert hot(bytes(data)) is None
