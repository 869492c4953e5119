"""The fast paths: A/TXT/ANY questions under a zone, answered from byte templates.

Receivers ask a DNSBL one question per SMTP connection, almost always A (and
sometimes TXT) for a reversed address. This module reads such a query straight
from the packet and writes the answer from bytes prebuilt per snapshot
(:class:`SnapshotWire`), with no per-query dnslib objects, on two paths: the hot
path (:func:`make_hot_answer`) for the commonest query of all, and
:func:`template_answer` for any A/TXT/ANY question under a zone. Anything they
do not fully understand they leave to the general path (:mod:`rbl.dns.general`)
by returning None; tests hold the paths to the same answers.
"""

from __future__ import annotations

import re
import socket
import struct
from bisect import bisect_right
from collections.abc import Callable

from rbl.dns.counts import new_hits
from rbl.dns.keys import KEY_LABEL, KeyTable, is_key
from rbl.protocol import (
    CLASS_IN, FLAG_AA, FLAG_QR, MAX_NAME, OPT_FIXED, PLAIN_UDP_SIZE, POINTERS, QNAME_POINTER, QTYPE_A, QTYPE_ANY,
    QTYPE_OPT, QTYPE_TXT, RCODE_NXDOMAIN, name_wire, opt_record,
)
from rbl.zone.snapshot import BLOCK_SHIFT, NXDOMAIN, Snapshot, ZoneSnapshot

MAX_QUERY = 4096  # no question needs more; bigger ones are FORMERR before any parsing
MAX_UDP_REPLY = 4096  # past this, TC and TCP whatever the requester offers (RFC 6891 6.2.5)

_COUNTS = struct.Struct(">HHHH")
_TYPE_CLASS = struct.Struct(">HH")
# Bound once: Python 3.11 calls a method of an imported name through a new bound method each time.
_unpack_opt = OPT_FIXED.unpack_from
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
_LENGTHS_TO_DOTS = bytes.maketrans(b"\x01\x02\x03", b"...")
_OCTET_VALUE = {str(i).encode(): i for i in range(256)}  # a dict beats int() on bytes
# Reply flags by the query's RD and CD bits: QR, AA, RD copied; RA clear; CD copied.
_FLAGS = {rd: {cd: bytes([(FLAG_QR | FLAG_AA) >> 8 | rd, cd]) for cd in (0, 0x10)} for rd in (0, 1)}
_NXDOMAIN_FLAGS = {f: bytes([f[0], f[1] | RCODE_NXDOMAIN]) for by_cd in _FLAGS.values() for f in by_cd.values()}
_NEGATIVE_COUNTS = [_COUNTS.pack(1, 0, 1, opt) for opt in (0, 1)]
# A reversed-octet label as RFC 5782 writes it: 0-255, no leading zeros.
_OCTET_LABEL = rb"(?:\x01\d|\x02[1-9]\d|\x03(?:1\d\d|2[0-4]\d|25[0-5]))"


def txt_rdata(text: bytes) -> bytes:
    """TXT rdata: the text as character-strings of at most 255 bytes (RFC 1035 3.3.14)."""
    if not text:
        return b"\x00"
    return b"".join(bytes([len(chunk)]) + chunk for chunk in (text[i:i + 255] for i in range(0, len(text), 255)))


class ZoneWire:
    """Byte templates of one zone for the fast path, built once per snapshot."""

    __slots__ = ("zone", "origin_wire", "origin_len", "ip4_question", "ip6_question", "pair_questions", "pair_origin",
                 "a_rrs", "a_counts", "txt_head", "soa_tail", "special", "hits", "keys", "keys_open", "key_mode")

    def __init__(self, zone: ZoneSnapshot, serial: int, keys: KeyTable | None = None):
        config = zone.config
        self.zone = zone
        # Keyed zones: the keys seen in force under the zone's family, one dict shared by its sub-zones.
        self.key_mode = config.keys
        self.keys = keys if keys is not None else KeyTable()
        self.keys_open = self.keys.open(config.family) if config.keys != "off" else None
        self.origin_wire = origin = name_wire(config.origin, any_length=True)
        # Wire length of the SOA's owner: the origin, or a sub-zone's parent.
        self.origin_len = len(config.soa_owner) + 2
        # The whole hot question in one match: 4 octet labels, the origin in any case,
        # then type A, TXT or ANY and class IN.
        self.ip4_question = re.compile(
            rb"((?:" + _OCTET_LABEL + rb"){4})(?i:" + re.escape(origin) + rb")\x00([\x01\x10\xff])\x00\x01",
            re.S,
        )
        # 32 nibble labels under this zone: an IPv6 address, read without walking labels.
        self.ip6_question = re.compile(
            rb"((?:\x01[0-9a-fA-F]){32})(?i:" + re.escape(origin) + rb")\x00([\x01\x10\xff])\x00\x01",
            re.S,
        )
        ttl = struct.pack(">I", config.ttl)
        self.a_rrs, self.a_counts = _a_records(zone, config.ttl)
        self.txt_head = QNAME_POINTER + b"\x00\x10\x00\x01" + ttl
        soa = config.soa
        rdata = (name_wire(soa.mname) + name_wire(soa.rname)
                 + struct.pack(">IIIII", serial, soa.refresh, soa.retry, soa.expire, config.negative_ttl))
        # RFC 2308: the SOA in a negative answer lives min(SOA TTL, SOA minimum).
        neg_ttl = min(soa.ttl, config.negative_ttl)
        self.soa_tail = b"\x00\x06\x00\x01" + struct.pack(">IH", neg_ttl, len(rdata)) + rdata
        self.pair_questions: tuple = ()
        self.pair_origin = None
        if config.serves == "tenant":
            # Pair names start with an identity: a bare address there is an empty non-terminal, which
            # the address regexes would misread. The pair regexes take an identity's labels (checked
            # by _identity) above 4 octets or 32 nibbles; the zone's own lookup answers the rest.
            self.ip4_question = self.ip6_question = _NEVER
            tail = rb")(?i:" + re.escape(origin) + rb")\x00([\x01\x10\xff])\x00\x01"
            octet = b"(" + _OCTET_LABEL + b")"
            # IPv6 first: the IPv4 regex's scan over a name of 32 nibbles costs several microseconds.
            self.pair_questions = (
                (6, re.compile(rb"([\x01-\x3f].+?)((?:\x01[0-9a-fA-F]){32}" + tail, re.S).match),
                (4, re.compile(rb"([\x01-\x3f].+?)" + octet * 4 + tail[1:], re.S).match),
            )
            # Tried before either, so that a query for another zone costs one short search.
            self.pair_origin = re.compile(rb"(?i:" + re.escape(origin) + rb")\x00", re.S).search
        if config.keys == "required":
            # A keyless name is an error answer (the general path's); keyed ones go by _question.
            self.ip4_question = self.ip6_question = _NEVER
            self.pair_questions = ()
        # Names with records of their own (apex, glue hosts): the general path answers them.
        self.special = {b""} | {
            host[: -len(config.origin) - 1].encode("ascii")
            for host in config.glue
            if host != config.origin
        }
        # Queries answered by the fast paths, by lookup result (see rbl.dns.counts).
        self.hits = new_hits(zone.answers)

    def txt_rr(self, index: int, rel: bytes) -> bytes | None:
        """The TXT record of a listed name, or None when its listing has no TXT."""
        parts = self.zone.answers[index].txt
        if parts is None:
            return None
        text = parts[0] if len(parts) == 1 else self.zone.subject_text(rel).join(parts)
        rdata = txt_rdata(text.encode("ascii", "replace"))
        return self.txt_head + struct.pack(">H", len(rdata)) + rdata


_NEVER = re.compile(rb"(?!)")
_A_RECORDS: dict[tuple[str, int], tuple[list[bytes], list[int]]] = {}


def _a_records(zone: ZoneSnapshot, ttl_seconds: int) -> tuple[list[bytes], list[int]]:
    """Each answer's A records as bytes, reused while the answer table is unchanged."""
    key = (zone.answers_digest, ttl_seconds)
    if zone.answers_digest and key in _A_RECORDS:
        return _A_RECORDS[key]
    ttl = struct.pack(">I", ttl_seconds)
    rrs: list[bytes] = [b""]
    counts: list[int] = [0]
    for answer in zone.answers[1:]:
        rrs.append(b"".join(
            QNAME_POINTER + b"\x00\x01\x00\x01" + ttl + b"\x00\x04" + socket.inet_aton(code)
            for code in answer.codes
        ))
        counts.append(len(answer.codes))
    if zone.answers_digest:
        _A_RECORDS[key] = (rrs, counts)
        while len(_A_RECORDS) > 8:
            del _A_RECORDS[next(iter(_A_RECORDS))]
    return rrs, counts


# The hot path: a query's bytes in, the reply's bytes out, or None for the slower paths.
HotAnswer = Callable[[bytes], bytes | None]


class SnapshotWire(dict):
    """A snapshot's byte templates: each zone's :class:`ZoneWire` by origin, and ``hot``, the hot
    path over them (:func:`make_hot_answer`; None when no zone can take it)."""

    hot: HotAnswer | None = None
    tenants: tuple[ZoneWire, ...] = ()  # the tenant zones', whose pair names template_answer tries first


def build_snapshot_wire(snapshot: Snapshot, keys: KeyTable | None = None) -> SnapshotWire:
    keys = keys if keys is not None else KeyTable()
    wires = SnapshotWire((origin, ZoneWire(zone, snapshot.serial, keys)) for origin, zone in snapshot.zones.items())
    wires.hot = make_hot_answer(list(wires.values()))
    wires.tenants = tuple(w for w in wires.values() if w.pair_questions)
    return wires


# The hot query: one question, no answer or authority records, no or one OPT record.
_PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_OPT_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x01"
# An octet label as its wire bytes (length and digits): the value, one dict lookup.
_LABEL_VALUE = {bytes([len(str(i))]) + str(i).encode(): i for i in range(256)}
_HOT_LIMIT = PLAIN_UDP_SIZE - 12 - 4 - MAX_NAME - 11  # A records that fit any UDP reply beside the question


def _hot_heads(count: int) -> list[bytes | None]:
    """Flags and counts of a reply with ``count`` answers (-1: NXDOMAIN with the SOA),
    indexed by RD | CD | (OPT present << 1)."""
    heads: list[bytes | None] = [None] * 20
    for rd in (0, 1):
        for cd in (0, 0x10):
            for opt in (0, 1):
                if count < 0:
                    heads[rd | cd | opt << 1] = _NXDOMAIN_FLAGS[_FLAGS[rd][cd]] + _NEGATIVE_COUNTS[opt]
                else:
                    heads[rd | cd | opt << 1] = _FLAGS[rd][cd] + _COUNTS.pack(1, count, 0, opt)
    return heads


_NEGATIVE_HEADS = _hot_heads(-1)


def _hot_txt(wire: ZoneWire, index: int) -> bytes | tuple[bytes, ...] | bool:
    """An answer's TXT for the hot path: the whole record when fixed, the template's
    pieces when the subject goes in, False when the answer has no TXT."""
    parts = wire.zone.answers[index].txt
    if parts is None:
        return False
    if len(parts) == 1:
        return wire.txt_rr(index, b"")
    return tuple(part.encode("ascii", "replace") for part in parts)


_OPT_BY_DO = {0: opt_record(0), 0x80: opt_record(1)}


def make_hot_answer(wires: list[ZoneWire]) -> HotAnswer | None:
    """The hot path over these zones (None when every zone has access rules).

    It gives the reply to the commonest query there is, or None to try the
    other paths: an A or TXT question for four reversed octets under a zone
    without access rules, class IN, with no EDNS or a bare OPT (version 0, no
    options); in a keyed zone, with a key in force already seen (else the
    slower paths check it). Everything it needs is bound once per snapshot, so
    a query costs a regex match, a bisect and one join, and a key one
    dictionary lookup more. The general path gives the same answers (tests
    hold them to it, listed A answers byte for byte).
    """
    zones = []
    for wire in wires:
        zone = wire.zone
        if zone.config.access or zone.config.serves == "tenant":
            continue
        # The key label, when the zone reads one: present, or (optional) absent; "()" never matches one.
        key_part = b"(" + KEY_LABEL + b")?" if zone.config.keys != "off" else b"()"
        pattern = re.compile(
            b"(" + _OCTET_LABEL + b")(" + _OCTET_LABEL + b")(" + _OCTET_LABEL + b")(" + _OCTET_LABEL + b")"
            + key_part + b"(?i:" + re.escape(wire.origin_wire) + rb")\x00([\x01\x10])\x00\x01"
            # A bare OPT: root owner, type 41, any payload size, extended rcode 0, version 0, DO or not, no data.
            + rb"(?:\Z|\x00\x00\x29..\x00\x00([\x00\x80])\x00\x00\x00\Z)", re.S)
        answers: list = [None] * len(wire.a_rrs)
        heads_by_count: dict[int, list] = {}
        for index in range(1, len(wire.a_rrs)):
            body = wire.a_rrs[index]
            if len(body) <= _HOT_LIMIT:
                count = wire.a_counts[index]
                heads = heads_by_count.get(count) or heads_by_count.setdefault(count, _hot_heads(count))
                answers[index] = (heads, body)
        zones.append((pattern.match, zone.ip4_starts, zone.ip4_values, zone.ip4_blocks, answers,
                      wire.origin_len, wire.soa_tail, {}, wire, wire.hits, wire.keys_open,
                      zone.config.keys == "required"))
    if not zones:
        return None
    label_value, negative_heads, pointers, opts = _LABEL_VALUE, _NEGATIVE_HEADS, POINTERS, _OPT_BY_DO
    plain, with_opt = _PLAIN_COUNTS, _OPT_COUNTS

    one = _hot_heads(1)

    def hot_answer(data: bytes) -> bytes | None:
        counts = data[4:12]
        if (counts != plain and counts != with_opt) or data[2] & 0xF8:
            return None  # (a packet shorter than a header has no counts either)
        for match, starts, values, blocks, answers, origin_len, soa_tail, txts, wire, hits, keys_open, required in zones:
            m = match(data, 12)
            if m is None:
                continue
            d, c, b, a, label, qtype, do = m.groups()
            if (do is None) != (counts == plain):
                return None  # an OPT the header does not count, or a count with no OPT
            if label:
                cell = keys_open.get(label[1:].lower())
                if cell is None:
                    return None  # a key not seen yet, revoked, or past its quota: the slower paths say which
            elif required:
                return None
            value = label_value[a] << 24 | label_value[b] << 16 | label_value[c] << 8 | label_value[d]
            block = value >> BLOCK_SHIFT
            result = values[bisect_right(starts, value, blocks[block], blocks[block + 1] + 1) - 1]
            key = data[2] & 1 | data[3] & 0x10
            if do is None:
                question, opt = data[12:], b""
            else:
                question, opt, key = data[12:m.start(7) - 7], opts[do[0]], key | 2
            if result and qtype == b"\x10":
                txt = txts.get(result)
                if txt is None:
                    txt = txts[result] = _hot_txt(wire, result)
                if txt is False:
                    return None  # a listing without TXT: NODATA, the general path's job
                if txt.__class__ is tuple:
                    text = b".".join((a[1:], b[1:], c[1:], d[1:])).join(txt)
                    if len(text) > 255:
                        return None
                    txt = wire.txt_head + (len(text) + 1).to_bytes(2, "big") + bytes((len(text),)) + text
                reply = b"".join((data[:2], one[key], question, txt, opt))
                if len(reply) > PLAIN_UDP_SIZE:
                    return None
                hits[result] += 1
                if label:
                    cell[0] += 1  # a key's count: only where this path answers, or the slower one counts it
                return reply
            if result:
                found = answers[result]
                if found is None:
                    return None
                hits[result] += 1
                if label:
                    cell[0] += 1
                return b"".join((data[:2], found[0][key], question, found[1], opt))
            if m.end(4) == 20:
                return None  # "1.0.0.2" is also the nibble path to 2001::/16: the slower path decides
            hits[0] += 1
            if label:
                cell[0] += 1
            return b"".join((data[:2], negative_heads[key], question,
                             pointers[len(question) - 4 - origin_len + 12], soa_tail, opt))
        return None

    return hot_answer


def template_answer(data: bytes, snapshot: Snapshot, wires: SnapshotWire, udp: bool) -> bytes | None:
    """The reply to a plain A/TXT/ANY query under a zone, from its templates; None for the general path.

    Every such query is answered here, those the hot path takes too: the
    responder tries the hot path first and this for what it leaves.
    """
    # One question, no answer or authority records, at most one additional (OPT);
    # QR clear and opcode QUERY.
    if len(data) < 17 or data[2] & 0xF8 or data[4:10] != _ONE_QUESTION or data[10] or data[11] > 1:
        return None
    for wire in wires.tenants:
        if wire.pair_origin(data, 12) is None:
            continue
        for family, match in wire.pair_questions:
            m = match(data, 12)
            if m is not None:
                return _pair_reply(data, wire, m, family, udp)
    for wire in wires.values():
        match = wire.ip4_question.match(data, 12)
        if match is not None:
            if wire.zone.config.access:
                return None  # who asks matters here: the general path knows the client
            # The common case, one regex: reversed octets under this zone, A/TXT/ANY, class IN.
            rel = match[1].translate(_LENGTHS_TO_DOTS)[1:]
            d, c, b, a = rel.split(b".")
            octet = _OCTET_VALUE
            result = wire.zone.ip4(octet[a] << 24 | octet[b] << 16 | octet[c] << 8 | octet[d])
            if not result and len(rel) == 7:
                result = wire.zone.find(rel)  # "1.0.0.2" is also a nibble path
            qend = match.end()
            return _reply(data, wire, rel, result, match[2][0], qend, udp)
        match = wire.ip6_question.match(data, 12)
        if match is not None:
            if wire.zone.config.access:
                return None
            nibbles = match[1][1::2]
            rel = match[1].translate(_LENGTHS_TO_DOTS)[1:].lower()
            result = wire.zone.ip6(int(nibbles[::-1], 16))
            return _reply(data, wire, rel, result, match[2][0], match.end(), udp)
    question = _question(data, snapshot, wires)
    if question is None:
        return None
    wire, rel, qtype, qend, cell = question
    reply = _reply(data, wire, rel, wire.zone.find(rel), qtype, qend, udp)
    if reply is not None and cell is not None:
        cell[0] += 1  # a key's count
    return reply


def _identity(wire_labels: bytes) -> tuple[bytes, int] | None:
    """A name's labels from the wire as lowercase dotted text, and its last label's length; None
    when they are not labels (the regex matched across the end of the name)."""
    dotted = bytearray(wire_labels)
    end = len(dotted)
    pos = last = labels = 0
    while pos < end:
        length = dotted[pos]
        if not 0 < length <= 63:
            return None
        dotted[pos] = 46  # "."
        last, pos, labels = length, pos + 1 + length, labels + 1
    if pos != end or dotted.count(46) != labels:
        return None  # past the end of the name, or a dot inside a label
    text = bytes(dotted[1:]).lower()
    return text, last


def _pair_reply(data: bytes, wire: ZoneWire, m: re.Match, family: int, udp: bool) -> bytes | None:
    """The reply to an (identity, address) name of a tenant zone (see rbl.zone.tenant)."""
    found = _identity(m[1])
    qend = m.end()
    if found is None or qend - 16 > MAX_NAME or wire.zone.config.access:
        return None  # the general path: a malformed name, or one whose answer depends on who asks
    identity, top = found
    zone = wire.zone
    qtype = m.group(m.lastindex)[0]
    rel = b""  # only a TXT or a lookup by name needs the name
    if family == 4:
        d, c, b, a = m.group(2, 3, 4, 5)
        if qtype != QTYPE_A or top < 2:
            rel = b".".join((identity, d[1:], c[1:], b[1:], a[1:]))
        if top < 2:
            result = zone.find(rel)  # a one-character top label may continue a nibble path: find decides
        else:
            value = _LABEL_VALUE
            result = zone.pair4(identity, value[a] << 24 | value[b] << 16 | value[c] << 8 | value[d])
    else:
        nibbles = m[2]
        result = zone.pair6(identity, int(nibbles[1::2][::-1], 16)) if top >= 2 else None
        if qtype != QTYPE_A or result is None:
            rel = identity + nibbles.translate(_LENGTHS_TO_DOTS).lower()
        if result is None:
            result = zone.find(rel)
    return _reply(data, wire, rel, result, qtype, qend, udp)


def _question(data: bytes, snapshot: Snapshot, wires: SnapshotWire) -> tuple | None:
    """(zone templates, name below the origin and its key, qtype, end of question, the key's count
    cell or None) for any A/TXT/ANY name; None when the key is missing or not in force."""
    labels = []
    pos = 12
    end = len(data)
    while True:
        if pos >= end:
            return None
        length = data[pos]
        if length == 0:
            break
        if length > 63:
            return None
        label = data[pos + 1: pos + 1 + length]
        if b"." in label or len(label) != length:
            return None
        labels.append(label)
        pos += 1 + length
    qend = pos + 5
    if qend > end or pos - 11 > MAX_NAME:
        return None
    qtype, qclass = _TYPE_CLASS.unpack_from(data, pos + 1)
    if qclass != CLASS_IN or (qtype != QTYPE_A and qtype != QTYPE_TXT and qtype != QTYPE_ANY):
        return None
    found = snapshot.zone_for(b".".join(labels).lower())
    if found is None:
        return None
    zone, rel = found
    wire = wires[zone.origin]
    cell = None
    if wire.key_mode != "off":
        head, _, last = rel.rpartition(b".")
        if is_key(last):
            cell, _why = wire.keys.check(last, zone.config.family)
            if cell is None or not head:
                return None  # the error answer (or the key's own name): the general path's
            rel = head
        elif wire.key_mode == "required":
            return None
    if rel in wire.special or zone.config.access:
        return None
    return wire, rel, qtype, qend, cell


def _reply(data: bytes, wire: ZoneWire, rel: bytes, result: int, qtype: int, qend: int, udp: bool) -> bytes | None:
    end = len(data)
    opt = b""
    limit = PLAIN_UDP_SIZE
    if data[11]:
        # Exactly one OPT record, version 0, nothing after it; options are ignored.
        if qend + 11 > end or data[qend] != 0:
            return None
        otype, size, _ext, version, flags, rdlen = _unpack_opt(data, qend + 1)
        if otype != QTYPE_OPT or version or qend + 11 + rdlen != end:
            return None
        opt = opt_record(flags & 0x8000)
        limit = min(max(size, PLAIN_UDP_SIZE), MAX_UDP_REPLY)
    elif qend != end:
        return None
    flags = _FLAGS[data[2] & 0x01][data[3] & 0x10]
    with_opt = 1 if opt else 0
    if result > 0:
        if qtype == QTYPE_A:
            body = wire.a_rrs[result]
            count = wire.a_counts[result]
        else:
            txt = wire.txt_rr(result, rel)
            if txt is None:
                return None  # a listing without TXT: NODATA or A only, the general path's job
            if qtype == QTYPE_TXT:
                body, count = txt, 1
            else:
                body, count = wire.a_rrs[result] + txt, wire.a_counts[result] + 1
        reply = b"".join((data[:2], flags, _COUNTS.pack(1, count, 0, with_opt), data[12:qend], body, opt))
    else:
        if result == NXDOMAIN:
            flags = _NXDOMAIN_FLAGS[flags]
        # The SOA's owner is the origin: a pointer to where it starts in the question.
        pointer = POINTERS[qend - 4 - wire.origin_len]
        reply = b"".join((data[:2], flags, _NEGATIVE_COUNTS[with_opt], data[12:qend], pointer, wire.soa_tail, opt))
    if udp and len(reply) > limit:
        return None  # the general path truncates
    wire.hits[result] += 1  # NODATA is -1: the list's extra last slot
    return reply
