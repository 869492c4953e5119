"""Flatten nested ranges into disjoint sorted intervals: longest prefix wins.

Listings, exclusions and test points are ranges ``[lo, hi)`` over one ordered key
space (IPv4 or IPv6 integers, or domain keys). Any two of them are nested or
disjoint (CIDRs and DNS subtrees are), so a sweep with a stack of open ranges
turns them into breakpoints: ``starts[i]`` begins a run answered by ``values[i]``
up to ``starts[i + 1]``. Value 0 means "not listed".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where it is used: the module itself stays light
    import numpy as np

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


def overlay_points(starts, values, points, point_values, end: int):
    """Breakpoints of ``starts``/``values`` with each ``[p, p + 1)`` answering its own value.

    A single address is the innermost range wherever it lies, so a million of
    them need no sweep: they are merged into the flattened rest with numpy, in
    one sort. Keys may be int64 (IPv4) or Python ints in object arrays (IPv6).
    Returns numpy arrays (starts, values); ``end`` bounds the key space.
    """
    import numpy as np

    base = np.asarray(starts) if isinstance(starts, np.ndarray) else np.asarray(starts, dtype=np.int64)
    base_values = np.asarray(values, dtype=np.int64)
    points = np.asarray(points, dtype=base.dtype)
    point_values = np.asarray(point_values, dtype=np.int64)
    if not len(points):
        return base, base_values
    after = points + 1
    # Just past a point the rest's value resumes, unless another point starts there.
    after_values = base_values[np.searchsorted(base, after, side="right") - 1]
    position = np.concatenate([base, after, points])
    value = np.concatenate([base_values, after_values, point_values])
    rank = np.concatenate([np.zeros(len(base), np.int64), np.ones(len(after), np.int64),
                           np.full(len(points), 2, np.int64)])
    order = np.argsort(position * 4 + rank, kind="stable")
    position, value = position[order], value[order]
    last = np.ones(len(position), dtype=bool)
    last[:-1] = position[1:] != position[:-1]  # the highest rank at a position decides
    keep = last & (position < end)
    return compress(position[keep], value[keep])


def compress(starts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop breakpoints whose value repeats the one before (numpy arrays in, numpy arrays out)."""
    import numpy as np

    change = np.ones(len(values), dtype=bool)
    change[1:] = values[1:] != values[:-1]
    return starts[change], values[change]
