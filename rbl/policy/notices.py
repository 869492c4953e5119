"""Which notices a change causes, and for which vendor: the events of the outbox.

A vendor hears about what happens in its own space, nothing else:

- ``listed``: a listing that answers in its space (a single address in shared
  space, any listing in its dedicated or quarantine space) was added, or came
  back after it had ended: the subject, zone, the codes it answers, reason,
  category, first_seen, expires_at and, for a case, the SLA deadline;
- ``remediated``: its evidence changed an answer (block to throttle, until the
  shortened expiry);
- ``delisted``: removed (by the operator, a delisting request, a replaced
  source) or expired;
- ``overdue``: a case passed its SLA unremediated;
- ``tier``: its tier changed, with the numbers;
- ``escalated``: one of its shared ranges answers throttle-range, with the density
  (and ``delisted`` for the range when it no longer does).

:class:`Notices` is the store's hook (:attr:`rbl.store.database.Database.notices`):
it reads the changes a write transaction made from the audit log and writes
their events in that same transaction. :func:`observe` writes the events time
causes (expiry, overdue, tier, escalation) with the marks that say they were
said, in one transaction too, so nothing is said twice or never.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterable
from functools import lru_cache

import numpy as np

from rbl.addresses import BITS, DOMAIN, IP4, Subject, parse_subject
from rbl.errors import SubjectError
from rbl.policy.classify import Range
from rbl.policy.remediation import COOPERATIVE, microseconds
from rbl.policy.standing import Standing, range_ids, vendor_spans
from rbl.policy.vendors import Policy
from rbl.store import ListingStore
from rbl.store.cases import NONE
from rbl.store.database import parse_timestamp, timestamp
from rbl.store.outbox import Change, KeySet, append, changes_since, owe, owed, paid, read_mark, write_mark

Event = tuple[str, str, str, dict]  # vendor, type, at, fields


@lru_cache(maxsize=4096)
def _plus(text: str | None, delta: dt.timedelta) -> str | None:
    # An import's listings share a first_seen: strptime once, not once a listing.
    return timestamp(parse_timestamp(text) + delta) if text else None


class Notices:
    """The store's hook: the events of one write transaction's listing changes, for the vendors
    of ``policy`` (a policy, or a function giving the one in force: the server's changes)."""

    def __init__(self, policy: Policy | None | Callable[[], Policy | None]):
        self._policy = policy if callable(policy) else (lambda: policy)

    def __call__(self, store: ListingStore, conn: sqlite3.Connection, mark: int) -> None:
        policy = self._policy()
        if policy is None:  # no policy to say whose space it is: rbl serve says it later (owed)
            owe(conn, mark)
            return
        write_events(store, conn, policy, mark)


def write_events(store: ListingStore, conn: sqlite3.Connection, policy: Policy, mark: int,
                 until: int | None = None) -> int:
    """The events of the listing changes after audit row ``mark`` (up to ``until``), written on ``conn``."""
    if not policy.vendors:
        return 0
    rows, sets = changes_since(conn, mark, until)
    events: list[Event] = []
    tiers = _Tiers(conn)
    for change in rows:
        events += row_events(policy, change, tiers)
    for keyset in sets:
        events += set_events(store, policy, keyset, tiers)
    if events:
        append(conn, events)
    return len(events)


class _Tiers:
    """Each vendor's tier as last recorded (``vendor_days``), read once per transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn, self.known = conn, {}

    def __call__(self, vendor: str) -> str | None:
        if vendor not in self.known:
            row = self.conn.execute("SELECT tier FROM vendor_days WHERE vendor = ? ORDER BY day DESC LIMIT 1",
                                    [vendor]).fetchone()
            self.known[vendor] = row[0] if row else None
        return self.known[vendor]


def owner(policy: Policy, kind: str, net: int, plen: int) -> Range | None:
    """The vendor range a listing answers in, or None: no vendor's, an exclusion, a domain, or a
    CIDR in shared space (shared space lists single addresses only)."""
    if kind not in BITS:
        return None
    found = policy.classification.find(kind, net)
    if found is None or not found.vendor or found.space == "excluded":
        return None
    if found.space == "shared" and plen != BITS[kind]:
        return None
    return found


def _codes(policy: Policy, row: dict, found: Range, tier: str | None) -> list[dict]:
    codes = policy.listing.codes
    names = {value: name for name, value in codes.items()}
    code = row.get("code")
    if found.space == "quarantine":
        name = "quarantine"
    elif code in codes:
        name = code
    elif code:
        name = names.get(code, code)
    else:
        name = "block"
    if found.space == "shared" and name == "block" and tier == COOPERATIVE:
        name = "throttle"  # a cooperative vendor's shared addresses answer throttle
    return [{"name": name, "value": codes.get(name, name)}]


def _subject(row: dict) -> Subject | None:
    try:
        subject = parse_subject(row["subject"])
    except (SubjectError, KeyError):
        return None
    return None if subject.kind == DOMAIN else subject


def listed_fields(policy: Policy, row: dict, found: Range, tier: str | None, case: bool) -> dict:
    """``case``: the listing is a single address, a case with an SLA."""
    return {
        "subject": row["subject"], "zone": row["zone"], "codes": _codes(policy, row, found, tier),
        "reason": row.get("reason"), "category": row.get("category"), "source": row.get("source"),
        "first_seen": row.get("first_seen"), "expires_at": row.get("expires_at"),
        "sla_deadline": _plus(row.get("first_seen"), policy.listing.remediation.sla) if case else None,
        "space": found.space, "range": found.cidr,
    }


def _delisted(row: dict, reason: str, first_seen: str | None, found: Range) -> dict:
    """A ``delisted`` event's fields for a listing row (removed or expired)."""
    return {"subject": row["subject"], "zone": row["zone"], "reason": reason, "first_seen": first_seen,
            "space": found.space, "range": found.cidr}


def _ended(row: dict | None, at: str) -> bool:
    """Whether a listing row was not listed at ``at``: absent, removed, expired or an exclusion."""
    return row is None or row.get("state") != "active" or row.get("exclude", 0) != 0 \
        or (row.get("expires_at") is not None and row["expires_at"] <= at)


def row_events(policy: Policy, change: Change, tiers: Callable[[str], str | None]) -> list[Event]:
    """The events of one audited listing change."""
    after, before = change.after, change.before
    row = after or before
    subject = _subject(row) if row else None
    if subject is None:
        return []
    found = owner(policy, subject.kind, subject.net, subject.plen)
    if found is None:
        return []
    vendor = found.vendor
    if change.action == "remove":
        if _ended(before, change.at):
            return []  # it had expired already: that was said then
        return [(vendor, "delisted", change.at, _delisted(row, "removed", before.get("first_seen"), found))]
    if change.action == "remediate":
        out = [(vendor, "remediated", change.at, {
            "subject": row["subject"], "zone": row["zone"], "acted_at": after.get("remediated_at"),
            "codes": _codes(policy, after, found, tiers(vendor)), "expires_at": after.get("expires_at"),
            "space": found.space, "range": found.cidr})]
        if after.get("expires_at") is not None and after["expires_at"] <= change.at:
            # Acted long enough ago that the shortened expiry has passed: gone at once.
            out.append((vendor, "delisted", change.at, _delisted(row, "expired", after.get("first_seen"), found)))
        return out
    if after is not None and not _ended(after, change.at) and _ended(before, change.at):
        case = subject.plen == subject.bits
        return [(vendor, "listed", change.at, listed_fields(policy, after, found, tiers(vendor), case))]
    return []


def _unpack(keyset: KeySet) -> tuple[list[int], list[int]]:
    """The networks and prefix lengths of a packed key set (net bytes, then one plen byte)."""
    width = 5 if keyset.kind == IP4 else 17
    raw = np.frombuffer(keyset.keys, dtype=np.uint8).reshape(-1, width)
    plens = raw[:, -1].astype(np.int64)
    if keyset.kind == IP4:
        nets = np.frombuffer(raw[:, :4].tobytes(), dtype=">u4").astype(np.int64)
        return nets, plens
    body = raw[:, :16].tobytes()
    return np.array([int.from_bytes(body[i:i + 16], "big") for i in range(0, len(body), 16)], dtype=object), plens


def set_events(store: ListingStore, policy: Policy, keyset: KeySet, tiers: Callable[[str], str | None]) -> list[Event]:
    """The events of one bulk import's added or removed keys: only those in a vendor's space are
    read back (a big list is mostly no vendor's), found with one search over all keys."""
    if keyset.kind == DOMAIN or keyset.change == "changed" or not keyset.keys:
        return []
    nets, plens = _unpack(keyset)
    classification = policy.classification
    ids = range_ids(classification, keyset.kind, nets)
    vendor_range = np.array([False] + [bool(r.vendor) and r.space != "excluded" for r in classification.ranges[1:]])
    shared = np.array([False] + [r.space == "shared" for r in classification.ranges[1:]])
    wanted = vendor_range[ids] & (~shared[ids] | (plens == BITS[keyset.kind]))
    picked = np.flatnonzero(wanted)
    rows = _rows_at(store, keyset, nets, plens, ids, picked)
    out: list[Event] = []
    for i in picked:
        row = rows.get((int(nets[i]), int(plens[i])))
        if row is None:
            continue
        found = classification.ranges[int(ids[i])]
        if keyset.change == "added":
            if not _ended(row, keyset.at):
                out.append((found.vendor, "listed", keyset.at,
                            listed_fields(policy, row, found, tiers(found.vendor), int(plens[i]) == BITS[keyset.kind])))
        else:
            out.append((found.vendor, "delisted", keyset.at, _delisted(row, "removed", row.get("first_seen"), found)))
    return out


def _rows_at(store: ListingStore, keyset: KeySet, nets, plens, ids, picked) -> dict[tuple[int, int], dict]:
    """The listings under the picked keys, read with one range scan of the key index per vendor range
    they lie in (not one lookup a key): (net, plen) -> the row as :meth:`Listing.as_dict` shows it."""
    width = 4 if keyset.kind == IP4 else 16
    out: dict[tuple[int, int], dict] = {}
    for rid in np.unique(ids[picked]):
        inside = picked[ids[picked] == rid]
        lo, hi = int(nets[inside].min()), int(nets[inside].max())
        wanted = {(int(nets[i]), int(plens[i])) for i in inside}
        for listing in store.listings_between(keyset.zone, keyset.kind, lo.to_bytes(width, "big"),
                                              hi.to_bytes(width, "big")):
            key = (int.from_bytes(listing.net, "big"), listing.plen)
            if key in wanted:
                out[key] = listing.as_dict()
    return out


# -- what time causes ---------------------------------------------------------------------------


def overdue_every(policy: Policy) -> float:
    """Seconds between looks for overdue cases: a tenth of the SLA, from 1 s to 30 s (a look
    reads the cases that fell due since the last, from the vendors' spans of the key index)."""
    return max(1.0, min(30.0, policy.listing.remediation.sla.total_seconds() / 10))


def observe(store: ListingStore, policy: Policy, zones: Iterable[str], now: dt.datetime,
            standing: Standing | None = None, dense: dict[str, set[str]] | None = None,
            overdue: bool = True) -> int:
    """Write the events time caused since the last call: listings that expired, cases that went
    overdue (with ``overdue``), and (given the standing and the dense ranges of the last compile)
    tiers and escalations that moved. One transaction with the marks; returns how many events."""
    zones = tuple(zones)
    if not policy.vendors:
        return 0
    with store.transaction(answers=False) as conn:
        count = 0
        for owed_id, mark, until in owed(conn):  # changes made while their writer had no policy
            count += write_events(store, conn, policy, mark, until)
            paid(conn, owed_id)
        events = _expired(conn, policy, now) + (_overdue(store, conn, policy, zones, now) if overdue else [])
        if standing is not None:
            events += _tiers(conn, standing)
        if dense is not None:
            events += _escalations(store, conn, policy, zones, dense, now)
        if events:
            append(conn, events)
        return count + len(events)


def _cursor(conn: sqlite3.Connection, name: str, now: dt.datetime) -> int:
    value = read_mark(conn, "", name)
    write_mark(conn, "", name, str(int(now.timestamp())))
    return int(value) if value is not None else int(now.timestamp())


def _expired(conn: sqlite3.Connection, policy: Policy, now: dt.datetime) -> list[Event]:
    since, until = _cursor(conn, "expired", now), int(now.timestamp())
    if until <= since:
        return []
    out: list[Event] = []
    rows = conn.execute(
        "SELECT zone, subject, kind, net, plen, first_seen, expires_at FROM listings INDEXED BY listings_expiry "
        "WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at > ? AND expires_at <= ? AND exclude = 0 "
        "ORDER BY expires_at", [since, until]).fetchall()
    for zone, subject, kind, net, plen, first_seen, expires_at in rows:
        if kind == DOMAIN:
            continue
        found = owner(policy, kind, int.from_bytes(net, "big"), plen)
        if found is None:
            continue
        at = timestamp(dt.datetime.fromtimestamp(expires_at, dt.timezone.utc))
        seen = timestamp(dt.datetime.fromtimestamp(first_seen, dt.timezone.utc))
        out.append((found.vendor, "delisted", at, _delisted({"subject": subject, "zone": zone}, "expired", seen, found)))
    return out


def _overdue(store: ListingStore, conn: sqlite3.Connection, policy: Policy, zones: tuple[str, ...],
             now: dt.datetime) -> list[Event]:
    since = _cursor(conn, "overdue", now)
    sla = policy.listing.remediation.sla
    until = int(now.timestamp())
    if until <= since:
        return []
    spans = vendor_spans(policy.classification, sorted(policy.vendors))
    out: list[Event] = []
    # Only cases opened in (since - sla, now - sla] fall due now.
    start = dt.datetime.fromtimestamp(since, dt.timezone.utc) - sla
    for zone in zones:
        for part in store.case_columns((zone,), start, now, active=True, within=spans, until=now - sla):
            due = part.opened + int(sla.total_seconds()) * 1_000_000
            late = (due > since * 1_000_000) & (due <= microseconds(now)) & part.active & ~part.disputed \
                & ((part.remediated == NONE) | (part.remediated > due))
            ids = range_ids(policy.classification, part.kind, part.addresses)
            for i in np.flatnonzero(late):
                found = policy.classification.ranges[int(ids[i])]
                if found is None or not found.vendor or found.space == "excluded":
                    continue
                subject = Subject(part.kind, int(part.addresses[i]), BITS[part.kind]).text
                opened = dt.datetime.fromtimestamp(int(part.opened[i]) // 1_000_000, dt.timezone.utc)
                at = timestamp(opened + sla)
                out.append((found.vendor, "overdue", at, {"subject": subject, "zone": zone,
                                                          "first_seen": timestamp(opened), "sla_deadline": at,
                                                          "space": found.space, "range": found.cidr}))
    return sorted(out, key=lambda e: e[2])


def _tiers(conn: sqlite3.Connection, standing: Standing) -> list[Event]:
    out: list[Event] = []
    stamp = None
    for vendor, score in sorted(standing.scores.items()):
        was = read_mark(conn, vendor, "tier")
        if was == score.tier:
            continue
        write_mark(conn, vendor, "tier", score.tier)
        if was is None:
            continue  # the first scoring: nothing moved
        stamp = stamp or timestamp(dt.datetime.now(dt.timezone.utc))
        out.append((vendor, "tier", stamp, {"tier": score.tier, "previous": was, "score": score.score,
                                            "reason": score.reason, "numbers": score.as_dict()}))
    return out


def _escalations(store: ListingStore, conn: sqlite3.Connection, policy: Policy, zones: tuple[str, ...],
                 dense: dict[str, set[str]], now: dt.datetime) -> list[Event]:
    """``dense``: per zone, the CIDRs of the ranges that answer throttle-range."""
    out: list[Event] = []
    stamp = timestamp(now)
    codes = policy.listing.codes
    by_cidr = {r.cidr: r for r in policy.classification.ranges[1:] if r is not None and r.vendor}
    for vendor in sorted(policy.vendors):
        was = set(json.loads(read_mark(conn, vendor, "escalated") or "[]"))
        now_dense = {f"{zone} {cidr}" for zone, cidrs in dense.items() for cidr in cidrs
                     if cidr in by_cidr and by_cidr[cidr].vendor == vendor}
        if was == now_dense:
            continue
        write_mark(conn, vendor, "escalated", json.dumps(sorted(now_dense)))
        for item in sorted(now_dense - was):
            zone, cidr = item.split(" ", 1)
            found = by_cidr[cidr]
            unit = BITS[found.kind] if found.kind == IP4 else policy.listing.escalation.prefix(found.kind)
            listed = store.count_units(zone, found.kind, found.net, found.plen, unit, now)
            units = 1 << max(0, unit - found.plen)
            out.append((vendor, "escalated", stamp, {
                "subject": cidr, "zone": zone, "range": cidr, "space": found.space, "listed": listed,
                "units": units, "density": listed / units, "threshold": policy.listing.remediation.density,
                "codes": [{"name": "throttle-range", "value": codes.get("throttle-range")}]}))
        for item in sorted(was - now_dense):
            zone, cidr = item.split(" ", 1)
            found = by_cidr.get(cidr)
            out.append((vendor, "delisted", stamp, {"subject": cidr, "zone": zone, "reason": "below density",
                                                    "range": cidr, "space": found.space if found else "shared"}))
    return out
