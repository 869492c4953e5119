"""Flatten nested ranges into disjoint sorted intervals: longest prefix wins.

Listings, exclusions and test points are ranges ``[lo, hi)`` over one ordered key
space (IPv4 or IPv6 integers, or domain keys). Any two of them are nested or
disjoint (CIDRs and DNS subtrees are), so a sweep with a stack of open ranges
turns them into breakpoints: ``starts[i]`` begins a run answered by ``values[i]``
up to ``starts[i + 1]``. Value 0 means "not listed".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Range = tuple[Any, Any, int, int]  # lo, hi, priority, value


def flatten(ranges: Iterable[Range], floor: Any) -> tuple[list, list[int]]:
    """Breakpoints and values for laminar ranges; ``floor`` is the key space's minimum.

    The innermost range decides; among identical ranges the higher priority wins
    (an exclusion beats a listing of the same CIDR, a test point beats both).
    """
    starts: list = [floor]
    values: list[int] = [0]

    def mark(at: Any, value: int) -> None:
        if starts[-1] == at:
            values[-1] = value
            if len(values) > 1 and values[-2] == value:
                starts.pop()
                values.pop()
        elif values[-1] != value:
            starts.append(at)
            values.append(value)

    stack: list[tuple[Any, int]] = []  # open ranges: (hi, value), innermost last
    if isinstance(floor, int):
        order = sorted(ranges, key=lambda r: (r[0], -r[1], r[2]))
    else:
        order = sorted(ranges, key=lambda r: (r[0], _Desc(r[1]), r[2]))
    for lo, hi, _prio, value in order:
        while stack and stack[-1][0] <= lo:
            end, _ = stack.pop()
            mark(end, stack[-1][1] if stack else 0)
        mark(lo, value)
        stack.append((hi, value))
    while stack:
        end, _ = stack.pop()
        mark(end, stack[-1][1] if stack else 0)
    return starts, values


class _Desc:
    """Sort key wrapper: larger ``hi`` first, for any comparable key type."""

    __slots__ = ("key",)

    def __init__(self, key: Any):
        self.key = key

    def __lt__(self, other: "_Desc") -> bool:
        return other.key < self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.key == other.key
