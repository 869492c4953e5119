"""Access keys in query names, as a DNS worker checks them: ``2.0.0.127.KEY.bl.example``.

A zone with ``keys: required`` or ``optional`` (its sub-zones follow it) reads
the label just above its origin as a key when it has a key's shape (26 base32
characters; no address label or top-level domain has it). The worker holds
every key's hash (:class:`KeyTable`, from the table file the primary writes);
a key seen for the first time is hashed once and, when it is in force, opens a
slot in its zone family's dictionary. From then on a keyed query costs the
fast paths one dictionary lookup and one add to the key's count.

Keys past their quota come from the primary (:mod:`rbl.dns.quota`), which sums
every worker's counts: :meth:`KeyTable.set_over` closes them at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from rbl.errors import RblError
from rbl.store.keys import quota_text

KEY_LABEL = rb"\x1a[a-zA-Z2-7]{26}"  # a key label on the wire: length 26, base32 in any case
_KEY_TEXT = re.compile(rb"^[a-zA-Z2-7]{26}$")

# Why a keyed or keyless query is not answered from the listings (the TXT of the error answer).
OK, REQUIRED, UNKNOWN, REVOKED, NOT_HERE, OVER, RESOLVER = range(7)
OVER_CODE = "127.255.255.255"  # past its quota: Spamhaus DQS's "excessive number of queries"


def is_key(label: bytes) -> bool:
    return len(label) == 26 and _KEY_TEXT.match(label) is not None


class KeyTable:
    """Every key's hash, the keys past their quota, and per zone family the keys seen and open.

    ``open(family)`` dictionaries and the per-key count cells are mutated in
    place, never replaced: the fast paths bind them once per snapshot.
    """

    def __init__(self, entries: list[dict] | None = None):
        self._families: dict[str, dict[bytes, list[int]]] = {}
        self.cells: dict[int, list[int]] = {}  # key id -> [queries answered since start, key id]
        self.by_hash: dict[bytes, dict] = {}
        self.over: frozenset[int] = frozenset()
        self.replace(entries or [])

    def open(self, family: str) -> dict[bytes, list[int]]:
        """The keys seen in force under a zone family (a zone and its sub-zones), by lower-case label."""
        return self._families.setdefault(family, {})

    def replace(self, entries: list[dict]) -> None:
        """A new table (keys created or revoked): every family forgets what it had seen."""
        self.by_hash = {bytes.fromhex(e["hash"]): e for e in entries}
        for seen in self._families.values():
            seen.clear()

    def set_over(self, ids) -> None:
        """These keys are past their quota (the primary's sum); the rest are not."""
        self.over = frozenset(ids)
        for seen in self._families.values():
            for label in [label for label, cell in seen.items() if cell[1] in self.over]:
                del seen[label]

    def check(self, label: bytes, family: str) -> tuple[list[int] | None, int]:
        """(the key's count cell, OK) or (None, why not) for a key label under a zone family."""
        label = label.lower()
        seen = self.open(family)
        cell = seen.get(label)
        if cell is not None:
            return cell, OK
        entry = self.by_hash.get(hashlib.sha256(label).digest())
        if entry is None:
            return None, UNKNOWN
        if entry["revoked"]:
            return None, REVOKED
        if entry["zones"] is not None and family not in entry["zones"]:
            return None, NOT_HERE
        if entry["id"] in self.over:
            return None, OVER
        cell = self.cells.setdefault(entry["id"], [0, entry["id"]])
        seen[label] = cell  # only keys in force get here: an attacker's random keys take no memory
        return cell, OK

    def quota_text(self, label: bytes) -> str:
        entry = self.by_hash.get(hashlib.sha256(label.lower()).digest()) or {}
        return quota_text(entry.get("quota"), entry.get("period", 86400))

    def totals(self) -> dict[int, int]:
        """Queries answered under each key since this worker started."""
        return {key_id: cell[0] for key_id, cell in self.cells.items() if cell[0]}


def read_key_table(path: str | Path) -> list[dict]:
    """The table file the primary writes (``keys.json`` in the serving folder).

    :raises RblError: when it cannot be read as one.
    """
    try:
        data = json.loads(Path(path).read_text())
        entries = data["keys"]
        for entry in entries:
            bytes.fromhex(entry["hash"])
            entry["id"], entry["revoked"], entry["zones"]  # noqa: B018 - present, or KeyError
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RblError(f"{path}: not a key table: {exc}") from None
    return entries


def error_text(reason: int, origin: str, key_info: str, quota: str = "") -> str:
    """The TXT of a key error answer: what is wrong, and where to get a key."""
    what = {
        REQUIRED: f"{origin} answers only queries with an access key: ask for 2.0.0.127.KEY.{origin}",
        UNKNOWN: f"unknown access key for {origin}",
        REVOKED: f"this access key for {origin} was revoked",
        NOT_HERE: f"this access key does not open {origin}",
        OVER: f"this access key is past its quota of {quota} queries for {origin} until the period rolls over",
        RESOLVER: f"{origin} does not answer queries through public resolvers: query from your own resolver"
                  " or with an access key",
    }[reason]
    return f"{what}; {key_info}" if key_info else what
