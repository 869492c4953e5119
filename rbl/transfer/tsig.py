"""TSIG (RFC 8945): HMAC signatures on DNS messages, for zone transfers and NOTIFY.

Signing and checking work on the bytes as sent, with the standard library's
hmac: a transfer signs every message of a stream (the first with the
request's MAC, each next one with the previous MAC and the timers only,
section 5.3.1). Secrets live in :class:`rbl.zone.config.TsigKey`, whose repr
hides them; nothing here puts a secret in a message or an error.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

from rbl.errors import TransferError
from rbl.protocol import CLASS_ANY, QTYPE_TSIG, RR_FIXED, name_wire
from rbl.transfer.message import Message, dotted, read_message, read_name
from rbl.zone.config import TsigKey

FUDGE = 300  # seconds of clock skew allowed either way (the RFC's recommendation)

# TSIG error codes (RFC 8945 section 3): in the TSIG record, the header says NOTAUTH.
BADSIG = 16
BADKEY = 17
BADTIME = 18
BADTRUNC = 22
ERROR_NAMES = {BADSIG: "BADSIG", BADKEY: "BADKEY", BADTIME: "BADTIME", BADTRUNC: "BADTRUNC"}
# Bound once: Python 3.11 calls a method of an imported name through a new bound method each time.
_pack_fixed = RR_FIXED.pack

_HASHES = {
    "hmac-sha1": hashlib.sha1, "hmac-sha224": hashlib.sha224, "hmac-sha256": hashlib.sha256,
    "hmac-sha384": hashlib.sha384, "hmac-sha512": hashlib.sha512,
}


@dataclass(frozen=True)
class Tsig:
    """A TSIG record as read from a message."""

    start: int  # where the record begins: the message without it is wire[:start]
    key_name: str
    algorithm: str
    time_signed: int
    fudge: int
    mac: bytes
    original_id: int
    error: int
    other: bytes


class TsigFailure(TransferError):
    """A signature that does not check out; ``error`` is the TSIG error code to answer with."""

    def __init__(self, error: int, key_name: str, detail: str):
        self.error = error
        self.key_name = key_name
        super().__init__(f"{ERROR_NAMES.get(error, error)} for key {key_name!r}: {detail}")


def find_tsig(wire: bytes, message: Message | None = None) -> Tsig | None:
    """The message's TSIG record, or None when it is not signed.

    :raises TransferError: for a malformed TSIG, or one that is not the last record.
    """
    message = message or read_message(wire)
    records = (*message.answer, *message.authority, *message.additional)
    found = [r for r in records if r.rtype == QTYPE_TSIG]
    if not found:
        return None
    record = found[0]
    if len(found) > 1 or record is not message.additional[-1]:
        raise TransferError("a TSIG record that is not the last record of the message")
    if record.rclass != CLASS_ANY or record.ttl != 0:
        raise TransferError("a TSIG record with a class other than ANY or a TTL other than 0")
    labels, pos = read_name(wire, record.rdata_start)
    try:
        hi, lo, fudge, mac_size = struct.unpack_from(">HIHH", wire, pos)
        mac = wire[pos + 10: pos + 10 + mac_size]
        pos += 10 + mac_size
        original_id, error, other_len = struct.unpack_from(">HHH", wire, pos)
        other = wire[pos + 6: pos + 6 + other_len]
    except struct.error:
        raise TransferError("a TSIG record too short for its fields") from None
    if len(mac) != mac_size or pos + 6 + other_len != record.end:
        raise TransferError("a TSIG record whose lengths do not add up")
    return Tsig(record.start, record.name, dotted(labels), hi << 32 | lo, fudge, mac, original_id, error, other)


def _variables(key_name: str, algorithm: str, time_signed: int, fudge: int, error: int, other: bytes) -> bytes:
    return (name_wire(key_name) + struct.pack(">HI", CLASS_ANY, 0) + name_wire(algorithm)
            + _timers(time_signed, fudge) + struct.pack(">HH", error, len(other)) + other)


def _timers(time_signed: int, fudge: int) -> bytes:
    return struct.pack(">HIH", time_signed >> 32, time_signed & 0xFFFFFFFF, fudge)


def _prefix(mac: bytes) -> bytes:
    return struct.pack(">H", len(mac)) + mac if mac else b""


def _unsigned(wire: bytes, tsig: Tsig) -> bytes:
    """The message as it was before signing: without the TSIG, ARCOUNT one less, the original ID."""
    (arcount,) = struct.unpack_from(">H", wire, 10)
    return struct.pack(">H", tsig.original_id) + wire[2:10] + struct.pack(">H", arcount - 1) + wire[12:tsig.start]


def verify(wire: bytes, tsig: Tsig, keys: Mapping[str, TsigKey], now: float | None = None,
           request_mac: bytes = b"") -> TsigKey:
    """Check a signed message (a request, or with ``request_mac`` the reply to ours); the key it used.

    :raises TsigFailure: BADKEY (unknown key or algorithm), BADTRUNC (a MAC shorter
        than the algorithm's), BADSIG (wrong MAC) or BADTIME (outside the fudge).
    """
    key = keys.get(tsig.key_name)
    if key is None or key.algorithm != tsig.algorithm:
        raise TsigFailure(BADKEY, tsig.key_name, f"no such key with algorithm {tsig.algorithm}")
    if tsig.error:
        raise TsigFailure(tsig.error, tsig.key_name, "the peer reports a TSIG error")
    digest = _HASHES[key.algorithm]
    if len(tsig.mac) != digest().digest_size:
        raise TsigFailure(BADTRUNC, tsig.key_name, f"a MAC of {len(tsig.mac)} bytes")
    data = (_prefix(request_mac) + _unsigned(wire, tsig)
            + _variables(tsig.key_name, tsig.algorithm, tsig.time_signed, tsig.fudge, tsig.error, tsig.other))
    if not hmac.compare_digest(hmac.new(key.secret, data, digest).digest(), tsig.mac):
        raise TsigFailure(BADSIG, tsig.key_name, "the MAC does not match")
    now = time.time() if now is None else now
    if abs(int(now) - tsig.time_signed) > tsig.fudge:
        raise TsigFailure(BADTIME, tsig.key_name, f"signed {tsig.time_signed}, now {int(now)}")
    return key


def _append(wire: bytes, key_name: str, algorithm: str, time_signed: int, mac: bytes, original_id: int,
            error: int, other: bytes) -> bytes:
    rdata = (name_wire(algorithm) + _timers(time_signed, FUDGE) + struct.pack(">H", len(mac)) + mac
             + struct.pack(">HHH", original_id, error, len(other)) + other)
    record = name_wire(key_name) + _pack_fixed(QTYPE_TSIG, CLASS_ANY, 0, len(rdata)) + rdata
    (arcount,) = struct.unpack_from(">H", wire, 10)
    return wire[:10] + struct.pack(">H", arcount + 1) + wire[12:] + record


def sign(wire: bytes, key: TsigKey, now: float | None = None, request_mac: bytes = b"", error: int = 0,
         other: bytes = b"") -> tuple[bytes, bytes]:
    """Sign a message (a request, or a reply to a request whose MAC is given): (signed bytes, MAC)."""
    time_signed = int(time.time() if now is None else now)
    data = _prefix(request_mac) + wire + _variables(key.name, key.algorithm, time_signed, FUDGE, error, other)
    mac = hmac.new(key.secret, data, _HASHES[key.algorithm]).digest()
    original_id = struct.unpack_from(">H", wire)[0]
    return _append(wire, key.name, key.algorithm, time_signed, mac, original_id, error, other), mac


def error_reply(wire: bytes, tsig: Tsig, error: int) -> bytes:
    """A reply's bytes with an unsigned TSIG carrying ``error`` (BADKEY, BADSIG: the key cannot sign)."""
    return _append(wire, tsig.key_name, tsig.algorithm, tsig.time_signed, b"", tsig.original_id, error, b"")


class StreamSigner:
    """Signs the messages of one reply stream (AXFR, IXFR): each message carries a TSIG.

    A single reply is a stream of one: its signature is the first message's.
    """

    def __init__(self, key: TsigKey, request_mac: bytes, now: float | None = None):
        self.key = key
        self.mac = request_mac
        self.first = True
        self.now = now

    def sign(self, wire: bytes) -> bytes:
        key = self.key
        if self.first:
            signed, self.mac = sign(wire, key, self.now, self.mac)
            self.first = False
            return signed
        time_signed = int(time.time() if self.now is None else self.now)
        data = _prefix(self.mac) + wire + _timers(time_signed, FUDGE)
        self.mac = hmac.new(key.secret, data, _HASHES[key.algorithm]).digest()
        return _append(wire, key.name, key.algorithm, time_signed, self.mac,
                       struct.unpack_from(">H", wire)[0], 0, b"")
