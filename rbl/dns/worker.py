"""A DNS worker process: maps the current snapshot file and answers on the shared port.

``rbl serve`` starts N of these (``--workers``). Each binds the same address with
SO_REUSEPORT, maps the snapshot file it is given, and reads the path of every
newer snapshot from its standard input, one per line; end of input (the primary
is gone) stops it. Only the arrays' pages are shared, so N workers cost one
snapshot in memory plus N small interpreters.

Its standard input also carries JSON lines: ``{"access": PATH}`` names a new
access file (keys and public resolvers, see :func:`read_access`), ``{"over":
[ids]}`` the keys past their quota, as the primary sums them.

Its standard output says ``ready`` once it answers, then carries its query
counts to the primary (:mod:`rbl.dns.counts`) every second they change.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
from pathlib import Path

from rbl.dns.answer import Responder
from rbl.dns.counts import encode
from rbl.dns.keys import read_key_table
from rbl.dns.server import start_dns
from rbl.transfer.respond import TransferResponder
from rbl.errors import RblError
from rbl.zone.snapshot_file import read_snapshot
from rbl.transfer.versions import TRANSFER_FOLDER

log = logging.getLogger("rbl.worker")

READY = "ready"
GC_SECONDS = 5.0  # how often the cyclic collector runs (the odd cycle: exceptions, closed connections)
COUNTS_SECONDS = 1.0  # how often the query counts go to the primary (when they changed)


def _collect(loop: asyncio.AbstractEventLoop) -> None:
    gc.collect(1)  # the young generations; the frozen snapshot is never walked
    loop.call_later(GC_SECONDS, _collect, loop)


class CountsSender:
    """Writes the worker's query totals to the primary when they changed.

    The pipe is non-blocking: while the primary has not read the last line,
    no new one is queued (each line holds every total, so skipping one loses
    nothing) and answering never waits for the primary.
    """

    def __init__(self, responder: Responder, pipe: asyncio.WriteTransport):
        self.responder, self.pipe = responder, pipe
        self.sent: dict = {}
        self.timer: asyncio.TimerHandle | None = None

    def send(self) -> None:
        responder = self.responder
        totals = (dict(responder.totals()), responder.keys.totals(), responder.gate.totals())
        if totals == self.sent or self.pipe.is_closing() or self.pipe.get_write_buffer_size():
            return
        self.pipe.write(encode(*totals))
        self.sent = totals

    def every(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self.send()
        self.timer = loop.call_later(seconds, self.every, loop, seconds)


def read_access(path: str) -> tuple[list[dict], list[str], list[int]]:
    """The access file the primary writes: (key table, public resolver networks, keys over quota)."""
    keys = read_key_table(path)
    data = json.loads(Path(path).read_text())
    return keys, [str(n) for n in data.get("resolvers", [])], [int(i) for i in data.get("over", [])]


def _control(responder: Responder, text: str) -> None:
    """One JSON line from the primary: a new access file, or the keys now past their quota."""
    message = json.loads(text)
    if "access" in message:
        keys, resolvers, over = read_access(message["access"])
        responder.use_access(keys, resolvers)
        responder.keys.set_over(over)
    if "over" in message:
        responder.keys.set_over(int(i) for i in message["over"])


async def serve(host: str, port: int, path: str, access: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    # The primary writes zone transfer files beside the snapshots (rbl/transfer/versions.py).
    responder = Responder(read_snapshot(path), TransferResponder(Path(path).parent / TRANSFER_FOLDER))
    if access:
        _control(responder, json.dumps({"access": access}))
    # Answering makes no reference cycles, yet each query's few small objects would
    # trigger the cyclic collector every few hundred queries (measured: 10-15% of a
    # worker's time at full load). Collect on a timer instead.
    gc.disable()
    gc.freeze()  # a snapshot's objects live until the next: the collector need not walk them
    collector = loop.call_later(GC_SECONDS, _collect, loop)
    servers = await start_dns(responder, host, port)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(READY, flush=True)
    pipe, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    sender = CountsSender(responder, pipe)
    sender.every(loop, COUNTS_SECONDS)
    while True:
        line = await reader.readline()
        if not line:
            break
        text = line.decode().strip()
        if text.startswith("{"):
            try:
                _control(responder, text)
            except (RblError, ValueError, TypeError, KeyError) as exc:
                log.error("keeping the keys and resolvers in force: %s", exc)
            continue
        try:
            responder.use(read_snapshot(text))
            gc.unfreeze()  # the previous snapshot's objects may go now
            gc.collect()
            gc.freeze()
        except RblError as exc:
            log.error("keeping snapshot %s: %s", responder.snapshot.serial, exc)
    collector.cancel()
    sender.timer.cancel()
    sender.send()  # the last counts; the primary may still read them
    pipe.close()
    for server in servers:
        server.close()


def main(argv: list[str]) -> None:
    # The primary decides when workers stop (end of input); a terminal's ^C goes to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s worker: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("rbl.transfer").setLevel(logging.INFO)  # each transfer served, like the primary's snapshots
    host, port, path, *access = argv
    asyncio.run(serve(host, int(port), path, access[0] if access else None))


if __name__ == "__main__":
    main(sys.argv[1:])
