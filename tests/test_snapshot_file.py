"""Snapshot files: what a worker maps answers exactly as what the compiler built."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.addresses import reverse_name
from rbl.policy.listing import ListingPolicy
from rbl.zone.compile import compile_zone
from rbl.zone.snapshot import Snapshot
from rbl.zone.snapshot_file import read_snapshot, write_snapshot
from test_snapshot import CONFIG, DOMAIN, cidr4, row, rows4


@settings(max_examples=40, deadline=None)
@given(st.lists(cidr4, max_size=30), st.lists(DOMAIN, max_size=8), st.lists(st.integers(0, 2**32 - 1), max_size=30))
def test_a_mapped_snapshot_answers_as_the_compiled_one(tmp_path_factory, cidrs, domains, probes):
    rows = rows4(cidrs) + [row(d) for d in set(domains)] + [row("2001:db8::/48", code="127.0.0.7")]
    zone, count = compile_zone(CONFIG, ListingPolicy(), rows)
    built = Snapshot(serial=7, zones={zone.origin: zone}, built_at=1.5, compile_seconds=0.25, listings=count)
    path = tmp_path_factory.mktemp("snap") / "s.snap"
    write_snapshot(built, path)
    mapped = read_snapshot(path)
    assert (mapped.serial, mapped.listings) == (7, count)
    other = mapped.zones[zone.origin]
    assert other.config == zone.config and other.answers == zone.answers
    assert list(other.ip4_starts) == list(zone.ip4_starts) and other.domain_keys == zone.domain_keys
    names = [reverse_name(f"{p >> 24}.{p >> 16 & 255}.{p >> 8 & 255}.{p & 255}") for p in probes]
    names += [*domains, "test", "invalid", "com", reverse_name("2001:db8::1"), "0.127", "8.b.d.0.1.0.0.2"]
    for name in names:
        assert other.find(name.encode()) == zone.find(name.encode()), name
