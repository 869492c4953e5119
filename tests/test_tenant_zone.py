"""The tenant zone: ``identity.reversed-address.tenant.bl.example`` answers implicated, bystander or
nothing, over DNS from a real ``rbl serve``, and as its slow twin says for random listings."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
import time

import dns.message
import dns.rcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, Server
from rbl.addresses import parse_subject, reverse_name
from rbl.dns.general import general_answer
from rbl.dns.wire import build_snapshot_wire, template_answer
from rbl.policy.evidence import Item
from rbl.store import ListingStore
from rbl.store.database import timestamp
from rbl.store.evidence import EvidenceStore, Remediation
from rbl.store.tokens import TokenStore
from rbl.store.listings import Entry
from rbl.zone.snapshot import NODATA, NXDOMAIN
from rbl.zone.source import SnapshotSource
from rbl.zone.records import zone_records
from rbl.zone.tenant import BYSTANDER, IMPLICATED
from test_export import Resolver, rbl_answer

TENANT = "tenant.bl.example"
EC2 = "3.5.141.7"  # AWS EC2, shared space in the shipped policy
EC2_V6 = "2600:1f19:8000::7"
UNCLASSIFIED = "192.0.2.9"


def pair(identity: str, address: str) -> str:
    return f"{identity}.{reverse_name(address)}.{TENANT}"


def _answer(server: Server, name: str) -> tuple[str, set[str], str]:
    reply = server.query(name, "A")
    texts = server.query(name, "TXT")
    txt = "".join(s.decode() for rrset in texts.answer for rr in rrset for s in rr.strings)
    return dns.rcode.to_text(reply.rcode()), {rr.address for rrset in reply.answer for rr in rrset}, txt


def test_a_shared_address_answers_implicated_for_its_tenant_and_bystander_for_another(workspace):
    for address in (EC2, EC2_V6):
        workspace.rbl("listing", "add", address, "--identity", "shop.example", "--identity", "mailer.shop.example")
    workspace.rbl("listing", "add", UNCLASSIFIED, "--identity", "shop.example")
    server = Server(workspace)
    try:
        for address in (EC2, EC2_V6):
            rcode, codes, txt = _answer(server, pair("shop.example", address))
            assert (rcode, codes) == ("NOERROR", {"127.0.3.2"}), address
            assert txt.startswith(f"implicated: the listing of {address} names") and address in txt
            rcode, codes, txt = _answer(server, pair("honest.example", address))
            assert (rcode, codes) == ("NOERROR", {"127.0.3.1"}), address
            assert txt.startswith(f"bystander: the listing of {address}")
            # Case does not matter; a parent and a child of a named identity are other signers.
            assert _answer(server, pair("SHOP.Example", address))[1] == {"127.0.3.2"}
            assert _answer(server, pair("example", address))[1] == {"127.0.3.1"}
            assert _answer(server, pair("x.shop.example", address))[1] == {"127.0.3.1"}
        # Owner-accountable space: the address is the identity, so never bystander.
        assert _answer(server, pair("shop.example", UNCLASSIFIED))[:2] == ("NOERROR", {"127.0.3.2"})
        assert _answer(server, pair("honest.example", UNCLASSIFIED))[:2] == ("NXDOMAIN", set())
        assert _answer(server, pair("x.shop.example", UNCLASSIFIED))[:2] == ("NXDOMAIN", set())
        # Names that exist without records of their own: NODATA (RFC 8020), never an error.
        assert _answer(server, pair("example", UNCLASSIFIED))[:2] == ("NOERROR", set())
        assert _answer(server, f"{reverse_name(EC2)}.{TENANT}")[:2] == ("NOERROR", set())
        assert _answer(server, f"141.5.3.{TENANT}")[:2] == ("NOERROR", set())
        for name in (f"shop.example.5.3.{TENANT}", f"shop.example.1.2.3.{TENANT}", f"shop.example.{TENANT}",
                     f"shop.example.9.9.9.9.{TENANT}", f"shop.example.07.141.5.3.{TENANT}",
                     pair("shop.example", "2600:1f19:8000::8")):
            assert _answer(server, name)[:2] == ("NXDOMAIN", set()), name
        # An address listed with no identity: nothing is known about who is behind it.
        workspace.rbl("listing", "add", "3.5.141.8")
        server.wait_for(lambda: server.addresses(f"{reverse_name('3.5.141.8')}.bl.example") == {"127.0.0.2"})
        assert _answer(server, pair("shop.example", "3.5.141.8"))[0] == "NXDOMAIN"
        # Removed: NXDOMAIN for every identity.
        for address in (EC2, EC2_V6):
            workspace.rbl("listing", "remove", address)
        server.wait_for(lambda: _answer(server, pair("shop.example", EC2))[0] == "NXDOMAIN"
                        and _answer(server, pair("shop.example", EC2_V6))[0] == "NXDOMAIN")
        for address in (EC2, EC2_V6):
            for identity in ("shop.example", "honest.example"):
                assert _answer(server, pair(identity, address))[:2] == ("NXDOMAIN", set())
    finally:
        server.stop()


# -- the slow twin ------------------------------------------------------------------------

SHARED_NETS = [ipaddress.ip_network("3.5.140.0/22"), ipaddress.ip_network("2600:1f19:8000::/36")]
OTHER_NETS = [ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")]
NAMES = ["shop.example", "mailer.shop.example", "honest.example", "example.net", "a.b.example.net", "x.example"]


def twin(listings: dict[str, list[str]], identity: str, address: str) -> int:
    """The rules of the issue, one address at a time, as a receiver would read them."""
    names = listings.get(address)
    if not names:
        return NXDOMAIN  # not listed, or its listing names no identity
    if not identity:
        return NODATA  # the address's own name: its identities are below it
    if identity in names:
        return IMPLICATED
    if any(ipaddress.ip_address(address) in net for net in SHARED_NETS):
        return BYSTANDER
    if any(name.endswith("." + identity) for name in names):
        return NODATA  # a name that exists without records of its own (the zone file's empty non-terminal)
    return NXDOMAIN


def _address(net_index: int, host: int, shared: bool) -> str:
    net = (SHARED_NETS if shared else OTHER_NETS)[net_index]
    return str(net.network_address + host)


addresses = st.builds(_address, st.integers(0, 1), st.integers(1, 40), st.booleans())
listing_sets = st.dictionaries(addresses, st.lists(st.sampled_from(NAMES), max_size=3), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=listing_sets, second=listing_sets,
       asked=st.lists(st.tuples(st.sampled_from(NAMES + ["other.example", "net", "", "a", "x.b", "0.1"]), addresses),
                      min_size=30,
                      max_size=60))
def test_the_tenant_zone_answers_as_its_slow_twin_after_a_compile_and_after_a_patch(tmp_path_factory, first, second,
                                                                                    asked):
    folder = tmp_path_factory.mktemp("tenant")
    db = str(folder / "rbl.db")
    store = ListingStore(db)
    source = SnapshotSource(db, str(ROOT / "policy"), str(ROOT / "zones"))
    listed: dict[str, list[str]] = {}

    def apply(listings: dict[str, list[str]]) -> None:
        for address, names in listings.items():
            if listed.get(address) and not names:
                store.remove([parse_subject(address)], zone="bl.example", actor="test")
                listed.pop(address)
                continue
            store.add([Entry(parse_subject(address), identities=tuple(sorted(set(names))))], zone="bl.example",
                      actor="test")
            listed[address] = sorted(set(listed.get(address, [])) | set(names))

    def check(snapshot) -> None:
        zone = snapshot.zones[TENANT.encode()]
        probes = asked + [(name, address) for address, names in listed.items() for name in names]
        wires = build_snapshot_wire(snapshot)
        # The zone file mirrors load (zone_records), read as NSD and Knot read it (RFC 4592).
        mirror = Resolver([r for r in zone_records(snapshot, "bl.example") if r.name.endswith("tenant")])
        for identity, address in probes:
            rel = f"{identity}.{reverse_name(address)}" if identity else reverse_name(address)
            assert zone.find(rel.encode()) == twin(listed, identity, address), (identity, address, listed)
            rcode, codes, txt = mirror.ask(rel + ".tenant")
            assert (rcode, codes, txt) == rbl_answer(zone, rel)[:2] + ([rbl_answer(zone, rel)[2]] if codes else [],), \
                (identity, address)
            # The DNS fast path for pair names answers as the general path, in any case.
            for qtype in ("A", "TXT"):
                name = identity.upper() + rel[len(identity):]
                data = dns.message.make_query(f"{name}.{TENANT}", qtype).to_wire()
                fast = template_answer(data, snapshot, wires, True)
                assert fast is not None or not identity, (identity, address)
                if fast is not None:
                    assert dns.message.from_wire(fast) == dns.message.from_wire(general_answer(data, snapshot, True))

    apply(first)
    check(source.build())
    apply(second)
    check(source.update())
    assert source.last_kind == "patch"  # the patch path, held to the twin as the full compile is
    source.close()
    store.close()
    shutil.rmtree(folder)


def test_a_terminated_tenant_is_listed_in_the_dkim_zone_within_a_second(workspace):
    workspace.rbl("listing", "add", EC2, "--identity", "shop.example")
    vendor = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    server = Server(workspace)
    try:
        assert server.query("shop.example.dkim.bl.example").rcode() == dns.rcode.NXDOMAIN
        acted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status, body = server.http("POST", "/v1/evidence", {"items": [
            {"subject": EC2, "action": "tenant_terminated", "reference": "T-9", "acted_at": acted,
             "identity": "Shop.Example"}]}, token=vendor)
        assert status == 202, body
        posted = time.monotonic()
        server.wait_for(lambda: server.addresses("shop.example.dkim.bl.example") == {"127.0.2.2"}, timeout=1.0)
        assert time.monotonic() - posted < 1.0
        # A false positive naming an identity never lists it.
        status, body = server.http("POST", "/v1/evidence", {"items": [
            {"subject": EC2, "action": "false_positive", "reference": "T-10", "acted_at": acted,
             "identity": "honest.example"}]}, token=vendor)
        assert status == 202, body
        time.sleep(0.5)
        assert server.query("honest.example.dkim.bl.example").rcode() == dns.rcode.NXDOMAIN
    finally:
        server.stop()
    [line] = workspace.rbl("listing", "show", "shop.example", "--zone", "dkim.bl.example", "--json").stdout.splitlines()
    shown = json.loads(line)
    assert shown["source"] == "vendor:aws" and "T-9" in shown["reason"]


def test_a_terminated_tenants_listing_ends_after_the_policy_lifetime(tmp_path):
    now = [dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)]
    db = str(tmp_path / "rbl.db")
    store = ListingStore(db, clock=lambda: now[0])
    store.add([Entry(parse_subject(EC2), identities=("shop.example",))], zone="bl.example", actor="test")
    remediation = Remediation(("bl.example",), lambda kind, value: True, dt.timedelta(hours=6),
                              ("dkim.bl.example",), dt.timedelta(days=30))
    token, _secret = TokenStore(store).create("vendor", "aws", "test")
    acted = now[0] - dt.timedelta(hours=1)
    item = Item(parse_subject(EC2), "tenant_terminated", "T-1", acted, "shop.example")
    EvidenceStore(store).submit("aws", token.id, [item], "x", "vendor:aws", None, remediation)
    [listing] = store.show(parse_subject("shop.example"), zone="dkim.bl.example")
    assert listing.expires_at == timestamp(acted + dt.timedelta(days=30))
    source = SnapshotSource(db, str(ROOT / "policy"), str(ROOT / "zones"))
    source.store.clock = lambda: now[0]
    dkim = b"dkim.bl.example"
    assert source.build().zones[dkim].find(b"shop.example") > 0
    now[0] = acted + dt.timedelta(days=30, seconds=1)
    assert source.build().zones[dkim].find(b"shop.example") == NXDOMAIN
    # Evidence arriving after the lifetime has run lists nothing.
    late = Item(parse_subject(EC2), "tenant_terminated", "T-2", acted, "late.example")
    EvidenceStore(store).submit("aws", token.id, [late], "y", "vendor:aws", None, remediation)
    assert store.show(parse_subject("late.example"), zone="dkim.bl.example") == []
    source.close()
    store.close()
