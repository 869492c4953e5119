"""Where snapshots come from: the store and the policy and zone files, compiled or patched.

A :class:`SnapshotSource` remembers what its current snapshot was built from
(the store's generation, the files' fingerprints, the last audit row, the
vendors' tiers) and makes the next one: a patch where only listings changed, a
full compile when files, tiers, dense ranges or the clock call for it. While
the files are broken it keeps compiling listings under the last good ones.
It writes nothing: ``rbl serve`` (:mod:`rbl.primary`) and ``rbl export``
decide where snapshots go.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from rbl.addresses import BITS
from rbl.errors import RblError
from rbl.policy.remediation import NEGLIGENT
from rbl.policy.standing import Standing, density_needed, listed_counts, vendor_scores, vendor_spans
from rbl.policy.vendors import Policy, load_policy, policy_files
from rbl.store import ListingStore
from rbl.store.database import timestamp
from rbl.store.history import VendorHistory
from rbl.zone.compile import compile_snapshot, patch_tenant_zone
from rbl.zone.config import load_zones
from rbl.zone.patch import Changes, patch_zone
from rbl.zone.snapshot import Snapshot

log = logging.getLogger("rbl")

REFRESH_SECONDS = 300  # recompile anyway, as decisions depend on time
STANDING_SECONDS = 5.0  # after a change, the vendors' tiers are scored again at most this often


class SnapshotSource:
    """The store, the files and the snapshot built from them."""

    def __init__(self, db: str, policy: str, zones: str):
        self.db_path, self.policy_dir, self.zones_dir = db, policy, zones
        self.store = ListingStore(db)
        self.current: Snapshot | None = None  # the last built: the next patch starts from it
        # The one the servers answer from, set by whoever publishes it (rbl serve, once the
        # workers have its file): the HTTP API and metrics report this one, never a snapshot
        # still being written.
        self.served: Snapshot | None = None
        self._policy: Policy | None = None
        self._zones: list = []
        self._broken: tuple | None = None  # the files' fingerprint while they fail to load
        self._audit_id = 0  # changes up to this audit row are in the current snapshot
        self._seen: tuple | None = None
        self._next_expiry: str | None = None
        self._built_at = 0.0
        self.standing = None  # the vendors' tiers the current snapshot was compiled with
        # Per zone that serves listings, the CIDRs answering throttle-range as the last full
        # compile found them (None until one ran here: a kept snapshot does not say).
        self.dense: dict[str, set[str]] | None = None
        self._scored_at = 0.0
        self._scoring = 0.0  # seconds the last scoring took
        self._recorded = None  # the vendors' day last written to their history
        self.last_kind = "full"  # of the last snapshot built: full or patch

    def _fingerprint(self, policy: Policy | None = None) -> tuple:
        # The policy's files, the feed files it read, and the zone files.
        policy = policy or self._policy
        feeds = policy.files if policy is not None else []
        return self.store.generation(), _stats([*self._files(), *feeds])

    def _files(self) -> list[Path]:
        return [*policy_files(self.policy_dir), *sorted(Path(self.zones_dir).glob("*.yaml"))]

    def built_from(self) -> dict:
        """What the current snapshot was built from, as JSON: see :meth:`unchanged_since`."""
        generation, files = self._seen
        return {"generation": generation, "files": [list(f) for f in files], "next_expiry": self._next_expiry}

    def unchanged_since(self, built_from: dict | None) -> bool:
        """Whether a snapshot built from ``built_from`` would be built the same now (before any is
        built here): the same store generation and files, and no listing expired since."""
        if not isinstance(built_from, dict):
            return False
        try:
            files = tuple(tuple(f) for f in built_from["files"])
            expiry = built_from["next_expiry"]
            generation = built_from["generation"]
        except (KeyError, TypeError):
            return False
        if _stats([Path(f[0]) for f in files]) != files or {str(p) for p in self._files()} - {f[0] for f in files}:
            return False
        if expiry is not None and timestamp(self.store.clock()) >= expiry:
            return False
        return self.store.generation() == generation

    def build(self) -> Snapshot:
        """Compile a new snapshot from the files and the store; it becomes :attr:`current`.

        :raises RblError: when any part is wrong; nothing is swapped then.
        """
        seen = self._fingerprint()
        zones, policy, good = self._inputs(seen[1])
        now = self.store.clock()
        audit_id = self.store.audit_mark()  # read before the listings: later changes get patched
        serial = self.store.next_serial(int(time.time()))
        started = time.monotonic()
        standing = self._score(zones, policy, now)
        self._scoring = time.monotonic() - started
        snapshot = compile_snapshot(self.store, zones, policy.listing, serial, now, policy.classification, standing)
        self.standing, self._scored_at = standing, time.monotonic()
        # The store's generation from before the read, so a change during the compile gets
        # patched next; the files' stats with the feed files this policy read (known only once
        # it is loaded), or as seen while the files are broken.
        files = self._fingerprint(policy)[1] if good else seen[1]
        self._seen, self._zones, self._policy, self._audit_id = (seen[0], files), zones, policy, audit_id
        self._next_expiry = self.store.next_expiry(now)
        self._built_at = time.monotonic()
        self.dense = dense_cidrs(snapshot, policy)
        self.last_kind = "full"
        self.current = snapshot
        return snapshot

    def adopt(self, snapshot: Snapshot) -> None:
        """Serve a snapshot kept from an earlier run until the first :meth:`build`: the policy,
        zones and tiers are read now (HTTP answers with them), the listings are not compiled.

        :raises RblError: when the files are wrong (as the first build would).
        """
        zones, policy, _good = self._inputs(self._fingerprint()[1])
        self._zones, self._policy = zones, policy
        # No generation: stale at once; the files' stats, so the first build reuses this policy.
        self._seen = (None, self._fingerprint(policy)[1])
        self.standing = self._score(zones, policy, self.store.clock())
        self.served = snapshot

    def _inputs(self, files: tuple) -> tuple[list, Policy, bool]:
        """Zones and policy from the files, or the last good ones while the files are broken.

        Listings keep being served under the last good policy; the error is
        logged once per broken version of the files.
        """
        try:
            zones = load_zones(self.zones_dir)
            policy = self._load_policy(files)
            if policy.warnings and self._policy is not None and policy is not self._policy:
                # A selector that matches nothing would turn a shared pool into escalating
                # space: a running server refuses a policy with warnings.
                raise RblError(f"{len(policy.warnings)} warning(s), first: {policy.warnings[0]}")
        except Exception as exc:  # RblError, or a file shaped so oddly a check missed it
            if self._policy is None:
                raise
            if files != self._broken:
                log.error("keeping the last good policy and zones: %s", exc)
                self._broken = files
            return self._zones, self._policy, False
        self._broken = None
        return zones, policy, True

    def _load_policy(self, files: tuple) -> Policy:
        """The policy folder, parsed again only when one of its files changed."""
        if self._policy is not None and self._seen is not None and files == self._seen[1]:
            return self._policy
        policy = load_policy(self.policy_dir)
        for warning in policy.warnings:
            log.warning("policy: %s", warning)
        return policy

    @property
    def policy(self) -> Policy | None:
        """The policy the current snapshot was compiled with (the last good one)."""
        return self._policy

    def update(self) -> Snapshot:
        """The next snapshot, which becomes :attr:`current`: the current one patched where
        listings changed, else a full build."""
        seen = self._fingerprint()
        current = self.current
        if current is None or seen[1] != self._seen[1] or self._time_is_due():
            return self.build()
        started = time.perf_counter()
        newest, subjects = self.store.changes_since(self._audit_id)
        if subjects is None:
            return self.build()
        now = self.store.clock()
        changes = Changes.of(subjects)
        if self._standing_moved(now) or self._density_moved(changes, now):
            return self.build()  # a tier or a dense range changes answers far from the change
        zones = {origin: patch_zone(zone, self._policy.listing, self.store, changes, now,
                                    self._policy.classification, self.standing)
                 for origin, zone in current.zones.items()}
        for origin, zone in zones.items():
            if zone.config.serves == "tenant":
                zones[origin] = patch_tenant_zone(zone, self._policy.listing, zones[zone.config.apex.encode("ascii")],
                                                  self.store, changes, now, self._policy.classification)
        serial = self.store.next_serial(int(time.time()))
        self._seen, self._audit_id = seen, newest
        self._next_expiry = self.store.next_expiry(now)
        self.last_kind = "patch"
        # The count is the last full compile's: counting a million rows again would
        # cost a third of the patch.
        self.current = Snapshot(serial=serial, zones=zones, built_at=time.time(),
                                compile_seconds=time.perf_counter() - started, listings=current.listings)
        return self.current

    def _score(self, zones: list, policy: Policy, now) -> Standing:
        """The vendors' standing now, kept as today's in their history (the dashboard's plots)."""
        standing = vendor_standing(self.store, zones, policy, now)
        day = (now.date(), {v: (s.tier, s.score, s.cases, s.remediated_in_time, s.overdue, s.open)
                            for v, s in standing.scores.items()}, standing.listed)
        if day != self._recorded:  # scored every few seconds: written only when the day's numbers move
            VendorHistory(self.store).record(now, standing.scores, standing.listed)
            self._recorded = day
        return standing

    def _standing_moved(self, now) -> bool:
        """Whether a vendor's tier differs from the one the snapshot was compiled with.

        Scoring reads every case in the window (about a second per million
        listings), so it runs at most every STANDING_SECONDS, or ten times as long
        as it took: evidence and listings move a tier within seconds, and scoring
        never takes more than a tenth of the primary.
        """
        if self.standing is None or time.monotonic() - self._scored_at < max(STANDING_SECONDS, 10 * self._scoring):
            return False
        started = time.monotonic()
        fresh = self._score(self._zones, self._policy, now)
        self._scored_at, self._scoring = time.monotonic(), time.monotonic() - started
        return {v: s.tier for v, s in fresh.scores.items()} != {v: s.tier for v, s in self.standing.scores.items()}

    def _density_moved(self, changes: Changes, now) -> bool:
        """Whether a changed single address tips a negligent vendor's shared range over or under
        its density threshold (one indexed count per such range)."""
        if self.standing is None:
            return False
        classification, listing = self._policy.classification, self._policy.listing
        for kind, ranges in (("ip4", changes.ip4), ("ip6", changes.ip6)):
            bits = BITS[kind]
            for lo, _hi, plen in ranges:
                found = classification.find(kind, lo)
                if plen != bits or found is None or found.space != "shared" \
                        or self.standing.tier(found.vendor) != NEGLIGENT:
                    continue
                rid = next(i for i, r in enumerate(classification.ranges) if r is found)
                unit = bits if kind == "ip4" else listing.escalation.prefix(kind)
                for zone in self.current.zones.values():
                    if zone.config.serves != "listings":
                        continue
                    listed = self.store.count_units(zone.config.origin, kind, found.net, found.plen, unit, now)
                    was = zone.dense.get(kind)
                    if (listed >= density_needed(found, listing)) != bool(was is not None and was[rid]):
                        return True
        return False

    def _time_is_due(self) -> bool:
        """Decisions depend on time: recompile on a timer and when a listing expires."""
        if time.monotonic() - self._built_at > REFRESH_SECONDS:
            return True
        if self._next_expiry is not None:
            return timestamp(self.store.clock()) >= self._next_expiry
        return False

    def stale(self) -> bool:
        """Whether the store, the files or the clock call for a new snapshot."""
        return self._fingerprint() != self._seen or self._time_is_due()

    def fingerprint(self) -> tuple:
        """What the next snapshot would be built from: the store's generation and the files' stats."""
        return self._fingerprint()

    def close(self) -> None:
        self.store.close()


def _stats(paths: list[Path]) -> tuple:
    stats = []
    for path in paths:
        try:
            st = path.stat()
            stats.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            stats.append((str(path), None, None))
    return tuple(stats)


def dense_cidrs(snapshot: Snapshot, policy: Policy) -> dict[str, set[str]]:
    """Per zone that serves listings, the CIDRs of the ranges its compile found dense."""
    ranges = policy.classification.ranges
    return {origin: {ranges[int(rid)].cidr for flags in zone.dense.values() if flags is not None
                     for rid in np.flatnonzero(flags)}
            for origin, zone in snapshot.zones.items() if zone.config.serves == "listings"}


def vendor_standing(store: ListingStore, zones: list, policy: Policy, now) -> Standing:
    """Every vendor's tier at ``now`` from its cases in the zones that serve listings.

    Tiers change as SLAs run out and evidence arrives: each full compile (on a
    timer, at least every REFRESH_SECONDS) scores them again.
    """
    origins = tuple(z.origin for z in zones if z.serves == "listings")
    vendors = sorted(policy.vendors)
    # Only the vendors' space is read: a big list's other millions of addresses are no one's cases.
    columns = store.case_columns(origins, now - policy.listing.remediation.window, now, active=True,
                                 within=vendor_spans(policy.classification, vendors))
    scores = vendor_scores(columns, policy.classification, policy.listing, now, vendors)
    return Standing.of(scores, policy.classification, listed_counts(columns, policy.classification, vendors))
