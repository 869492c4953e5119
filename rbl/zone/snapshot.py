"""The snapshot: listings compiled into compact sorted arrays the DNS server answers from.

A snapshot is immutable. Each zone holds three interval maps (IPv4, IPv6,
domains) whose values index a small table of distinct answers (codes and TXT
template), so millions of listings cost a few arrays, not millions of objects.

This is the read side, all a DNS worker imports: no numpy, no policy. The
compiler (:mod:`rbl.zone.compile`) and patches (:mod:`rbl.zone.patch`) make them.
"""

from __future__ import annotations

import ipaddress
import re
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from rbl.addresses import IP4, IP6, nibble_prefix, parse_relative
from rbl.zone.config import ZoneConfig

# The IPv4 block index has an entry per /16: a lookup bisects only its own block.
# (Per /20 made no measurable difference at a million listings: one cache miss dominates.)
BLOCK_BITS = 16
BLOCK_SHIFT = 32 - BLOCK_BITS

# Lookup outcomes besides a positive answer index.
NXDOMAIN = 0
NODATA = -1  # an empty non-terminal: names exist below it (RFC 8020, RFC 9156)

_IP4_FULL = re.compile(rb"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\."
                       rb"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\Z")
_IP6_FULL = re.compile(rb"^(?:[0-9a-f]\.){31}[0-9a-f]\Z")
_MASK64 = 2**64 - 1
_MAPPED = 0xFFFF  # ::ffff:0:0/96 >> 32

@dataclass(frozen=True)
class Answer:
    """What a listed subject answers: one A record per code, and a TXT.

    The TXT is kept as the literal pieces between the places where the subject
    goes (``$`` in the template), so answering is one ``str.join``; None means
    the listing has no TXT at all (rbldnsd's ``:A:``).
    """

    codes: tuple[str, ...]
    txt: tuple[str, ...] | None

    def text(self, subject: str) -> str | None:
        return subject.join(self.txt) if self.txt is not None else None


def template_parts(template: str) -> tuple[str, ...]:
    """Split a TXT template where the subject goes: ``$``; ``$$`` is a literal ``$`` (rbldnsd)."""
    parts, current, i = [], [], 0
    while i < len(template):
        char = template[i]
        if char == "$":
            if template.startswith("$$", i):
                current.append("$")
                i += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def domain_key(name: bytes) -> bytes:
    """Sort key of a lowercase domain: labels reversed, so a subtree is one interval."""
    return b"\x01".join(reversed(name.split(b"."))) + b"\x01"


@dataclass
class ZoneSnapshot:
    """One zone's compiled data; lookups take the query name below the origin."""

    config: ZoneConfig
    answers: list[Answer | None]
    ip4_starts: array
    ip4_values: array
    ip4_blocks: array  # per /16: the run holding its first address (see block_index)
    ip6_hi: array
    ip6_lo: array
    ip6_values: array
    domain_keys: list[bytes]
    domain_values: array
    malformed: int = NXDOMAIN  # what a malformed address-shaped name answers
    answers_digest: str = ""  # set when read from a file: names the answer table's content
    # Per family, per classification range id: the negligent vendors' dense ranges as the
    # last full compile found them; patches reuse them (held by the primary, not in the file).
    dense: dict = field(default_factory=dict)
    origin: bytes = field(init=False)

    def __post_init__(self) -> None:
        self.origin = self.config.origin.encode("ascii")

    # -- lookups ---------------------------------------------------------------

    def ip4(self, value: int) -> int:
        block = value >> BLOCK_SHIFT
        blocks = self.ip4_blocks
        return self.ip4_values[bisect_right(self.ip4_starts, value, blocks[block], blocks[block + 1] + 1) - 1]

    def _ip6_next(self, value: int) -> int:
        """Index of the first breakpoint above ``value``: keys are (high, low) halves."""
        hi, lo = value >> 64, value & _MASK64
        his = self.ip6_hi
        return bisect_right(self.ip6_lo, lo, bisect_left(his, hi), bisect_right(his, hi))

    def ip6(self, value: int) -> int:
        if value >> 32 == _MAPPED:  # ::ffff:a.b.c.d is the IPv4 host a.b.c.d, as in rbldnsd
            return self.ip4(value & 0xFFFFFFFF)
        return self.ip6_values[self._ip6_next(value) - 1]

    def domain(self, name: bytes) -> int:
        return self.domain_values[bisect_right(self.domain_keys, domain_key(name)) - 1]

    def find(self, rel: bytes) -> int:
        """Answer index (>0), NXDOMAIN or NODATA for a lowercase name below the origin."""
        match = _IP4_FULL.match(rel)
        if match:
            a, b, c, d = match.groups()
            found = self.ip4((int(d) << 24) | (int(c) << 16) | (int(b) << 8) | int(a))
            if found or len(rel) != 7:
                return found
            return self._find_other(rel)  # "1.0.0.2" is also the nibble path to 2001::/16
        if _IP6_FULL.match(rel):
            return self.ip6(int(rel[::-1].replace(b".", b""), 16))
        return self._find_other(rel)

    def _find_other(self, rel: bytes) -> int:
        if b"\x00" in rel or b"\x01" in rel or b"\x02" in rel:
            return NXDOMAIN  # these bytes delimit domain keys; no listed name has them
        parts = rel.split(b".")
        candidates = []
        prefix = parse_relative(rel)
        if prefix is not None:
            candidates.append(prefix)
            if prefix[0] == IP4:  # "1.2" is also a nibble path
                nibbles = nibble_prefix(parts)
                if nibbles is not None:
                    candidates.append(nibbles)
        for kind, value, plen in candidates:
            if kind == IP4 and self._ip4_any(value, value + (1 << (32 - plen))):
                return NODATA
            if kind == IP6 and self._ip6_any(value, value + (1 << (128 - plen))):
                return NODATA
        if prefix is None and self.malformed and _looks_numeric(parts):
            return self.malformed
        found = self.domain(rel)
        if found:
            return found
        key = domain_key(rel)
        if self._domain_any(key + b"\x02", key[:-1] + b"\x02"):
            return NODATA
        return NXDOMAIN

    def _ip4_any(self, lo: int, hi: int) -> bool:
        i = bisect_right(self.ip4_starts, lo) - 1
        return bool(self.ip4_values[i]) or (i + 1 < len(self.ip4_starts) and self.ip4_starts[i + 1] < hi)

    def _ip6_any(self, lo: int, hi: int) -> bool:
        mapped_lo, mapped_hi = max(lo, _MAPPED << 32), min(hi, (_MAPPED + 1) << 32)
        if mapped_lo < mapped_hi:
            # Names in ::ffff:0:0/96 are answered from IPv4 data only.
            if self._ip4_any(mapped_lo & 0xFFFFFFFF, mapped_hi - (_MAPPED << 32)):
                return True
            if (mapped_lo, mapped_hi) == (lo, hi):
                return False
        i = self._ip6_next(lo)
        return bool(self.ip6_values[i - 1]) or (
            i < len(self.ip6_hi) and ((self.ip6_hi[i] << 64) | self.ip6_lo[i]) < hi
        )

    def _domain_any(self, lo: bytes, hi: bytes) -> bool:
        i = bisect_right(self.domain_keys, lo) - 1
        return bool(self.domain_values[i]) or (i + 1 < len(self.domain_keys) and self.domain_keys[i + 1] < hi)

    def subject_text(self, rel: bytes) -> str:
        """The subject a TXT template's ``$`` stands for: the address or the domain."""
        match = _IP4_FULL.match(rel)
        if match:
            return ".".join(reversed([g.decode() for g in match.groups()]))
        if _IP6_FULL.match(rel):
            value = int(rel[::-1].replace(b".", b""), 16)
            if value >> 32 == _MAPPED:
                return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
            return str(ipaddress.IPv6Address(value))
        return rel.decode("ascii", "replace")


def _looks_numeric(parts: list[bytes]) -> bool:
    # Address-shaped but not an address: 1.2.3.4.5, 300.1.2.3, 33 nibbles.
    return all(p.isdigit() for p in parts) or (len(parts) > 32 and all(len(p) == 1 for p in parts))


@dataclass
class Snapshot:
    """Every zone's compiled data, with the serial they are served under."""

    serial: int
    zones: dict[bytes, ZoneSnapshot]
    built_at: float
    compile_seconds: float
    listings: int

    def zone_for(self, qname: bytes) -> tuple[ZoneSnapshot, bytes] | None:
        """The zone holding a lowercase dotted name, and the name below its origin."""
        suffixes = self.__dict__.get("_suffixes")
        if suffixes is None:
            # Longest origin first, so a sub-zone wins over its parent; a few endswith
            # checks beat a dictionary probe per label of a 34-label IPv6 name.
            suffixes = self.__dict__["_suffixes"] = sorted(
                ((b"." + origin, zone) for origin, zone in self.zones.items()), key=lambda s: -len(s[0]))
        for suffix, zone in suffixes:
            if qname.endswith(suffix):
                return zone, qname[: len(qname) - len(suffix)]
            if qname == suffix[1:]:
                return zone, b""
        return None
