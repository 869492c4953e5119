"""Classification: which vendor's space an address is in, and of which kind.

The ranges of every vendor (from their feeds and declarations) and the
operator's exclusions are CIDRs, so they nest or lie apart. Flattened the same
way as listings, they become sorted breakpoints whose values index the range
that decides there: the most specific range wins, and among identical CIDRs
an exclusion beats quarantine, quarantine beats dedicated, dedicated beats
shared (a declaration is more specific knowledge than a pool), then the vendor
first in name order. One binary search classifies an address.
"""

from __future__ import annotations

import socket
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from rbl.addresses import BITS, IP4, IP6
from rbl.intervals import flatten

UNCLASSIFIED, SHARED, DEDICATED, QUARANTINE, EXCLUDED = 0, 1, 2, 3, 4
SPACE_NAMES = ("unclassified", "shared", "dedicated", "quarantine", "excluded")
SPACE_CODES = {name: code for code, name in enumerate(SPACE_NAMES)}


@dataclass(frozen=True)
class Range:
    """One CIDR of policy: a vendor's range, or an operator exclusion (vendor "")."""

    kind: str
    net: int
    plen: int
    vendor: str
    space: str  # shared, dedicated, quarantine or excluded
    labels: tuple[tuple[str, str], ...] = ()  # the feed's attributes, or the declared label
    source: str = ""  # where it was declared: "policy/vendors/aws.yaml, line 9"

    @property
    def cidr(self) -> str:
        # inet_ntop: ipaddress's formatting costs a second over every range of every feed.
        if self.kind == IP4:
            return f"{socket.inet_ntop(socket.AF_INET, self.net.to_bytes(4, 'big'))}/{self.plen}"
        return f"{socket.inet_ntop(socket.AF_INET6, self.net.to_bytes(16, 'big'))}/{self.plen}"

    @property
    def size(self) -> int:
        return 1 << (BITS[self.kind] - self.plen)

    def contains(self, kind: str, value: int) -> bool:
        return kind == self.kind and value >> (BITS[kind] - self.plen) == self.net >> (BITS[kind] - self.plen)

    def describe(self) -> str:
        """``vendor=aws space=shared range=3.5.140.0/22 service=EC2 region=ap-northeast-2``."""
        head = [f"vendor={self.vendor}"] if self.vendor else []
        head += [f"space={self.space}", f"range={self.cidr}"]
        return " ".join(head + [f"{key}={value}" for key, value in self.labels])


def rank(space: str) -> int:
    return SPACE_CODES[space]


class Classification:
    """Every policy range compiled into breakpoint arrays per address family."""

    def __init__(self, ranges: list[Range] = ()):
        unique: dict[tuple, Range] = {}
        for item in ranges:
            # The same CIDR of one vendor and kind, listed twice (Azure repeats prefixes
            # across tags): the first keeps its labels.
            unique.setdefault((item.kind, item.net, item.plen, item.vendor, item.space), item)
        vendors = sorted({r.vendor for r in unique.values()})
        order = {vendor: i for i, vendor in enumerate(vendors)}
        self.ranges: list[Range | None] = [None, *unique.values()]
        self.space = np.array([UNCLASSIFIED] + [rank(r.space) for r in self.ranges[1:]], dtype=np.int64)
        per_kind: dict[str, list] = {IP4: [], IP6: []}
        for index, item in enumerate(self.ranges[1:], start=1):
            prio = rank(item.space) * (len(vendors) + 1) + (len(vendors) - order[item.vendor])
            per_kind[item.kind].append((item.net, item.net + item.size, prio, index))
        starts4, ids4 = flatten(per_kind[IP4], 0)
        starts6, ids6 = flatten(per_kind[IP6], 0)
        self.starts = {IP4: np.array(starts4, dtype=np.int64), IP6: np.array(starts6, dtype=object)}
        self.ids = {IP4: np.array(ids4, dtype=np.int64), IP6: np.array(ids6, dtype=np.int64)}
        self._lists = {IP4: starts4, IP6: starts6}
        self._described: dict[tuple, list] = {}

    def described(self, codes: dict[str, str]) -> list[tuple[str, str] | None]:
        """Per range id: (code, description) as the cloud zone answers it; None: nothing.

        Computed once per policy (the policy is cached between snapshots), not per compile.
        """
        key = tuple(sorted(codes.items()))
        if key not in self._described:
            self._described[key] = [None] + [(codes[r.space], r.describe()) if r.space in codes else None
                                             for r in self.ranges[1:]]
        return self._described[key]

    def __len__(self) -> int:
        return len(self.ranges) - 1

    def find(self, kind: str, value: int) -> Range | None:
        """The range deciding for one address (None: unclassified)."""
        i = bisect_right(self._lists[kind], value) - 1
        return self.ranges[int(self.ids[kind][i])]

    def window(self, kind: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Breakpoints and range ids inside ``[lo, hi)``; the first start is ``lo``."""
        starts, ids = self.starts[kind], self.ids[kind]
        first = int(np.searchsorted(starts, lo, side="right")) - 1
        last = int(np.searchsorted(starts, hi, side="left"))
        out_starts = starts[first:last].copy()
        out_starts[0] = lo
        return out_starts, ids[first:last].copy()

    def spaces(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole family as breakpoints and space codes."""
        return self.starts[kind], self.space[self.ids[kind]]
