"""The oracle's listings: a seeded data set, and an independent model of what is listed.

Used by test_oracle_rbldnsd.py; kept apart as data generation and the naive model
are one idea, asking two servers and comparing their answers another.
"""

from __future__ import annotations

import ipaddress
import random
import re
import string
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass



SEED = 5782
MIN_QUERIES = 10_000

# Per-entry values (rbldnsd ``:A:TXT`` syntax) given to some listings, when rbl can
# import them. Everything else takes the file's default line, which is the zone's
# own TXT template, so those entries answer exactly as a plain ``rbl listing add``.
VALUES = (
    ":3",                          # A 127.0.0.3, the default TXT
    ":4:Custom listing of $",      # A and TXT of its own
    "Only a TXT for $",            # the default A, a TXT of its own
    ":127.0.0.5:Full A value",     # A written in full, TXT without $
    ":6:",                         # an A and, in rbldnsd, no TXT at all
    ":7:Costs $$5, ask about $",   # $$ is a literal dollar in rbldnsd
)


# --------------------------------------------------------------------------
# The data set


@dataclass(frozen=True)
class Net:
    """An IPv4 or IPv6 CIDR listing (or ``!`` exclusion) with its rbldnsd value."""

    version: int
    lo: int
    plen: int
    exclude: bool = False
    value: str = ""  # after the subject on the data line; "" takes the file's default

    @property
    def bits(self) -> int:
        return 32 if self.version == 4 else 128

    @property
    def hi(self) -> int:  # exclusive
        return self.lo + (1 << (self.bits - self.plen))

    @property
    def text(self) -> str:
        addr = ipaddress.ip_address(self.lo) if self.version == 4 else ipaddress.IPv6Address(self.lo)
        return str(addr) if self.plen == self.bits else f"{addr}/{self.plen}"

    @property
    def line(self) -> str:
        return ("!" if self.exclude else "") + self.text + (f" {self.value}" if self.value else "")


EXACT, SUB, BOTH = "exact", "sub", "both"


@dataclass(frozen=True)
class Dom:
    """A dnset entry: ``name`` (exact), ``*.name`` (subdomains) or ``.name`` (both)."""

    name: str
    cover: str
    exclude: bool = False
    value: str = ""

    @property
    def text(self) -> str:
        return {EXACT: "", SUB: "*.", BOTH: "."}[self.cover] + self.name

    @property
    def line(self) -> str:
        return ("!" if self.exclude else "") + self.text + (f" {self.value}" if self.value else "")


class DataSet:
    """Seeded random listings; every entry subject appears once."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.ip4 = self._ip4()
        self.ip6 = self._ip6()
        self.domains = self._domains()

    def _value(self) -> str:
        if self.rng.random() < 0.12:
            return self.rng.choice(VALUES)
        return ""

    # -- addresses -------------------------------------------------------------

    def _nets(self, version: int, hot: list[int], lengths: range, per_length, avoid) -> list[Net]:
        rng = self.rng
        bits = 32 if version == 4 else 128
        nets: dict[tuple[int, int], Net] = {}

        def inside(parent_lo: int, parent_plen: int, plen: int) -> int:
            return parent_lo | (rng.getrandbits(plen - parent_plen) << (bits - plen)) if plen > parent_plen else parent_lo

        def add(lo: int, plen: int, exclude: bool) -> Net | None:
            net = Net(version, lo, plen, exclude, "" if exclude else self._value())
            if (lo, plen) in nets or avoid(net):
                return None
            nets[lo, plen] = net
            return net

        top = lengths.start
        # Every prefix length, many nested inside an earlier (shorter) one.
        for plen in lengths:
            for _ in range(per_length(plen)):
                parents = [n for n in nets.values() if n.plen < plen]
                if parents and rng.random() < 0.6:
                    p = rng.choice(parents)
                    add(inside(p.lo, p.plen, plen), plen, False)
                else:
                    add(inside(rng.choice(hot), top, plen), plen, False)

        def nest(parents: list[Net], count: int, exclude: bool) -> None:
            parents = [p for p in parents if p.plen < bits]
            for p in rng.sample(parents, min(count, len(parents))):
                plen = min(bits, p.plen + rng.choice((1, 1, 2, 3, 4, 8, 12, 16, 24)))
                add(inside(p.lo, p.plen, plen), plen, exclude)

        # Exclusions inside listings, listings inside exclusions, and once more.
        nest([n for n in nets.values() if not n.exclude], 50, True)
        nest([n for n in nets.values() if n.exclude], 30, False)
        nest([n for n in nets.values() if not n.exclude and n.plen > top + 8], 20, True)
        # Stray exclusions that cut nothing.
        for _ in range(5):
            plen = rng.randint(top + 4, bits)
            add(inside(rng.choice(hot), top, plen), plen, True)
        return list(nets.values())

    def _singles(self, nets: list[Net], version: int, count: int, anywhere, avoid) -> list[Net]:
        rng = self.rng
        bits = 32 if version == 4 else 128
        taken = {(n.lo, n.plen) for n in nets}
        listed = [n for n in nets if not n.exclude]
        excluded = [n for n in nets if n.exclude]
        out = []
        while len(out) < count:
            pick = len(out) % 3
            if pick == 0:
                lo = anywhere()
            else:
                p = rng.choice(listed if pick == 1 else excluded)
                lo = p.lo | rng.getrandbits(bits - p.plen)
            net = Net(version, lo, bits, False, self._value())
            if (lo, bits) not in taken and not avoid(net):
                taken.add((lo, bits))
                out.append(net)
        return out

    def _ip4(self) -> list[Net]:
        rng = self.rng

        def avoid(net: Net) -> bool:  # 127/8 holds the RFC 5782 test points
            return net.lo >> 24 <= 127 < net.hi >> 24 or net.lo >> 24 == 127

        hot = [o << 24 for o in rng.sample([o for o in range(1, 224) if o != 127], 12)]
        nets = self._nets(4, hot, range(8, 33), lambda plen: 2 if plen <= 12 else 5, avoid)

        def anywhere() -> int:
            return rng.getrandbits(32)

        return nets + self._singles(nets, 4, 300, anywhere, avoid)

    def _ip6(self) -> list[Net]:
        rng = self.rng
        mapped = ipaddress.IPv6Network("::ffff:0:0/96")

        def avoid(net: Net) -> bool:
            # rbldnsd answers IPv4-mapped names (::ffff:a.b.c.d, the RFC 5782 test
            # points among them) from its IPv4 data: ip6trie entries there are dead.
            lo, hi = int(mapped.network_address), int(mapped.broadcast_address) + 1
            return net.lo < hi and lo < net.hi

        hot = [0x20010DB8 << 96] + [rng.randrange(0x2000_0000, 0x4000_0000) << 96 for _ in range(5)]
        nets = self._nets(6, hot, range(32, 129), lambda plen: 2 if plen <= 64 else 1, avoid)
        # Addresses whose text form is worth comparing ($ in the TXT): zero runs
        # of equal length, a lone zero group, the IPv4-compatible ::a.b.c.d space.
        special = [
            "2001:db8:0:0:1:0:0:1", "2001:db8:0:1:2:3:4:5", "2001:0:0:1:0:0:0:1", "1:2:3:4:5:6:7:0",
            "1::", "::5", "0:0:1:0:0:2:3:4", "::102:304", "::1:0:0:0:1",
        ]
        taken = {(n.lo, n.plen) for n in nets}
        for text in special:
            lo = int(ipaddress.IPv6Address(text))
            if (lo, 128) not in taken:
                nets.append(Net(6, lo, 128))
        for text, exclude in (("::c633:6400/120", False), ("::c633:6480/125", True), ("::102:300/120", False)):
            net = ipaddress.IPv6Network(text)
            nets.append(Net(6, int(net.network_address), net.prefixlen, exclude))

        def anywhere() -> int:
            return rng.choice(hot) | rng.getrandbits(96)

        return nets + self._singles(nets, 6, 90, anywhere, avoid)

    # -- domains ---------------------------------------------------------------

    def label(self) -> str:
        rng = self.rng
        n = rng.randint(3, 9)
        chars = string.ascii_lowercase + string.digits
        text = rng.choice(string.ascii_lowercase) + "".join(rng.choice(chars) for _ in range(n - 1))
        if n > 4 and rng.random() < 0.15:
            cut = rng.randint(1, n - 2)
            text = text[:cut] + "-" + text[cut + 1:]
        return text

    def _domains(self) -> list[Dom]:
        rng = self.rng
        entries: dict[tuple[str, str], Dom] = {}
        covers: dict[str, set[str]] = defaultdict(set)

        def add(name: str, cover: str, exclude: bool) -> Dom | None:
            have = covers[name]
            # One entry per name, except a name with both an exact and a *. entry.
            if cover in have or BOTH in have or (cover == BOTH and have):
                return None
            have.add(cover)
            dom = Dom(name, cover, exclude, "" if exclude else self._value())
            entries[name, cover] = dom
            return dom

        def nest(name: str, depth: int, listed: bool) -> None:
            for _ in range(rng.randint(1, 3)):
                child = f"{self.label()}.{name}"
                cover = rng.choice((EXACT, SUB, BOTH))
                exclude = listed if rng.random() < 0.75 else not listed
                if add(child, cover, exclude) and cover != EXACT and depth < 3:
                    nest(child, depth + 1, not exclude)

        tlds = ("com", "net", "org", "example", "info", "co.uk")
        for _ in range(70):
            base = f"{self.label()}.{rng.choice(tlds)}"
            if rng.random() < 0.3:
                base = f"{self.label()}.{base}"
            r = rng.random()
            if r < 0.3:
                add(base, EXACT, False)
                if rng.random() < 0.3:
                    nest(base, 1, False)  # listings below an exact-only listing
            elif r < 0.9:
                add(base, SUB if r < 0.6 else BOTH, False)
                nest(base, 1, True)
            else:
                add(base, rng.choice((EXACT, SUB, BOTH)), True)  # a stray exclusion
        for _ in range(6):  # a name listed exactly and its subdomains excluded, or the reverse
            base = f"{self.label()}.{rng.choice(tlds)}"
            exclude = rng.random() < 0.5
            add(base, EXACT, exclude)
            add(base, SUB, not exclude)
        return list(entries.values())


# --------------------------------------------------------------------------
# An independent model of what is listed


class NetModel:
    """Longest prefix wins; an exclusion is a hole. Brute force over elementary segments."""

    def __init__(self, nets: list[Net], bits: int):
        bounds = sorted({0} | {n.lo for n in nets} | {n.hi for n in nets if n.hi < 1 << bits})
        self.starts = bounds
        self.matches: list[Net | None] = []
        for start in bounds:
            best = None
            for n in nets:
                if n.lo <= start < n.hi and (best is None or n.plen > best.plen):
                    best = n
            self.matches.append(best)

    def match(self, value: int) -> Net | None:
        return self.matches[bisect_right(self.starts, value) - 1]

    def listed(self, value: int) -> bool:
        m = self.match(value)
        return m is not None and not m.exclude

    def any_listed(self, lo: int, hi: int) -> bool:
        i = bisect_right(self.starts, lo) - 1
        while i < len(self.starts) and self.starts[i] < hi:
            m = self.matches[i]
            if m is not None and not m.exclude:
                return True
            i += 1
        return False


class DomainModel:
    """An exact entry for the name wins, else the nearest wildcard above it."""

    def __init__(self, doms: list[Dom]):
        self.doms = doms
        self.exact = {d.name: d for d in doms if d.cover in (EXACT, BOTH)}
        self.wild = {d.name: d for d in doms if d.cover in (SUB, BOTH)}

    def match(self, name: str) -> Dom | None:
        if name in self.exact:
            return self.exact[name]
        parts = name.split(".")
        for i in range(1, len(parts)):
            found = self.wild.get(".".join(parts[i:]))
            if found is not None:
                return found
        return None

    def listed(self, name: str) -> bool:
        m = self.match(name)
        return m is not None and not m.exclude

    def below_any(self, name: str) -> bool:
        """Is any name strictly below ``name`` listed? Probes one name per relevant entry."""
        probes = []
        for d in self.doms:
            if d.exclude:
                continue
            if d.name.endswith("." + name):
                if d.cover in (EXACT, BOTH):
                    probes.append(d.name)
                if d.cover in (SUB, BOTH):
                    probes.append("zq0x." + d.name)
            elif (d.name == name or name.endswith("." + d.name)) and d.cover in (SUB, BOTH):
                probes.append("zq0x." + name)
        return any(self.listed(p) for p in probes)


_OCTET = re.compile(r"^(0|[1-9][0-9]{0,2})$")
_NIBBLE = re.compile(r"^[0-9a-f]$")


@dataclass
class Question:
    rel: str            # the name below the zone, as sent (maybe mixed case)
    qtype: str
    family: str = ""    # ip4, ip6, mapped (::ffff:a.b.c.d) or domain
    full: bool = False  # a whole address (or a domain), not a partial name
    listed: bool = False
    matched: object = None
    ent: bool = False   # an empty non-terminal by the model: rbl says NODATA, rbldnsd NXDOMAIN

    @property
    def category(self) -> str:
        """Which test compares this question (one per finding, so a finding fails one test)."""
        if self.family == "mapped":
            return "mapped"
        if self.listed and isinstance(self.matched, Dom) and self.matched.name != self.rel.lower():
            return "wildcard"  # a domain listed through a *. or . entry above it
        if self.listed and self.matched.value:
            return "values"
        return self.family


class Model:
    def __init__(self, data: DataSet, test_points4: list[Net], test_points6: list[Net], test_domains: list[Dom]):
        self.ip4 = NetModel(data.ip4 + test_points4, 32)
        self.ip6 = NetModel(data.ip6 + test_points6, 128)
        self.domains = DomainModel(data.domains + test_domains)

    def classify(self, q: Question) -> Question:
        rel = q.rel.lower()
        parts = rel.split(".")
        decimal = len(parts) <= 4 and all(_OCTET.match(p) and int(p) < 256 for p in parts)
        nibbles = len(parts) <= 32 and all(_NIBBLE.match(p) for p in parts)
        if decimal and len(parts) == 4:
            value = int(ipaddress.IPv4Address(".".join(reversed(parts))))
            q.family, q.full, q.matched, q.listed = "ip4", True, self.ip4.match(value), self.ip4.listed(value)
            return q
        if nibbles and len(parts) == 32:
            value = int("".join(reversed(parts)), 16)
            if value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d: rbldnsd answers from its IPv4 data
                v4 = value & 0xFFFFFFFF
                q.family, q.full, q.matched, q.listed = "mapped", True, self.ip4.match(v4), self.ip4.listed(v4)
                return q
            q.family, q.full, q.matched, q.listed = "ip6", True, self.ip6.match(value), self.ip6.listed(value)
            return q
        if decimal:  # 1..3 octets: a partial IPv4 name (and maybe a nibble path too)
            q.family = "ip4"
            value = 0
            for p in reversed(parts):
                value = (value << 8) | int(p)
            lo = value << (8 * (4 - len(parts)))
            q.ent = self.ip4.any_listed(lo, lo + (1 << (8 * (4 - len(parts)))))
        if nibbles:
            q.family = q.family or "ip6"
            lo = int("".join(reversed(parts)), 16) << (4 * (32 - len(parts)))
            q.ent = q.ent or self.ip6.any_listed(lo, lo + (1 << (4 * (32 - len(parts)))))
        if not q.family:
            q.family, q.full = "domain", True
            q.matched, q.listed = self.domains.match(rel), self.domains.listed(rel)
            q.ent = not q.listed and self.domains.below_any(rel)
        return q


# --------------------------------------------------------------------------
# Questions
