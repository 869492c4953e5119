"""The demo as a receiver sees it: a real server, the real CLI, dnspython and dig."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import dns.rcode

from conftest import require_tool


def test_test_point_answers_and_cli_listing_is_served_within_a_second(server, workspace):
    assert server.addresses("2.0.0.127.bl.example") == {"127.0.0.2"}
    assert server.query("10.2.0.192.bl.example").rcode() == dns.rcode.NXDOMAIN
    workspace.rbl("listing", "add", "192.0.2.10")
    took = server.wait_for(lambda: server.addresses("10.2.0.192.bl.example") == {"127.0.0.2"}, timeout=1.0)
    assert took < 1.0
    workspace.rbl("listing", "remove", "192.0.2.10")
    server.wait_for(lambda: server.query("10.2.0.192.bl.example").rcode() == dns.rcode.NXDOMAIN, timeout=1.0)


def test_dig_sees_the_test_point(server):
    dig = require_tool("dig")
    out = subprocess.run([dig, "@127.0.0.1", "-p", str(server.port), "+short", "2.0.0.127.bl.example", "A"],
                         capture_output=True, text=True, timeout=20).stdout.split()
    assert out == ["127.0.0.2"]


def soa_serial(server) -> int:
    return server.query("bl.example", "SOA").answer[0][0].serial


def test_every_new_snapshot_has_a_larger_serial(server, workspace):
    first = soa_serial(server)
    workspace.rbl("listing", "add", "198.51.100.7")
    server.wait_for(lambda: soa_serial(server) > first)
    second = soa_serial(server)
    workspace.rbl("listing", "add", "198.51.100.8")
    server.wait_for(lambda: soa_serial(server) > second)


def test_a_broken_zone_file_keeps_the_last_good_zones_and_listings_still_flow(server, workspace):
    zone = workspace.zones / "bl.example.yaml"
    good = zone.read_text()
    intact = workspace.root / "intact-zones"
    intact.mkdir()
    (intact / zone.name).write_text(good)
    zone.write_text(good.replace("negative_ttl: 300", "negative_ttl: 60\nttl: [300]"))
    workspace.rbl("listing", "add", "198.51.100.9", "--zones", str(intact))
    server.wait_for(lambda: any(f"{zone}, line " in line for line in server.log), timeout=3)
    # The listing is served under the last good zone file; none of the broken one is used.
    server.wait_for(lambda: server.addresses("9.100.51.198.bl.example") == {"127.0.0.2"}, timeout=3)
    negative = server.query("8.100.51.198.bl.example")
    assert negative.rcode() == dns.rcode.NXDOMAIN and negative.authority[0].ttl == 300
    assert sum(f"{zone}, line " in line for line in server.log) == 1  # logged once, not per change
    zone.write_text(good.replace("negative_ttl: 300", "negative_ttl: 60"))
    server.wait_for(lambda: server.query("8.100.51.198.bl.example").authority[0].ttl == 60, timeout=3)


def test_expired_listings_stop_answering(server, workspace):
    # The store keeps whole seconds, so "3s" lives between 2 and 3 seconds.
    workspace.rbl("listing", "add", "198.51.100.10", "--expires", "3s")
    server.wait_for(lambda: server.addresses("10.100.51.198.bl.example") == {"127.0.0.2"})
    server.wait_for(lambda: server.query("10.100.51.198.bl.example").rcode() == dns.rcode.NXDOMAIN, timeout=5)


def worker_pids(server) -> list[int]:
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
    return [int(pid) for pid in children
            if "rbl.dns.worker" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]


def test_workers_share_one_mapped_snapshot_and_all_see_changes(workspace):
    from conftest import Server

    server = Server(workspace, "--workers", "2")
    try:
        pids = worker_pids(server)
        assert len(pids) == 2
        mapped = [{line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                   if line.endswith(".snap")} for pid in pids]
        assert mapped[0] == mapped[1] and len(mapped[0]) == 1  # one file, mapped by both
        workspace.rbl("listing", "add", "198.51.100.20")
        # Many queries from many source ports reach both workers: all must agree.
        server.wait_for(lambda: all(server.addresses("20.100.51.198.bl.example") == {"127.0.0.2"}
                                    for _ in range(40)), timeout=1.0)
        # A worker that dies is replaced, and answering goes on.
        os.kill(pids[0], signal.SIGKILL)
        server.wait_for(lambda: len(worker_pids(server)) == 2 and pids[0] not in worker_pids(server), timeout=10)
        assert all(server.addresses("20.100.51.198.bl.example") == {"127.0.0.2"} for _ in range(40))
    finally:
        server.stop()
    assert server.proc.returncode == 0
