"""A big import in SQL: :meth:`rbl.store.listings.ListingStore.import_rows` past a few thousand rows.

The entries are staged in a temporary table and merged in a few statements; the import
is audited as one row with the keys it added, changed and removed packed in ``import_sets``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from rbl.addresses import DOMAIN, IP4, IP6, Subject, parse_subject
from rbl.store.database import append_audit, epoch, timestamp
from rbl.store.listings import (_COLUMNS, Entry, Imported, ListingStore, _Asked, _batched, _merged, _stored)


class BulkImport:
    """A big import in SQL: the entries staged in a temporary table, merged in a few statements.

    :func:`_merged` is its slow twin (the property tests hold the two to the same rows);
    the few subjects listed again after they ended go through it, since their lifetime
    is the policy's rule (``repeat``).
    """

    _JOIN = "l.zone = :zone AND l.kind = b.kind AND l.net = b.net AND l.plen = b.plen"
    _LIVE = "l.state = 'active' AND (l.expires_at IS NULL OR l.expires_at > :now)"

    def __init__(self, store: ListingStore, conn: sqlite3.Connection, asked: _Asked, about: dict):
        self.store, self.conn, self.asked, self.about = store, conn, asked, about
        life = int(asked.expires.total_seconds()) if asked.expires is not None else None
        self.args = {"zone": asked.zone, "now": epoch(asked.now), "life": life, "category": asked.category,
                     "reason": asked.reason, "source": asked.source, "hit": int(not asked.keep_hits)}

    def run(self, rows: Iterable[tuple], replace: bool) -> Imported:
        conn, args = self.conn, self.args
        conn.execute("CREATE TEMP TABLE import_lines (kind TEXT, net BLOB, plen INTEGER, subject TEXT, "
                     "exclude INTEGER, code TEXT, txt TEXT, reason TEXT, hits INTEGER)")
        conn.execute("CREATE TEMP TABLE import_changes (change TEXT, kind TEXT, net BLOB, plen INTEGER, id INTEGER, "
                     "PRIMARY KEY (change, kind, net, plen)) WITHOUT ROWID")
        count = self._stage(rows)
        empty = conn.execute("SELECT 1 FROM listings INDEXED BY listings_key WHERE zone = ? LIMIT 1",
                             [args["zone"]]).fetchone() is None
        if empty:
            added, refreshed, changed = self._into_empty(), 0, 0
            removed = 0
        else:
            added, refreshed, changed = self._merge()
            removed = self._replace() if replace else 0
        stamp = timestamp(self.asked.now)
        after = dict(self.about, zone=args["zone"], source=args["source"], replace=replace, entries=count,
                     added=added, refreshed=refreshed, changed=changed, removed=removed)
        append_audit(conn, [(stamp, self.asked.actor, "import", None, None, after)])
        (audit,) = conn.execute("SELECT max(id) FROM audit").fetchone()
        for change in ("added", "changed", "removed"):
            for kind in (IP4, IP6, DOMAIN):
                if empty:  # everything in the zone is new: its keys straight from the table
                    source = ("listings INDEXED BY listings_key", "zone = ? AND kind = ?", [args["zone"], kind])
                    if change != "added":
                        continue
                else:
                    source = ("import_changes", "change = ? AND kind = ?", [change, kind])
                self._pack(audit, change, kind, *source)
        for table in ("import_lines", "import_changes", "import_batch"):
            conn.execute(f"DROP TABLE IF EXISTS temp.{table}")
        return Imported(added, refreshed, removed, changed, audit)

    def _stage(self, rows: Iterable[tuple]) -> int:
        """Rows into import_lines, in order; the number of rows.

        Runs of single IPv4 addresses that say the same after the address (most of
        any big list: nothing, or an rbldnsd file's default code and TXT) go in as
        one packed blob and one JSON array of their texts per 50,000, which SQLite
        splits itself (json_each), the rest bound once: a fifth of the time of
        binding them row by row.
        """
        conn = self.conn
        texts: list[str] = []
        nets: list[bytes] = []
        tail: tuple | None = None  # what every address of the run says
        other: list[tuple] = []
        count = 0

        def flush_run() -> None:
            conn.execute("INSERT INTO import_lines (kind, net, plen, subject, exclude, code, txt, reason, hits) "
                         "SELECT 'ip4', substr(?1, key * 4 + 1, 4), 32, value, ?3, ?4, ?5, ?6, ?7 "
                         "FROM json_each(?2)", [b"".join(nets), json.dumps(texts), *tail])
            texts.clear()
            nets.clear()

        def flush_other() -> None:
            conn.executemany("INSERT INTO import_lines VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", other)
            other.clear()

        for row in rows:
            count += 1
            if row[2] == 32 and row[0] == IP4:
                if other:
                    flush_other()
                if row[4:] != tail:
                    if texts:
                        flush_run()
                    tail = row[4:]
                texts.append(row[3])
                nets.append(row[1])
                if len(texts) >= 50_000:
                    flush_run()
            else:
                if texts:
                    flush_run()
                other.append(row)
                if len(other) >= 50_000:
                    flush_other()
        if texts:
            flush_run()
        if other:
            flush_other()
        return count

    def _insert(self, source: str, where: str = "true") -> str:
        """INSERT of new listings from the staged entries (aliased b): as :func:`_merged` makes them."""
        return (
            f"INSERT INTO listings ({', '.join(_COLUMNS)}) "
            "SELECT :zone, b.subject, b.kind, b.net, b.plen, b.exclude, b.code, b.txt, :category, "
            "coalesce(nullif(b.reason, ''), nullif(:reason, '')), :source, :now, :now, coalesce(b.hits, 1), "
            f":now + :life, 'active', :life, NULL, NULL, NULL, NULL FROM {source} b WHERE {where} "
            "ORDER BY b.kind, b.net, b.plen"
        )

    def _into_empty(self) -> int:
        """The zone has no listings at all: every entry is new; of the same subject, the last line wins."""
        self.conn.execute(
            self._insert("import_lines") + ", b.rowid ON CONFLICT (zone, kind, net, plen) DO UPDATE SET "
            "subject = excluded.subject, exclude = excluded.exclude, code = excluded.code, txt = excluded.txt, "
            "reason = excluded.reason, hits = excluded.hits", self.args)
        (added,) = self.conn.execute("SELECT count(*) FROM listings INDEXED BY listings_key WHERE zone = ?",
                                     [self.args["zone"]]).fetchone()
        return added

    def _merge(self) -> tuple[int, int, int]:
        conn, args, join, live = self.conn, self.args, self._JOIN, self._LIVE
        # One entry per subject, the last line's; in key order, as the table's index is.
        conn.execute("CREATE TEMP TABLE import_batch (kind TEXT, net BLOB, plen INTEGER, subject TEXT, exclude INTEGER, "
                     "code TEXT, txt TEXT, reason TEXT, hits INTEGER, PRIMARY KEY (kind, net, plen)) WITHOUT ROWID")
        conn.execute("INSERT INTO import_batch SELECT * FROM import_lines WHERE true ORDER BY kind, net, plen, rowid "
                     "ON CONFLICT (kind, net, plen) DO UPDATE SET subject = excluded.subject, exclude = excluded.exclude, "
                     "code = excluded.code, txt = excluded.txt, reason = excluded.reason, hits = excluded.hits")
        # Still listed, and answered differently now: the snapshot changes for these.
        conn.execute("INSERT INTO import_changes SELECT 'changed', b.kind, b.net, b.plen, l.id FROM import_batch b "
                     f"JOIN listings l ON {join} WHERE {live} "
                     "AND (l.exclude IS NOT b.exclude OR l.code IS NOT b.code OR l.txt IS NOT b.txt)", args)
        lifetime = ("CASE WHEN :life IS NULL OR l.expires_at IS NULL THEN NULL "
                    "ELSE max(:life, coalesce(l.lifetime, :life)) END")
        refreshed = conn.execute(
            "UPDATE listings AS l SET last_seen = :now, subject = b.subject, exclude = b.exclude, code = b.code, "
            "txt = b.txt, category = coalesce(:category, l.category), "
            "reason = coalesce(nullif(b.reason, ''), nullif(:reason, ''), l.reason), source = coalesce(:source, l.source), "
            "hits = coalesce(b.hits, l.hits + :hit), "
            f"lifetime = {lifetime}, expires_at = :now + {lifetime}, "
            "relisted_at = CASE WHEN l.remediated_at IS NOT NULL AND (l.relisted_at IS NULL OR l.relisted_at < "
            "l.remediated_at) THEN max(:now, l.remediated_at) ELSE l.relisted_at END "
            f"FROM import_batch b WHERE {join} AND {live}", args).rowcount
        (changed,) = conn.execute("SELECT count(*) FROM import_changes WHERE change = 'changed'").fetchone()
        # Listed again after it ended (expired or removed): the policy's repeat rule, in Python.
        ended = conn.execute(
            "SELECT l.id, b.kind, b.net, b.plen, b.subject, b.exclude, b.code, b.txt, b.reason, b.hits "
            f"FROM import_batch b JOIN listings l ON {join} WHERE NOT ({live})", args).fetchall()
        again = 0
        for chunk in _batched(ended, 500):
            olds = {row.id: row for row in self.store._rows(f"WHERE id IN ({','.join('?' * len(chunk))})",
                                                           [row[0] for row in chunk])}
            rows = []
            for listing_id, kind, net, plen, subject, exclude, code, txt, reason, hits in chunk:
                who = parse_subject(subject) if kind == DOMAIN else Subject(kind, int.from_bytes(net, "big"), plen)
                rows.append(_stored(_merged(olds[listing_id], Entry(who, bool(exclude), code, txt, reason, hits),
                                            self.asked)) + [listing_id])
            sets = ", ".join(f"{c} = ?" for c in _COLUMNS)
            conn.executemany(f"UPDATE listings SET {sets} WHERE id = ?", rows)
            conn.executemany("INSERT INTO import_changes VALUES ('added', ?, ?, ?, ?)",
                             [(kind, net, plen, listing_id) for listing_id, kind, net, plen, *_ in chunk])
            again += len(chunk)
        new = conn.execute("INSERT INTO import_changes SELECT 'added', b.kind, b.net, b.plen, NULL FROM import_batch b "
                           f"WHERE NOT EXISTS (SELECT 1 FROM listings l WHERE {join})", args).rowcount
        conn.execute(self._insert("import_batch", f"NOT EXISTS (SELECT 1 FROM listings l WHERE {join})"), args)
        return again + new, refreshed, changed

    def _replace(self) -> int:
        """The source's active listings the list lacks: removed."""
        conn, args = self.conn, self.args
        removed = conn.execute(
            "INSERT INTO import_changes SELECT 'removed', l.kind, l.net, l.plen, l.id FROM listings l NOT INDEXED "
            "WHERE l.zone = :zone AND l.source = :source AND l.state = 'active' AND NOT EXISTS "
            "(SELECT 1 FROM import_batch b WHERE b.kind = l.kind AND b.net = l.net AND b.plen = l.plen)", args).rowcount
        conn.execute("UPDATE listings SET state = 'removed', last_seen = :now "
                     "WHERE id IN (SELECT id FROM import_changes WHERE change = 'removed')", args)
        return removed

    def _pack(self, audit: int, change: str, kind: str, table: str, where: str, params: list) -> None:
        """The keys of one change, sorted and packed (net and plen, fixed width; a domain's text,
        a line each), into import_sets rows of at most a million keys each."""
        conn = self.conn
        last: tuple = (b"", -1)
        # SQLite concatenates (hex, or a domain's text a line each): no Python object per key.
        packed = "CAST(net AS TEXT) || char(10)" if kind == DOMAIN else "hex(net) || printf('%02X', plen)"
        while True:
            blob, count = conn.execute(
                f"SELECT group_concat(packed, ''), count(*) FROM (SELECT {packed} AS packed, "
                f"net, plen FROM {table} WHERE {where} AND (net, plen) > (?, ?) ORDER BY net, plen LIMIT ?)",
                [*params, *last, _SET_SIZE]).fetchone()
            if not count:
                return
            keys = blob.encode() if kind == DOMAIN else bytes.fromhex(blob)
            conn.execute("INSERT INTO import_sets (audit, zone, change, kind, keys) VALUES (?, ?, ?, ?, ?)",
                         [audit, self.args["zone"], change, kind, keys])
            if count < _SET_SIZE:
                return
            if kind == DOMAIN:
                last = (keys[:-1].rsplit(b"\n", 1)[-1], 0)
            else:
                width = 5 if kind == IP4 else 17
                last = (keys[-width:-1], keys[-1])


_SET_SIZE = 1_000_000  # keys in one import_sets row
