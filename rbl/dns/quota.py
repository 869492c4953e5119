"""Access key quotas, summed over every DNS worker by the primary.

Each worker counts the queries it answers under each key and sends its totals
since it started (:mod:`rbl.dns.counts`); the primary's metrics keep every
worker's latest line, so their sum only grows. A key's period is aligned to the
epoch (a day: from 00:00 UTC), so workers and restarts agree on it. When the sum
in the period reaches the quota, the key is over until the period rolls over;
the primary tells the workers at once (:meth:`rbl.dns.pool.WorkerPool.tell`).
This module decides; it does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class Quotas:
    """Per key: the period counted, the workers' sum at its start, and whether it is over."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.keys: dict[int, dict] = {}  # key id -> its table entry (quota, period)
        self._base: dict[int, tuple[int, int]] = {}  # key id -> (period start, workers' sum when it began)
        self._before: dict[int, int] = {}  # key id -> queries counted before this primary started
        self.over: frozenset[int] = frozenset()

    def load(self, table: list[dict], stored: Mapping[int, tuple[int, int, int]] | None = None) -> None:
        """The key table in force; ``stored`` (once, at start): the usage the last run wrote, by key id
        (period start, used, total), so a restart does not hand a key a fresh quota."""
        self.keys = {entry["id"]: entry for entry in table if not entry["revoked"]}
        now = self.clock()
        for key_id, (start, used, total) in (stored or {}).items():
            entry = self.keys.get(key_id)
            self._before[key_id] = total
            if entry is not None and start == _start(now, entry["period"]):
                self._base[key_id] = (start, -used)  # the workers start at 0: used carries on

    def update(self, totals: Mapping[int, int]) -> frozenset[int] | None:
        """Decide again from the workers' sums; the new set of keys over quota, or None when unchanged."""
        now = self.clock()
        over = set()
        for key_id, entry in self.keys.items():
            quota = entry["quota"]
            start = _start(now, entry["period"])
            count = totals.get(key_id, 0)
            base = self._base.get(key_id)
            if base is None or base[0] != start:
                # A new period (or a key first seen): what was counted so far belongs to the last one.
                base = self._base[key_id] = (start, count if base is not None else 0)
            if quota is not None and count - base[1] >= quota:
                over.add(key_id)
        frozen = frozenset(over)
        if frozen == self.over:
            return None
        self.over = frozen
        return frozen

    def usage(self, totals: Mapping[int, int]) -> dict[int, tuple[int, int, int]]:
        """By key id: (period start, queries in it, queries ever), for the store and ``rbl key list``."""
        out = {}
        for key_id in self.keys:
            start, base = self._base.get(key_id, (0, 0))
            count = totals.get(key_id, 0)
            out[key_id] = (start, count - base, self._before.get(key_id, 0) + count)
        return out


def _start(now: float, period: int) -> int:
    return int(now // period * period)
