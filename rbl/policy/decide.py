"""Decisions (DESIGN section 4) compiled over address space.

For a zone that serves listings by policy, the answer at every address follows
from three layers: the listings (CIDRs, exclusions, single addresses), the
classification of address space, and escalation:

- operator exclusions: never listed;
- quarantine space: the quarantine code, whatever is listed;
- shared space: single listed addresses only; a CIDR listing does not list a
  shared pool, and shared space never escalates;
- dedicated and unclassified space: listings as listed, and at least
  ``escalation.addresses`` listed addresses in one /24 (IPv4) or /64 (IPv6)
  add block-range over that prefix, within the one range those addresses are
  in: it never spills into a neighbour's space;
- the vendor's standing (:mod:`rbl.policy.standing`): a cooperative vendor's
  listed shared addresses answer throttle instead of block, and a negligent
  vendor's dense shared ranges add throttle-range over the whole range.

:func:`decide_window` computes all of it for a window of one address family
with numpy, for a whole family at once (a full compile) or for the prefixes a
change touches (a patch): the result depends only on what lies inside the
window's prefixes, so both agree. :func:`decide_address` is its slow twin for one
subject, written as a person would check it; tests hold them to each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rbl.addresses import BITS, IP4
from rbl.policy.classify import DEDICATED, EXCLUDED, QUARANTINE, SHARED, UNCLASSIFIED, Classification
from rbl.policy.listing import ListingPolicy
from rbl.policy.remediation import COOPERATIVE, NEGLIGENT
from rbl.policy.standing import Standing, density_needed
from rbl.intervals import compress, flatten, overlay_points

EXCLUSION = -1  # a listing exclusion ('!') in the listings layer: a hole, not just "unlisted"


def _dtype(kind: str):
    # IPv6 keys are 128-bit: Python ints in object arrays, slower but few.
    return np.int64 if kind == IP4 else object


def _at(starts: np.ndarray, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return values[np.searchsorted(starts, positions, side="right") - 1]


@dataclass
class Window:
    """What decides a window of one family: listings and test points."""

    kind: str
    lo: int
    hi: int
    ranges: list = field(default_factory=list)  # (lo, hi, priority, answer or EXCLUSION): CIDRs, exclusions
    points: np.ndarray | None = None  # single listed addresses
    point_values: np.ndarray | None = None
    fixed: Sequence[tuple[int, int]] = ()  # RFC 5782 test points: (address, answer), above everything


def decide_window(window: Window, classification: Classification, policy: ListingPolicy,
                  answers, standing: Standing | None = None,
                  dense: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints and answer indexes covering ``[window.lo, window.hi)``.

    ``answers.with_code(index, name)`` gives the answer index that adds the code
    called ``name`` to answer ``index`` (0: nothing listed yet), and
    ``answers.recoded(index, old, new)`` the one with code ``old`` replaced by
    ``new``. ``dense``: per range id, the negligent vendors' dense ranges
    (:func:`rbl.policy.standing.dense_ranges` over the whole family). The
    window's bounds must be multiples of the escalation prefix (or the family's
    whole space).
    """
    with_code = answers.with_code
    kind, lo, hi = window.kind, window.lo, window.hi
    dtype = _dtype(kind)
    bits = BITS[kind]
    shift = bits - policy.escalation.prefix(kind)

    bstarts, bvalues = flatten(window.ranges, 0)
    bstarts = np.array(bstarts, dtype=dtype)
    bvalues = np.array(bvalues, dtype=np.int64)
    cstarts, cids = classification.window(kind, lo, hi)
    space = classification.space

    points = window.points if window.points is not None else np.zeros(0, dtype=dtype)
    point_values = window.point_values if window.point_values is not None else np.zeros(0, dtype=np.int64)
    pids = _at(cstarts, cids, points) if len(points) else np.zeros(0, dtype=np.int64)
    pspace = space[pids]
    # Excluded space answers nothing; quarantine space answers quarantine whatever is listed.
    kept = (pspace != EXCLUDED) & (pspace != QUARANTINE)
    points, point_values, pids, pspace = points[kept], point_values[kept], pids[kept], pspace[kept]
    if standing is not None and len(points):
        # A cooperative vendor's tenants get throttle: the vendor acts on what it is told.
        lenient = (pspace == SHARED) & standing.cooperative[pids]
        if lenient.any():
            point_values = point_values.copy()
            point_values[lenient] = _recode(point_values[lenient], "block", "throttle", answers)

    # Escalation: count listed addresses per (prefix, range) in owner-accountable space.
    accountable = (pspace == UNCLASSIFIED) | (pspace == DEDICATED)
    escalated_keys = np.zeros(0, dtype=dtype)
    breaks = [np.array([lo], dtype=dtype)]
    width = len(classification.ranges)
    if accountable.any():
        keys = (points[accountable] >> shift) * width + pids[accountable]
        unique, counts = np.unique(keys, return_counts=True)
        escalated_keys = unique[counts >= policy.escalation.addresses]
        if len(escalated_keys):
            prefixes = (escalated_keys // width) << shift
            breaks += [prefixes, prefixes + (1 << shift)]

    inside = (bstarts > lo) & (bstarts < hi)
    inner = cstarts[1:]
    positions = np.unique(np.concatenate([*breaks, bstarts[inside], inner]).astype(dtype))
    positions = positions[(positions >= lo) & (positions < hi)]
    listed = _at(bstarts, bvalues, positions)
    ids = _at(cstarts, cids, positions)
    kinds = space[ids]

    values = np.where(listed == EXCLUSION, 0, listed)
    values[kinds == SHARED] = 0  # a CIDR listing never lists a shared pool
    values[kinds == EXCLUDED] = 0
    quarantine_code = with_code(0, "quarantine")
    values[kinds == QUARANTINE] = quarantine_code

    if len(escalated_keys):
        keys = (positions >> shift) * width + ids
        hit = np.isin(keys, escalated_keys) & (listed != EXCLUSION)
        values[hit] = _add_code(values[hit], "block-range", with_code)
        point_keys = (points >> shift) * width + pids
        point_hit = np.isin(point_keys, escalated_keys)
        point_values = point_values.copy()
        point_values[point_hit] = _add_code(point_values[point_hit], "block-range", with_code)

    if dense is not None and dense.any():
        # A negligent vendor's densely listed shared range: throttle-range over all of it,
        # save listing exclusions; its listed addresses keep their own codes beside it.
        hit = dense[ids] & (listed != EXCLUSION)
        values[hit] = _add_code(values[hit], "throttle-range", with_code)
        point_hit = dense[pids]
        if point_hit.any():
            point_values = point_values.copy()
            point_values[point_hit] = _add_code(point_values[point_hit], "throttle-range", with_code)

    starts, out = overlay_points(positions, values, points, point_values, hi)
    fixed = [(a, v) for a, v in window.fixed if lo <= a < hi]
    if fixed:
        starts, out = overlay_points(starts, out, np.array([a for a, _ in fixed], dtype=dtype),
                               np.array([v for _, v in fixed], dtype=np.int64), hi)
    return compress(starts, out)


def _recode(values: np.ndarray, old: str, new: str, answers) -> np.ndarray:
    out = values.copy()
    for value in np.unique(values):
        out[values == value] = answers.recoded(int(value), old, new)
    return out


def _add_code(values: np.ndarray, name: str, with_code) -> np.ndarray:
    out = values.copy()
    for value in np.unique(values):
        out[values == value] = with_code(int(value), name)
    return out


@dataclass
class Decision:
    """What one address answers in a zone decided by policy, and why, in words."""

    codes: tuple[str, ...]  # code names: block, block-range, quarantine...
    range: object | None  # the classification Range deciding here, None: unclassified
    space: str
    listing: tuple | None  # the store row that lists it, if any
    escalation: dict | None  # prefix, listed count, threshold, applied
    trace: list[str] = field(default_factory=list)
    density: dict | None = None  # a negligent vendor's shared range: range, listed units, threshold, applied


def decide_address(kind: str, value: int, rows, classification: Classification, policy: ListingPolicy,
                   test_point: str | None = None, standing: Standing | None = None) -> Decision:
    """Decide one address from the serving rows around it, one rule at a time.

    ``rows`` are store rows ``(kind, net, plen, subject, exclude, code, txt)``:
    at least every row covering the address and every single address listed in
    its escalation prefix, and in its whole range when that is a negligent
    vendor's shared range (more do no harm). The slow twin of
    :func:`decide_window`, and what ``rbl explain`` prints.
    """
    from rbl.policy.classify import SPACE_NAMES

    bits = BITS[kind]
    found = classification.find(kind, value)
    space = found.space if found is not None else SPACE_NAMES[UNCLASSIFIED]
    trace: list[str] = []
    if found is not None:
        owner = f" of {found.vendor}" if found.vendor else ""
        trace.append(f"in {found.cidr}: {space} space{owner} ({found.describe()}; {found.source})")
    else:
        trace.append("in no vendor's range: unclassified, owner-accountable space")

    def covers(row) -> bool:
        rkind, net, plen = row[0], row[1], row[2]
        return rkind == kind and value >> (bits - plen) == int.from_bytes(net, "big") >> (bits - plen)

    covering = sorted((r for r in rows if covers(r)), key=lambda r: (r[2], r[4]))  # innermost, exclusion last
    innermost = covering[-1] if covering else None
    host = innermost if innermost is not None and innermost[2] == bits and not innermost[4] else None
    decision = Decision(codes=(), range=found, space=space, listing=innermost, escalation=None, trace=trace)

    if test_point is not None:
        trace.append(f"an RFC 5782 test point: always {test_point}")
        decision.codes = ("block",) if test_point == "listed" else ()
        return decision
    if space == "excluded":
        trace.append("excluded by the operator: never listed")
        return decision
    if space == "quarantine":
        trace.append("the vendor's quarantine egress: quarantine, whatever is listed")
        decision.codes = ("quarantine",)
        return decision

    codes: list[str] = []
    if innermost is None:
        trace.append("not listed")
    elif innermost[4]:
        trace.append(f"not listed: the exclusion {innermost[3]} cuts a hole in the listings")
    elif host is not None and space == "shared":
        tier = standing.tier(found.vendor) if standing is not None else None
        name = _code_name(innermost)
        if name == "block" and tier == COOPERATIVE:
            codes.append("throttle")
            trace.append(f"listed as {innermost[3]}: throttle, not block, as {found.vendor} is cooperative "
                         f"({standing.scores[found.vendor].reason})")
        else:
            codes.append(name)
            trace.append(f"listed as {innermost[3]}: {name}, this address only ({found.vendor}'s tier: "
                         f"{tier or 'not scored'})")
    elif host is not None:
        codes.append(_code_name(innermost))
        trace.append(f"listed as {innermost[3]}: {codes[-1]}")
    elif space == "shared":
        trace.append(f"{innermost[3]} is listed, but shared space is listed one address at a time: not applied here")
    else:
        codes.append(_code_name(innermost))
        trace.append(f"inside the listed {innermost[3]}: {codes[-1]}")

    prefix_len = policy.escalation.prefix(kind)
    shift = bits - prefix_len
    prefix = value >> shift << shift
    network = _cidr(kind, prefix, prefix_len)
    if space == "shared":
        trace.append("shared space never escalates to block-range")
        if standing is not None and standing.tier(found.vendor) == NEGLIGENT:
            codes += _density(kind, rows, found, classification, policy, innermost, host, decision)
        decision.codes = tuple(codes)
        return decision
    hosts = set()
    for row in rows:
        rkind, net, plen, exclude = row[0], row[1], row[2], row[4]
        if rkind != kind or plen != bits or exclude:
            continue
        address = int.from_bytes(net, "big")
        if address >> shift == value >> shift and classification.find(kind, address) is found:
            hosts.add(address)
    within = network if found is None or found.plen <= prefix_len else f"{found.cidr} (inside {network})"
    applied = len(hosts) >= policy.escalation.addresses and not (innermost is not None and innermost[4]
                                                                  and host is None)
    decision.escalation = {"prefix": network, "within": within, "listed": len(hosts),
                           "threshold": policy.escalation.addresses, "applied": applied}
    if applied:
        codes.append("block-range")
        trace.append(f"{len(hosts)} listed addresses in {within}, threshold {policy.escalation.addresses}: "
                     "block-range")
    elif len(hosts) >= policy.escalation.addresses:
        trace.append(f"{len(hosts)} listed addresses in {within}, but the exclusion keeps this address out")
    else:
        trace.append(f"{len(hosts)} listed address{'es' * (len(hosts) != 1)} in {within}, "
                     f"escalation at {policy.escalation.addresses}: no block-range")
    decision.codes = tuple(codes)
    return decision


def _density(kind: str, rows, found, classification: Classification, policy: ListingPolicy, innermost, host,
             decision: Decision) -> list[str]:
    """A negligent vendor's shared range: throttle-range when densely listed."""
    bits = BITS[kind]
    unit = 0 if kind == IP4 else bits - policy.escalation.prefix(kind)
    units = set()
    for row in rows:
        rkind, net, plen, exclude = row[0], row[1], row[2], row[4]
        if rkind == kind and plen == bits and not exclude:
            address = int.from_bytes(net, "big")
            if classification.find(kind, address) is found:
                units.add(address >> unit)
    needed = density_needed(found, policy)
    holed = innermost is not None and innermost[4] and host is None
    applied = len(units) >= needed and not holed
    what = "addresses" if kind == IP4 else f"/{policy.escalation.prefix(kind)}s"
    decision.density = {"range": found.cidr, "listed": len(units), "threshold": needed, "applied": applied}
    if applied:
        decision.trace.append(f"{found.vendor} is negligent and {len(units)} {what} of {found.cidr} are listed, "
                              f"threshold {needed}: throttle-range over the range")
        return ["throttle-range"]
    if len(units) >= needed:
        decision.trace.append(f"{found.cidr} is densely listed, but the exclusion keeps this address out")
    else:
        decision.trace.append(f"{found.vendor} is negligent; {len(units)} {what} of {found.cidr} listed, "
                              f"throttle-range at {needed}")
    return []


def _code_name(row) -> str:
    # A listing with a code of its own (imported rbldnsd data) keeps it: the code itself.
    return row[5] if row[5] else "block"


def _cidr(kind: str, net: int, plen: int) -> str:
    import ipaddress

    network = ipaddress.IPv4Network if kind == IP4 else ipaddress.IPv6Network
    return str(network((net, plen)))
