"""Load every real cloud feed and compile it with 1,000,000 listings: time and memory.

Run by hand (a few minutes, most of it filling the store):

    .venv/bin/python bench/policy.py                 # 1,000,000 listings
    .venv/bin/python bench/policy.py --listings 100000

It writes a policy whose vendors use every real feed in ../shared/data/feeds/
(AWS, Google Cloud and goog.json, Azure, Oracle, DigitalOcean and Linode
geofeeds, GitHub, Cloudflare, Fastly), fills a store with seeded listings
(a third inside vendor ranges, some dense enough to escalate), then measures
in fresh processes, median of several rounds:

1. loading the policy (parsing every feed, classifying): seconds and resident memory;
2. compiling the snapshot with that policy (scoring the vendors' tiers from
   every case included), against the same store compiled with no vendor
   policy at all: seconds and peak resident memory;
3. patching one new listing into the compiled snapshot.
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from common import ROOT, fill_store, store_arguments

FEEDS = ROOT.parent / "shared" / "data" / "feeds"

VENDORS = {  # vendor: [(feed parser, file, space)]
    "aws": [("aws-ip-ranges", "aws-ip-ranges.json", "shared")],
    "gcp": [("gcp-cloud", "gcp-cloud.json", "shared")],
    "google": [("gcp-cloud", "google-goog.json", "dedicated")],
    "azure": [("azure-service-tags", "azure-ServiceTags_Public.json", "shared")],
    "oracle": [("oracle-public-ip-ranges", "oracle-public_ip_ranges.json", "shared")],
    "digitalocean": [("geofeed", "digitalocean-geofeed-google.csv", "shared")],
    "linode": [("geofeed", "linode-geofeed.csv", "shared")],
    "github": [("github-meta", "github-meta.json", "dedicated")],
    "cloudflare": [("cidr-list", "cloudflare-ips-v4.txt", "dedicated"), ("cidr-list", "cloudflare-ips-v6.txt", "dedicated")],
    "fastly": [("fastly-public-ip-list", "fastly-public-ip-list.json", "quarantine")],
}

MEASURE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
started = time.perf_counter()
from rbl.policy.vendors import load_policy
from rbl.store import ListingStore
from rbl.zone.config import load_zones
from rbl.zone.patch import Changes, patch_zone
from rbl.zone.compile import compile_snapshot
from rbl.addresses import parse_subject
from rbl.store.listings import Entry
imported = rss()
t0 = time.perf_counter()
policy = load_policy(sys.argv[3])
t1 = time.perf_counter()
after_policy = rss()
store = ListingStore(sys.argv[2])
zones = load_zones(sys.argv[4])
now = store.clock()
from rbl.zone.source import vendor_standing
t2 = time.perf_counter()
standing = vendor_standing(store, zones, policy, now)
t_scored = time.perf_counter()
snapshot = compile_snapshot(store, zones, policy.listing, 1, now, policy.classification, standing)
t3 = time.perf_counter()
mark = store.audit_mark()
store.add([Entry(parse_subject("3.5.141.77"))], zone="bl.example", actor="bench", expires=None)
t4 = time.perf_counter()
changes = Changes.of(store.changes_since(mark)[1])
patch_zone(snapshot.zones[b"bl.example"], policy.listing, store, changes, store.clock(), policy.classification,
           standing)
t5 = time.perf_counter()
print(json.dumps({"ranges": len(policy.ranges), "classified": len(policy.classification),
                  "load_s": t1 - t0, "rss_base": imported, "rss_policy": after_policy,
                  "compile_s": t3 - t2, "scoring_s": t_scored - t2, "rss_after": rss(), "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "patch_s": t5 - t4, "listings": snapshot.listings}))
"""


def write_policy(folder: Path, vendors: dict) -> None:
    (folder / "vendors").mkdir(parents=True)
    for name, ranges in vendors.items():
        lines = [f"name: {name}", "ranges:"]
        for feed, file, space in ranges:
            lines += [f"  - feed: {feed}", f"    file: {FEEDS / file}", f"    space: {space}"]
        (folder / "vendors" / f"{name}.yaml").write_text("\n".join(lines) + "\n")


def vendor_listings(policy_dir: Path, count: int, seed: int) -> Iterator:
    """Seeded IPv4 entries, a third inside the vendor ranges of ``policy_dir`` (some dense enough to
    escalate); the addresses are drawn now, the entries made as they are read."""
    from rbl.addresses import parse_subject
    from rbl.policy.vendors import load_policy
    from rbl.store.listings import Entry

    rng = random.Random(seed)
    policy = load_policy(policy_dir)
    ranges = [r for r in policy.ranges if r.kind == "ip4" and r.plen >= 12]
    addresses: set[int] = set()
    while len(addresses) < count // 3:  # inside vendor ranges
        item = rng.choice(ranges)
        base = item.net + rng.randrange(item.size)
        for i in range(rng.choice([1, 1, 1, 10])):  # some dense enough to escalate (dedicated)
            addresses.add(base >> 8 << 8 | (base + i) & 0xFF)
    while len(addresses) < count:
        a = rng.randrange(0x01000000, 0xDF000000)
        if a >> 24 != 127:
            addresses.add(a)
    return (Entry(parse_subject(f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}")) for a in addresses)


def measure(work: Path, policy: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT), str(work / "rbl.db"), str(policy),
                          str(ROOT / "zones")], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    args = store_arguments(__doc__, seed=5782).parse_args()
    with tempfile.TemporaryDirectory(prefix="rbl-bench-policy-") as tmp:
        work = Path(tmp)
        write_policy(work / "policy", VENDORS)
        (work / "empty").mkdir()
        fill = fill_store(work / "rbl.db", vendor_listings(work / "policy", args.listings, args.seed))
        print(f"store filled with {args.listings} listings in {fill:.1f} s", flush=True)
        runs = {"every real feed": [], "no vendor policy": []}
        for _ in range(args.rounds):
            runs["every real feed"].append(measure(work, work / "policy"))
            runs["no vendor policy"].append(measure(work, work / "empty"))
        first = runs["every real feed"][0]
        print(f"policy: {first['ranges']} ranges from {sum(len(v) for v in VENDORS.values())} feeds, "
              f"{first['classified']} after duplicates; medians of {args.rounds} rounds:")
        print(f"{'':18} {'load s':>7} {'compile s':>9} {'of it, tiers':>12} {'patch s':>8} {'rss MiB':>8} "
              f"{'peak MiB':>9} {'policy MiB':>10}")
        for name, results in runs.items():
            m = {key: statistics.median(r[key] for r in results) for key in results[0]}
            print(f"{name:18} {m['load_s']:7.2f} {m['compile_s']:9.2f} {m['scoring_s']:12.2f} {m['patch_s']:8.3f} "
                  f"{m['rss_after']:8.1f} "
                  f"{m['peak']:9.1f} {m['rss_policy'] - m['rss_base']:10.1f}")


if __name__ == "__main__":
    main()
