"""Zone transfers from `rbl serve` to a real Knot secondary: TSIG, NOTIFY, IXFR; refusals.

Knot (`knotd`, Debian package knot) runs on a loopback port with a temporary
configuration as the secondary of bl.example. It must transfer the zone with
TSIG and answer a few thousand queries as rbl does (listed, escalated,
excluded, shared cloud space, IPv6, IPv4-mapped, domains, the cloud and DKIM
sub-zones); after 100 listing changes it must get a NOTIFY, transfer by IXFR
and answer the changed subjects as rbl does within 10 seconds. TransferResponder
without the key, with a wrong or unknown key, or from outside the allow list
are refused. The 50,000-query comparison of the zone's records is the export
tests' (tests/test_export.py); here the real transfer path is under test.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import re
import socket
import subprocess
import time
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest

from rbl.addresses import reverse_name

from conftest import ROOT, Server, Workspace, free_port, require_tool, stop_process

ORIGIN = "bl.example"
KEY_NAME = "rbl-xfr"
SECRET = base64.b64encode(bytes(range(7, 39))).decode()  # 32 bytes; must never show in a log
SEED = 5782
CHANGES = 100


# A Knot secondary of rbl (bench/transfer.py runs the same one).
KNOT_CONF = (ROOT / "tests" / "fixtures" / "knot-secondary.conf").read_text()


class Knot:
    """A real knotd as the secondary of rbl's zone, on a free loopback port."""

    def __init__(self, folder: Path, port: int, primary_port: int):
        self.knotd = require_tool("knotd")
        self.dir = folder
        (folder / "db").mkdir(parents=True)
        (folder / "zones").mkdir()
        self.port = port
        self.conf = folder / "knot.conf"
        self.conf.write_text(KNOT_CONF.format(dir=folder, port=self.port, key=KEY_NAME, secret=SECRET,
                                              primary=primary_port, origin=ORIGIN))
        self.log_path = folder / "knot.log"
        self.proc = subprocess.Popen([self.knotd, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def serial(self) -> int | None:
        try:
            reply = dns.query.udp(dns.message.make_query(ORIGIN, "SOA"), "127.0.0.1", port=self.port, timeout=1)
        except (dns.exception.Timeout, OSError):
            return None
        soa = [rr for rrset in reply.answer for rr in rrset if rr.rdtype == dns.rdatatype.SOA]
        return soa[0].serial if soa and reply.rcode() == dns.rcode.NOERROR else None

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc.stderr.close()


# -- the data: a spread of everything a zone answers ---------------------------------------

def ip4(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def build_data(rng: random.Random) -> dict:
    """Listings for one import (rbldnsd format: addresses, CIDRs, domains, ! exclusions) and the names to ask."""
    aws = [ipaddress.ip_network(p["ip_prefix"]) for p in
           json.loads((ROOT / "policy" / "feeds" / "aws-ip-ranges.json").read_text())["prefixes"]
           if p.get("service") == "EC2"]
    lines: list[str] = []
    probes: dict[str, list[str]] = {}  # kind: subjects to ask
    singles = set()
    while len(singles) < 1000:
        a = rng.randrange(0x05000000, 0xDF000000)
        if a >> 24 not in (10, 127, 198, 100) and not any(ipaddress.IPv4Address(a) in n for n in aws):
            singles.add(a)
    lines += [ip4(a) for a in singles]
    probes["listed"] = [ip4(a) for a in rng.sample(sorted(singles), 800)]
    probes["neighbours"] = [ip4(a ^ 1) for a in rng.sample(sorted(singles), 300)]
    probes["random"] = [ip4(rng.randrange(0x01000000, 0xE0000000)) for _ in range(300)]
    dense = []
    for i in range(15):  # 9 to 12 listed addresses in a /24: the whole /24 answers block-range
        base = (0x2D000000 + i * 0x10300) & ~0xFF  # 45.x.y.0/24, owner-accountable space
        dense.append(base)
        lines += [ip4(base + h) for h in rng.sample(range(256), rng.randrange(9, 13))]
    probes["escalated"] = [ip4(base + rng.randrange(256)) for base in dense for _ in range(14)]
    cidrs = [("62.{}.0.0/20", 20), ("80.{}.4.0/22", 22), ("91.{}.3.64/26", 26), ("185.{}.9.8/30", 30)]
    for i in range(10):
        for pattern, plen in cidrs:
            net = ipaddress.ip_network(pattern.format(10 + i))
            lines.append(str(net))
            probes.setdefault("cidr", []).extend(str(net[rng.randrange(net.num_addresses)]) for _ in range(4))
            probes["cidr"].append(str(net.broadcast_address + 1))  # just past it
    # Exclusions: a hole in a listed /20, and the policy's excluded 198.19.253.0/24 under a listed /16.
    for i in range(10):
        lines.append(f"!62.{10 + i}.3.16/28")
        probes.setdefault("excluded", []).extend([f"62.{10 + i}.3.{16 + rng.randrange(16)}", f"62.{10 + i}.3.15"])
    lines.append("198.19.0.0/16")
    probes["excluded"] += [f"198.19.253.{rng.randrange(256)}" for _ in range(30)]
    probes["excluded"] += [f"198.19.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(30)]
    # Shared cloud space (AWS EC2 in the demo policy): listed one address at a time, never escalated.
    shared = []
    for net in rng.sample(aws, min(20, len(aws))):
        base = int(net.network_address) + rng.randrange(net.num_addresses - 16)
        shared += [base + h for h in range(10)]
    lines += [ip4(a) for a in shared]
    probes["shared"] = [ip4(a + d) for a in shared[::3] for d in (0, 11, 200)]
    probes["cloud"] = [str(net[rng.randrange(net.num_addresses)]) for net in aws for _ in range(2)][:120]
    # IPv6: singles, a dense /64 (block-range), a /48 and a /56.
    v6 = [int(ipaddress.IPv6Address(f"2001:db8:{rng.randrange(1, 0xFFFF):x}::")) + rng.randrange(2**64)
          for _ in range(400)]
    lines += [str(ipaddress.IPv6Address(a)) for a in v6]
    probes["ipv6"] = [str(ipaddress.IPv6Address(a)) for a in v6[:300]]
    dense6 = int(ipaddress.IPv6Address("2001:db8:aaaa:1::"))
    lines += [str(ipaddress.IPv6Address(dense6 + h)) for h in range(1, 11)]
    probes["ipv6"] += [str(ipaddress.IPv6Address(dense6 + rng.randrange(2**64))) for _ in range(40)]
    lines += ["2001:db8:bbbb::/48", "2001:db8:cccc:ab00::/56"]
    probes["ipv6"] += [str(ipaddress.IPv6Address(int(ipaddress.IPv6Address(p)) + rng.randrange(2**72)))
                       for p in ("2001:db8:bbbb::", "2001:db8:cccc:ab00::") for _ in range(30)]
    probes["ipv6"] += [str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("2001:db8:dddd::")) + rng.randrange(2**80)))
                       for _ in range(30)]
    probes["mapped"] = [f"::ffff:{s}" for s in probes["listed"][:80] + probes["escalated"][:40]
                        + probes["neighbours"][:20]]
    # Domains: names, subtrees (.domain: it and below; *.domain: below only).
    domains = [f"spam{i}.example" for i in range(150)]
    lines += domains + [".tree.example", "*.below.example"]
    probes["domains"] = domains[:120] + [f"ok{i}.example" for i in range(30)] + [
        "tree.example", "a.tree.example", "b.c.tree.example", "below.example", "x.below.example",
        "y.z.below.example", "test", "invalid"]
    return {"lines": lines, "probes": probes,
            "dkim": [f"bulk{i}.example" for i in range(40)]}


def query_names(data: dict) -> list[str]:
    """Every name to ask, under the zone or a sub-zone."""
    names = []
    for kind, subjects in data["probes"].items():
        for subject in subjects:
            if kind == "domains":
                names.append(f"{subject}.{ORIGIN}")
            elif kind == "cloud":
                names.append(f"{reverse_name(subject)}.cloud.{ORIGIN}")
            else:
                names.append(f"{reverse_name(subject)}.{ORIGIN}")
    names += [f"{d}.dkim.{ORIGIN}" for d in data["dkim"][:30]] + [f"nope{i}.example.dkim.{ORIGIN}" for i in range(10)]
    names += [f"{p}.{ORIGIN}" for p in ("2.0.0.127", "1.0.0.127", "0.0.127", "127", "2.0.0.127.dkim")]
    return names


# -- asking both ---------------------------------------------------------------------------

def ask(sock: socket.socket, port: int, name: str, rdtype: str) -> tuple[str, frozenset, list[str]]:
    reply = dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=3, sock=sock)
    if reply.flags & dns.flags.TC:
        reply = dns.query.tcp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=3)
    a = frozenset(rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == dns.rdatatype.A)
    txt = sorted(b"".join(rr.strings).decode() for rrset in reply.answer for rr in rrset
                 if rr.rdtype == dns.rdatatype.TXT)
    return dns.rcode.to_text(reply.rcode()), a, txt


def txt_allowed(rbl_txt: str, knot_txt: str) -> bool:
    """Knot's TXT from a zone's records: rbl's, or with the subject written as a network or a parent
    domain holding it (a wildcard's TXT names what it covers; see the README)."""
    if rbl_txt == knot_txt:
        return True
    token = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:./-")
    # Where the two differ, widened to the whole token (address, network or domain) on each side.
    prefix = 0
    while prefix < min(len(rbl_txt), len(knot_txt)) and rbl_txt[prefix] == knot_txt[prefix]:
        prefix += 1
    while prefix and rbl_txt[prefix - 1] in token:
        prefix -= 1
    suffix = 0
    while suffix < min(len(rbl_txt), len(knot_txt)) - prefix and rbl_txt[-1 - suffix] == knot_txt[-1 - suffix]:
        suffix += 1
    while suffix and rbl_txt[len(rbl_txt) - suffix] in token:
        suffix -= 1
    subject, written = rbl_txt[prefix:len(rbl_txt) - suffix], knot_txt[prefix:len(knot_txt) - suffix]
    try:
        address = ipaddress.ip_address(subject)
    except ValueError:
        return subject.endswith("." + written)  # a domain under a listed subtree
    try:
        return "/" in written and address in ipaddress.ip_network(written, strict=False)
    except ValueError:
        return False


def compare(rbl_port: int, knot_port: int, names: list[str]) -> list[str]:
    """Names whose rcode, A set or TXT differ between rbl and Knot, with both answers."""
    bad = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        for name in names:
            ours, theirs = ask(a, rbl_port, name, "A"), ask(b, knot_port, name, "A")
            if ours[:2] != theirs[:2]:
                bad.append(f"{name} A: rbl {ours[:2]} knot {theirs[:2]}")
                continue
            ours, theirs = ask(a, rbl_port, name, "TXT"), ask(b, knot_port, name, "TXT")
            if ours[0] != theirs[0] or len(ours[2]) != len(theirs[2]) or not all(
                    txt_allowed(x, y) for x, y in zip(ours[2], theirs[2])):
                bad.append(f"{name} TXT: rbl {ours[0]} {ours[2]} knot {theirs[0]} {theirs[2]}")
    return bad


def wait(predicate, timeout: float, what: str, logs) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s\n{logs()}")
        time.sleep(0.1)
    return time.monotonic() - started


# -- the setup: rbl serve with transfer settings, and Knot as its secondary ----------------------

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    require_tool("knotd")
    root = tmp_path_factory.mktemp("transfer")
    workspace = Workspace(root)
    data = build_data(random.Random(SEED))
    (root / "listings.rbldnsd").write_text("\n".join(data["lines"]) + "\n")
    workspace.rbl("listing", "import", str(root / "listings.rbldnsd"), "--format", "rbldnsd", "--expires", "never")
    workspace.rbl("listing", "add", *data["dkim"], "--zone", f"dkim.{ORIGIN}", "--expires", "never")
    (workspace.zones / "rbl-xfr.key").write_text(SECRET + "\n")
    knot_dir = root / "knot"
    knot_dir.mkdir()
    knot_port = free_port()  # NOTIFY goes here; Knot binds it below
    with open(workspace.zones / f"{ORIGIN}.yaml", "a") as f:
        f.write(f"""
transfer:
  allow: [127.0.0.1/32]
  secondaries: ["127.0.0.1:{knot_port}"]
  key: {{name: {KEY_NAME}, algorithm: hmac-sha256, secret_file: rbl-xfr.key}}
  history: 64
""")
    server = Server(workspace, "--http", "off")
    knot = None
    try:
        wait(lambda: any("transfer version" in line for line in server.log), 60, "the first version",
             lambda: "".join(server.log))
        knot = Knot(knot_dir, knot_port, server.port)
        yield workspace, server, knot, data
    finally:
        if knot is not None:
            knot.stop()
        server.stop()


def logs_of(server: Server, knot: Knot):
    return lambda: "rbl:\n" + "".join(server.log[-80:]) + "\nknot:\n" + knot.log[-6000:]


def versions(server: Server) -> list[int]:
    """The serials rbl has rendered for transfer, from its log."""
    return [int(m[1]) for line in list(server.log) if (m := re.search(r"transfer version (\d+) of bl\.example", line))]


def keyring(secret: str = SECRET, name: str = KEY_NAME) -> dict:
    return dns.tsigkeyring.from_text({name: ("hmac-sha256", secret)})


def transfer(port: int, ring: dict | None = None, name: str = KEY_NAME, source: str | None = None,
             serial: int | None = None) -> dns.zone.Zone:
    """An AXFR (serial None) or IXFR from serial, with dnspython, into an empty zone."""
    zone = dns.zone.Zone(ORIGIN)
    query, _ = dns.xfr.make_query(zone, serial=serial, keyring=ring,
                                  keyname=dns.name.from_text(name) if ring else None)
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=port, timeout=10, source=source)
    return zone


def test_knot_transfers_the_zone_with_tsig_and_answers_a_sample_as_rbl_does(setup):
    workspace, server, knot, data = setup
    logs = logs_of(server, knot)
    wait(lambda: knot.serial() is not None and knot.serial() == versions(server)[-1], 30,
         "Knot holds rbl's newest version", logs)
    assert re.search(r"AXFR, incoming, remote 127\.0\.0\.1@\d+, finished", knot.log), logs()
    assert any(f"AXFR of {ORIGIN} to 127.0.0.1" in line and f"(key {KEY_NAME})" in line for line in server.log)
    names = query_names(data)
    assert len(names) >= 2500
    started = time.monotonic()
    bad = compare(server.port, knot.port, names)
    assert not bad, f"{len(bad)} of {len(names)} names differ:\n" + "\n".join(bad[:30])
    print(f"\n{len(names)} names (A and TXT) answered alike by rbl and Knot in {time.monotonic() - started:.1f} s")


def test_after_100_changes_knot_gets_notify_transfers_by_ixfr_and_answers_within_10_s(setup):
    workspace, server, knot, data = setup
    logs = logs_of(server, knot)
    rng = random.Random(SEED + 1)
    wait(lambda: knot.serial() == versions(server)[-1], 30, "Knot up to date before the changes", logs)
    knot_mark, rbl_mark = len(knot.log), len(server.log)
    fresh = 0x4D5A3B00  # 77.90.59.0/24: nothing listed there yet
    adds = [ip4(fresh + h) for h in rng.sample(range(1, 255), 12)]  # dense: the /24 escalates
    adds += [ip4(0x4E000000 + rng.randrange(2**24)) for _ in range(38)]  # 78.x.y.z singles
    adds += [str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("2001:db8:eeee::")) + rng.randrange(2**64)))
             for _ in range(5)]
    adds += [f"fresh{i}.example" for i in range(5)]
    removes = rng.sample(data["probes"]["listed"], 40)
    assert len(adds) + len(removes) == CHANGES
    watched = adds + removes + [ip4(fresh + h) for h in range(0, 256, 13)]  # unlisted in the escalated /24
    names = [f"{s}.{ORIGIN}" if not s[0].isdigit() and ":" not in s else f"{reverse_name(s)}.{ORIGIN}"
             for s in watched]

    def a_differs(port_a: int, port_b: int) -> list[str]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET,
                                                                                  socket.SOCK_DGRAM) as b:
            return [n for n in names if ask(a, port_a, n, "A")[:2] != ask(b, port_b, n, "A")[:2]]

    started = time.monotonic()
    workspace.rbl("listing", "add", *adds, "--expires", "never", "--reason", "transfer test")
    workspace.rbl("listing", "remove", *removes)
    changed = time.monotonic()
    # rbl answers the changes first (a second or so); Knot must follow within 10 s of the last change.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        wait(lambda: all(ask(sock, server.port, f"{reverse_name(s)}.{ORIGIN}", "A")[0] == "NXDOMAIN"
                         for s in removes), 10, "rbl answers the removals", logs)
    wait(lambda: not a_differs(server.port, knot.port), 10 - (time.monotonic() - changed),
         "Knot answers the changed subjects as rbl does", logs)
    delay = time.monotonic() - changed
    assert delay <= 10
    assert not compare(server.port, knot.port, names)  # TXT too
    served_pattern = (r"IXFR of bl\.example to 127\.0\.0\.1: serial \d+ -> \d+ in \d+ steps?, (\d+) records in "
                      r"\d+ messages?, (\d+) bytes")
    notified_pattern = r"NOTIFY of bl\.example serial \d+ to 127\.0\.0\.1:\d+ answered"
    wait(lambda: re.search(served_pattern, "".join(server.log[rbl_mark:]))
         and re.search(notified_pattern, "".join(server.log[rbl_mark:])), 5, "rbl's log of NOTIFY and IXFR", logs)
    knot_log, rbl_log = knot.log[knot_mark:], "".join(server.log[rbl_mark:])
    assert re.search(r"notify, incoming, remote 127\.0\.0\.1@\d+, serial \d+", knot_log), logs()
    assert re.search(r"IXFR, incoming, remote 127\.0\.0\.1@\d+, finished", knot_log), logs()
    assert "AXFR" not in knot_log, logs()  # neither a full transfer nor an AXFR-style IXFR
    served = re.findall(served_pattern, rbl_log)
    print(f"\n{CHANGES} changes: rbl's CLI took {changed - started:.2f} s; Knot answered every changed subject "
          f"as rbl {delay:.2f} s after the last one; IXFRs served (records, bytes): {served}")


def test_transfers_without_the_key_with_a_bad_key_or_from_outside_the_allow_list_are_refused(setup):
    workspace, server, knot, data = setup
    port = server.port
    mark = len(server.log)
    with pytest.raises(dns.xfr.TransferError) as caught:
        transfer(port)
    assert caught.value.rcode == dns.rcode.REFUSED
    with pytest.raises(dns.tsig.PeerBadSignature):  # NOTAUTH, TSIG error BADSIG
        transfer(port, keyring(base64.b64encode(b"not the secret, not at all!!!!!!").decode()))
    with pytest.raises(dns.tsig.PeerBadKey):  # NOTAUTH, TSIG error BADKEY
        transfer(port, keyring(name="someone-else"), name="someone-else")
    with pytest.raises(dns.xfr.TransferError) as caught:  # the right key from outside allow: [127.0.0.1/32]
        transfer(port, keyring(), source="127.0.0.2")
    assert caught.value.rcode == dns.rcode.REFUSED
    dig = require_tool("dig")
    out = subprocess.run([dig, "@127.0.0.1", "-p", str(port), ORIGIN, "AXFR", "+time=5", "+tries=1"],
                         capture_output=True, text=True, timeout=30).stdout
    assert "Transfer failed" in out and " IN SOA " not in out, out
    # With the key, from inside the allow list, the whole zone.
    zone = transfer(port, keyring())
    assert zone.get_rdataset("@", "SOA")[0].serial == versions(server)[-1]
    assert len(zone.nodes) > 1000
    reasons = ["not signed, and TSIG is required", "BADSIG", "BADKEY", "not in its allow list"]

    def refused() -> bool:
        lines = [line for line in server.log[mark:] if "refused AXFR of bl.example to 127.0.0." in line]
        return all(any(reason in line for line in lines) for reason in reasons)

    wait(refused, 5, "a log line for each refusal", logs_of(server, knot))
    everything = "".join(server.log)
    assert SECRET not in everything and "secret=" not in everything


def test_an_ixfr_from_past_the_history_gets_the_whole_zone_and_a_current_one_the_soa(setup):
    workspace, server, knot, data = setup
    ring = keyring()
    zone = transfer(server.port, ring, serial=12345)  # never one of ours: AXFR-style (RFC 1995 section 4)
    newest = versions(server)[-1]
    assert zone.get_rdataset("@", "SOA")[0].serial == newest
    assert len(zone.nodes) == len(transfer(server.port, ring).nodes)
    zone = transfer(server.port, ring, serial=newest)  # up to date: our SOA alone
    assert zone.get_rdataset("@", "SOA") is None
    wait(lambda: f"IXFR of bl.example to 127.0.0.1: serial {newest} is up to date" in "".join(server.log), 5,
         "the log of the IXFR that was up to date", logs_of(server, knot))
    assert "IXFR (whole zone) of bl.example to 127.0.0.1: serial" in "".join(server.log)


def test_transfer_settings_follow_the_zone_file_at_once(tmp_path):
    """tsig: optional serves unsigned transfers; a narrowed allow list and a removed transfer block
    apply with the next snapshot, before any version is rendered."""
    workspace = Workspace(tmp_path)
    zone_file = workspace.zones / f"{ORIGIN}.yaml"
    plain = zone_file.read_text()
    zone_file.write_text(plain + "\ntransfer:\n  tsig: optional\n  history: 0\n")
    server = Server(workspace, "--http", "off")
    try:
        wait(lambda: versions(server), 30, "the first version", lambda: "".join(server.log))
        zone = transfer(server.port)  # unsigned, from loopback: allowed
        assert zone.get_rdataset("@", "SOA")[0].serial == versions(server)[-1]
        # A signed query with a key the zone does not have: NOTAUTH, BADKEY.
        query = dns.message.make_query(ORIGIN, "SOA")
        query.use_tsig(keyring(), keyname=KEY_NAME)
        with pytest.raises(dns.tsig.PeerBadKey):
            dns.query.udp(query, "127.0.0.1", port=server.port, timeout=5)
        # IXFR with history 0: always the whole zone.
        assert len(transfer(server.port, serial=versions(server)[-1] - 1).nodes) == len(zone.nodes)
        zone_file.write_text(plain + "\ntransfer:\n  allow: [192.0.2.0/24]\n  tsig: optional\n")

        def refused(reason: str) -> bool:
            try:
                transfer(server.port)
            except dns.xfr.TransferError as exc:
                return exc.rcode == dns.rcode.REFUSED and any(reason in line for line in server.log)
            return False

        wait(lambda: refused("not in its allow list"), 10, "the narrowed allow list", lambda: "".join(server.log))
        zone_file.write_text(plain)
        wait(lambda: refused("no transfers are set up for it"), 10, "the removed transfer block",
             lambda: "".join(server.log))
    finally:
        server.stop()


def test_a_name_that_is_no_zone_is_never_a_path(tmp_path):
    """A fuzzed AXFR for "bl\\0example" once closed the connection (os.stat raised ValueError)."""
    from rbl.transfer.respond import TransferResponder

    (tmp_path / "etc").mkdir()
    transfers = TransferResponder(tmp_path / "transfers")
    for name in ("bl\x00example", "../etc", "bl/example", "..", ".bl.example", "bl..example"):
        assert transfers.zone(name) is None
    nul = bytes.fromhex("abcd0000000100000000000002626c076500136d706c650000fc0001")  # AXFR of bl.e\0\x13mple
    replies = list(transfers._replies(nul, "127.0.0.1"))
    assert len(replies) == 1 and replies[0][3] & 0x0F == 5  # REFUSED, and the connection stays open
