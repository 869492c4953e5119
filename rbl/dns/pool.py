"""The primary's side of the DNS workers: N processes on one port, restarted when one dies.

Each worker (:mod:`rbl.dns.worker`) says ``ready`` on its standard output, then
carries its query totals (:mod:`rbl.dns.counts`), read here as they come and
handed to a sink (:class:`rbl.metrics.Metrics` in ``rbl serve``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from rbl.dns.counts import Key, decode
from rbl.dns.worker import READY
from rbl.errors import RblError

log = logging.getLogger("rbl")


class TotalsSink(Protocol):
    """Where the workers' query totals go."""

    def worker_totals(self, worker: int, totals: dict[Key, int]) -> None: ...

    def worker_gone(self, worker: int) -> None: ...


class WorkerPool:
    """N DNS worker processes on one port; restarted when one dies."""

    def __init__(self, host: str, port: int, count: int, path: Path, metrics: TotalsSink):
        self.host, self.port, self.count, self.path = host, port, count, path
        self.metrics = metrics
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
