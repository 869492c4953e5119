"""DESIGN section 6 against a real `rbl serve`: real UDP/TCP sockets, dnspython and raw bytes.

Most tests share one module-scoped server whose store holds a few listings
added through the real CLI before it starts; tests that need a different zone
file (answers bigger than 512 bytes) start their own.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import time

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from conftest import Server, Workspace

ORIGIN = "bl.example"
ZONE_TTL = 2100
NEGATIVE_TTL = 300
SOA_TTL = 3600
NS_TTL = 86400
TXT_TEMPLATE = "Listed by bl.example, see https://bl.example/lookup?q=$"
OUR_PAYLOAD = 1232

LISTED_V4 = "192.0.2.10"
LISTED_V6 = "2001:db8::10"
LISTED_DOMAIN = "example.com"
LISTED_SUBDOMAINS = "*.example.net"


# -- helpers ---------------------------------------------------------------------------


def v4name(address: str) -> str:
    return ".".join(reversed(address.split("."))) + "." + ORIGIN


def nibbles(address: str) -> str:
    """The 32 reversed nibbles of an IPv6 address, without the zone."""
    return ".".join(reversed(f"{int(ipaddress.IPv6Address(address)):032x}"))


def v6name(address: str) -> str:
    return nibbles(address) + "." + ORIGIN


def header(qid: int = 0x4242, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


def wire_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label) + b"\x00"


def question(name: str, qtype: int = 1, qclass: int = 1) -> bytes:
    return wire_name(name) + struct.pack(">HH", qtype, qclass)


def udp_exchange(port: int, payload: bytes, timeout: float = 2.0) -> bytes | None:
    """Send one datagram, return the first reply (None when none came within timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, ("127.0.0.1", port))
        try:
            return sock.recv(65535)
        except socket.timeout:
            return None


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    buf = b""
    while len(buf) < count:
        chunk = sock.recv(count - len(buf))
        if not chunk:
            raise EOFError(f"connection closed after {len(buf)} of {count} bytes")
        buf += chunk
    return buf


def tcp_read_message(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">H", recv_exactly(sock, 2))
    return recv_exactly(sock, length)


def tcp_exchange(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">H", len(payload)) + payload)
        return tcp_read_message(sock)


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the peer closes the connection (EOF or reset), None if it stays open."""
    start = time.monotonic()
    deadline = start + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            try:
                data = sock.recv(65535)
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - start
            if not data:
                return time.monotonic() - start


def rcode_of(reply: bytes) -> int:
    return reply[3] & 0x0F


def assert_authoritative(reply: dns.message.Message) -> None:
    assert reply.flags & dns.flags.QR, reply
    assert reply.flags & dns.flags.AA, f"AA must be set on our answers:\n{reply}"
    assert not reply.flags & dns.flags.RA, f"RA must be clear (no recursion):\n{reply}"


def a_records(reply: dns.message.Message) -> list[str]:
    return [rr.address for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset]


def txt_strings(reply: dns.message.Message) -> list[str]:
    return [b"".join(rr.strings).decode() for rrset in reply.answer
            if rrset.rdtype == dns.rdatatype.TXT for rr in rrset]


def negative_soa(reply: dns.message.Message):
    """The single SOA rrset of a negative answer's authority section."""
    soas = [rrset for rrset in reply.authority if rrset.rdtype == dns.rdatatype.SOA]
    assert len(soas) == 1 and len(soas[0]) == 1, f"one SOA in authority expected:\n{reply}"
    return soas[0]


def assert_nodata(reply: dns.message.Message) -> None:
    assert_authoritative(reply)
    assert reply.rcode() == dns.rcode.NOERROR, f"NODATA (NOERROR) expected:\n{reply}"
    assert reply.answer == [], f"NODATA must have an empty answer:\n{reply}"
    soa = negative_soa(reply)
    assert soa.name == dns.name.from_text(ORIGIN)
    assert soa.ttl == min(SOA_TTL, NEGATIVE_TTL)


def assert_nxdomain(reply: dns.message.Message) -> None:
    assert_authoritative(reply)
    assert reply.rcode() == dns.rcode.NXDOMAIN, f"NXDOMAIN expected:\n{reply}"
    assert reply.answer == []
    soa = negative_soa(reply)
    assert soa.name == dns.name.from_text(ORIGIN)
    assert soa.ttl == min(SOA_TTL, NEGATIVE_TTL)


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def started_at() -> float:
    return time.time()


@pytest.fixture(scope="module")
def srv(tmp_path_factory, started_at):
    """One server for the read-only tests, with a few listings from the real CLI."""
    workspace = Workspace(tmp_path_factory.mktemp("behaviour"))
    workspace.rbl("listing", "add", LISTED_V4, LISTED_V6, LISTED_DOMAIN, LISTED_SUBDOMAINS,
                  "--reason", "test listing")
    server = Server(workspace)
    yield server
    server.stop()


BIG_TXT = "Listed by bl.example; " + "x" * 560 + " see https://bl.example/lookup?q=$"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A server whose TXT template makes every TXT/ANY answer bigger than 512 bytes."""
    workspace = Workspace(tmp_path_factory.mktemp("big"))
    zone_file = workspace.zones / "bl.example.yaml"
    text = zone_file.read_text()
    assert f'txt: "{TXT_TEMPLATE}"' in text
    zone_file.write_text(text.replace(f'txt: "{TXT_TEMPLATE}"', f'txt: "{BIG_TXT}"'))
    server = Server(workspace)
    yield server
    server.stop()


# -- authority, refusal ----------------------------------------------------------------


def test_listed_answer_is_authoritative_without_recursion(srv):
    reply = srv.query("2.0.0.127." + ORIGIN, "A")
    assert_authoritative(reply)
    assert reply.flags & dns.flags.RD, "RD is copied from the query"
    assert a_records(reply) == ["127.0.0.2"]
    assert reply.answer[0].ttl == ZONE_TTL


@pytest.mark.parametrize("name", ["example.org", "bl.example.org", "2.0.0.127.bl.example.org", "example", "."])
def test_names_outside_our_zones_are_refused(srv, name):
    for rdtype in ("A", "TXT", "SOA", "AAAA"):
        reply = srv.query(name, rdtype)
        assert reply.rcode() == dns.rcode.REFUSED, f"{name} {rdtype}:\n{reply}"
        assert not reply.flags & dns.flags.AA, f"REFUSED must not claim authority:\n{reply}"
        assert not reply.flags & dns.flags.RA
        assert reply.answer == [] and reply.authority == []


@pytest.mark.parametrize("name, rdtype", [
    ("2.0.0.127.bl.example", "A"), ("2.0.0.127.bl.example", "TXT"), ("bl.example", "SOA"), ("version.bind", "TXT"),
])
def test_class_ch_is_refused(srv, name, rdtype):
    reply = srv.query(name, rdtype, rdclass=dns.rdataclass.CH)
    assert reply.rcode() == dns.rcode.REFUSED, reply
    assert not reply.flags & dns.flags.AA
    assert reply.answer == []


# -- apex ------------------------------------------------------------------------------


def test_soa_at_the_apex(srv, started_at):
    reply = srv.query(ORIGIN, "SOA")
    assert_authoritative(reply)
    assert reply.rcode() == dns.rcode.NOERROR
    assert len(reply.answer) == 1 and len(reply.answer[0]) == 1, reply
    rrset = reply.answer[0]
    assert rrset.name == dns.name.from_text(ORIGIN)
    assert rrset.ttl == SOA_TTL
    soa = rrset[0]
    assert soa.mname == dns.name.from_text("ns1.bl.example")
    assert soa.rname == dns.name.from_text("hostmaster.bl.example")
    assert (soa.refresh, soa.retry, soa.expire, soa.minimum) == (3600, 600, 604800, NEGATIVE_TTL)
    # The serial is the snapshot's: at least the Unix time it was compiled at.
    assert int(started_at) - 5 <= soa.serial < 2**32
    # Negative answers carry the same SOA rdata (same snapshot).
    neg = negative_soa(srv.query(v4name("192.0.2.99"), "A"))
    assert neg[0].serial == soa.serial


def test_ns_at_the_apex_with_glue(srv):
    reply = srv.query(ORIGIN, "NS")
    assert_authoritative(reply)
    assert reply.rcode() == dns.rcode.NOERROR
    (rrset,) = reply.answer
    assert rrset.ttl == NS_TTL
    assert {rr.target.to_text() for rr in rrset} == {"ns1.bl.example.", "ns2.bl.example."}
    glue = {(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rr.address)
            for rrset in reply.additional for rr in rrset}
    assert glue == {
        ("ns1.bl.example.", "A", "127.0.0.1"),
        ("ns1.bl.example.", "AAAA", "::1"),
        ("ns2.bl.example.", "A", "127.0.0.1"),
    }
    assert all(rrset.ttl == NS_TTL for rrset in reply.additional)


@pytest.mark.parametrize("host, rdtype, expected", [
    ("ns1.bl.example", "A", {"127.0.0.1"}),
    ("ns1.bl.example", "AAAA", {"::1"}),
    ("ns2.bl.example", "A", {"127.0.0.1"}),
    ("NS1.Bl.Example", "AAAA", {"::1"}),
])
def test_glue_hosts_answer_their_addresses(srv, host, rdtype, expected):
    reply = srv.query(host, rdtype)
    assert_authoritative(reply)
    assert reply.rcode() == dns.rcode.NOERROR
    assert {rr.address for rrset in reply.answer for rr in rrset} == expected
    assert reply.answer[0].ttl == NS_TTL


@pytest.mark.parametrize("host, rdtype", [("ns2.bl.example", "AAAA"), ("ns1.bl.example", "MX"),
                                          ("ns1.bl.example", "TXT"), (ORIGIN, "A"), (ORIGIN, "TXT")])
def test_glue_host_and_apex_without_that_type_is_nodata(srv, host, rdtype):
    assert_nodata(srv.query(host, rdtype))


# -- negative answers ------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    v4name("192.0.2.99"), v4name("10.0.0.1"), v6name("2001:db8::11"), "notlisted.example.org." + ORIGIN,
    "example.org." + ORIGIN, "1." + ORIGIN, "e." + ORIGIN,
])
def test_unlisted_names_are_nxdomain_with_soa(srv, name):
    reply = srv.query(name, "A")
    assert_nxdomain(reply)
    soa = negative_soa(reply)[0]
    assert soa.minimum == NEGATIVE_TTL
    # The same over the general path (a type the fast path leaves alone) and TCP.
    assert_nxdomain(srv.query(name, "AAAA"))
    assert_nxdomain(srv.query(name, "A", tcp=True))


@pytest.mark.parametrize("name", [v4name(LISTED_V4), v6name(LISTED_V6), LISTED_DOMAIN + "." + ORIGIN,
                                  "2.0.0.127." + ORIGIN, "test." + ORIGIN])
@pytest.mark.parametrize("rdtype", ["AAAA", "MX", "NS", "SOA"])
def test_listed_name_with_other_type_is_nodata(srv, name, rdtype):
    assert_nodata(srv.query(name, rdtype))


TEST_POINT_6 = "::ffff:7f00:2"
_TP6_HEX = f"{int(ipaddress.IPv6Address(TEST_POINT_6)):032x}"
PARTIAL_NIBBLES = [".".join(reversed(_TP6_HEX[:n])) for n in range(1, 32)]
SIBLING_NIBBLES = ".".join(reversed(_TP6_HEX[:20] + "e"))  # next to ::ffff:0:0/84, holding nothing


@pytest.mark.parametrize("rel", ["127", "0.127", "0.0.127", *PARTIAL_NIBBLES,
                                 "com", "net", "192", "0.192", "2.0.192", "2", "0.2", "1.0.0.2", "8.b.d.0.1.0.0.2"])
def test_empty_non_terminals_are_nodata(srv, rel):
    for rdtype in ("A", "TXT", "AAAA"):
        assert_nodata(srv.query(rel + "." + ORIGIN, rdtype))


@pytest.mark.parametrize("rel", ["128", "1.127", "1.0.127", "f", "1.0.0.0", "org", "example.org", "1.192", "3.2.0.192",
                                 SIBLING_NIBBLES, "3.0.0.2"])
def test_names_with_nothing_below_are_nxdomain(srv, rel):
    # Counter-check for the empty non-terminals: NODATA must not be the default.
    assert_nxdomain(srv.query(rel + "." + ORIGIN, "A"))


def test_subdomain_listing_covers_subdomains_only(srv):
    assert a_records(srv.query("a.b.example.net." + ORIGIN, "A")) == ["127.0.0.2"]
    # As rbldnsd: a domain listing's $ is the listed name, also when a subdomain is asked.
    assert txt_strings(srv.query("a.b.example.net." + ORIGIN, "TXT")) == [
        TXT_TEMPLATE.replace("$", "example.net")]
    assert_nodata(srv.query("example.net." + ORIGIN, "A"))  # *.example.net: the name itself is not listed


def test_domain_listing_added_while_serving_makes_its_parent_an_empty_non_terminal(workspace, server):
    name = "com." + ORIGIN
    assert_nxdomain(server.query(name, "A"))
    workspace.rbl("listing", "add", "example.com")
    server.wait_for(lambda: server.query("example.com." + ORIGIN, "A").rcode() == dns.rcode.NOERROR, timeout=2.0)
    assert_nodata(server.query(name, "A"))
    assert_nodata(server.query(name, "TXT"))


# -- listed answers --------------------------------------------------------------------


@pytest.mark.parametrize("name, subject", [
    (v4name(LISTED_V4), LISTED_V4),
    (v6name(LISTED_V6), LISTED_V6),
    (LISTED_DOMAIN + "." + ORIGIN, LISTED_DOMAIN),
    ("2.0.0.127." + ORIGIN, "127.0.0.2"),
    (v6name(TEST_POINT_6), "127.0.0.2"),  # ::ffff:a.b.c.d is answered as the IPv4 host, as rbldnsd does
    ("test." + ORIGIN, "test"),
])
def test_listed_subjects_answer_one_a_per_code_and_txt_with_the_subject(srv, name, subject):
    reply = srv.query(name, "A")
    assert_authoritative(reply)
    assert reply.rcode() == dns.rcode.NOERROR
    assert a_records(reply) == ["127.0.0.2"], reply
    assert len(reply.answer) == 1 and reply.answer[0].ttl == ZONE_TTL
    assert reply.authority == []

    reply = srv.query(name, "TXT")
    assert_authoritative(reply)
    assert txt_strings(reply) == [TXT_TEMPLATE.replace("$", subject)], reply
    assert reply.answer[0].ttl == ZONE_TTL
    assert a_records(reply) == []

    reply = srv.query(name, "ANY")
    assert_authoritative(reply)
    assert sorted(dns.rdatatype.to_text(r.rdtype) for r in reply.answer) == ["A", "TXT"], reply
    assert a_records(reply) == ["127.0.0.2"]
    assert txt_strings(reply) == [TXT_TEMPLATE.replace("$", subject)]


def test_rbldnsd_code_answers_exactly_that_code(workspace, server, tmp_path):
    data = tmp_path / "codes.rbldnsd"
    data.write_text("192.0.2.20 :4:Listed with code 4 for $\n198.51.100.0/24 :127.0.0.5:range\n192.0.2.21 :6:\n")
    workspace.rbl("listing", "import", str(data), "--format", "rbldnsd")
    server.wait_for(lambda: server.addresses(v4name("192.0.2.20")) != set(), timeout=2.0)
    reply = server.query(v4name("192.0.2.20"), "A")
    assert a_records(reply) == ["127.0.0.4"], reply
    assert txt_strings(server.query(v4name("192.0.2.20"), "TXT")) == ["Listed with code 4 for 192.0.2.20"]
    assert a_records(server.query(v4name("198.51.100.77"), "A")) == ["127.0.0.5"]
    assert sorted(a_records(server.query(v4name("198.51.100.77"), "ANY"))) == ["127.0.0.5"]
    # ":A:" lists without a TXT: A answers, TXT is NODATA, ANY is the A alone.
    assert a_records(server.query(v4name("192.0.2.21"), "A")) == ["127.0.0.6"]
    assert_nodata(server.query(v4name("192.0.2.21"), "TXT"))
    reply = server.query(v4name("192.0.2.21"), "ANY")
    assert a_records(reply) == ["127.0.0.6"] and txt_strings(reply) == []


# -- RFC 5782 section 5 test points ----------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_rfc5782_test_points(srv, tcp):
    assert a_records(srv.query("2.0.0.127." + ORIGIN, "A", tcp=tcp)) == ["127.0.0.2"]
    assert_nxdomain(srv.query("1.0.0.127." + ORIGIN, "A", tcp=tcp))
    listed6 = v6name("::FFFF:7F00:2")
    assert len(listed6.split(".")) == 32 + 2
    assert a_records(srv.query(listed6, "A", tcp=tcp)) == ["127.0.0.2"]
    assert_nxdomain(srv.query(v6name("::FFFF:7F00:1"), "A", tcp=tcp))
    assert a_records(srv.query("test." + ORIGIN, "A", tcp=tcp)) == ["127.0.0.2"]
    assert_nxdomain(srv.query("invalid." + ORIGIN, "A", tcp=tcp))


def test_address_regexes_do_not_accept_a_trailing_newline(srv):
    """`2.0.0.127\\n.bl.example` is not the test point: Python's `$` matches before a final newline."""
    wire = header(0x7777) + wire_name("2.0.0.127\n.bl.example") + struct.pack(">HH", 1, 1)
    reply = dns.message.from_wire(udp_exchange(srv.port, wire))
    assert reply.question[0].name.labels[3] == b"127\n"
    assert reply.rcode() == dns.rcode.NXDOMAIN and a_records(reply) == [], (
        f"a label '127\\n' must not be read as the octet 127:\n{reply}")
    name6 = nibbles("::ffff:7f00:2") + "\n." + ORIGIN
    reply = dns.message.from_wire(udp_exchange(srv.port, header(0x7778) + wire_name(name6) + struct.pack(">HH", 1, 1)))
    assert reply.rcode() == dns.rcode.NXDOMAIN and a_records(reply) == [], reply


# -- case ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, rdtype", [
    ("2.0.0.127.BL.EXAMPLE", "A"), ("2.0.0.127.Bl.ExAmPlE", "TXT"), ("TEST.BL.EXAMPLE", "ANY"),
    ("EXAMPLE.COM.BL.EXAMPLE", "A"), ("BL.EXAMPLE", "SOA"), ("2.0.0.127.BL.EXAMPLE", "AAAA"),
])
def test_names_are_case_insensitive_and_the_question_case_is_echoed(srv, name, rdtype):
    query = dns.message.make_query(name, rdtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query.to_wire(), ("127.0.0.1", srv.port))
        raw = sock.recv(65535)
    reply = dns.message.from_wire(raw)
    assert_authoritative(reply)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.question[0].name.to_text() == name + ".", "the question is echoed as asked"
    if rdtype == "AAAA":
        assert reply.answer == [] and negative_soa(reply)
    else:
        assert reply.answer, reply
    assert wire_name(name) in raw
    if rdtype == "A":
        assert a_records(reply) == ["127.0.0.2"]


# -- EDNS0 -----------------------------------------------------------------------------


@pytest.mark.parametrize("name, rdtype", [("2.0.0.127." + ORIGIN, "A"), ("2.0.0.127." + ORIGIN, "TXT"),
                                          ("1.0.0.127." + ORIGIN, "A"), (ORIGIN, "SOA"), (ORIGIN, "NS"),
                                          ("2.0.0.127." + ORIGIN, "AAAA")])
def test_edns_opt_is_echoed_with_our_payload_and_the_do_bit(srv, name, rdtype):
    reply = srv.query(name, rdtype, use_edns=0, payload=4096)
    assert reply.edns == 0, f"OPT version 0 expected:\n{reply}"
    assert reply.payload == OUR_PAYLOAD
    assert not reply.ednsflags & dns.flags.DO
    assert reply.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)

    reply = srv.query(name, rdtype, use_edns=0, payload=1400, want_dnssec=True)
    assert reply.edns == 0 and reply.payload == OUR_PAYLOAD
    assert reply.ednsflags & dns.flags.DO, "DO is copied into the reply (RFC 3225)"

    reply = srv.query(name, rdtype)
    assert reply.edns == -1, "no OPT in the reply to a query without one"


@pytest.mark.parametrize("name, rdtype", [("2.0.0.127." + ORIGIN, "A"), (ORIGIN, "SOA"), ("example.org", "A")])
@pytest.mark.parametrize("version", [1, 2, 255])
def test_edns_version_above_zero_is_badvers_with_opt(srv, name, rdtype, version):
    reply = srv.query(name, rdtype, use_edns=version)
    assert reply.rcode() == dns.rcode.BADVERS, f"BADVERS (16) expected:\n{reply}"
    assert reply.edns == 0, "the OPT of a BADVERS reply names the version we speak"
    assert reply.payload == OUR_PAYLOAD
    assert reply.answer == []


def test_small_advertised_payload_is_treated_as_512(srv):
    reply = srv.query("2.0.0.127." + ORIGIN, "ANY", use_edns=0, payload=100)
    assert not reply.flags & dns.flags.TC
    assert a_records(reply) == ["127.0.0.2"] and len(txt_strings(reply)) == 1


@pytest.mark.parametrize("rdtype", ["TXT", "ANY"])
def test_answers_bigger_than_512_bytes_are_truncated_without_edns(big, rdtype):
    name = "2.0.0.127." + ORIGIN
    expected_txt = BIG_TXT.replace("$", "127.0.0.2")

    plain = dns.message.make_query(name, rdtype, id=0x1111)
    raw = udp_exchange(big.port, plain.to_wire())
    assert raw is not None and len(raw) <= 512
    reply = dns.message.from_wire(raw)
    assert reply.id == 0x1111
    assert reply.flags & dns.flags.TC, f"TC expected for an answer over 512 bytes:\n{reply}"
    assert reply.answer == []
    assert reply.question[0].name == dns.name.from_text(name)

    # EDNS with a big buffer: the whole answer over UDP.
    reply = big.query(name, rdtype, use_edns=0, payload=4096)
    assert not reply.flags & dns.flags.TC
    assert txt_strings(reply) == [expected_txt]
    assert reply.edns == 0

    # EDNS with a buffer smaller than the answer: TC, with the OPT kept.
    raw = udp_exchange(big.port, dns.message.make_query(name, rdtype, use_edns=0, payload=600).to_wire())
    assert raw is not None and len(raw) <= 600
    reply = dns.message.from_wire(raw)
    assert reply.flags & dns.flags.TC and reply.answer == []
    assert reply.edns == 0

    # TCP: the whole answer, whatever the size.
    reply = big.query(name, rdtype, tcp=True)
    assert not reply.flags & dns.flags.TC
    assert txt_strings(reply) == [expected_txt]

    # A stub resolver's fallback: UDP says TC, TCP answers.
    reply, used_tcp = dns.query.udp_with_fallback(plain, "127.0.0.1", port=big.port, timeout=5)
    assert used_tcp
    assert txt_strings(reply) == [expected_txt]
    # The A answer alone still fits without EDNS.
    assert big.addresses(name) == {"127.0.0.2"}


# -- malformed packets -----------------------------------------------------------------


MALFORMED = {
    "truncated question": header(0x0101) + b"\x01" + b"2\x010",
    "question without type and class": header(0x0102) + wire_name("2.0.0.127.bl.example"),
    "qdcount 2": header(0x0103, qd=2) + question("2.0.0.127.bl.example") + question("test.bl.example"),
    "qdcount 0": header(0x0104, qd=0),
    "label length past the end": header(0x0105) + b"\x01" + b"2\x3fabc",
    "pointer to itself": header(0x0106) + b"\xc0\x0c" + struct.pack(">HH", 1, 1),
    "pointer forward": header(0x0107) + b"\xc0\x20" + struct.pack(">HH", 1, 1) + b"\x00" * 20,
    "pointer past the end": header(0x0108) + b"\x01" + b"2\xc0\xff" + struct.pack(">HH", 1, 1),
    "ancount without records": header(0x0109, an=1) + question("2.0.0.127.bl.example"),
    "two OPT records": header(0x010A, ar=2) + question("2.0.0.127.bl.example")
    + (b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)) * 2,
    "OPT rdlen past the end": header(0x010B, ar=1) + question("2.0.0.127.bl.example")
    + b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 40),
    # RFC 1035 2.3.4: labels are 63 octets or less; 0x40-0xbf are not lengths at all.
    "label length 64": header(0x010C) + b"\x40" + b"a" * 64 + wire_name("bl.example") + struct.pack(">HH", 28, 1),
    "label length 64, type A": header(0x010D) + b"\x40" + b"a" * 64 + wire_name("bl.example")
    + struct.pack(">HH", 1, 1),
    # RFC 1035 2.3.4: names are 255 octets or less.
    "name over 255 octets, type A": header(0x010E)
    + wire_name(".".join(["a" * 63] * 4) + ".bl.example") + struct.pack(">HH", 1, 1),
    "name over 255 octets, type AAAA": header(0x010F)
    + wire_name(".".join(["a" * 63] * 4) + ".bl.example") + struct.pack(">HH", 28, 1),
}


@pytest.mark.parametrize("label", list(MALFORMED))
def test_malformed_questions_are_formerr_with_the_id_echoed(srv, label):
    packet = MALFORMED[label]
    logged = len(srv.log)

    def escaped() -> str:
        time.sleep(0.05)
        lines = [line for line in srv.log[logged:] if "unexpected error" in line or "Traceback" in line]
        return "".join(srv.log[logged:]) if lines else ""

    for transport in ("udp", "tcp"):
        try:
            reply = udp_exchange(srv.port, packet, 1.0) if transport == "udp" else tcp_exchange(srv.port, packet, 1.0)
        except (socket.timeout, EOFError):
            reply = None
        assert reply is not None, (
            f"{label} over {transport}: no reply, FORMERR expected; packet {packet.hex()}\n"
            f"server log:\n{escaped() or '(nothing logged)'}")
        assert reply[:2] == packet[:2], "the id is echoed"
        assert reply[2] & 0x80, "QR set"
        assert rcode_of(reply) == dns.rcode.FORMERR, (
            f"{label} over {transport}: rcode {dns.rcode.to_text(rcode_of(reply))}, FORMERR expected; "
            f"packet {packet.hex()} reply {reply.hex()}")
        assert not reply[3] & 0x80, "RA clear"
    assert srv.proc.poll() is None
    assert not escaped(), f"{label}: an exception escaped into the server log:\n{escaped()}"


def test_packets_shorter_than_a_header_and_responses_get_no_reply(srv):
    valid = dns.message.make_query("2.0.0.127." + ORIGIN, "A", id=0x5151).to_wire()
    as_response = bytearray(dns.message.make_query("2.0.0.127." + ORIGIN, "A", id=0x6161).to_wire())
    as_response[2] |= 0x80
    silent = [b"", b"\x12", valid[:2], valid[:11], bytes(as_response), bytes(as_response[:12]),
              header(0x6262, flags=0x8000 | 0x2000)]  # a NOTIFY response: still a response
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        for packet in silent:
            sock.sendto(packet, ("127.0.0.1", srv.port))
        sock.sendto(valid, ("127.0.0.1", srv.port))
        # UDP is answered in order: anything the server said to the junk arrives first.
        first = sock.recv(65535)
        assert first[:2] == b"\x51\x51", f"a reply to a packet that deserves none: {first.hex()}"
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            extra = sock.recv(65535)
            pytest.fail(f"unexpected extra datagram {extra.hex()}")
    # Over TCP too: the connection stays usable and only the real query is answered.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"".join(struct.pack(">H", len(p)) + p for p in silent) + struct.pack(">H", len(valid)) + valid)
        assert tcp_read_message(sock)[:2] == b"\x51\x51"


@pytest.mark.parametrize("opcode", [1, 2, 3, 4, 5, 6, 15])
def test_opcodes_other_than_query_are_notimp(srv, opcode):
    qid = 0x3000 + opcode
    flags = (opcode << 11) | 0x0100
    for packet in (header(qid, flags) + question("2.0.0.127.bl.example"), header(qid, flags, qd=0)):
        reply = udp_exchange(srv.port, packet)
        assert reply is not None, f"opcode {opcode}: no reply, NOTIMP expected"
        assert reply[:2] == packet[:2], "the id is echoed"
        assert reply[2] & 0x80
        assert (reply[2] >> 3) & 0x0F == opcode, "the opcode is echoed"
        assert rcode_of(reply) == dns.rcode.NOTIMP, f"opcode {opcode}: {reply.hex()}"
        assert tcp_exchange(srv.port, packet)[:4] == reply[:4]


def pointer_chain(count: int) -> bytes:
    """A query whose additional records' owner names each point at the previous one."""
    out = bytearray(header(0xBEEF, ar=count)) + question("a.bl.example")
    previous = 12
    for _ in range(count):
        here = len(out)
        out += struct.pack(">H", 0xC000 | previous) + struct.pack(">HHIH", 65280, 1, 0, 1) + b"\x00"
        previous = here
    return bytes(out)


HOSTILE = {
    # Each name costs a walk through every earlier one: quadratic work in the parser.
    "900 chained compression pointers (12 KB)": pointer_chain(900),
    # 10,000 one-octet labels: far past the 255-octet limit, a quadratic zone search.
    "a 10000-label question name, type AAAA (20 KB)":
        header(0xBEF0) + b"\x01a" * 10000 + wire_name(ORIGIN) + struct.pack(">HH", 28, 1),
}


@pytest.mark.parametrize("label", list(HOSTILE))
def test_one_hostile_message_does_not_stall_the_server(srv, label):
    """A single message must not keep the (single-threaded) server busy for long (normal: < 5 ms)."""
    hostile = HOSTILE[label]
    assert len(hostile) < 65535
    with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as sock:
        started = time.monotonic()
        sock.sendall(struct.pack(">H", len(hostile)) + hostile)
        time.sleep(0.02)
        # Meanwhile, an ordinary receiver asks over UDP.
        assert srv.addresses("2.0.0.127." + ORIGIN) == {"127.0.0.2"}
        bystander = time.monotonic() - started
        try:
            reply = tcp_read_message(sock)
        except (EOFError, socket.timeout):
            reply = None
        took = time.monotonic() - started
    assert bystander < 0.5, f"{label}: an unrelated UDP query waited {bystander:.2f} s for its answer"
    assert reply is not None, f"{label}: no reply"
    assert took < 0.5, f"{label}: the server took {took:.2f} s to answer one message"
    if label.startswith("a 10000-label"):
        assert rcode_of(reply) == dns.rcode.FORMERR, f"names over 255 octets are malformed: {reply[:12].hex()}"


# -- TCP (RFC 7766) --------------------------------------------------------------------


def test_tcp_pipelined_queries_are_answered_in_order(srv):
    queries = [
        dns.message.make_query("2.0.0.127." + ORIGIN, "A", id=101),
        dns.message.make_query("1.0.0.127." + ORIGIN, "A", id=102),
        dns.message.make_query(ORIGIN, "SOA", id=103),  # the general path, slower
        dns.message.make_query("test." + ORIGIN, "TXT", id=104),
        dns.message.make_query("example.org", "A", id=105),
    ]
    wire = b"".join(struct.pack(">H", len(w)) + w for w in (q.to_wire() for q in queries))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(wire)  # one write
        replies = [dns.message.from_wire(tcp_read_message(sock)) for _ in queries]
    assert [r.id for r in replies] == [101, 102, 103, 104, 105]
    assert a_records(replies[0]) == ["127.0.0.2"]
    assert replies[1].rcode() == dns.rcode.NXDOMAIN
    assert replies[2].answer[0].rdtype == dns.rdatatype.SOA
    assert txt_strings(replies[3]) == [TXT_TEMPLATE.replace("$", "test")]
    assert replies[4].rcode() == dns.rcode.REFUSED


def test_tcp_idle_and_half_sent_connections_are_closed_without_blocking_others(srv):
    from rbl.dns.server import TCP_IDLE_SECONDS

    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    half_length = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    half_message = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    after_a_query = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        query = dns.message.make_query("2.0.0.127." + ORIGIN, "A").to_wire()
        half_length.sendall(b"\x00")                                    # half a length prefix
        half_message.sendall(struct.pack(">H", len(query)) + query[:10])  # a prefix promising more
        after_a_query.sendall(struct.pack(">H", len(query)) + query)
        assert dns.message.from_wire(tcp_read_message(after_a_query)).rcode() == dns.rcode.NOERROR
        opened = time.monotonic()

        # Other clients are served meanwhile, over UDP and TCP.
        for tcp in (False, True, False, True):
            assert srv.addresses("2.0.0.127." + ORIGIN) == {"127.0.0.2"}
            assert a_records(srv.query("test." + ORIGIN, "A", tcp=tcp)) == ["127.0.0.2"]

        for sock, what in ((idle, "an idle connection"), (half_length, "half a length prefix"),
                           (half_message, "a truncated message"), (after_a_query, "idle after a query")):
            left = TCP_IDLE_SECONDS + 5 - (time.monotonic() - opened)
            took = closed_within(sock, max(left, 0.1))
            assert took is not None, f"{what}: still open {TCP_IDLE_SECONDS + 5} s later"
        assert time.monotonic() - opened >= TCP_IDLE_SECONDS - 1, "closed before the idle timeout"
    finally:
        for sock in (idle, half_length, half_message, after_a_query):
            sock.close()
    assert srv.addresses("2.0.0.127." + ORIGIN) == {"127.0.0.2"}


def test_tcp_connection_limit(srv):
    from rbl.dns.server import TCP_MAX_CONNECTIONS

    query = dns.message.make_query("2.0.0.127." + ORIGIN, "A", id=77).to_wire()
    framed = struct.pack(">H", len(query)) + query
    held = []
    refused = None
    try:
        # Open connections, each answered, until one is closed at once instead.
        for _ in range(TCP_MAX_CONNECTIONS + 5):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=3)
            try:
                sock.sendall(framed)
                assert tcp_read_message(sock)[:2] == query[:2]
            except (EOFError, ConnectionResetError, BrokenPipeError):
                refused = sock
                break
            held.append(sock)
        assert refused is not None, f"{len(held)} connections held open and none refused"
        refused.close()
        # Connections of earlier tests may still be counted for a moment: allow a little slack.
        assert TCP_MAX_CONNECTIONS - 2 <= len(held) <= TCP_MAX_CONNECTIONS, len(held)
        # UDP is unaffected.
        assert srv.addresses("2.0.0.127." + ORIGIN) == {"127.0.0.2"}
        # A closed connection frees its slot.
        held.pop().close()
        deadline = time.monotonic() + 3
        while True:
            try:
                reply = dns.message.from_wire(tcp_exchange(srv.port, query, timeout=1))
                break
            except (EOFError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert a_records(reply) == ["127.0.0.2"]
    finally:
        for sock in held:
            sock.close()


def test_axfr_is_refused(srv):
    query = dns.message.make_query(ORIGIN, "AXFR")
    reply = dns.message.from_wire(tcp_exchange(srv.port, query.to_wire()))
    assert reply.rcode() == dns.rcode.REFUSED
    assert reply.answer == []
