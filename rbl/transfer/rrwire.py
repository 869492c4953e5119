"""Resource records for zone transfers: from presentation format to the wire and back.

A zone's records (:class:`rbl.zone.records.TextRecord`: owner relative to the
apex, rdata in presentation format) are encoded once per serial into message
bodies ready to send: names compressed against the question (whose name is
the origin, at offset 12) and against each other within a message. Workers
then only add a header, the question and a TSIG. The few types a zone of
rbl holds are parsed here (A, AAAA, NS, CNAME, TXT, SOA); the tests hold them
to dnspython's reading of the same text.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from rbl.errors import TransferError
from rbl.protocol import (
    CLASS_IN, MAX_POINTER, POINTERS, QTYPE_A, QTYPE_AAAA, QTYPE_CNAME, QTYPE_NS, QTYPE_SOA, QTYPE_TXT,
    QUESTION_OFFSET, RR_FIXED, name_wire,
)
from rbl.transfer.message import read_name

# The types a zone of rbl holds, by their names in presentation format.
TYPES = {"A": QTYPE_A, "NS": QTYPE_NS, "CNAME": QTYPE_CNAME, "SOA": QTYPE_SOA, "TXT": QTYPE_TXT, "AAAA": QTYPE_AAAA}
BODY_LIMIT = 16000  # bytes of records per message: every name stays a pointer target
_LENGTHS = [bytes([n]) for n in range(256)]
# Bound once: Python 3.11 calls a method of an imported name through a new bound method each time.
_pack_fixed, _unpack_fixed = RR_FIXED.pack, RR_FIXED.unpack_from
MAX_CHAIN = 8  # pointers followed to read any name we write (dnspython refuses more than 16)


class WireRecord(NamedTuple):
    """A record with its rdata encoded; ``name`` is relative to the apex ("" for the apex)."""

    name: str
    rtype: int
    ttl: int
    rdata: bytes


def _txt(text: str) -> bytes:
    if "\\" not in text:
        strings = [part.encode("ascii") for part in _QUOTED.findall(text)] if text.startswith('"') \
            else [part.encode("ascii") for part in text.split()]
    else:
        strings = _escaped_strings(text)
    out = bytearray()
    for string in strings:
        if len(string) > 255:
            raise TransferError(f"a TXT string of {len(string)} bytes (255 at most)")
        out += bytes([len(string)]) + string
    return bytes(out)


_QUOTED = re.compile(r'"([^"]*)"')


def _escaped_strings(text: str) -> list[bytes]:
    """TXT character-strings with RFC 1035 5.1 escapes (\\X and \\DDD), quoted or not."""
    out: list[bytes] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        quoted = text[i] == '"'
        i += quoted
        current = bytearray()
        while i < n and (text[i] != '"' if quoted else not text[i].isspace()):
            char = text[i]
            if char == "\\":
                if text[i + 1: i + 4].isdigit() and len(text[i + 1: i + 4]) == 3:
                    current.append(int(text[i + 1: i + 4]))
                    i += 4
                    continue
                char = text[i + 1: i + 2]
                i += 1
            current += char.encode("ascii")
            i += 1
        if quoted:
            if i >= n:
                raise TransferError(f"an unterminated quoted string in {text!r}")
            i += 1
        out.append(bytes(current))
    return out


def rdata_wire(rtype: str, text: str) -> bytes:
    """Rdata in presentation format to the wire (names uncompressed).

    :raises TransferError: for a type rbl does not transfer, or text it cannot read.
    """
    try:
        if rtype == "A":
            return ipaddress.IPv4Address(text).packed
        if rtype == "AAAA":
            return ipaddress.IPv6Address(text).packed
        if rtype in ("NS", "CNAME"):
            return name_wire(text)
        if rtype == "TXT":
            return _txt(text)
        if rtype == "SOA":
            mname, rname, *numbers = text.split()
            if len(numbers) != 5:
                raise ValueError("an SOA needs two names and five numbers")
            return name_wire(mname) + name_wire(rname) + struct.pack(">IIIII", *(int(x) for x in numbers))
    except (ValueError, UnicodeEncodeError, struct.error) as exc:
        raise TransferError(f"{rtype} record {text!r}: {exc}") from None
    raise TransferError(f"rbl does not transfer {rtype} records")


def encode(records: Iterable) -> Iterator[tuple[str, int, int, bytes]]:
    """:class:`~rbl.zone.records.TextRecord` tuples (name, TTL, type, rdata text) as (name, type, TTL,
    rdata bytes): a :class:`WireRecord`'s fields, as plain tuples (a million of them: every call
    counts), equal to the WireRecord they stand for. Repeated rdata is encoded once."""
    cache: dict[tuple[str, str], bytes] = {}
    types = TYPES
    for name, ttl, rtype, rdata in records:
        if rtype == "TXT":
            # The common TXT: one quoted string without escapes.
            if rdata.count('"') == 2 and rdata[0] == '"' and rdata[-1] == '"' and "\\" not in rdata \
                    and len(rdata) < 258:
                raw = rdata[1:-1].encode("ascii")
                encoded = _LENGTHS[len(raw)] + raw
            else:
                encoded = rdata_wire(rtype, rdata)
        else:
            encoded = cache.get((rtype, rdata))
            if encoded is None:
                if len(cache) > 4096:
                    cache.clear()
                encoded = cache[(rtype, rdata)] = rdata_wire(rtype, rdata)
        # Names stay as given (rbl's are lowercase): lowering a million of them copies each.
        yield ("" if name == "@" else name), types[rtype], ttl, encoded


class Packer:
    """Packs records into message bodies (the records after header and question), compressed.

    Every body is meant to follow a question whose name is the origin, of
    ``question_length`` bytes, at offset 12: owner names end in a pointer to it
    or to a name earlier in the same body. :meth:`add` returns a finished
    body, (bytes, record count), when the next record would not fit.
    """

    def __init__(self, question_length: int, limit: int = BODY_LIMIT):
        self.base = QUESTION_OFFSET + question_length
        self.limit = limit
        self._reset()

    def _reset(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.count = 0
        # Names written in this body: where each starts, and how many pointers reading it follows.
        self.names: dict[str, tuple[int, int]] = {"": (QUESTION_OFFSET, 0)}

    def add(self, name: str, rtype: int, ttl: int, rdata: bytes) -> tuple[bytes, int] | None:
        """Add one record (its name relative to the origin, lowercase); a finished body or None."""
        known = self.names.get(name)
        if known is not None and known[1] < MAX_CHAIN:  # the owner of the record before, mostly
            encoded = POINTERS[known[0]] + _pack_fixed(rtype, CLASS_IN, ttl, len(rdata)) + rdata
            if self.size + len(encoded) <= self.limit or not self.count:
                self.parts.append(encoded)
                self.size += len(encoded)
                self.count += 1
                return None
        done = None
        owner, written, depth = self._owner(name, self.base + self.size)
        encoded = owner + _pack_fixed(rtype, CLASS_IN, ttl, len(rdata)) + rdata
        if self.size + len(encoded) > self.limit and self.count:
            done = self.flush()
            owner, written, depth = self._owner(name, self.base)
            encoded = owner + _pack_fixed(rtype, CLASS_IN, ttl, len(rdata)) + rdata
        names = self.names
        for suffix, offset in written:
            names[suffix] = (offset, depth)
        self.parts.append(encoded)
        self.size += len(encoded)
        self.count += 1
        return done

    def _owner(self, name: str, at: int) -> tuple[bytes, list[tuple[str, int]], int]:
        """An owner name written at ``at``: its bytes, the suffixes it writes out (to remember where),
        and how many pointers reading them follows.

        The longest known suffix is a pointer, the labels before it are written
        out. A suffix reached through too many pointers is written out again:
        parsers cap the chain of pointers they follow (dnspython at 16).
        """
        names = self.names
        head: list[bytes] = []
        written: list[tuple[str, int]] = []
        target = names[""]
        pos, end, size = 0, len(name), 0
        while pos < end:
            suffix = name[pos:] if pos else name
            # The whole name was looked up by add(): the first suffix to try is its parent.
            known = names.get(suffix) if pos else None
            if known is not None and known[1] < MAX_CHAIN:
                target = known
                break
            if at + size <= MAX_POINTER:
                written.append((suffix, at + size))
            dot = name.find(".", pos)
            if dot < 0:
                dot = end
            raw = name[pos:dot].encode("ascii")
            if not 0 < len(raw) < 64:
                raise TransferError(f"owner {name!r}: a label is empty or longer than 63 octets")
            head.append(_LENGTHS[len(raw)] + raw)
            size += 1 + len(raw)
            pos = dot + 1
        return b"".join(head) + POINTERS[target[0]], written, target[1] + 1

    def flush(self) -> tuple[bytes, int] | None:
        """The body packed so far, or None when empty; the next body starts afresh."""
        if not self.count:
            return None
        done = (b"".join(self.parts), self.count)
        self._reset()
        return done


def pack_all(records: Iterable[WireRecord], question_length: int, limit: int = BODY_LIMIT
             ) -> Iterator[tuple[bytes, int]]:
    """Every record packed into bodies, in order."""
    packer = Packer(question_length, limit)
    for record in records:
        done = packer.add(*record)
        if done is not None:
            yield done
    done = packer.flush()
    if done is not None:
        yield done


def unpack(body: bytes, count: int, question_length: int, origin_labels: int) -> list[WireRecord]:
    """A body made by :class:`Packer` back into records (the twin the tests hold it to).

    ``origin_labels``: how many labels the origin has; owner names are given
    relative to it, as they went in.
    """
    base = QUESTION_OFFSET + question_length
    # A stand-in message: the header and an origin name of the right length, so pointers land.
    message = bytes(QUESTION_OFFSET) + b"\x01o" * origin_labels + bytes(question_length - 2 * origin_labels) + body
    if question_length < 2 * origin_labels + 5:
        raise TransferError("question length too short for the origin")
    out = []
    pos = base
    for _ in range(count):
        labels, pos = read_name(message, pos)
        rtype, rclass, ttl, rdlen = _unpack_fixed(message, pos)
        pos += 10
        rdata = message[pos: pos + rdlen]
        pos += rdlen
        relative = labels[: len(labels) - origin_labels]
        out.append(WireRecord(b".".join(relative).decode("ascii"), rtype, ttl, rdata))
    if pos != len(message):
        raise TransferError("bytes after the last record of a body")
    return out
