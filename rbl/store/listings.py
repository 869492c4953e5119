"""Listings: add, remove, show and import, each one transaction with its audit rows.

:class:`ListingStore` is the :class:`~rbl.store.database.Database` with the
listing queries: what the compiler and the patcher read, and the only writes
to the listings table. How long a relisted subject lives is the policy's rule;
it comes in as ``repeat`` (any :class:`Lifetimes`), never imported from above.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rbl.addresses import BITS, DOMAIN, Subject, parse_subject
from rbl.errors import StoreError
from rbl.store.cases import CaseColumns, case_columns
from rbl.store.database import Database, append_audit, parse_timestamp, timestamp

# The same words as the listings_singles index, so SQLite uses it.
_SINGLE_IP4 = "kind = 'ip4' AND plen = 32 AND exclude = 0"

_COLUMNS = (
    "zone subject kind net plen exclude code txt category reason source "
    "first_seen last_seen hits expires_at state lifetime remediated_at relisted_at disputed_at"
).split()


@dataclass(slots=True)
class Listing:
    """One row of the listings table."""

    zone: str
    subject: str
    kind: str
    net: bytes | None
    plen: int | None
    exclude: int
    code: str | None
    txt: str | None
    category: str | None
    reason: str | None
    source: str | None
    first_seen: str
    last_seen: str
    hits: int
    expires_at: str | None
    state: str
    lifetime: int | None = None  # seconds it was given to live; None: never expires
    remediated_at: str | None = None  # the vendor's accepted evidence says it acted then (shared space)
    relisted_at: str | None = None  # listed again after that remediation: recidivism, if soon
    disputed_at: str | None = None  # the vendor reported it a false positive then
    id: int | None = field(default=None)

    def as_dict(self) -> dict:
        """The row as JSON-ready data, without empty fields and the binary key."""
        out = {name: getattr(self, name) for name in _COLUMNS if name not in ("net", "plen", "lifetime")}
        return {k: v for k, v in out.items() if v is not None and not (k == "exclude" and v == 0)}


@dataclass(slots=True)
class Entry:
    """What an add or an import asks for one subject."""

    subject: Subject
    exclude: bool = False
    code: str | None = None
    txt: str | None = None
    reason: str | None = None
    hits: int | None = None
    line: int | None = None


class Lifetimes(Protocol):
    """The policy's expiry rules as :meth:`ListingStore.add` uses them (:class:`rbl.policy.listing.Expiry`)."""

    def lifetime(self, previous: dt.timedelta | None, ended: dt.datetime | None, now: dt.datetime,
                 requested: dt.timedelta | None) -> dt.timedelta | None:
        """The lifetime of a listing made ``now`` whose last listing lived ``previous`` and ended at ``ended``."""


class ListingStore(Database):
    """The database, with the listing queries: the one owner of writes to the listings table."""

    # -- reads ---------------------------------------------------------------

    def _rows(self, sql: str, params: Iterable = ()) -> list[Listing]:
        cursor = self.db.execute(f"SELECT {', '.join(_COLUMNS)}, id FROM listings {sql}", list(params))
        return [Listing(*row) for row in cursor.fetchall()]

    def get(self, zone: str, subject: Subject) -> Listing | None:
        rows = self._rows("WHERE zone = ? AND subject = ?", [zone, subject.text])
        return rows[0] if rows else None

    def show(self, subject: Subject | None = None, zone: str | None = None, include_removed: bool = False) -> list[Listing]:
        """Listings of a zone, or those covering a subject (an address inside a CIDR too)."""
        where, params = ["1"], []
        if zone:
            where.append("zone = ?")
            params.append(zone)
        if not include_removed:
            where.append("state = 'active'")
        if subject is None:
            return self._rows(f"WHERE {' AND '.join(where)} ORDER BY zone, kind, net, plen, subject", params)
        if subject.kind == DOMAIN:
            rows = self._rows(f"WHERE {' AND '.join(where)} AND kind = 'domain'", params)
            return [r for r in rows if _domain_covers(r.subject, subject)]
        where.append("kind = ? AND plen <= ?")
        params += [subject.kind, subject.plen]
        rows = self._rows(f"WHERE {' AND '.join(where)} ORDER BY plen", params)
        bits = subject.bits
        return [
            r for r in rows
            if (subject.net >> (bits - r.plen)) == (int.from_bytes(r.net, "big") >> (bits - r.plen))
        ]

    def serving(self, zone: str, now: dt.datetime, singles: bool = True) -> Iterator[tuple]:
        """(kind, net, plen, subject, exclude, code, txt) of the listings a snapshot serves.

        ``singles=False`` leaves out what :meth:`serving_singles` returns.
        """
        where = "" if singles else f" AND NOT ({_SINGLE_IP4})"
        return self.db.execute(
            "SELECT kind, net, plen, subject, exclude, code, txt FROM listings "
            f"WHERE state = 'active' AND zone = ? AND (expires_at IS NULL OR expires_at > ?){where}",
            [zone, timestamp(now)],
        )

    def serving_kind(self, zone: str, kind: str, now: dt.datetime) -> Iterator[tuple]:
        """Like :meth:`serving`, for one kind of subject only."""
        return self.db.execute(
            "SELECT kind, net, plen, subject, exclude, code, txt FROM listings "
            "WHERE state = 'active' AND zone = ? AND kind = ? AND (expires_at IS NULL OR expires_at > ?)",
            [zone, kind, timestamp(now)],
        )

    def overlapping(self, zone: str, kind: str, net: int, plen: int, now: dt.datetime) -> list[tuple]:
        """Served listings around or inside the CIDR net/plen, as :meth:`serving` rows."""
        bits = BITS[kind]
        width = bits // 8
        # INDEXED BY: SQLite's planner prefers the serving index and scans a million rows.
        served = ("SELECT kind, net, plen, subject, exclude, code, txt FROM listings INDEXED BY listings_net "
                  "WHERE state = 'active' AND zone = ? AND kind = ? AND (expires_at IS NULL OR expires_at > ?) ")
        head = [zone, kind, timestamp(now)]
        inside = self.db.execute(
            served + "AND net BETWEEN ? AND ? AND plen >= ?",
            head + [net.to_bytes(width, "big"), (net | ((1 << (bits - plen)) - 1)).to_bytes(width, "big"), plen],
        ).fetchall()
        # Around it: the network address of each shorter prefix, one index probe each.
        # Several prefix lengths share a network address (10.0.0.0/8 and /16).
        around: dict[bytes, set[int]] = {}
        for p in range(plen):
            around.setdefault((net >> (bits - p) << (bits - p)).to_bytes(width, "big"), set()).add(p)
        if not around:
            return inside
        marks = ",".join("?" * len(around))
        rows = self.db.execute(served + f"AND net IN ({marks}) AND plen < ?", head + [*around, plen]).fetchall()
        return inside + [row for row in rows if row[2] in around[row[1]]]

    def serving_singles(self, zone: str, now: dt.datetime) -> list[tuple[str | None, str | None, bytes]]:
        """Single IPv4 listings in bulk: (code, txt, packed addresses) per distinct value.

        SQLite concatenates the addresses itself, so a million of them cost no
        Python object each.
        """
        rows = self.db.execute(
            "SELECT code, txt, group_concat(hex(net), '') FROM listings "
            f"WHERE state = 'active' AND zone = ? AND (expires_at IS NULL OR expires_at > ?) AND {_SINGLE_IP4} "
            "GROUP BY code, txt",
            [zone, timestamp(now)],
        )
        return [(code, txt, bytes.fromhex(packed)) for code, txt, packed in rows]

    def count_units(self, zone: str, kind: str, net: int, plen: int, unit: int, now: dt.datetime) -> int:
        """Distinct /``unit`` prefixes among the single addresses listed in net/plen now."""
        bits = BITS[kind]
        width = bits // 8
        whole = unit >= bits or unit % 8 == 0
        key = "net" if unit >= bits else f"substr(net, 1, {unit // 8})" if whole else "net"
        rows = self.db.execute(
            f"SELECT {'count(DISTINCT ' + key + ')' if whole else 'net'} FROM listings INDEXED BY listings_net "
            "WHERE zone = ? AND kind = ? AND net BETWEEN ? AND ? AND plen = ? AND exclude = 0 AND state = 'active' "
            "AND (expires_at IS NULL OR expires_at > ?)",
            [zone, kind, net.to_bytes(width, "big"), (net | ((1 << (bits - plen)) - 1)).to_bytes(width, "big"),
             bits, timestamp(now)]).fetchall()
        if whole:
            return rows[0][0]
        return len({int.from_bytes(n, "big") >> (bits - unit) for (n,) in rows})  # a prefix off byte bounds

    def case_columns(self, zones: Sequence[str], since: dt.datetime, now: dt.datetime,
                     active: bool = False) -> list[CaseColumns]:
        """:func:`rbl.store.cases.case_columns` of this store."""
        return case_columns(self.db, zones, since, now, active)

    def case_rows(self, zones: Sequence[str], since: dt.datetime) -> list[Listing]:
        """The listings :meth:`case_columns` reads, one row each, by id: the slow twin's input."""
        marks = ",".join("?" * len(zones))
        return self._rows(
            f"WHERE zone IN ({marks}) AND exclude = 0 AND first_seen >= ? "
            "AND ((kind = 'ip4' AND plen = 32) OR (kind = 'ip6' AND plen = 128)) ORDER BY id",
            [*zones, timestamp(since)])

    def next_expiry(self, now: dt.datetime) -> str | None:
        """When the next active listing expires, so a server recompiles then."""
        row = self.db.execute(
            "SELECT min(expires_at) FROM listings INDEXED BY listings_expiry WHERE state = 'active' AND expires_at > ?",
            [timestamp(now)],
        ).fetchone()
        return row[0]

    # -- writes --------------------------------------------------------------

    def add(
        self,
        entries: Iterable[Entry],
        *,
        zone: str,
        actor: str,
        category: str | None = None,
        reason: str | None = None,
        source: str | None = None,
        expires: dt.timedelta | None = None,
        action: str = "add",
        repeat: Lifetimes | None = None,
    ) -> tuple[int, int]:
        """Add or refresh listings in one transaction; return (added, refreshed).

        A subject already listed keeps its first_seen, gains a hit and keeps the
        longer of its lifetime and ``expires``. With ``repeat`` (the policy's
        expiry rules), a subject relisted soon after its last listing ended lives
        a multiple of that listing's lifetime. Nothing is written if any entry fails.
        """
        now = self.clock()
        added = refreshed = 0
        with self.transaction() as conn:
            # Batches of 500: one SELECT finds the rows they refresh (SQLite's variable limit).
            for batch in _batched(entries, 500):
                a, r = self._upsert(conn, batch, zone, actor, action, now, expires, repeat, category, reason, source)
                added, refreshed = added + a, refreshed + r
        return added, refreshed

    def _upsert(self, conn, batch, zone, actor, action, now, expires, repeat, category, reason, source):
        stamp = timestamp(now)
        # Later lines win over earlier ones for the same subject, as a file read top down.
        by_subject: dict[str, Entry] = {}
        for entry in batch:
            by_subject[entry.subject.text] = entry
        marks = ",".join("?" * len(by_subject))
        existing = {
            row.subject: row
            for row in self._rows(f"WHERE zone = ? AND subject IN ({marks})", [zone, *by_subject])
        }
        rows, audits = [], []
        added = 0
        for text, entry in by_subject.items():
            subject = entry.subject
            old = existing.get(text)
            lifetime = _lifetime(old, now, stamp, expires, repeat)
            new = Listing(
                zone=zone,
                subject=text,
                kind=subject.kind,
                net=subject.packed or None,
                plen=subject.plen if subject.kind != DOMAIN else None,
                exclude=int(entry.exclude),
                code=entry.code,
                txt=entry.txt,
                category=category if category is not None else (old.category if old else None),
                reason=entry.reason or reason or (old.reason if old else None),
                source=source if source is not None else (old.source if old else None),
                first_seen=old.first_seen if old else stamp,
                last_seen=stamp,
                # A list that counts for us (ipsum) says how many; otherwise one more hit.
                hits=entry.hits if entry.hits is not None
                else 1 + (old.hits if old and old.state == "active" else 0),
                expires_at=timestamp(now + lifetime) if lifetime is not None else None,
                state="active",
                lifetime=int(lifetime.total_seconds()) if lifetime is not None else None,
                # The case's history stays; a hit after a remediation is a relisting (the first
                # one after the latest remediation counts), and the code goes back to block.
                remediated_at=old.remediated_at if old else None,
                relisted_at=_relisted(old, stamp),
                disputed_at=old.disputed_at if old else None,
            )
            added += old is None or old.state != "active"
            rows.append([getattr(new, c) for c in _COLUMNS])
            audits.append((stamp, actor, action, text, old.as_dict() if old else None, new.as_dict()))
        sets = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("zone", "subject"))
        conn.executemany(
            f"INSERT INTO listings ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
            f"ON CONFLICT (zone, subject) DO UPDATE SET {sets}",
            rows,
        )
        append_audit(conn, audits)
        return added, len(by_subject) - added

    def remove(self, subjects: Iterable[Subject], *, zone: str, actor: str) -> int:
        """Remove active listings in one transaction.

        :raises StoreError: naming the first subject that is not listed; then nothing changes.
        """
        stamp = timestamp(self.clock())
        with self.transaction() as conn:
            return self.remove_in(conn, subjects, zone=zone, actor=actor, stamp=stamp)

    def remove_in(self, conn: sqlite3.Connection, subjects: Iterable[Subject], *, zone: str, actor: str,
                  stamp: str) -> int:
        """:meth:`remove` inside a transaction the caller holds (closing a delisting request)."""
        count = 0
        for subject in subjects:
            old = self.get(zone, subject)
            if old is None or old.state != "active":
                raise StoreError(f"{subject.text} is not listed in {zone}")
            conn.execute("UPDATE listings SET state = 'removed', last_seen = ? WHERE id = ?", [stamp, old.id])
            after = dict(old.as_dict(), state="removed", last_seen=stamp)
            append_audit(conn, [(stamp, actor, "remove", old.subject, old.as_dict(), after)])
            count += 1
        return count


def _lifetime(old: Listing | None, now: dt.datetime, stamp: str, requested: dt.timedelta | None,
              repeat: Lifetimes | None) -> dt.timedelta | None:
    """How long a listing made now lives (None: never)."""
    if old is None or requested is None:
        return requested
    previous = dt.timedelta(seconds=old.lifetime) if old.lifetime is not None else None
    if old.state == "active" and (old.expires_at is None or old.expires_at > stamp):
        # Still listed: a new hit never shortens what it was given.
        if old.expires_at is None:
            return None
        return max(requested, previous) if previous is not None else requested
    if repeat is None:
        return requested
    # Ended: expired (at its expires_at) or removed (at its last_seen).
    ended = old.expires_at if old.state == "active" else old.last_seen
    return repeat.lifetime(previous, parse_timestamp(ended), now, requested)


def _relisted(old: Listing | None, stamp: str) -> str | None:
    if old is None:
        return None
    if old.remediated_at is not None and (old.relisted_at is None or old.relisted_at < old.remediated_at):
        return max(stamp, old.remediated_at)
    return old.relisted_at


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _domain_covers(listed: str, subject: Subject) -> bool:
    entry = parse_subject(listed)
    name, base = subject.domain, entry.domain
    if entry.cover in ("exact", "both") and name == base:
        return True
    return entry.cover in ("subdomains", "both") and name.endswith("." + base)
