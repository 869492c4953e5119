"""The snapshot against a naive longest-prefix scan, and its compile-time rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.addresses import parse_subject, reverse_name
from rbl.policy.listing import ListingPolicy
from rbl.zone.config import Soa, ZoneConfig
from rbl.intervals import flatten
from rbl.zone.compile import compile_zone
from rbl.zone.snapshot import NODATA, NXDOMAIN

CONFIG = ZoneConfig(origin="bl.example", path="test", serves="verbatim", soa=Soa("ns1.bl.example", "hostmaster.bl.example"),
                    ns=("ns1.bl.example",), glue={"ns1.bl.example": ("127.0.0.1",)}, txt="T $")
TEST_POINTS = {0x7F000002: "127.0.0.2", 0x7F000001: None}


def row(text: str, exclude: bool = False, code: str | None = None, txt: str | None = None):
    s = parse_subject(text)
    return (s.kind, s.packed or None, s.plen if s.kind != "domain" else None, s.text, int(exclude), code, txt)


def naive_ip(rows, kind, bits, addr):
    """Longest prefix wins; an exclusion beats a listing of the same prefix."""
    best = None
    for kind_, net, plen, _text, exclude, code, _txt in rows:
        if kind_ != kind:
            continue
        lo = int.from_bytes(net, "big")
        if lo <= addr < lo + (1 << (bits - plen)):
            key = (plen, exclude)
            if best is None or key > best[0]:
                best = (key, None if exclude else code)
    return best[1] if best else None


def answer_codes(zone, result):
    return zone.answers[result].codes[0] if result > 0 else None


# IPv4 CIDRs in a small universe (10.0.0.0/16), so partial names can be checked by brute force.
cidr4 = st.tuples(st.integers(16, 32), st.integers(0, 2**16 - 1), st.booleans()).map(
    lambda t: (0x0A000000 | (t[1] >> (32 - t[0]) << (32 - t[0])) & 0xFFFF, t[0], t[2]))


def rows4(cidrs):
    out = []
    for i, (net, plen, exclude) in enumerate(cidrs):
        text = f"{net >> 24}.{net >> 16 & 255}.{net >> 8 & 255}.{net & 255}/{plen}"
        out.append(row(text, exclude, f"127.0.1.{i % 250 + 1}"))
    # One subject is one row in the store: keep the last, as the store does.
    return list({r[3]: r for r in out}.values())


@settings(max_examples=150, deadline=None)
@given(st.lists(cidr4, max_size=40), st.lists(st.integers(0x0A000000, 0x0A00FFFF), max_size=30))
def test_ipv4_lookup_matches_naive_longest_prefix(cidrs, probes):
    rows = rows4(cidrs)
    zone, _ = compile_zone(CONFIG, ListingPolicy(), rows)
    edges = []
    for _k, net, plen, *_ in rows:
        lo = int.from_bytes(net, "big")
        edges += [lo - 1, lo, lo + (1 << (32 - plen)) - 1, lo + (1 << (32 - plen))]
    for addr in [*edges, *probes, 0, 2**32 - 1]:
        if not 0 <= addr < 2**32:
            continue
        expected = TEST_POINTS[addr] if addr in TEST_POINTS else naive_ip(rows, "ip4", 32, addr)
        got = answer_codes(zone, zone.ip4(addr))
        if addr == 0x7F000002:
            expected = "127.0.0.2"
        assert got == expected, hex(addr)
        # The same through the query name.
        assert answer_codes(zone, zone.find(reverse_name(str_ip4(addr)).encode())) == expected


def str_ip4(addr: int) -> str:
    return ".".join(str(addr >> s & 255) for s in (24, 16, 8, 0))


@settings(max_examples=60, deadline=None)
@given(st.lists(cidr4, max_size=25), st.integers(0, 255))
def test_partial_ipv4_names_are_empty_non_terminals_exactly_when_something_below_is_listed(cidrs, third):
    rows = rows4(cidrs)
    zone, _ = compile_zone(CONFIG, ListingPolicy(), rows)
    base = 0x0A000000 | third << 8
    below = any(naive_ip(rows, "ip4", 32, base + i) for i in range(256))
    assert zone.find(f"{third}.0.10".encode()) == (NODATA if below else NXDOMAIN)


cidr6 = st.tuples(st.integers(32, 128), st.integers(0, 2**96 - 1), st.booleans()).map(
    lambda t: ((0x20010DB8 << 96 | t[1]) >> (128 - t[0]) << (128 - t[0]), t[0], t[2]))


@settings(max_examples=150, deadline=None)
@given(st.lists(cidr6, max_size=40), st.lists(st.integers(0, 2**96 - 1), max_size=20))
def test_ipv6_lookup_matches_naive_longest_prefix(cidrs, probes):
    import ipaddress

    rows = list({r[3]: r for r in (
        row(f"{ipaddress.IPv6Address(net)}/{plen}", exclude, f"127.0.1.{i % 250 + 1}")
        for i, (net, plen, exclude) in enumerate(cidrs))}.values())
    zone, _ = compile_zone(CONFIG, ListingPolicy(), rows)
    edges = []
    for _k, net, plen, *_ in rows:
        lo = int.from_bytes(net, "big")
        edges += [lo - 1, lo, lo + (1 << (128 - plen)) - 1, lo + (1 << (128 - plen))]
    for addr in [*edges, *(0x20010DB8 << 96 | p for p in probes)]:
        if not 0 <= addr < 2**128:
            continue
        expected = naive_ip(rows, "ip6", 128, addr)
        assert answer_codes(zone, zone.ip6(addr)) == expected, hex(addr)
        name = reverse_name(str(ipaddress.IPv6Address(addr))).encode()
        assert answer_codes(zone, zone.find(name)) == expected


LABELS = st.sampled_from(["a", "b", "mail", "x1"])
DOMAIN = st.lists(LABELS, min_size=1, max_size=3).map(lambda ls: ".".join([*ls, "example"]))


def naive_domain(rows, name):
    best = None
    for _k, _n, _p, text, exclude, code, _t in rows:
        s = parse_subject(text)
        hit = (name == s.domain and s.cover in ("exact", "both")) or (
            name.endswith("." + s.domain) and s.cover in ("subdomains", "both"))
        if hit:
            key = (s.domain.count("."), s.cover != "both", exclude)
            if best is None or key > best[0]:
                best = (key, None if exclude else code)
    return best[1] if best else None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(DOMAIN, st.sampled_from(["", "*.", "."]), st.booleans()), max_size=15),
       st.lists(DOMAIN, max_size=10))
def test_domain_lookup_matches_naive_scan(listings, probes):
    rows = list({r[3]: r for r in (row(prefix + name, exclude, f"127.0.1.{i + 1}")
                                    for i, (name, prefix, exclude) in enumerate(listings))}.values())
    zone, _ = compile_zone(CONFIG, ListingPolicy(), rows)
    for name in [*probes, *(n for n, _p, _e in listings)]:
        expected = naive_domain(rows, name)
        result = zone.find(name.encode())
        assert answer_codes(zone, result) == expected, name
        if expected is None:
            below = any(naive_domain(rows, text.split("*.")[-1].lstrip(".")) or t.startswith("*.")
                        for _k, _n, _p, text, ex, _c, _x in rows
                        for t in [text] if not ex and text.lstrip("*.").endswith("." + name))
            if below:
                assert result == NODATA, name


def test_test_points_win_over_listings_and_exclusions():
    rows = [row("127.0.0.0/8", False, "127.0.0.9"), row("127.0.0.2", True), row("::ffff:7f00:2", True),
            row("invalid.example"), row("*.test.example", True)]
    zone, _ = compile_zone(CONFIG, ListingPolicy(), rows)
    assert answer_codes(zone, zone.find(b"2.0.0.127")) == "127.0.0.2"
    assert zone.find(b"1.0.0.127") == NXDOMAIN
    assert answer_codes(zone, zone.find(b"3.0.0.127")) == "127.0.0.9"
    assert answer_codes(zone, zone.find(reverse_name("::ffff:7f00:2").encode())) == "127.0.0.2"
    assert zone.find(reverse_name("::ffff:7f00:1").encode()) == NXDOMAIN
    assert answer_codes(zone, zone.find(b"test")) == "127.0.0.2"
    assert zone.find(b"invalid") == NXDOMAIN


def test_flatten_merges_adjacent_equal_runs_and_cuts_holes():
    starts, values = flatten([(0, 100, 0, 1), (100, 200, 0, 1), (50, 60, 1, 0), (50, 60, 0, 2)], 0)
    assert (starts, values) == ([0, 50, 60, 200], [1, 0, 1, 0])


def test_malformed_names_answer_the_error_code_only_when_the_zone_asks():
    from dataclasses import replace

    zone, _ = compile_zone(CONFIG, ListingPolicy(), [])
    assert zone.find(b"55.4.3.2.1") == NXDOMAIN
    zone, _ = compile_zone(replace(CONFIG, malformed_answer=True), ListingPolicy(), [])
    assert zone.answers[zone.find(b"55.4.3.2.1")].codes == ("127.255.255.252",)
    assert zone.answers[zone.find(b"1.2.3.300")].codes == ("127.255.255.252",)
    assert zone.find(b"spam.example") == NXDOMAIN


def test_mapped_names_answer_from_ipv4_data_and_dollar_follows_rbldnsd():
    rows = [row("192.0.2.0/24"), row("*.spam.example"), row("198.51.100.1", txt=None, code="3"), row("::/64")]
    zone, _ = compile_zone(CONFIG, ListingPolicy(), rows)
    mapped = reverse_name("::ffff:192.0.2.9").encode()
    assert answer_codes(zone, zone.find(mapped)) == "127.0.0.2"
    assert zone.answers[zone.find(mapped)].text(zone.subject_text(mapped)) == "T 192.0.2.9"
    assert zone.find(reverse_name("::ffff:192.0.3.9").encode()) == NXDOMAIN
    ffff96 = ".".join(reverse_name("::ffff:0.0.0.0").split(".")[8:]).encode()  # ::ffff:0:0/96
    assert zone.find(ffff96) == NODATA  # a nibble path with IPv4 listings below it
    ten = ".".join(reverse_name("::ffff:10.0.0.0").split(".")[6:]).encode()  # ::ffff:10.0.0.0/104
    assert zone.find(ten) == NXDOMAIN  # ::/64 covers it, but mapped names answer from IPv4 data
    # A domain listing's $ is the listed name, also for its subdomains.
    hit = zone.find(b"www.spam.example")
    assert zone.answers[hit].text(zone.subject_text(b"www.spam.example")) == "T spam.example"


def test_template_dollars():
    from rbl.zone.snapshot import template_parts

    assert template_parts("Costs $$5, ask about $") == ("Costs $5, ask about ", "")
    assert template_parts("no subject") == ("no subject",)
    assert "1.2.3.4".join(template_parts("$ and $")) == "1.2.3.4 and 1.2.3.4"


@settings(max_examples=150, deadline=None)
@given(st.lists(cidr4, max_size=30), st.lists(st.tuples(st.integers(0x09FFFFF0, 0x0A00FFFF), st.integers(0, 2)),
                                               max_size=60))
def test_bulk_singles_compile_as_rows_do(cidrs, singles):
    """The numpy merge of single addresses against the sweep over one row each."""
    from collections import defaultdict

    single_rows = {}
    for addr, code in [*singles, (0x7F000001, 1), (0x7F000002, 2), (2**32 - 1, 1), (0, 2)]:
        single_rows[addr] = (str_ip4(addr), f"127.0.0.{code + 2}")
    others = [r for r in rows4(cidrs) if r[3] not in {text for text, _ in single_rows.values()}]
    all_rows = others + [row(text, False, code) for text, code in single_rows.values()]
    slow, slow_count = compile_zone(CONFIG, ListingPolicy(), all_rows)
    bulk = defaultdict(bytes)
    for addr, (_text, code) in single_rows.items():
        bulk[code] += addr.to_bytes(4, "big")
    fast, fast_count = compile_zone(CONFIG, ListingPolicy(), others, [(c, None, b) for c, b in bulk.items()])
    assert fast_count == slow_count
    decode = lambda z, i: z.answers[i].codes if i else None  # noqa: E731 - answer tables may be numbered apart
    assert list(fast.ip4_starts) == list(slow.ip4_starts)
    assert [decode(fast, v) for v in fast.ip4_values] == [decode(slow, v) for v in slow.ip4_values]
