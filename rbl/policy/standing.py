"""A vendor's standing at compile time: its tier, and which of its shared ranges are dense.

DESIGN section 4, the rows that depend on the tier:

- shared space, listed, vendor cooperative: throttle (instead of block);
- shared space, vendor negligent, listed density in one of its ranges above the
  threshold: that range answers throttle-range (the listed addresses in it keep
  their block beside it).

Tiers come from the vendors' cases (:mod:`rbl.policy.remediation`); a case is a
single listed address in a vendor's range (the range deciding the address: an
operator exclusion inside a vendor's range is nobody's space), opened at the
listing's first_seen, remediated and relisted at the times the store records,
disputed by a false_positive report. Here the cases come as columns
(:class:`rbl.store.cases.CaseColumns`, as the store reads them), counted with
numpy: a compile over a million listings cannot afford an object per case.
:func:`rbl.explain.vendor_cases` builds the same cases one by one, the slow
twin tests hold this to.

Density, for a negligent vendor's shared range: the listed units in it over
the units it holds, where a unit is one address in IPv4 and one
``escalation.ip6_prefix`` (a /64) in IPv6, since an IPv6 tenant holds a prefix,
not an address. A range is dense at ``remediation.density`` and at least
``escalation.addresses`` listed units, so a tiny range is not throttled for one
listing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from dataclasses import dataclass, field

import numpy as np

from rbl.addresses import BITS, IP4
from rbl.policy.classify import SHARED, Classification
from rbl.policy.listing import ListingPolicy
from rbl.policy.remediation import COOPERATIVE, NEGLIGENT, Score, microseconds, score_arrays
from rbl.store.cases import NONE, CaseColumns


def range_ids(classification: Classification, kind: str, addresses: np.ndarray) -> np.ndarray:
    """The classification range deciding each address (0: none)."""
    starts, ids = classification.starts[kind], classification.ids[kind]
    if not len(addresses):
        return np.zeros(0, dtype=np.int64)
    return ids[np.searchsorted(starts, addresses, side="right") - 1]


def vendor_spans(classification: Classification, vendors: list[str]) -> dict[str, list[tuple[int, int]]]:
    """Per family, the address spans (first, last; sorted, disjoint) decided by a range of one of
    ``vendors``: the only addresses whose cases :func:`vendor_scores` counts."""
    wanted = set(vendors)
    owned = np.array([False] + [r.vendor in wanted for r in classification.ranges[1:]], dtype=bool)
    out: dict[str, list[tuple[int, int]]] = {}
    for kind, bits in BITS.items():
        starts, ids = classification.starts[kind], classification.ids[kind]
        spans: list[tuple[int, int]] = []
        for i in np.flatnonzero(owned[ids]).tolist() if len(ids) else []:
            lo = int(starts[i])
            hi = int(starts[i + 1]) - 1 if i + 1 < len(starts) else (1 << bits) - 1
            if spans and spans[-1][1] + 1 == lo:
                spans[-1] = (spans[-1][0], hi)  # runs of two ranges side by side: one scan
            else:
                spans.append((lo, hi))
        out[kind] = spans
    return out


def vendor_scores(columns: list[CaseColumns], classification: Classification, policy: ListingPolicy,
                  now: dt.datetime, vendors: list[str]) -> dict[str, Score]:
    """Every vendor's score and tier at ``now`` from its cases."""
    index = {name: i for i, name in enumerate(vendors)}
    owner = np.array([-1] + [index.get(r.vendor, -1) for r in classification.ranges[1:]], dtype=np.int64)
    parts = [(owner[range_ids(classification, c.kind, c.addresses)], c) for c in columns if len(c.addresses)]
    if not parts:
        parts = [(np.zeros(0, dtype=np.int64), CaseColumns.empty(IP4))]
    joined = [np.concatenate([getattr(c, name) for _, c in parts])
              for name in ("opened", "remediated", "relisted", "disputed")]
    vendor = np.concatenate([v for v, _ in parts])
    return score_arrays(vendor, *joined, vendors, policy.remediation, now)


def listed_counts(columns: list[CaseColumns], classification: Classification, vendors: list[str]) -> dict[str, int]:
    """How many of each vendor's cases are listed now (columns read with ``active``)."""
    index = {name: i for i, name in enumerate(vendors)}
    owner = np.array([-1] + [index.get(r.vendor, -1) for r in classification.ranges[1:]], dtype=np.int64)
    counts = np.zeros(len(vendors) + 1, dtype=np.int64)
    for c in columns:
        if len(c.addresses):
            counts += np.bincount(owner[range_ids(classification, c.kind, c.addresses)][c.active] + 1,
                                  minlength=len(vendors) + 1)
    return {name: int(counts[i + 1]) for i, name in enumerate(vendors)}


@dataclass(frozen=True)
class Standing:
    """The vendors' tiers as the compile uses them: one flag per classification range."""

    scores: dict[str, Score]
    cooperative: np.ndarray  # bool per range id: its vendor is cooperative
    negligent: np.ndarray  # bool per range id: its vendor is negligent
    listed: dict[str, int] = field(default_factory=dict)  # per vendor: its cases listed now

    @classmethod
    def of(cls, scores: dict[str, Score], classification: Classification,
           listed: dict[str, int] | None = None) -> Standing:
        tier = [None] + [scores[r.vendor].tier if r.vendor in scores else None for r in classification.ranges[1:]]
        return cls(scores, np.array([t == COOPERATIVE for t in tier], dtype=bool),
                   np.array([t == NEGLIGENT for t in tier], dtype=bool), listed or {})

    @classmethod
    def neutral(cls, classification: Classification) -> Standing:
        return cls.of({}, classification)

    def tier(self, vendor: str) -> str | None:
        score = self.scores.get(vendor)
        return score.tier if score is not None else None


def density_needed(item, policy: ListingPolicy) -> int:
    """How many listed units make the range ``item`` dense."""
    units = 1 << max(0, policy.escalation.prefix(item.kind) - item.plen) if item.kind != IP4 \
        else 1 << (BITS[IP4] - item.plen)
    return max(policy.escalation.addresses, math.ceil(policy.remediation.density * units))


def dense_ranges(kind: str, points: np.ndarray, pids: np.ndarray, classification: Classification,
                 standing: Standing, policy: ListingPolicy) -> np.ndarray:
    """Bool per range id: a negligent vendor's shared range dense with ``points``, listed addresses
    of one family (``pids`` the range deciding each)."""
    size = len(classification.ranges)
    dense = np.zeros(size, dtype=bool)
    if not len(points):
        return dense
    mask = (classification.space[pids] == SHARED) & standing.negligent[pids]
    if not mask.any():
        return dense
    ids = pids[mask]
    if kind == IP4:
        counts = np.bincount(ids, minlength=size)
    else:
        shift = BITS[kind] - policy.escalation.prefix(kind)
        units = np.array([int(p) >> shift for p in points[mask]], dtype=object)
        pairs = {(int(r), u) for r, u in zip(ids, units)}  # distinct /64s per range
        counts = np.bincount(np.array([r for r, _ in pairs], dtype=np.int64), minlength=size)
    for rid in np.flatnonzero(counts):
        if counts[rid] >= density_needed(classification.ranges[rid], policy):
            dense[rid] = True
    return dense


def open_cases(columns: list[CaseColumns], classification: Classification, vendor: str,
               now: dt.datetime) -> tuple[list[tuple[dt.datetime, str, bool]], int]:
    """What ``vendor`` should act on: its cases neither remediated by ``now`` nor disputed, oldest
    first, as (opened, address, listed now); and how many of all its cases are listed now."""
    ids = [i for i, r in enumerate(classification.ranges) if r is not None and r.vendor == vendor]
    found, active = [], 0
    for part in columns:
        # By family: ::5 is an IPv6 address, which ip_address(5) would render as 0.0.0.5.
        address = ipaddress.IPv4Address if part.kind == IP4 else ipaddress.IPv6Address
        mine = np.isin(range_ids(classification, part.kind, part.addresses), ids)
        active += int((mine & part.active).sum())
        unresolved = mine & ~part.disputed & ((part.remediated == NONE) | (part.remediated > microseconds(now)))
        for i in np.flatnonzero(unresolved):
            opened = dt.datetime.fromtimestamp(int(part.opened[i]) // 1_000_000, dt.timezone.utc)
            found.append((opened, str(address(int(part.addresses[i]))), bool(part.active[i])))
    found.sort()
    return found, active
