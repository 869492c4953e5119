"""Patching a snapshot where listings changed answers exactly as a full compile."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.addresses import parse_subject, reverse_name
from rbl.policy.listing import ListingPolicy
from rbl.store import ListingStore
from rbl.store.listings import Entry
from rbl.zone.patch import Changes, patch_zone, splice, splice_ip4
from rbl.zone.compile import compile_snapshot
from test_snapshot import CONFIG, str_ip4

NOW = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)

ip4_cidr = st.tuples(st.integers(20, 32), st.integers(0, 2**12 - 1)).map(
    lambda t: f"{str_ip4(0x0A000000 | (t[1] << 20 >> (32 - t[0]) << (32 - t[0])) & 0xFFFFFFFF)}/{t[0]}")
ip6_cidr = st.tuples(st.integers(112, 128), st.integers(0, 2**16 - 1)).map(
    lambda t: f"2001:db8::{(t[1] << 16 >> (128 - t[0]) << (128 - t[0])) & 0xFFFF:x}/{t[0]}")
domain = st.sampled_from(["a.example", "*.a.example", ".b.example", "c.b.example", "*.c.b.example"])
subject = st.one_of(ip4_cidr, ip4_cidr, ip6_cidr, domain)
change = st.tuples(subject, st.sampled_from(["add", "exclude", "code", "remove"]))


def apply(store: ListingStore, subject_text: str, action: str) -> None:
    subject = parse_subject(subject_text)
    if action == "remove":
        if store.get("bl.example", subject) is not None and store.get("bl.example", subject).state == "active":
            store.remove([subject], zone="bl.example", actor="test")
        return
    entry = Entry(subject, exclude=action == "exclude", code="127.0.0.9" if action == "code" else None)
    store.add([entry], zone="bl.example", actor="test")


def answers(zone, names):
    return [zone.answers[r].codes if (r := zone.find(n)) > 0 else r for n in names]


@settings(max_examples=60, deadline=None)
@given(st.lists(change, max_size=20), st.lists(change, min_size=1, max_size=8))
def test_patched_snapshot_answers_as_a_full_compile(tmp_path_factory, before, after):
    store = ListingStore(tmp_path_factory.mktemp("patch") / "rbl.db", clock=lambda: NOW)
    for text, action in before:
        apply(store, text, action)
    base = compile_snapshot(store, [CONFIG], ListingPolicy(), 1, NOW)
    mark = store.audit_mark()
    for text, action in after:
        apply(store, text, action)
    _newest, subjects = store.changes_since(mark)
    changes = Changes.of(subjects)
    patched = patch_zone(base.zones[b"bl.example"], ListingPolicy(), store, changes, NOW)
    full = compile_snapshot(store, [CONFIG], ListingPolicy(), 2, NOW).zones[b"bl.example"]
    names = []
    for text, _ in before + after:
        s = parse_subject(text)
        if s.kind == "ip4":
            size = 1 << (32 - s.plen)
            names += [reverse_name(str_ip4(a)) for a in (s.net - 1, s.net, s.net + size // 2, s.net + size - 1,
                                                         s.net + size) if 0 <= a < 2**32]
            names.append(".".join(reverse_name(str_ip4(s.net)).split(".")[1:]))  # a partial name
        elif s.kind == "ip6":
            import ipaddress
            names += [reverse_name(str(ipaddress.IPv6Address(a))) for a in (s.net, s.net + (1 << (128 - s.plen)) - 1)]
        else:
            names += [s.domain, "x." + s.domain, "y.x." + s.domain]
    names += ["2.0.0.127", "1.0.0.127", "test", "invalid", "example", "b.example"]
    encoded = [n.encode() for n in names]
    assert answers(patched, encoded) == answers(full, encoded)
    # Same runs, answer numbering aside.
    decode = lambda z, vs: [z.answers[v].codes if v else None for v in vs]  # noqa: E731
    assert list(patched.ip4_starts) == list(full.ip4_starts)
    assert decode(patched, patched.ip4_values) == decode(full, full.ip4_values)
    assert list(patched.ip6_hi) == list(full.ip6_hi) and list(patched.ip6_lo) == list(full.ip6_lo)
    assert patched.domain_keys == full.domain_keys
    store.close()


def test_splice_keeps_runs_outside_and_merges_equal_neighbours():
    starts, values = [0, 10, 20, 30], [0, 1, 0, 2]
    assert splice(starts, values, [(12, 16, [12], [1])], 100) == ([0, 10, 20, 30], [0, 1, 0, 2])
    assert splice(starts, values, [(10, 20, [10], [0])], 100) == ([0, 30], [0, 2])
    assert splice(starts, values, [(24, 28, [24, 26], [3, 0])], 100) == ([0, 10, 20, 24, 26, 30], [0, 1, 0, 3, 0, 2])


def test_removing_a_prefix_inside_one_with_the_same_network_address(tmp_path):
    """10.0.0.0/16 and 10.0.0.0/8 share their first address: both are 'around' a change."""
    store = ListingStore(tmp_path / "rbl.db", clock=lambda: NOW)
    for text in ("10.0.0.0/8", "10.0.0.0/16", "2001:db8::/112", "2001:db8::/114"):
        apply(store, text, "add")
    base = compile_snapshot(store, [CONFIG], ListingPolicy(), 1, NOW).zones[b"bl.example"]
    mark = store.audit_mark()
    apply(store, "10.0.0.0/16", "exclude")
    apply(store, "2001:db8::/114", "remove")
    patched = patch_zone(base, ListingPolicy(), store, Changes.of(store.changes_since(mark)[1]), NOW)
    assert patched.find(b"1.0.0.10") == 0  # the /16 is now an exclusion
    assert patched.answers[patched.find(b"1.0.1.10")].codes == ("127.0.0.2",)  # the /8 around it
    assert patched.find(reverse_name("2001:db8::1").encode()) > 0  # the /112 answers for the removed /114
    store.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 3)), max_size=30),
       st.lists(st.tuples(st.integers(0, 40), st.integers(1, 2**28), st.lists(st.integers(0, 3), min_size=1,
                                                                            max_size=4)), max_size=5))
def test_the_ipv4_splice_makes_the_runs_the_list_splice_makes(breaks, patch_specs):
    """splice_ip4 (numpy slices, for millions of runs) against splice (lists), its slow twin."""
    from array import array

    from rbl.intervals import compress
    import numpy as np

    points = sorted({0, *(p for p, _ in breaks)})
    values = [0] + [dict(breaks).get(p, 1) for p in points[1:]]
    starts, values = (list(map(int, a)) for a in compress(np.array(points), np.array(values)))
    patches, at = [], 0
    for gap, size, patch_values in patch_specs:  # sorted, apart, inside the space, one value per part
        lo = at + gap * 2**26
        hi = min(lo + size, 2**32)
        if lo >= 2**32 or lo >= hi:
            break
        step = max(1, (hi - lo) // len(patch_values))
        ps = [lo + k * step for k in range(len(patch_values)) if lo + k * step < hi]
        pv = patch_values[:len(ps)]
        ps, pv = (list(map(int, a)) for a in compress(np.array(ps), np.array(pv)))
        patches.append((lo, hi, ps, pv))
        at = hi
    fast = splice_ip4(array("I", starts), array("I", values), patches)
    assert (list(fast[0]), list(fast[1])) == splice(starts, values, patches, 2**32)
