"""Subjects and their query names (RFC 5782 section 2); endpoints (address and port).

A subject is what a query asks about: an IPv4 or IPv6 address (or, for a
listing, a CIDR) or a domain. IPv4 subjects are queried as reversed octets,
IPv6 subjects as 32 reversed nibbles, domains as themselves, each under a zone.

An endpoint (:func:`parse_endpoint`) is where rbl listens (``rbl serve --dns``,
``--http``) or a peer it sends to (a zone's secondaries): the command line and
the zone files read them alike, so the one reading lives here, below both.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from rbl.errors import RblError, SubjectError

IP4 = "ip4"
IP6 = "ip6"
DOMAIN = "domain"
BITS = {IP4: 32, IP6: 128}  # address width per family

# How a domain listing covers names: the name alone, its subdomains only
# (``*.example.com``) or both (``.example.com``, rbldnsd's dnset syntax).
EXACT = "exact"
SUBDOMAINS = "subdomains"
BOTH = "both"

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_DECIMAL_OCTET = re.compile(rb"^(0|[1-9][0-9]{0,2})\Z")
_HEX = frozenset(b"0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Subject:
    """A listing's subject: an address or CIDR (``net``/``plen``) or a domain."""

    kind: str
    net: int = 0
    plen: int = 0
    domain: str = ""
    cover: str = EXACT

    @property
    def bits(self) -> int:
        """32 or 128: the address family's width (an address or CIDR only)."""
        return BITS[self.kind]

    @property
    def text(self) -> str:
        """Canonical text, the form stored and shown."""
        if self.kind == DOMAIN:
            return {EXACT: "", SUBDOMAINS: "*.", BOTH: "."}[self.cover] + self.domain
        if self.kind == IP4:  # inet_ntoa: an import makes a million of these
            addr = socket.inet_ntoa(self.net.to_bytes(4, "big"))
        else:
            addr = ipaddress.IPv6Address(self.net)
        if self.plen == self.bits:
            return str(addr)
        return f"{addr}/{self.plen}"

    @property
    def packed(self) -> bytes:
        """The network address as 4 or 16 bytes (domains: empty)."""
        if self.kind == DOMAIN:
            return b""
        return self.net.to_bytes(self.bits // 8, "big")

    def __str__(self) -> str:
        return self.text


def parse_subject(text: str) -> Subject:
    """Parse an address, a CIDR or a domain (``*.d`` subdomains, ``.d`` both).

    :raises SubjectError: when the text is none of these, or a CIDR has host bits set.
    """
    raw = text.strip()
    if not raw:
        raise SubjectError("empty subject")
    if ":" in raw or raw[0].isdigit() and re.fullmatch(r"[0-9./]+", raw):
        return _parse_network(raw)
    return parse_domain(raw)


def _parse_network(raw: str) -> Subject:
    if "%" in raw:  # a scope id names an interface, not an address anyone else can see
        raise SubjectError(f"{raw!r} has a scope id; list the address without it")
    try:
        net = ipaddress.ip_network(raw, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            raise SubjectError(f"{raw!r} has host bits set (did you mean {ipaddress.ip_network(raw, strict=False)}?)") from None
        raise SubjectError(f"{raw!r} is not an IP address or CIDR") from None
    if net.version == 4:
        return Subject(IP4, int(net.network_address), net.prefixlen)
    value = int(net.network_address)
    if net.prefixlen >= 96 and value >> 32 == 0xFFFF:
        # ::ffff:a.b.c.d is queried and answered as the IPv4 host (as rbldnsd does).
        return Subject(IP4, value & 0xFFFFFFFF, net.prefixlen - 96)
    return Subject(IP6, value, net.prefixlen)


def parse_domain(raw: str) -> Subject:
    """Parse a domain listing: ``example.com``, ``*.example.com`` or ``.example.com``.

    :raises SubjectError: for names that are not hostnames-like domains.
    """
    name = raw.strip().lower().rstrip(".")
    cover = EXACT
    if name.startswith("*."):
        cover, name = SUBDOMAINS, name[2:]
    elif name.startswith("."):
        cover, name = BOTH, name[1:]
    try:
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        raise SubjectError(f"{raw!r} is not a valid domain name") from None
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise SubjectError(f"{raw!r} is not a valid domain name")
    # A numeric top label would collide with reversed-address query names.
    if labels[-1].isdigit():
        raise SubjectError(f"{raw!r} is not a valid domain name (numeric top-level label)")
    return Subject(DOMAIN, domain=name, cover=cover)


def parse_identity(raw: str) -> str:
    """A DKIM signing domain (``d=``) named as an identity on a listing: one exact domain, lower-case
    (IDNA for non-ASCII), no wildcard.

    :raises SubjectError: for anything else.
    """
    if not isinstance(raw, str) or raw.strip().startswith(("*", ".")):
        raise SubjectError(f"{raw!r} is not a signing domain such as shop.example (one exact name)")
    try:
        name = parse_domain(raw).domain
    except SubjectError:
        raise SubjectError(f"{raw!r} is not a signing domain such as shop.example") from None
    # No top-level domain has one character; the tenant zone relies on it (a pair name's label
    # above the address is never an IPv6 nibble: see rbl.zone.tenant).
    if len(name.rsplit(".", 1)[-1]) < 2:
        raise SubjectError(f"{raw!r} is not a signing domain such as shop.example (one-character top label)")
    return name


def parse_identities(texts, subjects) -> tuple[str, ...]:
    """The identities an add names for ``subjects``: each :func:`parse_identity`, sorted, once;
    none may be named on a domain listing.

    :raises SubjectError: for a bad identity, or identities on a domain listing.
    """
    out = {parse_identity(text) for text in texts}
    if out and any(subject.kind == DOMAIN for subject in subjects):
        raise SubjectError("only an address or CIDR listing names the identities behind it")
    return tuple(sorted(out))


def reverse_name(address: str) -> str:
    """The RFC 5782 query label sequence for an address, without the zone.

    >>> reverse_name("192.0.2.1")
    '1.2.0.192'
    """
    addr = ipaddress.ip_address(address)
    if addr.version == 4:
        return ".".join(reversed(str(addr).split(".")))
    return ".".join(reversed(f"{int(addr):032x}"))


def parse_relative(rel: bytes) -> tuple[str, int, int] | None:
    """Read a query name below a zone (lowercase, dots, no zone) as an address prefix.

    Returns ``(kind, value, plen)``: ``plen`` is 32 or 128 for a whole address,
    less for a partial name (an empty non-terminal candidate such as ``127``).
    Returns None when the name is not address-shaped: then it is a domain.
    An IPv4 partial name of 1..3 octets may also be an IPv6 nibble path; IPv4 wins
    here and the caller checks both (see :func:`nibble_prefix`).
    """
    parts = rel.split(b".")
    n = len(parts)
    if n <= 4 and all(_DECIMAL_OCTET.match(p) for p in parts):
        octets = [int(p) for p in parts]
        if all(o < 256 for o in octets):
            value = 0
            for o in reversed(octets):
                value = (value << 8) | o
            return IP4, value << (8 * (4 - n)), 8 * n
    return nibble_prefix(parts)


def nibble_prefix(parts: list[bytes]) -> tuple[str, int, int] | None:
    """Read reversed nibble labels as an IPv6 prefix (``plen`` 4..128), else None."""
    n = len(parts)
    if n > 32 or not all(len(p) == 1 and p[0] in _HEX for p in parts):
        return None
    value = int(b"".join(reversed(parts)), 16)
    return IP6, value << (4 * (32 - n)), 4 * n


def parse_endpoint(text: str, default_port: int, remote: bool = False) -> tuple[str, int]:
    """``127.0.0.1:5353``, ``[::1]:5353``, ``::1`` or ``127.0.0.1`` (the default port): host and port.

    Where rbl listens, the host may be a name and the port 0 (any free one). A
    ``remote`` endpoint (a peer rbl sends to) must be an IP address, given back
    in its usual form, with a port from 1, and nothing may follow ``]`` but ``:PORT``.

    :raises RblError: for anything else.
    """
    host, port = text, str(default_port)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
        elif rest and remote:  # where rbl listens, this has always been ignored
            raise RblError(f"{text!r} has {rest!r} after the address where a port goes")
    elif text.count(":") == 1:
        host, port = text.split(":")
    if remote:
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise RblError(f"{host!r} is not an IP address") from None
    if not port.isdigit() or not (1 if remote else 0) <= int(port) < 65536 or not host:
        raise RblError(f"{text!r} is not an address and port such as 127.0.0.1:5353")
    return host, int(port)
