"""A large DNSBL, side by side with rbldnsd on the same data in the same run (issue 12).

Run by hand (10M takes several minutes and a few GB of disk):

    .venv/bin/python bench/scale.py --ip4 1000000            # about 1.07M listings
    .venv/bin/python bench/scale.py --ip4 10000000 --cidrs 500000 --ip6 100000 --domains 100000

It writes bench/run.py's data set (rbldnsd ip4trie, ip6trie, dnset files) and prints:

- load: ``rbl listing import`` of the three files, and rbldnsd's start to its first answer;
- bytes on disk per listing (store and WAL), beside rbldnsd's data files;
- start to first answer of ``rbl serve``, cold and after a SIGKILL and restart;
- resident memory of every process: rbl's primary (peak while compiling, sampled),
  its worker, and rbldnsd;
- qps of each (dnsperf, one worker and rbldnsd pinned to core 0) and the ratio;
- seconds from ``rbl listing add`` to its answer, and to a Knot secondary's answer
  (NOTIFY, IXFR), when ``knotd`` is installed;
- ``rbl export zonefile`` seconds.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, arguments, free_port
from run import Rbl, Rbldnsd, answered, dnsperf, generate, rss_kib, write_queries
from transfer import KNOT_CONF, Logged


class Sampler:
    """The peak resident memory of a process and its children, sampled every 50 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.peak_tree = pid, 0, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                own = rss_kib(self.pid)
                children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
                tree = own + sum(rss_kib(int(c)) for c in children)
            except OSError:
                break
            self.peak, self.peak_tree = max(self.peak, own), max(self.peak_tree, tree)
            time.sleep(0.05)

    def stop(self) -> tuple[float, float]:
        self.done.set()
        self.thread.join(1)
        return self.peak / 1024, self.peak_tree / 1024


def first_answer(peer, name: str, timeout: float = 900) -> float:
    started = time.perf_counter()
    peer.start()
    while not answered(peer.port, name):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{peer.name}: no answer for {name} in {timeout} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--ip4", type=int, default=1_000_000)
    parser.add_argument("--cidrs", type=int, default=50_000)
    parser.add_argument("--ip6", type=int, default=10_000)
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=5, help="Seconds of each dnsperf run.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rbl-scale-", dir=ROOT.parent) as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # rbldnsd refuses root and reads its files as the rbldns user
        started = time.perf_counter()
        data = generate(work, args.ip4, args.cidrs, args.ip6, args.domains, args.seed)
        listings = sum(len(v) for v in data.values())
        print(f"data set: {listings:,} listings written in {time.perf_counter() - started:.1f} s")
        write_queries(work / "queries.txt", data, 200_000, args.seed)
        probe = ".".join(reversed(str(__import__("ipaddress").IPv4Address(data["ip4"][0])).split("."))) + ".bl.example"

        rbldnsd = Rbldnsd(work)
        rbldnsd_load = first_answer(rbldnsd, probe)
        rbldnsd_rss = rss_kib(rbldnsd.proc.pid) / 1024
        text_bytes = sum((work / n).stat().st_size for n in ("ip4.data", "ip6.data", "dom.data"))

        # The shipped zones with transfers to a Knot secondary.
        shutil.copytree(ROOT / "zones", work / "zones")
        secret = base64.b64encode(os.urandom(32)).decode()
        (work / "zones" / "xfr.key").write_text(secret + "\n")
        knot_port = free_port()
        with open(work / "zones" / "bl.example.yaml", "a") as f:
            f.write(f"\ntransfer:\n  allow: [127.0.0.0/8]\n  key: {{name: xfr, secret_file: xfr.key}}\n"
                    f"  secondaries: ['127.0.0.1:{knot_port}']\n")
        rbl = Rbl(work, work / "zones")  # imports the three files
        store = sum(p.stat().st_size for p in work.glob("rbl.db*"))
        primary = worker = tree = 0.0
        starts = []
        for kind in ("cold", "after SIGKILL"):
            proc_started = time.perf_counter()
            rbl.start()
            sampler = Sampler(rbl.proc.pid)
            while not answered(rbl.port, probe):
                time.sleep(0.01)
            starts.append((kind, time.perf_counter() - proc_started))
            time.sleep(1)
            peak, peak_tree = sampler.stop()
            primary, tree = max(primary, peak), max(tree, peak_tree)
            worker = rss_kib(rbl.worker_pid()) / 1024
            if kind == "cold":
                os.kill(rbl.proc.pid, signal.SIGKILL)
                rbl.proc.wait()
                for child in Path("/proc").glob("[0-9]*/cmdline"):
                    try:
                        if b"rbl.dns.worker" in child.read_bytes() and str(work).encode() in child.read_bytes():
                            os.kill(int(child.parent.name), signal.SIGKILL)
                    except OSError:
                        pass

        knotd = shutil.which("knotd") or ("/usr/sbin/knotd" if os.path.exists("/usr/sbin/knotd") else None)
        knot = None
        knot_axfr = None
        if knotd:
            kdir = work / "knot"
            (kdir / "db").mkdir(parents=True)
            (kdir / "zones").mkdir()
            (kdir / "knot.conf").write_text(KNOT_CONF.format(dir=kdir, port=knot_port, key="xfr", secret=secret,
                                                             primary=rbl.port, origin="bl.example"))
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

        added = "203.0.113.77"
        name = "77.113.0.203.bl.example"
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
            knot.stop()

        export_started = time.perf_counter()
        rbl.rbl("export", "zonefile", str(work / "export"))
        export_seconds = time.perf_counter() - export_started
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
              f"{seconds / rbldnsd_load:8.1f}")
    print(f"{'memory, the whole tree, peak (MiB)':38}{rbldnsd_rss:12.1f}{tree:12.1f}{tree / rbldnsd_rss:8.1f}")
    print(f"{'memory, primary peak (MiB)':38}{'':12}{primary:12.1f}")
    print(f"{'memory, one worker (MiB)':38}{rbldnsd_rss:12.1f}{worker:12.1f}{worker / rbldnsd_rss:8.1f}")
    print(f"{'qps ratio, median of ' + str(args.rounds):38}{'':12}{'':12}{statistics.median(ratios):8.2f}"
          f"   rounds: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"{'listing add to its answer (s)':38}{'':12}{add_seconds:12.2f}")
    print(f"{'export zonefile (s, MiB)':38}{'':12}{export_seconds:12.2f}   {export_bytes / 2**20:.0f} MiB")
    if knot_seconds is not None:
        print(f"{'listing add to Knot answering (s)':38}{'':12}{knot_seconds:12.2f}   "
              f"{'by IXFR' if knot_ixfr else 'no IXFR seen'}; Knot's first AXFR {knot_axfr:.1f} s")
    else:
        print("Knot: " + ("not installed" if not knotd else "did not answer the change within 300 s"))


if __name__ == "__main__":
    sys.exit(main())
