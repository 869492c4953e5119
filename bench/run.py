"""Benchmark rbl against rbldnsd on the same data, in the same run, with dnsperf.

Run by hand (it takes several minutes):

    sh scripts/bootstrap bench                       # the issue's data set: 1,000,000 IPv4 ...
    .venv/bin/python bench/run.py --ip4 100000 --rounds 3 --seconds 10

It generates a seeded data set, loads it into rbl (``rbl listing import``) and
into rbldnsd (ip4trie, ip6trie, dnset files), then measures, server pinned to
core 0 and dnsperf to core 1, with one query file:

1. maximum rate, each server in turn, several rounds: qps, lost, mean latency;
2. a paced run at 80% of rbl's maximum for each server: lost, SERVFAIL, p99;
3. rbl at 50% of its maximum while 10,000 listings are imported: lost, SERVFAIL;
4. one listing added while everything is served: seconds until it answers;
5. compile time of the whole store, resident memory of rbldnsd and of one rbl
   DNS worker (and of rbl's primary, which compiles).

It prints medians and the ratio rbl / rbldnsd: on a shared machine a ratio
measured side by side means more than any absolute number.
"""

from __future__ import annotations

from array import array
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
import ipaddress
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, arguments, free_port, stop

TXT = "Listed by bl.example, see https://bl.example/lookup?q=$"


def generate(out: Path, n_ip4: int, n_cidr: int, n_ip6: int, n_dom: int, seed: int) -> dict:
    """Write rbldnsd data files and return the listed subjects for the query mix."""
    rng = random.Random(seed)
    ip4 = set()
    while len(ip4) < n_ip4:
        a = rng.randrange(0x01000000, 0xDF000000)
        if a >> 24 != 127:
            ip4.add(a)
    cidrs = set()
    while len(cidrs) < n_cidr:
        plen = rng.randrange(16, 31)
        a = rng.randrange(0x01000000, 0xDF000000) >> (32 - plen) << (32 - plen)
        if a >> 24 != 127:
            cidrs.add((a, plen))
    ip6 = set()
    while len(ip6) < n_ip6:
        plen = rng.choice([48, 56, 64, 128])
        a = (0x2001_0DB8 << 96 | rng.getrandbits(96)) >> (128 - plen) << (128 - plen)
        ip6.add((a, plen))
    doms = {f"host{i}.{rng.choice(['spam', 'bad', 'evil'])}{rng.randrange(1000)}.example" for i in range(n_dom)}
    with open(out / "ip4.data", "w") as f:
        f.write(f":127.0.0.2:{TXT}\n")
        f.writelines(f"{ipaddress.IPv4Address(a)}\n" for a in ip4)
        f.writelines(f"{ipaddress.IPv4Address(a)}/{p}\n" for a, p in cidrs)
    with open(out / "ip6.data", "w") as f:
        f.write(f":127.0.0.2:{TXT}\n")
        f.writelines(f"{ipaddress.IPv6Address(a)}/{p}\n" for a, p in ip6)
    with open(out / "dom.data", "w") as f:
        f.write(f":127.0.0.2:{TXT}\n")
        f.writelines(f"{d}\n" for d in doms)
    return {"ip4": sorted(ip4), "cidrs": sorted(cidrs), "ip6": sorted(ip6), "doms": sorted(doms)}


def write_queries(path: Path, data: dict, count: int, seed: int) -> None:
    """About half listed, 10% TXT, a few IPv6 and domains."""
    rng = random.Random(seed + 1)
    lines = []
    for _ in range(count):
        qtype = "TXT" if rng.random() < 0.10 else "A"
        r = rng.random()
        if r < 0.03:
            a, p = rng.choice(data["ip6"])
            name = ".".join(reversed(f"{a | rng.getrandbits(128 - p):032x}"))
        elif r < 0.05:
            name = rng.choice(data["doms"])
        elif r < 0.50:
            if rng.random() < 0.8:
                a = rng.choice(data["ip4"])
            else:
                c, p = rng.choice(data["cidrs"])
                a = c | rng.getrandbits(32 - p)
            name = ".".join(reversed(str(ipaddress.IPv4Address(a)).split(".")))
        else:
            a = rng.randrange(0x01000000, 0xDF000000)
            name = ".".join(reversed(str(ipaddress.IPv4Address(a)).split(".")))
        lines.append(f"{name}.bl.example {qtype}\n")
    path.write_text("".join(lines))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_udp(port: int, timeout: float = 120) -> None:
    query = bytes.fromhex("abcd01000001000000000000") + b"\x012\x010\x010\x03127\x02bl\x07example\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(query, ("127.0.0.1", port))
            try:
                if s.recv(512):
                    return
            except OSError:
                time.sleep(0.1)
    raise RuntimeError(f"no DNS answer on port {port}")


def dnsperf(port: int, queries: Path, seconds: int, max_qps: int | None = None, verbose: bool = False) -> dict:
    """One dnsperf run; with verbose, every answer's rcode and latency too (p99, SERVFAIL)."""
    cmd = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
           "-l", str(seconds), "-c", "1", "-q", "100", "-t", "2"]
    if max_qps:
        cmd += ["-Q", str(int(max_qps))]
    if verbose:
        cmd.append("-v")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    latencies = array("d")
    rcodes: Counter = Counter()
    summary = []
    for line in proc.stdout:
        if line.startswith("> "):
            fields = line.split()
            rcodes[fields[1]] += 1
            latencies.append(float(fields[-1]))
        else:
            summary.append(line)
    proc.wait()
    out = "".join(summary)

    def grab(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match[1]) if match else float("nan")

    result = {
        "qps": grab(r"Queries per second:\s+([\d.]+)"),
        "lost": grab(r"Queries lost:\s+(\d+)"),
        "latency_ms": grab(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
    }
    if verbose:
        ordered = sorted(latencies)
        result["p99_ms"] = ordered[int(len(ordered) * 0.99)] * 1000 if ordered else float("nan")
        result["servfail"] = rcodes.get("SERVFAIL", 0)
    return result


class Peer:
    name = ""
    proc: subprocess.Popen

    def start(self) -> None: ...

    def rss_mib(self) -> float:
        """Resident memory of the process that answers DNS."""
        return rss_kib(self.proc.pid) / 1024

    def stop(self) -> None:
        stop(self.proc, 10)


class Rbl(Peer):
    name = "rbl"

    def __init__(self, work: Path, zones: Path = ROOT / "zones"):
        self.work = work
        self.env = dict(os.environ, RBL_DB=str(work / "rbl.db"), RBL_POLICY=str(ROOT / "policy"),
                        RBL_ZONES=str(zones))
        started = time.perf_counter()
        for name in ("ip4.data", "ip6.data", "dom.data"):
            self.rbl("listing", "import", str(work / name), "--format", "rbldnsd", "--expires", "never")
        self.load_seconds = time.perf_counter() - started

    def rbl(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "rbl", *args], env=self.env, check=True, capture_output=True)

    def start(self, log: Path | None = None, http: int | None = None) -> None:
        """``log``: where the server's log goes (default: nowhere); ``http``: serve HTTP on this port."""
        self.port = free_port()
        started = time.perf_counter()
        # The primary (store, compiler) on core 1 with dnsperf; the one DNS worker inherits
        # core 0 below, so the worker alone is measured against rbldnsd alone.
        out = open(log, "a") if log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", "rbl", "serve", "--workers", "1", "--http",
                                      f"127.0.0.1:{http}" if http else "off", "--dns", f"127.0.0.1:{self.port}"],
                                     env=self.env, stderr=out)
        if log is not None:
            out.close()
        wait_udp(self.port)
        self.start_seconds = time.perf_counter() - started
        subprocess.run(["taskset", "-p", "-c", "1", str(self.proc.pid)], check=True, capture_output=True)
        subprocess.run(["taskset", "-p", "-c", "0", str(self.worker_pid())], check=True, capture_output=True)

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return next(int(pid) for pid in children if b"rbl.dns.worker" in Path(f"/proc/{pid}/cmdline").read_bytes())

    def rss_mib(self) -> float:
        return rss_kib(self.worker_pid()) / 1024

    def primary_rss_mib(self) -> float:
        return rss_kib(self.proc.pid) / 1024


class Rbldnsd(Peer):
    name = "rbldnsd"

    def __init__(self, work: Path):
        self.work = work
        self.load_seconds = 0.0

    def start(self) -> None:
        self.port = free_port()
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", shutil.which("rbldnsd") or "/usr/sbin/rbldnsd", "-n", "-q", "-u", "rbldns",
             "-b", f"127.0.0.1/{self.port}", "-w", str(self.work), "-t", "2100",
             "bl.example:ip4trie:ip4.data", "bl.example:ip6trie:ip6.data", "bl.example:dnset:dom.data"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_udp(self.port)
        self.start_seconds = time.perf_counter() - started


def answered(port: int, name: str) -> bool:
    """Whether name answers NOERROR with an answer (a listed subject)."""
    labels = b"".join(bytes([len(x)]) + x.encode() for x in name.split("."))
    query = bytes.fromhex("beef01000001000000000000") + labels + b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(query, ("127.0.0.1", port))
        try:
            reply = s.recv(512)
        except OSError:
            return False
    return reply[3] & 0x0F == 0 and reply[7] > 0


def compile_seconds(work: Path, rounds: int) -> float:
    """Median time to compile the whole store into a serving snapshot, in process."""
    from rbl.zone.source import SnapshotSource

    source = SnapshotSource(str(work / "rbl.db"), str(ROOT / "policy"), str(ROOT / "zones"))
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        source.build()
        times.append(time.perf_counter() - started)
    source.store.close()
    return statistics.median(times)


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--ip4", type=int, default=1_000_000, help="single IPv4 listings")
    parser.add_argument("--cidrs", type=int, default=20_000, help="IPv4 CIDRs /16../30")
    parser.add_argument("--ip6", type=int, default=50_000, help="IPv6 prefixes /48../128")
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10, help="length of each maximum-rate run")
    parser.add_argument("--paced-seconds", type=int, default=30, help="length of the 80%% run")
    parser.add_argument("--seed", type=int, default=5782)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rbl-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # rbldnsd refuses root and reads its files as the rbldns user
        data = generate(work, args.ip4, args.cidrs, args.ip6, args.domains, args.seed)
        queries = work / "queries.txt"
        write_queries(queries, data, args.queries, args.seed)
        listings = args.ip4 + args.cidrs + args.ip6 + args.domains
        print(f"{listings} listings ({args.ip4} IPv4, {args.cidrs} CIDRs, {args.ip6} IPv6, {args.domains} domains), "
              f"{args.queries} queries", flush=True)
        rbldnsd, rbl = Rbldnsd(work), Rbl(work)
        print(f"rbl import of the data: {rbl.load_seconds:.1f} s", flush=True)
        peers = [rbldnsd, rbl]
        results: dict[str, list[dict]] = {p.name: [] for p in peers}
        for round_ in range(args.rounds):
            for peer in peers:
                peer.start()
                try:
                    result = dnsperf(peer.port, queries, args.seconds)
                    result["rss_mib"] = peer.rss_mib()
                    result["start_s"] = peer.start_seconds
                    results[peer.name].append(result)
                finally:
                    peer.stop()
                print(f"round {round_ + 1} {peer.name:8} {result['qps']:>10.0f} qps  lost {result['lost']:.0f}  "
                      f"latency {result['latency_ms']:.3f} ms  rss {result['rss_mib']:.1f} MiB", flush=True)
        med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}

        # Paced at 80% of rbl's maximum, both servers: loss, SERVFAIL and p99 latency.
        paced_rate = 0.8 * med["rbl"]["qps"]
        for peer in peers:
            peer.start()
            try:
                med[peer.name]["paced"] = dnsperf(peer.port, queries, args.paced_seconds, paced_rate, verbose=True)
            finally:
                peer.stop()

        # rbl under 50% load while 10,000 listings arrive; then one more listing's delay.
        extra = work / "extra.txt"
        extra.write_text("".join(f"198.18.{i // 250}.{i % 250 + 1}\n" for i in range(10_000)))
        rbl.start()
        try:
            primary_rss = rbl.primary_rss_mib()
            pool = ThreadPoolExecutor(1)
            live = pool.submit(dnsperf, rbl.port, queries, 20, 0.5 * med["rbl"]["qps"], True)
            time.sleep(5)
            bulk_started = time.monotonic()  # from the command's start: it is part of the delay
            rbl.rbl("listing", "import", str(extra), "--format", "plain", "--expires", "never")
            while not answered(rbl.port, "250.39.18.198.bl.example") and time.monotonic() - bulk_started < 30:
                time.sleep(0.01)
            bulk_seconds = time.monotonic() - bulk_started
            during = live.result()
            pool.shutdown()
            one_started = time.monotonic()
            rbl.rbl("listing", "add", "192.0.2.99")
            while not answered(rbl.port, "99.2.0.192.bl.example") and time.monotonic() - one_started < 30:
                time.sleep(0.005)
            one_seconds = time.monotonic() - one_started
        finally:
            rbl.stop()
        compile_s = compile_seconds(work, 3)

        print(f"\nmedians of {args.rounds} rounds of {args.seconds} s at the maximum rate:")
        print(f"{'server':10}{'qps':>10}{'lost':>8}{'mean ms':>9}{'rss MiB':>9}{'start s':>9}")
        for peer in peers:
            m = med[peer.name]
            print(f"{peer.name:10}{m['qps']:>10.0f}{m['lost']:>8.0f}{m['latency_ms']:>9.3f}{m['rss_mib']:>9.1f}"
                  f"{m['start_s']:>9.2f}")
        print(f"\npaced at {paced_rate:.0f} qps (80% of rbl's maximum) for {args.paced_seconds} s:")
        print(f"{'server':10}{'qps':>10}{'lost':>8}{'SERVFAIL':>10}{'mean ms':>9}{'p99 ms':>9}")
        for peer in peers:
            p = med[peer.name]["paced"]
            print(f"{peer.name:10}{p['qps']:>10.0f}{p['lost']:>8.0f}{p['servfail']:>10}{p['latency_ms']:>9.3f}"
                  f"{p['p99_ms']:>9.3f}")
        base, ours = med["rbldnsd"], med["rbl"]
        print("\nrbl / rbldnsd:"
              f" qps {ours['qps'] / base['qps']:.3f} (target >= 0.6),"
              f" mean latency {ours['latency_ms'] / base['latency_ms']:.2f},"
              f" p99 at 80% {ours['paced']['p99_ms'] / base['paced']['p99_ms']:.2f},"
              f" worker rss {ours['rss_mib'] / base['rss_mib']:.2f} (target <= 3)")
        print(f"rbl primary (store + compiler) rss: {primary_rss:.1f} MiB")
        print(f"compile {listings} listings from the store: {compile_s:.2f} s (target <= 5)")
        print(f"10,000 listings imported at 50% load: all answered after {bulk_seconds:.2f} s; during the run "
              f"{during['lost']:.0f} lost, {during['servfail']} SERVFAIL (target 0, 0)")
        print(f"one listing added with {listings + 10_000} served: answered {one_seconds:.2f} s after "
              "`rbl listing add` started (target <= 1)")


if __name__ == "__main__":
    main()
