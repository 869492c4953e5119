"""The primary's side of zone transfers: a version per serial, and NOTIFY to the secondaries.

After each new snapshot, :class:`TransferPublisher` writes every transferring
zone's settings for the workers at once, then has a helper process
(``python -m rbl.transfer.versions``) render the zone's records into transfer
files, one snapshot at a time: while it renders, newer snapshots wait and
only the newest is rendered next, so a burst of changes costs one render,
not one per serial. When a version is ready, each of the zone's secondaries
gets a NOTIFY; an unanswered NOTIFY for an older serial is dropped for the
newer one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from rbl.errors import RblError
from rbl.transfer.notify import send_notify
from rbl.transfer.rrwire import WireRecord
from rbl.transfer.versions import version_soa, write_settings
from rbl.zone.config import TransferConfig, TsigKey
from rbl.zone.snapshot import Snapshot

log = logging.getLogger("rbl.transfer")


def transferring(snapshot: Snapshot) -> dict[str, TransferConfig]:
    """The zones of a snapshot that have transfer settings, by origin."""
    return {zone.config.origin: zone.config.transfer for zone in snapshot.zones.values()
            if zone.config.transfer is not None and not zone.config.apex}


class TransferPublisher:
    """Renders versions of the transferring zones and NOTIFYs their secondaries."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._settings: dict[str, TransferConfig] = {}
        self._pending: tuple[Path, dict[str, TransferConfig]] | None = None
        self._task: asyncio.Task | None = None
        self._helper: asyncio.subprocess.Process | None = None
        self._notifies: dict[tuple[str, tuple[str, int]], asyncio.Task] = {}
        self.versions: dict[str, dict] = {}  # the newest index rendered, by origin

    def offer(self, snapshot: Snapshot, path: Path) -> None:
        """A new snapshot is being served: settings now, a version as soon as the helper is free."""
        zones = transferring(snapshot)
        for origin, config in zones.items():
            if self._settings.get(origin) != config:
                write_settings(self.folder, origin, config)
        for origin in set(self._settings) - set(zones):
            # No longer transferred: the workers refuse from now on.
            shutil.rmtree(self.folder / origin, ignore_errors=True)
            self.versions.pop(origin, None)
        self._settings = dict(zones)
        if not zones:
            return
        # A link keeps the file for the helper when the watcher removes old snapshots.
        link = self.folder / f"{snapshot.serial}.snap"
        try:
            os.link(path, link)
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(path, link)
        if self._pending is not None and self._pending[0] != link:
            self._pending[0].unlink(missing_ok=True)  # never rendered: a newer one came first
        self._pending = (link, zones)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._render_pending())

    async def _render_pending(self) -> None:
        while self._pending is not None:
            link, zones = self._pending
            self._pending = None
            try:
                for origin, config in zones.items():
                    if self._settings.get(origin) is None:
                        continue  # dropped from the zone files meanwhile
                    index = await self._render(link, origin, config.history)
                    if index is None:
                        continue
                    self.versions[origin] = index
                    steps = index["steps"]
                    step = f", IXFR step from {steps[-1]['start']}: {steps[-1]['deleted']} deleted, " \
                           f"{steps[-1]['added']} added, {steps[-1]['size']} bytes" \
                        if steps and steps[-1]["end"] == index["serial"] else ""
                    log.info("transfer version %d of %s: %d records, %d bytes, rendered in %.2f s (diff %.2f s)%s",
                             index["serial"], origin, index["records"], index["axfr_bytes"],
                             index["render_seconds"], index["diff_seconds"], step)
                    soa = version_soa(index)
                    for endpoint in config.secondaries:
                        self._notify(origin, index["serial"], soa, endpoint, config.key)
            finally:
                link.unlink(missing_ok=True)

    async def _render(self, link: Path, origin: str, keep: int) -> dict | None:
        job = json.dumps({"snapshot": str(link), "origin": origin, "folder": str(self.folder), "keep": keep})
        for attempt in range(2):  # a helper that died is started again, once per job
            helper = await self._start_helper()
            try:
                helper.stdin.write(job.encode() + b"\n")
                await helper.stdin.drain()
                line = await helper.stdout.readline()
            except (ConnectionError, BrokenPipeError):
                line = b""
            if line:
                result = json.loads(line)
                if "error" in result:
                    log.error("cannot render a transfer version of %s: %s", origin, result["error"])
                    return None
                return result["index"]
            log.error("the transfer renderer exited (code %s)%s", await helper.wait(),
                      "; starting it again" if not attempt else "")
            self._helper = None
        return None

    async def _start_helper(self) -> asyncio.subprocess.Process:
        if self._helper is None or self._helper.returncode is not None:
            self._helper = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "rbl.transfer.versions",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                limit=2**24,  # an index with a long history is one line
            )
        return self._helper

    def _notify(self, origin: str, serial: int, soa: WireRecord, endpoint: tuple[str, int],
                key: TsigKey | None) -> None:
        older = self._notifies.pop((origin, endpoint), None)
        if older is not None and not older.done():
            older.cancel()  # the newer serial tells the secondary all the older one would
        self._notifies[(origin, endpoint)] = asyncio.create_task(self._send(origin, serial, soa, endpoint, key))

    async def _send(self, origin: str, serial: int, soa: WireRecord, endpoint: tuple[str, int],
                    key: TsigKey | None) -> None:
        where = f"[{endpoint[0]}]:{endpoint[1]}" if ":" in endpoint[0] else f"{endpoint[0]}:{endpoint[1]}"
        try:
            tries = await send_notify(origin, soa, endpoint, key)
        except RblError as exc:
            log.warning("NOTIFY of %s serial %d to %s failed: %s", origin, serial, where, exc)
        except OSError as exc:
            log.warning("NOTIFY of %s serial %d to %s failed: %s", origin, serial, where, exc.strerror or exc)
        else:
            log.info("NOTIFY of %s serial %d to %s answered%s", origin, serial, where,
                     f" after {tries} tries" if tries > 1 else "")

    async def close(self) -> None:
        for task in [self._task, *self._notifies.values()]:
            if task is not None and not task.done():
                task.cancel()
        if self._helper is not None and self._helper.returncode is None:
            self._helper.stdin.close()
            try:
                await asyncio.wait_for(self._helper.wait(), 5)
            except TimeoutError:
                self._helper.kill()
                await self._helper.wait()
