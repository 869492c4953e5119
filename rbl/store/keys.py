"""Access keys for the DNS zones: created, listed, revoked; stored only as hashes.

A key is 26 lower-case base32 characters (128 random bits), the label a
receiver puts between its question and the zone: ``2.0.0.127.KEY.bl.example``.
DNS is case-insensitive, so a key is too: its hash is taken of the lower-case
text. The store keeps the SHA-256, the first 4 characters (the hint), the zones
it opens and its quota; the text is returned once, by :meth:`KeyStore.create`,
and never audited or logged. Usage is counted by the DNS workers and summed by
the primary (:mod:`rbl.dns.quota`), which writes it here every few seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass

from rbl.errors import StoreError
from rbl.store.database import Database, append_audit, timestamp

KEY_LENGTH = 26
KEY_TEXT = re.compile(r"^[a-z2-7]{26}$")
HINT_LENGTH = 4
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
DEFAULT_PERIOD = 86400  # a quota without a period counts per day
PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_QUOTA = re.compile(r"^(\d+)/(?:(\d+)([smhdw])|(second|minute|hour|day|week))$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_COLUMNS = "id, name, hint, zones, quota, period, created_at, created_by, revoked_at, revoked_by"


@dataclass(slots=True, frozen=True)
class AccessKey:
    """One key as the store describes it: never its text nor its hash."""

    id: int
    name: str
    hint: str
    zones: tuple[str, ...] | None  # the zone origins it opens; None: every keyed zone
    quota: int | None  # queries per period; None: no quota
    period: int  # seconds
    created_at: str
    created_by: str
    revoked_at: str | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["zones"] = list(self.zones) if self.zones is not None else None
        return out

    def quota_text(self) -> str:
        return quota_text(self.quota, self.period)


def quota_text(quota: int | None, period: int) -> str:
    """``100000/day``, ``1000/10s`` or ``-`` for none."""
    if quota is None:
        return "-"
    named = {seconds: name for name, seconds in PERIODS.items()}
    return f"{quota}/{named.get(period) or f'{period}s'}"


def key_hash(text: str) -> str:
    """The stored form of a key: hex SHA-256 of its lower-case text (DNS ignores case)."""
    return hashlib.sha256(text.lower().encode("ascii", "replace")).hexdigest()


def new_key() -> str:
    """26 lower-case base32 characters: DNS-safe in any case, 128 random bits."""
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()


def parse_quota(text: str) -> tuple[int, int]:
    """``100000/day`` or ``1000/10s``: (queries, period in seconds).

    :raises ValueError: for anything else.
    """
    match = _QUOTA.match(str(text).strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a quota such as 100000/day, 5000/hour or 1000/10s")
    count = int(match[1])
    seconds = PERIODS[match[4]] if match[4] else int(match[2]) * _UNITS[match[3]]
    if count < 1 or not 1 <= seconds <= 366 * 86400:
        raise ValueError(f"{text!r}: a quota needs at least one query in a period of 1 s to a year")
    return count, seconds


def _key(row) -> AccessKey:
    values = list(row)
    values[3] = tuple(json.loads(values[3])) if values[3] is not None else None
    return AccessKey(*values)


class KeyStore:
    """Keys in the store's database, written through its transactions (a ListingStore is one too).

    A key changes no listing: its writes bump the ``keys`` mark, not the generation,
    so the server reloads its keys without building a snapshot.
    """

    def __init__(self, store: Database):
        self.store = store

    # -- reads ---------------------------------------------------------------

    def _rows(self, sql: str, params: list) -> list[AccessKey]:
        cursor = self.store.db.execute(f"SELECT {_COLUMNS} FROM access_keys {sql}", params)
        return [_key(row) for row in cursor.fetchall()]

    def get(self, name: str) -> AccessKey | None:
        rows = self._rows("WHERE name = ?", [name])
        return rows[0] if rows else None

    def list(self, include_revoked: bool = True) -> list[AccessKey]:
        return self._rows(("" if include_revoked else "WHERE revoked_at IS NULL ") + "ORDER BY id", [])

    def mark(self) -> int:
        """Changes with every key written: the server reloads its table when it moves."""
        row = self.store.db.execute("SELECT value FROM meta WHERE key = 'keys'").fetchone()
        return row[0] if row else 0

    def table(self) -> list[dict]:
        """What the DNS workers answer from: every key with its hash, revoked ones too (so the
        answer can say revoked, not unknown)."""
        rows = self.store.db.execute(
            "SELECT id, name, hash, zones, quota, period, revoked_at IS NOT NULL FROM access_keys ORDER BY id")
        return [{"id": i, "name": n, "hash": h, "zones": json.loads(z) if z is not None else None, "quota": q,
                 "period": p, "revoked": bool(r)} for i, n, h, z, q, p, r in rows]

    def usage(self) -> dict[int, tuple[int, int, int]]:
        """By key id: (start of the period counted, queries in it, queries ever)."""
        rows = self.store.db.execute("SELECT key_id, period_start, used, total FROM key_usage")
        return {key_id: (start, used, total) for key_id, start, used, total in rows}

    # -- writes --------------------------------------------------------------

    def create(self, name: str, actor: str, quota: tuple[int, int] | None = None,
               zones: list[str] | None = None) -> tuple[AccessKey, str]:
        """A new key: its description and its text, which nothing can show again.

        :raises StoreError: for a bad or taken name, or an empty zone list.
        """
        if not isinstance(name, str) or not NAME.match(name):
            raise StoreError(f"key name {name!r}: 1-63 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
        if zones is not None and not zones:
            raise StoreError("a key opens at least one zone (or, with no zones given, every keyed zone)")
        text = new_key()
        stamp = timestamp(self.store.clock())
        count, period = quota if quota is not None else (None, DEFAULT_PERIOD)
        zone_list = sorted(set(zones)) if zones is not None else None
        with self.store.transaction(answers=False) as conn:
            if conn.execute("SELECT 1 FROM access_keys WHERE name = ?", [name]).fetchone():
                raise StoreError(f"a key named {name!r} exists already (revoked keys keep their names)")
            cursor = conn.execute(
                "INSERT INTO access_keys (name, hash, hint, zones, quota, period, created_at, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [name, key_hash(text), text[:HINT_LENGTH], json.dumps(zone_list) if zone_list is not None else None,
                 count, period, stamp, actor])
            key = AccessKey(cursor.lastrowid, name, text[:HINT_LENGTH],
                            tuple(zone_list) if zone_list is not None else None, count, period, stamp, actor)
            _changed(conn, stamp, actor, "key-create", None, key)
        return key, text

    def revoke(self, name: str, actor: str) -> AccessKey:
        """Revoke a key in force; it answers 127.255.255.254 from the next second.

        :raises StoreError: naming the key when there is none in force by that name.
        """
        stamp = timestamp(self.store.clock())
        with self.store.transaction(answers=False) as conn:
            old = self.get(name)
            if old is None:
                raise StoreError(f"no key named {name!r}")
            if not old.active:
                raise StoreError(f"key {name!r} is already revoked (at {old.revoked_at} by {old.revoked_by})")
            conn.execute("UPDATE access_keys SET revoked_at = ?, revoked_by = ? WHERE id = ?", [stamp, actor, old.id])
            new = AccessKey(**dict(old.as_dict(), zones=old.zones, revoked_at=stamp, revoked_by=actor))
            _changed(conn, stamp, actor, "key-revoke", old, new)
        return new

    def record_usage(self, usage: dict[int, tuple[int, int, int]]) -> None:
        """The primary's counts, by key id: (period start, used in it, total)."""
        if not usage:
            return
        with self.store.transaction(answers=False) as conn:
            conn.executemany(
                "INSERT INTO key_usage (key_id, period_start, used, total) SELECT ?, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM access_keys WHERE id = ?) ON CONFLICT (key_id) DO UPDATE SET "
                "period_start = excluded.period_start, used = excluded.used, total = excluded.total",
                [(key_id, start, used, total, key_id) for key_id, (start, used, total) in usage.items()])


def key_rows(keys, usage: dict, now: float) -> list[dict]:
    """Each key as ``rbl key list`` and ``GET /v1/keys`` show it: never its text, its usage in the
    period in force (0 once that period is over)."""
    rows = []
    for key in keys:
        start, used, total = usage.get(key.id, (0, 0, 0))
        current = int(now // key.period * key.period)
        rows.append(dict(key.as_dict(), quota=key.quota_text() if key.quota is not None else None,
                         used=used if start == current else 0, total=total))
    return rows


def _changed(conn, stamp: str, actor: str, action: str, before: AccessKey | None, after: AccessKey) -> None:
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'keys'")
    # No subject: a key changes no DNS answer of a listing, so the patcher skips the row.
    append_audit(conn, [(stamp, actor, action, None, before.as_dict() if before else None, after.as_dict())])
