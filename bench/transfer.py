"""Zone transfers from `rbl serve` with 1,000,000 listings: render time, AXFR time, IXFR size.

Run by hand (several minutes with the defaults, most of it filling the store):

    .venv/bin/python bench/transfer.py                   # 1,000,000 listings
    .venv/bin/python bench/transfer.py --listings 100000 --rounds 1

It copies the shipped demo policy and zones into a temporary folder, adds a
``transfer:`` setting (TSIG key, a real Knot as the secondary when ``knotd`` is
installed), fills the store with seeded listings as bench/policy.py does (a
third in vendor ranges, some dense enough to escalate), starts ``rbl serve``
and measures:

1. rendering the first version (the helper process: records, bytes, seconds,
   its peak memory), from rbl's log;
2. AXFR: a bare TSIG-signed client reading every message off the TCP stream
   (no parsing, so the time is rbl's), --rounds times; and Knot's own AXFR
   of the zone as its log reports it;
3. 100 listing changes (50 added, 50 removed): the IXFR rbl serves Knot
   (records, bytes), the render and diff time of that version, and the
   seconds from the last change until Knot answers every changed subject.
"""

from __future__ import annotations

import base64
import os
import random
import re
import shutil
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring

from common import ROOT, fill_store, free_port, stop, store_arguments

ORIGIN = "bl.example"
KEY = "rbl-xfr"


def read_exact(sock: socket.socket, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        if not chunk:
            raise ConnectionError("the stream ended early")
        out += chunk
    return bytes(out)


def axfr(port: int, secret: str, expected: int) -> tuple[float, int, int]:
    """(seconds, messages, bytes) of one signed AXFR read off the wire until every record has come."""
    query = dns.message.make_query(ORIGIN, "AXFR")
    query.use_tsig(dns.tsigkeyring.from_text({KEY: ("hmac-sha256", secret)}), keyname=KEY)
    wire = query.to_wire()
    started = time.perf_counter()
    messages = size = records = 0
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(struct.pack(">H", len(wire)) + wire)
        while records < expected:
            (length,) = struct.unpack(">H", read_exact(sock, 2))
            message = read_exact(sock, length)
            if message[3] & 0x0F:
                raise RuntimeError(f"AXFR refused: rcode {dns.rcode.to_text(message[3] & 0x0F)}")
            records += struct.unpack_from(">H", message, 6)[0]
            messages += 1
            size += length + 2
    return time.perf_counter() - started, messages, size


class Logged:
    """A process whose output is kept, line by line, for patterns to wait on."""

    def __init__(self, args: list[str], env: dict | None = None, cwd: Path | None = None, path: Path | None = None):
        self.path = path
        self.out = open(path, "w") if path else None
        self.proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=self.out or subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.path.read_text() if self.path and self.path.exists() else ""

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text()[start:])
            if found:
                return found
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited:\n{self.text()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"{pattern!r} not within {timeout} s:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        stop(self.proc, 30)
        if self.out:
            self.out.close()


def peak_mib(parent: int, needle: str) -> float | None:
    """The peak resident memory (VmHWM) of a child process whose command line holds needle."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) != parent:
                continue
            if needle not in (stat.parent / "cmdline").read_text():
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, IndexError, ValueError):
            continue
    return None


# A Knot secondary of rbl, the same one the transfer test runs.
KNOT_CONF = (ROOT / "tests" / "fixtures" / "knot-secondary.conf").read_text()


def main() -> None:
    from policy import vendor_listings  # bench/policy.py: seeded listings, a third in vendor ranges

    args = store_arguments(__doc__, seed=5782).parse_args()
    knotd = shutil.which("knotd") or ("/usr/sbin/knotd" if os.path.exists("/usr/sbin/knotd") else None)
    secret = base64.b64encode(random.Random(args.seed).randbytes(32)).decode()
    with tempfile.TemporaryDirectory(prefix="rbl-bench-transfer-") as tmp:
        work = Path(tmp)
        shutil.copytree(ROOT / "policy", work / "policy")
        shutil.copytree(ROOT / "zones", work / "zones")
        (work / "zones" / "xfr.key").write_text(secret + "\n")
        knot_port = free_port()
        with open(work / "zones" / f"{ORIGIN}.yaml", "a") as f:
            f.write(f"\ntransfer:\n  allow: [127.0.0.0/8]\n  key: {{name: {KEY}, secret_file: xfr.key}}\n"
                    + (f"  secondaries: ['127.0.0.1:{knot_port}']\n" if knotd else ""))
        started = time.perf_counter()
        fill_store(work / "rbl.db", vendor_listings(work / "policy", args.listings, args.seed))
        print(f"store filled with {args.listings:,} listings in {time.perf_counter() - started:.0f} s", flush=True)
        env = dict(os.environ, RBL_DB=str(work / "rbl.db"), RBL_POLICY=str(work / "policy"),
                   RBL_ZONES=str(work / "zones"))
        server = Logged([sys.executable, "-m", "rbl", "serve", "--dns", "127.0.0.1:0", "--http", "off"],
                        env=env, cwd=work, path=work / "serve.log")
        knot = None
        try:
            port = int(server.wait_for(r"DNS on 127\.0\.0\.1:(\d+)", 600)[1])
            first = server.wait_for(r"transfer version (\d+) of bl\.example: (\d+) records, (\d+) bytes, "
                                    r"rendered in ([\d.]+) s", 1800)
            serial, records = int(first[1]), int(first[2])
            helper = peak_mib(server.proc.pid, "rbl.transfer.versions")
            print(f"version {serial}: {records:,} records, {int(first[3]) / 2**20:.1f} MiB of messages, rendered in "
                  f"{float(first[4]):.1f} s" + (f", renderer peak {helper:.0f} MiB" if helper else ""), flush=True)
            runs = [axfr(port, secret, records + 2) for _ in range(args.rounds)]
            seconds = statistics.median(r[0] for r in runs)
            print(f"AXFR (bare client, median of {args.rounds}): {seconds:.2f} s, {runs[0][1]:,} messages, "
                  f"{runs[0][2] / 2**20:.1f} MiB, {runs[0][2] / 2**20 / seconds:.0f} MiB/s", flush=True)
            if not knotd:
                print("knotd is not installed: no secondary, no IXFR figures (sh scripts/bootstrap bench installs it)")
                return
            kdir = work / "knot"
            (kdir / "db").mkdir(parents=True)
            (kdir / "zones").mkdir()
            (kdir / "knot.conf").write_text(KNOT_CONF.format(dir=kdir, port=knot_port, key=KEY, secret=secret,
                                                             primary=port, origin=ORIGIN))
            knot = Logged([knotd, "-c", str(kdir / "knot.conf")], path=kdir / "stdout.log")
            knot.path = kdir / "knot.log"
            done = knot.wait_for(r"AXFR, incoming, remote [^,]+, finished, ([\d.]+) seconds, (\d+) messages, "
                                 r"(\d+) bytes", 1800)
            print(f"Knot's AXFR: {float(done[1]):.2f} s, {int(done[2]):,} messages, {int(done[3]) / 2**20:.1f} MiB",
                  flush=True)
            knot.wait_for(r"refresh, remote [^,]+, zone updated", 600)
            # 100 changes: 50 new addresses, 50 listed ones removed.
            rng = random.Random(args.seed + 1)
            adds = [f"77.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(50)]
            with sqlite3.connect(work / "rbl.db") as db:
                removes = [row[0] for row in db.execute(
                    "SELECT subject FROM listings WHERE kind = 'ip4' AND plen = 32 AND state = 'active' "
                    "ORDER BY id LIMIT 50 OFFSET ?", [rng.randrange(args.listings // 2)])]
            server_mark, knot_mark = len(server.text()), len(knot.text())
            names = [".".join(reversed(a.split("."))) + "." + ORIGIN for a in adds + removes]

            def answers(at: int) -> list:
                out = []
                for name in names:
                    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=at, timeout=2)
                    out.append((reply.rcode(), sorted(rr.to_text() for rrset in reply.answer for rr in rrset)))
                return out

            before = answers(port)
            # One burst through the store, as an import or an HTTP batch would: mostly one snapshot.
            from rbl.addresses import parse_subject
            from rbl.store import ListingStore
            from rbl.store.listings import Entry

            store = ListingStore(str(work / "rbl.db"))
            changed = time.monotonic()
            store.add([Entry(parse_subject(a)) for a in adds], zone=ORIGIN, actor="bench", expires=None)
            store.remove([parse_subject(r) for r in removes], zone=ORIGIN, actor="bench")
            store.close()
            while any(a == b for a, b in zip(answers(port), before)):  # rbl answers every change first
                if time.monotonic() - changed > 60:
                    raise RuntimeError("rbl did not answer the changes within 60 s")
                time.sleep(0.1)
            served_by_rbl = time.monotonic() - changed
            while answers(port) != answers(knot_port):
                if time.monotonic() - changed > 900:
                    raise RuntimeError("Knot did not follow within 900 s")
                time.sleep(0.5)
            delay = time.monotonic() - changed
            log = server.text()[server_mark:]
            versions = re.findall(r"transfer version \d+ of bl\.example: (\d+) records, \d+ bytes, rendered in "
                                  r"([\d.]+) s \(diff ([\d.]+) s\), IXFR step from \d+: (\d+) deleted, (\d+) added",
                                  log)
            served = re.findall(r"IXFR of bl\.example to 127\.0\.0\.1: serial \d+ -> \d+ in \d+ steps?, (\d+) "
                                r"records in (\d+) messages?, (\d+) bytes", log)
            incoming = re.findall(r"IXFR, incoming, remote [^,]+, finished, ([\d.]+) seconds, (\d+) messages, "
                                  r"(\d+) bytes", knot.text()[knot_mark:])
            print(f"100 changes (50 added, 50 removed): rbl answered them after {served_by_rbl:.1f} s, Knot "
                  f"after {delay:.1f} s", flush=True)
            for records_, rendered, diffed, deleted, added in versions:
                print(f"  version rendered in {float(rendered):.1f} s (the diff {float(diffed):.1f} s of it): "
                      f"a step of {deleted} deleted, {added} added")
            for records_, messages, size in served:
                print(f"  IXFR served: {records_} records in {messages} message(s), {int(size):,} bytes")
            for seconds_, messages, size in incoming:
                print(f"  Knot's IXFR: {float(seconds_):.3f} s, {messages} message(s), {int(size):,} bytes")
        finally:
            if knot is not None:
                knot.stop()
            server.stop()


if __name__ == "__main__":
    main()
