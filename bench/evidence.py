"""Vendors' evidence over HTTP on the real server: submissions per second, and the time to a changed answer.

Run by hand (about two minutes with the defaults):

    .venv/bin/python bench/evidence.py
    .venv/bin/python bench/evidence.py --rounds 3 --seconds 5 --clients 4
    .venv/bin/python bench/evidence.py --rounds 1 --profile /tmp/evidence.prof   # where the server's time goes

It copies the shipped demo policy and zones into a temporary folder with a new
store, lists addresses in AWS's shared EC2 space (they answer block, 127.0.0.2),
creates a vendor token for aws and starts ``rbl serve`` (pinned to core 0, this
client to core 1). Then, each round:

1. one-item submissions: --clients concurrent clients POST /v1/evidence for
   --seconds, each with its own Idempotency-Key: submissions per second, latency;
2. the same with 100-item batches: submissions and items per second;
3. evidence for a listed address, one at a time with the server otherwise idle,
   then again while the one-item load of 1. runs: the seconds from the 2xx until
   DNS answers throttle (127.0.0.4) instead of block (127.0.0.2).

It prints each round and the medians. Every submission must be answered 2xx:
anything else stops the run with the server's answer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import aiohttp
import dns.message
import dns.query
import dns.rdatatype

from common import ROOT, arguments, stop
LOAD_SPACE = (0x34040000, 14)  # 52.4.0.0/14, EC2 (shared) in the demo feed: the load's subjects
LISTED_SPACE = (0x03058C00, 22)  # 3.5.140.0/22, EC2 too: the listed addresses, never in the load


def dotted(address: int) -> str:
    return ".".join(str(address >> s & 255) for s in (24, 16, 8, 0))


def now_rfc3339() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Server:
    """``rbl serve`` on a copy of the demo policy and zones, with a store of its own."""

    def __init__(self, work: Path, pin: bool, profile: str | None):
        shutil.copytree(ROOT / "policy", work / "policy")
        shutil.copytree(ROOT / "zones", work / "zones")
        self.env = dict(os.environ, RBL_DB=str(work / "rbl.db"), RBL_POLICY=str(work / "policy"),
                        RBL_ZONES=str(work / "zones"), TMPDIR=str(work))
        self.work = work
        prefix = ["taskset", "-c", "0"] if pin else []  # its DNS worker inherits core 0
        python = [sys.executable, "-m", "cProfile", "-o", profile] if profile else [sys.executable]
        self.cmd = [*prefix, *python, "-m", "rbl", "serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"]
        self.proc: subprocess.Popen | None = None

    def rbl(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "rbl", *args], env=self.env, cwd=self.work,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"rbl {' '.join(args[:3])}: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.work, stderr=subprocess.PIPE, text=True)
        self.http = self.dns = None
        deadline = time.monotonic() + 60
        while self.dns is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit("rbl serve exited early")
            if match := re.search(r"HTTP on http://\S+:(\d+)/", line):
                self.http = int(match[1])
            if match := re.search(r"DNS on \S+:(\d+)", line):
                self.dns = int(match[1])
        if self.dns is None or self.http is None:
            raise SystemExit("rbl serve did not report its ports")
        # It logs every snapshot it serves: keep reading, or a full pipe would stop it.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def answer(self, address: str) -> set[str]:
        name = ".".join(reversed(address.split("."))) + ".bl.example"
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.dns, timeout=1)
        return {rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == dns.rdatatype.A}

    def stop(self) -> None:
        stop(self.proc, 30)  # SIGTERM first: a clean stop, so a --profile file gets written


async def load(server: Server, token: str, clients: int, seconds: float, batch: int, seed: int) -> dict:
    """Clients submitting as fast as the server answers: counts and latencies."""
    url = f"http://127.0.0.1:{server.http}/v1/evidence"
    latencies: list[float] = []
    rng = random.Random(seed)
    net, plen = LOAD_SPACE

    async def one(n: int, session: aiohttp.ClientSession, ends: float) -> None:
        count = 0
        while time.monotonic() < ends:
            count += 1
            items = [{"subject": dotted(net + rng.randrange(1 << (32 - plen))), "action": "tenant_terminated",
                      "reference": f"B-{seed}-{n}-{count}-{i}", "acted_at": now_rfc3339()} for i in range(batch)]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       "Idempotency-Key": f"bench-{seed}-{batch}-{n}-{count}"}
            started = time.perf_counter()
            async with session.post(url, data=json.dumps({"items": items}), headers=headers) as response:
                text = await response.text()
                if response.status != 202:
                    raise SystemExit(f"POST /v1/evidence answered {response.status}: {text[:300]}")
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.monotonic()
        await asyncio.gather(*(one(n, session, started + seconds) for n in range(clients)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return {"per_s": len(latencies) / elapsed, "items_per_s": len(latencies) * batch / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000}


def to_throttle(server: Server, token: str, address: str) -> float:
    """Seconds from the 2xx of evidence for a listed address until DNS answers throttle."""
    body = json.dumps({"items": [{"subject": address, "action": "tenant_terminated", "reference": "bench",
                                  "acted_at": now_rfc3339()}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.http}/v1/evidence", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 202:
            raise SystemExit(f"POST /v1/evidence answered {response.status}")
    accepted = time.perf_counter()
    while (answer := server.answer(address)) != {"127.0.0.4"}:
        if answer != {"127.0.0.2"}:
            raise SystemExit(f"{address} answers {answer}, neither block nor throttle")
        if time.perf_counter() - accepted > 30:
            raise SystemExit(f"{address} still answers block 30 s after its evidence was accepted")
        time.sleep(0.005)
    return time.perf_counter() - accepted


async def to_throttle_under_load(server: Server, token: str, addresses: list[str], clients: int,
                                 seed: int) -> list[float]:
    """The same, one address after another, while one-item clients keep the server busy."""
    probes = asyncio.create_task(asyncio.to_thread(lambda: [to_throttle(server, token, a) for a in addresses]))
    loaded = asyncio.create_task(load(server, token, clients, 0.5 + 1.5 * len(addresses), 1, seed))
    done = await probes
    await loaded
    return done


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10, help="length of each throughput run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients in the throughput runs")
    parser.add_argument("--probes", type=int, default=5, help="listed addresses remediated per round, idle and loaded")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server to core 0 and this client to 1")
    parser.add_argument("--profile", metavar="FILE", help="run the server under cProfile and write its stats here")
    args = parser.parse_args()
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    if pin:
        os.sched_setaffinity(0, {1})

    with tempfile.TemporaryDirectory(prefix="rbl-bench-evidence-") as tmp:
        server = Server(Path(tmp), pin, args.profile and str(Path(args.profile).resolve()))
        net, plen = LISTED_SPACE
        listed = [dotted(a) for a in random.Random(7).sample(range(net, net + (1 << (32 - plen))),
                                                             2 * args.rounds * args.probes)]
        server.rbl("listing", "add", *listed, "--reason", "bench")
        token = server.rbl("vendor", "token", "create", "aws").split()[-1]
        try:
            server.start()
            deadline = time.monotonic() + 30
            while server.answer(listed[0]) != {"127.0.0.2"}:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{listed[0]} is not answered block")
                time.sleep(0.1)
            print(f"rbl serve on a copy of the demo policy, {len(listed)} addresses listed in AWS shared space; "
                  f"{args.clients} clients, {args.seconds:g} s per throughput run, {args.rounds} rounds"
                  + (", server on core 0, clients on core 1" if pin else ""), flush=True)
            header = (f"{'round':>5} {'1-item/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'100-item/s':>10} {'items/s':>8} "
                      f"{'p50 ms':>7} {'p99 ms':>7} {'2xx->DNS idle s':>15} {'2xx->DNS loaded s':>17}")
            print(header, flush=True)
            rows = []
            for r in range(args.rounds):
                single = asyncio.run(load(server, token, args.clients, args.seconds, 1, seed=r))
                batch = asyncio.run(load(server, token, args.clients, args.seconds, 100, seed=1000 + r))
                mine = listed[2 * r * args.probes:2 * (r + 1) * args.probes]
                idle = [to_throttle(server, token, a) for a in mine[:args.probes]]
                loaded = asyncio.run(to_throttle_under_load(server, token, mine[args.probes:], args.clients, 2000 + r))
                row = {"single": single["per_s"], "single_p50": single["p50_ms"], "single_p99": single["p99_ms"],
                       "batch": batch["per_s"], "items": batch["items_per_s"], "batch_p50": batch["p50_ms"],
                       "batch_p99": batch["p99_ms"], "idle": statistics.median(idle),
                       "loaded": statistics.median(loaded)}
                rows.append(row)
                print(line(str(r + 1), row), flush=True)
            print(line("median", {key: statistics.median(row[key] for row in rows) for key in rows[0]}))
        finally:
            server.stop()
    if args.profile:
        import pstats

        print(f"\nthe server's main thread (HTTP and the event loop) by cumulative time, from {args.profile}:")
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(30)


def line(name: str, row: dict) -> str:
    return (f"{name:>5} {row['single']:9.0f} {row['single_p50']:7.1f} {row['single_p99']:7.1f} {row['batch']:10.1f} "
            f"{row['items']:8.0f} {row['batch_p50']:7.1f} {row['batch_p99']:7.1f} {row['idle']:15.3f} "
            f"{row['loaded']:17.3f}")


if __name__ == "__main__":
    main()
