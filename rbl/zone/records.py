"""A snapshot as exact entries and DNS resource records: what mirrors must answer.

The snapshot holds, per zone, disjoint sorted runs (IPv4, IPv6) and domain-key
intervals, each pointing to an answer. This module turns them back into things
other software serves, without losing a decision:

- :func:`ip_entries`: the runs as disjoint CIDRs with their answers (rbldnsd's
  tries take them as they are: nothing overlaps, so nothing depends on the
  most-specific rule);
- :func:`domain_nodes`: the domain names where answers change, each with the
  answer of the name itself and of the names below it;
- :func:`zone_records`: the RFC 1035 resource records of a zone and its
  sub-zones, CIDRs written as wildcards on octet (IPv4) and nibble (IPv6)
  boundaries (:func:`tree_cover`), unlisted names under a wildcard as holes (a
  CNAME to a name that does not exist), so that a standard server answers every
  address and domain as rbl does (RFC 4592 semantics accounted for);
- :func:`zone_segments`: the same records in independent pieces (one per
  first-level node), each with a fingerprint of what it is made of, so a zone
  transfer renders only the pieces a change touched.

Everything is pure and deterministic: the same snapshot gives the same entries
and records in the same order, so two snapshots' record sets can be diffed
(IXFR). What a static zone cannot say exactly is documented where it happens
and in the README: a wildcard's TXT names its network where rbl names the
address asked about, and names below a wildcard that are not addresses
(partial names, ``x.4.3.2.1``) get the wildcard's answer.
"""

from __future__ import annotations

import hashlib
import ipaddress
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import product
from typing import NamedTuple

import numpy as np

from rbl.addresses import reverse_name
from rbl.intervals import compress
from rbl.zone.snapshot import Answer, Snapshot, ZoneSnapshot
from rbl.zone.tenant import BYSTANDER, IMPLICATED, TENANT_ARRAYS, TenantZone, parents

IP4_BITS = 32
IP6_BITS = 128
# ::ffff:0:0/96: rbl (like rbldnsd) answers these names from the IPv4 data.
MAPPED_LO = 0xFFFF << 32
MAPPED_HI = MAPPED_LO + (1 << 32)
TEST_POINT = 0x7F000002  # 127.0.0.2, RFC 5782 section 5
MAPPED_PATH = ".".join(reversed(f"{MAPPED_LO >> 32:024x}"))  # f.f.f.f.0.0...0 (nearest the origin last)

# Names the zone file points excluded domains at (a CNAME to a name that does not
# exist answers NXDOMAIN, RFC 6604): one label, so no listed domain (two labels at
# least) nor address name can be it.
HOLE_LABEL = "excluded"
HOLE = -1  # in a Cover: an unlisted name under a wildcard, written as that CNAME


class TextRecord(NamedTuple):
    """One resource record as text: owner relative to the zone's apex ("@" for the apex), rdata as a
    zone file writes it (transfers encode it: :class:`rbl.transfer.rrwire.WireRecord`)."""

    name: str
    ttl: int
    rtype: str
    rdata: str  # presentation format (RFC 1035 section 5.1)


# -- runs of a zone ---------------------------------------------------------------


def ip4_runs(zone: ZoneSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """The IPv4 answers as runs: ``starts[i]`` begins a run answered by ``values[i]``."""
    starts = np.frombuffer(zone.ip4_starts, dtype=np.uint32).astype(np.int64)
    values = np.frombuffer(zone.ip4_values, dtype=np.uint32).astype(np.int64)
    return starts, values


def ip6_runs(zone: ZoneSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """The IPv6 answers as runs (keys as Python ints), ::ffff:0:0/96 left unlisted.

    rbl answers IPv4-mapped names from the IPv4 data, whatever the IPv6 data holds
    there; exports write them from the IPv4 runs (or, for rbldnsd, leave them to it).
    """
    starts = [(hi << 64) | lo for hi, lo in zip(zone.ip6_hi, zone.ip6_lo)]
    values = list(zone.ip6_values)
    if not starts:
        starts, values = [0], [0]
    return _blank(starts, values, MAPPED_LO, MAPPED_HI)


def _blank(starts: list[int], values: list[int], lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Runs with ``[lo, hi)`` set to 0 (unlisted)."""
    at_hi = values[bisect_right(starts, hi) - 1]
    first, last = bisect_right(starts, lo - 1), bisect_right(starts, hi)
    new_starts = starts[:first] + [lo, hi] + starts[last:]
    new_values = values[:first] + [0, at_hi] + values[last:]
    return compress(np.array(new_starts, dtype=object), np.array(new_values, dtype=np.int64))


def project(starts: np.ndarray, values: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs whose values are mapped through ``table`` (answer index -> key), merged where equal."""
    return compress(starts, table[values])


# -- CIDRs ------------------------------------------------------------------------


def cidrs(starts: np.ndarray, values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every run with a value other than 0 as disjoint CIDRs: (networks, prefix lengths, values).

    Sorted by network. IPv4 runs (int64) are split with numpy, a bit position at a
    time for all runs together; IPv6 runs (Python ints) one by one.
    """
    ends = np.concatenate([starts[1:], np.array([1 << bits], dtype=starts.dtype)])
    listed = values != 0
    los, his, vals = starts[listed], ends[listed], values[listed]
    if starts.dtype != object:
        return _cidrs_numpy(los, his, vals, bits)
    nets, plens, out_values = [], [], []
    for lo, hi, value in zip(los, his, vals):
        for net, plen in cidr_split(int(lo), int(hi), bits):
            nets.append(net)
            plens.append(plen)
            out_values.append(value)
    return np.array(nets, dtype=object), np.array(plens, dtype=np.int64), np.array(out_values, dtype=np.int64)


def cidr_split(lo: int, hi: int, bits: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` as the fewest aligned CIDRs, in order: the plain loop (and the numpy path's twin)."""
    out = []
    while lo < hi:
        size = lo & -lo if lo else 1 << bits
        while size > hi - lo:
            size >>= 1
        out.append((lo, bits - size.bit_length() + 1))
        lo += size
    return out


def _cidrs_numpy(los: np.ndarray, his: np.ndarray, values: np.ndarray, bits: int):
    nets, plens, out_values = [], [], []
    current, his, values = los.copy(), his.copy(), values.copy()
    while len(current):
        low = current & -current  # the largest block the start is aligned to
        low[current == 0] = 1 << bits
        # the largest power of two that fits what is left: frexp is exact below 2**53
        exponent = np.frexp((his - current).astype(np.float64))[1].astype(np.int64)  # int32 from numpy
        room = np.left_shift(np.int64(1), exponent - 1)
        size = np.minimum(low, room)
        nets.append(current)
        plens.append(bits + 1 - np.frexp(size.astype(np.float64))[1].astype(np.int64))
        out_values.append(values)
        current = current + size
        more = current < his
        current, his, values = current[more], his[more], values[more]
    if not nets:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    nets_a, plens_a, values_a = np.concatenate(nets), np.concatenate(plens).astype(np.int64), np.concatenate(out_values)
    order = np.argsort(nets_a, kind="stable")
    return nets_a[order], plens_a[order], values_a[order]


def ip_entries(zone: ZoneSnapshot, family: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The zone's listed IPv4 (``"ip4"``) or IPv6 (``"ip6"``, without ::ffff:0:0/96) space as CIDRs."""
    if family == "ip4":
        return cidrs(*ip4_runs(zone), IP4_BITS)
    return cidrs(*ip6_runs(zone), IP6_BITS)


# -- domains ----------------------------------------------------------------------


@dataclass(frozen=True)
class DomainNode:
    """A domain where answers may change, with every ancestor up to the zone.

    ``exact`` answers the name itself, ``below`` the names under it that are not
    nodes themselves, ``parent_below`` what covered this name from above (the
    parent's ``below``); ``any_below``: something under it is listed, so rbl
    answers NODATA for the name when ``exact`` is 0.
    """

    name: str
    exact: int
    below: int
    parent_below: int
    any_below: bool


def _key_name(key: bytes) -> bytes:
    """The name a domain-key breakpoint is about (see :func:`rbl.zone.snapshot.domain_key`)."""
    if key.endswith(b"\x01\x02"):  # just after the name itself: its subdomains begin
        return key[:-1]
    if key.endswith(b"\x02"):  # just past its subtree
        return key[:-1] + b"\x01"
    return key


def domain_nodes(zone: ZoneSnapshot) -> list[DomainNode]:
    """Every name a domain breakpoint names, and all their ancestors; parents first."""
    keys, values = zone.domain_keys, zone.domain_values
    wanted: set[bytes] = set()
    for key in keys[1:]:
        labels = _key_name(key).split(b"\x01")[:-1]
        for depth in range(1, len(labels) + 1):
            wanted.add(b"\x01".join(labels[:depth]) + b"\x01")

    def at(key: bytes) -> int:
        return values[bisect_right(keys, key) - 1]

    def any_in(lo: bytes, hi: bytes) -> bool:
        i = bisect_right(keys, lo) - 1
        return bool(values[i]) or (i + 1 < len(keys) and keys[i + 1] < hi)

    below: dict[bytes, int] = {b"": values[0] if len(values) else 0}
    out = []
    for key in sorted(wanted):  # a parent's key is a prefix of its children's: it sorts first
        parent = key[: key.rindex(b"\x01", 0, len(key) - 1) + 1] if key.count(b"\x01") > 1 else b""
        below[key] = at(key + b"\x02")
        name = ".".join(reversed(key[:-1].decode("ascii").split("\x01")))
        out.append(DomainNode(name, at(key), below[key], below[parent], any_in(key + b"\x02", key[:-1] + b"\x02")))
    return out


# -- the zone file: wildcards ------------------------------------------------------


@dataclass
class Cover:
    """Names that answer a family's runs: ``depth`` labels below the family's root.

    A leaf (``depth == levels``) is one address; any other entry is a wildcard
    ``*.<node>`` answering every name below that node which does not exist.
    ``index`` numbers the node among those of its depth (its address >> the bits below).
    """

    depth: np.ndarray
    index: np.ndarray
    value: np.ndarray
    levels: int


def _digit_paths(depth: int, fan: int) -> list[int]:
    """Node indexes at ``depth`` whose labels are all decimal digits 0-9."""
    out = []
    for path in product(range(10), repeat=depth):
        index = 0
        for label in path:
            index = index * fan + label
        out.append(index)
    return out


def _with_breakpoints(starts: np.ndarray, values: np.ndarray, extra: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Runs with more breakpoints that change nothing (the values continue across them)."""
    extra_a = np.array(sorted(set(extra)), dtype=starts.dtype)
    extra_a = extra_a[~_member(extra_a, starts)]
    where = np.searchsorted(starts, extra_a, side="right")
    return np.insert(starts, where, extra_a), np.insert(values, where, values[where - 1])


def _member(items: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(sorted_set, items)
    pos_c = np.minimum(pos, max(len(sorted_set) - 1, 0))
    return (pos < len(sorted_set)) & (sorted_set[pos_c] == items) if len(sorted_set) else np.zeros(len(items), bool)


def tree_cover(starts: np.ndarray, values: np.ndarray, bits: int, width: int, shared_depth: int = 0,
               walk: tuple[int, ...] = ()) -> Cover:
    """Leaves, wildcards and holes that answer every address as the runs do.

    Labels are ``width`` bits (8: IPv4 octets, 4: IPv6 nibbles). Walking down from
    the root, a node holding different answers ("mixed") gets a wildcard with
    the answer most of its whole children (one answer each) share, or none when
    most are unlisted. Whole children that differ from it get their own wildcard
    (at the last level, their own records); unlisted ones under a wildcard get a
    hole (:data:`HOLE`, a CNAME to a name that does not exist: NXDOMAIN for the
    name and, as it exists, for every name below it). Mixed children are walked
    in turn: they exist as names (records below them), so the parent's
    wildcard never reaches into them (RFC 4592).

    ``shared_depth``: nodes this deep or less whose labels are all digits are
    names of the other address family too (``1.0.0.2`` is 2.0.0.1 and the
    IPv6 2001::/16); they never carry a wildcard, which would answer the other
    family's names below, and are split down to where they are not shared.
    The root never carries one either. ``walk``: addresses whose nodes are
    always walked, never whole (a subtree written by someone else lies there).
    """
    fan = 1 << width
    levels = bits // width
    unsafe: dict[int, np.ndarray] = {}
    if shared_depth:
        extra: list[int] = []
        for depth in range(1, shared_depth + 1):
            nodes = _digit_paths(depth, fan)
            unsafe[depth] = np.array(nodes, dtype=starts.dtype)
            node_bits = bits - width * depth
            # A breakpoint one child into the node makes it mixed, so it is walked.
            extra += [(node << node_bits) + (1 << (node_bits - width)) for node in nodes]
    else:
        extra = []
    # A breakpoint just inside an address's last-level node makes every node above it mixed.
    extra += [address + 1 for address in walk]
    if extra:
        starts, values = _with_breakpoints(starts, values, extra)
    ends = np.concatenate([starts[1:], np.array([1 << bits], dtype=starts.dtype)])
    out_depth, out_index, out_value = [], [], []
    for depth in range(levels):
        node_bits = bits - width * depth
        child_bits = node_bits - width
        if depth == 0:
            mixed = np.zeros(1, dtype=starts.dtype)
        else:
            inner = starts[starts % (1 << node_bits) != 0]
            mixed = np.unique(inner >> node_bits) if len(inner) else inner
        if not len(mixed):
            break
        # Whole children of each run, attributed to the mixed node(s) they lie in: a run
        # touches at most two mixed nodes per level (those of its ends), as any node
        # strictly inside it is whole.
        c_lo = -((-starts) >> child_bits)
        c_hi = ends >> child_bits
        has = c_lo < c_hi
        c_lo, c_hi, vals = c_lo[has], c_hi[has], values[has]
        n0 = c_lo >> width
        n1 = (c_hi - 1) >> width
        cut = (n0 + 1) << width
        first_end = np.where(c_hi < cut, c_hi, cut)
        two = n1 != n0
        nodes = np.concatenate([n0, n1[two]])
        lo = np.concatenate([c_lo, n1[two] << width])
        hi = np.concatenate([first_end, c_hi[two]])
        vals = np.concatenate([vals, vals[two]])
        pos = np.searchsorted(mixed, nodes)
        keep = _member(nodes, mixed)
        rank, lo, hi, vals = pos[keep], lo[keep], hi[keep], vals[keep]
        counts = (hi - lo).astype(np.int64)
        wild = _majority(rank, vals, counts, len(mixed))
        if depth == 0:
            wild[:] = 0
        elif depth in unsafe:
            wild[_member(mixed, unsafe[depth])] = 0
        has_wild = wild != 0
        out_depth.append(np.full(int(has_wild.sum()), depth, dtype=np.int64))
        out_index.append(mixed[has_wild])
        out_value.append(wild[has_wild])
        covered = wild[rank]
        own = vals != covered
        lo, counts, vals = lo[own], counts[own], np.where(vals[own] == 0, HOLE, vals[own])
        total = int(counts.sum())
        offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        out_depth.append(np.full(total, depth + 1, dtype=np.int64))
        out_index.append(np.repeat(lo, counts) + offsets)
        out_value.append(np.repeat(vals, counts))
    depth_a = np.concatenate(out_depth) if out_depth else np.zeros(0, np.int64)
    index_a = np.concatenate(out_index) if out_index else np.zeros(0, starts.dtype)
    value_a = np.concatenate(out_value) if out_value else np.zeros(0, np.int64)
    # Address order (then the wider first): a stable file, readable by people.
    first = index_a << (bits - width * depth_a) if starts.dtype != object else np.array(
        [int(i) << (bits - width * int(d)) for i, d in zip(index_a, depth_a)], dtype=object)
    if starts.dtype != object:
        order = np.lexsort((depth_a, first))
    else:
        order = np.array(sorted(range(len(first)), key=lambda i: (first[i], depth_a[i])), dtype=np.int64)
    return Cover(depth_a[order], index_a[order], value_a[order], levels)


def _content_order(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(answer index -> rank, rank -> answer index), ranks ordered by the answers' content
    (:func:`_answer_ids`; 0, unlisted, stays 0)."""
    back = np.concatenate([[0], np.argsort(ids[1:], kind="stable") + 1]).astype(np.int64)
    forward = np.zeros(len(back), dtype=np.int64)
    forward[back] = np.arange(len(back))
    return forward, back


def content_cover(order: tuple[np.ndarray, np.ndarray], starts: np.ndarray, values: np.ndarray, *args, **kwargs
                  ) -> Cover:
    """:func:`tree_cover` with ties between answers broken by their content, not their numbers,
    which a full compile may give out afresh: the same runs answering the same get the same
    records, so a transfer part no change touched is the part a fresh render would write."""
    forward, back = order
    cover = tree_cover(starts, forward[values], *args, **kwargs)
    value = np.where(cover.value >= 0, back[np.maximum(cover.value, 0)], cover.value)
    return Cover(cover.depth, cover.index, value, cover.levels)


def _majority(rank: np.ndarray, vals: np.ndarray, counts: np.ndarray, nodes: int) -> np.ndarray:
    """Per node: the wildcard's answer that leaves the fewest names to write, 0 for none.

    A wildcard answering v costs one name and spares the whole children answering v;
    the others (holes for the unlisted ones) are written either way.
    """
    wild = np.zeros(nodes, dtype=np.int64)
    if not len(rank):
        return wild
    order = np.lexsort((vals, rank))
    rank, vals, counts = rank[order], vals[order], counts[order]
    starts = np.ones(len(rank), dtype=bool)
    starts[1:] = (rank[1:] != rank[:-1]) | (vals[1:] != vals[:-1])
    group = np.cumsum(starts) - 1
    total = np.bincount(group, weights=counts).astype(np.int64)
    g_rank, g_val = rank[starts], vals[starts]
    saved = total - (g_val != 0)  # names a wildcard with this answer spares (none for "no wildcard")
    best = np.lexsort((g_val, -saved, g_rank))  # the most spared, then the smaller answer (0 first)
    first = np.ones(len(best), dtype=bool)
    first[1:] = g_rank[best][1:] != g_rank[best][:-1]
    chosen = best[first]
    wild[g_rank[chosen]] = g_val[chosen]
    return wild


# -- the zone file: records --------------------------------------------------------


def txt_rdata(text: str) -> str:
    """TXT rdata in presentation format: quoted strings of at most 255 bytes, as rbl sends them."""
    if len(text) <= 255 and text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the usual case, without a look at each character
    data = text.encode("ascii", "replace")
    chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join('"' + "".join(_TXT_ESCAPE[b] for b in chunk) + '"' for chunk in chunks)


_LONGEST_SUBJECT = len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")


def _plain_parts(parts: tuple[str, ...]) -> tuple[str, ...] | None:
    """``parts`` with a quote before the first and after the last, when every TXT made of them
    and a subject is a single unescaped string (else None: :func:`txt_rdata` decides each)."""
    joined = "".join(parts)
    longest = len(joined) + _LONGEST_SUBJECT * (len(parts) - 1)
    if longest > 255 or not (joined.isascii() and joined.isprintable()) or '"' in joined or "\\" in joined:
        return None
    return ('"' + parts[0], *parts[1:-1], parts[-1] + '"') if len(parts) > 1 else ('"' + parts[0] + '"',)


_TXT_ESCAPE = [chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:03d}" for b in range(256)]
_TXT_ESCAPE[0x22], _TXT_ESCAPE[0x5C] = '\\"', "\\\\"


class _Rdata:
    """Each answer's A rdatas and TXT, prepared once per zone."""

    def __init__(self, answers: list[Answer | None]):
        self.answers = answers
        self.a = [list(a.codes) if a is not None else [] for a in answers]
        self.fixed = [txt_rdata(a.txt[0]) if a is not None and a.txt is not None and len(a.txt) == 1 else None
                      for a in answers]
        # Templates whose TXT with any address or network in it is one quoted string as it is:
        # its parts with the quotes added, for the subject to be joined in (see txt_rdata).
        self.plain = [_plain_parts(a.txt) if a is not None and a.txt is not None and len(a.txt) > 1 else None
                      for a in answers]

    def records(self, name: str, ttl: int, value: int, subject: str) -> Iterator[TextRecord]:
        for code in self.a[value]:
            yield TextRecord(name, ttl, "A", code)
        answer = self.answers[value]
        if answer.txt is not None:
            fixed = self.fixed[value]
            yield TextRecord(name, ttl, "TXT", fixed if fixed is not None else txt_rdata(answer.text(subject)))


_OCTETS = [str(i) for i in range(256)]
_NIBBLES = "0123456789abcdef"
_BYTE_NIBBLES = [f"{b & 15:x}.{b >> 4:x}" for b in range(256)]  # a byte's two labels, low nibble first


def _ip4_label_path(index: int, depth: int) -> str:
    if depth == 4:
        return f"{_OCTETS[index & 255]}.{_OCTETS[index >> 8 & 255]}.{_OCTETS[index >> 16 & 255]}.{_OCTETS[index >> 24]}"
    return ".".join(_OCTETS[index >> (8 * i) & 255] for i in range(depth))


def _nibble_path(index: int, depth: int) -> str:
    if depth == 8:
        return (f"{_BYTE_NIBBLES[index & 255]}.{_BYTE_NIBBLES[index >> 8 & 255]}.{_BYTE_NIBBLES[index >> 16 & 255]}."
                f"{_BYTE_NIBBLES[index >> 24]}")
    return ".".join(_NIBBLES[index >> (4 * i) & 15] for i in range(depth))


def _dotted(value: int) -> str:
    return f"{_OCTETS[value >> 24]}.{_OCTETS[value >> 16 & 255]}.{_OCTETS[value >> 8 & 255]}.{_OCTETS[value & 255]}"


def _ip4_subject(index: int, depth: int) -> str:
    net = _dotted(index << (32 - 8 * depth))
    return net if depth == 4 else f"{net}/{8 * depth}"


def _ip6_subject(index: int, depth: int) -> str:
    net = str(ipaddress.IPv6Address(index << (128 - 4 * depth)))
    return net if depth == 32 else f"{net}/{4 * depth}"


def _mapped_subject(index: int, depth: int) -> str:
    # rbl names an IPv4-mapped address by its IPv4 form, as rbldnsd does.
    net = _dotted(index << (32 - 4 * depth))
    return net if depth == 8 else f"{net}/{4 * depth}"


def _cover_records(cover: Cover, rdata: _Rdata, ttl: int, suffix: str, path, subject, hole: TextRecord
                   ) -> Iterator[TextRecord]:
    # The loop millions of records go through: tuple.__new__ makes a TextRecord at half the cost
    # of calling it, and a template that needs no quoting takes the subject between quotes as is
    # (an address or network is digits, dots, colons and a slash).
    levels, codes, answers, fixed, plain = cover.levels, rdata.a, rdata.answers, rdata.fixed, rdata.plain
    new = tuple.__new__
    hole_ttl, hole_rtype, hole_rdata = hole.ttl, hole.rtype, hole.rdata
    for depth, index, value in zip(cover.depth.tolist(), cover.index.tolist(), cover.value.tolist()):
        if value == HOLE:
            yield new(TextRecord, (path(index, depth) + suffix, hole_ttl, hole_rtype, hole_rdata))
            continue
        name = path(index, depth) + suffix if depth == levels else "*." + path(index, depth) + suffix
        for code in codes[value]:
            yield new(TextRecord, (name, ttl, "A", code))
        parts = answers[value].txt
        if parts is not None:
            text = fixed[value]
            if text is None:
                quoted = plain[value]
                text = subject(index, depth).join(quoted) if quoted is not None \
                    else txt_rdata(subject(index, depth).join(parts))
            yield new(TextRecord, (name, ttl, "TXT", text))


def _test_point_runs(starts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Only what 127.0.0.2 answers: RFC 5782's ::FFFF:7F00:2, served however little else is mapped."""
    point = TEST_POINT
    value = values[np.searchsorted(starts, point, side="right") - 1]
    return np.array([0, point, point + 1], dtype=np.int64), np.array([0, value, 0], dtype=np.int64)


def zone_data_records(zone: ZoneSnapshot, suffix: str, mapped: bool, holes: str, skip: tuple[str, ...] = ()
                      ) -> Iterator[TextRecord]:
    """The records answering one zone's (or sub-zone's) listings; names end with ``suffix``.

    ``mapped``: answer ::ffff:0:0/96 names from the IPv4 data, as rbl does (False:
    only the test point ::ffff:127.0.0.2).
    ``holes``: the name (relative, with suffix) excluded domains under a wildcard point to.
    ``skip``: relative names (sub-zones) whose subtrees belong to another zone.
    """
    config = zone.config
    ttl = config.ttl
    # A hole lives as long as rbl's NXDOMAIN would (RFC 2308): a later listing shows as soon.
    hole = TextRecord("", min(config.soa.ttl, config.negative_ttl), "CNAME", holes)
    rdata = _Rdata(zone.answers)
    ip4 = ip4_runs(zone)
    order = _content_order(_answer_ids(zone.answers))
    yield from _cover_records(content_cover(order, *ip4, IP4_BITS, 8, shared_depth=3), rdata, ttl, suffix,
                              _ip4_label_path, _ip4_subject, hole)
    # The IPv4-mapped subtree is written from the IPv4 data below: never a hole or wildcard's.
    ip6 = content_cover(order, *ip6_runs(zone), IP6_BITS, 4, shared_depth=3, walk=(MAPPED_LO,))
    yield from _cover_records(ip6, rdata, ttl, suffix, _nibble_path, _ip6_subject, hole)
    mapped_runs = ip4 if mapped else _test_point_runs(*ip4)
    yield from _cover_records(content_cover(order, *mapped_runs, IP4_BITS, 4), rdata, ttl, "." + MAPPED_PATH + suffix,
                              _nibble_path, _mapped_subject, hole)
    yield from _domain_records(zone, suffix, ttl, hole, rdata, skip)


def _domain_records(zone: ZoneSnapshot, suffix: str, ttl: int, hole: TextRecord, rdata: _Rdata,
                    skip: tuple[str, ...]) -> Iterator[TextRecord]:
    for node in domain_nodes(zone):
        if any(node.name == s or node.name.endswith("." + s) for s in skip):
            continue
        name = node.name + suffix
        if node.exact:
            yield from rdata.records(name, ttl, node.exact, node.name)
        elif not node.any_below and node.parent_below:
            # Excluded, yet a wildcard above would list it: a CNAME to a name that
            # does not exist answers NXDOMAIN, as rbl does (RFC 6604).
            yield hole._replace(name=name)
        if node.below:
            yield from rdata.records("*." + name, ttl, node.below, node.name)


class TenantAddress(NamedTuple):
    """One address of a tenant zone as mirrors write it: its text, its reversed name (``7.141.5.3``),
    whether it is shared space, and its owner names with their answer: each identity IMPLICATED and,
    in shared space, each parent of one BYSTANDER (a name longer than a query can be is left out)."""

    address: str
    reverse: str
    shared: bool
    names: dict[str, int]


def _wire_length(zone: ZoneSnapshot, *labels: str) -> int:
    """The wire length of ``labels`` joined below the zone's origin."""
    return sum(len(x) + 1 for x in labels) + len(zone.config.origin) + 2


def tenant_addresses(zone: TenantZone, kind: str) -> Iterator[TenantAddress]:
    """A tenant zone's addresses of one family, in order (rbl.zone.tenant says what each answers)."""
    for value, shared, identities in zone.entries(kind):
        address = str(ipaddress.ip_address(value) if kind == "ip4" else ipaddress.IPv6Address(value))
        reverse = reverse_name(address)
        names = {name: IMPLICATED for name in identities}
        if shared:
            for name in identities:
                for parent in parents(name):
                    names.setdefault(parent, BYSTANDER)
        yield TenantAddress(address, reverse, shared,
                            {name: names[name] for name in sorted(names) if _wire_length(zone, name, reverse) <= 255})


def _tenant_records(zone: TenantZone, kind: str, suffix: str, rdata: _Rdata) -> Iterator[TextRecord]:
    """A tenant zone's pairs as names: per address its identities (implicated) and, in shared space,
    wildcards below the address, each identity and each parent of one (bystander), the parents as
    names too. In accountable space the parents stay empty non-terminals (NODATA), as rbl."""
    ttl = zone.config.ttl
    for entry in tenant_addresses(zone, kind):
        path = entry.reverse + suffix
        if entry.shared:
            yield from rdata.records("*." + path, ttl, BYSTANDER, entry.address)
        for name, value in entry.names.items():
            yield from rdata.records(f"{name}.{path}", ttl, value, entry.address)
            if entry.shared and _wire_length(zone, "*", name, entry.reverse) <= 255:
                yield from rdata.records(f"*.{name}.{path}", ttl, BYSTANDER, entry.address)


# -- segments: the records in independent pieces, each with a fingerprint -------------


class Segment(NamedTuple):
    """Consecutive records of a zone that depend on nothing outside ``fingerprint``'s input.

    Two segments with the same key and fingerprint have the same records, so a
    transfer version reuses the pieces of the one before that no change touched
    (see :func:`rbl.transfer.versions.render`) and renders only the others.
    """

    key: str
    fingerprint: bytes
    records: Callable[[], Iterator[TextRecord]]


_ANSWER_ID = np.dtype("<u8")


def _answer_ids(answers: list[Answer | None]) -> np.ndarray:
    """A 64-bit digest of each answer's content: runs are fingerprinted by what they answer, not by the
    answer's index, which a full compile may number afresh."""
    return np.array([int.from_bytes(hashlib.blake2b(repr((a.codes, a.txt) if a is not None else None).encode(),
                                                    digest_size=8).digest(), "little") for a in answers],
                    dtype=_ANSWER_ID)


def _node_runs(starts: np.ndarray, values: np.ndarray, lo: int, hi: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The runs with everything outside ``[lo, hi)`` unlisted."""
    first = int(np.searchsorted(starts, lo, side="right")) - 1
    last = int(np.searchsorted(starts, hi, side="left"))
    inner_s, inner_v = starts[first + 1:last], values[first + 1:last]
    head_s = np.array([0, lo] if lo else [lo], dtype=starts.dtype)
    head_v = np.array([0, values[first]] if lo else [values[first]], dtype=values.dtype)
    tail = 1 if hi < 1 << bits else 0
    return compress(np.concatenate([head_s, inner_s, np.array([hi] * tail, dtype=starts.dtype)]),
                    np.concatenate([head_v, inner_v, np.zeros(tail, dtype=values.dtype)]))


def _fingerprint(context: tuple, *parts: bytes) -> bytes:
    digest = hashlib.blake2b(repr(context).encode(), digest_size=16)
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.digest()


def _run_bytes(starts: np.ndarray, values: np.ndarray, ids: np.ndarray, lo: int, hi: int, bits: int) -> bytes:
    """What a node's records are made of: its breakpoints and what each run answers."""
    first = int(np.searchsorted(starts, lo, side="right")) - 1
    last = int(np.searchsorted(starts, hi, side="left"))
    inner = starts[first + 1:last]
    if starts.dtype == object:
        points = b"".join(int(v).to_bytes(bits // 8, "big") for v in inner)
    else:
        points = inner.astype("<i8").tobytes()
    return points + ids[values[first:last].astype(np.int64)].tobytes()


def _cover_segments(name: str, starts: np.ndarray, values: np.ndarray, bits: int, width: int, context: tuple,
                    ids: np.ndarray, emit, shared_depth: int = 0, walk: tuple[int, ...] = ()) -> Iterator[Segment]:
    """One segment per first-level node that holds a listed run (an unlisted node has no records).

    Below the root no name carries a wildcard (:func:`tree_cover`), so the records under
    one first-level node (an IPv4 /8, an IPv6 or IPv4-mapped /4) depend on that node's
    runs alone: a node's cover is computed from its runs with the rest unlisted.
    """
    order = _content_order(ids)
    node_bits = bits - width
    listed = starts[values != 0]
    if not len(listed):
        return
    ends = np.concatenate([starts[1:], np.array([1 << bits], dtype=starts.dtype)])[values != 0]
    first, last = listed >> node_bits, (ends - 1) >> node_bits
    nodes = set(np.unique(np.concatenate([first, last])).tolist())
    for lo, hi in zip(first[last > first + 1].tolist(), last[last > first + 1].tolist()):
        nodes.update(range(int(lo), int(hi) + 1))  # a network wider than a node spans all between
    for node in sorted(nodes):
        lo, hi = node << node_bits, (node + 1) << node_bits

        def records(lo=lo, hi=hi) -> Iterator[TextRecord]:
            runs = _node_runs(starts, values, lo, hi, bits)
            inside = tuple(a for a in walk if lo <= a < hi)
            return emit(content_cover(order, *runs, bits, width, shared_depth=shared_depth, walk=inside))

        yield Segment(f"{name}/{node:x}", _fingerprint((name, node, context),
                                                       _run_bytes(starts, values, ids, lo, hi, bits)), records)


def zone_data_segments(zone: ZoneSnapshot, suffix: str, mapped: bool, holes: str, skip: tuple[str, ...] = ()
                       ) -> Iterator[Segment]:
    """:func:`zone_data_records` in segments, in the same order (its records, joined, are the same)."""
    config = zone.config
    ttl = config.ttl
    hole = TextRecord("", min(config.soa.ttl, config.negative_ttl), "CNAME", holes)
    rdata = _Rdata(zone.answers)
    ids = _answer_ids(zone.answers)
    context = (config.origin, suffix, ttl, hole)
    ip4 = ip4_runs(zone)

    def emit(path, subject, names_suffix):
        return lambda cover: _cover_records(cover, rdata, ttl, names_suffix, path, subject, hole)

    yield from _cover_segments(f"{config.origin}/ip4", *ip4, IP4_BITS, 8, context, ids,
                               emit(_ip4_label_path, _ip4_subject, suffix), shared_depth=3)
    yield from _cover_segments(f"{config.origin}/ip6", *ip6_runs(zone), IP6_BITS, 4, context, ids,
                               emit(_nibble_path, _ip6_subject, suffix), shared_depth=3, walk=(MAPPED_LO,))
    mapped_runs = ip4 if mapped else _test_point_runs(*ip4)
    yield from _cover_segments(f"{config.origin}/mapped", *mapped_runs, IP4_BITS, 4, context, ids,
                               emit(_nibble_path, _mapped_subject, "." + MAPPED_PATH + suffix))
    if isinstance(zone, TenantZone):
        for kind in ("ip4", "ip6"):
            parts = [bytes(getattr(zone, name)) for name in TENANT_ARRAYS if name.startswith(f"t{kind[-1]}_")]
            yield Segment(f"{config.origin}/{kind}", _fingerprint(("tenant", kind, context), *parts),
                          lambda kind=kind: _tenant_records(zone, kind, suffix, rdata))
        return
    if len(zone.domain_keys) > 1 or (len(zone.domain_values) and zone.domain_values[0]):
        keys = b"\0".join(zone.domain_keys)
        values = ids[np.array(zone.domain_values, dtype=np.int64)].tobytes()
        yield Segment(f"{config.origin}/domains", _fingerprint(("domains", context, skip), keys, values),
                      lambda: _domain_records(zone, suffix, ttl, hole, rdata, skip))


def zone_segments(snapshot: Snapshot, origin: str, mapped: bool | None = None) -> Iterator[Segment]:
    """:func:`zone_records` in segments: the SOA alone first (key ``soa``), then the apex's NS and
    glue, then each zone's data in first-level nodes."""
    zones = [z for z in snapshot.zones.values() if z.config.origin == origin or z.config.apex == origin]
    apex = next(z for z in zones if z.config.origin == origin)
    config = apex.config
    if mapped is None:
        mapped = config.export_ipv4_mapped
    soa = config.soa
    soa_record = TextRecord("@", soa.ttl, "SOA", f"{soa.mname}. {soa.rname}. {snapshot.serial} {soa.refresh} "
                                                 f"{soa.retry} {soa.expire} {config.negative_ttl}")
    yield Segment("soa", _fingerprint(("soa", soa_record)), lambda: iter([soa_record]))
    head = [TextRecord("@", config.ns_ttl, "NS", host + ".") for host in config.ns]
    for host in config.ns:
        for address in config.glue.get(host, ()):
            head.append(TextRecord(host[: -len(origin) - 1], config.ns_ttl, "AAAA" if ":" in address else "A",
                                   address))
    if head:
        yield Segment("apex", _fingerprint(("apex", head)), lambda: iter(head))
    subs = sorted(z.config.origin[: -len(origin) - 1] for z in zones if z.config.apex)
    hole = HOLE_LABEL
    while hole in subs or f"{hole}.{origin}" in config.glue:
        hole = "_" + hole
    for zone in sorted(zones, key=lambda z: (bool(z.config.apex), z.config.origin)):
        relative = zone.config.origin[: -len(origin) - 1] if zone.config.apex else ""
        suffix = "." + relative if relative else ""
        skip = tuple(s for s in subs if not relative)
        yield from zone_data_segments(zone, suffix, mapped, f"{hole}.{origin}.", skip)


def zone_records(snapshot: Snapshot, origin: str, mapped: bool | None = None) -> Iterator[TextRecord]:
    """Every record of the zone ``origin`` and its sub-zones, apex first; names relative to it.

    The apex holds the SOA (serial: the snapshot's), NS and in-zone glue;
    sub-zones are plain names below it, as rbl serves them under the parent's SOA.
    ``mapped`` (default: the zone's ``export: ipv4_mapped`` setting): write
    ::ffff:a.b.c.d names from the IPv4 data, as rbl answers them.
    """
    for segment in zone_segments(snapshot, origin, mapped):
        yield from segment.records()
