"""A vendor's cases as the store holds them: single listed addresses, read as columns.

A case (DESIGN section 4, :mod:`rbl.policy.remediation`) is one single listed
address, expired or not, opened at its first_seen, remediated, relisted and
disputed at the times the listing records. Every full compile reads all of them
(a million, for a big list), so :func:`case_columns` returns them as numpy
columns, one :class:`CaseColumns` per family, with no Python object per case.
Whose case each one is, and what the cases make of a vendor, is the policy's to
say (:func:`rbl.policy.standing.vendor_scores`): the store only reads.
numpy is imported where it is used, so opening the store does not load it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rbl.addresses import BITS, IP4
from rbl.store.database import epoch, stored_time

if TYPE_CHECKING:
    import numpy as np
    import sqlite_utils

NONE = -(1 << 62)  # "no such time" in the time columns (int64 microseconds since the epoch)


@dataclass(frozen=True)
class CaseColumns:
    """Single listed addresses of one family as columns; times as for
    :func:`rbl.policy.remediation.score_arrays`."""

    kind: str
    addresses: np.ndarray  # int64 for IPv4, Python ints (object) for IPv6
    opened: np.ndarray
    remediated: np.ndarray
    relisted: np.ndarray
    disputed: np.ndarray  # bool
    active: np.ndarray  # bool: listed now (not expired, not removed)

    @classmethod
    def empty(cls, kind: str) -> CaseColumns:
        import numpy as np

        times = np.zeros(0, dtype=np.int64)
        flags = np.zeros(0, dtype=bool)
        return cls(kind, np.zeros(0, dtype=np.int64 if kind == IP4 else object), times, times, times, flags, flags)


def case_columns(db: sqlite_utils.Database, zones: Sequence[str], since: dt.datetime, now: dt.datetime,
                 active: bool = False, within: dict[str, Sequence[tuple[int, int]]] | None = None,
                 until: dt.datetime | None = None) -> list[CaseColumns]:
    """Single listed addresses first seen since ``since`` in ``zones``, expired ones too, as
    :class:`CaseColumns` per family: every vendor's cases are among them.

    ``within``: per family, the only spans to read (first, last address; sorted, disjoint),
    as :func:`rbl.policy.standing.vendor_spans` gives them: the vendors' space, a few per
    cent of a big list. A family without spans is not read. None: read everything.

    One scan of a covering index for what every case has (address, first_seen;
    with ``active``, whether it is listed now), and one for the few that the vendor
    acted on or disputed. ``until``: only cases first seen by then too. SQLite concatenates fixed-width fields and numpy reads
    them, so a million cases cost no Python object each (about 1 s).
    """
    import numpy as np

    out = []
    flag = "(state = 'active' AND (expires_at IS NULL OR expires_at > ?))"
    if within is not None:
        _spans_table(db, within)
    for kind, bits in BITS.items():
        if within is not None and not within.get(kind):
            continue
        width = bits // 4 + 20 + active  # hex address, first_seen, the flag
        parts = []
        for zone in zones:
            if within is None:
                # NOT INDEXED: the scan reads most of the table; a lookup per row would cost more.
                where = ("FROM listings NOT INDEXED "
                         "WHERE zone = ? AND kind = ? AND plen = ? AND exclude = 0 AND first_seen >= ?")
            else:
                # One range scan of the key index per span: what lies outside is never read.
                where = ("FROM temp.case_spans s JOIN listings INDEXED BY listings_key "
                         "ON listings.zone = ? AND listings.kind = s.kind AND listings.net BETWEEN s.lo AND s.hi "
                         "AND listings.plen = ? WHERE s.kind = ? AND exclude = 0 AND first_seen >= ?")
            args = [zone, kind, bits, epoch(since)] if within is None else [zone, bits, kind, epoch(since)]
            if until is not None:
                where += " AND first_seen <= ?"
                args.append(epoch(until))
            (packed,) = db.execute(
                f"SELECT group_concat(hex(net) || {stored_time('first_seen')}{' || ' + flag if active else ''}, '') "
                f"{where}", [epoch(now)] * active + args).fetchone()
            if not packed:
                continue
            rows = np.frombuffer(packed.encode("ascii"), dtype=np.uint8).reshape(-1, width)
            hexes = rows[:, :bits // 4].tobytes()
            if kind == "ip4":
                addresses = np.frombuffer(bytes.fromhex(hexes.decode()), dtype=">u4").astype(np.int64)
            else:
                raw = bytes.fromhex(hexes.decode())
                addresses = np.array([int.from_bytes(raw[i:i + 16], "big") for i in range(0, len(raw), 16)],
                                     dtype=object)
            opened = epoch_microseconds(rows[:, bits // 4:bits // 4 + 20].tobytes().decode())
            listed = rows[:, -1] == ord("1") if active else np.ones(len(rows), dtype=bool)
            remediated, relisted = np.full(len(rows), NONE), np.full(len(rows), NONE)
            disputed = np.zeros(len(rows), dtype=bool)
            acted = db.execute(
                f"SELECT net, {stored_time('remediated_at')}, {stored_time('relisted_at')}, disputed_at IS NOT NULL "
                f"{where} "
                "AND (remediated_at IS NOT NULL OR relisted_at IS NOT NULL OR disputed_at IS NOT NULL)",
                args).fetchall()
            if acted:
                # Subjects are unique in a zone: find each acted-on address among them.
                order = np.argsort(addresses, kind="stable")
                keys = np.array([int.from_bytes(r[0], "big") for r in acted], dtype=addresses.dtype)
                where_at = order[np.searchsorted(addresses[order], keys)]
                text = "".join((r[1] or _NO_TIME) + (r[2] or _NO_TIME) for r in acted)
                both = epoch_microseconds(text).reshape(-1, 2)
                remediated[where_at], relisted[where_at] = both[:, 0], both[:, 1]
                disputed[where_at] = [bool(r[3]) for r in acted]
            parts.append((addresses, opened, remediated, relisted, disputed, listed))
        if parts:
            out.append(CaseColumns(kind, *(np.concatenate([p[i] for p in parts]) for i in range(6))))
    return out


_NO_TIME = "0000-00-00T00:00:00Z"  # NULL, in the store's fixed-width time format


def _spans_table(db: sqlite_utils.Database, within: dict[str, Sequence[tuple[int, int]]]) -> None:
    """``temp.case_spans``: the spans as keys of the listings index (big-endian bytes)."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS case_spans (kind TEXT, lo BLOB, hi BLOB)")
    db.execute("DELETE FROM temp.case_spans")
    db.conn.executemany("INSERT INTO temp.case_spans VALUES (?, ?, ?)",
                        ((kind, lo.to_bytes(BITS[kind] // 8, "big"), hi.to_bytes(BITS[kind] // 8, "big"))
                         for kind, spans in within.items() for lo, hi in spans))


def epoch_microseconds(text: str) -> np.ndarray:
    """Concatenated store timestamps (20 characters each) as int64 microseconds since the
    epoch, :data:`NONE` for :data:`_NO_TIME`: :func:`parse_timestamp` for a million
    at once, in numpy (days from the civil date, as in H. Hinnant's chrono algorithms)."""
    import numpy as np

    digits = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(-1, 20)

    def number(lo: int, hi: int) -> np.ndarray:
        value = np.zeros(len(digits), dtype=np.int64)
        for i in range(lo, hi):
            value = value * 10 + (digits[:, i].astype(np.int64) - 48)
        return value

    year, month, day = number(0, 4), number(5, 7), number(8, 10)
    seconds = number(11, 13) * 3600 + number(14, 16) * 60 + number(17, 19)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return np.where(year == 0, NONE, (days * 86400 + seconds) * 1_000_000)
