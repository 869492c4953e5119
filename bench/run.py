"""Benchmark rbl against rbldnsd on the same data, in the same run, with dnsperf.

Run by hand (it takes minutes, not seconds):

    sh scripts/bootstrap bench                 # defaults below
    .venv/bin/python bench/run.py --ip4 100000 --rounds 3 --seconds 10

It generates a seeded dataset, loads it into rbl (``rbl listing import``) and into
rbldnsd (ip4trie, ip6trie, dnset files), then runs dnsperf against each server in
turns with the same query file, server pinned to one core and dnsperf to the
other. It prints medians over the rounds and the ratio rbl / rbldnsd: on a shared
machine a ratio measured side by side means more than any absolute number.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parents[1]
TXT = "Listed by bl.example, see https://bl.example/lookup?q=$"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def dnsperf(port: int, queries: Path, seconds: int, max_qps: int | None) -> dict:
    cmd = ["taskset", "-c", "1", "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
           "-l", str(seconds), "-c", "1", "-q", "100", "-t", "2"]
    if max_qps:
        cmd += ["-Q", str(max_qps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def grab(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match[1]) if match else float("nan")

    return {
        "qps": grab(r"Queries per second:\s+([\d.]+)"),
        "lost": grab(r"Queries lost:\s+(\d+)"),
        "latency_ms": grab(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
    }


class Peer:
    name = ""

    def start(self) -> None: ...

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Rbl(Peer):
    name = "rbl"

    def __init__(self, work: Path):
        self.work = work
        self.env = dict(os.environ, RBL_DB=str(work / "rbl.db"), RBL_POLICY=str(ROOT / "policy"),
                        RBL_ZONES=str(ROOT / "zones"))
        started = time.perf_counter()
        for name in ("ip4.data", "ip6.data", "dom.data"):
            subprocess.run([sys.executable, "-m", "rbl", "listing", "import", str(work / name), "--format",
                            "rbldnsd", "--expires", "never"], env=self.env, check=True, capture_output=True)
        self.load_seconds = time.perf_counter() - started

    def start(self) -> None:
        self.port = free_port()
        started = time.perf_counter()
        self.proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "rbl", "serve", "--dns",
                                      f"127.0.0.1:{self.port}"], env=self.env, stderr=subprocess.DEVNULL)
        wait_udp(self.port)
        self.start_seconds = time.perf_counter() - started


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ip4", type=int, default=100_000, help="single IPv4 listings")
    parser.add_argument("--cidrs", type=int, default=2_000)
    parser.add_argument("--ip6", type=int, default=5_000)
    parser.add_argument("--domains", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=5782)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rbl-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # rbldnsd refuses root and reads its files as the rbldns user
        data = generate(work, args.ip4, args.cidrs, args.ip6, args.domains, args.seed)
        queries = work / "queries.txt"
        write_queries(queries, data, args.queries, args.seed)
        peers = [Rbldnsd(work), Rbl(work)]
        results: dict[str, list[dict]] = {p.name: [] for p in peers}
        for round_ in range(args.rounds):
            for peer in peers:
                peer.start()
                try:
                    result = dnsperf(peer.port, queries, args.seconds, None)
                    result["rss_mib"] = rss_kib(peer.proc.pid) / 1024
                    result["start_s"] = peer.start_seconds
                    results[peer.name].append(result)
                finally:
                    peer.stop()
                print(f"round {round_ + 1} {peer.name:8} {result['qps']:>10.0f} qps  lost {result['lost']:.0f}  "
                      f"latency {result['latency_ms']:.3f} ms  rss {result['rss_mib']:.1f} MiB", flush=True)
        listings = args.ip4 + args.cidrs + args.ip6 + args.domains
        print(f"\n{listings} listings, {args.queries} queries, {args.rounds} rounds of {args.seconds} s, medians:")
        print(f"{'server':10}{'qps':>10}{'lost':>8}{'lat ms':>9}{'rss MiB':>9}{'start s':>9}{'load s':>8}")
        med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
        for peer in peers:
            m = med[peer.name]
            print(f"{peer.name:10}{m['qps']:>10.0f}{m['lost']:>8.0f}{m['latency_ms']:>9.3f}{m['rss_mib']:>9.1f}"
                  f"{m['start_s']:>9.2f}{peer.load_seconds:>8.2f}")
        base, ours = med["rbldnsd"], med["rbl"]
        print(f"\nrbl / rbldnsd: qps {ours['qps'] / base['qps']:.3f}, rss {ours['rss_mib'] / base['rss_mib']:.2f}")


if __name__ == "__main__":
    main()
