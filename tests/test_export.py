"""Exports (rbldnsd data files, RFC 1035 zone files) answer as rbl does.

Property tests hold the records module to the snapshot's own lookup (its slow
twin): a small authoritative resolver written here from RFC 1034 4.3.2 and
RFC 4592 (closest encloser, source of synthesis, CNAME) answers from the
records, and must agree with :meth:`ZoneSnapshot.find` on every name asked.
"""

from __future__ import annotations

import ipaddress
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Server, Workspace, peer_on_free_port, require_tool, shared_file, stop_process
from rbl.addresses import reverse_name
from rbl.policy.listing import ListingPolicy
from rbl.zone.records import (TextRecord as Record, cidr_split, cidrs, domain_nodes, ip4_runs, ip6_runs,
                              zone_data_records, zone_data_segments, zone_records)
from rbl.zone.compile import compile_zone
from rbl.zone.snapshot import NODATA, NXDOMAIN, Snapshot
from rbl.zone.tenant import TenantZone
from tenant_pairs import add_identities, pairs_of
from test_oracle_rbldnsd import Rbldnsd, question_wire, read_zone
from test_snapshot import CONFIG, naive_ip, row

ORIGIN = "bl.example"


# --------------------------------------------------------------------------
# A small authoritative server over records: RFC 1034 4.3.2 with RFC 4592 wildcards


class Resolver:
    """Answers (rcode, A set, TXT texts) from a zone's records, as NSD or Knot would."""

    def __init__(self, records: list[Record]):
        self.owners: dict[str, list[Record]] = {}
        for record in records:
            self.owners.setdefault("" if record.name == "@" else record.name, []).append(record)
        self.existing = {""}
        for name in self.owners:
            labels = name.split(".")
            self.existing.update(".".join(labels[i:]) for i in range(len(labels)))

    def _rrs(self, name: str, qtype: str, depth: int) -> tuple[str, list[Record]]:
        rrs = self.owners[name]
        cname = [r for r in rrs if r.rtype == "CNAME"]
        if cname:
            assert len(rrs) == 1, f"CNAME and other data at {name}"
            target = cname[0].rdata.rstrip(".")
            assert target.endswith("." + ORIGIN) and depth < 8
            rcode, answer = self.resolve(target[: -len(ORIGIN) - 1], qtype, depth + 1)
            return rcode, cname + answer
        return "NOERROR", [r for r in rrs if r.rtype == qtype]

    def resolve(self, name: str, qtype: str, depth: int = 0) -> tuple[str, list[Record]]:
        if name in self.owners:
            return self._rrs(name, qtype, depth)
        if name in self.existing:
            return "NOERROR", []  # an empty non-terminal
        labels = name.split(".")
        for i in range(1, len(labels) + 1):
            encloser = ".".join(labels[i:])
            if encloser in self.existing:
                wildcard = "*." + encloser if encloser else "*"
                if wildcard in self.owners:
                    return self._rrs(wildcard, qtype, depth)
                return "NXDOMAIN", []
        raise AssertionError("the apex always exists")

    def ask(self, name: str) -> tuple[str, frozenset, list[str]]:
        rcode, a = self.resolve(name, "A")
        _, txt = self.resolve(name, "TXT")
        texts = [_unquote(r.rdata) for r in txt if r.rtype == "TXT"]
        return rcode, frozenset(r.rdata for r in a if r.rtype == "A"), texts


def _unquote(rdata: str) -> str:
    out, i = [], 0
    while i < len(rdata):
        char = rdata[i]
        if char == "\\":
            if rdata[i + 1].isdigit():
                out.append(chr(int(rdata[i + 1:i + 4])))
                i += 4
                continue
            out.append(rdata[i + 1])
            i += 2
            continue
        if char != '"':
            out.append(char)
        i += 1
    return "".join(out).replace('" "', "")


def networks(subject: str, step: int) -> set[str]:
    """The subject and every network on a label boundary holding it: what a wildcard's TXT may name."""
    address = ipaddress.ip_address(subject)
    return {subject} | {str(ipaddress.ip_network(f"{subject}/{p}", strict=False))
                        for p in range(step, address.max_prefixlen, step)}


def rbl_answer(zone, rel: str):
    """What rbl answers for a name below the zone: (rcode, A set, TXT or None)."""
    found = zone.find(rel.encode())
    if found == NXDOMAIN:
        return "NXDOMAIN", frozenset(), None
    if found == NODATA:
        return "NOERROR", frozenset(), None
    answer = zone.answers[found]
    return "NOERROR", frozenset(answer.codes), answer.text(zone.subject_text(rel.encode()))


def check_names(zone, resolver: Resolver, names: list[str], address_names: set[str], domains: set[str]) -> None:
    for rel in names:
        want_rcode, want_a, want_txt = rbl_answer(zone, rel)
        rcode, a, txt = resolver.ask(rel)
        if rel in domains:
            assert (rcode, a, txt) == (want_rcode, want_a, [want_txt] if want_txt is not None else []), rel
            continue
        if rel not in address_names:
            # Partial names: the rcode always agrees; one inside a range written as a
            # wildcard gets its answer where rbl answers NODATA (see the README).
            assert rcode == want_rcode, (rel, rcode, want_rcode)
            continue
        assert (rcode, a) == (want_rcode, want_a), (rel, rcode, a, want_rcode, want_a)
        if want_txt is None:
            assert txt == [], rel
            continue
        subject = zone.subject_text(rel.encode())
        answer = zone.answers[zone.find(rel.encode())]
        step = 8 if rel.count(".") == 3 else 4  # labels: octets, or nibbles (IPv4-mapped too)
        allowed = {answer.text(s) for s in networks(subject, step)}
        assert len(txt) == 1 and txt[0] in allowed, (rel, txt, want_txt)


# --------------------------------------------------------------------------
# Random zones: IPv4 in a safe /16 and in digit-only space shared with IPv6 names,
# IPv6 under 2001:db8::/32 and in 2000::/8, domains with every cover and exclusions.

IP4_BASES = [0x0A000000, 0x01020000]  # 10.0.0.0/16; 1.2.0.0/16, whose names are also nibble paths
IP6_BASES = [(0x20010DB8 << 96, 32), (0x2000 << 112, 8)]

cidr4 = st.tuples(st.sampled_from(IP4_BASES), st.integers(16, 32), st.integers(0, 2**16 - 1), st.booleans(),
                  st.integers(2, 5)).map(lambda t: (t[0] | (t[2] >> (32 - t[1]) << (32 - t[1])) & 0xFFFF, t[1], t[3], t[4]))
cidr6 = st.tuples(st.sampled_from(IP6_BASES), st.integers(0, 120), st.integers(0, 2**120 - 1), st.booleans(),
                  st.integers(2, 5)).map(lambda t: (*_net6(t[0], t[1], t[2]), t[3], t[4]))


def _net6(base: tuple[int, int], extra: int, bits: int) -> tuple[int, int]:
    plen = min(128, base[1] + 4 + extra)
    value = base[0] | bits % (1 << (128 - base[1]))
    return value >> (128 - plen) << (128 - plen), plen


LABELS = st.sampled_from(["a", "b", "mail", "x1"])
DOMAIN = st.lists(LABELS, min_size=1, max_size=3).map(lambda ls: ".".join([*ls, "example"]))


def ip4_text(value: int, plen: int) -> str:
    return f"{ipaddress.IPv4Address(value)}/{plen}"


def build(cidrs4, cidrs6, domains, collide: bool):
    rows = [row(ip4_text(net, plen), exclude, f"127.0.0.{code}") for net, plen, exclude, code in cidrs4]
    rows += [row(f"{ipaddress.IPv6Address(net)}/{plen}", exclude, f"127.0.0.{code}")
             for net, plen, exclude, code in cidrs6]
    rows += [row(prefix + name, exclude, f"127.0.1.{i % 3 + 1}") for i, (name, prefix, exclude) in enumerate(domains)]
    if collide:  # 2.0.0.1's name is also the nibble path of 2001::/16
        rows.append(row("2.0.0.1"))
    rows = list({r[3]: r for r in rows}.values())
    zone, _ = compile_zone(CONFIG, ListingPolicy(), rows)
    return zone, rows


@settings(max_examples=80, deadline=None)
@given(st.lists(cidr4, max_size=14), st.lists(cidr6, max_size=10),
       st.lists(st.tuples(DOMAIN, st.sampled_from(["", "*.", "."]), st.booleans()), max_size=8),
       st.booleans(), st.lists(st.integers(0, 2**16 - 1), max_size=20), st.randoms(use_true_random=False))
def test_zone_file_records_answer_every_name_as_the_snapshot(cidrs4, cidrs6, domains, collide, probes, rng):
    zone, rows = build(cidrs4, cidrs6, domains, collide)
    snapshot = Snapshot(1, {zone.origin: zone}, 0, 0, 0)
    resolver = Resolver(list(zone_records(snapshot, ORIGIN)))
    values4 = {0x7F000001, 0x7F000002, 0x02000001, 0x02000002}
    for base in IP4_BASES:
        values4.update(base | p for p in probes)
    for net, plen, *_ in cidrs4:
        values4.update(v for v in (net - 1, net, net + (1 << (32 - plen)) - 1, net + (1 << (32 - plen))) if v >= 0)
    values6 = {0x20010DB8 << 96, (0x20010DB8 << 96) + 1, 0x2001 << 112}
    for net, plen, *_ in cidrs6:
        end = net + (1 << (128 - plen))
        values6.update((net - 1, net, end - 1, end, net + rng.randrange(1 << (128 - plen))))
    names4 = [reverse_name(str(ipaddress.IPv4Address(v))) for v in values4]
    names6 = [reverse_name(str(ipaddress.IPv6Address(v))) for v in values6 if 0 <= v < 2**128]
    mapped = [reverse_name(f"::ffff:{ipaddress.IPv4Address(v)}") for v in values4]
    partial = [".".join(n.split(".")[-rng.randint(1, 3):]) for n in names4]
    partial += [".".join(n.split(".")[-rng.randint(1, 31):]) for n in names6 + mapped]
    doms = [n for n, _p, _e in domains] + [f"www.{n}" for n, _p, _e in domains] + ["example", "test", "invalid"]
    full = set(names4 + names6 + mapped)
    check_names(zone, resolver, sorted(full) + partial + doms, full, set(doms))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 3)), max_size=30))
def test_cidrs_of_runs_match_the_plain_split(points):
    starts = sorted({0, *(p for p, _v in points)})
    values = dict(points)
    values_a = np.array([values.get(s, 0) for s in starts], dtype=np.int64)
    starts_a = np.array(starts, dtype=np.int64)
    nets, plens, vals = cidrs(starts_a, values_a, 32)
    want = []
    ends = starts[1:] + [2**32]
    for lo, hi, value in zip(starts, ends, values_a.tolist()):
        if value:
            want += [(net, plen, value) for net, plen in cidr_split(lo, hi, 32)]
    assert list(zip(nets.tolist(), plens.tolist(), vals.tolist())) == want
    # The Python path (IPv6 keys) agrees, and the CIDRs tile the listed runs exactly.
    nets6, plens6, vals6 = cidrs(starts_a.astype(object), values_a, 32)
    assert list(zip(nets6.tolist(), plens6.tolist(), vals6.tolist())) == want
    covered = sum(1 << (32 - p) for _n, p, _v in want)
    assert covered == sum(hi - lo for lo, hi, v in zip(starts, ends, values_a.tolist()) if v)


def test_runs_of_a_zone_hold_the_test_points():
    zone, _ = compile_zone(CONFIG, ListingPolicy(), [])
    starts, values = ip4_runs(zone)
    nets, plens, vals = cidrs(starts, values, 32)
    assert [(ipaddress.IPv4Address(int(n)).compressed, int(p)) for n, p in zip(nets, plens)] == [("127.0.0.2", 32)]
    assert naive_ip([], "ip4", 32, 0x7F000002) is None  # only the test point lists it


# --------------------------------------------------------------------------
# Acceptance: the real rbldnsd serving the rbldnsd export and the real NSD and Knot
# serving the zone file answer what the real `rbl serve` answers, on over 50,000 queries.

SEED = 1035
MIN_QUERIES = 50_000


def generated_listings(rng: random.Random) -> tuple[str, str]:
    """rbldnsd-format data for bl.example and dkim.bl.example covering every decision."""
    lines = [":127.0.0.2:Listed by bl.example, see https://bl.example/lookup?q=$"]
    # Shared cloud space (the demo's EC2 excerpt): single addresses, some remediated
    # (throttle); a CIDR there lists no shared pool.
    for base, size in ((0x03058C00, 1024), (0x34040000, 1 << 18), (0x0D7D0000, 1 << 16), (0x36F70000, 1 << 16)):
        for _ in range(120):
            address = ipaddress.IPv4Address(base + rng.randrange(size))
            lines.append(f"{address} :127.0.0.4:" + ("Throttled: $" if rng.random() < 0.5 else "") if rng.random() < 0.3
                         else str(address))
    lines.append("52.4.1.0/24")
    # The vendor's dedicated /28 escalates inside itself; its quarantine pool answers anyway.
    lines += [f"198.19.254.{i}" for i in range(1, 10)] + ["198.19.255.7"]
    # Unclassified /24s dense enough to escalate, some in space whose names are also
    # IPv6 nibble paths (1.2.3.x, 5.5.x.x), with exclusions and per-entry values.
    prefixes = [(45, rng.randrange(256), rng.randrange(256)) for _ in range(120)]
    prefixes += [(1, 2, c) for c in range(12)] + [(5, 5, c) for c in range(0, 40, 3)] + [(2, 0, 0)]
    for a, b, c in prefixes:
        for d in rng.sample(range(256), rng.randint(8, 20)):
            lines.append(f"{a}.{b}.{c}.{d}" + (" :3:Range member $ (see $$ costs)" if d % 11 == 0 else ""))
    # CIDRs of every length with holes, nested values, and a throttle-range.
    for plen in range(9, 33):
        net = ipaddress.ip_network(f"{rng.randrange(60, 90)}.{rng.randrange(256)}.{rng.randrange(256)}.0/{plen}",
                                   strict=False)
        lines.append(str(net))
        if plen < 30:
            inner = ipaddress.ip_network(f"{net.network_address + rng.randrange(net.num_addresses)}/{plen + 3}",
                                         strict=False)
            lines.append(f"!{inner}" if plen % 2 else f"{inner} :127.0.0.5:Throttle range $")
            lines.append(f"!{net.network_address + rng.randrange(net.num_addresses)}")
    lines += ["!10.1.2.3", "!10.20.0.0/16", "10.20.5.0/24 :127.0.0.4:", "!127.0.0.9", "2.0.0.1", "3.0.0.0/22"]
    # IPv6: prefixes of every length, holes, a /64 with enough addresses to escalate,
    # and space shared with IPv4 names (2001::/16 is also 2.0.0.1's name).
    for plen in range(20, 129, 3):
        net = ipaddress.ip_network(f"2a0{rng.randrange(10)}:{rng.randrange(65536):x}::/{plen}", strict=False)
        lines.append(str(net))
        if plen < 120:
            lines.append(f"!{ipaddress.IPv6Address(int(net.network_address) + rng.getrandbits(128 - plen))}")
    lines += [f"2001:db8:5:7::{rng.randrange(65536):x}" for _ in range(10)]
    lines += ["2001:db8::/40", "!2001:db8:0:1::/64", "2001:0:1::/48", "2600::/12 :127.0.0.4:"]
    # Domains: every dnset form, exclusions cutting holes, nested listings.
    words = ["spam", "mail", "bulk", "promo", "news", "srv"]
    for i in range(150):
        name = f"{rng.choice(words)}{i}.{rng.choice(['com', 'net', 'example', 'info'])}"
        form = rng.choice(["", "*.", "."])
        lines.append(form + name)
        if form and rng.random() < 0.4:
            lines.append(f"!{rng.choice(['', '.', '*.'])}{rng.choice(words)}.{name}")
        if rng.random() < 0.2:
            lines.append(f"deep.{rng.choice(words)}.{name} :127.0.0.4:Deeper $")
    dkim = [":127.0.2.2:DKIM signing domain $ listed by bl.example"]
    dkim += [f"{rng.choice(['', '.'])}signer{i}.example" + (" :127.0.2.4:" if i % 4 == 0 else "") for i in range(60)]
    return "\n".join(lines) + "\n", "\n".join(dkim) + "\n"


class Nsd:
    """The real NSD serving a zone file on a free loopback port."""

    def __init__(self, binary: str, directory: Path, origin: str, zonefile: Path):
        self.directory = directory
        self.log_path = directory / "nsd.log"

        def start(port: int) -> subprocess.Popen:
            conf = directory / "nsd.conf"
            conf.write_text(f"""server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  username: ""
  chroot: ""
  zonesdir: "{zonefile.parent}"
  database: ""
  zonelistfile: "{directory}/zone.list"
  xfrdfile: "{directory}/xfrd.state"
  xfrdir: "{directory}"
  pidfile: "{directory}/nsd.pid"
  server-count: 1
  verbosity: 1
  refuse-any: no
  rrl-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: {origin}
  zonefile: {zonefile.name}
""")
            with open(self.log_path, "w") as log:
                return subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)

        self.proc, self.port = peer_on_free_port("nsd", start, origin, 60, self.log_path.read_text)

    def stop(self) -> None:
        stop_process(self.proc)


class Knot(Nsd):
    """The real Knot DNS serving a zone file on a free loopback port."""

    def __init__(self, binary: str, directory: Path, origin: str, zonefile: Path):
        self.directory = directory
        self.log_path = directory / "knot.log"

        def start(port: int) -> subprocess.Popen:
            conf = directory / "knot.conf"
            conf.write_text(f"""server:
    listen: 127.0.0.1@{port}
    rundir: "{directory}"
database:
    storage: "{directory}"
log:
  - target: stderr
    any: warning
zone:
  - domain: {origin}
    storage: "{zonefile.parent}"
    file: "{zonefile.name}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
""")
            with open(self.log_path, "w") as log:
                return subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)

        self.proc, self.port = peer_on_free_port("knotd", start, origin, 60, self.log_path.read_text)


@dataclass(frozen=True)
class Reply:
    rcode: str
    a: frozenset
    txt: tuple
    ttls: frozenset


RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def _skip_name(data: bytes, at: int) -> int:
    while True:
        length = data[at]
        if length >= 0xC0:
            return at + 2
        if length == 0:
            return at + 1
        at += length + 1


def reply_of(data: bytes) -> Reply:
    """rcode, A set, TXT texts and answer TTLs of a reply, read straight from the wire
    (dnspython's full parse would cost more than the servers take to answer)."""
    answers = struct.unpack_from(">H", data, 6)[0]
    at = _skip_name(data, 12) + 4
    a, txt, ttls = set(), [], set()
    for _ in range(answers):
        at = _skip_name(data, at)
        rtype, _rclass, ttl, length = struct.unpack_from(">HHIH", data, at)
        at += 10
        rdata = data[at:at + length]
        at += length
        if rtype == 1:
            a.add(".".join(map(str, rdata)))
            ttls.add(ttl)
        elif rtype == 16:
            parts, i = [], 0
            while i < len(rdata):
                parts.append(rdata[i + 1:i + 1 + rdata[i]])
                i += 1 + rdata[i]
            txt.append(b"".join(parts).decode("ascii", "replace"))
            ttls.add(ttl)
    return Reply(RCODES.get(data[3] & 15, str(data[3] & 15)), frozenset(a), tuple(sorted(txt)), frozenset(ttls))


def ask_all(port: int, wires: list[bytes], window: int = 512, timeout: float = 1.0, attempts: int = 5) -> list[bytes]:
    """Raw replies to many queries over one UDP socket: ``window`` in flight, lost ones sent again."""
    replies: list[bytes | None] = [None] * len(wires)
    pending: dict[int, list] = {}  # id -> [index, sent at, tries]
    free = deque(range(65536))  # ids are reused last: a late duplicate never meets a new query
    next_index, checked = 0, time.monotonic()
    deadline = checked + 120
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        while next_index < len(wires) or pending:
            now = time.monotonic()
            assert now < deadline, "the server took more than two minutes to answer"
            while next_index < len(wires) and len(pending) < window:
                qid = free.popleft()
                pending[qid] = [next_index, now, 1]
                sock.send(struct.pack(">H", qid) + wires[next_index][2:])
                next_index += 1
            select.select([sock], [], [], 0.05)
            while True:
                try:
                    data = sock.recv(65535)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                qid = struct.unpack_from(">H", data)[0]
                entry = pending.get(qid)
                if entry is None:
                    continue  # a late duplicate of a query sent again
                question = wires[entry[0]][12:]
                if data[12:12 + len(question)].lower() != question.lower():
                    continue
                del pending[qid]
                replies[entry[0]] = data
                free.append(qid)
            if now - checked > 0.2:
                checked = now
                for qid, entry in pending.items():
                    if now - entry[1] > timeout:
                        assert entry[2] < attempts, f"no answer to query {entry[0]} after {attempts} tries"
                        entry[1], entry[2] = now, entry[2] + 1
                        sock.send(struct.pack(">H", qid) + wires[entry[0]][2:])
    return replies  # type: ignore[return-value]


@dataclass
class Asked:
    rel: str  # the name below bl.example
    qtype: str
    kind: str  # ip4, ip6, mapped, domain, and the sub-zone: ip4@cloud...
    subject: str | None  # the address asked about (None: a domain)


def sample(snapshot, rng: random.Random, budget: int) -> list[Asked]:
    """Names that cover every run of every answer (edges and insides), domains and their parents."""
    names: list[Asked] = []
    for zone in snapshot.zones.values():
        if isinstance(zone, TenantZone):
            names += [Asked(rel, "", kind, subject) for rel, kind, subject in pairs_of(zone, rng)]
            continue
        suffix = zone.config.origin[: -len(ORIGIN)].rstrip(".")
        at = f"@{suffix}" if suffix else ""
        tail = f".{suffix}" if suffix else ""
        starts, values = (a.tolist() for a in ip4_runs(zone))
        ends = starts[1:] + [2**32]
        share = budget // 2 if not suffix else budget // 8
        runs = list(zip(starts, ends, values))
        by_value: dict[int, list] = {}
        for run in runs:
            by_value.setdefault(run[2], []).append(run)
        picked = [rng.choice(r) for r in by_value.values()]  # every answer at least once
        picked += rng.sample(runs, min(len(runs), share // 4))
        addresses = set()
        for lo, hi, _v in picked:
            addresses.update(a for a in (lo - 1, lo, hi - 1, rng.randrange(lo, hi)) if 0 <= a < 2**32)
        addresses.update(rng.getrandbits(32) for _ in range(share // 10))
        addresses.update((0x7F000001, 0x7F000002))  # RFC 5782 test points, ::ffff:7f00:1/2 below too
        chosen = sorted(addresses) if len(addresses) <= share else sorted(rng.sample(sorted(addresses), share))
        for value in sorted({*chosen, 0x7F000001, 0x7F000002}):
            text = str(ipaddress.IPv4Address(value))
            names.append(Asked(reverse_name(text) + tail, "", "ip4" + at, text))
        for value in {0x7F000001, 0x7F000002, *rng.sample(sorted(addresses), min(len(addresses), share // 10))}:
            text = str(ipaddress.IPv4Address(value))
            names.append(Asked(reverse_name(f"::ffff:{text}") + tail, "", "mapped" + at, text))
        six = list(zip(*(a.tolist() for a in ip6_runs(zone)))) if len(zone.ip6_hi) else []
        values6 = set()
        for i, (lo, value) in enumerate(six):
            hi = six[i + 1][0] if i + 1 < len(six) else 2**128
            values6.update(v for v in (lo - 1, lo, hi - 1, lo + rng.randrange(hi - lo)) if 0 <= v < 2**128)
        for value in sorted(values6):
            if not 0xFFFF00000000 <= value <= 0xFFFFFFFFFFFF:
                text = str(ipaddress.IPv6Address(value))
                names.append(Asked(reverse_name(text) + tail, "", "ip6" + at, text))
        for node in domain_nodes(zone):
            for name in {node.name, f"www.{node.name}", f"x.y.{node.name}"}:
                names.append(Asked(name + tail, "", "domain" + at, None))
    names.append(Asked("invalid", "", "domain", None))
    return [Asked(n.rel, qtype, n.kind, n.subject) for n in names for qtype in ("A", "TXT")]


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory):
    """Every answer of rbl, rbldnsd (rbldnsd export), NSD and Knot (zone file export) to the same queries."""
    rbldnsd_binary, nsd_binary, knot_binary = require_tool("rbldnsd"), require_tool("nsd"), require_tool("knotd")
    started = time.monotonic()
    workspace = Workspace(tmp_path_factory.mktemp("export"))
    main, dkim = generated_listings(random.Random(SEED))
    (workspace.root / "generated.rbldnsd").write_text(main)
    (workspace.root / "dkim.rbldnsd").write_text(dkim)
    for path, fmt in ((shared_file("blocklists", "firehol-firehol_level1.netset"), "firehol"),
                      (shared_file("blocklists", "ipsum-levels-3.txt"), "plain"),
                      (shared_file("blocklists", "spamhaus-dropv6.txt"), "spamhaus-drop"),
                      (workspace.root / "generated.rbldnsd", "rbldnsd")):
        workspace.rbl("listing", "import", str(path), "--format", fmt, "--expires", "never")
    workspace.rbl("listing", "import", str(workspace.root / "dkim.rbldnsd"), "--format", "rbldnsd",
                  "--zone", "dkim.bl.example", "--expires", "never")
    add_identities(workspace, random.Random(SEED + 2))
    out = workspace.root / "out"
    exported = time.monotonic()
    workspace.rbl("export", "rbldnsd", str(out))
    workspace.rbl("export", "zonefile", str(out))
    export_seconds = time.monotonic() - exported

    from rbl.zone.source import SnapshotSource as Service

    service = Service(str(workspace.db), str(workspace.policy), str(workspace.zones))
    snapshot = service.build()
    service.store.close()
    asked = sample(snapshot, random.Random(SEED + 1), 46_000)
    wires = [question_wire(f"{q.rel}.{ORIGIN}", q.qtype) for q in asked]

    servers = []
    try:
        server = Server(workspace, "--http", "off")
        servers.append(server)
        ref = Rbldnsd(rbldnsd_binary, out, read_zone(workspace), [f"{ORIGIN}:combined:{ORIGIN}.rbldnsd"])
        servers.append(ref)
        nsd_dir = workspace.root / "nsd"
        nsd_dir.mkdir()
        nsd = Nsd(nsd_binary, nsd_dir, ORIGIN, out / f"{ORIGIN}.zone")
        servers.append(nsd)
        knot_dir = workspace.root / "knot"
        knot_dir.mkdir()
        knot = Knot(knot_binary, knot_dir, ORIGIN, out / f"{ORIGIN}.zone")
        servers.append(knot)
        asking = time.monotonic()
        replies = {}
        for name, port in (("rbl", server.port), ("rbldnsd", ref.port), ("nsd", nsd.port), ("knot", knot.port)):
            try:
                replies[name] = [reply_of(m) for m in ask_all(port, wires)]
            except AssertionError as exc:
                raise AssertionError(f"{name}: {exc}") from None
        ask_seconds = time.monotonic() - asking
        rbldnsd_log = ref.log
    finally:
        for s in servers:
            s.stop()
    return {"asked": asked, "replies": replies, "snapshot": snapshot, "out": out, "rbldnsd_log": rbldnsd_log,
            "seconds": time.monotonic() - started, "export_seconds": export_seconds, "ask_seconds": ask_seconds}


def test_the_sample_is_large_and_covers_every_code(mirrors):
    asked, ours = mirrors["asked"], mirrors["replies"]["rbl"]
    assert len(asked) >= MIN_QUERIES
    codes = {code for zone in mirrors["snapshot"].zones.values() for a in zone.answers if a for code in a.codes}
    seen = {code for reply in ours for code in reply.a}
    # block, block-range, throttle, throttle-range, quarantine; cloud kinds; DKIM block and throttle; tenant
    assert codes >= {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.1.1", "127.0.1.2",
                     "127.0.1.3", "127.0.2.2", "127.0.2.4", "127.0.3.1", "127.0.3.2"}
    pairs = {q.rel for q in asked if q.kind == "pair@tenant"}
    assert len(pairs) >= 10_000, len(pairs)
    assert seen == codes, codes - seen
    kinds = Counter((q.kind, r.rcode) for q, r in zip(asked, ours))
    for kind in ("ip4", "ip6", "mapped", "domain", "ip4@cloud", "domain@dkim"):
        assert kinds[kind, "NOERROR"] > 20 and kinds[kind, "NXDOMAIN"] > 20, (kind, kinds)
    multi = sum(len(r.a) > 1 for r in ours)
    assert multi > 100, "escalated ranges with listed addresses inside answer two codes"
    assert mirrors["seconds"] < 150, f"took {mirrors['seconds']:.0f} s"
    print(f"\n{len(asked)} queries; export {mirrors['export_seconds']:.1f} s; asking three servers "
          f"{mirrors['ask_seconds']:.1f} s; all {mirrors['seconds']:.1f} s")


def _differences(mirrors, name: str, same) -> list[str]:
    bad = []
    for q, ours, theirs in zip(mirrors["asked"], mirrors["replies"]["rbl"], mirrors["replies"][name]):
        if not same(q, ours, theirs):
            bad.append(f"{q.rel} {q.qtype} ({q.kind}): rbl {ours} / {name} {theirs}")
    return bad


def test_rbldnsd_serving_the_export_answers_as_rbl(mirrors):
    """Same rcode, A set, TXT and TTL; where rbl answers NODATA for a name that exists only because
    something below it is listed (com when spam.com is listed), rbldnsd answers NXDOMAIN (README)."""

    def same(q, ours, theirs):
        if ours.rcode == "NOERROR" and not ours.a and not ours.txt:
            return theirs.rcode in ("NOERROR", "NXDOMAIN") and not theirs.a and not theirs.txt
        return ours == theirs

    bad = _differences(mirrors, "rbldnsd", same)
    assert not bad, f"{len(bad)} differ:\n" + "\n".join(bad[:30])
    tenant = Counter(code for q, theirs in zip(mirrors["asked"], mirrors["replies"]["rbldnsd"])
                     if q.kind == "pair@tenant" for code in theirs.a)
    assert tenant["127.0.3.2"] > 1000 and tenant["127.0.3.1"] > 1000, tenant  # its tenant zone answers both
    assert "ignored" not in mirrors["rbldnsd_log"] and "invalid" not in mirrors["rbldnsd_log"], mirrors["rbldnsd_log"]


@pytest.mark.parametrize("server", ["nsd", "knot"])
def test_nsd_and_knot_serving_the_zone_file_answer_as_rbl(mirrors, server):
    """Same rcode, A set and TTL; the same TXT, but where a wildcard answers, its TXT names the
    network it stands for (a static record cannot name each address)."""

    def same(q, ours, theirs):
        if (ours.rcode, ours.a, ours.ttls) != (theirs.rcode, theirs.a, theirs.ttls) or len(ours.txt) != len(theirs.txt):
            return False
        if ours.txt == theirs.txt:
            return True
        if q.subject is None or len(ours.txt) != 1:
            return False
        step = 8 if q.kind.startswith("ip4") else 4
        return theirs.txt[0] in {ours.txt[0].replace(q.subject, s) for s in networks(q.subject, step)}

    bad = _differences(mirrors, server, same)
    assert not bad, f"{len(bad)} differ:\n" + "\n".join(bad[:30])
    wildcards = sum(o.txt != t.txt for o, t in zip(mirrors["replies"]["rbl"], mirrors["replies"][server]))
    assert wildcards > 100  # the sample reaches names answered by wildcards


def test_the_zone_file_passes_kzonecheck_and_nsd_checkzone(mirrors):
    zonefile = mirrors["out"] / f"{ORIGIN}.zone"
    for cmd in ([require_tool("kzonecheck"), "-o", ORIGIN, str(zonefile)],
                [require_tool("nsd-checkzone"), ORIGIN, str(zonefile)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{cmd[0]}: {proc.stdout}{proc.stderr}"
    text = zonefile.read_text()
    assert "\tCNAME\texcluded.bl.example." in text  # excluded domains under a wildcard
    assert not list(mirrors["out"].glob(".*.tmp")), "a temporary file was left behind"
    assert os.stat(zonefile).st_mode & 0o044 == 0o044  # readable by servers running as their own user


# --------------------------------------------------------------------------
# The commands


def test_watch_rewrites_the_files_on_a_new_listing_and_leaves_no_temporary_file(workspace, tmp_path):
    out = tmp_path / "mirror"
    proc = subprocess.Popen([sys.executable, "-m", "rbl", "export", "rbldnsd", str(out), "--watch", "--interval", "0.2"],
                            env=workspace.env, cwd=workspace.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        path = out / f"{ORIGIN}.rbldnsd"
        deadline = time.monotonic() + 30
        while not path.exists():
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.05)
        first = path.read_text()
        assert "192.0.2.77" not in first
        workspace.rbl("listing", "add", "192.0.2.77", "spam.example")
        added = time.monotonic()
        while "192.0.2.77" not in path.read_text():
            assert time.monotonic() - added < 10, "the export was not rewritten within 10 seconds"
            time.sleep(0.05)
        text = path.read_text()
        assert "spam.example :127.0.0.2:" in text
        serials = [int(line.split()[4]) for line in (first, text) for line in [line.splitlines()[2]]]
        assert serials[1] > serials[0], serials  # $SOA ttl mname rname SERIAL ...
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0
    assert [p.name for p in out.iterdir()] == [f"{ORIGIN}.rbldnsd"]


def test_exports_name_what_they_cannot_write(workspace, tmp_path):
    zone_file = workspace.zones / "bl.example.yaml"
    original = zone_file.read_text()
    # rbldnsd reads $1 as a substitution variable: rbl's "subject, then 1" cannot be said.
    zone_file.write_text(original.replace('txt: "Listed by bl.example, see https://bl.example/lookup?q=$"',
                                          'txt: "Listed as $1"'))
    proc = workspace.rbl("export", "rbldnsd", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "zone bl.example" in proc.stderr and "substitution variable" in proc.stderr
    assert not (tmp_path / "out" / "bl.example.rbldnsd").exists()
    assert workspace.rbl("export", "zonefile", str(tmp_path / "out")).returncode == 0  # a zone file can say it
    zone_file.write_text(original.replace("  ipv4_mapped: true", "  ipv4_mapped: maybe"))
    proc = workspace.rbl("export", "zonefile", str(tmp_path / "out"), check=False)
    line = original.splitlines().index("  ipv4_mapped: true") + 1
    assert proc.returncode == 2 and f"bl.example.yaml, line {line}: ipv4_mapped must be true or false" in proc.stderr
    zone_file.write_text(original.replace("  ipv4_mapped: true", "  mapped: true"))
    proc = workspace.rbl("export", "zonefile", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "bl.example.yaml" in proc.stderr and "mapped" in proc.stderr
    (tmp_path / "file").write_text("")
    proc = workspace.rbl("export", "zonefile", str(tmp_path / "file"), check=False)
    assert proc.returncode == 2 and "file" in proc.stderr
    for command in ("rbldnsd", "zonefile"):
        assert "Example:" in workspace.rbl("export", command, "--help").stdout


def test_ipv4_mapped_names_can_be_left_to_the_test_point(workspace, tmp_path):
    workspace.rbl("listing", "add", "192.0.2.9")
    full = (tmp_path / "full")
    workspace.rbl("export", "zonefile", str(full))
    zone_file = workspace.zones / "bl.example.yaml"
    zone_file.write_text(zone_file.read_text().replace("  ipv4_mapped: true", "  ipv4_mapped: false"))
    workspace.rbl("export", "zonefile", str(tmp_path / "lean"))
    point, listed = reverse_name("::ffff:127.0.0.2"), reverse_name("::ffff:192.0.2.9")
    full_names = {line.split("\t")[0] for line in (full / "bl.example.zone").read_text().splitlines()}
    lean_names = {line.split("\t")[0] for line in (tmp_path / "lean" / "bl.example.zone").read_text().splitlines()}
    assert {point, listed, f"{point}.cloud"} <= full_names
    assert {n for n in lean_names if "f.f.f.f" in n} == {point, f"{point}.cloud", f"{point}.dkim"}


@settings(max_examples=80, deadline=None)
@given(st.lists(cidr4, max_size=14), st.lists(cidr6, max_size=10),
       st.lists(st.tuples(DOMAIN, st.sampled_from(["", "*.", "."]), st.booleans()), max_size=8),
       st.booleans(), st.booleans(), st.lists(cidr4, max_size=3))
def test_segments_are_the_whole_cover_in_pieces(cidrs4, cidrs6, domains, collide, mapped, more):
    """Transfers render a zone a first-level node at a time (an IPv4 /8, an IPv6 or mapped /4) and
    keep the pieces no change touched: joined they are the whole cover's records, in order, and a
    piece whose fingerprint stays has the same records."""
    zone, _ = build(cidrs4, cidrs6, domains, collide)
    hole = "excluded.bl.example."
    segments = list(zone_data_segments(zone, "", mapped, hole))
    assert [r for seg in segments for r in seg.records()] == list(zone_data_records(zone, "", mapped, hole))
    assert len({seg.key for seg in segments}) == len(segments)
    other, _ = build(cidrs4 + more, cidrs6, domains, collide)
    before = {seg.key: (seg.fingerprint, list(seg.records())) for seg in segments}
    for seg in zone_data_segments(other, "", mapped, hole):
        if seg.key in before and seg.fingerprint == before[seg.key][0]:
            assert list(seg.records()) == before[seg.key][1]


def test_a_new_listing_changes_only_its_own_records():
    """Records are deterministic and local: two snapshots' record sets differ by what changed
    (what an IXFR sends), here one address's A and TXT and the SOA's serial."""
    rows = [row("10.0.0.0/16"), row("10.0.5.5", exclude=True), row(".example.com"), row("2001:db8::/48")]
    before, _ = compile_zone(CONFIG, ListingPolicy(), rows)
    after, _ = compile_zone(CONFIG, ListingPolicy(), [*rows, row("192.0.2.44")])
    old = list(zone_records(Snapshot(1, {before.origin: before}, 0, 0, 0), ORIGIN))
    new = list(zone_records(Snapshot(2, {after.origin: after}, 0, 0, 0), ORIGIN))
    assert old == list(zone_records(Snapshot(1, {before.origin: before}, 0, 0, 0), ORIGIN))  # deterministic
    removed, added = set(old) - set(new), set(new) - set(old)
    assert {(r.name, r.rtype) for r in removed} == {("@", "SOA")}
    assert {(r.name, r.rtype) for r in added} == {("@", "SOA"), ("44.2.0.192", "A"), ("44.2.0.192", "TXT"),
                                                  (f"{reverse_name('::ffff:192.0.2.44')}", "A"),
                                                  (f"{reverse_name('::ffff:192.0.2.44')}", "TXT")}
