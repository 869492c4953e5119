"""The outbox: notices to vendors, kept until every channel has delivered them.

An event is written in the transaction of the change that causes it (the
listing added, removed, remediated; the cursor or mark that says a listing
expired, a case went overdue, a tier or a dense range moved), so a change is
never committed without its event, nor an event without its change. Events are
numbered per vendor (1, 2, 3...: a receiver that has seen 41 knows 42 is next)
and kept as the JSON every channel sends.

Each channel of a vendor (its webhook, its email digest) keeps how far it has
delivered; delivery resumes from there after a restart, so every event is
delivered at least once, in id order. Which events a change causes is the
policy's business (:mod:`rbl.policy.notices`): this module reads the changes a
transaction made from the audit log (:func:`changes_since`) and stores what it
is handed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from functools import lru_cache

from rbl.store.database import Database, parse_timestamp

EVENT_TYPES = ("listed", "escalated", "remediated", "overdue", "tier", "delisted")
CHANNELS = ("webhook", "email")
# Audit actions that change a listing (the rest change tokens, requests and evidence records).
LISTING_ACTIONS = ("add", "hit", "import", "remove", "remediate")


@dataclass(frozen=True)
class Change:
    """One listing a transaction changed, as its audit row says: before and after as JSON-ready rows."""

    action: str
    subject: str
    before: dict | None
    after: dict | None
    at: str


@dataclass(frozen=True)
class KeySet:
    """The packed keys one bulk import added or removed in a zone (``import_sets``)."""

    zone: str
    change: str  # added, changed, removed
    kind: str
    keys: bytes
    at: str
    actor: str


def audit_mark(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]


def changes_since(conn: sqlite3.Connection, mark: int, until: int | None = None) -> tuple[list[Change], list[KeySet]]:
    """The listing changes written after audit row ``mark`` (up to ``until``), on ``conn`` (inside
    the transaction that wrote them, its own rows are visible to it)."""
    rows, sets = [], []
    for audit_id, at, actor, action, subject, before, after in conn.execute(
            "SELECT id, at, actor, action, subject, before, after FROM audit WHERE id > ? AND id <= ? ORDER BY id",
            [mark, until if until is not None else 2**62]):
        if subject is not None:
            if action in LISTING_ACTIONS or action.startswith("import"):
                rows.append(Change(action, subject, json.loads(before) if before else None,
                                   json.loads(after) if after else None, at))
        elif action == "import":
            for zone, change, kind, keys in conn.execute(
                    "SELECT zone, change, kind, keys FROM import_sets WHERE audit = ? ORDER BY rowid", [audit_id]):
                sets.append(KeySet(zone, change, kind, keys, at, actor))
    return rows, sets


def append(conn: sqlite3.Connection, events: list[tuple[str, str, str, dict]]) -> list[dict]:
    """Store events (vendor, type, at as store time text, fields) in the caller's transaction,
    each numbered next for its vendor; returns them as stored."""
    stored, last = [], {}
    for vendor, kind, at, fields in events:
        if kind not in EVENT_TYPES:
            raise ValueError(f"no event type {kind!r}")
        if vendor not in last:
            last[vendor] = conn.execute("SELECT coalesce(max(id), 0) FROM outbox WHERE vendor = ?",
                                        [vendor]).fetchone()[0]
        last[vendor] += 1
        event = {"id": last[vendor], "vendor": vendor, "type": kind, "at": at, **fields}
        stored.append(event)
    conn.executemany("INSERT INTO outbox (vendor, id, type, at, event) VALUES (?, ?, ?, ?, ?)",
                     [(e["vendor"], e["id"], e["type"], _epoch(e["at"]), json.dumps(e, separators=(",", ":")))
                      for e in stored])
    return stored


def owe(conn: sqlite3.Connection, mark: int) -> None:
    """Record, in the caller's transaction, that the audit rows after ``mark`` still need their events."""
    (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()
    if last > mark:
        conn.execute("INSERT INTO notices_owed (audit_from, audit_to) VALUES (?, ?)", [mark, last])


def owed(conn: sqlite3.Connection) -> list[tuple[int, int, int]]:
    """What :func:`owe` recorded: (id, after audit row, up to audit row), oldest first."""
    return conn.execute("SELECT id, audit_from, audit_to FROM notices_owed ORDER BY id").fetchall()


def paid(conn: sqlite3.Connection, owed_id: int) -> None:
    conn.execute("DELETE FROM notices_owed WHERE id = ?", [owed_id])


@lru_cache(maxsize=4096)
def _epoch(stamp: str) -> int:
    # An import's events share a few timestamps: strptime once each, not once an event.
    return int(parse_timestamp(stamp).timestamp())


def read_mark(conn: sqlite3.Connection, vendor: str, name: str) -> str | None:
    row = conn.execute("SELECT value FROM notice_marks WHERE vendor = ? AND name = ?", [vendor, name]).fetchone()
    return row[0] if row else None


def write_mark(conn: sqlite3.Connection, vendor: str, name: str, value: str) -> None:
    conn.execute("INSERT INTO notice_marks (vendor, name, value) VALUES (?, ?, ?) "
                 "ON CONFLICT (vendor, name) DO UPDATE SET value = excluded.value", [vendor, name, value])


@dataclass(frozen=True)
class ChannelState:
    """How far one vendor's channel has delivered, and how it fares."""

    vendor: str
    channel: str
    delivered: int  # every event up to this id was accepted
    delivered_at: int | None
    attempts: int  # failed attempts, ever
    retries: int  # failed attempts since the last success
    down_since: int | None
    next_at: int | None
    last_error: str | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Outbox:
    """The events and the channels' delivery state, on one store connection."""

    def __init__(self, store: Database):
        self.store = store
        self.db = store.db

    def events(self, vendor: str, after: int = 0, limit: int = 100, until: int | None = None) -> list[dict]:
        """The vendor's events after id ``after`` (and up to ``until``), oldest first."""
        sql = "SELECT event FROM outbox WHERE vendor = ? AND id > ?"
        params: list = [vendor, after]
        if until is not None:
            sql += " AND id <= ?"
            params.append(until)
        rows = self.db.execute(sql + " ORDER BY id LIMIT ?", [*params, limit]).fetchall()
        return [json.loads(text) for (text,) in rows]

    def newest(self, vendor: str) -> int:
        return self.db.execute("SELECT coalesce(max(id), 0) FROM outbox WHERE vendor = ?", [vendor]).fetchone()[0]

    def newest_of(self, vendors) -> dict[str, int]:
        """Each vendor's newest id: one primary-key probe each (a GROUP BY would read every row)."""
        return {vendor: self.newest(vendor) for vendor in vendors}

    def at_of(self, vendor: str, event_id: int) -> int | None:
        row = self.db.execute("SELECT at FROM outbox WHERE vendor = ? AND id = ?", [vendor, event_id]).fetchone()
        return row[0] if row else None

    def channel(self, vendor: str, channel: str) -> ChannelState:
        row = self.db.execute("SELECT vendor, channel, delivered, delivered_at, attempts, retries, down_since, "
                              "next_at, last_error FROM notice_channels WHERE vendor = ? AND channel = ?",
                              [vendor, channel]).fetchone()
        if row is None:
            return ChannelState(vendor, channel, 0, None, 0, 0, None, None, None)
        return ChannelState(*row)

    def channels(self) -> list[ChannelState]:
        rows = self.db.execute("SELECT vendor, channel, delivered, delivered_at, attempts, retries, down_since, "
                               "next_at, last_error FROM notice_channels ORDER BY vendor, channel").fetchall()
        return [ChannelState(*row) for row in rows]

    def delivered(self, vendor: str, channel: str, through: int, at: int) -> None:
        """Events up to ``through`` were accepted by the channel at ``at``: it is up again."""
        with self.store.transaction(answers=False) as conn:
            conn.execute(
                "INSERT INTO notice_channels (vendor, channel, delivered, delivered_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (vendor, channel) DO UPDATE SET delivered = max(delivered, excluded.delivered), "
                "delivered_at = excluded.delivered_at, retries = 0, down_since = NULL, next_at = NULL, "
                "last_error = NULL", [vendor, channel, through, at])

    def failed(self, vendor: str, channel: str, error: str, at: int, next_at: int) -> ChannelState:
        """An attempt failed at ``at``; the next is not before ``next_at``. Nothing is dropped."""
        with self.store.transaction(answers=False) as conn:
            conn.execute(
                "INSERT INTO notice_channels (vendor, channel, attempts, retries, down_since, next_at, last_error) "
                "VALUES (?, ?, 1, 1, ?, ?, ?) ON CONFLICT (vendor, channel) DO UPDATE SET "
                "attempts = attempts + 1, retries = retries + 1, down_since = coalesce(down_since, excluded.down_since), "
                "next_at = excluded.next_at, last_error = excluded.last_error",
                [vendor, channel, at, next_at, error[:500]])
        return self.channel(vendor, channel)

    def prune(self, before: int, channels: dict[str, list[str]]) -> int:
        """Forget events written before ``before`` (seconds since the epoch) that every channel
        of their vendor (``channels``: the configured ones) has delivered. A vendor's newest
        event always stays: its id is where the numbering goes on."""
        removed = 0
        with self.store.transaction(answers=False) as conn:
            for vendor, newest in conn.execute("SELECT vendor, max(id) FROM outbox GROUP BY vendor").fetchall():
                through = newest - 1
                for channel in channels.get(vendor, []):
                    through = min(through, self.channel(vendor, channel).delivered)
                removed += conn.execute("DELETE FROM outbox WHERE vendor = ? AND id <= ? AND at < ?",
                                        [vendor, through, before]).rowcount
        return removed
