"""The demo as a receiver sees it: a real server, the real CLI, dnspython and dig."""

from __future__ import annotations

import subprocess

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
