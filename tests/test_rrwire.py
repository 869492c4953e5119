"""Records for transfers: presentation format to compressed message bodies and back, held to dnspython."""

from __future__ import annotations

import struct
from collections import Counter

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.transfer.rrwire import Packer, encode as wire_records, pack_all, rdata_wire, unpack
from rbl.errors import TransferError
from rbl.transfer.versions import question_length

ORIGIN = "bl.example"


class Record(tuple):
    """A stand-in for rbl.zone.records.Record: (name, ttl, rtype, rdata)."""

    def __new__(cls, name, ttl, rtype, rdata):
        return super().__new__(cls, (name, ttl, rtype, rdata))


def escape(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else
                   ("\\" + chr(b) if b in (0x22, 0x5C) else f"\\{b:03d}") for b in data)


octet = st.integers(0, 255).map(str)
nibble = st.sampled_from("0123456789abcdef")
word = st.from_regex(r"[a-z0-9][a-z0-9-]{0,12}", fullmatch=True).filter(lambda w: not w.endswith("-"))
names = st.one_of(
    st.just("@"),
    st.lists(octet, min_size=1, max_size=4).map(".".join),
    st.lists(nibble, min_size=1, max_size=32).map(".".join),
    st.lists(word, min_size=1, max_size=4).map(".".join),
).flatmap(lambda n: st.sampled_from([n, "*." + n if n != "@" else "*"]))
host = st.lists(word, min_size=1, max_size=3).map(lambda ls: ".".join(ls) + ".")
rdatas = st.one_of(
    st.tuples(st.just("A"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.just("AAAA"), st.ip_addresses(v=6).map(str)),
    st.tuples(st.just("NS"), host),
    st.tuples(st.just("CNAME"), host),
    st.tuples(st.just("TXT"), st.lists(st.binary(max_size=255), min_size=1, max_size=3).map(
        lambda parts: " ".join('"' + escape(p) + '"' for p in parts))),
    st.tuples(st.just("SOA"), st.tuples(host, host, st.lists(st.integers(0, 2**32 - 1), min_size=5, max_size=5))
              .map(lambda t: f"{t[0]} {t[1]} " + " ".join(map(str, t[2])))),
)
records = st.lists(st.tuples(names, st.integers(0, 2**31 - 1), rdatas).map(
    lambda t: Record(t[0], t[1], t[2][0], t[2][1])), max_size=60)


@settings(max_examples=200, deadline=None)
@given(records=records, limit=st.integers(60, 3000))
def test_packed_bodies_unpack_to_the_records_and_dnspython_reads_them_alike(records, limit):
    wire = list(wire_records(records))
    qlen = question_length(ORIGIN)
    bodies = list(pack_all(wire, qlen, limit))
    unpacked = [r for body, count in bodies for r in unpack(body, count, qlen, 2)]
    assert unpacked == wire
    origin = dns.name.from_text(ORIGIN)
    seen: Counter = Counter()
    for body, count in bodies:
        # The message a worker sends: header, the question (the origin), then the body.
        message = struct.pack(">HHHHHH", 7, 0x8400, 1, count, 0, 0) + b"\x02bl\x07example\x00\x00\xfc\x00\x01" + body
        parsed = dns.message.from_wire(message, xfr=True, origin=origin, one_rr_per_rrset=True)
        for rrset in parsed.answer:
            for rdata in rrset:
                seen[(rrset.name.relativize(origin).to_text(), rrset.ttl, rdata.to_wire())] += 1
    want: Counter = Counter()
    for name, ttl, rtype, text in records:
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text)
        want[(name, ttl, rdata.to_wire())] += 1
    assert seen == want


def test_owner_names_compress_against_each_other():
    wire = list(wire_records([Record("1.2.3.4", 60, "A", "127.0.0.2"), Record("1.2.3.4", 60, "TXT", '"x"'),
                              Record("5.2.3.4", 60, "A", "127.0.0.2")]))
    (body, count), = pack_all(wire, question_length(ORIGIN))
    # 1.2.3.4 in full; the TXT's owner is one pointer; 5.2.3.4 is one label and a pointer.
    assert count == 3
    assert len(body) == (8 + 2 + 10 + 4) + (2 + 10 + 2) + (2 + 2 + 10 + 4)


def test_txt_escapes_and_unknown_types():
    assert rdata_wire("TXT", r'"a\"b" "c\\d\010"') == b"\x03a\"b\x04c\\d\n"
    assert rdata_wire("TXT", '""') == b"\x00"
    with pytest.raises(TransferError, match="does not transfer MX"):
        rdata_wire("MX", "10 mail.example.")
    with pytest.raises(TransferError, match="A record '127.0.0.256'"):
        rdata_wire("A", "127.0.0.256")


def test_a_body_fills_up_to_its_limit():
    packer = Packer(question_length(ORIGIN), limit=100)
    wire = list(wire_records(Record(f"{i}.0.0.10", 60, "A", "127.0.0.2") for i in range(20)))
    bodies = [b for b in (packer.add(*r) for r in wire) if b is not None] + [packer.flush()]
    assert sum(count for _, count in bodies) == 20
    assert all(len(body) <= 100 for body, _ in bodies) and len(bodies) > 2


def test_deep_trees_of_names_keep_pointer_chains_short_enough_for_dnspython():
    """IPv6 names in address order, sharing suffixes at every depth: every name reads back
    (each name compressed against the last chains pointers; dnspython follows 16 at most)."""
    import random

    rng = random.Random(1)
    base = 0x20010DB8 << 96
    addresses = sorted({base | rng.getrandbits(16) << 80 | rng.getrandbits(64) for _ in range(2000)})
    names = [".".join(reversed(f"{a:032x}")) for a in addresses]
    # Wildcards one nibble deeper each time, as a zone's cover writes them down a path.
    names += ["*." + ".".join("1" * depth) + ".8.b.d.0.1.0.0.2" for depth in range(1, 25)]
    wire = list(wire_records(Record(n, 60, "A", "127.0.0.2") for n in names))
    qlen = question_length(ORIGIN)
    origin = dns.name.from_text(ORIGIN)
    seen = []
    for body, count in pack_all(wire, qlen):
        message = struct.pack(">HHHHHH", 7, 0x8400, 1, count, 0, 0) + b"\x02bl\x07example\x00\x00\xfc\x00\x01" + body
        parsed = dns.message.from_wire(message, xfr=True, origin=origin)
        seen += [rrset.name.relativize(origin).to_text() for rrset in parsed.answer]
        assert len(body) <= 16000
    assert seen == names
