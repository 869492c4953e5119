"""The DNS protocol's numbers, and the few encodings that answering and zone transfers share.

Answering (:mod:`rbl.dns`) and zone transfers (:mod:`rbl.transfer`) read and
write the same wire format (RFC 1035, with EDNS from RFC 6891 and TSIG from
RFC 8945). What both need is here, on the base floor, so that each number and
encoding is written once and neither package reaches into the other for it
(transfers sit below answering: the DNS workers hand them their questions).
No I/O, no state: numbers, two byte layouts, and small functions of bytes.
"""

from __future__ import annotations

import struct

from rbl.errors import TransferError

# Record and question types (RFC 1035 3.2.2 and 3.2.3; AAAA RFC 3596, OPT RFC 6891,
# TSIG RFC 8945, IXFR RFC 1995, AXFR RFC 5936).
QTYPE_A = 1
QTYPE_NS = 2
QTYPE_CNAME = 5
QTYPE_SOA = 6
QTYPE_TXT = 16
QTYPE_AAAA = 28
QTYPE_OPT = 41
QTYPE_TSIG = 250
QTYPE_IXFR = 251
QTYPE_AXFR = 252
QTYPE_ANY = 255

CLASS_IN = 1
CLASS_ANY = 255  # the class of a TSIG record

OPCODE_NOTIFY = 4  # RFC 1996; a query's opcode is 0

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_NOTAUTH = 9  # RFC 8945: a TSIG that does not check out
RCODE_BADVERS = 16  # RFC 6891: an EDNS version other than 0 (in the OPT's extended rcode)

# Bits of the header's flags word (bytes 2-3).
FLAG_QR = 0x8000  # a response
FLAG_AA = 0x0400  # authoritative
FLAG_RD = 0x0100  # recursion desired, copied from query to reply

MAX_NAME = 255  # octets of a name on the wire (RFC 1035 2.3.4)
PLAIN_UDP_SIZE = 512  # a UDP reply without EDNS (RFC 1035 4.2.1)
OUR_UDP_SIZE = 1232  # the payload size we advertise: the DNS flag day 2020 value, safe from fragmentation

HEADER = struct.Struct(">HHHHHH")  # id, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
QUESTION_OFFSET = HEADER.size  # where the question's name starts
RR_FIXED = struct.Struct(">HHIH")  # after a record's owner: type, class, TTL, rdata length
OPT_FIXED = struct.Struct(">HHBBHH")  # after an OPT's root owner: type, payload size, ext rcode, version, flags, rdlen
MAX_POINTER = 0x3FFF  # a compression pointer reaches no further
# Every compression pointer as its two bytes, so that writing one is a list index.
POINTERS = [struct.pack(">H", 0xC000 | offset) for offset in range(MAX_POINTER + 1)]
QNAME_POINTER = POINTERS[QUESTION_OFFSET]  # to the question's name: the owner of most records we write


def name_wire(name: str, any_length: bool = False) -> bytes:
    """The uncompressed wire form of a dotted name ("" or "." is the root; trailing dots are dropped).

    ``any_length``: no limit on the whole name. A sub-zone's origin is its
    parent's with a label before it, and may pass 255 octets: no query can
    name it, but its templates are built all the same.

    :raises TransferError: for an empty label or one over 63 octets, or (unless
        ``any_length``) a name over 255 octets. Names from the zone files are
        checked when read; the transfer code also writes names no check has
        passed (a record's text, a peer's key name), and answers with this error.
    """
    out = bytearray()
    for label in name.rstrip(".").split(".") if name.strip(".") else ():
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise TransferError(f"a label of {name!r} is empty or longer than 63 octets")
        out += bytes([len(raw)]) + raw
    if len(out) >= MAX_NAME and not any_length:
        raise TransferError(f"{name!r} is longer than 255 octets")
    return bytes(out) + b"\x00"


def opt_record(do_bit: int) -> bytes:
    """Our OPT record: root owner, our payload size, version 0, DO copied (RFC 3225)."""
    return b"\x00" + OPT_FIXED.pack(QTYPE_OPT, OUR_UDP_SIZE, 0, 0, 0x8000 if do_bit else 0, 0)


def header_only_reply(data: bytes, rcode: int) -> bytes:
    """A reply of a header alone, for a query whose question cannot be trusted (or read).

    The ID, opcode and RD are copied; every count is 0.
    """
    return data[:2] + struct.pack(">HHHHH", FLAG_QR | (data[2] & 0x79) << 8 | rcode, 0, 0, 0, 0)
