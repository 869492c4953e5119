"""The store's database: one SQLite file (WAL) through sqlite-utils, migrated when opened.

:class:`Database` holds what every table shares: the connection, the clock,
write transactions and the generation they bump (servers notice a change by it),
the snapshot serial, and the append-only audit log, written by
:func:`append_audit` alone and read back by :meth:`Database.changes_since`.
Each table's queries live in its own module: listings in
:class:`~rbl.store.listings.ListingStore` (a Database with the listing queries),
tokens, evidence and delisting requests in the stores that wrap one.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from rbl.errors import StoreError
from rbl.store.schema import migrate

Clock = Callable[[], dt.datetime]
# Called inside every write transaction, before it commits, with the connection and the last
# audit row before the transaction began: it writes the events the transaction's changes cause
# (rbl.policy.notices), so both commit together or neither does.
Notices = Callable[["Database", sqlite3.Connection, int], None]

CHANGES_LIMIT = 2000  # past this many audit rows, a change is recompiled whole

# One audit row: at, actor, action, subject (None: the row changes no DNS answer),
# before (None: it is new), after (None: it is gone); before and after are JSON-ready.
AuditRow = tuple[str, str, str, str | None, dict | None, dict | None]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def timestamp(moment: dt.datetime) -> str:
    """The store's time format: ISO 8601 UTC to the second, sortable as text."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def epoch(moment: dt.datetime | str | None) -> int | None:
    """Seconds since the epoch, as the listings table keeps its times (None stays None)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = parse_timestamp(moment)
    return int(moment.timestamp())


def stored_time(column: str) -> str:
    """SQL reading a listings time column back as :func:`timestamp` text."""
    return f"strftime('%Y-%m-%dT%H:%M:%SZ', {column}, 'unixepoch')"


def append_audit(conn: sqlite3.Connection, rows: Iterable[AuditRow]) -> None:
    """Append rows to the audit table, in the caller's transaction: the one writer of the log."""
    conn.executemany(
        "INSERT INTO audit (at, actor, action, subject, before, after) VALUES (?, ?, ?, ?, ?, ?)",
        ((at, actor, action, subject, _json(before), _json(after)) for at, actor, action, subject, before, after in rows),
    )


def _json(row: dict | None) -> str | None:
    return json.dumps(row) if row is not None else None


class Database:
    """The connection to one store file, its write transactions, generation, serial and audit log."""

    def __init__(self, path: str | Path, clock: Clock = utcnow):
        self.path = str(path)
        self.clock = clock
        self.notices: Notices | None = None  # set by whoever knows the vendors' ranges
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
            mark = conn.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0] if self.notices else 0
            yield conn
            if self.notices is not None:
                self.notices(self, conn, mark)
            if answers:
                self.answers_changed(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def answers_changed(conn: sqlite3.Connection) -> None:
        """Bump the generation inside a transaction opened with ``answers=False`` that turned
        out to change an answer (evidence that remediated a listing): servers rebuild for it."""
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")

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
        # A bulk import is one row for many subjects (import_sets): recompile all.
        bulk = self.db.execute("SELECT 1 FROM audit WHERE id > ? AND id <= ? AND subject IS NULL AND action = 'import' "
                               "LIMIT 1", [audit_id, newest]).fetchone()
        if bulk:
            return newest, None
        # Rows without a subject (tokens, settings) change no answer.
        rows = self.db.execute("SELECT DISTINCT subject FROM audit WHERE id > ? AND id <= ? AND subject IS NOT NULL",
                               [audit_id, newest])
        return newest, [subject for (subject,) in rows]
