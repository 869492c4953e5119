"""A vendor's record day by day, as the primary scored it: what the dashboard plots.

The primary scores every vendor at each full compile and on a timer
(:func:`rbl.zone.source.vendor_standing`); :meth:`VendorHistory.record` keeps
the last scoring of each UTC day, one row per vendor and day, so a plot
survives restarts and reaches back before the scoring window. The rows hold
numbers only: what they mean is the policy's (:class:`rbl.policy.remediation.Score`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from rbl.store.database import Database, epoch


class Scored(Protocol):
    """The numbers of one scoring that a day keeps (:class:`rbl.policy.remediation.Score`)."""

    tier: str
    score: float | None
    cases: int
    remediated_in_time: int
    overdue: int
    open: int


@dataclass(frozen=True, slots=True)
class Day:
    vendor: str
    day: dt.date
    tier: str
    score: float | None
    cases: int
    remediated_in_time: int
    overdue: int
    open: int
    listed: int


class VendorHistory:
    def __init__(self, store: Database):
        self.store = store

    def record(self, now: dt.datetime, scores: Mapping[str, Scored], listed: Mapping[str, int]) -> None:
        """Keep this scoring as the vendors' day ``now`` falls in (a later one that day replaces it)."""
        day = now.astimezone(dt.timezone.utc).date().isoformat()
        rows = [(name, day, s.tier, s.score, s.cases, s.remediated_in_time, s.overdue, s.open,
                 listed.get(name, 0), epoch(now)) for name, s in scores.items()]
        if not rows:
            return
        with self.store.transaction(answers=False) as conn:  # history: no answer depends on it
            conn.executemany(
                "INSERT OR REPLACE INTO vendor_days (vendor, day, tier, score, cases, remediated_in_time, overdue, "
                "open, listed, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def days(self, vendor: str, since: dt.date) -> list[Day]:
        """The vendor's recorded days from ``since`` on, oldest first."""
        rows = self.store.db.execute(
            "SELECT vendor, day, tier, score, cases, remediated_in_time, overdue, open, listed FROM vendor_days "
            "WHERE vendor = ? AND day >= ? ORDER BY day", [vendor, since.isoformat()]).fetchall()
        return [Day(r[0], dt.date.fromisoformat(r[1]), *r[2:]) for r in rows]

    def first_day(self, vendor: str) -> dt.date | None:
        row = self.store.db.execute("SELECT min(day) FROM vendor_days WHERE vendor = ?", [vendor]).fetchone()
        return dt.date.fromisoformat(row[0]) if row[0] else None
