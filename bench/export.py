"""Export time and size of both formats for 1,000,000 listings.

Run by hand (a few minutes, most of it filling the store):

    .venv/bin/python bench/export.py                   # 1,000,000 listings
    .venv/bin/python bench/export.py --listings 100000 --rounds 1

It fills a store with seeded listings under the shipped demo policy and zones:
single IPv4 addresses (some dense enough to escalate their /24), CIDRs with
exclusions, IPv6 prefixes and domains; compiles the snapshot once, then times
``rbl export rbldnsd`` and ``rbl export zonefile`` on it (the writers only,
median of the rounds) and reports each file's size, with IPv4-mapped names in
the zone file (the default) and without them (``export: ipv4_mapped: false``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import statistics
import tempfile
import time
from pathlib import Path

from common import ROOT, fill_store, store_arguments


def listings(count: int, seed: int) -> list:
    """Seeded entries: IPv4 singles (a tenth in dense /24s), CIDRs with holes, IPv6 prefixes, domains."""
    from rbl.addresses import parse_subject
    from rbl.store.listings import Entry

    rng = random.Random(seed)
    subjects: set[str] = set()
    while len(subjects) < count * 0.9:  # single addresses, a tenth in dense /24s
        if rng.random() < 0.01:
            base = rng.randrange(0x01000000, 0xDF000000) >> 8 << 8
            for d in rng.sample(range(256), 10):
                subjects.add(str(ipaddress.IPv4Address(base | d)))
        a = rng.randrange(0x01000000, 0xDF000000)
        if a >> 24 != 127:
            subjects.add(str(ipaddress.IPv4Address(a)))
    entries = [Entry(parse_subject(s)) for s in subjects]
    for i in range(count // 50):  # CIDRs as DROP-style lists have them, a third with a hole
        plen = rng.choice([14, 16, 18, 20, 22, 22, 24, 24, 24, 24, 26, 28, 29, 30])
        net = ipaddress.ip_network(f"{ipaddress.IPv4Address(rng.randrange(0x01000000, 0xDF000000))}/{plen}", strict=False)
        entries.append(Entry(parse_subject(str(net))))
        if i % 3 == 0:
            hole = net.network_address + rng.randrange(net.num_addresses)
            entries.append(Entry(parse_subject(str(hole)), exclude=True))
    for _ in range(count // 25):  # IPv6 prefixes
        plen = rng.choice([32, 48, 56, 64, 64, 128])
        net = ipaddress.ip_network(f"2a0{rng.randrange(10)}:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}:"
                                   f"{rng.getrandbits(16):x}::{rng.getrandbits(16):x}/{plen}", strict=False)
        entries.append(Entry(parse_subject(str(net))))
    for i in range(count // 100):  # domains, every form
        entries.append(Entry(parse_subject(f"{rng.choice(['', '*.', '.'])}host{i}.spam{i % 97}.example")))
    return entries


def main() -> None:
    args = store_arguments(__doc__, seed=1035).parse_args()

    from rbl.zone.source import SnapshotSource
    from rbl.zone.export import export

    with tempfile.TemporaryDirectory(prefix="rbl-bench-export-") as tmp:
        work = Path(tmp)
        fill = fill_store(work / "rbl.db", listings(args.listings, args.seed))
        print(f"store filled in {fill:.1f} s", flush=True)
        source = SnapshotSource(str(work / "rbl.db"), str(ROOT / "policy"), str(ROOT / "zones"))
        started = time.perf_counter()
        snapshot = source.build()
        print(f"snapshot of {snapshot.listings} listings compiled in {time.perf_counter() - started:.1f} s", flush=True)
        lean = dataclasses.replace(snapshot, zones={
            origin: dataclasses.replace(zone, config=dataclasses.replace(zone.config, export_ipv4_mapped=False))
            for origin, zone in snapshot.zones.items()})
        cases = [("rbldnsd", snapshot, "rbldnsd"), ("zonefile", snapshot, "zone file"),
                 ("zonefile", lean, "zone file, ipv4_mapped: false")]
        print(f"{'format':32} {'seconds':>8} {'MiB':>8} {'lines':>10}   (median of {args.rounds})")
        for fmt, snap, label in cases:
            seconds = []
            for _ in range(args.rounds):
                began = time.perf_counter()
                written = export(snap, fmt, work / "out")
                seconds.append(time.perf_counter() - began)
            path, size = written[0]
            with open(path, "rb") as f:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            print(f"{label:32} {statistics.median(seconds):8.1f} {size / 2**20:8.1f} {lines:10d}", flush=True)
        source.store.close()


if __name__ == "__main__":
    main()
