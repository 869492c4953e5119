"""A large DNSBL, side by side with rbldnsd on the same data in the same run (issue 12).

Run by hand (10M takes several minutes and a few GB of disk):

    .venv/bin/python bench/scale.py --ip4 1000000            # about 1.07M listings
    .venv/bin/python bench/scale.py --ip4 10000000 --cidrs 500000 --ip6 100000 --domains 100000

It writes bench/run.py's data set (rbldnsd ip4trie, ip6trie, dnset files) and prints:

- load: ``rbl listing import`` of the three files, and rbldnsd's start to its first answer;
- bytes on disk per listing (store and WAL), beside rbldnsd's data files;
- start to first answer of ``rbl serve``, cold and after a SIGKILL and restart;
- resident memory of every process: rbl's primary and worker (peaks while compiling,
  sampled), its transfer renderer, and rbldnsd;
- a full compile's seconds, and the HTTP lookups' latency while it runs;
- qps of each (dnsperf, one worker and rbldnsd pinned to core 0) and the ratio;
- seconds from ``rbl listing add`` to its answer, and to a Knot secondary's answer
  (NOTIFY, IXFR), when ``knotd`` is installed;
- ``rbl export zonefile`` seconds.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from common import ROOT, arguments, free_port
from run import Rbl, Rbldnsd, answered, dnsperf, generate, rss_kib, write_queries
from transfer import KNOT_CONF, Logged


class Sampler:
    """Peak resident memory of rbl serve's processes, sampled every 50 ms: the primary, its DNS
    workers, its transfer renderer (a helper, only where zones transfer), and primary plus
    workers together (the tree the memory target is about)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peaks = {"primary": 0, "worker": 0, "renderer": 0, "tree": 0}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                own = rss_kib(self.pid)
                children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
                workers = renderer = 0
                for child in children:
                    try:
                        line = Path(f"/proc/{child}/cmdline").read_bytes()
                        if b"rbl.dns.worker" in line:
                            workers += rss_kib(int(child))
                        elif b"rbl.transfer.versions" in line:
                            renderer = rss_kib(int(child))
                    except OSError:
                        continue
            except OSError:
                break
            for name, value in (("primary", own), ("worker", workers), ("renderer", renderer),
                                ("tree", own + workers)):
                self.peaks[name] = max(self.peaks[name], value)
            time.sleep(0.05)

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join(1)
        return {name: kib / 1024 for name, kib in self.peaks.items()}


def compiled(log: Path, after: int = 0) -> int:
    """How many snapshots the server's log says it compiled (full or patched)."""
    text = log.read_text() if log.exists() else ""
    return len(re.findall(r"serving snapshot \d+: \d+ listings", text[after:]))


def lookups_while(port: int, busy, subject: str) -> list[float]:
    """Seconds of each GET /v1/lookup/SUBJECT, one after another, while ``busy()`` holds."""
    out = []
    while busy():
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/lookup/{subject}", timeout=30) as reply:
            reply.read()
        out.append(time.perf_counter() - started)
    return out


def first_answer(peer, name: str, timeout: float = 900) -> float:
    started = time.perf_counter()
    peer.start()
    while not answered(peer.port, name):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{peer.name}: no answer for {name} in {timeout} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def descendants(pid: int) -> list[int]:
    out = []
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return out
    for child in children:
        out += [child, *descendants(child)]
    return out


def main() -> None:
    try:
        run()
    finally:  # a failed run leaves no server behind to load the next one
        for pid in reversed(descendants(os.getpid())):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def run() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--ip4", type=int, default=1_000_000)
    parser.add_argument("--cidrs", type=int, default=50_000)
    parser.add_argument("--ip6", type=int, default=10_000)
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=5, help="Seconds of each dnsperf run.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--no-mapped", action="store_true",
                        help="Zones with export: ipv4_mapped: false (half the records a secondary holds).")
    parser.add_argument("--no-knot", action="store_true", help="No Knot secondary, even when knotd is installed.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rbl-scale-", dir=ROOT.parent) as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # rbldnsd refuses root and reads its files as the rbldns user
        started = time.perf_counter()
        data = generate(work, args.ip4, args.cidrs, args.ip6, args.domains, args.seed)
        listings = sum(len(v) for v in data.values())
        print(f"data set: {listings:,} listings written in {time.perf_counter() - started:.1f} s")
        write_queries(work / "queries.txt", data, 200_000, args.seed)
        probe = ".".join(reversed(str(ipaddress.IPv4Address(data["ip4"][0])).split("."))) + ".bl.example"

        rbldnsd = Rbldnsd(work)
        rbldnsd_load = first_answer(rbldnsd, probe)
        rbldnsd_rss = rss_kib(rbldnsd.proc.pid) / 1024
        text_bytes = sum((work / n).stat().st_size for n in ("ip4.data", "ip6.data", "dom.data"))

        # The shipped zones with transfers to a Knot secondary.
        shutil.copytree(ROOT / "zones", work / "zones")
        if args.no_mapped:
            zone_file = work / "zones" / "bl.example.yaml"
            zone_file.write_text(zone_file.read_text().replace("  ipv4_mapped: true", "  ipv4_mapped: false"))
        secret = base64.b64encode(os.urandom(32)).decode()
        (work / "zones" / "xfr.key").write_text(secret + "\n")
        knot_port = free_port()
        # Held until Knot starts, so no port picked meanwhile (rbl's DNS and HTTP) can be it.
        held = [socket.socket(socket.AF_INET, kind) for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)]
        for sock in held:
            sock.bind(("127.0.0.1", knot_port))
        with open(work / "zones" / "bl.example.yaml", "a") as f:
            f.write(f"\ntransfer:\n  allow: [127.0.0.0/8]\n  key: {{name: xfr, secret_file: xfr.key}}\n"
                    f"  secondaries: ['127.0.0.1:{knot_port}']\n")
        rbl = Rbl(work, work / "zones")  # imports the three files
        store = sum(p.stat().st_size for p in work.glob("rbl.db*"))
        memory = {"primary": 0.0, "worker": 0.0, "renderer": 0.0, "tree": 0.0}
        starts = []
        log = work / "serve.log"
        for kind in ("cold", "after SIGKILL"):
            http_port = free_port()
            proc_started = time.perf_counter()
            mark = len(log.read_text()) if log.exists() else 0
            rbl.start(log, http_port)
            sampler = Sampler(rbl.proc.pid)
            while not answered(rbl.port, probe):
                time.sleep(0.01)
            starts.append((kind, time.perf_counter() - proc_started))
            while not compiled(log, mark):  # after a restart the first compile follows the first answer
                time.sleep(0.05)
            time.sleep(1)
            for name, value in sampler.stop().items():
                memory[name] = max(memory[name], value)
            if kind == "cold":
                os.kill(rbl.proc.pid, signal.SIGKILL)
                rbl.proc.wait()
                for child in Path("/proc").glob("[0-9]*/cmdline"):
                    try:
                        if b"rbl.dns.worker" in child.read_bytes() and str(work).encode() in child.read_bytes():
                            os.kill(int(child.parent.name), signal.SIGKILL)
                    except OSError:
                        pass
        worker = rss_kib(rbl.worker_pid()) / 1024
        kept = "serving the kept snapshot" in log.read_text()

        # A full compile (a zone file touched) while HTTP lookups go on, one after another.
        mark = len(log.read_text())
        os.utime(work / "zones" / "bl.example.yaml")
        compile_started = time.perf_counter()
        latencies = lookups_while(http_port, lambda: not compiled(log, mark), "192.0.2.1")
        full_seconds = time.perf_counter() - compile_started
        found = re.findall(r"compiled in ([\d.]+) s", log.read_text()[mark:])
        compile_seconds = float(found[-1]) if found else full_seconds

        knotd = shutil.which("knotd") or ("/usr/sbin/knotd" if os.path.exists("/usr/sbin/knotd") else None)
        knotd = None if args.no_knot else knotd
        knot = None
        knot_axfr = None
        if knotd:
            kdir = work / "knot"
            (kdir / "db").mkdir(parents=True)
            (kdir / "zones").mkdir()
            (kdir / "knot.conf").write_text(KNOT_CONF.format(dir=kdir, port=knot_port, key="xfr", secret=secret,
                                                             primary=rbl.port, origin="bl.example"))
            for sock in held:
                sock.close()
            knot = Logged(["taskset", "-c", "1", knotd, "-c", str(kdir / "knot.conf")], path=kdir / "stdout.log")
            knot.path = kdir / "knot.log"
            done = knot.wait_for(r"AXFR, incoming, remote [^,]+, finished, ([\d.]+) seconds", 3600)
            knot_axfr = float(done[1])
            knot.wait_for(r"zone updated", 600)

        ratios = []
        for _ in range(args.rounds):
            ours = dnsperf(rbl.port, work / "queries.txt", args.seconds)["qps"]
            theirs = dnsperf(rbldnsd.port, work / "queries.txt", args.seconds)["qps"]
            ratios.append(ours / theirs)

        # An address nothing answers yet (the data's CIDRs cover much of the space).
        rng = random.Random(args.seed + 7)
        while True:
            added = f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            name = ".".join(reversed(added.split("."))) + ".bl.example"
            if not added.startswith("127.") and not answered(rbl.port, name) \
                    and (knot is None or not answered(knot_port, name)):
                break
        change_started = time.perf_counter()
        rbl.rbl("listing", "add", added, "--expires", "never")
        while not answered(rbl.port, name):
            time.sleep(0.01)
        add_seconds = time.perf_counter() - change_started
        knot_seconds = None
        if knot is not None:
            while not answered(knot_port, name):
                if time.perf_counter() - change_started > 300:
                    break
                time.sleep(0.05)
            else:
                knot_seconds = time.perf_counter() - change_started
            knot_ixfr = "IXFR, incoming" in knot.text()
            knot_updates = re.findall(r"zone updated, ([\d.]+) seconds", knot.text())
            knot.stop()
        versions = re.findall(r"transfer version \d+ of bl\.example: (\d+) records, (\d+) bytes, rendered in "
                              r"([\d.]+) s", log.read_text())

        export_started = time.perf_counter()
        try:
            rbl.rbl("export", "zonefile", str(work / "export"))
            export_seconds = time.perf_counter() - export_started
        except subprocess.CalledProcessError as exc:  # the other figures still count
            print(f"export failed: {exc.stderr.decode(errors='replace')[-2000:]}")
            export_seconds = float("nan")
        export_bytes = sum(p.stat().st_size for p in (work / "export").rglob("*") if p.is_file())
        rbl.stop()
        rbldnsd.stop()

    print(f"\n{'':38}{'rbldnsd':>12}{'rbl':>12}{'ratio':>8}")
    print(f"{'load (s)':38}{rbldnsd_load:12.2f}{rbl.load_seconds:12.2f}{rbl.load_seconds / rbldnsd_load:8.1f}")
    print(f"{'lines a second, rbl listing import':38}{'':12}{listings / rbl.load_seconds:12,.0f}")
    print(f"{'bytes on disk per listing':38}{text_bytes / listings:12.1f}{store / listings:12.1f}"
          f"{store / text_bytes:8.1f}")
    for kind, seconds in starts:
        print(f"{'start to first answer, ' + kind + ' (s)':38}{rbldnsd_load:12.2f}{seconds:12.2f}"
              f"{seconds / rbldnsd_load:8.1f}" + ("   from the kept snapshot" if kind != "cold" and kept else ""))
    tree = memory["tree"]
    print(f"{'memory, primary + worker, peak (MiB)':38}{rbldnsd_rss:12.1f}{tree:12.1f}{tree / rbldnsd_rss:8.1f}")
    print(f"{'memory, primary peak (MiB)':38}{'':12}{memory['primary']:12.1f}")
    print(f"{'memory, worker peak / steady (MiB)':38}{rbldnsd_rss:12.1f}{memory['worker']:12.1f}"
          f"{memory['worker'] / rbldnsd_rss:8.1f}   steady {worker:.1f} ({worker / rbldnsd_rss:.1f}x)")
    print(f"{'memory, transfer renderer peak (MiB)':38}{'':12}{memory['renderer']:12.1f}")
    print(f"{'full compile (s)':38}{'':12}{compile_seconds:12.2f}")
    if latencies:
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"{'HTTP lookup during it, p50/p99/max (ms)':38}{'':12}{statistics.median(ordered) * 1000:12.1f}"
              f"   p99 {p99 * 1000:.1f}, max {ordered[-1] * 1000:.1f}, {len(ordered)} requests")
    print(f"{'qps ratio, median of ' + str(args.rounds):38}{'':12}{'':12}{statistics.median(ratios):8.2f}"
          f"   rounds: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"{'listing add to its answer (s)':38}{'':12}{add_seconds:12.2f}")
    print(f"{'export zonefile (s, MiB)':38}{'':12}{export_seconds:12.2f}   {export_bytes / 2**20:.0f} MiB")
    if versions:
        print(f"{'transfer version, first / last (s)':38}{'':12}{float(versions[0][2]):12.2f}   "
              f"last {float(versions[-1][2]):.2f} s; {int(versions[-1][0]):,} records, "
              f"{int(versions[-1][1]) / 2**20:.0f} MiB")
    if knot_seconds is not None:
        print(f"{'listing add to Knot answering (s)':38}{'':12}{knot_seconds:12.2f}   "
              f"{'by IXFR' if knot_ixfr else 'no IXFR seen'}; Knot's first AXFR {knot_axfr:.1f} s, applying "
              f"the last IXFR {float(knot_updates[-1]) if knot_updates else float('nan'):.1f} s (Knot's log)")
    else:
        print("Knot: " + ("not installed" if not knotd else "did not answer the change within 300 s"))


if __name__ == "__main__":
    sys.exit(main())
