"""``rbl serve``: keep a snapshot fresh from the store and files, and answer DNS from it."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from rbl.dns.answer import Responder
from rbl.dns.server import start_dns
from rbl.errors import RblError
from rbl.policy.listing import load_listing_policy
from rbl.store import ListingStore
from rbl.zone.config import load_zones
from rbl.zone.snapshot import Snapshot, compile_snapshot

log = logging.getLogger("rbl")

POLL_SECONDS = 0.2  # how often the store is asked whether anything changed
REFRESH_SECONDS = 300  # recompile anyway, as decisions depend on time


class Service:
    """The store, the files and the snapshot built from them."""

    def __init__(self, db: str, policy: str, zones: str):
        self.db_path, self.policy_dir, self.zones_dir = db, policy, zones
        self.store = ListingStore(db)
        self.responder: Responder | None = None
        self._seen: tuple | None = None
        self._next_expiry: str | None = None
        self._built_at = 0.0

    def _fingerprint(self) -> tuple:
        files = [Path(self.policy_dir) / "listing.yaml", *sorted(Path(self.zones_dir).glob("*.yaml"))]
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
        zones = load_zones(self.zones_dir)
        policy = load_listing_policy(self.policy_dir)
        now = self.store.clock()
        serial = self.store.next_serial(int(time.time()))
        snapshot = compile_snapshot(self.store, zones, policy, serial, now)
        self._seen = seen
        self._next_expiry = self.store.next_expiry(now)
        self._built_at = time.monotonic()
        return snapshot

    def _stale(self) -> bool:
        if self._fingerprint() != self._seen:
            return True
        if time.monotonic() - self._built_at > REFRESH_SECONDS:
            return True
        if self._next_expiry is not None:
            now = self.store.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
            return now >= self._next_expiry
        return False

    async def watch(self) -> None:
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
                snapshot = await loop.run_in_executor(None, self.build)
            except RblError as exc:
                failed_on = fingerprint
                log.error("keeping snapshot %s: %s", self.responder.snapshot.serial, exc)
                continue
            except Exception:
                log.exception("keeping snapshot %s after an unexpected error", self.responder.snapshot.serial)
                await asyncio.sleep(1)
                continue
            failed_on = None
            self.responder.use(snapshot)
            log.info("serving snapshot %d: %d listings, compiled in %.3f s",
                     snapshot.serial, snapshot.listings, snapshot.compile_seconds)

    async def run(self, host: str, port: int) -> None:
        snapshot = self.build()
        self.responder = Responder(snapshot)
        servers, bound = await start_dns(self.responder, host, port)
        shown = f"[{host}]" if ":" in host else host
        log.info("serving snapshot %d: %d listings in %d zones, compiled in %.3f s",
                 snapshot.serial, snapshot.listings, len(snapshot.zones), snapshot.compile_seconds)
        # Tests and scripts read the port from this line.
        log.info("DNS on %s:%d (udp, tcp)", shown, bound)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        watcher = asyncio.create_task(self.watch())
        await stop.wait()
        watcher.cancel()
        for server in servers:
            server.close()
        self.store.close()
