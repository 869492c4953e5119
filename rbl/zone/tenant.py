"""The tenant zone: who signed the mail, at a listed address (``shop.example.7.141.5.3.tenant.ZONE``).

A name is a DKIM signing domain (the identity) above a reversed address, in
the order SpamAssassin's AskDNS builds it (``_DKIMDOMAIN_._LASTEXTERNALREVIP_``).
It answers from the identities the address's own listing names:

- implicated: the address is listed and its listing names this identity;
- bystander: the address is listed in shared space and its listing names
  identities, not this one (owner-accountable space never: there the address
  is the identity);
- NXDOMAIN otherwise: nothing is known about who is behind the address.

The answers are those of the zone file :mod:`rbl.zone.records` writes for
mirrors, with RFC 4592 wildcards: per address a wildcard ``*.ADDRESS``
(bystander, shared space only), each identity's name (implicated) with a
wildcard below it, and its parent names (bystander in shared space, empty
non-terminals elsewhere). So names that exist without records (the address
itself, a partial address, a parent of an identity in accountable space)
answer NODATA, as a standard server would, never NXDOMAIN (RFC 8020).

The data: per family, the sorted addresses that name identities, whether each
is shared space, and per address a sorted run of 64-bit identity hashes (low
bit set: the identity itself; clear: only a parent of one). Read side only: no
numpy here (DNS workers import it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from rbl.zone.snapshot import NODATA, NXDOMAIN, ZoneSnapshot

IMPLICATED, BYSTANDER = 1, 2  # answer indexes in a tenant zone's answer table
TENANT_ARRAYS = ("t4_keys", "t4_ends", "t4_shared", "t4_hashes", "t4_names", "t4_name_ends",
                 "t6_hi", "t6_lo", "t6_ends", "t6_shared", "t6_hashes", "t6_names", "t6_name_ends")
_OCTET = re.compile(rb"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\Z")
_NIBBLES = frozenset(b"0123456789abcdef")
_MASK64 = 2**64 - 1


def identity_hash(name: str | bytes) -> int:
    """The 64-bit hash of a lower-case signing domain, low bit clear (the run's mark goes there)."""
    data = name.encode("ascii") if isinstance(name, str) else name
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") & ~1


def parents(name: str) -> list[str]:
    """The names above a signing domain, nearest first: ``mail.shop.example`` -> shop.example, example."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))]


def _empty(code: str) -> array:
    return array(code)


@dataclass
class TenantZone(ZoneSnapshot):
    """A tenant zone's compiled data (the address arrays of :class:`ZoneSnapshot` stay empty)."""

    t4_keys: array = field(default_factory=lambda: _empty("I"))
    t4_ends: array = field(default_factory=lambda: _empty("I"))  # per address: where its run of hashes ends
    t4_shared: array = field(default_factory=lambda: _empty("B"))
    t4_hashes: array = field(default_factory=lambda: _empty("Q"))
    # Per address its identities as text, newline-joined: for exports, never read to answer.
    t4_names: array = field(default_factory=lambda: _empty("B"))
    t4_name_ends: array = field(default_factory=lambda: _empty("I"))
    t6_hi: array = field(default_factory=lambda: _empty("Q"))
    t6_lo: array = field(default_factory=lambda: _empty("Q"))
    t6_ends: array = field(default_factory=lambda: _empty("I"))
    t6_shared: array = field(default_factory=lambda: _empty("B"))
    t6_hashes: array = field(default_factory=lambda: _empty("Q"))
    t6_names: array = field(default_factory=lambda: _empty("B"))
    t6_name_ends: array = field(default_factory=lambda: _empty("I"))

    # -- keys ------------------------------------------------------------------

    def _index4(self, value: int) -> int:
        keys = self.t4_keys
        i = bisect_left(keys, value)
        return i if i < len(keys) and keys[i] == value else -1

    def _index6(self, value: int) -> int:
        hi, lo = value >> 64, value & _MASK64
        his = self.t6_hi
        a, b = bisect_left(his, hi), bisect_right(his, hi)
        i = bisect_left(self.t6_lo, lo, a, b)
        return i if i < b and self.t6_lo[i] == lo else -1

    def _any4(self, lo: int, hi: int) -> bool:
        i = bisect_left(self.t4_keys, lo)
        return i < len(self.t4_keys) and self.t4_keys[i] < hi

    def _any6(self, lo: int, hi: int) -> bool:
        his = self.t6_hi
        a = bisect_left(his, lo >> 64)
        i = bisect_left(self.t6_lo, lo & _MASK64, a, bisect_right(his, lo >> 64))
        if i == len(his):
            return False
        return ((his[i] << 64) | self.t6_lo[i]) < hi

    # -- lookups ---------------------------------------------------------------

    def find(self, rel: bytes) -> int:
        """IMPLICATED, BYSTANDER, NODATA or NXDOMAIN for a lowercase name below the origin."""
        labels = rel.split(b".")
        count = len(labels)
        nibbles = 0  # trailing labels that could be an IPv6 nibble path
        for label in reversed(labels):
            if nibbles == 32 or len(label) != 1 or label[0] not in _NIBBLES:
                break
            nibbles += 1
        if nibbles == 32:
            i = self._index6(int(b"".join(reversed(labels[-32:])), 16))
            if i >= 0:
                return self._pair(b".".join(labels[:-32]), i, self.t6_ends, self.t6_hashes, self.t6_shared)
        # The deepest empty non-terminal an IPv6 address with identities makes along the name.
        deep6 = 0
        while deep6 < min(nibbles, 31):
            depth = deep6 + 1
            prefix = int(b"".join(reversed(labels[count - depth:])), 16)
            shift = 128 - 4 * depth
            if not self._any6(prefix << shift, (prefix + 1) << shift):
                break
            deep6 = depth
        octets = 0
        for label in reversed(labels):
            if octets == 4 or not _OCTET.match(label):
                break
            octets += 1
        deep4 = 0
        if octets == 4:
            a, b, c, d = (int(x) for x in labels[-4:])
            i = self._index4(d << 24 | c << 16 | b << 8 | a)
            # Identities have a top label of two characters or more, never a nibble: an IPv6
            # path deeper than the address is not below any identity's name, only its wildcard's.
            if i >= 0 and deep6 <= 4:
                return self._pair(b".".join(labels[:-4]), i, self.t4_ends, self.t4_hashes, self.t4_shared)
            if i >= 0:
                deep4 = 4
        while deep4 < min(octets, 3):
            depth = deep4 + 1
            prefix = 0
            for label in reversed(labels[count - depth:]):
                prefix = prefix << 8 | int(label)
            shift = 32 - 8 * depth
            if not self._any4(prefix << shift, (prefix + 1) << shift):
                break
            deep4 = depth
        return NODATA if count == max(deep4, deep6) and count else NXDOMAIN

    def pair4(self, identity: bytes, value: int) -> int:
        """:meth:`find` for a lowercase identity (its top label two characters or more, so that the
        name is no IPv6 nibble path) above an IPv4 address: the DNS fast path's lookup."""
        i = self._index4(value)
        return NXDOMAIN if i < 0 else self._pair(identity, i, self.t4_ends, self.t4_hashes, self.t4_shared)

    def pair6(self, identity: bytes, value: int) -> int | None:
        """:meth:`find` for an identity above an IPv6 address with identities; None for any other
        address (its last nibbles may be an IPv4 address: :meth:`find` decides)."""
        i = self._index6(value)
        return None if i < 0 else self._pair(identity, i, self.t6_ends, self.t6_hashes, self.t6_shared)

    @staticmethod
    def _pair(identity: bytes, i: int, ends: array, hashes: array, shared: array) -> int:
        if not identity:
            return NODATA  # the address's own name: its identities are below it
        h = identity_hash(identity)
        start, end = ends[i - 1] if i else 0, ends[i]
        j = bisect_left(hashes, h, start, end)
        found = hashes[j] if j < end else -1  # h | 1: the identity; h: a parent of one (never both)
        if found == h | 1:
            return IMPLICATED
        if shared[i]:
            return BYSTANDER
        if found == h:
            return NODATA  # a parent of a named identity: an empty non-terminal
        return NXDOMAIN

    def subject_text(self, rel: bytes) -> str:
        """The address a pair name asks about (a TXT template's ``$``)."""
        labels = rel.split(b".")
        if len(labels) >= 32 and all(len(x) == 1 and x[0] in _NIBBLES for x in labels[-32:]):
            value = int(b"".join(reversed(labels[-32:])), 16)
            if self._index6(value) >= 0:
                return str(ipaddress.IPv6Address(value))
        if len(labels) >= 4 and all(_OCTET.match(x) for x in labels[-4:]):
            return ".".join(x.decode() for x in reversed(labels[-4:]))
        return rel.decode("ascii", "replace")

    def entries(self, kind: str) -> list[tuple[int, bool, list[str]]]:
        """Every address of a family with identities: (address, shared, its identities), in order."""
        if kind == "ip4":
            keys, shared, names, ends = self.t4_keys, self.t4_shared, self.t4_names, self.t4_name_ends
        else:
            keys = [(hi << 64) | lo for hi, lo in zip(self.t6_hi, self.t6_lo)]
            shared, names, ends = self.t6_shared, self.t6_names, self.t6_name_ends
        text = bytes(names).decode("ascii")
        out, start = [], 0
        for key, flag, end in zip(keys, shared, ends):
            out.append((key, bool(flag), text[start:end].split("\n")))
            start = end
        return out
