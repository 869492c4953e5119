"""The lookup page on the real server with 1,000,000 listings: its render time, and DNS qps beside it.

Run by hand (a few minutes with the defaults, most of it filling the store):

    .venv/bin/python bench/pages.py                  # 1,000,000 listings
    .venv/bin/python bench/pages.py --listings 20000 --requests 200 --seconds 5 --rounds 1
    .venv/bin/python bench/pages.py --db /path/to/rbl.db   # a copy of that store, not a new one
    .venv/bin/python bench/pages.py --rate 20000     # dnsperf paced: does DNS keep up, not how fast it goes
    .venv/bin/python bench/pages.py --pages 50       # a busy public lookup page, not a flood
    .venv/bin/python bench/pages.py --http-nice 0    # HTTP at DNS's own priority: what pages cost DNS then

It copies the shipped demo policy and zones into a temporary folder, fills a
new store with seeded listings as bench/policy.py does (a third in vendor
ranges, some dense enough to escalate) and lists two more addresses to look
up: 3.5.141.77, in AWS's shared EC2 space (3.5.140.0/22 in the shipped
policy), and an ordinary address in no vendor's range; both answer block.
It starts ``rbl serve`` (one DNS worker; by default the whole server on core 0,
dnsperf and this client on core 1: see --layout), waits until DNS answers the
RFC 5782 test point, then measures:

1. GET /lookup?q=SUBJECT for each of the two addresses, --requests times one
   after another from one keep-alive client (the form cookie sent back, as a
   browser does), DNS idle: the full response time at the client, median and
   p99 (after 10 not counted), and the subject's first request (the server's
   very first compiles the templates);
2. each round, dnsperf for --seconds against the DNS port with HTTP idle, then
   again while a client thread requests /lookup back to back (the two
   addresses in turn): qps of both, the ratio loaded / idle, the lookups' rate
   and median during the loaded run, DNS mean latency, and the CPU the DNS
   worker, the primary (HTTP), dnsperf and the lookup client used; during both
   runs a new listing every 2 s, and the seconds until DNS answers it.

It prints every round and the median ratio. A lookup answered other than 200
with the subject shown as listed stops the run with the server's answer.

With two cores, something has to share one: with --layout server (the
default) the pages take CPU from the DNS worker, so the ratio is what pages
cost DNS on a server's core; with --layout worker the worker has core 0 to
itself and the HTTP side takes core 1 from dnsperf instead, which then sends
less (see its CPU column).
"""

from __future__ import annotations

import http.client
import os
import random
import resource
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import dns.exception
import dns.message
import dns.query
import dns.rdatatype

from common import ROOT, fill_store, free_port, stop, store_arguments
from run import dnsperf  # dnsperf pinned to core 1, its qps, lost and mean latency

ZONE = "bl.example"
SHARED = "3.5.141.77"  # AWS EC2 3.5.140.0/22, shared space in the shipped policy: listed one address at a time
WARM = 10  # requests per subject before the counted ones (the first request compiles the templates)
TICK = os.sysconf("SC_CLK_TCK")
# --layout: (the primary's core, the DNS worker's core, this client's core); dnsperf is on core 1 in every one.
LAYOUTS = {
    "worker": (1, 0, 1),  # the DNS worker alone on core 0, as bench/run.py runs it
    "server": (0, 0, 1),  # the whole server on core 0, as bench/evidence.py runs it: HTTP takes the worker's CPU
    "none": (None, None, None),  # wherever the scheduler puts them
}
LAYOUT_WORDS = {
    "worker": "its DNS worker alone on core 0; the primary (HTTP), dnsperf and this client on core 1",
    "server": "the primary (HTTP) and its DNS worker on core 0; dnsperf and this client on core 1",
    "none": "nothing pinned but dnsperf (core 1)",
}


def dotted(address: int) -> str:
    return ".".join(str(address >> s & 255) for s in (24, 16, 8, 0))


def ordinary_address(policy, seed: int) -> str:
    """A seeded IPv4 address in no vendor's range (and not loopback)."""
    from rbl.addresses import IP4

    rng = random.Random(seed)
    for _ in range(10_000):
        a = rng.randrange(0x01000000, 0xDF000000)
        if a >> 24 != 127 and policy.classification.find(IP4, a) is None:
            return dotted(a)
    raise RuntimeError("no address outside every vendor's range in 10,000 draws")


def copy_store(source: Path, db: Path) -> None:
    """A consistent copy of the store at ``source`` (its WAL included), which is only read."""
    if not source.is_file():
        raise SystemExit(f"--db {source}: no such file")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(db)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def write_queries(path: Path, db: Path, count: int, seed: int) -> int:
    """Half listed single IPv4 addresses from the store, half random ones, 10% TXT; how many listed to draw from."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        listed = [row[0] for row in conn.execute(
            "SELECT subject FROM listings WHERE zone = ? AND kind = 'ip4' AND plen = 32 AND state = 'active' "
            "AND exclude = 0", [ZONE])]
    if not listed:
        raise SystemExit("the store has no single IPv4 listings to query")
    rng = random.Random(seed + 1)
    lines = []
    for _ in range(count):
        qtype = "TXT" if rng.random() < 0.10 else "A"
        if rng.random() < 0.5:
            address = rng.choice(listed)
        else:
            address = dotted(rng.randrange(0x01000000, 0xDF000000))
        lines.append(f"{'.'.join(reversed(address.split('.')))}.{ZONE} {qtype}\n")
    path.write_text("".join(lines))
    return len(listed)


def neighbours(db: Path, address: str) -> int:
    """Listings in the address's /24 (the more, the more rows the lookup's explanation reads)."""
    net = bytes(int(x) for x in address.split(".")[:3])
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM listings WHERE zone = ? AND kind = 'ip4' AND state = 'active' "
                            "AND net BETWEEN ? AND ?", [ZONE, net + b"\0", net + b"\xff"]).fetchone()[0]


def cpu_seconds(pid: int) -> float:
    """User and system time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Server:
    """``rbl serve`` on a store, a policy and zones of its own, its log in a file."""

    def __init__(self, work: Path, layout: tuple[int | None, int | None], http_nice: int | None = None):
        self.work, (self.primary_core, self.worker_core) = work, layout
        self.http_nice = http_nice
        self.dns, self.http = free_port(), free_port()
        self.log = work / "serve.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 900) -> re.Match:
        """Start it and wait until DNS answers the RFC 5782 test point; the log's first "serving snapshot"."""
        with open(self.log, "w") as out:
            pin = [] if self.primary_core is None else ["taskset", "-c", str(self.primary_core)]
            self.proc = subprocess.Popen(
                [*pin, sys.executable, "-m", "rbl", "serve", "--db", str(self.work / "rbl.db"),
                 "--policy", str(self.work / "policy"), "--zones", str(self.work / "zones"),
                 "--dns", f"127.0.0.1:{self.dns}", "--http", f"127.0.0.1:{self.http}",
                 *([] if self.http_nice is None else ["--http-nice", str(self.http_nice)])],
                cwd=self.work, stdout=subprocess.DEVNULL, stderr=out)
        deadline = time.monotonic() + timeout
        while not re.search(r"DNS on \S+:(\d+)", self.text()):
            if self.proc.poll() is not None:
                raise SystemExit(f"rbl serve exited:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"rbl serve did not start DNS within {timeout:.0f} s:\n{self.text()[-3000:]}")
            time.sleep(0.2)
        if not re.search(rf"HTTP on http://\S+:{self.http}/", self.text()):
            raise SystemExit(f"rbl serve did not report HTTP on port {self.http}:\n{self.text()[-3000:]}")
        while self.answer("127.0.0.2") != {"127.0.0.2"}:
            if time.monotonic() > deadline:
                raise SystemExit(f"DNS does not answer the test point 2.0.0.127.{ZONE}:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        self.worker = self.worker_pid()
        if self.worker_core is not None and self.worker_core != self.primary_core:
            subprocess.run(["taskset", "-a", "-p", "-c", str(self.worker_core), str(self.worker)], check=True,
                           capture_output=True)
        return re.search(r"serving snapshot (\d+): (\d+) listings in (\d+) zones, compiled in ([\d.]+) s",
                         self.text())

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        for pid in children:
            if b"rbl.dns.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
        raise SystemExit("rbl serve has no DNS worker process")

    def answer(self, address: str) -> set[str]:
        name = ".".join(reversed(address.split("."))) + "." + ZONE
        try:
            reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=self.dns, timeout=1)
        except dns.exception.Timeout:
            return set()
        return {rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == dns.rdatatype.A}

    def stop(self) -> None:
        stop(self.proc, 30)


class Client:
    """One keep-alive HTTP connection to the server, sending back the cookie it was given, as a browser does."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def lookup(self, subject: str) -> float:
        """Seconds for one GET /lookup?q=subject, the whole body read; a wrong answer stops the run."""
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        started = time.perf_counter()
        self.conn.request("GET", f"/lookup?q={quote(subject)}", headers=headers)
        response = self.conn.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - started
        self.size, body = len(raw), raw.decode("utf-8", "replace")
        if response.status != 200 or f'<span class="subject">{subject}</span>' not in body \
                or 'class="badge listed"' not in body:
            raise SystemExit(f"GET /lookup?q={subject} answered {response.status}, not a page of it listed:\n"
                             f"{body[:1500]}")
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, value = header.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        return elapsed

    def close(self) -> None:
        self.conn.close()


class LookupLoop(threading.Thread):
    """Lookups back to back, the subjects in turn, until stopped (or ``limit`` seconds or ``most`` requests)."""

    def __init__(self, port: int, subjects: list[str], limit: float, most: int = 1_000_000, rate: float | None = None):
        super().__init__(daemon=True)
        self.port, self.subjects, self.limit, self.most = port, subjects, limit, most
        self.rate = rate  # lookups a second; None: back to back
        self.halt = threading.Event()
        self.times: list[float] = []
        self.cpu: list[float] = []  # this thread's CPU seconds after each request
        self.failed: BaseException | None = None

    def run(self) -> None:
        client = Client(self.port)
        deadline = time.monotonic() + self.limit
        try:
            began = time.monotonic()
            while not self.halt.is_set() and time.monotonic() < deadline and len(self.times) < self.most:
                if self.rate:  # paced: the next request when its turn comes, not before
                    wait = began + len(self.times) / self.rate - time.monotonic()
                    if wait > 0:
                        self.halt.wait(wait)
                self.times.append(client.lookup(self.subjects[len(self.times) % len(self.subjects)]))
                self.cpu.append(time.thread_time())
        except BaseException as exc:  # SystemExit from a wrong answer too: raised again by the main thread
            self.failed = exc
        finally:
            client.close()


class AddLoop(threading.Thread):
    """While the loaded run goes on: every 2 s a new listing through the store, and the seconds
    until DNS answers it (the primary's own loop publishing while pages and DNS compete)."""

    def __init__(self, server: "Server", db: Path, first: int):
        super().__init__(daemon=True)
        self.server, self.db, self.next = server, db, first
        self.halt = threading.Event()
        self.lags: list[float] = []

    def run(self) -> None:
        from rbl.addresses import parse_subject
        from rbl.store import ListingStore
        from rbl.store.listings import Entry

        store = ListingStore(self.db)
        try:
            while not self.halt.wait(2):
                while True:  # an address nothing answers for yet (the seeded store may cover some)
                    address = f"198.18.{self.next // 250}.{self.next % 250 + 1}"
                    self.next += 1
                    if not self.server.answer(address):
                        break
                started = time.monotonic()
                store.add([Entry(parse_subject(address))], zone=ZONE, actor="bench", expires=None)
                while not self.server.answer(address) and time.monotonic() - started < 20:
                    time.sleep(0.01)
                self.lags.append(time.monotonic() - started)
        finally:
            store.close()


def measured_dnsperf(server: Server, queries: Path, seconds: int, rate: int | None) -> dict:
    """One dnsperf run, with the CPU the DNS worker, the primary and dnsperf used during it (% of one core)."""
    worker, primary = cpu_seconds(server.worker), cpu_seconds(server.proc.pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = dnsperf(server.dns, queries, seconds, rate)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # dnsperf, waited for
    result["dnsperf_cpu"] = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / wall * 100
    result["worker_cpu"] = (cpu_seconds(server.worker) - worker) / wall * 100
    result["primary_cpu"] = (cpu_seconds(server.proc.pid) - primary) / wall * 100
    if not result["qps"] > 0:
        raise SystemExit(f"dnsperf measured no queries per second: {result}")
    return result


def ms(seconds: list[float]) -> tuple[float, float]:
    """Median and p99 in milliseconds."""
    ordered = sorted(seconds)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def pair(idle: dict, loaded: dict, key: str, digits: int = 0) -> str:
    return f"{idle[key]:.{digits}f}/{loaded[key]:.{digits}f}"


def main() -> None:
    parser = store_arguments(__doc__, seed=5782)
    parser.add_argument("--requests", type=int, default=1000, help="counted lookups per subject for the render time")
    parser.add_argument("--seconds", type=int, default=10, help="length of each dnsperf run")
    parser.add_argument("--queries", type=int, default=100_000, help="queries in dnsperf's file (it loops over them)")
    parser.add_argument("--db", type=Path, help="copy this store (read only) instead of filling a new one")
    parser.add_argument("--rate", type=int, help="pace dnsperf at this many qps (default: as fast as answered)")
    parser.add_argument("--pages", type=float, help="pace the loaded runs' lookups at this many a second "
                                                     "(default: back to back, as fast as answered)")
    parser.add_argument("--http-nice", type=int, help="rbl serve --http-nice (default: rbl's own, 19)")
    parser.add_argument("--layout", choices=LAYOUTS, default="server",
                        help="which core runs what: " + "; ".join(f"{k}: {v}" for k, v in LAYOUT_WORDS.items()))
    args = parser.parse_args()
    if min(args.rounds, args.requests, args.seconds, args.queries) < 1:
        parser.error("--rounds, --requests, --seconds and --queries take 1 or more")
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        args.layout = "none"
    primary_core, worker_core, client_core = LAYOUTS[args.layout]
    if client_core is not None:
        os.sched_setaffinity(0, {client_core})  # the lookup thread started later inherits it

    from rbl.addresses import parse_subject
    from rbl.policy.vendors import load_policy
    from rbl.store import ListingStore
    from rbl.store.listings import Entry

    with tempfile.TemporaryDirectory(prefix="rbl-bench-pages-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "policy", work / "policy")
        shutil.copytree(ROOT / "zones", work / "zones")
        db = work / "rbl.db"
        started = time.perf_counter()
        if args.db:
            copy_store(args.db.resolve(), db)
            made = f"a copy of {args.db}"
        else:
            from policy import vendor_listings  # bench/policy.py: seeded listings, a third in vendor ranges

            fill_store(db, vendor_listings(work / "policy", args.listings, args.seed))
            made = f"{args.listings:,} seeded listings"
        policy = load_policy(work / "policy")
        ordinary = ordinary_address(policy, args.seed + 2)
        store = ListingStore(db)
        added, _ = store.add([Entry(parse_subject(a)) for a in (SHARED, ordinary)], zone=ZONE, actor="bench",
                             reason="bench", expires=None)
        store.close()
        listed = {a: neighbours(db, a) for a in (SHARED, ordinary)}
        print(f"store: {made}; of the two to look up {added} newly listed, {2 - added} listed already; "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        queries = work / "queries.txt"
        drawn = write_queries(queries, db, args.queries, args.seed)

        server = Server(work, (primary_core, worker_core), args.http_nice)
        try:
            started = time.perf_counter()
            served = server.start()
            print(f"rbl serve answers after {time.perf_counter() - started:.1f} s"
                  + (f": snapshot {served[1]}, {int(served[2]):,} listings in {served[3]} zones, compiled in "
                     f"{float(served[4]):.1f} s" if served else "")
                  + f"; {LAYOUT_WORDS[args.layout]}", flush=True)
            subjects = {SHARED: "AWS EC2 3.5.140.0/22, shared space", ordinary: "no vendor's range"}
            for subject, space in subjects.items():
                answer = server.answer(subject)
                if not answer:
                    raise SystemExit(f"{subject} ({space}) is not listed in DNS: it answers nothing")
                subjects[subject] = f"{space}, DNS {'/'.join(sorted(answer))}, {listed[subject]} listed in its /24"

            # 1. Render time, DNS idle.
            print(f"\nGET /lookup?q=SUBJECT, a listed address: {args.requests} requests one after another on one "
                  f"keep-alive connection, after {WARM} not counted; DNS idle; the full response at the client:")
            width = max(len(words) for words in subjects.values())
            print(f"{'subject':16} {'space, answer':{width}} {'median ms':>9} {'p99 ms':>8} {'first ms':>8} {'KiB':>6}")
            client = Client(server.http)
            try:
                for subject, space in subjects.items():
                    first = client.lookup(subject)
                    for _ in range(WARM - 1):
                        client.lookup(subject)
                    times = [client.lookup(subject) for _ in range(args.requests)]
                    median, p99 = ms(times)
                    print(f"{subject:16} {space:{width}} {median:9.2f} {p99:8.2f} {first * 1000:8.1f} "
                          f"{client.size / 1024:6.1f}",
                          flush=True)
            finally:
                client.close()

            # 2. DNS qps, HTTP idle and then while lookups run back to back.
            print(f"\ndnsperf on 127.0.0.1:{server.dns}, {args.seconds} s a run "
                  + (f"paced at {args.rate:,} qps" if args.rate else "as fast as answered")
                  + f", {args.queries:,} queries (half listed, drawn from {drawn:,}; 10% TXT); idle: HTTP idle, "
                  "loaded: one client's lookups "
                  + (f"at {args.pages:g} a second" if args.pages else "back to back")
                  + " (the two subjects in turn)")
            print(f"{'':49} {'idle/loaded':>11} {'CPU % of a core, idle/loaded (client: loaded)':>45}")
            print(f"{'round':>6} {'idle qps':>9} {'loaded qps':>10} {'loaded/idle':>11} {'lookups/s':>9} "
                  f"{'lookup ms':>9} {'DNS ms':>11} {'DNS worker':>11} {'primary':>9} {'dnsperf':>9} "
                  f"{'client':>6} {'lost':>9}")
            ratios, lags, idle_lags = [], [], []
            for r in range(args.rounds):
                # The same adds in both runs, so the ratio is what the pages cost, not what publishing costs.
                quiet = AddLoop(server, db, first=r * 100 + 50)
                quiet.start()
                try:
                    idle = measured_dnsperf(server, queries, args.seconds, args.rate)
                finally:
                    quiet.halt.set()
                    quiet.join(60)
                idle_lags.extend(quiet.lags)
                loop = LookupLoop(server.http, list(subjects), limit=args.seconds + 60, rate=args.pages)
                adds = AddLoop(server, db, first=r * 100)
                loop.start()
                try:
                    while not loop.cpu and loop.is_alive():  # requests flowing before dnsperf starts
                        time.sleep(0.01)
                    mark, began = len(loop.cpu), time.monotonic()
                    adds.start()
                    loaded = measured_dnsperf(server, queries, args.seconds, args.rate)
                    end, wall = len(loop.cpu), time.monotonic() - began
                finally:
                    loop.halt.set()
                    adds.halt.set()
                    loop.join(60)
                    adds.join(60)
                lags.extend(adds.lags)
                if loop.failed is not None:
                    raise loop.failed
                if end <= mark:
                    raise SystemExit("no lookup was answered while dnsperf ran")
                during = loop.times[mark:end]
                client_cpu = (loop.cpu[end - 1] - loop.cpu[mark - 1]) / wall * 100
                ratios.append(loaded["qps"] / idle["qps"])
                print(f"{r + 1:>6} {idle['qps']:9.0f} {loaded['qps']:10.0f} {ratios[-1]:11.3f} "
                      f"{len(during) / wall:9.0f} {statistics.median(during) * 1000:9.2f} "
                      f"{pair(idle, loaded, 'latency_ms', 3):>11} {pair(idle, loaded, 'worker_cpu'):>11} "
                      f"{pair(idle, loaded, 'primary_cpu'):>9} {pair(idle, loaded, 'dnsperf_cpu'):>9} "
                      f"{client_cpu:6.0f} {pair(idle, loaded, 'lost'):>9}",
                      flush=True)
            print(f"{'median':>6} {'':9} {'':10} {statistics.median(ratios):11.3f}   "
                  f"(every round: {', '.join(f'{x:.3f}' for x in ratios)})")
            for when, seen in (("idle", idle_lags), ("loaded", lags)):
                if seen:
                    print(f"listing add to DNS answer during the {when} runs ({len(seen)} adds, one every 2 s): "
                          f"median {statistics.median(seen):.2f} s, max {max(seen):.2f} s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
