"""Listings: add, remove, show and import, each one transaction with its audit rows."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from rbl.addresses import BITS, DOMAIN, Subject, parse_subject
from rbl.errors import StoreError
from rbl.policy.listing import Expiry
from rbl.store.schema import migrate

Clock = Callable[[], dt.datetime]

CHANGES_LIMIT = 2000  # past this many audit rows, a change is recompiled whole

# The same words as the listings_singles index, so SQLite uses it.
_SINGLE_IP4 = "kind = 'ip4' AND plen = 32 AND exclude = 0"

_COLUMNS = (
    "zone subject kind net plen exclude code txt category reason source "
    "first_seen last_seen hits expires_at state lifetime remediated_at relisted_at disputed_at"
).split()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def timestamp(moment: dt.datetime) -> str:
    """The store's time format: ISO 8601 UTC to the second, sortable as text."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


class ListingStore:
    """The one owner of writes to the listing database."""

    def __init__(self, path: str | Path, clock: Clock = utcnow):
        self.path = str(path)
        self.clock = clock
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            # Autocommit, with explicit BEGIN IMMEDIATE in transaction(): an import is
            # all lines or none, and sqlite3's implicit transactions would split it.
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            migrate(self.db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the listing store: {exc}") from None

    def close(self) -> None:
        self.db.conn.close()

    @contextmanager
    def transaction(self, answers: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; bumps the generation so servers see the change.

        ``answers=False``: the change cannot change any DNS answer (a delisting
        request), so servers need not build a snapshot for it.
        """
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            if answers:
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def generation(self) -> int:
        return self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]

    def next_serial(self, at_least: int) -> int:
        """A snapshot serial larger than every one handed out before, and >= at_least."""
        with self.db.conn as conn:
            conn.execute("BEGIN IMMEDIATE")
            (last,) = conn.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
            serial = max(last + 1, at_least) % 2**32
            conn.execute("UPDATE meta SET value = ? WHERE key = 'serial'", [serial])
        return serial

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

    def audit_mark(self) -> int:
        """The newest audit row's id: changes after it are newer than what was read next."""
        return self.db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]

    def changes_since(self, audit_id: int) -> tuple[int, list[str] | None]:
        """The newest audit id and the subjects changed after ``audit_id``.

        None instead of the list when more than CHANGES_LIMIT changed: recompile all.
        """
        newest = self.audit_mark()
        if newest - audit_id > CHANGES_LIMIT:
            return newest, None
        # Rows without a subject (tokens, settings) change no answer.
        rows = self.db.execute("SELECT DISTINCT subject FROM audit WHERE id > ? AND id <= ? AND subject IS NOT NULL",
                               [audit_id, newest])
        return newest, [subject for (subject,) in rows]

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
                     active: bool = False) -> list:
        """Single listed addresses first seen since ``since`` in ``zones``, expired ones too, as
        :class:`rbl.policy.standing.CaseColumns` per family: every vendor's cases are among them.

        One scan of a covering index for what every case has (address, first_seen;
        with ``active``, whether it is listed now), and one for the few that the vendor
        acted on or disputed. SQLite concatenates fixed-width fields and numpy reads
        them, so a million cases cost no Python object each (about 1 s).
        """
        import numpy as np

        from rbl.policy.remediation import NONE
        from rbl.policy.standing import CaseColumns

        out = []
        flag = "(state = 'active' AND (expires_at IS NULL OR expires_at > ?))"
        for kind, bits in BITS.items():
            width = bits // 4 + 20 + active  # hex address, first_seen, the flag
            parts = []
            for zone in zones:
                where = ("FROM listings INDEXED BY listings_cases "
                         "WHERE zone = ? AND kind = ? AND plen = ? AND exclude = 0 AND first_seen >= ?")
                args = [zone, kind, bits, timestamp(since)]
                (packed,) = self.db.execute(
                    f"SELECT group_concat(hex(net) || first_seen{' || ' + flag if active else ''}, '') {where}",
                    [timestamp(now)] * active + args).fetchone()
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
                acted = self.db.execute(
                    f"SELECT net, remediated_at, relisted_at, disputed_at IS NOT NULL {where} "
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
        repeat: Expiry | None = None,
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
            audits.append([stamp, actor, action, text,
                           json.dumps(old.as_dict()) if old else None, json.dumps(new.as_dict())])
        sets = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("zone", "subject"))
        conn.executemany(
            f"INSERT INTO listings ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
            f"ON CONFLICT (zone, subject) DO UPDATE SET {sets}",
            rows,
        )
        conn.executemany(
            "INSERT INTO audit (at, actor, action, subject, before, after) VALUES (?, ?, ?, ?, ?, ?)",
            audits,
        )
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
            conn.execute(
                "INSERT INTO audit (at, actor, action, subject, before, after) VALUES (?, ?, 'remove', ?, ?, ?)",
                [stamp, actor, old.subject, json.dumps(old.as_dict()), json.dumps(after)],
            )
            count += 1
        return count


_NO_TIME = "0000-00-00T00:00:00Z"  # NULL, in the store's fixed-width time format


def epoch_microseconds(text: str):
    """Concatenated store timestamps (20 characters each) as int64 microseconds since the
    epoch, ``remediation.NONE`` for :data:`_NO_TIME`: :func:`parse_timestamp` for a million
    at once, in numpy (days from the civil date, as in H. Hinnant's chrono algorithms)."""
    import numpy as np

    from rbl.policy.remediation import NONE

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


def parse_timestamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def _lifetime(old: Listing | None, now: dt.datetime, stamp: str, requested: dt.timedelta | None,
              repeat: Expiry | None) -> dt.timedelta | None:
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
