"""``rbl serve``: keep a snapshot fresh from the store and files; DNS workers answer from it.

The primary process owns the store: it watches for changes, compiles snapshots
and writes each to a file. N worker processes (:mod:`rbl.dns.worker`) map the
newest file and answer DNS on one shared port. A snapshot that fails to build
is never written, so workers keep answering from the last good one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rbl.dns.counts import decode
from rbl.dns.secondaries import TransferFeed
from rbl.dns.server import bind_pair
from rbl.dns.worker import READY
from rbl.errors import RblError
from rbl.metrics import Metrics
from rbl.policy.vendors import Policy, load_policy, policy_files
from rbl.store import ListingStore
from rbl.store.listings import timestamp
from rbl.zone.config import load_zones
from rbl.zone.patch import Changes, patch_zone
from rbl.zone.snapshot import Snapshot, compile_snapshot
from rbl.zone.snapshot_file import write_snapshot
from rbl.zone.versions import TRANSFER_FOLDER

log = logging.getLogger("rbl")

POLL_SECONDS = 0.1  # how often the store is asked whether anything changed (one indexed read)
REFRESH_SECONDS = 300  # recompile anyway, as decisions depend on time
STANDING_SECONDS = 5.0  # after a change, the vendors' tiers are scored again at most this often
KEEP_FILES = 3  # snapshot files kept: a worker may still be opening the one before


class Service:
    """The store, the files and the snapshot built from them."""

    def __init__(self, db: str, policy: str, zones: str):
        self.db_path, self.policy_dir, self.zones_dir = db, policy, zones
        self.store = ListingStore(db)
        self.current: Snapshot | None = None
        self._policy: Policy | None = None
        self._zones: list = []
        self._broken: tuple | None = None  # the files' fingerprint while they fail to load
        self._audit_id = 0  # changes up to this audit row are in the current snapshot
        self._seen: tuple | None = None
        self._next_expiry: str | None = None
        self._built_at = 0.0
        self.standing = None  # the vendors' tiers the current snapshot was compiled with
        self._scored_at = 0.0
        self._scoring = 0.0  # seconds the last scoring took
        self.metrics = Metrics()
        self.last_kind = "full"  # of the last snapshot built: full or patch
        self.feed: TransferFeed | None = None  # zone transfers to secondaries (rbl/dns/secondaries.py)

    def _fingerprint(self, policy: Policy | None = None) -> tuple:
        # The policy's files, the feed files it read, and the zone files.
        policy = policy or self._policy
        feeds = policy.files if policy is not None else []
        files = [*policy_files(self.policy_dir), *feeds, *sorted(Path(self.zones_dir).glob("*.yaml"))]
        stats = []
        for path in files:
            try:
                st = path.stat()
                stats.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                stats.append((str(path), None, None))
        return self.store.generation(), tuple(stats)

    def build(self) -> Snapshot:
        """Compile a new snapshot from the files and the store.

        :raises RblError: when any part is wrong; nothing is swapped then.
        """
        seen = self._fingerprint()
        zones, policy, good = self._inputs(seen[1])
        now = self.store.clock()
        audit_id = self.store.audit_mark()  # read before the listings: later changes get patched
        serial = self.store.next_serial(int(time.time()))
        started = time.monotonic()
        standing = vendor_standing(self.store, zones, policy, now)
        self._scoring = time.monotonic() - started
        snapshot = compile_snapshot(self.store, zones, policy.listing, serial, now, policy.classification, standing)
        self.standing, self._scored_at = standing, time.monotonic()
        # The store's generation from before the read: a change during the compile gets patched.
        files = self._fingerprint(policy)[1] if good else seen[1]
        self._seen, self._zones, self._policy, self._audit_id = (seen[0], files), zones, policy, audit_id
        self._next_expiry = self.store.next_expiry(now)
        self._built_at = time.monotonic()
        self.last_kind = "full"
        return snapshot

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
        """The next snapshot: the current one patched where listings changed, else a full build."""
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
        serial = self.store.next_serial(int(time.time()))
        self._seen, self._audit_id = seen, newest
        self._next_expiry = self.store.next_expiry(now)
        self.last_kind = "patch"
        # The count is the last full compile's: counting a million rows again would
        # cost a third of the patch.
        return Snapshot(serial=serial, zones=zones, built_at=time.time(),
                        compile_seconds=time.perf_counter() - started, listings=current.listings)

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
        fresh = vendor_standing(self.store, self._zones, self._policy, now)
        self._scored_at, self._scoring = time.monotonic(), time.monotonic() - started
        return {v: s.tier for v, s in fresh.scores.items()} != {v: s.tier for v, s in self.standing.scores.items()}

    def _density_moved(self, changes: Changes, now) -> bool:
        """Whether a changed single address tips a negligent vendor's shared range over or under
        its density threshold (one indexed count per such range)."""
        from rbl.policy.remediation import NEGLIGENT
        from rbl.policy.standing import density_needed

        if self.standing is None:
            return False
        classification, listing = self._policy.classification, self._policy.listing
        for kind, ranges in (("ip4", changes.ip4), ("ip6", changes.ip6)):
            bits = 32 if kind == "ip4" else 128
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

    def _stale(self) -> bool:
        return self._fingerprint() != self._seen or self._time_is_due()

    def stale(self) -> bool:
        """Whether the store, the files or the clock call for a new snapshot (for exports that watch)."""
        return self._stale()

    def _build_and_write(self, folder: Path, full: bool = False) -> tuple[Snapshot, Path]:
        snapshot = self.build() if full else self.update()
        path = folder / f"{snapshot.serial}.snap"
        write_snapshot(snapshot, path)
        self.current = snapshot
        return snapshot, path

    async def watch(self, folder: Path, workers: "WorkerPool") -> None:
        """Rebuild when the store or files change; keep the old snapshot on failure."""
        loop = asyncio.get_running_loop()
        failed_on: tuple | None = None
        while True:
            await asyncio.sleep(POLL_SECONDS)
            fingerprint = None
            try:
                if not self._stale():
                    continue
                fingerprint = self._fingerprint()
                if fingerprint == failed_on:
                    continue  # the same broken input: wait for the next change
                snapshot, path = await loop.run_in_executor(None, self._build_and_write, folder)
            except RblError as exc:
                failed_on = fingerprint
                self.metrics.compile_failures += 1
                log.error("keeping snapshot %s: %s", self.current.serial, exc)
                continue
            except Exception:
                self.metrics.compile_failures += 1
                log.exception("keeping snapshot %s after an unexpected error", self.current.serial)
                await asyncio.sleep(1)
                continue
            failed_on = None
            self.metrics.compiled(self.last_kind, snapshot.compile_seconds)
            workers.publish(path)
            if self.feed is not None:
                try:
                    self.feed.offer(snapshot, path)
                except Exception:  # transfers lag behind; answering must not stop for them
                    log.exception("zone transfers keep their last version after an unexpected error")
            log.info("serving snapshot %d: %d listings, compiled in %.3f s",
                     snapshot.serial, snapshot.listings, snapshot.compile_seconds)
            for old in sorted(folder.glob("*.snap"), key=lambda p: p.stat().st_mtime)[:-KEEP_FILES]:
                old.unlink(missing_ok=True)

    async def run(self, host: str, port: int, workers: int = 1, http: tuple[str, int] | None = None) -> None:
        folder = Path(tempfile.mkdtemp(prefix="rbl-snapshots-"))
        runner = None
        try:
            snapshot, path = self._build_and_write(folder, full=True)
            self.metrics.compiled("full", snapshot.compile_seconds)
            log.info("serving snapshot %d: %d listings in %d zones, compiled in %.3f s",
                     snapshot.serial, snapshot.listings, len(snapshot.zones), snapshot.compile_seconds)
            if http is not None:
                from rbl.http.app import make_app, start_http

                # Its own connection: the HTTP routes read while the watcher compiles in a thread.
                self.reader = ListingStore(self.db_path)
                runner, http_port = await start_http(make_app(self), *http)
                shown = f"[{http[0]}]" if ":" in http[0] else http[0]
                log.info("HTTP on http://%s:%d/", shown, http_port)  # tests read the port from this line
            # Hold the port (port 0: pick it) until the workers have bound it beside us.
            udp, tcp, bound = bind_pair(host, port)
            pool = WorkerPool(host, bound, workers, path, self.metrics)
            try:
                await pool.start()
            finally:
                udp.close()
                tcp.close()
            shown = f"[{host}]" if ":" in host else host
            # Tests and scripts read the port from this line.
            log.info("DNS on %s:%d (udp, tcp), %d worker%s", shown, bound, workers, "s" * (workers != 1))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            self.feed = TransferFeed(folder / TRANSFER_FOLDER)
            self.feed.offer(snapshot, path)
            tasks = [asyncio.create_task(self.watch(folder, pool)), asyncio.create_task(pool.supervise())]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await self.feed.close()
            await pool.stop()
        finally:
            if runner is not None:
                await runner.cleanup()
                self.reader.close()
            self.store.close()
            shutil.rmtree(folder, ignore_errors=True)


def vendor_standing(store: ListingStore, zones: list, policy: Policy, now):
    """Every vendor's tier at ``now`` from its cases in the zones that serve listings.

    Tiers change as SLAs run out and evidence arrives: each full compile (on a
    timer, at least every REFRESH_SECONDS) scores them again.
    """
    from rbl.policy.standing import Standing, vendor_scores

    origins = tuple(z.origin for z in zones if z.serves == "listings")
    columns = store.case_columns(origins, now - policy.listing.remediation.window, now)
    scores = vendor_scores(columns, policy.classification, policy.listing, now, sorted(policy.vendors))
    return Standing.of(scores, policy.classification)


class WorkerPool:
    """N DNS worker processes on one port; restarted when one dies.

    Each worker's standard output says ready, then carries its query totals
    (:mod:`rbl.dns.counts`), read here as they come into ``metrics``.
    """

    def __init__(self, host: str, port: int, count: int, path: Path, metrics: Metrics | None = None):
        self.host, self.port, self.count, self.path = host, port, count, path
        self.metrics = metrics if metrics is not None else Metrics()
        self.procs: list[subprocess.Popen] = []
        self._listeners: set[asyncio.Task] = set()
        self._ids = itertools.count(1)  # a worker's key in metrics: pids are reused, these are not

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "rbl.dns.worker", self.host, str(self.port), str(self.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    async def _ready(self, proc: subprocess.Popen) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 22)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), proc.stdout)
        line = await reader.readline()
        if line.strip() != READY.encode():
            transport.close()
            await loop.run_in_executor(None, proc.wait)
            raise RblError(f"a DNS worker failed to start (exit code {proc.returncode})")
        task = asyncio.create_task(self._listen(next(self._ids), reader, transport))
        self._listeners.add(task)
        task.add_done_callback(self._listeners.discard)

    async def _listen(self, worker: int, reader: asyncio.StreamReader, transport: asyncio.ReadTransport) -> None:
        """A worker's query totals, line by line, until it exits."""
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # a line past the limit: not one of ours
                    log.error("DNS worker %d: an oversized line on its output", worker)
                    continue
                if not line:
                    break
                try:
                    self.metrics.worker_totals(worker, decode(line))
                except ValueError as exc:
                    log.error("DNS worker %d: not a counts line (%s): %r", worker, exc, line[:200])
        finally:
            transport.close()
            self.metrics.worker_gone(worker)

    async def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.count)]
        await asyncio.gather(*(self._ready(proc) for proc in self.procs))

    def publish(self, path: Path) -> None:
        """Tell every worker to map the snapshot at path."""
        self.path = path
        for proc in self.procs:
            try:
                proc.stdin.write(f"{path}\n".encode())
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass  # it died; supervise() restarts it with the newest path

    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    log.error("DNS worker %d exited with %s; restarting it", proc.pid, proc.returncode)
                    self.procs[i] = self._spawn()
                    try:
                        await self._ready(self.procs[i])
                    except RblError as exc:
                        log.error("%s", exc)

    async def stop(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.close()  # end of input: the worker stops
            except OSError:
                pass
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                await loop.run_in_executor(None, proc.wait, max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Each listener ends at its worker's end of output, with the last totals read.
        if self._listeners:
            await asyncio.wait(self._listeners, timeout=1)
        for task in list(self._listeners):
            task.cancel()
        for proc in self.procs:
            proc.stdout.close()
