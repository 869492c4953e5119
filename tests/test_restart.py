"""A restart without a recompile: `rbl serve` on a store of 400,000 listings is killed (SIGKILL),
started again on the same port, answers its first query from the snapshot it kept beside the store
(the old serial, before the first compile is done), and Knot, current before the kill, takes the next
serial by IXFR (checked in Knot's log)."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import time
from pathlib import Path

import pytest

from conftest import Server, Workspace, free_port, require_tool
from rbl.primary import serving_folder
from test_transfer import KEY_NAME, ORIGIN, SECRET, Knot, logs_of, versions, wait

LISTINGS = 400_000  # bench/scale.py measures the same at 10M; here, a shorter run of the same path


def soa_serial(port: int) -> int | None:
    """The serial of rbl's SOA over UDP, or None when nothing answers."""
    query = struct.pack(">HHHHHH", 0x5782, 0, 1, 0, 0, 0) + b"\x02bl\x07example\x00" + struct.pack(">HH", 6, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(query, ("127.0.0.1", port))
            reply = sock.recv(4096)
        except OSError:
            return None
    # The answer's SOA rdata ends with serial, refresh, retry, expire, minimum (5 x 4 bytes).
    return struct.unpack_from(">I", reply, len(reply) - 20)[0] if struct.unpack_from(">H", reply, 6)[0] else None


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def big_store(tmp_path):
    require_tool("knotd")
    workspace = Workspace(tmp_path)
    rng = random.Random(12)
    addresses = rng.sample(range(0x0B000000, 0x7E000000), LISTINGS)  # 11.0.0.0 up to 126/8
    (tmp_path / "big.list").write_text("".join(f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}\n"
                                               for a in addresses))
    workspace.rbl("listing", "import", str(tmp_path / "big.list"), "--format", "plain", "--expires", "never")
    (workspace.zones / "rbl-xfr.key").write_text(SECRET + "\n")
    knot_port = free_port()
    zone_file = workspace.zones / f"{ORIGIN}.yaml"
    # Without the IPv4-mapped names the zone is half as big (2M records): the same test, a shorter run.
    zone_file.write_text(zone_file.read_text().replace("  ipv4_mapped: true", "  ipv4_mapped: false") + f"""
transfer:
  allow: [127.0.0.1/32]
  secondaries: ["127.0.0.1:{knot_port}"]
  key: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret_file: rbl-xfr.key}}
  history: 8
""")
    return workspace, knot_port, addresses


def test_a_killed_server_answers_from_its_kept_snapshot_and_knot_gets_an_ixfr(big_store, tmp_path):
    workspace, knot_port, addresses = big_store
    port = free_port()
    server = Server(workspace, "--http", "off", "--dns", f"127.0.0.1:{port}")
    knot = restarted = None
    try:
        wait(lambda: versions(server), 120, "the first transfer version", lambda: "".join(server.log))
        knot = Knot(tmp_path / "knot", knot_port, port)
        logs = logs_of(server, knot)
        wait(lambda: knot.serial() == versions(server)[-1], 120, "Knot current before the kill", logs)
        old_serial = versions(server)[-1]
        assert (serving_folder(str(workspace.db)) / "kept.json").exists()

        workers = children(server.proc.pid)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        for pid in workers:  # their input ended with the primary: they stop by themselves
            wait(lambda: not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes()[:60],
                 10, f"worker {pid} gone", logs)

        knot_mark = len(knot.log)
        started = time.monotonic()
        restarted = Server(workspace, "--http", "off", "--dns", f"127.0.0.1:{port}")
        first = None
        while first is None and time.monotonic() - started < 10:
            first = soa_serial(port)
        first_seconds = time.monotonic() - started
        logs = logs_of(restarted, knot)
        # The first answer is the kept snapshot's (its serial), given before any compile ended.
        assert first == old_serial, logs()
        assert first_seconds < 10, logs()
        log = "".join(restarted.log)
        assert f"serving the kept snapshot {old_serial}" in log, logs()
        listed = addresses[0]
        name = f"{listed & 255}.{listed >> 8 & 255}.{listed >> 16 & 255}.{listed >> 24}.bl.example"
        assert restarted.addresses(name) == {"127.0.0.2"}, logs()

        # The first compile gives a new serial; Knot, current at the old one, takes it by IXFR.
        wait(lambda: [s for s in versions(restarted) if s != old_serial], 120, "a new transfer version", logs)
        new_serial = [s for s in versions(restarted) if s != old_serial][-1]
        wait(lambda: knot.serial() == new_serial, 60, "Knot at the new serial", logs)
        knot_log = knot.log[knot_mark:]
        assert re.search(r"IXFR, incoming, remote 127\.0\.0\.1@\d+, finished", knot_log), logs()
        assert "AXFR" not in knot_log, logs()
        assert restarted.addresses(name) == {"127.0.0.2"}
    finally:
        if knot is not None:
            knot.stop()
        for proc in (restarted, server):
            if proc is not None:
                proc.stop()
