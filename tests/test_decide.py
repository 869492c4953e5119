"""Decisions compiled into the snapshot answer as the rule-by-rule slow twin says."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbl.addresses import IP4, IP6, parse_subject
from rbl.policy.classify import Classification, Range
from rbl.policy.decide import decide_address
from rbl.policy.listing import Escalation, ListingPolicy, Remediation
from rbl.policy.remediation import TIERS, score_vendor
from rbl.policy.standing import Standing
from rbl.store import ListingStore
from rbl.store.listings import Entry
from rbl.zone.patch import Changes, patch_zone
from rbl.zone.compile import _code_text, compile_snapshot, compile_zone
from test_snapshot import CONFIG

DECIDED = dataclasses.replace(CONFIG, serves="listings")
# Small prefixes and a low threshold, so random data escalates often.
POLICY = ListingPolicy(escalation=Escalation(addresses=3, ip4_prefix=28, ip6_prefix=124))
NOW = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
BASE4 = 0x0A000000  # 10.0.0.0: the random data lives in 10.0.0.0/24
BASE6 = int(ipaddress.IPv6Address("2001:db8::"))  # and in 2001:db8::/120

spaces = st.sampled_from(["shared", "dedicated", "quarantine", "excluded"])


def cidr(kind: str, min_plen: int):
    bits, span, base = (32, 8, BASE4) if kind == IP4 else (128, 8, BASE6)
    return st.tuples(st.integers(min_plen, bits), st.integers(0, 2**span - 1)).map(
        lambda t: (kind, base | (t[1] >> (bits - t[0]) << (bits - t[0])) if t[0] < bits else base | t[1], t[0]))


ranges = st.lists(st.tuples(st.one_of(cidr(IP4, 25), cidr(IP6, 121)), spaces, st.sampled_from(["aws", "gcp"])),
                  max_size=8)
listings = st.lists(st.tuples(st.one_of(cidr(IP4, 26), cidr(IP4, 32), cidr(IP4, 32), cidr(IP6, 122), cidr(IP6, 128)),
                              st.sampled_from(["list", "list", "exclude", "code"])), max_size=40)


def row(kind: str, net: int, plen: int, action: str) -> tuple:
    width = 4 if kind == IP4 else 16
    text = str(ipaddress.ip_network((net, plen)))
    return (kind, net.to_bytes(width, "big"), plen, text, int(action == "exclude"),
            "127.0.0.9" if action == "code" else None, None)


def classification_of(items) -> Classification:
    return Classification([Range(kind, net, plen, "" if space == "excluded" else vendor, space)
                           for (kind, net, plen), space, vendor in items])


def expected_codes(decision, policy=POLICY) -> tuple[str, ...]:
    return tuple(policy.codes.get(name) or _code_text(name) for name in decision.codes)


def unique_rows(items) -> list[tuple]:
    rows = {}
    for (kind, net, plen), action in items:
        rows[(kind, net, plen)] = row(kind, net, plen, action)  # the store keeps one row per subject
    return list(rows.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ranges, listings)
def test_compiled_decisions_agree_with_the_slow_twin_everywhere(items, listed):
    classification = classification_of(items)
    rows = unique_rows(listed)
    zone, count = compile_zone(DECIDED, POLICY, rows, (), classification)
    assert count == len(rows)
    for offset in range(256):
        value = BASE4 + offset
        got = zone.answers[zone.ip4(value)]
        want = expected_codes(decide_address(IP4, value, rows, classification, POLICY))
        assert (got.codes if got else ()) == want, (ipaddress.IPv4Address(value), got, want)
        value6 = BASE6 + offset
        got6 = zone.answers[zone.ip6(value6)]
        want6 = expected_codes(decide_address(IP6, value6, rows, classification, POLICY))
        assert (got6.codes if got6 else ()) == want6, (ipaddress.IPv6Address(value6), got6, want6)


def standing_of(classification: Classification, tiers: dict[str, str]) -> Standing:
    neutral = score_vendor("x", [], POLICY.remediation, NOW)
    return Standing.of({v: dataclasses.replace(neutral, vendor=v, tier=t) for v, t in tiers.items()}, classification)


DENSE = dataclasses.replace(POLICY, remediation=Remediation(density=0.02))
tier_maps = st.fixed_dictionaries({"aws": st.sampled_from(TIERS), "gcp": st.sampled_from(TIERS)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ranges, listings, tier_maps)
def test_tier_dependent_decisions_agree_with_the_slow_twin(items, listed, tiers):
    """Cooperative: throttle for listed shared addresses; negligent: throttle-range over dense ranges."""
    classification = classification_of(items)
    standing = standing_of(classification, tiers)
    rows = unique_rows(listed)
    zone, _ = compile_zone(DECIDED, DENSE, rows, (), classification, standing)
    for offset in range(256):
        for kind, value in ((IP4, BASE4 + offset), (IP6, BASE6 + offset)):
            got = zone.answers[zone.ip4(value) if kind == IP4 else zone.ip6(value)]
            decision = decide_address(kind, value, rows, classification, DENSE, standing=standing)
            assert (got.codes if got else ()) == expected_codes(decision, DENSE), (kind, value, got, decision.trace)
            assert "block-range" not in decision.codes or decision.space != "shared"


def test_a_cooperative_vendor_throttles_and_a_negligent_ones_dense_range_throttles_range():
    shared_a = Range(IP4, BASE4, 25, "aws", "shared")
    shared_b = Range(IP4, BASE4 | 0x80, 25, "gcp", "shared")
    dedicated_b = Range(IP4, BASE4 | 0xF0, 28, "gcp", "dedicated")
    classification = Classification([shared_a, shared_b, dedicated_b])
    policy = ListingPolicy(remediation=Remediation(density=0.05))  # a /25: max(8, ceil(6.4)) = 8 listed
    standing = standing_of(classification, {"aws": "cooperative", "gcp": "negligent"})
    rows = [row(IP4, BASE4 | i, 32, "list") for i in range(1, 9)]
    rows += [row(IP4, BASE4 | 0x80 | i, 32, "list") for i in range(1, 8)]  # 7: below the threshold
    rows.append(row(IP4, BASE4 | 0x90, 28, "exclude"))

    def codes(zone, offset: int) -> tuple:
        answer = zone.answers[zone.ip4(BASE4 + offset)]
        return answer.codes if answer else ()

    zone, _ = compile_zone(DECIDED, policy, rows, (), classification, standing)
    assert [codes(zone, i) for i in range(1, 9)] == [("127.0.0.4",)] * 8  # throttle, never block-range
    assert codes(zone, 9) == () and codes(zone, 0x81) == ("127.0.0.2",) and codes(zone, 0xA0) == ()
    rows.append(row(IP4, BASE4 | 0x88, 32, "list"))  # the 8th: dense
    zone, _ = compile_zone(DECIDED, policy, rows, (), classification, standing)
    assert codes(zone, 0x81) == ("127.0.0.2", "127.0.0.5") and codes(zone, 0xA0) == ("127.0.0.5",)
    assert codes(zone, 0x80) == codes(zone, 0xEF) == ("127.0.0.5",)  # the whole range...
    assert codes(zone, 0x95) == () and codes(zone, 0xF3) == () and codes(zone, 0x7F) == ()  # ...save holes
    neutral, _ = compile_zone(DECIDED, policy, rows, (), classification)
    assert codes(neutral, 1) == ("127.0.0.2",) and codes(neutral, 0xA0) == ()


def test_shared_space_lists_addresses_and_never_escalates():
    shared = Range(IP4, BASE4, 24, "aws", "shared")
    dedicated = Range(IP4, BASE4 | 0x40, 28, "aws", "dedicated")
    classification = Classification([shared, dedicated])
    policy = ListingPolicy()
    rows = [row(IP4, BASE4 | i, 32, "list") for i in range(1, 9)]  # 8 in the shared part
    rows += [row(IP4, BASE4 | 0x40 | i, 32, "list") for i in range(1, 9)]  # 8 in the dedicated /28
    rows.append(row(IP4, BASE4 | 0x80, 25, "list"))  # a CIDR over shared space
    zone, _ = compile_zone(DECIDED, policy, rows, (), classification)

    def codes(offset: int) -> tuple:
        answer = zone.answers[zone.ip4(BASE4 + offset)]
        return answer.codes if answer else ()

    assert [codes(i) for i in range(1, 9)] == [("127.0.0.2",)] * 8
    assert codes(9) == () and codes(0x81) == ()  # no block-range, the CIDR is not applied
    assert [codes(0x40 | i) for i in range(1, 9)] == [("127.0.0.2", "127.0.0.3")] * 8
    assert codes(0x40) == codes(0x4F) == ("127.0.0.3",)  # the whole dedicated /28...
    assert codes(0x3F) == codes(0x50) == ()  # ...and not one address beside it
    unclassified, _ = compile_zone(DECIDED, policy, rows, (), Classification())
    assert unclassified.answers[unclassified.ip4(BASE4 + 9)].codes == ("127.0.0.3",)


def test_quarantine_and_exclusions_beat_listings():
    classification = Classification([Range(IP4, BASE4, 26, "aws", "quarantine"), Range(IP4, BASE4 | 0x40, 26, "", "excluded")])
    rows = [row(IP4, BASE4 | 5, 32, "list"), row(IP4, BASE4 | 0x45, 32, "list"), row(IP4, BASE4, 24, "list")]
    zone, _ = compile_zone(DECIDED, ListingPolicy(), rows, (), classification)
    assert zone.answers[zone.ip4(BASE4 + 5)].codes == ("127.0.0.6",)
    assert zone.answers[zone.ip4(BASE4 + 7)].codes == ("127.0.0.6",)
    assert zone.ip4(BASE4 + 0x45) == 0 and zone.ip4(BASE4 + 0x50) == 0
    assert zone.answers[zone.ip4(BASE4 + 0x85)].codes == ("127.0.0.2",)
    # RFC 5782 test points whatever the policy says.
    everything = Classification([Range(IP4, 0x7F000000, 8, "", "excluded")])
    zone, _ = compile_zone(DECIDED, ListingPolicy(), [], (), everything)
    assert zone.answers[zone.ip4(0x7F000002)].codes == ("127.0.0.2",) and zone.ip4(0x7F000001) == 0


def test_bulk_singles_decide_as_rows():
    classification = Classification([Range(IP4, BASE4 | 0x80, 25, "aws", "shared")])
    addresses = [BASE4 | i for i in range(0, 256, 3)]
    rows = [row(IP4, a, 32, "list") for a in addresses]
    slow, _ = compile_zone(DECIDED, ListingPolicy(), rows, (), classification)
    packed = b"".join(a.to_bytes(4, "big") for a in addresses)
    fast, count = compile_zone(DECIDED, ListingPolicy(), [], [(None, None, packed)], classification)
    assert count == len(addresses)
    for offset in range(-300, 600):
        a, b = slow.answers[slow.ip4(BASE4 + offset)], fast.answers[fast.ip4(BASE4 + offset)]
        assert (a.codes if a else None) == (b.codes if b else None)


changes = st.lists(st.tuples(st.one_of(cidr(IP4, 26), cidr(IP4, 32), cidr(IP6, 122), cidr(IP6, 128)),
                             st.sampled_from(["list", "exclude", "remove"])), max_size=12)


def _apply(store: ListingStore, subject: tuple, action: str) -> None:
    kind, net, plen = subject
    parsed = parse_subject(str(ipaddress.ip_network((net, plen))))
    if action == "remove":
        old = store.get("bl.example", parsed)
        if old is not None and old.state == "active":
            store.remove([parsed], zone="bl.example", actor="test")
        return
    store.add([Entry(parsed, exclude=action == "exclude")], zone="bl.example", actor="test")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ranges, changes, changes)
def test_patched_decisions_answer_as_a_full_compile(tmp_path_factory, items, before, after):
    classification = classification_of(items)
    store = ListingStore(tmp_path_factory.mktemp("decide") / "rbl.db", clock=lambda: NOW)
    for subject, action in before:
        _apply(store, subject, action)
    base = compile_snapshot(store, [DECIDED], POLICY, 1, NOW, classification).zones[b"bl.example"]
    mark = store.audit_mark()
    for subject, action in after:
        _apply(store, subject, action)
    patched = patch_zone(base, POLICY, store, Changes.of(store.changes_since(mark)[1]), NOW, classification)
    full = compile_snapshot(store, [DECIDED], POLICY, 2, NOW, classification).zones[b"bl.example"]
    for offset in range(256):
        for zone_a, zone_b, look in ((patched, full, "ip4"), (patched, full, "ip6")):
            value = (BASE4 if look == "ip4" else BASE6) + offset
            a = zone_a.answers[getattr(zone_a, look)(value)]
            b = zone_b.answers[getattr(zone_b, look)(value)]
            assert (a.codes if a else None) == (b.codes if b else None), (look, offset)


def test_a_subject_relisted_soon_lives_twice_as_long_capped(tmp_path):
    from rbl.policy.listing import Expiry

    clock = [NOW]
    store = ListingStore(tmp_path / "rbl.db", clock=lambda: clock[0])
    rules = Expiry()  # 7 days, doubled when relisted within 30 days, at most 90 days
    subject = parse_subject("192.0.2.7")

    def add() -> dt.timedelta:
        store.add([Entry(subject)], zone="bl.example", actor="test", expires=rules.default, repeat=rules)
        row = store.get("bl.example", subject)
        return dt.datetime.strptime(row.expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc) - clock[0]

    lifetimes = []
    for _ in range(6):
        lifetimes.append(add())
        clock[0] += lifetimes[-1] + dt.timedelta(days=1)  # it expires; a day later it is back
    assert [d.days for d in lifetimes] == [7, 14, 28, 56, 90, 90]
    clock[0] += dt.timedelta(days=31)  # quiet for longer than the window: back to the default
    assert add().days == 7
    clock[0] += dt.timedelta(days=1)
    assert add().days == 7  # a hit while listed keeps, never shortens, its lifetime
    store.remove([subject], zone="bl.example", actor="test")
    clock[0] += dt.timedelta(days=2)
    assert add().days == 14  # removed and relisted within the window counts as relisted


names = st.sampled_from(["example.com", "a.example.com", "b.a.example.com", "other.org"])
covers = st.sampled_from(["", "*.", "."])
domain_listings = st.lists(st.tuples(covers, names, st.sampled_from(["list", "exclude", "code"])), max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(domain_listings)
def test_explain_answers_domains_as_the_snapshot(tmp_path_factory, items):
    from rbl.explain import explain
    from rbl.policy.vendors import load_policy

    folder = tmp_path_factory.mktemp("explain")
    (folder / "policy").mkdir()
    policy = load_policy(folder / "policy")
    store = ListingStore(folder / "rbl.db", clock=lambda: NOW)
    for cover, name, action in items:
        store.add([Entry(parse_subject(cover + name), exclude=action == "exclude",
                         code="127.0.0.9" if action == "code" else None)], zone="bl.example", actor="test")
    zone = compile_snapshot(store, [DECIDED], policy.listing, 1, NOW).zones[b"bl.example"]
    for name in ["example.com", "a.example.com", "b.a.example.com", "x.b.a.example.com", "other.org",
                 "x.other.org"]:
        found = zone.find(name.encode())
        want = list(zone.answers[found].codes) if found > 0 else []
        got = explain(name, store, [DECIDED], policy, NOW)["zones"]["bl.example"]["codes"]
        assert got == want, (name, items)


EDGE = 0x10000000  # 16.0.0.0, where two of the sixteen IPv4 pieces of a full compile meet


def edge_cidr(min_plen: int):
    return st.tuples(st.integers(min_plen, 32), st.integers(0, 255)).map(
        lambda t: (IP4, (EDGE - 128 + t[1]) >> (32 - t[0]) << (32 - t[0]), t[0]))


# Only a network wider than a /4 crosses the edge: 0.0.0.0/3 and 0.0.0.0/1 do.
WIDE = st.sampled_from([(IP4, 0, 3), (IP4, 0, 1)])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(edge_cidr(23), WIDE), spaces, st.sampled_from(["aws", "gcp"])), max_size=6),
       st.lists(st.tuples(st.one_of(edge_cidr(22), edge_cidr(32), edge_cidr(32), WIDE),
                          st.sampled_from(["list", "list", "exclude", "code"])), max_size=40), tier_maps)
def test_deciding_ipv4_in_pieces_answers_as_deciding_it_whole(items, listed, tiers):
    """A full compile decides IPv4 a /4 at a time (its memory peak a sixteenth); listings and ranges
    across the edge of two pieces answer as in one window and as the slow twin says."""
    classification = classification_of(items)
    standing = standing_of(classification, tiers)
    rows = unique_rows(listed)
    pieces, _ = compile_zone(DECIDED, DENSE, rows, (), classification, standing, pieces=16)
    whole, _ = compile_zone(DECIDED, DENSE, rows, (), classification, standing, pieces=1)
    for offset in range(256):
        value = EDGE - 128 + offset
        got, want = pieces.answers[pieces.ip4(value)], whole.answers[whole.ip4(value)]
        assert got == want, (ipaddress.IPv4Address(value), got, want)
        decision = decide_address(IP4, value, rows, classification, DENSE, standing=standing)
        assert (got.codes if got else ()) == expected_codes(decision, DENSE), (value, got, decision.trace)
