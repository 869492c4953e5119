"""Delisting requests in the store: queued by anyone, closed by the operator, each change audited.

Opening a request changes no answer. Closing one as ``delisted`` removes the
requested subject's listing through :meth:`ListingStore.remove_in` (the same
rows and audit entries as ``rbl listing remove``) in the transaction that
closes it, and refuses when a wider listing would still list the subject
(:func:`still_listing`: how exclusions cut holes in listings, a fact of the
listings themselves, not a rule of the policy). The request comes checked by
:func:`rbl.policy.delisting.parse_request`.

A vendor's false positive report (evidence ``false_positive``) queues a
*dispute* beside the requests (:meth:`DelistStore.open_dispute`), closed the
same way: delisted removes the listing; rejected keeps it and clears its
false positive mark, so the case counts in the vendor's score again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Protocol

from rbl.addresses import BOTH, DOMAIN, EXACT, SUBDOMAINS, Subject, parse_subject
from rbl.errors import StoreError
from rbl.store.database import append_audit, timestamp
from rbl.store.listings import ListingStore

_COLUMNS = ("id, zone, subject, reason, email, client, listed_as, created_at, state, resolution, note, "
            "closed_at, closed_by, kind")


class Request(Protocol):
    """What a requester asked, as the store queues it (:class:`rbl.policy.delisting.Request`)."""

    subject: Subject
    zone: str
    reason: str
    email: str


class NoSuchRequest(StoreError):
    """No delisting request has that id."""


class AlreadyClosed(StoreError):
    """The request was closed before."""


class StillListed(StoreError):
    """Closing as delisted would leave the subject listed by a wider listing."""


@dataclass(frozen=True, slots=True)
class DelistRequest:
    id: int
    zone: str
    subject: str
    reason: str
    email: str
    client: str
    listed_as: dict
    created_at: str
    state: str
    resolution: str | None
    note: str | None
    closed_at: str | None
    closed_by: str | None
    kind: str = "request"  # request: someone asked for review; dispute: a vendor reported a false positive

    def as_dict(self) -> dict:
        return asdict(self)

    def audited(self) -> dict:
        """The row for the append-only audit table, without the requester's email and
        address: personal data stays in delist_requests, where it can be erased."""
        return {k: v for k, v in self.as_dict().items() if k not in ("email", "client")}

    @property
    def vendor(self) -> str | None:
        """The vendor that disputed the listing, for a dispute."""
        return self.client.removeprefix("vendor:") if self.kind == "dispute" else None


def _audit(conn, stamp: str, actor: str, action: str, before: DelistRequest | None, after: DelistRequest) -> None:
    # No subject: a request changes no DNS answer, so the server's patcher skips the row.
    append_audit(conn, [(stamp, actor, action, None, before.audited() if before else None, after.audited())])


class DelistStore:
    def __init__(self, store: ListingStore):
        self.store = store

    def _rows(self, sql: str, params: list) -> list[DelistRequest]:
        rows = self.store.db.execute(f"SELECT {_COLUMNS} FROM delist_requests {sql}", params).fetchall()
        return [DelistRequest(*row[:6], json.loads(row[6]), *row[7:]) for row in rows]

    def get(self, request_id: int) -> DelistRequest | None:
        rows = self._rows("WHERE id = ?", [request_id])
        return rows[0] if rows else None

    def list(self, state: str | None = "open", limit: int = 1000, kind: str | None = None) -> list[DelistRequest]:
        """Requests by id, oldest first: open ones (the operator's queue), closed ones, or all (None);
        of one kind (requests or disputes), or both (None)."""
        where, params = [], []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        return self._rows(f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY id LIMIT ?", [*params, limit])

    def open_dispute(self, conn, listing, vendor: str, reference: str, stamp: str, actor: str) -> None:
        """Queue a vendor's false positive report on ``listing`` for the operator, in the caller's
        transaction (the one that marks the listing disputed); one open dispute per listing."""
        if conn.execute("SELECT 1 FROM delist_requests WHERE state = 'open' AND kind = 'dispute' AND zone = ? "
                        "AND subject = ?", [listing.zone, listing.subject]).fetchone():
            return
        cursor = conn.execute(
            "INSERT INTO delist_requests (zone, subject, reason, email, client, listed_as, created_at, kind) "
            "VALUES (?, ?, ?, '', ?, ?, ?, 'dispute')",
            [listing.zone, listing.subject, f"false positive reported by {vendor} (ticket {reference})",
             f"vendor:{vendor}", json.dumps({"codes": [], "listings": [listing.subject], "code": listing.code}),
             stamp])
        _audit(conn, stamp, actor, "dispute-open", None, self.get(cursor.lastrowid))

    def create(self, request: Request, client: str, listed_as: dict, actor: str) -> tuple[DelistRequest, bool]:
        """Queue a request; (the request, whether it is new).

        The same subject, zone and email while a request is open is the same
        request: a requester who presses the button twice gets one id.
        """
        stamp = timestamp(self.store.clock())
        with self.store.transaction(answers=False) as conn:
            row = conn.execute("SELECT id FROM delist_requests WHERE state = 'open' AND zone = ? AND subject = ? "
                               "AND email = ?", [request.zone, request.subject.text, request.email]).fetchone()
            if row is not None:
                return self.get(row[0]), False
            cursor = conn.execute(
                "INSERT INTO delist_requests (zone, subject, reason, email, client, listed_as, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [request.zone, request.subject.text, request.reason, request.email, client, json.dumps(listed_as),
                 stamp])
            made = self.get(cursor.lastrowid)
            _audit(conn, stamp, actor, "delist-request", None, made)
        return made, True

    def close(self, request_id: int, resolution: str, note: str, actor: str) -> tuple[DelistRequest, list[str]]:
        """Close a request; with ``delisted``, remove the subject's listing in the same transaction.

        Returns the closed request and the subjects whose listings were removed.

        :raises NoSuchRequest, AlreadyClosed: and nothing changes.
        :raises StillListed: naming the wider listings that would still list the
            subject; remove those or add an exclusion first. Nothing changes.
        """
        now = self.store.clock()
        stamp = timestamp(now)
        removed: list[str] = []
        with self.store.transaction(answers=resolution == "delisted") as conn:
            old = self.get(request_id)
            if old is None:
                raise NoSuchRequest(f"no delisting request {request_id}")
            if old.state != "open":
                raise AlreadyClosed(f"delisting request {request_id} was closed {old.resolution} at {old.closed_at} "
                                    f"by {old.closed_by}")
            if resolution == "delisted":
                subject = parse_subject(old.subject)
                exact = self.store.get(old.zone, subject)
                if exact is not None and exact.state == "active" and not exact.exclude:
                    self.store.remove_in(conn, [subject], zone=old.zone, actor=actor, stamp=stamp)
                    removed.append(exact.subject)
                left = still_listing(self._covering(old.zone, subject, stamp))
                if left:
                    raise StillListed(
                        f"{old.subject} is still listed in {old.zone} by {', '.join(left)}: remove "
                        f"{'that' if len(left) == 1 else 'those'} (rbl listing remove) or exclude {old.subject} "
                        "(rbl listing add --exclude), then close the request")
            elif old.kind == "dispute":
                self._reject_dispute(conn, old, stamp, actor)
            conn.execute("UPDATE delist_requests SET state = 'closed', resolution = ?, note = ?, closed_at = ?, "
                         "closed_by = ? WHERE id = ?", [resolution, note, stamp, actor, request_id])
            new = self.get(request_id)
            _audit(conn, stamp, actor, "delist-close", old, new)
        return new, removed

    def _reject_dispute(self, conn, dispute: DelistRequest, stamp: str, actor: str) -> None:
        """The listing stays and is the vendor's case again: its false positive mark is cleared (audited)."""
        old = self.store.get(dispute.zone, parse_subject(dispute.subject))
        if old is None or old.disputed_at is None:
            return
        conn.execute("UPDATE listings SET disputed_at = NULL WHERE id = ?", [old.id])
        after = {k: v for k, v in old.as_dict().items() if k != "disputed_at"}
        append_audit(conn, [(stamp, actor, "dispute-reject", old.subject, old.as_dict(), after)])
        # No answer changes by itself, but the case counts in the vendor's score again, which
        # may move its tier: servers build for it.
        self.store.answers_changed(conn)

    def _covering(self, zone: str, subject: Subject, stamp: str) -> list:
        return [row for row in self.store.show(subject, zone=zone)
                if row.expires_at is None or row.expires_at > stamp]


def _specificity(row) -> tuple:
    """How narrowly a listing covers: the longer prefix, or for domains the deeper and narrower name."""
    if row.kind != DOMAIN:
        return (row.plen,)
    base = parse_subject(row.subject)
    return (base.domain.count("."), {EXACT: 2, SUBDOMAINS: 1, BOTH: 0}[base.cover])


def still_listing(covering: list) -> list[str]:
    """Which of the listings covering a subject still list it (as in the snapshot: an
    exclusion at least as narrow cuts a hole in a wider listing).

    ``covering`` are the active, unexpired listings that cover the subject.
    """
    holes = [_specificity(row) for row in covering if row.exclude]
    return [row.subject for row in covering
            if not row.exclude and not any(hole >= _specificity(row) for hole in holes)]
