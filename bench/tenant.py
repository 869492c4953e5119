"""The tenant zone: pair queries against plain address queries, rbl and rbldnsd, same data, same run.

Run by hand (a few minutes):

    .venv/bin/python bench/tenant.py                          # 100,000 addresses, 3 identities each
    .venv/bin/python bench/tenant.py --addresses 20000 --rounds 3 --seconds 5

It lists ``--addresses`` single addresses in the shipped policy's shared cloud space, each naming
three DKIM signing domains, then:

1. compiles the snapshot in process: seconds, the tenant zone's bytes, the snapshot file's size;
2. serves it with ``rbl serve`` (one DNS worker on core 0) and with rbldnsd on the same core from
   ``rbl export rbldnsd``, and measures with dnsperf on core 1 two query files: the listed
   addresses (``d.c.b.a.bl.example``) and pairs (``identity.d.c.b.a.tenant.bl.example``, half
   implicated, half bystander);
3. prints medians of ``--rounds`` rounds: each server's qps for both, the pair / address ratio of
   each, and rbl / rbldnsd for both.
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, arguments, free_port, stop
from run import dnsperf, rss_kib, wait_udp


def shared_addresses(count: int, rng: random.Random) -> list[str]:
    from rbl.policy.vendors import load_policy

    ranges = [r for r in load_policy(ROOT / "policy").classification.ranges
              if r is not None and r.kind == "ip4" and r.space == "shared" and r.plen <= 24]
    weights = [1 << (32 - r.plen) for r in ranges]
    out: set[int] = set()
    while len(out) < count:
        r = rng.choices(ranges, weights)[0]
        out.add(r.net + rng.randrange(1, (1 << (32 - r.plen)) - 1))
    return [str(ipaddress.IPv4Address(a)) for a in sorted(out)]


def signer(rng: random.Random) -> str:
    return f"{rng.choice(('mail', 'news', 'bulk', 'em'))}{rng.randrange(10**6)}.shop{rng.randrange(10**6)}.example"


def fill(db: Path, addresses: list[str], rng: random.Random) -> tuple[float, dict[str, tuple[str, ...]]]:
    from rbl.addresses import parse_subject
    from rbl.store import ListingStore
    from rbl.store.listings import Entry

    named = {a: tuple(sorted({signer(rng) for _ in range(3)})) for a in addresses}
    store = ListingStore(str(db))
    started = time.perf_counter()
    for i in range(0, len(addresses), 10_000):
        chunk = addresses[i:i + 10_000]
        store.add([Entry(parse_subject(a), identities=named[a]) for a in chunk], zone="bl.example", actor="bench",
                  expires=None)
    seconds = time.perf_counter() - started
    store.close()
    return seconds, named


def compiled(db: Path, work: Path) -> dict:
    from rbl.zone.snapshot_file import write_snapshot
    from rbl.zone.source import SnapshotSource
    from rbl.zone.tenant import TENANT_ARRAYS, TenantZone

    source = SnapshotSource(str(db), str(ROOT / "policy"), str(ROOT / "zones"))
    started = time.perf_counter()
    snapshot = source.build()
    seconds = time.perf_counter() - started
    tenant = next(z for z in snapshot.zones.values() if isinstance(z, TenantZone))
    arrays = {name: len(memoryview(getattr(tenant, name)).cast("B")) for name in TENANT_ARRAYS}
    path = work / "bench.snap"
    write_snapshot(snapshot, path)
    with_tenant = path.stat().st_size
    source.store.close()
    return {"seconds": seconds, "tenant_bytes": sum(arrays.values()), "names_bytes": arrays["t4_names"],
            "file_bytes": with_tenant, "addresses": len(tenant.t4_keys)}


def write_queries(work: Path, named: dict[str, tuple[str, ...]], count: int, rng: random.Random) -> tuple[Path, Path]:
    addresses = list(named)
    plain, pairs = [], []
    for _ in range(count):
        a = rng.choice(addresses)
        reverse = ".".join(reversed(a.split(".")))
        plain.append(f"{reverse}.bl.example A\n")
        identity = rng.choice(named[a]) if rng.random() < 0.5 else signer(rng)
        pairs.append(f"{identity}.{reverse}.tenant.bl.example A\n")
    (work / "addresses.q").write_text("".join(plain))
    (work / "pairs.q").write_text("".join(pairs))
    return work / "addresses.q", work / "pairs.q"


def start_rbl(env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rbl", "serve", "--workers", "1", "--http", "off",
                             "--dns", f"127.0.0.1:{port}"], env=env, stderr=subprocess.DEVNULL)
    wait_udp(port, timeout=600)
    subprocess.run(["taskset", "-p", "-c", "1", str(proc.pid)], check=True, capture_output=True)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    worker = next(int(p) for p in children if b"rbl.dns.worker" in Path(f"/proc/{p}/cmdline").read_bytes())
    subprocess.run(["taskset", "-p", "-c", "0", str(worker)], check=True, capture_output=True)
    return proc, port


def start_rbldnsd(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    os.chmod(folder, 0o755)
    proc = subprocess.Popen(["taskset", "-c", "0", shutil.which("rbldnsd") or "/usr/sbin/rbldnsd", "-n", "-q",
                             "-u", "rbldns", "-b", f"127.0.0.1/{port}", "-w", str(folder),
                             "bl.example:combined:bl.example.rbldnsd"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_udp(port)
    return proc, port


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="rbl-tenant-"))
    os.chmod(work, 0o755)
    env = dict(os.environ, RBL_DB=str(work / "rbl.db"), RBL_POLICY=str(ROOT / "policy"), RBL_ZONES=str(ROOT / "zones"))
    procs: list[subprocess.Popen] = []
    try:
        addresses = shared_addresses(args.addresses, rng)
        add_seconds, named = fill(work / "rbl.db", addresses, rng)
        print(f"{len(addresses):,} shared addresses, 3 identities each, added in {add_seconds:.1f} s")
        built = compiled(work / "rbl.db", work)
        print(f"compile {built['seconds']:.2f} s; tenant zone {built['tenant_bytes'] / 2**20:.1f} MiB "
              f"({built['names_bytes'] / 2**20:.1f} MiB of it names for exports) over {built['addresses']:,} "
              f"addresses; snapshot file {built['file_bytes'] / 2**20:.1f} MiB")
        exported = work / "export"
        exported.mkdir()
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rbl", "export", "rbldnsd", str(exported)], env=env, check=True,
                       capture_output=True)
        print(f"rbldnsd export {time.perf_counter() - started:.1f} s, "
              f"{(exported / 'bl.example.rbldnsd').stat().st_size / 2**20:.1f} MiB")
        plain, pairs = write_queries(work, named, args.queries, rng)
        rbl, rbl_port = start_rbl(env)
        procs.append(rbl)
        ref, ref_port = start_rbldnsd(exported)
        procs.append(ref)
        print(f"resident: rbldnsd {rss_kib(ref.pid) / 1024:.0f} MiB")
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds):
            for server, port in (("rbl", rbl_port), ("rbldnsd", ref_port)):
                for kind, queries in (("address", plain), ("pair", pairs)):
                    run = dnsperf(port, queries, args.seconds)
                    results.setdefault((server, kind), []).append(run["qps"])
        med = {k: statistics.median(v) for k, v in results.items()}
        print(f"\nmedian qps of {args.rounds} rounds, {args.seconds} s each")
        print(f"{'':10}{'address':>10}{'pair':>10}{'pair/address':>14}")
        for server in ("rbl", "rbldnsd"):
            a, p = med[server, "address"], med[server, "pair"]
            print(f"{server:10}{a:>10,.0f}{p:>10,.0f}{p / a:>14.2f}")
        print(f"{'rbl/rbldnsd':10}{med['rbl', 'address'] / med['rbldnsd', 'address']:>10.2f}"
              f"{med['rbl', 'pair'] / med['rbldnsd', 'pair']:>10.2f}")
    finally:
        for proc in procs:
            stop(proc, 10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
