"""Listings that name identities, and the (identity, address) names to ask about them: the tenant
zone's part of test_export's mirrors sample."""

from __future__ import annotations

import ipaddress
import random

from rbl.addresses import reverse_name

ORIGIN = "bl.example"

SIGNERS = [f"{name}.example" for name in ("shop", "mailer.shop", "news", "a.b.c", "bulk", "honest")] + ["shop.example.net"]


def add_identities(workspace, rng: random.Random) -> None:
    """Listings naming identities for the tenant zone: in AWS's shared IPv4 and IPv6 space and in
    unclassified space (accountable: never bystander)."""
    from rbl.addresses import parse_subject
    from rbl.policy.vendors import load_policy
    from rbl.store import ListingStore
    from rbl.store.listings import Entry

    ranges = [r for r in load_policy(workspace.policy).classification.ranges
              if r is not None and r.vendor == "aws" and r.space == "shared"]
    picked = set()
    for family, count in (("ip4", 900), ("ip6", 300)):
        pool = [r for r in ranges if r.kind == family]
        for _ in range(count):
            r = rng.choice(pool)
            bits = 32 if family == "ip4" else 128
            picked.add(ipaddress.ip_address(r.net + rng.randrange(1 << min(bits - r.plen, 40))))
    picked.update(ipaddress.ip_address(0x64400000 + rng.randrange(1 << 16)) for _ in range(700))  # 100.64/16
    picked.update(ipaddress.ip_address((0x20010DB8 << 96) + rng.randrange(1 << 32)) for _ in range(200))
    store = ListingStore(str(workspace.db))
    store.add([Entry(parse_subject(str(a)), identities=tuple(sorted(set(rng.sample(SIGNERS, rng.randint(1, 3))))))
               for a in picked], zone=ORIGIN, actor="test")
    store.close()



def pairs_of(zone, rng: random.Random) -> list[tuple[str, str, str]]:
    """(name below the apex, kind, address) per address with identities: each identity, another signer, a parent, a child and the bare address."""
    names = []
    for kind in ("ip4", "ip6"):
        for value, _shared, identities in zone.entries(kind):
            text = str(ipaddress.ip_address(value) if kind == "ip4" else ipaddress.IPv6Address(value))
            path = f"{reverse_name(text)}.tenant"
            own = rng.choice(identities)
            for identity in {*identities, rng.choice(SIGNERS), "other.example", own.split(".", 1)[1], "x." + own}:
                names.append((f"{identity}.{path}", "pair@tenant", text))
            names.append((path, "address@tenant", text))
    return names
