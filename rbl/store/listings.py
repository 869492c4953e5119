"""Listings: add, remove, show and import, each one transaction with its audit rows.

:class:`ListingStore` is the :class:`~rbl.store.database.Database` with the
listing queries: what the compiler and the patcher read, and the only writes
to the listings table. How long a relisted subject lives is the policy's rule;
it comes in as ``repeat`` (any :class:`Lifetimes`), never imported from above.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rbl.addresses import BITS, DOMAIN, Subject, parse_subject
from rbl.errors import StoreError
from rbl.store.cases import CaseColumns, case_columns
from rbl.store.database import CHANGES_LIMIT, Database, append_audit, epoch, parse_timestamp, stored_time, timestamp

# Single IPv4 listings, the bulk of a big list: the compiler reads them in one aggregate.
_SINGLE_IP4 = "kind = 'ip4' AND plen = 32 AND exclude = 0"

_COLUMNS = (
    "zone subject kind net plen exclude code txt category reason source "
    "first_seen last_seen hits expires_at state lifetime remediated_at relisted_at disputed_at identities"
).split()
# Kept as seconds since the epoch, read and written as timestamp() text.
_TIMES = frozenset("first_seen last_seen expires_at remediated_at relisted_at disputed_at".split())
# A domain's key is its subject text in net, plen 0; a Listing shows None for both, as before.
_READ = {
    "net": "CASE kind WHEN 'domain' THEN NULL ELSE net END",
    "plen": "CASE kind WHEN 'domain' THEN NULL ELSE plen END",
    **{name: stored_time(name) for name in _TIMES},
}
_SELECT = ", ".join(_READ.get(name, name) for name in _COLUMNS)
# What serving() and friends return: (kind, net, plen, subject, exclude, code, txt).
_SERVED = f"kind, {_READ['net']}, {_READ['plen']}, subject, exclude, code, txt"


def key(subject: Subject) -> tuple[str, bytes, int]:
    """The listings table's key of a subject within its zone: (kind, net, plen)."""
    if subject.kind == DOMAIN:
        return DOMAIN, subject.text.encode(), 0
    return subject.kind, subject.packed, subject.plen


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
    # The DKIM signing domains seen abusing the address (shared space: the tenants behind it),
    # sorted, one a line; None: none named.
    identities: str | None = None
    id: int | None = field(default=None)

    @property
    def identity_list(self) -> list[str]:
        return self.identities.split("\n") if self.identities else []

    def as_dict(self) -> dict:
        """The row as JSON-ready data, without empty fields and the binary key; identities as a list."""
        out = {name: getattr(self, name) for name in _COLUMNS if name not in ("net", "plen", "lifetime")}
        out["identities"] = self.identity_list or None
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
    identities: tuple[str, ...] = ()  # checked domains (rbl.addresses.parse_identity), added to the listing's


class Lifetimes(Protocol):
    """The policy's expiry rules as :meth:`ListingStore.add` uses them (:class:`rbl.policy.listing.Expiry`)."""

    def lifetime(self, previous: dt.timedelta | None, ended: dt.datetime | None, now: dt.datetime,
                 requested: dt.timedelta | None) -> dt.timedelta | None:
        """The lifetime of a listing made ``now`` whose last listing lived ``previous`` and ended at ``ended``."""


@dataclass(frozen=True)
class Imported:
    """What :meth:`ListingStore.import_entries` did."""

    added: int  # new, or listed again after it had ended
    refreshed: int  # still listed: seen again
    removed: int  # --replace: listed from this source, gone from the file
    changed: int  # refreshed with another answer (code, TXT, exclusion)
    audit: int | None  # the one audit row of a bulk import; None when audited row by row


class ListingStore(Database):
    """The database, with the listing queries: the one owner of writes to the listings table."""

    # -- reads ---------------------------------------------------------------

    def _rows(self, sql: str, params: Iterable = ()) -> list[Listing]:
        cursor = self.db.execute(f"SELECT {_SELECT}, id FROM listings {sql}", list(params))
        return [Listing(*row) for row in cursor.fetchall()]

    def get(self, zone: str, subject: Subject) -> Listing | None:
        rows = self._rows("WHERE zone = ? AND kind = ? AND net = ? AND plen = ?", [zone, *key(subject)])
        return rows[0] if rows else None

    def listings_between(self, zone: str, kind: str, lo: bytes, hi: bytes) -> list[Listing]:
        """Every listing of a family in a zone whose network address is in [lo, hi] (any state),
        with one range scan of the key index."""
        return self._rows("INDEXED BY listings_key WHERE zone = ? AND kind = ? AND net BETWEEN ? AND ?",
                          [zone, kind, lo, hi])

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
        # The subject and every prefix around it, zone by zone: index probes, never a scan.
        bits, width = subject.bits, subject.bits // 8
        probes: dict[bytes, set[int]] = {}
        for p in range(subject.plen + 1):
            probes.setdefault((subject.net >> (bits - p) << (bits - p)).to_bytes(width, "big"), set()).add(p)
        rows = []
        for name in [zone] if zone else self.zones():
            for chunk in _batched(list(probes), 200):
                marks = ",".join("?" * len(chunk))
                rows += [r for r in self._rows(
                    f"INDEXED BY listings_key WHERE zone = ? AND kind = ? AND net IN ({marks}) AND plen <= ?"
                    + ("" if include_removed else " AND state = 'active'"),
                    [name, subject.kind, *chunk, subject.plen])
                    if r.plen in probes[r.net]]
        return sorted(rows, key=lambda r: (r.plen, r.zone))

    def zones(self) -> list[str]:
        """The zones with listings, by index seeks (a loose index scan), not by reading every row."""
        rows = self.db.execute(
            "WITH RECURSIVE z(zone) AS (SELECT min(zone) FROM listings UNION ALL "
            "SELECT (SELECT min(zone) FROM listings WHERE zone > z.zone) FROM z WHERE z.zone IS NOT NULL) "
            "SELECT zone FROM z WHERE zone IS NOT NULL")
        return [zone for (zone,) in rows]

    def serving(self, zone: str, now: dt.datetime, singles: bool = True) -> Iterator[tuple]:
        """(kind, net, plen, subject, exclude, code, txt) of the listings a snapshot serves.

        ``singles=False`` leaves out what :meth:`serving_singles` returns.
        """
        where = "" if singles else f" AND NOT ({_SINGLE_IP4})"
        # NOT INDEXED: a compile reads most of the table; a scan beats a lookup per row.
        return self.db.execute(
            f"SELECT {_SERVED} FROM listings NOT INDEXED "
            f"WHERE state = 'active' AND zone = ? AND (expires_at IS NULL OR expires_at > ?){where}",
            [zone, epoch(now)],
        )

    def serving_kind(self, zone: str, kind: str, now: dt.datetime) -> Iterator[tuple]:
        """Like :meth:`serving`, for one kind of subject only."""
        return self.db.execute(
            f"SELECT {_SERVED} FROM listings INDEXED BY listings_key "
            "WHERE state = 'active' AND zone = ? AND kind = ? AND (expires_at IS NULL OR expires_at > ?)",
            [zone, kind, epoch(now)],
        )

    def overlapping(self, zone: str, kind: str, net: int, plen: int, now: dt.datetime) -> list[tuple]:
        """Served listings around or inside the CIDR net/plen, as :meth:`serving` rows."""
        bits = BITS[kind]
        width = bits // 8
        served = (f"SELECT {_SERVED} FROM listings INDEXED BY listings_key "
                  "WHERE state = 'active' AND zone = ? AND kind = ? AND (expires_at IS NULL OR expires_at > ?) ")
        head = [zone, kind, epoch(now)]
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

    def naming(self, zone: str, now: dt.datetime, kind: str | None = None, lo: int = 0, hi: int | None = None
               ) -> list[tuple[str, int, str]]:
        """(kind, address, identities) of the served single-address listings that name identities,
        optionally of one family with addresses in [lo, hi): what the tenant zone answers from."""
        sql = ("SELECT kind, net, identities FROM listings INDEXED BY listings_identities "
               "WHERE identities IS NOT NULL AND zone = ? AND state = 'active' AND exclude = 0 "
               "AND plen = CASE kind WHEN 'ip4' THEN 32 ELSE 128 END AND (expires_at IS NULL OR expires_at > ?)")
        params: list = [zone, epoch(now)]
        if kind is not None:
            width = BITS[kind] // 8
            sql += " AND kind = ? AND net >= ?"
            params += [kind, lo.to_bytes(width, "big")]
            if hi is not None and hi < 1 << BITS[kind]:
                sql += " AND net < ?"
                params.append(hi.to_bytes(width, "big"))
        return [(k, int.from_bytes(net, "big"), names) for k, net, names in self.db.execute(sql, params)]

    def serving_singles(self, zone: str, now: dt.datetime) -> list[tuple[str | None, str | None, bytes]]:
        """Single IPv4 listings in bulk: (code, txt, packed addresses) per distinct value.

        SQLite concatenates the addresses itself, so a million of them cost no
        Python object each.
        """
        rows = self.db.execute(
            "SELECT code, txt, group_concat(hex(net), '') FROM listings NOT INDEXED "
            f"WHERE state = 'active' AND zone = ? AND (expires_at IS NULL OR expires_at > ?) AND {_SINGLE_IP4} "
            "GROUP BY code, txt",
            [zone, epoch(now)],
        )
        return [(code, txt, bytes.fromhex(packed)) for code, txt, packed in rows]

    def count_units(self, zone: str, kind: str, net: int, plen: int, unit: int, now: dt.datetime) -> int:
        """Distinct /``unit`` prefixes among the single addresses listed in net/plen now."""
        bits = BITS[kind]
        width = bits // 8
        whole = unit >= bits or unit % 8 == 0
        column = "net" if unit >= bits else f"substr(net, 1, {unit // 8})" if whole else "net"
        rows = self.db.execute(
            f"SELECT {'count(DISTINCT ' + column + ')' if whole else 'net'} FROM listings INDEXED BY listings_key "
            "WHERE zone = ? AND kind = ? AND net BETWEEN ? AND ? AND plen = ? AND exclude = 0 AND state = 'active' "
            "AND (expires_at IS NULL OR expires_at > ?)",
            [zone, kind, net.to_bytes(width, "big"), (net | ((1 << (bits - plen)) - 1)).to_bytes(width, "big"),
             bits, epoch(now)]).fetchall()
        if whole:
            return rows[0][0]
        return len({int.from_bytes(n, "big") >> (bits - unit) for (n,) in rows})  # a prefix off byte bounds

    def case_columns(self, zones: Sequence[str], since: dt.datetime, now: dt.datetime,
                     active: bool = False, within: dict | None = None,
                     until: dt.datetime | None = None) -> list[CaseColumns]:
        """:func:`rbl.store.cases.case_columns` of this store."""
        return case_columns(self.db, zones, since, now, active, within, until)

    def case_rows(self, zones: Sequence[str], since: dt.datetime) -> list[Listing]:
        """The listings :meth:`case_columns` reads, one row each, by id: the slow twin's input."""
        marks = ",".join("?" * len(zones))
        return self._rows(
            f"WHERE zone IN ({marks}) AND exclude = 0 AND first_seen >= ? "
            "AND ((kind = 'ip4' AND plen = 32) OR (kind = 'ip6' AND plen = 128)) ORDER BY id",
            [*zones, epoch(since)])

    def next_expiry(self, now: dt.datetime) -> str | None:
        """When the next active listing expires, so a server recompiles then."""
        row = self.db.execute(
            f"SELECT {stored_time('min(expires_at)')} FROM listings INDEXED BY listings_expiry "
            "WHERE state = 'active' AND expires_at > ?",
            [epoch(now)],
        ).fetchone()
        return row[0]

    def history(self, subject: Subject, zone: str | None = None) -> list[dict]:
        """What happened to a subject, oldest first: its own audit rows and the bulk imports
        that added, changed or removed it (found in their packed key sets)."""
        events = []
        for audit_id, at, actor, action, before, after in self.db.execute(
                "SELECT id, at, actor, action, before, after FROM audit INDEXED BY audit_subject WHERE subject = ?",
                [subject.text]):
            row = json.loads(after or before or "{}")
            if zone is None or row.get("zone", zone) == zone:
                events.append({"audit": audit_id, "at": at, "actor": actor, "action": action,
                               "zone": row.get("zone"), "state": row.get("state") if after else None})
        kind, net, plen = key(subject)
        probe = net + bytes([plen]) if kind != DOMAIN else net
        sets = self.db.execute(
            "SELECT s.audit, s.zone, s.change, s.keys, a.at, a.actor, a.after FROM import_sets s "
            "JOIN audit a ON a.id = s.audit WHERE s.kind = ?" + (" AND s.zone = ?" if zone else ""),
            [kind, *([zone] if zone else [])])
        for audit_id, set_zone, change, keys, at, actor, after in sets:
            if _packed_has(keys, probe, kind):
                about = json.loads(after)
                events.append({"audit": audit_id, "at": at, "actor": actor, "action": f"import ({change})",
                               "zone": set_zone, "file": about.get("file"), "sha256": about.get("sha256"),
                               "source": about.get("source")})
        return sorted(events, key=lambda e: e["audit"])

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
        """Add or refresh listings in one transaction, an audit row each; return (added, refreshed).

        A subject already listed keeps its first_seen, gains a hit and keeps the
        longer of its lifetime and ``expires``. With ``repeat`` (the policy's
        expiry rules), a subject relisted soon after its last listing ended lives
        a multiple of that listing's lifetime. Nothing is written if any entry fails.
        """
        now = self.clock()
        with self.transaction() as conn:
            return self._add_rows(conn, entries, _Asked(zone, actor, action, now, expires, repeat, category, reason,
                                                        source, keep_hits=False))

    def add_in(self, conn: sqlite3.Connection, entries: Iterable[Entry], *, zone: str, actor: str,
               expires: dt.timedelta | None, reason: str | None = None, source: str | None = None,
               action: str = "add") -> tuple[int, int]:
        """:meth:`add` inside a transaction the caller holds (vendor evidence listing a signer)."""
        return self._add_rows(conn, entries, _Asked(zone, actor, action, self.clock(), expires, None, None, reason,
                                                    source, keep_hits=False))

    def _add_rows(self, conn: sqlite3.Connection, entries: Iterable[Entry], asked: _Asked) -> tuple[int, int]:
        added = refreshed = 0
        # Later lines win over earlier ones for the same subject, as a file read top down.
        by_key: dict[tuple, Entry] = {}
        for entry in entries:
            by_key[key(entry.subject)] = entry
        for batch in _batched(by_key.values(), 500):
            a, r = self._upsert(conn, batch, asked)
            added, refreshed = added + a, refreshed + r
        return added, refreshed

    def _upsert(self, conn: sqlite3.Connection, batch: list[Entry], asked: _Asked) -> tuple[int, int]:
        stamp = timestamp(asked.now)
        rows, audits = [], []
        added = 0
        for entry in batch:
            old = self.get(asked.zone, entry.subject)
            new = _merged(old, entry, asked)
            # Back after it expired counts as added, as after a removal: it was not listed.
            added += old is None or old.state != "active" or (old.expires_at is not None and old.expires_at <= stamp)
            rows.append(_stored(new))
            audits.append((stamp, asked.actor, asked.action, new.subject, old.as_dict() if old else None,
                           new.as_dict()))
        sets = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("zone", "kind", "net", "plen"))
        conn.executemany(
            f"INSERT INTO listings ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
            f"ON CONFLICT (zone, kind, net, plen) DO UPDATE SET {sets}",
            rows,
        )
        append_audit(conn, audits)
        return added, len(batch) - added

    def import_entries(self, entries: Iterable[Entry], **kwargs) -> Imported:
        """:meth:`import_rows` of :class:`Entry` values."""
        return self.import_rows(map(staged, entries), **kwargs)

    def import_rows(
        self,
        rows: Iterable[tuple],
        *,
        zone: str,
        actor: str,
        category: str | None = None,
        reason: str | None = None,
        source: str | None = None,
        expires: dt.timedelta | None = None,
        repeat: Lifetimes | None = None,
        replace: bool = False,
        about: dict | None = None,
        bulk_above: int = CHANGES_LIMIT,
    ) -> Imported:
        """Import a list in one transaction: every row (:func:`staged`), or (on any error) none.

        With ``replace``, the active listings of ``source`` in ``zone`` are exactly the
        list's afterwards: the ones it lacks are removed. Subjects seen again keep their
        first_seen; an import gives them a hit, a replace keeps their count (a list that
        counts, like ipsum, says how many either way).

        An import that writes at most ``bulk_above`` rows is audited row by row, as
        :meth:`add` is. A bigger one goes through SQL in bulk and writes one audit row
        (``about``: file, digest, counts) with the keys it added, changed and removed
        packed in ``import_sets``, so :meth:`history` still finds every subject.
        """
        if replace and source is None:
            raise StoreError("a replace needs the source whose listings it replaces")
        asked = _Asked(zone, actor, "import", self.clock(), expires, repeat, category, reason, source,
                       keep_hits=replace)
        rows = iter(rows)
        first = list(itertools.islice(rows, bulk_above + 1))
        with self.transaction() as conn:
            if len(first) <= bulk_above:
                small = self._small_import(conn, [_entry(row) for row in first], asked, replace, bulk_above)
                if small is not None:
                    return small
            from rbl.store.bulk import BulkImport  # it builds on this module's rows

            return BulkImport(self, conn, asked, about or {}).run(itertools.chain(first, rows), replace)

    def _small_import(self, conn: sqlite3.Connection, entries: list[Entry], asked: _Asked, replace: bool,
                      limit: int) -> Imported | None:
        """An import with few rows to write, audited row by row; None if the replace removes too many."""
        vanished: list[Listing] = []
        if replace:
            (count,) = conn.execute("SELECT count(*) FROM listings NOT INDEXED WHERE zone = ? AND source = ? "
                                    "AND state = 'active'", [asked.zone, asked.source]).fetchone()
            if count > 2 * limit:
                return None
            keep = {key(e.subject) for e in entries}
            vanished = [row for row in self._rows("NOT INDEXED WHERE zone = ? AND source = ? AND state = 'active'",
                                                  [asked.zone, asked.source])
                        if key(parse_subject(row.subject)) not in keep]
            if len(vanished) + len(keep) > limit:
                return None
        added, refreshed = self._add_rows(conn, entries, asked)
        stamp = timestamp(asked.now)
        for old in vanished:
            self._remove_row(conn, old, asked.actor, stamp)
        return Imported(added, refreshed, len(vanished), 0, None)

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
            self._remove_row(conn, old, actor, stamp)
            count += 1
        return count

    def _remove_row(self, conn: sqlite3.Connection, old: Listing, actor: str, stamp: str) -> None:
        conn.execute("UPDATE listings SET state = 'removed', last_seen = ? WHERE id = ?", [epoch(stamp), old.id])
        after = dict(old.as_dict(), state="removed", last_seen=stamp)
        append_audit(conn, [(stamp, actor, "remove", old.subject, old.as_dict(), after)])


@dataclass(frozen=True)
class _Asked:
    """What an add or import asks of every subject it lists."""

    zone: str
    actor: str
    action: str
    now: dt.datetime
    expires: dt.timedelta | None
    repeat: Lifetimes | None
    category: str | None
    reason: str | None
    source: str | None
    keep_hits: bool  # a replace: seen again in the upstream list is not a new hit


def _merged(old: Listing | None, entry: Entry, asked: _Asked) -> Listing:
    """The listing an add or import makes of ``entry``, given what was stored (None: nothing)."""
    subject = entry.subject
    stamp = timestamp(asked.now)
    lifetime = _lifetime(old, asked.now, stamp, asked.expires, asked.repeat)
    if entry.hits is not None:  # a list that counts for us (ipsum) says how many
        hits = entry.hits
    elif old is not None and old.state == "active":
        hits = old.hits + (not asked.keep_hits)
    else:
        hits = 1
    return Listing(
        zone=asked.zone,
        subject=subject.text,
        kind=subject.kind,
        net=subject.packed or None,
        plen=subject.plen if subject.kind != DOMAIN else None,
        exclude=int(entry.exclude),
        code=entry.code,
        txt=entry.txt,
        category=asked.category if asked.category is not None else (old.category if old else None),
        reason=entry.reason or asked.reason or (old.reason if old else None),
        source=asked.source if asked.source is not None else (old.source if old else None),
        first_seen=old.first_seen if old else stamp,
        last_seen=stamp,
        hits=hits,
        expires_at=timestamp(asked.now + lifetime) if lifetime is not None else None,
        state="active",
        lifetime=int(lifetime.total_seconds()) if lifetime is not None else None,
        # The case's history stays; a hit after a remediation is a relisting (the first
        # one after the latest remediation counts), and the code goes back to block.
        remediated_at=old.remediated_at if old else None,
        relisted_at=_relisted(old, stamp),
        disputed_at=old.disputed_at if old else None,
        identities=_identities(old, entry, stamp),
    )


def _identities(old: Listing | None, entry: Entry, stamp: str) -> str | None:
    """The identities a listing names after an add: those it named while listed, and the entry's."""
    listed = old is not None and old.state == "active" and (old.expires_at is None or old.expires_at > stamp)
    names = set(old.identity_list if listed else []) | set(entry.identities)
    return "\n".join(sorted(names)) or None


def _stored(listing: Listing) -> list:
    """A listing as the table's columns hold it (_COLUMNS order): times in seconds, a domain keyed by its text."""
    out = []
    for name in _COLUMNS:
        value = getattr(listing, name)
        if name in _TIMES:
            value = epoch(value)
        elif name == "net" and listing.kind == DOMAIN:
            value = listing.subject.encode()
        elif name == "plen" and listing.kind == DOMAIN:
            value = 0
        out.append(value)
    return out


def staged(entry: Entry) -> tuple:
    """An entry as a row of :meth:`ListingStore.import_rows`:
    (kind, net, plen, subject, exclude, code, txt, reason, hits), the key as :func:`key` makes it."""
    subject = entry.subject
    kind, net, plen = key(subject)
    return kind, net, plen, subject.text, int(entry.exclude), entry.code, entry.txt, entry.reason, entry.hits


def _entry(row: tuple) -> Entry:
    """A :func:`staged` row back as the entry it was made from."""
    kind, net, plen, text, exclude, code, txt, reason, hits = row
    subject = parse_subject(text) if kind == DOMAIN else Subject(kind, int.from_bytes(net, "big"), plen)
    return Entry(subject, bool(exclude), code, txt, reason, hits)


def _packed_has(keys: bytes, probe: bytes, kind: str) -> bool:
    """Whether ``probe`` is among the sorted packed ``keys`` of an import set (binary search)."""
    if kind == DOMAIN:
        return b"\n" + probe + b"\n" in b"\n" + keys + b"\n"
    width = len(probe)
    lo, hi = 0, len(keys) // width
    while lo < hi:
        mid = (lo + hi) // 2
        here = keys[mid * width:(mid + 1) * width]
        if here == probe:
            return True
        if here < probe:
            lo = mid + 1
        else:
            hi = mid
    return False


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
