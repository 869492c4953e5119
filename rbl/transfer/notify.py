"""NOTIFY (RFC 1996): tell a secondary that a zone has a new serial, so it asks for it now.

One message over UDP, signed with the zone's TSIG key when it has one, tried
again with a doubling wait until the secondary answers or the tries run out:
bounded, so a secondary that is down costs at most NOTIFY_TRIES datagrams per
serial (and a newer serial replaces an unanswered older one, see
:mod:`rbl.transfer.publish`).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct

from rbl.errors import TransferError
from rbl.protocol import (
    CLASS_IN, FLAG_AA, FLAG_QR, HEADER, OPCODE_NOTIFY, QNAME_POINTER, QTYPE_SOA, RR_FIXED, name_wire,
)
from rbl.transfer import tsig as tsiglib
from rbl.transfer.message import read_message
from rbl.transfer.rrwire import WireRecord
from rbl.zone.config import TsigKey

NOTIFY_TRIES = 5
NOTIFY_WAIT = 1.0  # seconds for the first answer; doubled on each try (1 + 2 + 4 + 8 + 16 s at most)


def notify_message(origin: str, ident: int, soa: WireRecord | None = None) -> bytes:
    """A NOTIFY for ``origin`` (question: its SOA), with the new SOA as a hint when given."""
    flags = OPCODE_NOTIFY << 11 | FLAG_AA  # AA, as RFC 1996 section 3.7 has it
    wire = HEADER.pack(ident, flags, 1, 1 if soa is not None else 0, 0, 0)
    wire += name_wire(origin) + struct.pack(">HH", QTYPE_SOA, CLASS_IN)
    if soa is not None:
        wire += QNAME_POINTER + RR_FIXED.pack(QTYPE_SOA, CLASS_IN, soa.ttl, len(soa.rdata)) + soa.rdata
    return wire


def reply_rcode(data: bytes, ident: int, key: TsigKey | None, request_mac: bytes) -> int | None:
    """The rcode of the secondary's reply to our NOTIFY ``ident``, or None when the datagram is not one.

    :raises TransferError: for a NOERROR reply whose TSIG does not check out.
    """
    try:
        message = read_message(data)
    except TransferError:
        return None
    if message.id != ident or not message.flags & FLAG_QR or message.opcode != OPCODE_NOTIFY:
        return None
    rcode = message.flags & 0xF
    if rcode == 0 and key is not None:
        signature = tsiglib.find_tsig(data, message)
        if signature is None:
            raise TransferError("the reply is not signed")
        tsiglib.verify(data, signature, {key.name: key}, request_mac=request_mac)
    return rcode


class _Replies(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP port unreachable and the like: the wait runs out and we try again


async def send_notify(origin: str, soa: WireRecord, endpoint: tuple[str, int], key: TsigKey | None,
                      tries: int = NOTIFY_TRIES, wait: float = NOTIFY_WAIT) -> int:
    """NOTIFY one secondary; the number of tries it took.

    :raises TransferError: when the secondary answers with an error, a bad
        signature, or not at all within the tries.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in endpoint[0] else socket.AF_INET
    transport, protocol = await loop.create_datagram_endpoint(_Replies, remote_addr=endpoint, family=family)
    try:
        for attempt in range(tries):
            ident = secrets.randbelow(65536)
            wire, mac = notify_message(origin, ident, soa), b""
            if key is not None:
                wire, mac = tsiglib.sign(wire, key)
            transport.sendto(wire)
            deadline = loop.time() + wait * 2 ** attempt
            while (remaining := deadline - loop.time()) > 0:
                try:
                    data = await asyncio.wait_for(protocol.queue.get(), remaining)
                except TimeoutError:
                    break
                rcode = reply_rcode(data, ident, key, mac)
                if rcode == 0:
                    return attempt + 1
                if rcode is not None:
                    raise TransferError(f"the secondary answered rcode {rcode}")
        raise TransferError(f"no answer after {tries} tries")
    finally:
        transport.close()
