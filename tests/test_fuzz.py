"""Bounded fuzzing: a live server under 100,000+ random and mutated packets, and a property test.

The live run sends seeded random and mutated packets over UDP (in bursts, each
closed by a sentinel query whose answer proves everything before it was
handled) and over TCP (framed, pipelined, with bogus lengths and connections
dropped mid-message). Afterwards the server must be alive, answer every
RFC 5782 test point over UDP and TCP, and never have logged an escaped
exception. The seed is fixed (RBL_FUZZ_SEED overrides it) so a failure replays.

The property test calls the Responder in-process: whatever the bytes, it
returns None or a reply dnspython parses, with the query's id, and logs no
escaped exception.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import random
import select
import socket
import struct
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import Server, Workspace

SEED = int(os.environ.get("RBL_FUZZ_SEED", "5782"))
UDP_PACKETS = 100_000
TCP_MESSAGES = 4_000
UDP_BURST = 64
ORIGIN = "bl.example"

LISTINGS = ["192.0.2.10", "198.51.100.0/24", "2001:db8::10", "2001:db8:1::/48", "example.com",
            "*.example.net", ".spam.example"]

ESCAPED = ("Traceback", "unexpected error", "Unhandled exception", "Exception in callback",
           "Task exception was never retrieved")


# -- packets ---------------------------------------------------------------------------


def v4name(address: str) -> str:
    return ".".join(reversed(address.split("."))) + "." + ORIGIN


def v6name(address: str) -> str:
    return ".".join(reversed(f"{int(ipaddress.IPv6Address(address)):032x}")) + "." + ORIGIN


NAMES = [
    v4name("127.0.0.2"), v4name("127.0.0.1"), v6name("::ffff:7f00:2"), v6name("::ffff:7f00:1"),
    "test." + ORIGIN, "invalid." + ORIGIN, ORIGIN, "ns1." + ORIGIN, "ns2." + ORIGIN,
    v4name("192.0.2.10"), v4name("198.51.100.77"), v4name("192.0.2.11"), v6name("2001:db8::10"),
    v6name("2001:db8:1::5"), "example.com." + ORIGIN, "a.example.net." + ORIGIN, "spam.example." + ORIGIN,
    "x.spam.example." + ORIGIN, "127." + ORIGIN, "0.0.127." + ORIGIN, "com." + ORIGIN, "0.0.0.0." + ORIGIN,
    "1.2.3.4.5." + ORIGIN, "300.1.2.3." + ORIGIN, "2.0.0.127.BL.EXAMPLE", "example.org", "bl.example.org",
]
TYPES = ["A", "TXT", "ANY", "AAAA", "MX", "SOA", "NS", "CNAME", "PTR", "SRV", "AXFR", "IXFR", "HINFO", 65535]


def base_queries(rng: random.Random) -> list[bytes]:
    """Valid queries for names under (and a few outside) the zone, plain and with EDNS."""
    out = []
    for name in NAMES:
        for rdtype in TYPES:
            kwargs = rng.choice([{}, {}, {"use_edns": 0}, {"use_edns": 0, "payload": 4096, "want_dnssec": True},
                                 {"use_edns": 0, "payload": 512}, {"use_edns": 1}])
            query = dns.message.make_query(name, rdtype, id=rng.randrange(65536), **kwargs)
            out.append(query.to_wire())
    return out


def opt_rr(rng: random.Random) -> bytes:
    """An OPT record, often a strange one: sizes, versions, flags, options, owner, lengths."""
    owner = rng.choice([b"\x00"] * 6 + [b"\xc0\x0c", b"\x01a\x00", b"\xc0\xff"])
    size = rng.choice([0, 1, 511, 512, 513, 1232, 4096, 65535, rng.randrange(65536)])
    ext = rng.choice([0, 0, 1, 255, rng.randrange(256)])
    version = rng.choice([0, 0, 0, 1, 2, 255, rng.randrange(256)])
    flags = rng.choice([0, 0x8000, 0xFFFF, rng.randrange(65536)])
    options = b""
    for _ in range(rng.choice([0, 0, 1, 2, 5])):
        code = rng.choice([3, 8, 9, 10, 11, 12, 15, 65001, rng.randrange(65536)])  # NSID, ECS, cookie, padding...
        data = rng.randbytes(rng.choice([0, 1, 4, 8, 16, 40]))
        length = rng.choice([len(data)] * 3 + [len(data) + 1, max(len(data) - 1, 0), 0xFFFF])
        options += struct.pack(">HH", code, length) + data
    rdlen = rng.choice([len(options)] * 4 + [len(options) + 3, 0, 0xFFFF, max(len(options) - 2, 0)])
    otype = rng.choice([41] * 9 + [rng.randrange(65536)])
    return owner + struct.pack(">HHBBHH", otype, size, ext, version, flags, rdlen) + options


def qname_labels(packet: bytes) -> list[int]:
    """Offsets of the question's label-length bytes (stops at anything odd)."""
    offsets, pos = [], 12
    while pos < len(packet) and len(offsets) < 130:
        length = packet[pos]
        offsets.append(pos)
        if length == 0 or length > 63:
            break
        pos += 1 + length
    return offsets


def long_name(rng: random.Random, total: int) -> bytes:
    """Labels adding up to about ``total`` octets, ending in the zone."""
    out = b""
    while len(out) < total:
        size = rng.choice([1, 1, 2, 63, rng.randint(1, 63)])
        out += bytes([size]) + bytes(rng.choice(b"0123456789abcdef-xyz") for _ in range(size))
    return out + b"\x02bl\x07example\x00"


def mutate(rng: random.Random, packet: bytes) -> bytes:
    p = bytearray(packet)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.randrange(16)
        if op == 0 and p:  # bit flips
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(p))
                p[i] ^= 1 << rng.randrange(8)
        elif op == 1 and p:  # truncation
            del p[rng.randrange(len(p)):]
        elif op == 2:  # byte insert
            i = rng.randrange(len(p) + 1)
            p[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and p:  # byte delete
            i = rng.randrange(len(p))
            del p[i:i + rng.randint(1, 8)]
        elif op == 4 and len(p) >= 12:  # count fields
            field = rng.choice([4, 6, 8, 10])
            p[field:field + 2] = struct.pack(">H", rng.choice([0, 1, 2, 3, 255, 0xFFFF, rng.randrange(65536)]))
        elif op == 5:  # label-length corruption
            labels = qname_labels(bytes(p))
            if labels:
                i = rng.choice(labels)
                p[i] = rng.choice([0, 1, 2, 62, 63, 64, 65, 100, 127, 128, 191, 192, 193, 255,
                                   (p[i] + 1) & 0xFF, (p[i] - 1) & 0xFF, rng.randrange(256)])
        elif op == 6:  # compression pointers: loops, forward, into the header, past the end
            labels = qname_labels(bytes(p))
            if labels:
                i = rng.choice(labels)
                target = rng.choice([i, 12, 12, rng.randrange(12), i + 2, len(p) + 10, 0x3FFF,
                                     rng.choice(labels), rng.randrange(max(len(p), 1))])
                tail = p[i:]
                end = tail.find(b"\x00")
                rest = tail[end + 1:] if end >= 0 and rng.random() < 0.7 else b""
                p[i:] = struct.pack(">H", 0xC000 | (target & 0x3FFF)) + bytes(rest)
        elif op == 7 and len(p) >= 12:  # OPT records, strange or several
            count = rng.choice([1, 1, 1, 2])
            p += b"".join(opt_rr(rng) for _ in range(count))
            ar = struct.unpack_from(">H", p, 10)[0]
            p[10:12] = struct.pack(">H", rng.choice([ar + count, ar + count, ar, count, ar + count + 1]) & 0xFFFF)
        elif op == 8 and len(p) >= 12:  # header flags: QR, opcode, TC, Z, AD, CD, rcode
            p[2], p[3] = rng.randrange(256), rng.randrange(256)
            if rng.random() < 0.7:
                p[2] &= 0x7F  # keep it a query most of the time, so it reaches the parser
        elif op == 9 and len(p) >= 12:  # a record in answer/authority whose name points somewhere
            name = rng.choice([b"\xc0\x0c", b"\x00", b"\xc0" + bytes([len(p) & 0xFF]), b"\x01a\xc0\x0c"])
            rdata = rng.randbytes(rng.choice([0, 4, 16]))
            p += name + struct.pack(">HHIH", rng.choice([1, 2, 5, 6, 16, 28, 41, rng.randrange(65536)]), 1,
                                    rng.randrange(2**32), rng.choice([len(rdata), len(rdata) + 5])) + rdata
            field = rng.choice([6, 8])
            p[field:field + 2] = struct.pack(">H", (struct.unpack_from(">H", p, field)[0] + 1) & 0xFFFF)
        elif op == 10 and len(p) > 12:  # a second question
            p += p[12:]
            p[4:6] = struct.pack(">H", rng.choice([2, 2, 1, 3]))
        elif op == 11:  # a name over (or just under) 255 octets under the zone
            total = rng.choice([240, 250, 253, 254, 255, 256, 300, 400])
            p = bytearray(p[:12] if len(p) >= 12 else struct.pack(">HHHHHH", rng.randrange(65536), 0x0100, 1, 0, 0, 0))
            p += long_name(rng, total) + struct.pack(">HH", rng.choice([1, 16, 255, 28, 6]), 1)
        elif op == 12:  # odd bytes inside labels: dots, NUL, high bytes, upper case, newline
            labels = qname_labels(bytes(p))
            if labels:
                i = rng.choice(labels)
                if i + 1 < len(p) and 0 < p[i] <= 63:
                    j = i + 1 + rng.randrange(p[i])
                    if j < len(p):
                        p[j] = rng.choice([0x2E, 0x00, 0x0A, 0xFF, 0x80, 0x41, 0x5C, 0x24, rng.randrange(256)])
        elif op == 13 and len(p) >= 12:  # splice with random bytes after the question
            p += rng.randbytes(rng.randint(1, 40))
        elif op == 14:  # class and type
            if len(p) >= 4:
                p[-4:] = struct.pack(">HH", rng.choice([1, 16, 28, 255, 251, 252, 41, 0, rng.randrange(65536)]),
                                     rng.choice([1, 1, 3, 4, 254, 255, 0, rng.randrange(65536)]))
        elif op == 15 and len(p) > 12:  # an empty or root question name
            end = bytes(p).find(b"\x00", 12)
            if end > 12:
                del p[12:end]
    return bytes(p)


class PacketSource:
    """Seeded packets: fully random, random after a query header, and mutated queries."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.bases = base_queries(self.rng)

    def next(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return rng.randbytes(rng.randint(0, 600))
        if roll < 0.3:
            head = struct.pack(">HHHHHH", rng.randrange(65536), rng.choice([0x0000, 0x0100, 0x0110]),
                               rng.choice([1, 1, 0, 2]), 0, 0, rng.choice([0, 0, 1]))
            return head + rng.randbytes(rng.randint(0, 588))
        return mutate(rng, rng.choice(self.bases))


# -- the live run ----------------------------------------------------------------------


TEST_POINTS = [
    (v4name("127.0.0.2"), dns.rcode.NOERROR, ["127.0.0.2"]),
    (v4name("127.0.0.1"), dns.rcode.NXDOMAIN, []),
    (v6name("::ffff:7f00:2"), dns.rcode.NOERROR, ["127.0.0.2"]),
    (v6name("::ffff:7f00:1"), dns.rcode.NXDOMAIN, []),
    ("test." + ORIGIN, dns.rcode.NOERROR, ["127.0.0.2"]),
    ("invalid." + ORIGIN, dns.rcode.NXDOMAIN, []),
]


def check_test_point(reply: dns.message.Message, rcode: int, addresses: list[str]) -> None:
    assert reply.rcode() == rcode, reply
    assert reply.flags & dns.flags.AA, reply
    got = [rr.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset]
    assert got == addresses, reply
    if rcode == dns.rcode.NXDOMAIN:
        assert [rrset.rdtype for rrset in reply.authority] == [dns.rdatatype.SOA], reply


class Stats:
    def __init__(self):
        self.udp_sent = 0
        self.udp_replies = 0
        self.tcp_sent = 0
        self.tcp_replies = 0
        self.sentinel_retries = 0
        self.slowest_sentinel = 0.0  # seconds from a burst's sentinel to its answer
        self.bad_replies: list[str] = []

    def check_reply(self, raw: bytes, transport: str) -> None:
        problem = None
        if len(raw) < 12 or not raw[2] & 0x80:
            problem = "not a response"
        else:
            try:
                dns.message.from_wire(raw)
            except dns.message.Truncated:
                pass
            except Exception as exc:  # dnspython rejects what no resolver should be sent
                problem = f"{type(exc).__name__}: {exc}"
        if problem and len(self.bad_replies) < 20:
            self.bad_replies.append(f"{transport} reply {raw[:600].hex()}: {problem}")


def sentinel(rng: random.Random, serial: int) -> tuple[bytes, bytes, str, int, list[str]]:
    """A test-point query (query, id, name, expected rcode, expected addresses)."""
    name, rcode, addresses = TEST_POINTS[serial % len(TEST_POINTS)]
    query = dns.message.make_query(name, "A", id=rng.randrange(65536)).to_wire()
    return query, query[:2], name, rcode, addresses


def udp_phase(port: int, source: PacketSource, sent_packets: list[bytes], stats: Stats, deadline: float) -> None:
    addr = ("127.0.0.1", port)
    rng = random.Random(SEED + 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, opt, 1 << 21)
    sock.setblocking(False)
    try:
        burst_no = 0
        while stats.udp_sent < UDP_PACKETS:
            assert time.monotonic() < deadline, f"UDP phase too slow: {stats.udp_sent} packets sent"
            for _ in range(min(UDP_BURST, UDP_PACKETS - stats.udp_sent)):
                packet = source.next()
                sent_packets.append(packet)
                while True:
                    try:
                        sock.sendto(packet, addr)
                        break
                    except BlockingIOError:
                        select.select([], [sock], [], 0.5)
                stats.udp_sent += 1
            # The sentinel: UDP is handled in order, so its answer closes the burst.
            query, _, name, rcode, addresses = sentinel(rng, burst_no)
            burst_no += 1
            question = query[12:]
            asked = time.monotonic()
            for attempt in range(4):
                sock.sendto(query, addr)
                if _drain_udp(sock, query[:2], question, stats, timeout=2.0, rcode=rcode, addresses=addresses):
                    stats.slowest_sentinel = max(stats.slowest_sentinel, time.monotonic() - asked)
                    break
                stats.sentinel_retries += 1
            else:
                raise AssertionError(f"the server stopped answering UDP after {stats.udp_sent} packets")
    finally:
        sock.close()


def _drain_udp(sock, qid: bytes, question: bytes, stats: Stats, timeout: float, rcode, addresses) -> bool:
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return False
        while True:
            try:
                raw = sock.recv(65535)
            except BlockingIOError:
                break
            if raw[:2] == qid and raw[4:6] == b"\x00\x01" and raw[12:12 + len(question)] == question:
                check_test_point(dns.message.from_wire(raw), rcode, addresses)
                return True
            stats.udp_replies += 1
            stats.check_reply(raw, "udp")


def read_frames(sock: socket.socket, buf: bytearray) -> list[bytes]:
    frames = []
    while len(buf) >= 2:
        (length,) = struct.unpack_from(">H", buf)
        if len(buf) < 2 + length:
            break
        frames.append(bytes(buf[2:2 + length]))
        del buf[:2 + length]
    return frames


def tcp_conversation(port: int, messages: list[bytes], stats: Stats, rng: random.Random) -> None:
    """Framed messages, pipelined in batches, each batch closed by a sentinel answered last."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        buf = bytearray()
        for start in range(0, len(messages), 50):
            batch = messages[start:start + 50]
            query, qid, name, rcode, addresses = sentinel(rng, start)
            sock.sendall(b"".join(struct.pack(">H", len(m)) + m for m in batch) + struct.pack(">H", len(query)) + query)
            stats.tcp_sent += len(batch)
            done = False
            while not done:
                try:
                    chunk = sock.recv(65535)
                except socket.timeout:
                    raise AssertionError(f"no TCP answer to the sentinel after {stats.tcp_sent} messages") from None
                if not chunk:
                    raise AssertionError(f"the server closed a TCP connection after {stats.tcp_sent} messages")
                buf += chunk
                for frame in read_frames(sock, buf):
                    if frame[:2] == qid and frame[4:6] == b"\x00\x01" and frame[12:len(query)] == query[12:]:
                        check_test_point(dns.message.from_wire(frame), rcode, addresses)
                        done = True
                    else:
                        stats.tcp_replies += 1
                        stats.check_reply(frame, "tcp")


def pointer_chain(count: int) -> bytes:
    """A query whose additional records' names each point at the previous one: deep recursion."""
    out = bytearray(struct.pack(">HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, count))
    out += b"\x01a\x02bl\x07example\x00" + struct.pack(">HH", 1, 1)
    previous = 12
    for _ in range(count):
        here = len(out)
        out += struct.pack(">H", 0xC000 | previous) + struct.pack(">HHIH", 65280, 1, 0, 1) + b"\x00"  # private type
        previous = here
        if len(out) > 65000 or here > 0x3FF0:
            break
    return bytes(out)


def tcp_abuse(port: int, source: PacketSource, stats: Stats, rng: random.Random) -> list[bytes]:
    """Connections that lie about lengths, stop mid-message, reset, or never read."""
    sent = []
    huge = [
        pointer_chain(6000),
        struct.pack(">HHHHHH", 0xBEE0, 0x0100, 1, 0, 0, 0) + long_name(rng, 20000) + struct.pack(">HH", 1, 1),
        struct.pack(">HHHHHH", 0xBEE1, 0x0100, 1, 0, 0, 0) + long_name(rng, 20000) + struct.pack(">HH", 28, 1),
        struct.pack(">HHHHHH", 0xBEE2, 0x0100, 1, 0, 0, 0xFFFF) + b"\x00\x00\x01\x00\x01" + b"\x00" * 60000,
        rng.randbytes(65535),
    ]
    for message in huge:
        sent.append(message)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(struct.pack(">H", len(message)) + message)
            stats.tcp_sent += 1
            sock.shutdown(socket.SHUT_WR)
            buf = bytearray()
            while True:
                try:
                    chunk = sock.recv(65535)
                except (socket.timeout, ConnectionResetError):
                    break
                if not chunk:
                    break
                buf += chunk
            for frame in read_frames(sock, buf):
                stats.tcp_replies += 1
                stats.check_reply(frame, "tcp")
    for n in range(60):
        messages = [source.next() for _ in range(rng.randint(0, 5))]
        sent.extend(messages)
        framed = b"".join(struct.pack(">H", len(m)) + m for m in messages)
        kind = n % 6
        if kind == 0:  # a length promising more than follows
            framed += struct.pack(">H", rng.randint(100, 65535)) + rng.randbytes(rng.randint(0, 90))
        elif kind == 1:  # half a length prefix
            framed += b"\x00"
        elif kind == 2:  # a message cut short
            m = source.next()
            sent.append(m)
            framed += struct.pack(">H", len(m)) + m[: len(m) // 2]
        elif kind == 3:  # lengths 0..11: shorter than a header
            framed += b"".join(struct.pack(">H", k) + rng.randbytes(k) for k in range(12))
        elif kind == 4:  # lengths that do not match the messages: the framing drifts
            framed = b"".join(struct.pack(">H", max(len(m) + rng.randint(-5, 5), 0)) + m for m in messages)
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            if kind == 5 or rng.random() < 0.3:  # reset instead of a clean close
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(framed)
            stats.tcp_sent += len(messages)
        except OSError:
            pass
        finally:
            sock.close()  # without reading anything
    return sent


def replay_offenders(workspace: Workspace, packets: list[bytes], per_kind: int = 2, seconds: float = 15.0) -> list[str]:
    """Packets whose in-process answer logs an escaped exception or does not parse, a few per kind."""
    from rbl.dns.answer import Responder
    from rbl.policy.listing import load_listing_policy
    from rbl.store import ListingStore
    from rbl.zone.config import load_zones
    from rbl.zone.compile import compile_snapshot

    store = ListingStore(workspace.db)
    snapshot = compile_snapshot(store, load_zones(workspace.zones), load_listing_policy(workspace.policy), 1)
    responder = Responder(snapshot)
    errors = Recorder()
    logger = logging.getLogger("rbl.dns.answer")
    logger.addHandler(errors)
    logger.propagate = False  # the offenders are reported below, not as pages of tracebacks
    found: dict[str, list[str]] = {}
    until = time.monotonic() + seconds
    try:
        for packet in packets:
            if time.monotonic() > until:
                break
            for udp in (True, False):
                before = len(errors.records)
                reply = responder.respond(packet, udp)
                kind = detail = None
                if len(errors.records) > before:
                    exc = errors.records[-1].exc_info
                    kind = f"escaped {exc[0].__name__}: {str(exc[1]).split(':')[0]}" if exc else "logged an error"
                elif reply is not None:
                    try:
                        dns.message.from_wire(reply)
                    except dns.message.Truncated:
                        pass
                    except Exception as exc:
                        kind = f"reply does not parse: {type(exc).__name__}"
                        detail = reply[:300].hex()
                if kind:
                    examples = found.setdefault(kind, [])
                    if len(examples) < per_kind:
                        examples.append(f"{'udp' if udp else 'tcp'} packet {packet[:400].hex()}"
                                        + (f" -> reply {detail}" if detail else ""))
                    break
    finally:
        logger.removeHandler(errors)
        logger.propagate = True
        store.close()
    return [f"[{kind}] {example}" for kind, examples in found.items() for example in examples]


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def fuzz_server(workspace):
    workspace.rbl("listing", "add", *LISTINGS, "--reason", "fuzz")
    server = Server(workspace)
    yield server
    server.stop()


def test_live_fuzz_then_every_test_point_still_answers(fuzz_server, workspace):
    server = fuzz_server
    started = time.monotonic()
    deadline = started + 100
    source = PacketSource(SEED)
    stats = Stats()
    udp_packets: list[bytes] = []

    udp_phase(server.port, source, udp_packets, stats, deadline)
    udp_done = time.monotonic()

    rng = random.Random(SEED + 2)
    tcp_packets: list[bytes] = []
    per_connection = TCP_MESSAGES // 8
    for _ in range(8):
        messages = [source.next() for _ in range(per_connection)]
        tcp_packets.extend(messages)
        tcp_conversation(server.port, messages, stats, rng)
        assert time.monotonic() < deadline, "TCP phase too slow"
    tcp_packets.extend(tcp_abuse(server.port, source, stats, rng))
    finished = time.monotonic()
    print(f"\nfuzz seed {SEED}: {stats.udp_sent} UDP packets ({stats.udp_replies} replies, "
          f"{stats.sentinel_retries} sentinel retries, slowest burst answer {stats.slowest_sentinel * 1000:.0f} ms) "
          f"in {udp_done - started:.1f} s; "
          f"{stats.tcp_sent} TCP messages ({stats.tcp_replies} replies) in {finished - udp_done:.1f} s")
    assert stats.udp_sent >= 100_000
    assert stats.udp_sent + stats.tcp_sent >= 100_000 + 3_000

    # Still alive, still right, over both transports.
    assert server.proc.poll() is None, "the server died:\n" + "".join(server.log)
    for name, rcode, addresses in TEST_POINTS:
        check_test_point(server.query(name, "A"), rcode, addresses)
        check_test_point(server.query(name, "A", tcp=True), rcode, addresses)
        check_test_point(server.query(name, "A", use_edns=0), rcode, addresses)
    assert server.query(ORIGIN, "SOA").answer[0].rdtype == dns.rdatatype.SOA

    time.sleep(0.3)  # let the log drainer catch up
    escaped = [line for line in server.log if any(mark in line for mark in ESCAPED)]
    problems = []
    if escaped:
        errors = [line.rstrip() for line in server.log if line.startswith(("dnslib.", "Recursion", "ValueError",
                                                                            "TypeError", "IndexError", "KeyError"))
                  or "Error: " in line and not line.startswith(" ")]
        problems.append(f"{len(escaped)} escaped-exception lines in the server log; exceptions seen: "
                        f"{sorted({e.split(': ')[0] + ': ' + e.split(': ')[1] if e.count(': ') > 1 else e for e in errors})[:10]}")
    if stats.bad_replies:
        problems.append(f"{len(stats.bad_replies)}+ replies dnspython cannot parse, e.g.:\n  "
                        + "\n  ".join(stats.bad_replies[:5]))
    if problems:
        offenders = replay_offenders(workspace, udp_packets + tcp_packets)
        problems.append("offending packets (replayed in-process):\n  " + "\n  ".join(offenders))
        log_tail = "".join(server.log[-15:])
        pytest.fail("\n".join(problems) + f"\nserver log tail:\n{log_tail}")


# -- property test, in-process ---------------------------------------------------------


@pytest.fixture(scope="module")
def responder(tmp_path_factory):
    from rbl.dns.answer import Responder
    from rbl.policy.listing import load_listing_policy
    from rbl.store import ListingStore
    from rbl.zone.config import load_zones
    from rbl.zone.compile import compile_snapshot

    workspace = Workspace(tmp_path_factory.mktemp("fuzz-responder"))
    workspace.rbl("listing", "add", *LISTINGS, "--reason", "fuzz")
    store = ListingStore(workspace.db)
    snapshot = compile_snapshot(store, load_zones(workspace.zones), load_listing_policy(workspace.policy), 2024)
    yield Responder(snapshot)
    store.close()


BASES = base_queries(random.Random(SEED))

PROPERTY = settings(max_examples=600, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# Mutations come from a seed: shrinking a seed teaches nothing, so skip it there.
SEEDED = settings(PROPERTY, max_examples=1500, phases=[Phase.explicit, Phase.reuse, Phase.generate])


def assert_answer_is_sane(responder, data: bytes) -> None:
    errors = Recorder()
    logger = logging.getLogger("rbl.dns.answer")
    logger.addHandler(errors)
    logger.propagate = False  # reported by the assertion below
    try:
        for udp in (True, False):
            reply = responder.respond(data, udp)  # must not raise
            assert not errors.records, (
                f"an exception escaped for packet {data.hex()} (udp={udp}): "
                f"{errors.records[0].exc_info[1]!r}" if errors.records[0].exc_info else errors.records[0].getMessage())
            if reply is None:
                assert len(data) < 12 or data[2] & 0x80, f"no reply to a query: {data.hex()}"
                continue
            assert isinstance(reply, bytes)
            if len(data) >= 2:
                assert reply[:2] == data[:2], "the id is echoed"
            try:
                message = dns.message.from_wire(reply)
            except dns.message.Truncated:
                message = dns.message.from_wire(reply, ignore_trailing=True, raise_on_truncation=False)
            except dns.exception.DNSException as exc:
                raise AssertionError(
                    f"reply dnspython cannot parse ({type(exc).__name__}: {exc})\n"
                    f"packet {data.hex()}\nreply {reply.hex()}") from None
            assert message.flags & dns.flags.QR
            if udp:
                # RFC 6891: no bigger than the requester's payload size (512 without EDNS).
                try:
                    query = dns.message.from_wire(data)
                    limit = max(query.payload, 512) if query.edns >= 0 else 512
                except Exception:  # a query dnspython rejects: only bare or small replies expected
                    limit = 512 if message.edns < 0 else 65535
                assert len(reply) <= limit, f"UDP reply of {len(reply)} bytes over {limit} for {data.hex()}"
    finally:
        logger.removeHandler(errors)
        logger.propagate = True


@PROPERTY
@given(data=st.binary(max_size=600))
def test_responder_survives_random_bytes(responder, data):
    assert_answer_is_sane(responder, data)


@st.composite
def mutated_queries(draw):
    base = draw(st.sampled_from(BASES))
    seed = draw(st.integers(0, 2**32 - 1))
    return mutate(random.Random(seed), base)


@SEEDED
@given(data=mutated_queries())
def test_responder_survives_mutated_queries(responder, data):
    assert_answer_is_sane(responder, data)


@st.composite
def structured_queries(draw):
    """A header, a question built label by label (any length byte, any content), optional OPT and tail."""
    qid = draw(st.integers(0, 65535))
    flags = draw(st.sampled_from([0x0000, 0x0100, 0x0110, 0x0120, 0x0300, 0x2100, 0x8100]) | st.integers(0, 0xFFFF))
    flags = flags if draw(st.integers(0, 3)) == 0 else flags & 0x07FF  # mostly a QUERY, reaching the parser
    # A length byte (any value: 64-191 are no lengths, 192+ pointers) with content near that length.
    any_length = (st.integers(0, 255) | st.integers(60, 70) | st.integers(188, 196)).flatmap(
        lambda n: st.tuples(st.just(n), st.binary(min_size=n, max_size=n)
                            | st.binary(min_size=max(n - 2, 0), max_size=n + 2)))
    labels = draw(st.lists(
        any_length | st.builds(lambda t: (len(t), t), st.binary(min_size=1, max_size=63)),
        max_size=6))
    name = b"".join(bytes([length]) + content for length, content in labels)
    if draw(st.booleans()):
        name += b"\x02bl\x07example"
    name += draw(st.sampled_from([b"\x00", b"\x00", b"\xc0\x0c", b"\xc0\x0e", b"", b"\xc0"]))
    qtype = draw(st.sampled_from([1, 16, 255, 28, 6, 2, 15, 41, 251, 252]) | st.integers(0, 65535))
    qclass = draw(st.sampled_from([1, 1, 3, 254, 255]) | st.integers(0, 65535))
    opt = b""
    if draw(st.booleans()):
        opt = b"\x00" + struct.pack(">HHBBHH", 41, draw(st.integers(0, 65535)), draw(st.integers(0, 255)),
                                    draw(st.sampled_from([0, 0, 1]) | st.integers(0, 255)),
                                    draw(st.integers(0, 65535)), 0)
    counts = draw(st.just((1, 0, 0, 1 if opt else 0)) | st.tuples(
        st.sampled_from([1, 1, 1, 0, 2]), st.sampled_from([0, 0, 1]), st.sampled_from([0, 0, 1]),
        st.just(1 if opt else 0) | st.integers(0, 3)))
    tail = draw(st.binary(max_size=20) | st.just(b""))
    return struct.pack(">HHHHHH", qid, flags, *counts) + name + struct.pack(">HH", qtype, qclass) + opt + tail


@PROPERTY
@given(data=structured_queries())
def test_responder_survives_structured_questions(responder, data):
    assert_answer_is_sane(responder, data)


@PROPERTY
@given(labels=st.lists(st.builds(lambda size, letter: bytes([letter]) * size, st.integers(1, 63), st.integers(97, 122)),
                       min_size=1, max_size=8),
       qtype=st.sampled_from([1, 16, 255, 28, 6]), edns=st.booleans())
def test_responder_answers_any_length_of_name_under_the_zone(responder, labels, qtype, edns):
    """Names up to and past 255 octets: a valid reply (FORMERR past the limit), never an invalid one."""
    name = b"".join(bytes([len(label)]) + label for label in labels) + b"\x02bl\x07example\x00"
    opt = b"\x00" + struct.pack(">HHBBHH", 41, 4096, 0, 0, 0, 0) if edns else b""
    data = struct.pack(">HHHHHH", 0xABCD, 0x0100, 1, 0, 0, 1 if edns else 0) + name + struct.pack(">HH", qtype, 1) + opt
    assert_answer_is_sane(responder, data)
    if len(name) > 255:
        reply = responder.respond(data, True)
        assert reply is not None and reply[3] & 0x0F == dns.rcode.FORMERR, (
            f"a {len(name)}-octet name: FORMERR expected, got {reply and reply.hex()}")
