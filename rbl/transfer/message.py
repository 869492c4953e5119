"""Just enough of a DNS message's wire form for transfers: reading names, the question, where records lie.

TSIG signs the bytes as they were sent, and an IXFR query carries the client's
SOA in its authority section: the transfer path reads messages here, in place,
instead of re-encoding them through dnslib. Pure code, no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rbl.errors import TransferError
from rbl.protocol import HEADER, RR_FIXED

MAX_POINTERS = 64  # more hops than any honest name needs: a loop
# Bound once: Python 3.11 calls a method of an imported name through a new bound method each time.
_unpack_header, _unpack_fixed = HEADER.unpack_from, RR_FIXED.unpack_from


def read_name(wire: bytes, pos: int) -> tuple[list[bytes], int]:
    """The labels of the name at pos (pointers followed) and where the name ends in place."""
    labels: list[bytes] = []
    end = None
    hops = 0
    total = 1
    while True:
        if pos >= len(wire):
            raise TransferError("a name runs past the end of the message")
        length = wire[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(wire):
                raise TransferError("a compression pointer runs past the end of the message")
            if end is None:
                end = pos + 2
            hops += 1
            if hops > MAX_POINTERS:
                raise TransferError("a loop of compression pointers")
            pos = (length & 0x3F) << 8 | wire[pos + 1]
            continue
        if length & 0xC0:
            raise TransferError("an unknown label type")
        if length == 0:
            return labels, end if end is not None else pos + 1
        total += length + 1
        if total > 255 or pos + 1 + length > len(wire):
            raise TransferError("a name is too long or runs past the end of the message")
        labels.append(wire[pos + 1: pos + 1 + length])
        pos += 1 + length


def dotted(labels: list[bytes]) -> str:
    """Labels as a lowercase dotted name without the trailing dot ("" for the root)."""
    return b".".join(labels).decode("ascii", "replace").lower()


@dataclass(frozen=True)
class MessageRecord:
    """One resource record of a :class:`Message`: where it lies in the message, and its fixed fields."""

    start: int
    name: str  # lowercase, dotted, no trailing dot
    rtype: int
    rclass: int
    ttl: int
    rdata_start: int
    end: int


@dataclass(frozen=True)
class Message:
    """A message read in place: header fields, the one question, and its records' positions."""

    id: int
    flags: int
    qname: str  # lowercase, dotted
    qtype: int
    qclass: int
    question_end: int  # the question's bytes are wire[12:question_end]
    answer: tuple[MessageRecord, ...]
    authority: tuple[MessageRecord, ...]
    additional: tuple[MessageRecord, ...]

    @property
    def opcode(self) -> int:
        return self.flags >> 11 & 0xF


def read_message(wire: bytes) -> Message:
    """Read a message with exactly one question.

    :raises TransferError: for anything malformed (the caller answers FORMERR).
    """
    if len(wire) < 12:
        raise TransferError("shorter than a DNS header")
    ident, flags, qd, an, ns, ar = _unpack_header(wire)
    if qd != 1:
        raise TransferError(f"{qd} questions, not one")
    labels, pos = read_name(wire, 12)
    if pos + 4 > len(wire):
        raise TransferError("the question runs past the end of the message")
    qtype, qclass = struct.unpack_from(">HH", wire, pos)
    question_end = pos + 4
    pos = question_end
    sections = []
    for count in (an, ns, ar):
        records = []
        for _ in range(count):
            start = pos
            owner, pos = read_name(wire, pos)
            if pos + 10 > len(wire):
                raise TransferError("a record runs past the end of the message")
            rtype, rclass, ttl, rdlen = _unpack_fixed(wire, pos)
            rdata_start = pos + 10
            pos = rdata_start + rdlen
            if pos > len(wire):
                raise TransferError("a record's data runs past the end of the message")
            records.append(MessageRecord(start, dotted(owner), rtype, rclass, ttl, rdata_start, pos))
        sections.append(tuple(records))
    if pos != len(wire):
        raise TransferError("bytes after the last record")
    return Message(ident, flags, dotted(labels), qtype, qclass, question_end, *sections)


def soa_serial(wire: bytes, record: MessageRecord) -> int:
    """The serial of an SOA record (its names may be compressed)."""
    _, pos = read_name(wire, record.rdata_start)
    _, pos = read_name(wire, pos)
    if pos + 20 > record.end:
        raise TransferError("an SOA record too short for its numbers")
    return struct.unpack_from(">I", wire, pos)[0]


def set_soa_serial(wire: bytes, record: MessageRecord, serial: int) -> bytes:
    """The message with one SOA record's serial replaced (same length)."""
    _, pos = read_name(wire, record.rdata_start)
    _, pos = read_name(wire, pos)
    return wire[:pos] + struct.pack(">I", serial) + wire[pos + 4:]
