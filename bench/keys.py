"""Keys, RRL and public resolvers on the hot path: qps of each against the plain zone, same data, same run.

Run by hand (a few minutes):

    .venv/bin/python bench/keys.py                       # 300,000 listings, 3 rounds of 8 s
    .venv/bin/python bench/keys.py --ip4 100000 --rounds 5 --seconds 5

It imports the listings of ``bench/run.py``'s shape once, then serves them with ``rbl serve``
(one DNS worker on core 0, dnsperf on core 1) under five configurations, in turn, each round:

- ``bare``: the shipped zone, and a policy without public resolvers (no per-client lookup at all);
- ``plain``: the shipped zone and policy (its resolver list: one lookup per datagram);
- ``keys``: ``keys: required``, every query under one valid key;
- ``rrl``: ``rate_limit:`` with a rate no query reaches, so every answer is accounted, none limited;
- ``both``: keys required and RRL.

It prints the median qps of each and its ratio to ``plain`` and to ``bare`` (the issue's target:
at least 0.9 for keys, RRL and both).
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, arguments
from run import Rbl, dnsperf, generate, write_queries

RRL = ("rate_limit:\n  responses_per_second: 10000000\n  nxdomains_per_second: 10000000\n"
       "  errors_per_second: 10000000\n  window: 15\n  slip: 2\n")


def zones_folder(work: Path, name: str, keys: bool, rrl: bool) -> Path:
    folder = work / f"zones-{name}"
    shutil.copytree(ROOT / "zones", folder)
    path = folder / "bl.example.yaml"
    text = path.read_text()
    extra = ("keys: required\n" if keys else "") + (RRL if rrl else "")
    path.write_text(text.replace("serves: listings\n", "serves: listings\n" + extra, 1))
    return folder


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--ip4", type=int, default=300_000)
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rbl-keys-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        data = generate(work, args.ip4, args.ip4 // 50, args.ip4 // 30, args.ip4 // 100, args.seed)
        plain_queries = work / "queries.txt"
        write_queries(plain_queries, data, args.queries, args.seed)
        rbl = Rbl(work)
        print(f"{args.ip4:,} IPv4 listings and the rest imported in {rbl.load_seconds:.1f} s", flush=True)
        out = subprocess.run([sys.executable, "-m", "rbl", "key", "create", "bench"], env=rbl.env, check=True,
                             capture_output=True, text=True).stdout
        key = re.search(r"([a-z2-7]{26})\s*$", out)[1]
        keyed_queries = work / "keyed.txt"
        keyed_queries.write_text("".join(line.replace(".bl.example ", f".{key}.bl.example ")
                                         for line in plain_queries.read_text().splitlines(keepends=True)))
        bare_policy = work / "policy-bare"
        shutil.copytree(ROOT / "policy", bare_policy)
        shutil.rmtree(bare_policy / "resolvers")
        configs = {
            "bare": (ROOT / "zones", bare_policy, plain_queries),
            "plain": (ROOT / "zones", ROOT / "policy", plain_queries),
            "keys": (zones_folder(work, "keys", True, False), ROOT / "policy", keyed_queries),
            "rrl": (zones_folder(work, "rrl", False, True), ROOT / "policy", plain_queries),
            "both": (zones_folder(work, "both", True, True), ROOT / "policy", keyed_queries),
        }
        results: dict[str, list[float]] = {name: [] for name in configs}
        for round_ in range(args.rounds):
            for name, (zones, policy, queries) in configs.items():
                rbl.env.update(RBL_ZONES=str(zones), RBL_POLICY=str(policy))
                rbl.start()
                try:
                    run = dnsperf(rbl.port, queries, args.seconds)
                finally:
                    rbl.stop()
                results[name].append(run["qps"])
                print(f"round {round_ + 1} {name:6} {run['qps']:>10,.0f} qps  lost {run['lost']:.0f}", flush=True)
        med = {name: statistics.median(values) for name, values in results.items()}
        print(f"\nmedian qps of {args.rounds} rounds, {args.seconds} s each (one worker, one core)")
        print(f"{'':8}{'qps':>10}{'/ plain':>10}{'/ bare':>10}")
        for name, qps in med.items():
            print(f"{name:8}{qps:>10,.0f}{qps / med['plain']:>10.2f}{qps / med['bare']:>10.2f}")


if __name__ == "__main__":
    main()
