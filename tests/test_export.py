"""Exports (rbldnsd data files, RFC 1035 zone files) answer as rbl does.

Property tests hold the records module to the snapshot's own lookup (its slow
twin): a small authoritative resolver written here from RFC 1034 4.3.2 and
RFC 4592 (closest encloser, source of synthesis, CNAME) answers from the
records, and must agree with :meth:`ZoneSnapshot.find` on every name asked.
"""

from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.addresses import reverse_name
from rbl.policy.listing import ListingPolicy
from rbl.zone.records import Record, cidr_split, cidrs, ip4_runs, zone_records
from rbl.zone.snapshot import NODATA, NXDOMAIN, Snapshot, compile_zone
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
