"""Issue 4's acceptance over DNS and HTTP: the real AWS feed, shared versus owner-accountable space."""

from __future__ import annotations

import shutil

import dns.rcode
import dns.rdatatype
import pytest

from conftest import Server, Workspace, shared_file

EC2 = "3.5.140.0/22"  # EC2, ap-northeast-2, in the real ip-ranges.json


@pytest.fixture
def cloud(tmp_path):
    workspace = Workspace(tmp_path)
    feed = shared_file("feeds", "aws-ip-ranges.json")
    shutil.rmtree(workspace.policy / "vendors")
    (workspace.policy / "vendors").mkdir()
    (workspace.policy / "vendors" / "aws.yaml").write_text(f"""\
name: aws
title: Amazon Web Services
abuse: abuse@amazonaws.com
ranges:
  - feed: aws-ip-ranges
    file: {feed}
    select: {{service: EC2}}
    space: shared
  - cidrs: [3.5.142.16/28]
    space: dedicated
    label: one customer's block inside the EC2 pool
""")
    server = Server(workspace)
    yield workspace, server
    server.stop()


def codes(server: Server, address: str, zone: str = "bl.example") -> set[str] | None:
    """The A records for an address, or None for NXDOMAIN."""
    name = ".".join(reversed(address.split("."))) + "." + zone
    reply = server.query(name)
    if reply.rcode() == dns.rcode.NXDOMAIN:
        return None
    return {rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == dns.rdatatype.A}


def test_shared_space_lists_addresses_and_owner_space_escalates(cloud):
    workspace, server = cloud
    shared = [f"3.5.141.{i}" for i in range(1, 9)]
    unclassified = [f"198.51.100.{i}" for i in range(1, 9)]
    dedicated = [f"3.5.142.{i}" for i in range(17, 25)]
    workspace.rbl("listing", "add", *shared, *unclassified, *dedicated, "--reason", "spam trap")
    server.wait_for(lambda: codes(server, "3.5.141.1") == {"127.0.0.2"}, timeout=3)

    # Shared EC2 space: each listed address blocks, the ninth is not listed.
    assert [codes(server, a) for a in shared] == [{"127.0.0.2"}] * 8
    assert codes(server, "3.5.141.9") is None
    # The same eight in unclassified space list the whole /24.
    assert [codes(server, a) for a in unclassified] == [{"127.0.0.2", "127.0.0.3"}] * 8
    assert codes(server, "198.51.100.9") == codes(server, "198.51.100.255") == {"127.0.0.3"}
    # A dedicated /28 inside the EC2 pool escalates, and only that /28.
    assert codes(server, "3.5.142.16") == codes(server, "3.5.142.31") == {"127.0.0.3"}
    assert codes(server, "3.5.142.15") is None and codes(server, "3.5.142.32") is None
    assert codes(server, "3.5.142.17") == {"127.0.0.2", "127.0.0.3"}

    # The cloud information zone says whose space it is, and what kind.
    assert codes(server, "3.5.141.9", "cloud.bl.example") == {"127.0.1.1"}
    assert codes(server, "3.5.142.20", "cloud.bl.example") == {"127.0.1.2"}
    assert codes(server, "198.51.100.9", "cloud.bl.example") is None
    assert codes(server, "127.0.0.2", "cloud.bl.example") == {"127.0.1.1"}
    txt = server.query("9.141.5.3.cloud.bl.example", "TXT")
    text = b"".join(s for rr in txt.answer[0] for s in rr.strings).decode()
    assert text.startswith(f"vendor=aws space=shared range={EC2} service=EC2 region=ap-northeast-2")
    apex = server.query("cloud.bl.example", "SOA")
    assert apex.rcode() == dns.rcode.NOERROR and not apex.answer
    assert apex.authority[0].name.to_text() == "bl.example."  # a sub-zone: the parent's SOA

    # Explanations: the trace names range, vendor, space, listing and escalation.
    status, body = server.get("/v1/lookup/3.5.141.3")
    assert status == 200
    assert body["range"]["vendor"] == "aws" and body["range"]["cidr"] == EC2 and body["range"]["space"] == "shared"
    zone = body["zones"]["bl.example"]
    assert zone["codes"] == ["127.0.0.2"] and zone["listings"][0]["reason"] == "spam trap"
    assert any("never escalates" in step for step in zone["trace"])
    assert body["zones"]["cloud.bl.example"]["codes"] == ["127.0.1.1"]
    status, body = server.get("/v1/lookup/3.5.142.30")
    assert body["zones"]["bl.example"]["escalation"] == {
        "prefix": "3.5.142.0/24", "within": "3.5.142.16/28 (inside 3.5.142.0/24)", "listed": 8, "threshold": 8,
        "applied": True}
    status, body = server.get("/v1/lookup/3.5.141.0%2F24")
    assert status == 400 and "network" in body["error"]
    status, body = server.get("/v1/lookup/no..such")
    assert status == 400 and body["field"] == "subject"
    status, body = server.get("/v2/nothing")
    assert status == 404 and body["error"]
    explained = workspace.rbl("explain", "3.5.142.30")
    assert "block-range" in explained.stdout and "3.5.142.16/28" in explained.stdout
    assert workspace.rbl("explain", "3.5.141.9", check=False).returncode == 1


def test_the_dkim_zone_lists_signing_domains(server, workspace):
    workspace.rbl("listing", "add", "bulk-signer.example", "--zone", "dkim.bl.example")
    server.wait_for(lambda: server.addresses("bulk-signer.example.dkim.bl.example") == {"127.0.2.2"}, timeout=3)
    txt = server.query("bulk-signer.example.dkim.bl.example", "TXT")
    assert b"bulk-signer.example" in b"".join(s for rr in txt.answer[0] for s in rr.strings)
    assert server.addresses("test.dkim.bl.example") == {"127.0.2.2"}  # RFC 5782 domain test points
    assert server.query("invalid.dkim.bl.example").rcode() == dns.rcode.NXDOMAIN
    assert server.query("other.example.dkim.bl.example").rcode() == dns.rcode.NXDOMAIN
    workspace.rbl("listing", "add", "slow-fixer.example", "--zone", "dkim.bl.example", "--code", "throttle")
    server.wait_for(lambda: server.addresses("slow-fixer.example.dkim.bl.example") == {"127.0.2.4"}, timeout=3)
    explained = workspace.rbl("explain", "slow-fixer.example", "--json")
    assert '"127.0.2.4"' in explained.stdout
    bad = workspace.rbl("listing", "add", "x.example", "--code", "8.8.8.8", check=False)
    assert bad.returncode == 2 and "--code" in bad.stderr
    # Listed only in the DKIM zone, not in the address zone.
    assert server.query("bulk-signer.example.bl.example").rcode() == dns.rcode.NXDOMAIN
