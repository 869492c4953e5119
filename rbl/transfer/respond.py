"""Zone transfers from the DNS workers: AXFR and IXFR over TCP, and TSIG-signed queries.

All of it is the slow path. The TCP server hands a message over only when its
question asks for AXFR or IXFR (:func:`transfer_qtype`, a look at a few bytes),
and the general path only a query that carries a TSIG record (a secondary's
SOA check). The hot path never gets here.

What a worker sends comes from files the primary writes beside the snapshots
(:mod:`rbl.transfer.versions`): ``settings.json`` says who may transfer and with
which keys, ``index.json`` names the newest version's message bodies and its
steps of history. A worker adds a header, the question and a TSIG to each.

Refusals (RFC 5936 section 2.2, RFC 8945 section 5.2): a client outside the
allow list, or an unsigned request where TSIG is required, gets REFUSED; a
request signed with an unknown key or a wrong MAC gets NOTAUTH with the TSIG
error (BADKEY, BADSIG) unsigned, a stale time NOTAUTH with BADTIME, signed.
Each is logged with the client and the key's name, never its secret.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from rbl.errors import TransferError
from rbl.protocol import (
    CLASS_IN, FLAG_AA, FLAG_QR, FLAG_RD, HEADER, QTYPE_AXFR, QTYPE_IXFR, QTYPE_OPT, QTYPE_SOA, RCODE_FORMERR,
    RCODE_NOTAUTH, RCODE_REFUSED, RCODE_SERVFAIL, header_only_reply, opt_record,
)
from rbl.transfer import history
from rbl.transfer import tsig as tsiglib
from rbl.transfer.message import Message, read_message, set_soa_serial, soa_serial
from rbl.transfer.rrwire import WireRecord, pack_all
from rbl.transfer.versions import INDEX, SETTINGS, load_records, open_version, read_chunks, version_soa
from rbl.zone.config import TransferConfig, TsigKey

log = logging.getLogger("rbl.transfer")

YIELD_EVERY = 16  # messages between turns of the event loop: UDP queries keep being answered
# Bound once: Python 3.11 calls a method of an imported name through a new bound method each time.
_pack_header = HEADER.pack


def transfer_qtype(data: bytes) -> int:
    """QTYPE_AXFR or QTYPE_IXFR when a query asks for one, else 0 (a cheap look at the question)."""
    if len(data) < 17 or data[2] & 0xF8 or data[4:6] != b"\x00\x01":
        return 0  # a response, another opcode, or not one question
    pos, end = 12, len(data)
    while pos < end:
        length = data[pos]
        if length == 0:
            break
        if length > 63:
            return 0
        pos += length + 1
    if pos + 3 > end:
        return 0
    qtype = data[pos + 1] << 8 | data[pos + 2]
    return qtype if qtype in (QTYPE_AXFR, QTYPE_IXFR) else 0


@dataclass(frozen=True)
class ZoneFiles:
    """One zone's transfer settings and newest version, as the primary last wrote them."""

    origin: str
    folder: Path
    config: TransferConfig
    index: dict | None  # None until the primary has rendered a version

    @property
    def keys(self) -> dict[str, TsigKey]:
        return {self.config.key.name: self.config.key} if self.config.key is not None else {}


def _load_settings(path: Path) -> TransferConfig:
    data = json.loads(path.read_text())
    key = data["key"]
    return TransferConfig(
        allow=tuple(data["allow"]), tsig=data["tsig"],
        key=None if key is None else TsigKey(key["name"], key["algorithm"], base64.b64decode(key["secret"])),
    )


# What a zone origin can be: host-name labels joined by dots (the folder names the primary writes).
_ORIGIN = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*", re.ASCII)


class TransferResponder:
    """A worker's view of the transfer files in ``folder`` (``folder/<origin>/``), reread when they change."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._cache: dict[str, tuple[tuple, ZoneFiles]] = {}

    def zone(self, origin: str) -> ZoneFiles | None:
        """The zone's files, or None when it has no transfer settings."""
        if not _ORIGIN.fullmatch(origin):
            return None  # not a zone's name (a NUL, a slash, '..'): never a path to look at
        zone_dir = self.folder / origin
        stamps = []
        for name in (SETTINGS, INDEX):
            try:
                st = os.stat(zone_dir / name)
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                stamps.append(None)
        if stamps[0] is None:
            self._cache.pop(origin, None)
            return None
        cached = self._cache.get(origin)
        if cached is not None and cached[0] == tuple(stamps):
            return cached[1]
        try:
            config = _load_settings(zone_dir / SETTINGS)
            index = json.loads((zone_dir / INDEX).read_text()) if stamps[1] is not None else None
        except (OSError, ValueError, KeyError) as exc:
            log.error("cannot read the transfer files of %s: %s", origin, exc)
            return None
        files = ZoneFiles(origin, zone_dir, config, index)
        self._cache[origin] = (tuple(stamps), files)
        return files

    def zone_above(self, qname: str) -> ZoneFiles | None:
        """The zone with transfer settings that holds a name (its origin or a parent)."""
        labels = qname.split(".") if qname else []
        for i in range(len(labels)):
            files = self.zone(".".join(labels[i:]))
            if files is not None:
                return files
        return None

    # -- AXFR and IXFR over TCP --------------------------------------------------------

    async def serve(self, data: bytes, client: str, writer: asyncio.StreamWriter) -> None:
        """Answer one AXFR or IXFR query on a TCP connection: one message or a stream of them."""
        started = time.monotonic()
        sent = messages = 0
        outcome = None
        try:
            for message in self._replies(data, client):
                if isinstance(message, Served):
                    outcome = message
                    continue
                if writer.is_closing():
                    raise ConnectionResetError("the client closed the connection")
                writer.write(struct.pack(">H", len(message)) + message)
                sent += len(message) + 2
                messages += 1
                if messages % YIELD_EVERY == 0:
                    await writer.drain()
                    await asyncio.sleep(0)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            log.warning("transfer to %s broken off after %d messages", client, messages)
            raise
        except (OSError, ValueError, KeyError, TransferError) as exc:  # files gone or damaged meanwhile
            log.error("transfer to %s failed after %d messages: %s", client, messages, exc)
            raise ConnectionAbortedError(str(exc)) from None
        if outcome is not None:
            log.info("%s of %s to %s: %s, %d records in %d messages, %d bytes, %.3f s%s",
                     outcome.kind, outcome.origin, client, outcome.serials, outcome.records, messages, sent,
                     time.monotonic() - started, f" (key {outcome.key})" if outcome.key else "")

    def _replies(self, data: bytes, client: str):
        """The reply messages to a transfer query, and a :class:`Served` note when one is served."""
        try:
            message = read_message(data)
            signature = tsiglib.find_tsig(data, message)
        except TransferError as exc:
            log.warning("malformed transfer query from %s: %s", client, exc)
            yield header_only_reply(data, RCODE_FORMERR)
            return
        kind = "AXFR" if message.qtype == QTYPE_AXFR else "IXFR"
        files = self.zone(message.qname) if message.qclass == CLASS_IN else None
        if files is None:
            log.warning("refused %s of %r to %s: no transfers are set up for it", kind, message.qname, client)
            yield _reply(data, message, RCODE_REFUSED)
            return
        checked = self._check(data, message, signature, files, client, kind)
        if isinstance(checked, bytes):
            yield checked
            return
        key = checked
        signer = _signer(key, signature)
        index = files.index
        if index is None or index["question_length"] != message.question_end - 12:
            if index is None:
                log.warning("%s of %s to %s: no version rendered yet", kind, files.origin, client)
            yield _reply(data, message, RCODE_SERVFAIL, signer)
            return
        if kind == "IXFR":
            client_serial = _ixfr_serial(data, message, files.origin)
            if client_serial is None:
                log.warning("malformed IXFR query from %s: no SOA of %s in its authority section",
                            client, files.origin)
                yield _reply(data, message, RCODE_FORMERR, signer)
                return
            steps = history.plan([history.Step(**s) for s in index["steps"]], index["serial"], client_serial,
                                 index["axfr_bytes"])
            if steps == history.UP_TO_DATE:
                yield from _bodies(data, message, [version_soa(index)], files.origin, signer)
                yield Served("IXFR", files.origin, f"serial {client_serial} is up to date (ours {index['serial']})",
                             1, key.name if key else None)
                return
            if steps != history.WHOLE_ZONE:
                records = [version_soa(index)]
                for step in steps:
                    records += load_records((files.folder / step.file).read_bytes())
                records.append(version_soa(index))
                yield from _bodies(data, message, records, files.origin, signer)
                yield Served("IXFR", files.origin, f"serial {client_serial} -> {index['serial']} in "
                             f"{len(steps)} step{'s' * (len(steps) != 1)}", len(records),
                             key.name if key else None)
                return
            kind = "IXFR (whole zone)"
        yield from _whole_zone(data, message, files, signer)
        yield Served(kind, files.origin, f"serial {index['serial']}", index["records"] + 2,
                     key.name if key else None)

    def _check(self, data: bytes, message: Message, signature, files: ZoneFiles, client: str, kind: str
               ) -> bytes | TsigKey | None:
        """The key a transfer goes under (None: unsigned, allowed), or the refusal to send."""
        key = None
        if signature is not None:
            refusal = self._verify(data, message, signature, files, client, kind)
            if isinstance(refusal, bytes):
                return refusal
            key = refusal
        elif files.config.tsig == "required":
            log.warning("refused %s of %s to %s: not signed, and TSIG is required", kind, files.origin, client)
            return _reply(data, message, RCODE_REFUSED)
        if not files.config.allows(client):
            log.warning("refused %s of %s to %s: not in its allow list", kind, files.origin, client)
            return _reply(data, message, RCODE_REFUSED, _signer(key, signature))
        return key

    def _verify(self, data: bytes, message: Message, signature, files: ZoneFiles | None, client: str, what: str
                ) -> bytes | TsigKey:
        """The key of a valid signature, or the NOTAUTH reply to send (RFC 8945 section 5.2)."""
        keys = files.keys if files is not None else {}
        try:
            return tsiglib.verify(data, signature, keys)
        except tsiglib.TsigFailure as failure:
            origin = files.origin if files is not None else message.qname
            log.warning("refused %s of %s to %s: TSIG %s", what, origin, client, failure)
            head = _reply(data, message, RCODE_NOTAUTH)
            if failure.error == tsiglib.BADTIME:
                # Signed, with the request's time and ours in Other Data, so the client sees the skew.
                now = int(time.time())
                signed, _ = tsiglib.sign(head, keys[signature.key_name], signature.time_signed, signature.mac,
                                         tsiglib.BADTIME, struct.pack(">HI", now >> 32, now & 0xFFFFFFFF))
                return signed
            return tsiglib.error_reply(head, signature, failure.error)

    # -- TSIG-signed queries (a secondary's SOA check) ---------------------------------

    def signed(self, data: bytes, answer, client: str | None) -> bytes | None:
        """The signed reply to a signed ordinary query; ``answer(unsigned bytes)`` gives the reply.

        The SOA a signed query gets at a zone's apex carries the newest serial
        the workers can transfer: a secondary that checks it transfers what it saw.
        """
        try:
            message = read_message(data)
            signature = tsiglib.find_tsig(data, message)
        except TransferError:
            return header_only_reply(data, RCODE_FORMERR)
        files = self.zone_above(message.qname)
        checked = self._verify(data, message, signature, files, client or "?", f"a query ({message.qname})")
        if isinstance(checked, bytes):
            return checked
        unsigned = data[:10] + struct.pack(">H", len(message.additional) - 1) + data[12:signature.start]
        reply = answer(unsigned)
        if reply is None:
            return None
        if message.qtype == QTYPE_SOA and files.index is not None and message.qname == files.origin:
            try:
                reply_message = read_message(reply)
                soa = [r for r in reply_message.answer if r.rtype == QTYPE_SOA]
                if soa:
                    reply = set_soa_serial(reply, soa[0], files.index["serial"])
            except TransferError:
                pass
        return tsiglib.sign(reply, checked, request_mac=signature.mac)[0]


@dataclass(frozen=True)
class Served:
    """What a transfer sent, for the log."""

    kind: str
    origin: str
    serials: str
    records: int
    key: str | None


def _signer(key: TsigKey | None, signature: tsiglib.Tsig | None) -> tsiglib.StreamSigner | None:
    """What signs the replies to a request signed with ``key`` (one reply or a stream); None: unsigned."""
    return tsiglib.StreamSigner(key, signature.mac) if key is not None else None


def _flags(data: bytes, rcode: int) -> int:
    # QR and AA set, opcode QUERY, RD copied, RA clear.
    return FLAG_QR | FLAG_AA | data[2] << 8 & FLAG_RD | rcode


def _reply(data: bytes, message: Message, rcode: int, signer: tsiglib.StreamSigner | None = None) -> bytes:
    """A reply with the question and no records (signed when a signer is given)."""
    wire = _pack_header(message.id, _flags(data, rcode) & ~(FLAG_AA if rcode == RCODE_REFUSED else 0),
                        1, 0, 0, 0) + data[12:message.question_end]
    return signer.sign(wire) if signer is not None else wire


def _opt(data: bytes, message: Message) -> bytes:
    """Our OPT record when the query carried one (RFC 6891 section 6.1.1), else nothing."""
    return opt_record(0) if any(r.rtype == QTYPE_OPT for r in message.additional) else b""


def _frame(data: bytes, message: Message, body: bytes, count: int, opt: bytes,
           signer: tsiglib.StreamSigner | None) -> bytes:
    wire = _pack_header(message.id, _flags(data, 0), 1, count, 0, 1 if opt else 0) \
        + data[12:message.question_end] + body + opt
    return signer.sign(wire) if signer is not None else wire


def _whole_zone(data: bytes, message: Message, files: ZoneFiles, signer: tsiglib.StreamSigner | None):
    """The newest version's bodies, as they were rendered."""
    opt = _opt(data, message)
    try:
        handles = open_version(files.folder, files.index)
    except FileNotFoundError:
        # Replaced since the index was read (twice the render time ago): read the newest.
        handles = open_version(files.folder, json.loads((files.folder / INDEX).read_text()))
    try:
        for f in handles:
            for body, count in read_chunks(f):
                yield _frame(data, message, body, count, opt, signer)
    finally:
        for f in handles:
            f.close()


def _bodies(data: bytes, message: Message, records: list[WireRecord], origin: str,
            signer: tsiglib.StreamSigner | None):
    opt = _opt(data, message)
    for body, count in pack_all(records, message.question_end - 12):
        yield _frame(data, message, body, count, opt, signer)


def _ixfr_serial(data: bytes, message: Message, origin: str) -> int | None:
    """The serial an IXFR query says the client has (the SOA in its authority section)."""
    soa = [r for r in message.authority if r.rtype == QTYPE_SOA and r.name == origin]
    if len(soa) != 1:
        return None
    try:
        return soa_serial(data, soa[0])
    except TransferError:
        return None
