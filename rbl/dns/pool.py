"""The primary's side of the DNS workers: N processes on one port, restarted when one dies.

Each worker (:mod:`rbl.dns.worker`) says ``ready`` on its standard output, then
carries its query totals (:mod:`rbl.dns.counts`), read here as they come and
handed to a sink (:class:`rbl.metrics.Metrics` in ``rbl serve``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from rbl.dns.counts import Key, decode_line
from rbl.dns.worker import READY
from rbl.errors import RblError

log = logging.getLogger("rbl")


class TotalsSink(Protocol):
    """Where the workers' query totals go."""

    def worker_totals(self, worker: int, totals: dict[Key, int], keys: dict[int, int] | None = None,
                      limited: dict[str, int] | None = None) -> None: ...

    def worker_gone(self, worker: int) -> None: ...


class WorkerPool:
    """N DNS worker processes on one port; restarted when one dies."""

    def __init__(self, host: str, port: int, count: int, path: Path, metrics: TotalsSink,
                 access: Path | None = None):
        self.host, self.port, self.count, self.path = host, port, count, path
        self.access = access  # the access file (keys, public resolvers) a new worker starts from
        self.over: list[int] = []  # the keys past their quota, told again to a restarted worker
        self.metrics = metrics
        self.procs: list[subprocess.Popen] = []
        self._listeners: set[asyncio.Task] = set()
        self._ids = itertools.count(1)  # a worker's key in metrics: pids are reused, these are not

    def _spawn(self) -> subprocess.Popen:
        access = [str(self.access)] if self.access is not None else []
        return subprocess.Popen(
            [sys.executable, "-m", "rbl.dns.worker", self.host, str(self.port), str(self.path), *access],
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
        if self.over:
            self._write(proc, json.dumps({"over": self.over}))
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
                    self.metrics.worker_totals(worker, *decode_line(line))
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
            self._write(proc, str(path))

    def publish_access(self, path: Path) -> None:
        """Tell every worker to read the access file at path (keys and public resolvers)."""
        self.access = path
        for proc in self.procs:
            self._write(proc, json.dumps({"access": str(path)}))

    def tell_over(self, over: list[int]) -> None:
        """Tell every worker which keys are past their quota now."""
        self.over = over
        for proc in self.procs:
            self._write(proc, json.dumps({"over": over}))

    @staticmethod
    def _write(proc: subprocess.Popen, line: str) -> None:
        try:
            proc.stdin.write(f"{line}\n".encode())
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
