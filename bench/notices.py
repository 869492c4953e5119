"""Notices to vendors on the real server: how soon a listing reaches the webhook, how fast a backlog
drains, and what 100 events a second cost DNS.

Run by hand (about three minutes with the defaults):

    .venv/bin/python bench/notices.py
    .venv/bin/python bench/notices.py --listings 200 --backlog 5000 --seconds 5 --rounds 1

It copies the shipped demo policy and zones into a temporary folder, gives aws
and gcp a webhook (an aiohttp receiver in this process, on loopback, that
checks every signature) and starts ``rbl serve`` (one DNS worker, the whole
server on core 0; dnsperf and this process on core 1). Then:

1. --listings adds, one POST /v1/listings each (the store's write path the CLI
   takes too, without a process start per add), every 50 ms, in aws's shared
   3.5.140.0/22: the time from the request to the webhook receiving the
   listed event, median and p99 (at most 1,000: the /22 holds no more); then
   --alone adds 300 ms apart in gcp's space (each the first after a quiet
   spell, which the webhook sends at once);
2. gcp's receiver answers 503 while --backlog addresses in its 34.35.0.0/16
   are imported in one ``rbl listing import`` (one event each), then 200: the
   events delivered per second while the backlog drains in batches of 500;
3. each round, dnsperf for --seconds three times: idle; with 100 listing adds a
   second outside every vendor's space (snapshot patches, no event); with 100
   adds a second in gcp's space (the same, plus 100 events a second written
   and delivered): qps of each and the ratios. The last ratio is what notices
   cost DNS. These adds are written from this process as ``rbl listing add``
   writes them (the store with the notices hook), one transaction each.

It prints every round and the medians. An event that is not signed with the
secret, or an id out of order, stops the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import ROOT, arguments, free_port, stop
from run import dnsperf  # dnsperf pinned to core 1: its qps, lost and mean latency

SECRET = b"bench-secret"


class Receiver:
    """The vendors' webhooks: one aiohttp server, a path per vendor, recording when each event came."""

    def __init__(self) -> None:
        self.arrived: dict[tuple[str, str], float] = {}  # (vendor, subject) -> monotonic time
        self.last_id: dict[str, int] = {}
        self.count: dict[str, int] = {}
        self.status = {"aws": 200, "gcp": 200}
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(10)

    def _run(self) -> None:
        from aiohttp import web

        async def hook(request: web.Request) -> web.Response:
            vendor = request.match_info["vendor"]
            body = await request.read()
            now = time.monotonic()
            if self.status[vendor] != 200:
                return web.Response(status=self.status[vendor])
            parts = dict(item.split("=", 1) for item in request.headers["Rbl-Signature"].split(","))
            mac = hmac.new(SECRET, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(mac, parts["v1"]):
                raise SystemExit("an event batch was not signed with the secret")
            for event in json.loads(body)["events"]:
                if event["id"] <= self.last_id.get(vendor, 0):
                    continue  # at least once: seen before
                if event["id"] != self.last_id.get(vendor, 0) + 1:
                    raise SystemExit(f"{vendor}: event {event['id']} after {self.last_id.get(vendor)}")
                self.last_id[vendor] = event["id"]
                self.count[vendor] = self.count.get(vendor, 0) + 1
                self.arrived.setdefault((vendor, event.get("subject", "")), now)
            return web.Response(text="ok")

        async def start() -> None:
            app = web.Application(client_max_size=1 << 24)
            app.router.add_post("/{vendor}", hook)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self.ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()


def rbl(work: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "rbl", *args, "--db", str(work / "rbl.db"), "--policy",
                           str(work / "policy"), "--zones", str(work / "zones")], capture_output=True, text=True,
                          cwd=work)
    if done.returncode:
        raise SystemExit(f"rbl {' '.join(args)}: {done.stderr}")
    return done.stdout


def post(port: int, token: str, subjects: list[str]) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/listings", method="POST",
                                     data=json.dumps({"subjects": subjects, "reason": "bench"}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 201:
            raise SystemExit(f"POST /v1/listings: {response.status}")


class Adder(threading.Thread):
    """One listing add every 1/rate seconds from ``subjects`` until stopped, written as ``rbl listing
    add`` writes it (the store, with the vendors' notices hook) from this process: the HTTP side runs
    at nice 19 beside a saturated DNS worker and could not keep the rate."""

    def __init__(self, work: Path, subjects, rate: float):
        super().__init__(daemon=True)
        self.work, self.subjects, self.rate = work, iter(subjects), rate
        self.done = threading.Event()
        self.added = 0

    def run(self) -> None:
        from rbl.addresses import parse_subject
        from rbl.policy.notices import Notices
        from rbl.policy.vendors import load_policy
        from rbl.store import ListingStore
        from rbl.store.listings import Entry

        store = ListingStore(self.work / "rbl.db")
        store.notices = Notices(load_policy(self.work / "policy"))
        next_at = time.monotonic()
        for subject in self.subjects:
            if self.done.is_set():
                break
            store.add([Entry(parse_subject(subject))], zone="bl.example", actor="bench")
            self.added += 1
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        store.close()


def ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--listings", type=int, default=1000)
    parser.add_argument("--alone", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # This process (the receiver, the adders) on core 1 with dnsperf: core 0 is the server's alone,
    # so the DNS figures are what the server's own work costs it.
    os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="rbl-bench-notices-"))
    receiver = Receiver()
    proc = None
    try:
        shutil.copytree(ROOT / "policy", work / "policy")
        shutil.copytree(ROOT / "zones", work / "zones")
        (work / "policy" / "secrets").mkdir()
        (work / "policy" / "secrets" / "hook.key").write_bytes(SECRET)
        for vendor in ("aws", "gcp"):
            path = work / "policy" / "vendors" / f"{vendor}.yaml"
            path.write_text(path.read_text() + f"notify:\n  webhook:\n    url: http://127.0.0.1:{receiver.port}/{vendor}\n"
                            "    secret_file: secrets/hook.key\n    retry_max: 1s\n")
        token = rbl(work, "operator", "token", "create").split()[-1]
        dns_port, http_port = free_port(), free_port()
        log = open(work / "serve.log", "w")
        proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "rbl", "serve", "--db", str(work / "rbl.db"),
                                 "--policy", str(work / "policy"), "--zones", str(work / "zones"),
                                 "--dns", f"127.0.0.1:{dns_port}", "--http", f"127.0.0.1:{http_port}"],
                                cwd=work, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while "DNS on" not in (work / "serve.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((work / "serve.log").read_text())
            time.sleep(0.1)

        # 1. add -> webhook: at 20 a second (the webhook paces: one POST per 100 ms gathers them), then alone
        def latency(vendor: str, subjects: list[str], every: float) -> tuple[float, float, float]:
            sent: dict[str, float] = {}
            for subject in subjects:
                sent[subject] = time.monotonic()
                post(http_port, token, [subject])
                time.sleep(every)
            deadline = time.monotonic() + 30
            while any((vendor, s) not in receiver.arrived for s in subjects) and time.monotonic() < deadline:
                time.sleep(0.05)
            late = [s for s in subjects if (vendor, s) not in receiver.arrived]
            if late:
                raise SystemExit(f"{len(late)} listed events never reached the webhook, first {late[0]}")
            took = [receiver.arrived[(vendor, s)] - sent[s] for s in subjects]
            return (*ms(took), max(took) * 1000)

        aws = [f"3.5.{140 + i // 250}.{i % 250 + 1}" for i in range(min(args.listings, 1000))]
        median, p99, most = latency("aws", aws, 0.05)
        print(f"add -> webhook over {args.listings} listings (POST /v1/listings, one each, every 50 ms): "
              f"median {median:.1f} ms, p99 {p99:.1f} ms, max {most:.1f} ms")
        alone = [f"34.35.{250 + i // 250}.{i % 250 + 1}" for i in range(min(args.alone, 1000))]  # gcp's
        median, p99, most = latency("gcp", alone, 0.3)
        print(f"add -> webhook over {args.alone} listings each alone (every 300 ms): "
              f"median {median:.1f} ms, p99 {p99:.1f} ms, max {most:.1f} ms")

        # 2. a backlog drains
        receiver.status["gcp"] = 503
        backlog = work / "gcp.txt"
        backlog.write_text("".join(f"34.35.{i // 256}.{i % 256}\n" for i in range(args.backlog)))
        started = time.monotonic()
        rbl(work, "listing", "import", str(backlog), "--source", "bench-backlog")
        print(f"import of {args.backlog} gcp addresses, one event each written in its transaction: "
              f"{time.monotonic() - started:.2f} s")
        time.sleep(1.5)
        before = receiver.count.get("gcp", 0)
        receiver.status["gcp"] = 200
        deadline = time.monotonic() + 300
        while receiver.count.get("gcp", 0) == before and time.monotonic() < deadline:
            time.sleep(0.001)  # until the next retry's batch is in
        started, first = time.monotonic(), receiver.count.get("gcp", 0) - before
        while receiver.count.get("gcp", 0) < before + args.backlog and time.monotonic() < deadline:
            time.sleep(0.001)
        drained = time.monotonic() - started
        rest = args.backlog - first
        print(f"backlog of {args.backlog} events: after the first batch ({first}), {rest} more in {drained:.2f} s: "
              f"{rest / drained:.0f} events/s in batches of 500")

        # 3. DNS with and without events flowing
        queries = work / "queries.txt"
        queries.write_text("".join(f"{i % 250 + 1}.{140 + i % 4}.5.3.bl.example A\n2.0.0.127.bl.example A\n"
                                   f"{i % 200 + 1}.{i % 7}.51.198.bl.example A\n" for i in range(3000)))
        plain = (f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(1, 10**7))
        vendor = (f"34.35.{i // 256}.{i % 256}" for i in range(args.backlog, 65536))
        ratios, costs = [], []
        for round_no in range(1, args.rounds + 1):
            idle = dnsperf(dns_port, queries, args.seconds)
            figures = {"idle": idle["qps"]}
            for name, subjects in (("adds, no events", plain), ("adds + 100 events/s", vendor)):
                adder = Adder(work, subjects, 100)
                events = receiver.count.get("gcp", 0)
                adder.start()
                result = dnsperf(dns_port, queries, args.seconds)
                adder.done.set()
                adder.join(10)
                figures[name] = result["qps"]
                figures[name + " n"] = (adder.added, receiver.count.get("gcp", 0) - events)
            with_events, without = figures["adds + 100 events/s"], figures["adds, no events"]
            ratios.append(with_events / without)
            costs.append(with_events / figures["idle"])
            print(f"round {round_no}: DNS qps idle {figures['idle']:.0f}, with 100 adds/s {without:.0f} "
                  f"({figures['adds, no events n'][0]} adds), with 100 adds/s and their events {with_events:.0f} "
                  f"({figures['adds + 100 events/s n'][0]} adds, {figures['adds + 100 events/s n'][1]} events "
                  f"delivered): events/no events {ratios[-1]:.3f}, events/idle {costs[-1]:.3f}")
        print(f"median ratio, DNS qps with events flowing / with the same adds and none: {statistics.median(ratios):.3f}"
              f" (/ idle: {statistics.median(costs):.3f}) over {len(ratios)} rounds")
    finally:
        stop(proc, 30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
