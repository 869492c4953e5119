"""A million random and mutated packets at a live `rbl serve` with keys, RRL and resolvers on.

Run by hand (about 5 minutes on 2 cores; the CI fuzz in tests/test_fuzz.py stays at its size):

    .venv/bin/python bench/fuzz.py                       # 1,000,000 packets: 950,000 UDP, 50,000 TCP
    .venv/bin/python bench/fuzz.py --udp 200000 --tcp 10000 --seed 7

The server runs with two DNS workers, ``keys: optional``, a ``rate_limit:`` (rates above the
fuzz's, so its accounts are kept on every answer and some bursts are limited), and a public
resolver list; the packet source is tests/test_fuzz.py's, with names under a valid key, an
unknown key and a revoked key among the ones it mutates. Afterwards: no DNS worker was ever
restarted (0 crashes), no escaped exception was logged, every RFC 5782 test point still answers
over UDP and TCP, keyless and under the valid key, and the key errors still say what they say.
"""

from __future__ import annotations

import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_fuzz as fuzz  # noqa: E402 - the CI fuzz's packets, driven harder
from common import arguments  # noqa: E402
from conftest import Server, Workspace  # noqa: E402


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--udp", type=int, default=950_000)
    parser.add_argument("--tcp", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=fuzz.SEED)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rbl-fuzz-") as tmp:
        workspace = Workspace(Path(tmp))
        zone = workspace.zones / "bl.example.yaml"
        zone.write_text(zone.read_text().replace("serves: listings\n", (
            "serves: listings\nkeys: optional\nrate_limit:\n  responses_per_second: 40000\n"
            "  nxdomains_per_second: 40000\n  errors_per_second: 20000\n  window: 2\n  slip: 2\n"), 1))
        (workspace.policy / "resolvers" / "fuzz.txt").write_text("127.0.9.0/24\n")
        workspace.rbl("listing", "add", *fuzz.LISTINGS, "--reason", "fuzz")
        good = re.search(r"([a-z2-7]{26})\s*$", workspace.rbl("key", "create", "good").stdout)[1]
        gone = re.search(r"([a-z2-7]{26})\s*$", workspace.rbl("key", "create", "gone").stdout)[1]
        workspace.rbl("key", "revoke", "gone")
        for key in (good, good.upper(), gone, "q" * 26):
            fuzz.NAMES += [name.replace(".bl.example", f".{key}.bl.example") for name in fuzz.NAMES[:18]]
        fuzz.UDP_PACKETS, fuzz.SEED = args.udp, args.seed
        server = Server(workspace, "--workers", "2")
        try:
            workers = set(server.children())
            started = time.monotonic()
            source = fuzz.PacketSource(args.seed)
            stats = fuzz.Stats()
            udp_packets: list[bytes] = []
            fuzz.udp_phase(server.port, source, udp_packets, stats, started + 3600)
            udp_done = time.monotonic()
            rng = random.Random(args.seed + 2)
            per_connection = 500
            for _ in range(max(1, args.tcp // per_connection)):
                fuzz.tcp_conversation(server.port, [source.next() for _ in range(per_connection)], stats, rng)
            fuzz.tcp_abuse(server.port, source, stats, rng)
            finished = time.monotonic()
            print(f"seed {args.seed}: {stats.udp_sent:,} UDP packets ({stats.udp_replies:,} replies, "
                  f"{stats.sentinel_retries} sentinel retries) in {udp_done - started:.0f} s; "
                  f"{stats.tcp_sent:,} TCP messages ({stats.tcp_replies:,} replies) in {finished - udp_done:.0f} s; "
                  f"{stats.udp_sent + stats.tcp_sent:,} in all")
            time.sleep(1.5)  # a limited burst's debt is gone after the window
            problems = []
            if server.proc.poll() is not None:
                problems.append("the primary died")
            restarted = set(server.children()) != workers
            crashes = [line for line in server.log if "exited with" in line]
            if restarted or crashes:
                problems.append(f"DNS workers crashed: {crashes[:3]}")
            for name, rcode, addresses in fuzz.TEST_POINTS:
                under = name.replace(".bl.example", f".{good}.bl.example")
                for asked in (name, under):
                    fuzz.check_test_point(server.query(asked, "A"), rcode, addresses)
                    fuzz.check_test_point(server.query(asked, "A", tcp=True), rcode, addresses)
            for key, word in ((gone, "revoked"), ("q" * 26, "unknown")):
                reply = server.query(f"2.0.0.127.{key}.bl.example", "TXT")
                if word not in str(reply):
                    problems.append(f"the {word} key's error changed: {reply}")
            escaped = [line for line in server.log if any(mark in line for mark in fuzz.ESCAPED)]
            if escaped:
                problems.append(f"{len(escaped)} escaped-exception lines, e.g. {escaped[:3]}")
            if stats.bad_replies:
                problems.append(f"replies dnspython cannot parse, e.g. {stats.bad_replies[:3]}")
            print("0 worker crashes, every test point still correct (UDP, TCP, keyless and keyed)" if not problems
                  else "PROBLEMS:\n  " + "\n  ".join(problems))
        finally:
            server.stop()
        if problems:
            sys.exit(1)


if __name__ == "__main__":
    main()
