"""Broken policy files: `rbl policy check` names file and line, a running server keeps its last good policy.

Each folder under tests/fixtures/policy/ is a complete small policy. ``valid``
passes; every other one is ``valid`` with one file changed to hold exactly one
failure, and the folder is named after it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.rcode
import pytest

from conftest import ROOT, stop_process

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "policy"
ZONES = ROOT / "zones"

# fixture: (the file the message names, the line, words naming the problem)
BROKEN = {
    "unknown-key-in-vendor": ("vendors/acme.yaml", 5, "unknown key 'contact' in vendor"),
    "unknown-key-in-range": ("vendors/acme.yaml", 13, "unknown key 'lable' in range"),
    "unknown-space-kind": ("vendors/acme.yaml", 10, "space: unknown kind 'sharde'"),
    "unknown-feed": ("vendors/acme.yaml", 6, "unknown feed 'aws-ranges'"),
    "missing-feed-file": ("vendors/acme.yaml", 7, "feeds/acme-ipranges.json does not exist"),
    "contradicting-ranges": ("vendors/acme.yaml", 14,
                             "198.51.100.0/28 is shared here but dedicated at line 11: a vendor's ranges must not "
                             "contradict each other"),
    # Warnings, not errors: the check still fails.
    "selector-matches-nothing": ("vendors/acme.yaml", 9, "select matches nothing in feeds/acme-ip-ranges.json"),
    "select-value-misspelt": ("vendors/acme.yaml", 9, "select service: 'EC3' matches nothing"),
    "vendor-file-named-yml": ("vendors/hetzner.yml", 1, "ignored: vendor files are named <vendor>.yaml"),
    "feed-not-a-name": ("vendors/acme.yaml", 6, "feed: unknown feed ['aws-ip-ranges']"),
    "listing-codes-not-distinct": ("listing.yaml", 4, "code block-range: 127.0.0.2 is already the code of block"),
    "listing-zero-duration": ("listing.yaml", 7, "default: must be longer than 0"),
    "select-key-unknown-for-feed": ("vendors/acme.yaml", 9, "select: unknown key 'tag' for feed aws-ip-ranges"),
    "vendor-name-not-file-name": ("vendors/acme.yaml", 2, "name 'acme-cloud' must be the file's name ('acme')"),
    "bad-cidr-in-cidrs": ("vendors/acme.yaml", 16, "'203.0.113.70/26' is not a CIDR"),
    "feed-and-cidrs-both": ("vendors/acme.yaml", 6, "either feed (with file) or cidrs, not both"),
    "duplicate-key-in-vendor": ("vendors/droplets.yaml", 9, "duplicate key 'space'"),
    "yaml-syntax-error": ("vendors/droplets.yaml", 3, "YAML syntax error: mapping values are not allowed here"),
    "broken-feed-json": ("feeds/acme-ip-ranges.json", 14, "not valid JSON"),
    "bad-cidr-in-feed": ("feeds/acme-ip-ranges.json", 12, "prefixes[1]: ip_prefix '3.5.72.0/33' is not an IPv4 CIDR"),
    "bad-geofeed-line": ("feeds/droplets-geofeed.csv", 3, "prefix '24.144.64.0/33' is not a CIDR"),
    "listing-code-outside-127": ("listing.yaml", 4, "code block-range: 128.0.0.3 is outside 127.0.0.0/8"),
    "listing-bad-duration": ("listing.yaml", 9, "max: '90 days' is not a duration"),
    "listing-delisting-burst-zero": ("listing.yaml", 15, "burst must be from 1 to 100, not 0"),
    "exclusion-without-reason": ("exclusions.yaml", 5, "exclusion lacks the required key 'reason'"),
    "exclusion-bad-cidr": ("exclusions.yaml", 3, "'192.0.2.0/28/' is not a CIDR"),
}
WARNINGS = {"selector-matches-nothing", "select-value-misspelt", "vendor-file-named-yml"}


def policy_check_command(folder: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "rbl", "policy", "check", "--policy", str(folder), "--zones", str(ZONES),
            "--db", str(db)]


@pytest.fixture(scope="module")
def checks(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """`rbl policy check` run on every fixture folder, the processes side by side to save time."""
    tmp = tmp_path_factory.mktemp("policy-check")
    procs = {}
    try:
        for name in [*sorted(BROKEN), "valid"]:
            procs[name] = subprocess.Popen(policy_check_command(FIXTURES / name, tmp / f"{name}.db"), cwd=tmp,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        results = {}
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        return results
    finally:
        for proc in procs.values():
            stop_process(proc)
            proc.stdout.close()
            proc.stderr.close()


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_fixture_folder_is_in_the_table():
    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == sorted([*BROKEN, "valid"])


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_fixture_is_valid_but_for_the_file_its_message_names(name):
    valid, broken = files_of(FIXTURES / "valid"), files_of(FIXTURES / name)
    # The one file the message names differs from (or, if new, is missing in) the valid policy.
    assert set(broken) - set(valid) <= {BROKEN[name][0]} and set(valid) <= set(broken)
    assert [rel for rel in broken if valid.get(rel) != broken[rel]] == [BROKEN[name][0]]


def test_the_valid_fixture_passes(checks):
    proc = checks["valid"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "ok: 2 vendors, 1 dedicated, 2 excluded, 2 quarantine, 5 shared;" in proc.stdout


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_policy_exits_2_naming_file_and_line(name, checks):
    rel, line, words = BROKEN[name]
    folder = FIXTURES / name
    proc = checks[name]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ok:" not in proc.stdout
    messages = proc.stderr.splitlines()
    assert len(messages) == 1, proc.stderr  # exactly one failure, reported once
    kind = "warning" if name in WARNINGS else "error"
    assert messages[0].startswith(f"rbl: {kind}: {folder / rel}, line {line}: "), proc.stderr
    assert words in messages[0], proc.stderr


def answer(server, name: str):
    """The A records of a name, or the rcode's text when there are none."""
    reply = server.query(name)
    return server.addresses(name) or dns.rcode.to_text(reply.rcode())


def test_a_broken_vendor_file_keeps_the_last_good_policy_while_listings_flow(server, workspace):
    aws = workspace.policy / "vendors" / "aws.yaml"
    good = aws.read_text()
    lines = good.splitlines()
    select = lines.index("    select: {service: EC2}")
    assert lines[select + 1] == "    space: shared"  # the demo's EC2 range is shared
    line = select + 2

    # 3.5.140.0/22 is EC2 in the demo feed: shared space lists single addresses, never the /24.
    workspace.rbl("listing", "add", *(f"3.5.141.{i}" for i in range(1, 9)))
    server.wait_for(lambda: answer(server, "8.141.5.3.bl.example") == {"127.0.0.2"}, timeout=3)
    assert answer(server, "9.141.5.3.bl.example") == "NXDOMAIN"
    assert answer(server, "9.141.5.3.cloud.bl.example") == {"127.0.1.1"}

    aws.write_text(good.replace("    space: shared\n", "    space: sharde\n", 1))
    server.wait_for(lambda: any(f"{aws}, line {line}: space: unknown kind 'sharde'" in entry
                                for entry in server.log), timeout=3)

    # Listings still flow, decided by the last good policy: unclassified space escalates...
    workspace.rbl("listing", "add", *(f"198.51.100.{i}" for i in range(1, 9)))
    server.wait_for(lambda: answer(server, "200.100.51.198.bl.example") == {"127.0.0.3"}, timeout=3)
    # ...and the EC2 range is still shared: no escalation, no hole in the classification.
    assert answer(server, "9.141.5.3.bl.example") == "NXDOMAIN"
    assert answer(server, "9.141.5.3.cloud.bl.example") == {"127.0.1.1"}
    assert sum(str(aws) in entry for entry in server.log) == 1  # logged once, not per change

    # Fixed and changed: a declared dedicated /24 inside the EC2 range escalates, only there.
    aws.write_text(good + "  - cidrs: [3.5.141.0/24]\n    space: dedicated\n    label: one customer's /24\n")
    server.wait_for(lambda: answer(server, "9.141.5.3.bl.example") == {"127.0.0.3"}, timeout=3)
    assert answer(server, "9.141.5.3.cloud.bl.example") == {"127.0.1.2"}
    assert answer(server, "9.140.5.3.bl.example") == "NXDOMAIN"
    assert answer(server, "200.100.51.198.bl.example") == {"127.0.0.3"}


def test_a_running_server_refuses_a_policy_with_warnings(server, workspace):
    """A misspelt selector would turn a shared pool into escalating space: the last good policy stays."""
    aws = workspace.policy / "vendors" / "aws.yaml"
    good = aws.read_text()
    workspace.rbl("listing", "add", *(f"3.5.141.{i}" for i in range(1, 9)))
    server.wait_for(lambda: answer(server, "8.141.5.3.bl.example") == {"127.0.0.2"}, timeout=3)
    aws.write_text(good.replace("select: {service: EC2}", "select: {service: EC3}"))
    server.wait_for(lambda: any("keeping the last good policy" in entry and "select matches nothing" in entry
                                for entry in server.log), timeout=3)
    workspace.rbl("listing", "add", "3.5.141.20")  # a change, so a new snapshot is built
    server.wait_for(lambda: answer(server, "20.141.5.3.bl.example") == {"127.0.0.2"}, timeout=3)
    assert answer(server, "9.141.5.3.bl.example") == "NXDOMAIN"  # still shared: no block-range
    assert answer(server, "9.141.5.3.cloud.bl.example") == {"127.0.1.1"}
    check = workspace.rbl("policy", "check", check=False)
    assert check.returncode == 2 and "select matches nothing" in check.stderr
