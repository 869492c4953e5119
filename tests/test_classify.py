"""Classification with every real feed loaded, held to a naive scan over all ranges."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_file
from rbl.addresses import IP4, IP6
from rbl.policy.classify import Classification, Range, rank
from rbl.policy.feeds import read_feed

# Every real feed, each as some vendor's space (kinds varied so ties between kinds occur:
# GitHub's Actions ranges are Azure's, Google's goog.json overlaps its cloud.json).
FEEDS = [
    ("aws-ip-ranges", "aws-ip-ranges.json", "aws", "shared"),
    ("gcp-cloud", "gcp-cloud.json", "gcp", "shared"),
    ("gcp-cloud", "google-goog.json", "google", "dedicated"),
    ("azure-service-tags", "azure-ServiceTags_Public.json", "azure", "shared"),
    ("oracle-public-ip-ranges", "oracle-public_ip_ranges.json", "oracle", "shared"),
    ("geofeed", "digitalocean-geofeed-google.csv", "digitalocean", "shared"),
    ("geofeed", "linode-geofeed.csv", "linode", "shared"),
    ("github-meta", "github-meta.json", "github", "dedicated"),
    ("cidr-list", "cloudflare-ips-v4.txt", "cloudflare", "dedicated"),
    ("cidr-list", "cloudflare-ips-v6.txt", "cloudflare", "dedicated"),
    ("fastly-public-ip-list", "fastly-public-ip-list.json", "fastly", "quarantine"),
]


@pytest.fixture(scope="module")
def loaded():
    ranges = []
    for feed, name, vendor, space in FEEDS:
        for entry in read_feed(feed, shared_file("feeds", name)):
            labels = tuple((k, v if isinstance(v, str) else ",".join(v)) for k, v in entry.labels.items())
            # Some AWS services are each vendor's own space, so one vendor holds kinds side by side.
            kind = "dedicated" if vendor == "aws" and entry.labels.get("service") == "GLOBALACCELERATOR" else space
            ranges.append(Range(entry.kind, entry.net, entry.plen, vendor, kind, labels))
    ranges.append(Range(IP4, int.from_bytes(bytes([3, 5, 140, 0]), "big"), 24, "", "excluded"))
    return ranges, Classification(ranges)


def naive(ranges: list[Range], vendors: list[str], kind: str, value: int) -> Range | None:
    """Every range holding the address; the most specific, then the stronger kind, then vendor order."""
    best, best_key = None, None
    for item in ranges:
        if item.contains(kind, value):
            key = (item.plen, rank(item.space), -vendors.index(item.vendor))
            if best_key is None or key > best_key:  # the first of exact duplicates keeps its labels
                best, best_key = item, key
    return best


def check(loaded, kind: str, values: list[int]) -> None:
    ranges, classification = loaded
    vendors = sorted({r.vendor for r in ranges})
    family = [r for r in ranges if r.kind == kind]
    # Prefilter with numpy so the naive scan stays a scan but not a slow one.
    nets = np.array([r.net for r in family], dtype=object if kind == IP6 else np.int64)
    plens = np.array([r.plen for r in family])
    bits = 32 if kind == IP4 else 128
    for value in values:
        shifts = bits - plens
        holding = np.nonzero((nets >> shifts) == (value >> shifts))[0] if kind == IP4 else [
            i for i, r in enumerate(family) if r.contains(kind, value)]
        want = naive([family[i] for i in holding], vendors, kind, value)
        got = classification.find(kind, value)
        got_key = (got.cidr, got.vendor, got.space, got.labels) if got else None
        want_key = (want.cidr, want.vendor, want.space, want.labels) if want else None
        assert got_key == want_key, (kind, value)


def test_every_real_feed_loads(loaded):
    ranges, classification = loaded
    assert len(ranges) > 110_000
    assert len(classification) < len(ranges)  # duplicates (Azure repeats prefixes across tags) kept once


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**64))
def test_classification_matches_a_naive_scan(loaded, seed: int):
    ranges, _ = loaded
    rnd = random.Random(seed)
    samples4, samples6 = [], []
    for _ in range(40):
        item = rnd.choice(ranges)
        inside = item.net + rnd.randrange(item.size)
        (samples4 if item.kind == IP4 else samples6).append(inside)
    samples4 += [rnd.getrandbits(32) for _ in range(20)]
    samples6 += [rnd.getrandbits(128) for _ in range(3)]
    check(loaded, IP4, samples4)
    check(loaded, IP6, samples6[:8])  # IPv6 scans in Python: fewer
