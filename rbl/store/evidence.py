"""Evidence submissions in the store: all items of one submission, or none; retries answered once."""

from __future__ import annotations

import json
from dataclasses import dataclass

from rbl.errors import StoreError
from rbl.policy.evidence import Item
from rbl.store.listings import ListingStore, timestamp


class IdempotencyConflict(StoreError):
    """The Idempotency-Key was used before for a different body."""


@dataclass(frozen=True)
class Submission:
    id: int
    vendor: str
    items: int
    evidence: list[int]
    replayed: bool  # the same key and body came before: nothing new was stored


class EvidenceStore:
    def __init__(self, store: ListingStore):
        self.store = store

    def submit(self, vendor: str, token_id: int, items: list[Item], body_hash: str, actor: str,
               idempotency_key: str | None = None) -> Submission:
        """Store one submission in one transaction, with an audit row per item."""
        stamp = timestamp(self.store.clock())
        with self.store.transaction() as conn:
            if idempotency_key is not None:
                row = conn.execute("SELECT id, body_hash, items FROM submissions WHERE vendor = ? AND idempotency_key = ?",
                                   [vendor, idempotency_key]).fetchone()
                if row is not None:
                    if row[1] != body_hash:
                        raise IdempotencyConflict(f"Idempotency-Key {idempotency_key!r} was used for another body")
                    ids = [r[0] for r in conn.execute("SELECT id FROM evidence WHERE submission = ? ORDER BY id",
                                                       [row[0]])]
                    return Submission(row[0], vendor, row[2], ids, True)
            cursor = conn.execute(
                "INSERT INTO submissions (vendor, token_id, idempotency_key, body_hash, received_at, items) "
                "VALUES (?, ?, ?, ?, ?, ?)", [vendor, token_id, idempotency_key, body_hash, stamp, len(items)])
            submission = cursor.lastrowid
            ids = []
            for item in items:
                subject = item.subject
                record = {"vendor": vendor, "subject": subject.text, "action": item.action,
                          "reference": item.reference, "acted_at": timestamp(item.acted_at),
                          "identity": item.identity, "submission": submission}
                cursor = conn.execute(
                    "INSERT INTO evidence (submission, vendor, subject, kind, net, plen, action, reference, acted_at, "
                    "identity, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [submission, vendor, subject.text, subject.kind, subject.packed, subject.plen, item.action,
                     item.reference, record["acted_at"], item.identity, stamp])
                ids.append(cursor.lastrowid)
                conn.execute("INSERT INTO audit (at, actor, action, subject, before, after) VALUES (?, ?, ?, ?, ?, ?)",
                             [stamp, actor, "evidence", subject.text, None, json.dumps(record)])
        return Submission(submission, vendor, len(items), ids, False)

    def of_vendor(self, vendor: str) -> list[dict]:
        rows = self.store.db.execute(
            "SELECT id, submission, subject, action, reference, acted_at, identity, received_at FROM evidence "
            "WHERE vendor = ? ORDER BY id", [vendor])
        keys = ("id", "submission", "subject", "action", "reference", "acted_at", "identity", "received_at")
        return [dict(zip(keys, row)) for row in rows]
