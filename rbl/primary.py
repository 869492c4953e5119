"""``rbl serve``: the primary process, which runs everything around the snapshot source.

The primary owns the store: a :class:`~rbl.zone.source.SnapshotSource` watches
it and the files, and each new snapshot is written to a file. N worker
processes (:mod:`rbl.dns.worker`, run by :class:`~rbl.dns.pool.WorkerPool`) map
the newest file and answer DNS on one shared port; zone transfers get their
versions from it (:class:`~rbl.transfer.publish.TransferPublisher`); the HTTP
API answers from the store and the current snapshot. A snapshot that fails to
build is never written, so workers keep answering from the last good one.

Snapshots and transfer versions live beside the store (``rbl.serve/`` for ``rbl.db``), so a
restart answers from the last snapshot at once when nothing changed meanwhile,
and secondaries that were current get an IXFR of the first new serial.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from rbl.delivery.courier import Courier, Relay
from rbl.dns.pool import WorkerPool
from rbl.dns.quota import Quotas
from rbl.dns.server import bind_pair
from rbl.errors import RblError
from rbl.metrics import Metrics
from rbl.policy.listing import load_listing_policy
from rbl.policy.notices import Notices
from rbl.policy.resolvers import load_resolvers, resolver_files
from rbl.policy.sources import Source, fetch_source, load_sources, replace_from
from rbl.store import ListingStore
from rbl.store.keys import KeyStore
from rbl.transfer.publish import TransferPublisher
from rbl.transfer.versions import TRANSFER_FOLDER, write_json
from rbl.zone.config import load_zones
from rbl.zone.snapshot import Snapshot
from rbl.zone.snapshot_file import read_snapshot, write_snapshot
from rbl.zone.source import SnapshotSource

log = logging.getLogger("rbl")

POLL_SECONDS = 0.1  # how often the store is asked whether anything changed (one indexed read)
KEEP_FILES = 3  # snapshot files kept: a worker may still be opening the one before
SERVE_SUFFIX = ".serve"  # the serving folder beside the store: rbl.db's is rbl.serve/
KEPT = "kept.json"  # in it: the snapshot served last and what it was built from
ACCESS = "access.json"  # in it: the access keys' hashes and the public resolvers, for the workers
ACCESS_SECONDS = 0.25  # how often keys, resolvers and quotas are looked at (a revoked key stops within a second)
USAGE_SECONDS = 5.0  # how often key usage is written to the store (for rbl key list and restarts)


def give_back_memory() -> None:
    """Return the heap a full compile freed to the system (glibc keeps it otherwise: measured at
    a million listings, 222 MiB resident after a compile, 68 MiB after this)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


try:
    _LIBC = ctypes.CDLL("libc.so.6")
    _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
except (OSError, AttributeError):  # not glibc: nothing to call
    _LIBC = None


def serving_folder(db: str) -> Path:
    """The folder beside the store ``db`` where ``rbl serve`` keeps its snapshots and transfer versions."""
    path = Path(db)
    if path.suffix == SERVE_SUFFIX:  # a store named x.serve: its folder cannot be x.serve too
        return path.with_name(path.name + "-folder")
    return path.with_name(path.stem + SERVE_SUFFIX)


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# The HTTP side (pages and API) runs at this much lower priority than DNS and the primary's loop:
# with DNS saturating a core, back-to-back pages at 0 cost DNS 60% of its qps, at 19 nothing
# (bench/pages.py, 2 cores); without contention it changes nothing.
HTTP_NICE = 19


class Primary:
    """The snapshot source, its files, the DNS workers, transfers and HTTP, run together."""

    def __init__(self, db: str, policy: str, zones: str, http_nice: int = HTTP_NICE, relay: Relay | None = None):
        self.db_path = db
        self.relay = relay  # where vendors' email digests go; None: they wait
        self.http_nice = http_nice  # added to the HTTP thread's niceness: DNS first under load
        self.policy_path, self.zones_path = policy, zones
        self.source = SnapshotSource(db, policy, zones)
        self.metrics = Metrics()
        self.publisher: TransferPublisher | None = None
        self.quotas = Quotas(time.time)
        self._access_seen: tuple | None = None
        self._resolvers: list[str] = []
        self._key_names: dict[int, str] = {}
        self._key_quota: dict[int, int] = {}

    def _build_and_write(self, folder: Path, full: bool = False) -> tuple[Snapshot, Path]:
        snapshot = self.source.build() if full else self.source.update()
        if self.source.last_kind == "full":
            give_back_memory()
        path = folder / f"{snapshot.serial}.snap"
        write_snapshot(snapshot, path)
        # What it was built from, so the next start knows whether it may answer from it.
        write_json(folder / KEPT, {"snapshot": path.name, "built_from": self.source.built_from()})
        self.source.served = snapshot
        return snapshot, path

    def _built(self, snapshot: Snapshot) -> None:
        self.metrics.compiled("full", snapshot.compile_seconds)
        log.info("serving snapshot %d: %d listings in %d zones, compiled in %.3f s",
                 snapshot.serial, snapshot.listings, len(snapshot.zones), snapshot.compile_seconds)

    async def watch(self, folder: Path, workers: WorkerPool) -> None:
        """Rebuild when the store or files change; keep the old snapshot on failure."""
        loop = asyncio.get_running_loop()
        source = self.source
        failed_on: tuple | None = None
        while True:
            await asyncio.sleep(POLL_SECONDS)
            fingerprint = None
            try:
                if not source.stale():
                    continue
                fingerprint = source.fingerprint()
                if fingerprint == failed_on:
                    continue  # the same broken input: wait for the next change
                snapshot, path = await loop.run_in_executor(None, self._build_and_write, folder)
            except RblError as exc:
                failed_on = fingerprint
                self.metrics.compile_failed()
                log.error("keeping snapshot %s: %s", source.served.serial, exc)
                continue
            except Exception:
                self.metrics.compile_failed()
                log.exception("keeping snapshot %s after an unexpected error", source.served.serial)
                await asyncio.sleep(1)
                continue
            failed_on = None
            self.metrics.compiled(source.last_kind, snapshot.compile_seconds)
            workers.publish(path)
            if self.publisher is not None:
                try:
                    self.publisher.offer(snapshot, path)
                except Exception:  # transfers lag behind; answering must not stop for them
                    log.exception("zone transfers keep their last version after an unexpected error")
            log.info("serving snapshot %d: %d listings, compiled in %.3f s",
                     snapshot.serial, snapshot.listings, snapshot.compile_seconds)
            for old in sorted(folder.glob("*.snap"), key=lambda p: p.stat().st_mtime)[:-KEEP_FILES]:
                old.unlink(missing_ok=True)

    def _access_state(self, keys: KeyStore) -> tuple:
        """What the access file is made from: the keys' mark and the resolver files' stats."""
        files = resolver_files(self.policy_path)
        return keys.mark(), tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files if p.exists())

    def _write_access(self, folder: Path, keys: KeyStore, stored: dict | None = None) -> Path:
        """Read the keys and resolvers again and write the access file the workers read."""
        self._access_seen = self._access_state(keys)
        try:
            self._resolvers = load_resolvers(self.policy_path)
        except RblError as exc:
            log.error("public resolvers: keeping the last good list: %s", exc)
        table = keys.table()
        self.quotas.load(table, stored)
        self.quotas.update(self.metrics.key_totals())
        self._keys_to_metrics(table)
        path = folder / ACCESS
        write_json(path, {"keys": [{k: e[k] for k in ("id", "hash", "zones", "quota", "period", "revoked")}
                                   for e in table],
                          "resolvers": self._resolvers, "over": sorted(self.quotas.over)})
        return path

    def _keys_to_metrics(self, table: list[dict] | None = None) -> None:
        if table is not None:
            self._key_names = {e["id"]: e["name"] for e in table}
            self._key_quota = {e["id"]: e["quota"] for e in table if e["quota"] is not None and not e["revoked"]}
        usage = self.quotas.usage(self.metrics.key_totals())
        self.metrics.keys_known(self._key_names, self._key_quota, usage, self.quotas.over)

    async def guard_access(self, folder: Path, workers: WorkerPool) -> None:
        """Keys created or revoked and resolver files edited reach the workers within a second; so
        does a key reaching its quota, summed over every worker, and a period rolling over."""
        loop = asyncio.get_running_loop()
        keys = KeyStore(ListingStore(self.db_path))
        written: dict = {}
        next_write = time.monotonic() + USAGE_SECONDS
        try:
            while True:
                await asyncio.sleep(ACCESS_SECONDS)
                try:
                    if await loop.run_in_executor(None, self._access_state, keys) != self._access_seen:
                        path = await loop.run_in_executor(None, self._write_access, folder, keys)
                        workers.publish_access(path)
                        workers.tell_over(sorted(self.quotas.over))
                    over = self.quotas.update(self.metrics.key_totals())
                    if over is not None:
                        workers.tell_over(sorted(over))
                    self._keys_to_metrics()
                    if time.monotonic() >= next_write:
                        next_write = time.monotonic() + USAGE_SECONDS
                        usage = self.quotas.usage(self.metrics.key_totals())
                        changed = {k: v for k, v in usage.items() if written.get(k) != v}
                        await loop.run_in_executor(None, keys.record_usage, changed)
                        written.update(changed)
                except Exception:  # answering goes on with the keys in force
                    log.exception("access keys: keeping those in force after an unexpected error")
                    await asyncio.sleep(1)
        finally:
            keys.store.close()

    async def mirror(self) -> None:
        """Fetch each listing source (policy/sources/) on its schedule and replace its listings.

        The files are read again every tick, so a new or edited source needs no restart;
        a broken one keeps the last good list of sources.
        """
        due: dict[str, float] = {}
        sources: list[Source] = []
        while True:
            try:
                sources = load_sources(self.policy_path)
            except RblError as exc:
                log.error("listing sources: keeping the last good ones: %s", exc)
            for source in sources:
                if due.get(source.name, 0.0) <= time.monotonic():
                    due[source.name] = time.monotonic() + source.every.total_seconds()
                    await self._mirror_one(source)
            await asyncio.sleep(0.2)

    async def _mirror_one(self, source: Source) -> None:
        try:
            result = await fetch_source(source, self.db_path)
            zone = load_zones(self.zones_path)[0].origin
            expiry = load_listing_policy(self.policy_path).expiry
            # Off the event loop: a million-line replace takes seconds; DNS and HTTP go on.
            done = await asyncio.get_running_loop().run_in_executor(
                None, replace_from, source, self.db_path, zone, expiry, result, self._notices())
        except Exception as exc:  # one source's failure never stops the others or the server
            self.metrics.source_fetched(source.name, "failed")
            log.error("source %s: the last good listings stay: %s", source.name, exc)
            return
        if done is None:
            self.metrics.source_fetched(source.name, "failed")
            log.error("source %s: %s; the last good listings stay", source.name, result.detail)
            return
        self.metrics.source_fetched(source.name, result.status, done.added + done.refreshed)
        log.info("source %s: %s (%s): %d added, %d refreshed, %d removed", source.name, result.status,
                 result.detail, done.added, done.refreshed, done.removed)

    def _notices(self) -> Notices:
        """The notices hook for this server's writes: the vendors of the policy in force."""
        return Notices(lambda: self.source.policy)

    def _standing(self) -> tuple:
        """What the courier compares time-driven events with: the tiers, the dense ranges of the
        last full compile and the zones that serve listings."""
        source = self.source
        served = source.served
        zones = tuple(z.config.origin for z in (served.zones.values() if served else ()) if z.config.serves == "listings")
        return source.standing, source.dense, zones

    def _serving_folder(self) -> tuple[Path, int | None]:
        """Where snapshots and transfer versions live: beside the store (``rbl.db``: ``rbl.serve/``),
        kept across restarts, locked by this process; a temporary folder while another ``rbl serve``
        holds it."""
        folder = serving_folder(self.db_path)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            lock = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("snapshots in a temporary folder, kept by no restart: %s: %s", folder, exc.strerror)
            return Path(tempfile.mkdtemp(prefix="rbl-snapshots-")), None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            log.warning("another rbl serve keeps its snapshots in %s: this one's go to a temporary folder", folder)
            return Path(tempfile.mkdtemp(prefix="rbl-snapshots-")), None
        for stray in (folder / TRANSFER_FOLDER).glob("*.snap"):
            stray.unlink(missing_ok=True)  # linked for a render a kill interrupted
        return folder, lock

    def _kept(self, folder: Path) -> tuple[Snapshot, Path] | None:
        """The snapshot the last run served, when nothing it was built from has changed since: the
        store, the files, no listing expired (else the first compile comes before any answer)."""
        try:
            kept = json.loads((folder / KEPT).read_text())
            path = folder / kept["snapshot"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not self.source.unchanged_since(kept.get("built_from")):
            log.info("compiling afresh: the store or the files changed since snapshot %s", path.stem)
            return None
        try:
            return read_snapshot(path), path
        except RblError as exc:
            log.warning("compiling afresh, not serving the kept snapshot: %s", exc)
            return None

    async def _first_compile(self, folder: Path, pool: WorkerPool, stop: asyncio.Event) -> bool:
        """The first full compile after answering from a kept snapshot, off the event loop;
        False when told to stop meanwhile."""
        loop = asyncio.get_running_loop()
        compiling = loop.run_in_executor(None, self._build_and_write, folder, True)
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([compiling, stopping], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not compiling.done():
            await pool.stop()  # nothing answers while the thread finishes: stopping means it
            await asyncio.gather(compiling, return_exceptions=True)
            return False
        snapshot, path = compiling.result()
        self._built(snapshot)
        pool.publish(path)
        self.publisher.offer(snapshot, path)
        return True

    async def run(self, host: str, port: int, workers: int = 1, http: tuple[str, int] | None = None) -> None:
        """Serve until SIGINT or SIGTERM.

        A snapshot kept from the last run is answered from at once, while the
        first compile runs off the event loop; without one, that compile comes first.

        :raises RblError: when the first snapshot cannot be built or a worker fails to start.
        """
        folder, lock = self._serving_folder()
        runner = http_store = None
        loop = asyncio.get_running_loop()
        try:
            kept = self._kept(folder) if lock is not None else None
            if kept is None:
                snapshot, path = self._build_and_write(folder, full=True)
                self._built(snapshot)
            else:
                snapshot, path = kept
                self.source.adopt(snapshot)
                log.info("serving the kept snapshot %d (%d listings) while compiling afresh",
                         snapshot.serial, snapshot.listings)
            if http is not None:
                # Imported only when served: aiohttp costs a fifth of a second of every start.
                from rbl.http.app import HttpThread, Served, make_app
                from rbl.pages.routes import add_pages

                # Its own connection: the HTTP routes read while the watcher compiles in a thread.
                http_store = ListingStore(self.db_path)
                http_store.notices = self._notices()

                def application():
                    app = make_app(Served(self.source, http_store, self.metrics))
                    add_pages(app)  # the HTML pages beside the API
                    return app

                runner = HttpThread(application, *http, nice=self.http_nice)
                http_port = await loop.run_in_executor(None, runner.start)
                log.info("HTTP on http://%s:%d/", _shown(http[0]), http_port)  # tests read the port from this line
            keys = KeyStore(ListingStore(self.db_path))
            try:
                access = self._write_access(folder, keys, keys.usage())  # the usage of the last run carries on
            finally:
                keys.store.close()
            # Hold the port (port 0: pick it) until the workers have bound it beside us.
            udp, tcp, bound = bind_pair(host, port)
            pool = WorkerPool(host, bound, workers, path, self.metrics, access)
            try:
                await pool.start()
            finally:
                udp.close()
                tcp.close()
            # Tests and scripts read the port from this line.
            log.info("DNS on %s:%d (udp, tcp), %d worker%s", _shown(host), bound, workers, "s" * (workers != 1))
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            self.publisher = TransferPublisher(folder / TRANSFER_FOLDER)
            self.publisher.offer(snapshot, path)  # a kept one's version is on disk: nothing to render
            courier = Courier(self.db_path, lambda: self.source.policy, self.relay, self._standing)
            tasks = [asyncio.create_task(pool.supervise()), asyncio.create_task(courier.run()),
                     asyncio.create_task(self.guard_access(folder, pool))]
            if kept is None or await self._first_compile(folder, pool, stop):
                tasks += [asyncio.create_task(self.watch(folder, pool)), asyncio.create_task(self.mirror())]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await self.publisher.close()
            await pool.stop()
        finally:
            if runner is not None:
                await loop.run_in_executor(None, runner.stop)
            if http_store is not None:
                http_store.close()
            self.source.close()
            if lock is None:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                os.close(lock)  # the folder stays: the next start answers from its newest snapshot
