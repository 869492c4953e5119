"""Evidence submissions in the store: all items of one submission, or none; retries answered once.

The items come checked by :func:`rbl.policy.evidence.parse_items`; what accepted
evidence does to listings (which zones, which space is shared, how long a
remediated listing lasts) comes in as a :class:`Remediation` the caller builds
from the policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rbl.addresses import BITS, Subject
from rbl.errors import StoreError
from rbl.store.database import append_audit, epoch, timestamp
from rbl.store.delisting import DelistStore
from rbl.store.listings import ListingStore


@dataclass(frozen=True)
class Remediation:
    """What accepted evidence does to listings: in which zones, where space is shared, for how long."""

    zones: tuple[str, ...]
    shared: Callable[[str, int], bool]  # (kind, address) -> in shared space
    lasts: dt.timedelta  # expiry.remediated: the listing ends this long after the vendor acted
    signers: tuple[str, ...] = ()  # the zones (dkim: true) a terminated tenant's identity is listed in
    terminated: dt.timedelta = dt.timedelta(days=30)  # identity.terminated: for this long after the vendor acted


class EvidenceItem(Protocol):
    """One evidence item as the store keeps it (:class:`rbl.policy.evidence.Item`)."""

    subject: Subject  # an address or CIDR
    action: str
    reference: str
    acted_at: dt.datetime
    identity: str | None


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

    def submit(self, vendor: str, token_id: int, items: list[EvidenceItem], body_hash: str, actor: str,
               idempotency_key: str | None = None, remediation: Remediation | None = None) -> Submission:
        """Store one submission in one transaction, with an audit row per item.

        With ``remediation``, the listed addresses an item covers in the vendor's
        shared space answer throttle from now on, until the shortened expiry.
        """
        stamp = timestamp(self.store.clock())
        # answers=False: most evidence (a retry, an address not listed, dedicated space) changes
        # no answer and must not cost a new snapshot; a remediated or disputed listing does.
        with self.store.transaction(answers=False) as conn:
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
                append_audit(conn, [(stamp, actor, "evidence", subject.text, None, record)])
                if remediation is not None:
                    if item.action == "false_positive" and item.identity:
                        # Not this tenant: the identity leaves the listing; the address stays listed.
                        changed = self._clear_identity(conn, item, remediation, stamp, actor)
                    elif item.action == "false_positive":
                        changed = self._dispute(conn, vendor, item, remediation, stamp, actor)
                    else:
                        changed = self._remediate(conn, item, remediation, stamp, actor)
                        if item.action == "tenant_terminated" and item.identity:
                            changed += self._list_signer(conn, vendor, item, remediation, actor)
                    if changed:
                        self.store.answers_changed(conn)
        return Submission(submission, vendor, len(items), ids, False)

    def _covered(self, item: EvidenceItem, zones: tuple[str, ...], stamp: str) -> list:
        """The active single-address listings in ``zones`` that the item's subject covers."""
        subject = item.subject
        bits = BITS[subject.kind]
        width = bits // 8
        lo = subject.net.to_bytes(width, "big")
        hi = (subject.net | ((1 << (bits - subject.plen)) - 1)).to_bytes(width, "big")
        marks = ",".join("?" * len(zones))
        return self.store._rows(
            f"INDEXED BY listings_key WHERE zone IN ({marks}) AND kind = ? AND net BETWEEN ? AND ? AND plen = ? "
            "AND exclude = 0 AND state = 'active' AND (expires_at IS NULL OR expires_at > ?)",
            [*zones, subject.kind, lo, hi, bits, epoch(stamp)])

    def _remediate(self, conn, item: EvidenceItem, remediation: Remediation, stamp: str, actor: str) -> int:
        """DESIGN section 4: shared space, evidence accepted for this address: throttle until the
        shortened expiry (acted_at + expiry.remediated), then gone. Other space is not touched.
        Returns how many listings it changed."""
        changed = 0
        acted = timestamp(item.acted_at)
        ends = timestamp(item.acted_at + remediation.lasts)
        for old in self._covered(item, remediation.zones, stamp):
            listed = max(old.first_seen, old.relisted_at or "")
            if listed > acted or not remediation.shared(old.kind, int.from_bytes(old.net, "big")):
                continue  # listed (again) after the vendor acted: new abuse, not remediated; or not shared space
            fixed = old.remediated_at is not None and (old.relisted_at is None or old.relisted_at <= old.remediated_at)
            when = min(old.remediated_at, acted) if fixed else acted  # a second report does not make it later
            expires = ends if old.expires_at is None else min(old.expires_at, ends)
            if (old.code, old.remediated_at, old.expires_at) == ("throttle", when, expires):
                continue  # the same report again: nothing changes, no snapshot
            conn.execute("UPDATE listings SET code = 'throttle', remediated_at = ?, expires_at = ? WHERE id = ?",
                         [epoch(when), epoch(expires), old.id])
            after = dict(old.as_dict(), code="throttle", remediated_at=when, expires_at=expires)
            append_audit(conn, [(stamp, actor, "remediate", old.subject, old.as_dict(), after)])
            changed += 1
        return changed

    def _list_signer(self, conn, vendor: str, item: EvidenceItem, remediation: Remediation, actor: str) -> int:
        """A terminated tenant's signing domain, listed in the DKIM zones until ``terminated`` after the
        vendor acted: the abuser is known when it signs from another address or cloud."""
        from rbl.addresses import parse_domain
        from rbl.store.listings import Entry

        left = item.acted_at + remediation.terminated - self.store.clock()
        if left <= dt.timedelta(0) or not remediation.signers:
            return 0
        entry = Entry(parse_domain(item.identity))
        for zone in remediation.signers:
            self.store.add_in(conn, [entry], zone=zone, actor=actor, expires=left, source=f"vendor:{vendor}",
                              reason=f"tenant_terminated {item.reference} at {item.subject.text}")
        return len(remediation.signers)

    def _clear_identity(self, conn, item: EvidenceItem, remediation: Remediation, stamp: str, actor: str) -> int:
        """A false positive about one identity: it leaves the listings the item covers (audited);
        returns how many changed."""
        changed = 0
        for old in self._covered(item, remediation.zones, stamp):
            if item.identity not in old.identity_list:
                continue
            left = [name for name in old.identity_list if name != item.identity]
            conn.execute("UPDATE listings SET identities = ? WHERE id = ?", ["\n".join(left) or None, old.id])
            after = dict(old.as_dict(), identities=left or None)
            if not left:
                del after["identities"]
            append_audit(conn, [(stamp, actor, "identity-remove", old.subject, old.as_dict(), after)])
            changed += 1
        return changed

    def _dispute(self, conn, vendor: str, item: EvidenceItem, remediation: Remediation, stamp: str, actor: str) -> int:
        """A false positive report: the case leaves the vendor's score until the operator reviews
        it, as a dispute in the delisting queue; the listing itself stays (only the operator
        delists). Returns how many it marked."""
        changed = 0
        for old in self._covered(item, remediation.zones, stamp):
            if old.disputed_at is not None:
                continue
            conn.execute("UPDATE listings SET disputed_at = ? WHERE id = ?", [epoch(stamp), old.id])
            after = dict(old.as_dict(), disputed_at=stamp)
            append_audit(conn, [(stamp, actor, "dispute", old.subject, old.as_dict(), after)])
            DelistStore(self.store).open_dispute(conn, old, vendor, item.reference, stamp, actor)
            changed += 1
        return changed
