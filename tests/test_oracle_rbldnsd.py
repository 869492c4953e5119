"""rbldnsd as an oracle: the same listings loaded into rbl and into the real rbldnsd
(``ip4trie``, ``ip6trie``, ``dnset``) must answer the same rcode, A set and TXT.

A seeded random data set (so every run asks the same questions) holds single IPv4
addresses, CIDRs of every length 8..32, nested and overlapping CIDRs, exclusions
(``!``) inside listings and listings inside exclusions, IPv6 prefixes of every
length 32..128 with the same nesting, and domains in the three dnset forms
(``name``, ``*.name``, ``.name``) with exclusions. The data is written once as
rbldnsd data files; rbldnsd serves those files and rbl imports the same files
(``rbl listing import --format rbldnsd``, which also carries the per-entry
``:A:TXT`` values). More than 10,000 questions (A, TXT and some ANY) go to both
servers: every range edge (first, last, first-1, last+1 of each CIDR and
exclusion), random addresses inside and outside, partial names, domains, parents,
subdomains, unlisted names and mixed-case spellings.

Where rbl deliberately differs from rbldnsd the test says so and checks rbl's
own answer instead (DESIGN.md section 6):

- Empty non-terminals (``127.bl.example``, ``0.0.127.bl.example``, partial IPv6
  nibble paths, ``com.bl.example`` when ``x.com`` is listed, the parent of a
  ``*.`` listing): rbl answers NOERROR/NODATA with the SOA, rbldnsd NXDOMAIN. An
  independent model of the listings (longest prefix / nearest wildcard wins, an
  exclusion is a hole) says which names are empty non-terminals.
- rbl always puts the SOA (owner: the zone's origin, TTL: the negative TTL) in
  the authority section of NXDOMAIN and NODATA answers.

Only the answer section is compared besides that: rbldnsd adds NS records to the
authority section of positive answers (when it has a $NS line) and rbl does not.

Each kind of question is compared by its own test, so one divergence fails one
test: IPv4, IPv6, domains named by an entry, domains listed through a wildcard
above them, IPv4-mapped IPv6 names and entries with ``:A:TXT`` values of their own.

rbldnsd behaviour worth knowing (rbldnsd 1.0pre, found by running it):

- ``$`` in a dnset TXT is the listed entry's name: ``a.b.example.com`` listed
  through ``*.example.com`` answers ``example.com``. For ip4trie/ip6trie it is
  the address asked about (IPv6 in RFC 5952 text, as Python prints it).
- An IPv4-mapped nibble name (``::ffff:a.b.c.d``, such as the RFC 5782 test
  point ``::ffff:7f00:2``) is answered from the zone's IPv4 datasets with ``$``
  the dotted quad; ip6trie entries in ``::ffff:0:0/96`` are never consulted.
- ``:A:`` (a second colon, nothing after it) lists with that A and no TXT record;
  ``$$`` is a literal ``$``.
- rbldnsd refuses to keep running as root: it reads its data, then becomes the
  ``rbldns`` user (``-u``). ``-c 0`` keeps it from rereading the files.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import random
import select
import socket
import struct
import subprocess
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import yaml

from conftest import Server, Workspace, peer_on_free_port, require_tool, stop_process
from oracle_model import (
    BOTH, EXACT, MIN_QUERIES, SEED, SUB, VALUES, DataSet, Dom, Model, Net, Question,
)

def address_name(version: int, value: int) -> str:
    if version == 4:
        return ".".join(reversed(str(ipaddress.IPv4Address(value)).split(".")))
    return ".".join(reversed(f"{value:032x}"))


def build_questions(data: DataSet, rng: random.Random) -> list[Question]:
    names: list[str] = []
    for version, nets in ((4, data.ip4), (6, data.ip6)):
        bits = 32 if version == 4 else 128
        values: set[int] = set()
        for n in nets:  # every range edge, and one address inside
            values.update(v for v in (n.lo - 1, n.lo, n.hi - 1, n.hi) if 0 <= v < 1 << bits)
            values.add(n.lo + rng.getrandbits(bits - n.plen))
        for _ in range(400 if version == 4 else 200):  # anywhere, mostly not listed
            values.add(rng.getrandbits(bits) if version == 4 or rng.random() < 0.3
                       else rng.choice(data.ip6).lo & ~((1 << 96) - 1) | rng.getrandbits(96))
        ordered = sorted(values)
        names += [address_name(version, v) for v in ordered]
        if version == 4:  # the same addresses IPv4-mapped: ::ffff:a.b.c.d
            names += [address_name(6, 0xFFFF00000000 | v) for v in rng.sample(ordered, 300)]
        # Partial names: the top octets or nibbles of sampled addresses.
        for v in rng.sample(ordered, 300):
            labels = address_name(version, v).split(".")
            keep = rng.randint(1, 3) if version == 4 else rng.randint(1, 31)
            names.append(".".join(labels[-keep:]))
    # The test points, and partial names above them.
    point6 = address_name(6, 0xFFFF7F000002)
    names += ["2.0.0.127", "1.0.0.127", "3.0.0.127", "127", "0.127", "0.0.127",
              point6, address_name(6, 0xFFFF7F000001), point6[-39:], point6[-15:]]
    for d in data.domains:
        parent = d.name.split(".", 1)[1]
        names += [d.name, f"www.{d.name}", f"{data.label()}.{data.label()}.{d.name}", parent,
                  f"{data.label()}.{parent}"]
    names += [f"{data.label()}.{rng.choice(('com', 'net', 'org', 'io'))}" for _ in range(100)]
    names += ["test", "invalid", f"{data.label()}.test", "www.invalid"]
    # A few mixed-case spellings: names are case-insensitive, so are the answers.
    names += ["".join(c.upper() if rng.random() < 0.5 else c for c in n) for n in rng.sample(names, 200)]
    names = list(dict.fromkeys(names))
    questions = [Question(n, t) for n in names for t in ("A", "TXT")]
    questions += [Question(n, "ANY") for n in rng.sample(names, 400)]
    return questions


# --------------------------------------------------------------------------
# Asking many questions quickly: pipelined UDP, retried on loss


def question_wire(name: str, qtype: str) -> bytes:
    """Header (id 0, RD) and question of a query; built by hand: dnspython is slow at it."""
    labels = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split("."))
    return (struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0) + labels + b"\x00"
            + struct.pack(">HH", dns.rdatatype.from_text(qtype), 1))


def ask_all(port: int, wires: list[bytes], window: int = 256,
            timeout: float = 1.0, attempts: int = 5) -> list[dns.message.Message]:
    """The replies to many queries (wires from :func:`question_wire`), over one UDP socket."""
    replies: list[dns.message.Message | None] = [None] * len(wires)
    pending: dict[int, list] = {}  # id -> [index, sent at, tries]
    next_index = 0
    next_id = 0
    deadline = time.monotonic() + 120
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)

        def send(qid: int, index: int) -> None:
            sock.send(struct.pack(">H", qid) + wires[index][2:])

        while next_index < len(wires) or pending:
            assert time.monotonic() < deadline, "the server took more than two minutes to answer"
            while next_index < len(wires) and len(pending) < window:
                while next_id in pending:
                    next_id = (next_id + 1) & 0xFFFF
                pending[next_id] = [next_index, time.monotonic(), 1]
                send(next_id, next_index)
                next_id = (next_id + 1) & 0xFFFF
                next_index += 1
            ready, _, _ = select.select([sock], [], [], 0.05)
            if ready:
                while True:
                    try:
                        data = sock.recv(65535)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    entry = pending.get(struct.unpack(">H", data[:2])[0])
                    if entry is None:
                        continue  # a late duplicate of a retried query
                    question = wires[entry[0]][12:]
                    if data[12:12 + len(question)].lower() != question.lower():
                        continue
                    replies[entry[0]] = dns.message.from_wire(data)
                    del pending[struct.unpack(">H", data[:2])[0]]
            now = time.monotonic()
            for qid, entry in list(pending.items()):
                if now - entry[1] > timeout:
                    if entry[2] >= attempts:
                        name = dns.message.from_wire(wires[entry[0]]).question[0]
                        raise AssertionError(f"no answer to {name} after {attempts} tries")
                    entry[1], entry[2] = now, entry[2] + 1
                    send(qid, entry[0])
    return replies  # type: ignore[return-value]


@dataclass(frozen=True)
class Summary:
    """What the issue compares: rcode, the A set, the TXT strings (and the answer TTLs)."""

    rcode: str
    a: frozenset
    txt: tuple
    ttls: frozenset
    others: tuple  # answer records of any other type (there should be none)

    def __str__(self) -> str:
        parts = [self.rcode]
        if self.a:
            parts.append("A=" + ",".join(sorted(self.a)))
        if self.txt:
            parts.append("TXT=" + "|".join(repr(t) for t in self.txt))
        if self.ttls:
            parts.append("ttl=" + ",".join(map(str, sorted(self.ttls))))
        if self.others:
            parts.append("other=" + ",".join(self.others))
        return " ".join(parts)


def summarize(msg: dns.message.Message) -> Summary:
    a, txt, ttls, others = set(), [], set(), []
    for rrset in msg.answer:
        ttls.add(rrset.ttl)
        for rr in rrset:
            if rr.rdtype == dns.rdatatype.A:
                a.add(rr.address)
            elif rr.rdtype == dns.rdatatype.TXT:
                txt.append(b"".join(rr.strings).decode("ascii", "replace"))
            else:
                others.append(dns.rdatatype.to_text(rr.rdtype))
    return Summary(dns.rcode.to_text(msg.rcode()), frozenset(a), tuple(sorted(txt)), frozenset(ttls), tuple(others))


# --------------------------------------------------------------------------
# The two servers


@dataclass
class Zone:
    origin: str
    ttl: int
    negative_ttl: int
    soa: dict
    txt: str


def read_zone(workspace: Workspace) -> Zone:
    raw = yaml.safe_load((workspace.zones / "bl.example.yaml").read_text())
    return Zone(raw["origin"], int(raw["ttl"]), int(raw["negative_ttl"]), raw["soa"], raw["txt"])


class Rbldnsd:
    """The real rbldnsd on a free loopback port, serving the data files of ``directory``."""

    def __init__(self, binary: str, directory: Path, zone: Zone, datasets: list[str]):
        self.log_path = directory / "rbldnsd.log"
        cmd = [binary, "-n", "-c", "0", "-t", str(zone.ttl), "-w", str(directory)]
        if os.geteuid() == 0:  # rbldnsd refuses to keep running as root
            try:
                pwd.getpwnam("rbldns")
            except KeyError:
                cmd += ["-u", "nobody"]

        def start(port: int) -> subprocess.Popen:
            with open(self.log_path, "w") as log:
                return subprocess.Popen(cmd + ["-b", f"127.0.0.1/{port}", *datasets],
                                        stdout=log, stderr=subprocess.STDOUT, cwd=directory)

        self.proc, self.port = peer_on_free_port("rbldnsd", start, zone.origin, 15, lambda: self.log)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class Result:
    q: Question
    rbl: dns.message.Message  # rbl's reply
    ref: dns.message.Message  # rbldnsd's reply
    got: Summary = field(init=False)
    want: Summary = field(init=False)

    def __post_init__(self) -> None:
        self.got, self.want = summarize(self.rbl), summarize(self.ref)


@dataclass
class Oracle:
    zone: Zone
    data: DataSet
    model: Model
    results: list[Result]
    seconds: float
    rbldnsd_log: str
    by_category: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups = defaultdict(list)
        for r in self.results:
            groups[r.q.category].append(r)
        self.by_category = dict(groups)


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> Oracle:
    binary = require_tool("rbldnsd")
    started = time.monotonic()
    workspace = Workspace(tmp_path_factory.mktemp("oracle"))
    zone = read_zone(workspace)
    data = DataSet(SEED)

    directory = workspace.root / "rbldnsd"
    directory.mkdir()
    default = f":127.0.0.2:{zone.txt}"
    files = {"ip4.data": data.ip4, "ip6.data": data.ip6, "dom.data": data.domains}
    for name, entries in files.items():
        (directory / name).write_text("\n".join([default, *(e.line for e in entries)]) + "\n")
    # rbl always serves the RFC 5782 test points; rbldnsd gets them from these files
    # (::ffff:7f00:2 through 127.0.0.2, as it answers IPv4-mapped names from IPv4
    # data). 127.0.0.1, ::ffff:7f00:1 and "invalid" stay unlisted in both.
    soa = zone.soa
    test_points4 = [Net(4, 0x7F000002, 32)]
    test_points6 = [Net(6, 0xFFFF7F000002, 128)]  # rbl's view, for its empty non-terminals
    test_domains = [Dom("test", EXACT)]
    (directory / "points4.data").write_text(
        f"$SOA {soa['ttl']} {soa['mname']} {soa['rname']} 1 {soa['refresh']} {soa['retry']} {soa['expire']} "
        f"{zone.negative_ttl}\n{default}\n127.0.0.2\n")
    (directory / "pointsd.data").write_text(f"{default}\ntest\n")
    for path in directory.iterdir():
        path.chmod(0o644)

    for name in files:
        workspace.rbl("listing", "import", str(directory / name), "--format", "rbldnsd", "--expires", "never")

    origin = zone.origin
    ref = Rbldnsd(binary, directory, zone, [
        f"{origin}:ip4trie:points4.data,ip4.data",
        f"{origin}:ip6trie:ip6.data",
        f"{origin}:dnset:pointsd.data,dom.data",
    ])
    server = None
    try:
        server = Server(workspace)
        listed = next(n for n in data.ip4 if not n.exclude and n.plen == 32 and not n.value)
        probe = f"{address_name(4, listed.lo)}.{origin}"
        server.wait_for(lambda: server.addresses(probe) == {"127.0.0.2"}, timeout=10)

        model = Model(data, test_points4, test_points6, test_domains)
        questions = [model.classify(q) for q in build_questions(data, random.Random(SEED + 1))]
        wires = [question_wire(f"{q.rel}.{origin}", q.qtype) for q in questions]
        ours = ask_all(server.port, wires)
        theirs = ask_all(ref.port, wires)
        results = [Result(q, a, b) for q, a, b in zip(questions, ours, theirs)]
        log = ref.log
    finally:
        if server is not None:
            server.stop()
        ref.stop()
    return Oracle(zone, data, model, results, time.monotonic() - started, log)


# --------------------------------------------------------------------------
# Comparing


def mismatch_report(results: list[Result], limit: int = 4) -> str:
    """Mismatches grouped by what differs, with a few examples of each."""
    groups: dict[tuple, list[str]] = defaultdict(list)
    for r in results:
        got, want = r.got, r.want
        what = [k for k in ("rcode", "a", "txt", "ttls", "others") if getattr(got, k) != getattr(want, k)
                and (k != "ttls" or (got.ttls and want.ttls))]  # no answer has no TTL to differ in
        matched = r.q.matched.line if r.q.matched is not None else "-"
        value = getattr(r.q.matched, "value", "")
        key = (r.q.family + (f" entries '{value}'" if value else ""), r.q.qtype, got.rcode, want.rcode,
               "+".join(what))
        groups[key].append(f"    {r.q.rel} {r.q.qtype} (entry {matched!r}):\n"
                           f"      rbl:     {got}\n      rbldnsd: {want}")
    lines = []
    for key, examples in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        family, qtype, ours, theirs, what = key
        lines.append(f"  {len(examples)} x {family} {qtype}: rbl {ours} / rbldnsd {theirs}, differ in {what}")
        lines += examples[:limit]
    return "\n".join(lines)


def compare(results: list[Result]) -> list[Result]:
    """Results where rbl does not answer as rbldnsd does (empty non-terminals aside)."""
    return [r for r in results if not r.q.ent and r.got != r.want]


def assert_same(oracle: Oracle, category: str, at_least: int) -> None:
    results = oracle.by_category.get(category, [])
    assert len(results) >= at_least, f"only {len(results)} {category} questions were asked"
    bad = compare(results)
    if bad:  # not an assert: pytest would spend seconds on the repr of thousands of answers
        pytest.fail(f"{len(bad)} of {len(results)} {category} answers differ from rbldnsd's:\n"
                    + mismatch_report(bad), pytrace=False)


def test_the_data_set_has_what_the_issue_asks_for(oracle):
    data = oracle.data
    listed4 = [n for n in data.ip4 if not n.exclude]
    listed6 = [n for n in data.ip6 if not n.exclude]
    assert {n.plen for n in listed4} == set(range(8, 33))
    assert {n.plen for n in listed6} == set(range(32, 129))
    assert sum(n.plen == 32 for n in listed4) >= 300
    for nets in (data.ip4, data.ip6):
        def inside(n: Net, exclude: bool) -> bool:
            return any(p.exclude == exclude and p.plen < n.plen and p.lo <= n.lo < p.hi for p in nets)

        nested = [n for n in nets if not n.exclude and inside(n, False)]
        holes = [n for n in nets if n.exclude and inside(n, False)]
        inside_holes = [n for n in nets if not n.exclude and inside(n, True)]
        counts = len(nested), len(holes), len(inside_holes)
        assert all(c >= least for c, least in zip(counts, (100, 40, 20))), counts
    covers = Counter((d.cover, d.exclude) for d in data.domains)
    assert all(covers[cover, exclude] >= 10 for cover in (EXACT, SUB, BOTH) for exclude in (False, True)), covers
    assert {n.value for n in data.ip4 + data.ip6} >= set(VALUES)


def test_the_sample_is_large_and_both_servers_loaded_the_data(oracle):
    results = oracle.results
    assert len(results) >= MIN_QUERIES
    want = Counter(r.want.rcode for r in results)
    # A broken load (say, rbldnsd ignoring its files) would make everything NXDOMAIN.
    assert want["NOERROR"] > len(results) // 5 and want["NXDOMAIN"] > len(results) // 5, want
    assert "file " not in oracle.rbldnsd_log, f"rbldnsd complained about its data:\n{oracle.rbldnsd_log}"
    # The whole module (data, import, both servers, every question) stays quick.
    assert oracle.seconds < 60, f"took {oracle.seconds:.1f} s"


def test_the_model_agrees_with_rbldnsd_about_what_is_listed(oracle):
    """The model decides the empty non-terminals below; it must be right where rbldnsd can tell."""
    wrong = [f"{r.q.rel} {r.q.qtype}: model listed={r.q.listed}, rbldnsd {r.want}"
             for r in oracle.results if r.q.full and r.q.listed != (r.want.rcode == "NOERROR")]
    assert not wrong, "\n".join(wrong[:20])


def test_ip4_answers_match_rbldnsd(oracle):
    assert_same(oracle, "ip4", 3500)


def test_ip6_answers_match_rbldnsd(oracle):
    assert_same(oracle, "ip6", 3000)


def test_domain_answers_match_rbldnsd(oracle):
    """Exact names, unlisted names, excluded names: everything but wildcard matches."""
    assert_same(oracle, "domain", 2000)


def test_domain_wildcard_answers_match_rbldnsd(oracle):
    """Names listed through ``*.name`` or ``.name``: rbldnsd's ``$`` is the listed
    entry's name (``name``), not the name asked about."""
    assert_same(oracle, "wildcard", 1000)


def test_ipv4_mapped_names_match_rbldnsd(oracle):
    """``::ffff:a.b.c.d`` nibble names, the RFC 5782 IPv6 test points among them:
    rbldnsd answers them from its IPv4 data (ip6trie entries there are never seen)."""
    assert_same(oracle, "mapped", 500)


def test_per_entry_values_match_rbldnsd(oracle):
    """``:A:TXT`` values on data lines, read by ``rbl listing import --format rbldnsd``."""
    assert_same(oracle, "values", 200)


def test_empty_non_terminals_answer_nodata_where_rbldnsd_says_nxdomain(oracle):
    """Deliberate difference (DESIGN.md 6, RFC 8020/9156): a name with listings below it
    exists. rbl answers NOERROR with no records and the SOA; rbldnsd answers NXDOMAIN."""
    ents = [r for r in oracle.results if r.q.ent]
    assert len(ents) >= 300, f"only {len(ents)} empty non-terminals were asked about"
    assert {r.q.family for r in ents} == {"ip4", "ip6", "domain"}
    bad = [r for r in ents if r.want.rcode != "NXDOMAIN" or r.got.rcode != "NOERROR" or r.rbl.answer]
    if bad:
        pytest.fail("empty non-terminals not answered NOERROR/NODATA by rbl, NXDOMAIN by rbldnsd:\n"
                    + mismatch_report(bad), pytrace=False)
    # Names below the zone that are neither listed nor above a listing stay NXDOMAIN in rbl.
    partial = [r for r in oracle.results if not r.q.full and not r.q.ent]
    assert len(partial) >= 100
    wrong = [f"{r.q.rel} {r.q.qtype}: rbl {r.got}" for r in partial if r.got.rcode != "NXDOMAIN"]
    assert not wrong, "\n".join(wrong[:20])


def test_named_empty_non_terminals(oracle):
    """Deliberate difference, case by case: the empty non-terminals DESIGN.md names."""
    origin = oracle.zone.origin
    by_name = {(r.q.rel.lower(), r.q.qtype): r for r in oracle.results}
    # Test points: 127.0.0.2 and ::ffff:7f00:2 make these partial names exist.
    nibbles = address_name(6, 0xFFFF7F000002).split(".")
    names = ["127", "0.127", "0.0.127", ".".join(nibbles[-20:]), ".".join(nibbles[-8:])]  # ::/80, ::/32
    # A listed domain's top-level domain, and the parent of a *. listing.
    exact = next(d for d in oracle.data.domains if d.cover == EXACT and not d.exclude
                 and oracle.model.domains.listed(d.name))
    wild = next(d for d in oracle.data.domains if d.cover == SUB and not d.exclude
                and not oracle.model.domains.listed(d.name) and oracle.model.domains.below_any(d.name))
    names += [exact.name.rsplit(".", 1)[1], wild.name]
    missing = [n for n in names if (n, "A") not in by_name]
    assert not missing, f"not asked: {missing}"
    for name in names:
        for qtype in ("A", "TXT"):
            r = by_name[name, qtype]
            assert r.q.ent, name
            # rbldnsd: NXDOMAIN. rbl, deliberately: NOERROR, no answer, the SOA.
            assert r.ref.rcode() == dns.rcode.NXDOMAIN, f"{name}.{origin}: rbldnsd {r.want}"
            assert r.rbl.rcode() == dns.rcode.NOERROR and not r.rbl.answer, f"{name}.{origin}: rbl {r.got}"
            assert_negative_soa(oracle.zone, r.rbl)


def soa_of(msg: dns.message.Message) -> tuple | None:
    """The authority section's one SOA as (owner, TTL, rdata without serial), else None."""
    soas = [rrset for rrset in msg.authority if rrset.rdtype == dns.rdatatype.SOA]
    if len(soas) != 1 or len(soas[0]) != 1:
        return None
    soa = soas[0][0]
    return (soas[0].name.to_text(), soas[0].ttl, soa.mname.to_text(), soa.rname.to_text(),
            soa.refresh, soa.retry, soa.expire, soa.minimum)


def zone_soa(zone: Zone) -> tuple:
    """The SOA a negative answer carries: the origin's, living min(SOA TTL, SOA minimum)
    (RFC 2308 section 5), as the zone file says."""
    soa = zone.soa
    return (zone.origin + ".", min(int(soa["ttl"]), zone.negative_ttl), soa["mname"] + ".", soa["rname"] + ".",
            soa["refresh"], soa["retry"], soa["expire"], zone.negative_ttl)


def assert_negative_soa(zone: Zone, msg: dns.message.Message) -> None:
    assert soa_of(msg) == zone_soa(zone), f"not the zone's SOA in the authority section:\n{msg}"


def test_negative_answers_carry_the_zone_soa(oracle):
    """rbl puts the SOA in every NXDOMAIN (and NODATA) answer, owned by the origin, with
    the negative TTL. rbldnsd does too once given a $SOA line: the two agree but for the serial."""
    want = zone_soa(oracle.zone)
    negative = [r for r in oracle.results if r.rbl.rcode() == dns.rcode.NXDOMAIN or r.q.ent]
    assert len(negative) > 1000
    ours = Counter(soa_of(r.rbl) for r in negative)
    assert ours == {want: len(negative)}, f"rbl's negative answers carry {dict(ours)}, want {want}"
    nxdomain = [r for r in oracle.results if r.ref.rcode() == dns.rcode.NXDOMAIN]
    theirs = Counter(soa_of(r.ref) for r in nxdomain)
    assert theirs == {want: len(nxdomain)}, f"rbldnsd's NXDOMAIN answers carry {dict(theirs)}, want {want}"


def test_answers_are_authoritative(oracle):
    assert all(r.rbl.flags & dns.flags.AA for r in oracle.results)
