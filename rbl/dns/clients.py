"""What a DNS worker knows per client network: public resolver or not, exempt or not, and its
response rate limiting (RRL) accounts.

UDP answers are accounted per client /24 (IPv4) and /56 (IPv6), the networks
an attacker spoofing a victim's address, or one busy site, sends from. The
batch loop (:mod:`rbl.dns.batch`) reads the network straight from the sender's
sockaddr bytes and looks it up in :attr:`ClientGate.table`: one dictionary
lookup a datagram. A network seen for the first time is classified once
(:meth:`ClientGate.entry`). Each entry is a list, mutated in place::

    [flags, balance per kind (3), last time per kind (3), limited so far]

An account is credited its rate every second up to one second's worth and
debited one per answer; below zero the answer is limited, down to a debt of
``window`` seconds of the rate (a flood that goes on stays limited until it
stops for that long). A limited answer is dropped, except every ``slip``-th,
which goes out truncated (TC=1) so that a real client retries over TCP, which
RRL never limits, and a spoofed victim gets nothing large. As in BIND, Knot and
NSD, each server process keeps its own accounts: a client whose queries the
kernel spreads over N workers' sockets may get up to N times the rate.
"""

from __future__ import annotations

import bisect
import ipaddress
import socket
import sys
import struct

from rbl.zone.config import RateLimit

ANSWER, NEGATIVE, ERROR = 0, 1, 2  # kinds of answer, each with its own rate
KINDS = ("answer", "nxdomain", "error")
RESOLVER, EXEMPT, LIMITED = 1, 2, 4  # an entry's flags
MAX_ENTRIES = 100_000  # past this the table starts afresh: memory stays bounded under a spoofed flood
PASS, DROP, SLIP = 0, 1, 2


class Networks:
    """A set of networks, asked by address as an integer: a bisect over sorted, merged intervals."""

    def __init__(self, networks: list[str] | tuple[str, ...]):
        by_version: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for text in networks:
            net = ipaddress.ip_network(text, strict=False)
            by_version[net.version].append((int(net.network_address), int(net.broadcast_address) + 1))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, spans in by_version.items():
            merged: list[list[int]] = []
            for lo, hi in sorted(spans):
                if merged and lo <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], hi)
                else:
                    merged.append([lo, hi])
            self._starts[version] = [lo for lo, _ in merged]
            self._ends[version] = [hi for _, hi in merged]

    def __bool__(self) -> bool:
        return any(self._starts.values())

    def holds(self, version: int, value: int) -> bool:
        starts = self._starts[version]
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value < self._ends[version][i]

    def holds_text(self, address: str | None) -> bool:
        if not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return self.holds(ip.version, int(ip))


# A client network as a table key: an int read straight from the sockaddr's words (native byte
# order), so the batch loop makes no bytes object per datagram. IPv4: the address's first 3 bytes;
# IPv6: the first 7, tagged; an IPv4-mapped IPv6 address: bytes 8-14 of it (::ffff: and its /24).
V4_MASK, V6_MASK = (1 << 24) - 1, (1 << 56) - 1
V6_TAG, MAPPED_TAG = 1 << 56, 2 << 56


def network_key(address: str) -> int:
    """The table key of an address as text (what the batch loop reads from the sockaddr)."""
    if ":" in address:
        packed = socket.inet_pton(socket.AF_INET6, address.split("%")[0])
        head = int.from_bytes(packed[:7], sys.byteorder)
        return head | V6_TAG if head else int.from_bytes(packed[8:15], sys.byteorder) | MAPPED_TAG
    return int.from_bytes(socket.inet_pton(socket.AF_INET, address)[:3], sys.byteorder)


def _key_value(key: int) -> tuple[int, int]:
    """(IP version, the network's first address as an integer) of a table key."""
    tag, low = key >> 56, key & V6_MASK
    if tag == 0:
        return 4, int.from_bytes(low.to_bytes(3, sys.byteorder) + b"\x00", "big")
    if tag == 2:
        return 4, int.from_bytes(low.to_bytes(7, sys.byteorder)[4:] + b"\x00", "big")
    return 6, int.from_bytes(low.to_bytes(7, sys.byteorder) + bytes(9), "big")


class ClientGate:
    """Per client network: whether it is a public resolver, exempt from RRL, and its accounts."""

    def __init__(self, limit: RateLimit | None, resolvers: list[str] | tuple[str, ...] = ()):
        self.limit = limit
        self.resolvers = Networks(resolvers)
        self.exempt = Networks(limit.exempt if limit else ())
        self.rates = (limit.responses, limit.nxdomains, limit.errors) if limit else (0, 0, 0)
        self.floors = tuple(-rate * limit.window for rate in self.rates) if limit else (0, 0, 0)
        self.slip = limit.slip if limit else 0
        self.table: dict[int, list] = {}
        self.limited = [[0, 0] for _ in KINDS]  # per kind: [dropped, slipped]

    @property
    def active(self) -> bool:
        """Whether the batch loop needs the gate at all (else it answers as if it were not there)."""
        return self.limit is not None or bool(self.resolvers)

    def entry(self, key: int, now: float) -> list:
        """A network's entry, made on first sight."""
        if len(self.table) >= MAX_ENTRIES:
            self.table.clear()
        version, value = _key_value(key)
        flags = RESOLVER if self.resolvers and self.resolvers.holds(version, value) else 0
        if self.limit is not None:
            flags |= EXEMPT if self.exempt and self.exempt.holds(version, value) else LIMITED
        entry = [flags, *self.rates, now, now, now, 0]
        self.table[key] = entry
        return entry

    def account(self, entry: list, reply: bytes, now: float) -> int:
        """PASS, DROP or SLIP for one UDP reply to this network (entry's LIMITED flag set)."""
        rcode = reply[3] & 0x0F
        kind = (ANSWER if reply[6] or reply[7] else NEGATIVE) if rcode == 0 else NEGATIVE if rcode == 3 else ERROR
        rate = self.rates[kind]
        balance = entry[1 + kind] + (now - entry[4 + kind]) * rate
        if balance > rate:
            balance = rate
        entry[4 + kind] = now
        balance -= 1
        if balance < self.floors[kind]:
            balance = self.floors[kind]
        entry[1 + kind] = balance
        if balance >= 0:
            return PASS
        entry[7] += 1
        if self.slip and entry[7] % self.slip == 0:
            self.limited[kind][1] += 1
            return SLIP
        self.limited[kind][0] += 1
        return DROP

    def totals(self) -> dict[str, int]:
        """Limited answers since the worker started: ``answer-dropped``, ``error-slipped``..."""
        out = {}
        for kind, (dropped, slipped) in zip(KINDS, self.limited):
            if dropped:
                out[f"{kind}-dropped"] = dropped
            if slipped:
                out[f"{kind}-slipped"] = slipped
        return out


def truncated(reply: bytes) -> bytes:
    """The reply cut to its header and question with TC=1 (RFC 2181 9): the slip of RRL."""
    if len(reply) < 12:
        return reply
    end = 12
    if reply[4] or reply[5]:
        while end < len(reply):
            length = reply[end]
            if length == 0 or length >= 0xC0:  # the root label, or a pointer (2 bytes) ends the name
                end += 1 if length == 0 else 2
                break
            end += 1 + length
        end += 4  # type and class
        if end > len(reply):
            end = 12
    qd = 1 if end > 12 else 0
    return reply[:2] + bytes((reply[2] | 0x02, reply[3])) + struct.pack(">HHHH", qd, 0, 0, 0) + reply[12:end]
