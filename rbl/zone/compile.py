"""The snapshot compiler: store rows and policy decisions into a :class:`Snapshot`'s arrays.

Each zone's listings become ranges with priorities, flattened into sorted
breakpoints; in zones that serve listings the policy (:mod:`rbl.policy.decide`)
decides each window of address space. :mod:`rbl.zone.patch` reuses these
pieces to redo only the windows a change touches.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from array import array

import numpy as np

from rbl.addresses import BITS, DOMAIN, EXACT, IP4, IP6, SUBDOMAINS, Subject, parse_domain
from rbl.errors import RblError, SnapshotError
from rbl.intervals import compress, flatten, overlay_points
from rbl.policy.classify import Classification
from rbl.policy.decide import EXCLUSION, Window, decide_window
from rbl.policy.listing import ListingPolicy
from rbl.policy.standing import Standing, dense_ranges, range_ids
from rbl.zone.config import CLOUD_CODES, MALFORMED_CODE, ZoneConfig
from rbl.zone.tenant import TenantZone, identity_hash, parents
from rbl.zone.snapshot import (
    BLOCK_BITS, BLOCK_SHIFT, NXDOMAIN, Answer, Snapshot, ZoneSnapshot, domain_key, template_parts,
)

_MASK64 = 2**64 - 1

# Priorities among identical ranges: an exclusion beats a listing, a test point both.
_LISTING, _EXCLUSION, _TEST_POINT = 0, 1, 2


def _domain_range(subject: Subject) -> tuple[bytes, bytes]:
    key = domain_key(subject.domain.encode("ascii"))
    below = key[:-1] + b"\x02"  # just past every name under it
    if subject.cover == EXACT:
        return key, key + b"\x02"
    if subject.cover == SUBDOMAINS:
        return key + b"\x02", below
    return key, below


def _code_text(code: str) -> str:
    # rbldnsd writes a bare number N for 127.0.0.N
    return f"127.0.0.{code}" if code.isdigit() else code


class AnswerTable:
    """The distinct answers of a zone, each numbered once; interval values index it."""

    def __init__(self, config: ZoneConfig, policy: ListingPolicy, answers: list[Answer | None] | None = None):
        self.answers: list[Answer | None] = list(answers) if answers else [None]
        self._index = {answer: i for i, answer in enumerate(self.answers) if answer is not None}
        self._by_value: dict[tuple, int] = {}  # (code, txt, listed domain) -> index
        self._codes = {**policy.codes, **config.codes}  # a zone may have codes of its own (DKIM)
        self._block = self._codes["block"]
        self._zone_txt = template_parts(config.txt)
        self._added: dict[tuple[int, str], int] = {}
        self._recoded: dict[tuple[int, str, str], int] = {}

    def _number(self, answer: Answer) -> int:
        found = self._index.get(answer)
        if found is None:
            found = self._index[answer] = len(self.answers)
            self.answers.append(answer)
        return found

    def with_code(self, index: int, name: str) -> int:
        """The answer that adds the code called ``name`` to answer ``index`` (0: none yet)."""
        key = (index, name)
        found = self._added.get(key)
        if found is None:
            code = self._codes[name]
            base = self.answers[index]
            if base is None:
                answer = Answer((code,), self._zone_txt)
            elif code in base.codes:
                answer = base
            else:
                answer = Answer(base.codes + (code,), base.txt)
            found = self._added[key] = self._number(answer)
        return found

    def recoded(self, index: int, old: str, new: str) -> int:
        """The answer with code ``old`` of answer ``index`` replaced by code ``new`` (same TXT)."""
        key = (index, old, new)
        found = self._recoded.get(key)
        if found is None:
            base = self.answers[index]
            was, now = self._codes[old], self._codes[new]
            if base is None or was not in base.codes:
                found = index
            else:
                codes = tuple(dict.fromkeys(now if code == was else code for code in base.codes))
                found = self._number(Answer(codes, base.txt))
            self._recoded[key] = found
        return found

    def fixed(self, codes: tuple[str, ...], txt: str | None) -> int:
        """The answer with exactly these codes and this TXT (no ``$`` in it)."""
        return self._number(Answer(codes, (txt,) if txt is not None else None))

    def id(self, code: str | None, txt: str | None, listed_domain: str | None = None) -> int:
        key = (code, txt, listed_domain)
        found = self._by_value.get(key)
        if found is not None:
            return found
        parts = self._zone_txt if txt is None else template_parts(txt) if txt else None
        if parts is not None and listed_domain is not None:
            # rbldnsd fills a domain listing's $ with the listed name, also for subdomains.
            parts = (listed_domain.join(parts),)
        # A listing's code: none (block), a name this zone gives a code (throttle), or the code itself.
        value = self._block if not code else self._codes.get(code) or _code_text(code)
        answer = Answer((value,), parts)
        found = self._by_value[key] = self._number(answer)
        return found


def row_ranges(rows, table: AnswerTable) -> tuple[list, list, list, int]:
    """Store rows as ``(lo, hi, priority, answer)`` ranges: IPv4, IPv6, domains, and the count."""
    ip4: list = []
    ip6: list = []
    domains: list = []
    count = 0
    for kind, net, plen, subject, exclude, code, txt in rows:
        count += 1
        prio = _EXCLUSION if exclude else _LISTING
        if kind == IP4:
            lo = int.from_bytes(net, "big")
            ip4.append((lo, lo + (1 << (32 - plen)), prio, 0 if exclude else table.id(code, txt)))
        elif kind == IP6:
            lo = int.from_bytes(net, "big")
            ip6.append((lo, lo + (1 << (128 - plen)), prio, 0 if exclude else table.id(code, txt)))
        elif kind == DOMAIN:
            listed = parse_domain(subject)
            lo_key, hi_key = _domain_range(listed)
            domains.append((lo_key, hi_key, prio, 0 if exclude else table.id(code, txt, listed.domain)))
    return ip4, ip6, domains, count


def test_point_ranges(table: AnswerTable) -> tuple[list, list]:
    """RFC 5782 section 5 test points, always served: IPv4 and domain ranges.

    ::FFFF:7F00:2 and ::FFFF:7F00:1 are answered from the IPv4 ones, as every
    name in ::ffff:0:0/96.
    """
    test = table.id(None, None)
    ip4 = [(0x7F000002, 0x7F000003, _TEST_POINT, test), (0x7F000001, 0x7F000002, _TEST_POINT, 0)]
    domains = []
    for name, value in ((b"test", table.id(None, None, "test")), (b"invalid", 0)):
        key = domain_key(name)
        domains.append((key, key + b"\x02", _TEST_POINT, value))
    return ip4, domains


def block_index(starts) -> array:
    """For each /16 (and one past the last), the run holding its first address.

    A lookup then bisects only the runs of its own /16: a few probes, not twenty.
    """
    found = np.searchsorted(np.frombuffer(starts, dtype=np.uint32),
                            np.arange((1 << BLOCK_BITS) + 1, dtype=np.int64) << BLOCK_SHIFT, side="right") - 1
    out = array("I")
    out.frombytes(found.astype(np.uint32).tobytes())
    return out


def ip6_arrays(starts: list[int]) -> tuple[array, array]:
    return array("Q", [s >> 64 for s in starts]), array("Q", [s & _MASK64 for s in starts])


def compile_zone(config: ZoneConfig, policy: ListingPolicy, rows, singles=(),
                 classification: Classification | None = None, standing=None, pieces: int = 16
                 ) -> tuple[ZoneSnapshot, int]:
    """Compile one zone from store rows ``(kind, net, plen, subject, exclude, code, txt)``.

    ``singles`` may carry single IPv4 listings in bulk, ``(code, txt, packed
    big-endian addresses)`` per distinct value: the bulk of a big list, merged
    without a row each. They must not be among ``rows``. What the zone answers
    depends on what it serves: listings decided by policy and the
    classification of address space, listings verbatim, or the cloud
    information itself. ``standing``: the vendors' tiers (:class:`rbl.policy.standing.Standing`;
    None: every vendor neutral). ``pieces``: IPv4 is decided a ``pieces``-th at a time (memory).
    """
    if config.serves == "cloud":
        return compile_cloud_zone(config, policy, classification or Classification()), 0
    if config.serves == "listings":
        return _compile_decided(config, policy, rows, singles, classification or Classification(), standing, pieces)
    return _compile_verbatim(config, policy, rows, singles)


def _zone_snapshot(config: ZoneConfig, table: AnswerTable, ip4: tuple, ip6: tuple, domains: tuple) -> ZoneSnapshot:
    malformed = NXDOMAIN
    if config.malformed_answer:
        malformed = len(table.answers)
        table.answers.append(Answer((MALFORMED_CODE,), template_parts("malformed query name $")))
    ip4_starts, ip4_values = ip4
    starts6, values6 = ip6
    ip6_hi, ip6_lo = ip6_arrays(starts6)
    return ZoneSnapshot(
        config=config,
        answers=table.answers,
        ip4_starts=ip4_starts,
        ip4_values=ip4_values,
        ip4_blocks=block_index(ip4_starts),
        ip6_hi=ip6_hi,
        ip6_lo=ip6_lo,
        ip6_values=array("I", values6),
        domain_keys=domains[0],
        domain_values=array("I", domains[1]),
        malformed=malformed,
    )


def _ip4_arrays(starts, values) -> tuple[array, array]:
    out_s, out_v = array("I"), array("I")
    # One copy each into the array (millions of runs: every copy counts at the compile's peak).
    out_s.frombytes(memoryview(np.ascontiguousarray(starts, dtype=np.uint32)).cast("B"))
    out_v.frombytes(memoryview(np.ascontiguousarray(values, dtype=np.uint32)).cast("B"))
    return out_s, out_v


def _compile_verbatim(config: ZoneConfig, policy: ListingPolicy, rows, singles=()) -> tuple[ZoneSnapshot, int]:
    table = AnswerTable(config, policy)
    ip4, ip6, domains, count = row_ranges(rows, table)
    points4, points_domain = test_point_ranges(table)
    ip4 += points4
    domains += points_domain

    starts4, values4 = flatten(ip4, 0)
    if starts4[-1] >= 1 << 32:
        starts4.pop(), values4.pop()
    ip4_starts, ip4_values = array("I", starts4), array("I", values4)
    if singles:
        points, point_values = [], []
        for code, txt, packed in singles:
            addresses = np.frombuffer(packed, dtype=">u4").astype(np.int64)
            points.append(addresses)
            point_values.append(np.full(len(addresses), table.id(code, txt), dtype=np.int64))
            count += len(addresses)
        points, point_values = np.concatenate(points), np.concatenate(point_values)
        # Test points win over listings: 127.0.0.1 and 127.0.0.2 keep their answers.
        keep = ~np.isin(points, [lo for lo, _hi, _prio, _value in points4])
        merged, merged_values = overlay_points(starts4, values4, points[keep], point_values[keep], 1 << 32)
        ip4_starts, ip4_values = _ip4_arrays(merged, merged_values)
    starts6, values6 = flatten(ip6, 0)
    if starts6[-1] >= 1 << 128:
        starts6.pop(), values6.pop()
    zone = _zone_snapshot(config, table, (ip4_starts, ip4_values), (starts6, values6), flatten(domains, b""))
    return zone, count


def decided_windows(rows, table: AnswerTable, windows: dict, domains: list | None = None) -> int:
    """Sort store rows into the windows they fall in: ranges, single addresses, domains.

    Returns how many rows there were.
    """
    points: dict[str, tuple[list, list]] = {kind: ([], []) for kind in windows}
    count = 0
    for kind, net, plen, subject, exclude, code, txt in rows:
        count += 1
        if kind == DOMAIN:
            if domains is not None:
                listed = parse_domain(subject)
                lo_key, hi_key = _domain_range(listed)
                domains.append((lo_key, hi_key, _EXCLUSION if exclude else _LISTING,
                                0 if exclude else table.id(code, txt, listed.domain)))
            continue
        window = windows.get(kind)
        if window is None:
            continue
        lo = int.from_bytes(net, "big")
        bits = BITS[kind]
        if plen == bits and not exclude:
            points[kind][0].append(lo)
            points[kind][1].append(table.id(code, txt))
        else:
            window.ranges.append((lo, lo + (1 << (bits - plen)), _EXCLUSION if exclude else _LISTING,
                                  EXCLUSION if exclude else table.id(code, txt)))
    for kind, (where, values) in points.items():
        if where:
            window = windows[kind]
            dtype = np.int64 if kind == IP4 else object
            where_array = np.array(where, dtype=dtype)
            value_array = np.array(values, dtype=np.int64)
            if window.points is not None:
                where_array = np.concatenate([window.points, where_array])
                value_array = np.concatenate([window.point_values, value_array])
            window.points, window.point_values = where_array, value_array
    return count


def _decide_in_pieces(window: Window, classification: Classification, policy: ListingPolicy, table: AnswerTable,
                      standing, dense, pieces: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`decide_window` of the whole IPv4 space, a ``pieces``-th of it at a time.

    Deciding holds a dozen arrays as long as the window's listings: a million
    listings cost 250 MiB at once. Windows on escalation-prefix boundaries decide
    alone (patches rely on it), so pieces give the same answers with a
    ``pieces``-th of that peak. The answer table may number them in another order.
    """
    bits = BITS[IP4]
    pieces = max(1, min(pieces, 1 << policy.escalation.prefix(IP4)))
    if pieces == 1 or window.lo != 0 or window.hi != 1 << bits:
        return decide_window(window, classification, policy, table, standing, dense)
    points = window.points if window.points is not None else np.zeros(0, dtype=np.int64)
    values = window.point_values if window.point_values is not None else np.zeros(0, dtype=np.int64)
    window.points = window.point_values = None  # consumed: only the sorted copies stay alive
    order = np.argsort(points, kind="stable")
    points, values = points[order], values[order]
    del order
    step = (1 << bits) // pieces
    cuts = np.searchsorted(points, np.arange(pieces + 1, dtype=np.int64) * step)
    starts, out = [], []
    for i in range(pieces):
        lo, hi = i * step, (i + 1) * step
        piece = Window(IP4, lo, hi, ranges=[r for r in window.ranges if r[0] < hi and r[1] > lo],
                       points=points[cuts[i]:cuts[i + 1]], point_values=values[cuts[i]:cuts[i + 1]],
                       fixed=window.fixed)
        piece_starts, piece_values = decide_window(piece, classification, policy, table, standing, dense)
        starts.append(piece_starts.astype(np.uint32))  # IPv4 runs and answer numbers fit in 32 bits
        out.append(piece_values.astype(np.uint32))
    return compress(np.concatenate(starts), np.concatenate(out))


def _compile_decided(config: ZoneConfig, policy: ListingPolicy, rows, singles,
                     classification: Classification, standing=None, pieces: int = 16
                     ) -> tuple[ZoneSnapshot, int]:
    table = AnswerTable(config, policy)
    points4, points_domain = test_point_ranges(table)
    windows = {IP4: Window(IP4, 0, 1 << 32, fixed=[(lo, value) for lo, _hi, _p, value in points4]),
               IP6: Window(IP6, 0, 1 << 128)}
    domains: list = []
    count = 0
    if singles:
        where = [np.frombuffer(packed, dtype=">u4").astype(np.int64) for _c, _t, packed in singles]
        values = [np.full(len(w), table.id(code, txt), dtype=np.int64) for w, (code, txt, _p) in zip(where, singles)]
        windows[IP4].points, windows[IP4].point_values = np.concatenate(where), np.concatenate(values)
        del where, values
        count += len(windows[IP4].points)
    count += decided_windows(rows, table, windows, domains)
    standing = standing or Standing.neutral(classification)
    dense = {}
    for kind, window in windows.items():
        points = window.points if window.points is not None else np.zeros(0, dtype=np.int64)
        dense[kind] = dense_ranges(kind, points, range_ids(classification, kind, points), classification,
                                   standing, policy)
    starts4, values4 = _decide_in_pieces(windows[IP4], classification, policy, table, standing, dense[IP4], pieces)
    starts6, values6 = decide_window(windows[IP6], classification, policy, table, standing, dense[IP6])
    zone = _zone_snapshot(config, table, _ip4_arrays(starts4, values4),
                          ([int(x) for x in starts6], [int(x) for x in values6]),
                          flatten(domains + points_domain, b""))
    zone.dense = dense
    return zone, count


def compile_cloud_zone(config: ZoneConfig, policy: ListingPolicy, classification: Classification) -> ZoneSnapshot:
    """The cloud information zone: each range's kind as a code, and what it is as TXT."""
    table = AnswerTable(config, policy)
    codes = {**CLOUD_CODES, **config.codes}
    # One answer per range that says something (excluded space says nothing), numbered in order.
    described = classification.described(codes)
    ids = np.zeros(len(described), dtype=np.int64)
    for index, item in enumerate(described):
        if item is not None:
            ids[index] = len(table.answers)
            table.answers.append(Answer((item[0],), (item[1],)))
    test = table.fixed((codes["shared"],), "RFC 5782 test point: 127.0.0.2 is always listed")
    starts4, values4 = compress(classification.starts[IP4], ids[classification.ids[IP4]])
    starts4, values4 = overlay_points(starts4, values4, np.array([0x7F000001, 0x7F000002]), np.array([0, test]), 1 << 32)
    starts6, values6 = compress(classification.starts[IP6], ids[classification.ids[IP6]])
    domains = flatten([], b"")
    return _zone_snapshot(config, table, _ip4_arrays(starts4, values4),
                          ([int(x) for x in starts6], [int(x) for x in values6]), domains)


def compile_snapshot(store, configs: list[ZoneConfig], policy: ListingPolicy, serial: int,
                     now: dt.datetime | None = None, classification: Classification | None = None,
                     standing=None) -> Snapshot:
    """Build a whole snapshot from the store.

    :raises SnapshotError: wrapping whatever went wrong; the caller keeps its old snapshot.
    """
    started = time.perf_counter()
    now = now or store.clock()
    zones: dict[bytes, ZoneSnapshot] = {}
    total = 0
    try:
        for config in configs:
            if config.serves == "tenant":
                continue  # below, once its parent is compiled
            zone, count = compile_zone(config, policy, store.serving(config.origin, now, singles=False),
                                       store.serving_singles(config.origin, now), classification, standing)
            zones[zone.origin] = zone
            total += count
        for config in configs:
            if config.serves == "tenant":
                zone = compile_tenant_zone(config, policy, zones[config.apex.encode("ascii")],
                                           store.naming(config.apex, now), classification)
                zones[zone.origin] = zone
        zones = {c.origin.encode("ascii"): zones[c.origin.encode("ascii")] for c in configs}  # the files' order
    except RblError as exc:
        raise SnapshotError(f"snapshot not built: {exc}") from exc
    except Exception as exc:  # a broken row must not take the server down
        raise SnapshotError(f"snapshot not built: {type(exc).__name__}: {exc}") from exc
    return Snapshot(serial=serial, zones=zones, built_at=time.time(),
                    compile_seconds=time.perf_counter() - started, listings=total)


# -- the tenant zone ----------------------------------------------------------------

_TENANT_TXT = {
    "implicated": "implicated: the listing of $ names this signing domain; ",
    "bystander": "bystander: the listing of $ names other signing domains, not this one; ",
}


def tenant_answers(config: ZoneConfig, policy: ListingPolicy) -> list[Answer | None]:
    """The tenant zone's answer table: [None, implicated, bystander] (see rbl.zone.tenant)."""
    codes = {**policy.tenant_codes, **config.codes}
    return [None] + [Answer((codes[name],), template_parts(_TENANT_TXT[name] + config.txt))
                     for name in ("implicated", "bystander")]


def tenant_items(rows, parent: ZoneSnapshot, classification: Classification) -> dict[str, list]:
    """Store rows ``(kind, address, identities)`` as sorted ``(address, shared, identities)`` per family:
    only the addresses the parent zone answers as listed (an exclusion wins here too)."""
    out: dict[str, list] = {IP4: [], IP6: []}
    for kind, value, names in rows:
        if not (parent.ip4(value) if kind == IP4 else parent.ip6(value)):
            continue
        found = classification.find(kind, value)
        out[kind].append((value, found is not None and found.space == "shared", sorted(set(names.split("\n")))))
    for items in out.values():
        items.sort()
    return out


def _tenant_columns(kind: str, items: list) -> dict[str, np.ndarray]:
    """A family's items as columns: keys, shared, run lengths and hashes, name lengths and names."""
    keys, shared, runs, hashes, name_lens, names = [], [], [], [], [], []
    for value, is_shared, identities in items:
        exact = {identity_hash(name) | 1 for name in identities}
        run = set(exact)
        if not is_shared:  # accountable space: the identities' parents are empty non-terminals
            run.update(h for name in identities for h in map(identity_hash, parents(name)) if h | 1 not in exact)
        keys.append(value)
        shared.append(is_shared)
        runs.append(len(run))
        hashes.extend(sorted(run))
        text = "\n".join(identities).encode("ascii")
        name_lens.append(len(text))
        names.append(text)
    columns = {"shared": np.array(shared, dtype=np.uint8), "runs": np.array(runs, dtype=np.uint32),
               "hashes": np.array(hashes, dtype=np.uint64), "name_lens": np.array(name_lens, dtype=np.uint32),
               "names": np.frombuffer(b"".join(names), dtype=np.uint8)}
    if kind == IP4:
        columns["keys"] = np.array(keys, dtype=np.uint32)
    else:
        columns["hi"] = np.array([k >> 64 for k in keys], dtype=np.uint64)
        columns["lo"] = np.array([k & _MASK64 for k in keys], dtype=np.uint64)
    return columns


def _zone_columns(zone, kind: str) -> dict[str, np.ndarray]:
    p = "t4_" if kind == IP4 else "t6_"
    ends = np.frombuffer(getattr(zone, p + "ends"), dtype=np.uint32).astype(np.int64)
    name_ends = np.frombuffer(getattr(zone, p + "name_ends"), dtype=np.uint32).astype(np.int64)
    columns = {"shared": np.frombuffer(getattr(zone, p + "shared"), dtype=np.uint8),
               "runs": np.diff(ends, prepend=0).astype(np.uint32),
               "hashes": np.frombuffer(getattr(zone, p + "hashes"), dtype=np.uint64),
               "name_lens": np.diff(name_ends, prepend=0).astype(np.uint32),
               "names": np.frombuffer(getattr(zone, p + "names"), dtype=np.uint8)}
    if kind == IP4:
        columns["keys"] = np.frombuffer(zone.t4_keys, dtype=np.uint32)
    else:
        columns["hi"] = np.frombuffer(zone.t6_hi, dtype=np.uint64)
        columns["lo"] = np.frombuffer(zone.t6_lo, dtype=np.uint64)
    return columns


_PER_KEY = ("keys", "hi", "lo", "shared", "runs", "name_lens")


def _slice_columns(columns: dict, x: int, y: int) -> dict:
    """Addresses x..y-1 of a family's columns, with their runs of hashes and names."""
    out = {k: v[x:y] for k, v in columns.items() if k in _PER_KEY}
    runs = np.cumsum(columns["runs"], dtype=np.int64)
    lens = np.cumsum(columns["name_lens"], dtype=np.int64)
    start, end = (int(runs[x - 1]) if x else 0), (int(runs[y - 1]) if y else 0)
    out["hashes"] = columns["hashes"][start:end]
    start, end = (int(lens[x - 1]) if x else 0), (int(lens[y - 1]) if y else 0)
    out["names"] = columns["names"][start:end]
    return out


def _tenant_fields(kind: str, pieces: list[dict]) -> dict[str, array]:
    """The zone fields (arrays) of a family from its columns in pieces, in address order."""
    p = "t4_" if kind == IP4 else "t6_"
    joined = {k: np.concatenate([piece[k] for piece in pieces]) for k in pieces[0]}
    as_array = {
        "shared": ("B", joined["shared"].astype(np.uint8)),
        "ends": ("I", np.cumsum(joined["runs"], dtype=np.int64).astype(np.uint32)),
        "hashes": ("Q", joined["hashes"].astype(np.uint64)),
        "names": ("B", joined["names"].astype(np.uint8)),
        "name_ends": ("I", np.cumsum(joined["name_lens"], dtype=np.int64).astype(np.uint32)),
    }
    if kind == IP4:
        as_array["keys"] = ("I", joined["keys"].astype(np.uint32))
    else:
        as_array["hi"] = ("Q", joined["hi"].astype(np.uint64))
        as_array["lo"] = ("Q", joined["lo"].astype(np.uint64))
    out = {}
    for name, (code, values) in as_array.items():
        out[p + name] = array(code)
        out[p + name].frombytes(values.tobytes())
    return out


def compile_tenant_zone(config: ZoneConfig, policy: ListingPolicy, parent: ZoneSnapshot, rows,
                        classification: Classification | None = None):
    """The tenant zone from the parent's listings that name identities (:meth:`ListingStore.naming`),
    answered only where ``parent`` (already compiled) lists the address."""
    items = tenant_items(rows, parent, classification or Classification())
    fields = {}
    for kind in (IP4, IP6):
        fields.update(_tenant_fields(kind, [_tenant_columns(kind, items[kind])]))
    empty4, empty6 = array("I", [0]), array("Q", [0])
    return TenantZone(config=config, answers=tenant_answers(config, policy), ip4_starts=empty4,
                      ip4_values=array("I", [0]), ip4_blocks=array("I"), ip6_hi=empty6, ip6_lo=array("Q", [0]),
                      ip6_values=array("I", [0]), domain_keys=[b""], domain_values=array("I", [0]), **fields)


def _first_at_or_above(columns: dict, kind: str, value: int) -> int:
    if kind == IP4:
        return int(np.searchsorted(columns["keys"], value)) if value < 1 << 32 else len(columns["keys"])
    if value >= 1 << 128:
        return len(columns["hi"])
    hi, lo = np.uint64(value >> 64), np.uint64(value & _MASK64)
    a = int(np.searchsorted(columns["hi"], hi, side="left"))
    b = int(np.searchsorted(columns["hi"], hi, side="right"))
    return a + int(np.searchsorted(columns["lo"][a:b], lo, side="left"))


def patch_tenant_zone(zone, policy: ListingPolicy, parent: ZoneSnapshot, store, changes, now: dt.datetime,
                      classification: Classification | None = None):
    """The tenant zone with the addresses in the changed ranges read again (the parent already patched)."""
    classification = classification or Classification()
    fields = {}
    for kind, ranges in ((IP4, changes.ip4), (IP6, changes.ip6)):
        if not ranges:
            continue
        old = _zone_columns(zone, kind)
        pieces, pos = [], 0
        for lo, hi, _plen in ranges:  # sorted and apart (Changes.of)
            x, y = _first_at_or_above(old, kind, lo), _first_at_or_above(old, kind, hi)
            pieces.append(_slice_columns(old, pos, x))
            rows = store.naming(parent.config.origin, now, kind, lo, hi)
            pieces.append(_tenant_columns(kind, tenant_items(rows, parent, classification)[kind]))
            pos = y
        pieces.append(_slice_columns(old, pos, len(old["shared"])))
        fields.update(_tenant_fields(kind, pieces))
    return dataclasses.replace(zone, answers=tenant_answers(zone.config, policy), **fields) if fields else zone
