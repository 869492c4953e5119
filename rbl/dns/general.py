"""The general answering path, through dnslib: everything the fast path leaves.

SOA and NS at the apex, glue, other query types, EDNS edge cases, truncation,
odd or malformed packets. Slow but complete; the fast paths in
:mod:`rbl.dns.wire` must answer exactly as this does for what they handle.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from dnslib import AAAA, EDNS0, NS, RR, SOA, TXT, A, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from rbl.dns.counts import QueryCounts
from rbl.dns.keys import OK, OVER, OVER_CODE, REQUIRED, RESOLVER, UNKNOWN, KeyTable, error_text, is_key
from rbl.dns.wire import MAX_QUERY, MAX_UDP_REPLY
from rbl.protocol import (
    CLASS_IN, MAX_NAME, OUR_UDP_SIZE, PLAIN_UDP_SIZE, QTYPE_A, QTYPE_AAAA, QTYPE_ANY, QTYPE_AXFR, QTYPE_IXFR, QTYPE_NS,
    QTYPE_OPT, QTYPE_SOA, QTYPE_TSIG, QTYPE_TXT, RCODE_BADVERS, RCODE_FORMERR, RCODE_NOTIMP, RCODE_NXDOMAIN,
    RCODE_REFUSED, header_only_reply,
)
from rbl.zone.config import ACCESS_CODE, ERROR_TTL
from rbl.zone.snapshot import NXDOMAIN, Snapshot, ZoneSnapshot

if TYPE_CHECKING:
    from rbl.transfer.respond import TransferResponder


def general_answer(data: bytes, snapshot: Snapshot, udp: bool, client: str | None = None,
                   counts: QueryCounts | None = None, transfers: TransferResponder | None = None,
                   keys: KeyTable | None = None, resolver: bool = False) -> bytes | None:
    """The reply to any packet, or None when it deserves none (too short, or a response).

    With ``counts``, the query is counted there by zone, rcode and the codes of
    the name's answer, as the fast paths count theirs. A query signed with TSIG
    goes through ``transfers``, which checks the signature and signs the reply
    (without it, the signature is ignored). ``keys`` checks the access keys of
    keyed zones (none: every key is unknown); ``resolver`` says the client is a
    public resolver (rbl.policy.resolvers), whose keyless queries are refused.
    """
    reply, rcode, outcome = _general(data, snapshot, udp, client, transfers, keys, resolver)
    if counts is not None and reply is not None:
        counts.add((outcome[0], rcode, outcome[1]))
    return reply


_NO_ZONE = ("", "")


def _general(data: bytes, snapshot: Snapshot, udp: bool, client: str | None,
             transfers: TransferResponder | None = None, keys: KeyTable | None = None,
             resolver: bool = False) -> tuple[bytes | None, int, tuple]:
    """The reply, its rcode and (zone origin, codes of the answer) for counting."""
    if len(data) < 12 or data[2] & 0x80:
        return None, 0, _NO_ZONE
    if data[2] & 0x78:  # opcode other than QUERY
        return header_only_reply(data, RCODE_NOTIMP), RCODE_NOTIMP, _NO_ZONE
    # A query has one question and at most OPT and TSIG: anything bigger is an attack
    # on the parser (chains of compression pointers cost dnslib seconds).
    qd, an, ns, ar = struct.unpack_from(">HHHH", data, 4)
    if qd != 1 or an or ns or ar > 2 or len(data) > MAX_QUERY:
        return header_only_reply(data, RCODE_FORMERR), RCODE_FORMERR, _NO_ZONE
    try:
        query = DNSRecord.parse(data)
    except Exception:  # dnslib raises several kinds for broken packets
        return header_only_reply(data, RCODE_FORMERR), RCODE_FORMERR, _NO_ZONE
    if transfers is not None and query.ar and query.ar[-1].rtype == QTYPE_TSIG:
        reply = transfers.signed(
            data, lambda unsigned: general_answer(unsigned, snapshot, udp, client, keys=keys, resolver=resolver), client)
        return reply, reply[3] & 0x0F if reply and len(reply) > 3 else 0, _NO_ZONE
    labels = query.questions[0].qname.label
    if any(len(label) > 63 for label in labels) or sum(len(label) + 1 for label in labels) + 1 > MAX_NAME:
        return header_only_reply(data, RCODE_FORMERR), RCODE_FORMERR, _NO_ZONE
    opts = [rr for rr in query.ar if rr.rtype == QTYPE_OPT]
    if len(opts) > 1:
        return header_only_reply(data, RCODE_FORMERR), RCODE_FORMERR, _NO_ZONE
    opt = opts[0] if opts else None
    question = query.questions[0]
    reply = DNSRecord(
        DNSHeader(id=query.header.id, qr=1, aa=1, ra=0, rd=query.header.rd, cd=query.header.cd),
        q=DNSQuestion(question.qname, question.qtype, question.qclass),
    )
    limit = PLAIN_UDP_SIZE
    if opt is not None:
        do_bit = "do" if opt.ttl & 0x8000 else ""
        if (opt.ttl >> 16) & 0xFF:  # EDNS version other than 0
            reply.add_ar(EDNS0(udp_len=OUR_UDP_SIZE, flags=do_bit, ext_rcode=RCODE_BADVERS >> 4))
            reply.header.aa = 0
            return bytes(reply.pack()), RCODE_BADVERS, _NO_ZONE
        limit = min(max(opt.rclass, PLAIN_UDP_SIZE), MAX_UDP_REPLY)
    outcome = _answer(reply, question, snapshot, client, keys, resolver)
    if opt is not None:
        reply.add_ar(EDNS0(udp_len=OUR_UDP_SIZE, flags=do_bit))
    packed = reply.pack()
    if udp and len(packed) > limit:
        # RFC 2181 9: drop whole sections, set TC; the client retries over TCP.
        reply.rr, reply.auth = [], []
        reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE_OPT]
        reply.header.tc = 1
        packed = reply.pack()
    return bytes(packed), reply.header.rcode, outcome


def _locate(snapshot: Snapshot, qname: DNSLabel) -> tuple[ZoneSnapshot, tuple[bytes, ...], int] | None:
    labels = tuple(label.lower() for label in qname.label)
    for size in range(len(labels), 0, -1):
        zone = snapshot.zones.get(b".".join(labels[-size:]))
        if zone is not None and not any(b"." in label for label in labels[-size:]):
            return zone, labels[:-size], size
    return None


def _answer(reply: DNSRecord, question: DNSQuestion, snapshot: Snapshot, client: str | None,
            keys: KeyTable | None = None, resolver: bool = False) -> tuple[str, str]:
    """Fill in the reply; (zone origin, codes of the name's answer) for counting."""
    if question.qclass != CLASS_IN:
        reply.header.rcode = RCODE_REFUSED
        reply.header.aa = 0
        return _NO_ZONE
    found = _locate(snapshot, question.qname)
    if found is None:
        reply.header.rcode = RCODE_REFUSED
        reply.header.aa = 0
        return _NO_ZONE
    zone, rel_labels, origin_size = found
    config = zone.config
    qname, qtype = question.qname, question.qtype
    # A sub-zone (cloud.bl.example) lives under its parent's SOA and NS.
    apex_size = origin_size - (config.origin.count(".") - config.soa_owner.count("."))
    origin = DNSLabel(qname.label[-apex_size:])
    if qtype in (QTYPE_AXFR, QTYPE_IXFR):
        reply.header.rcode = RCODE_REFUSED
        return config.origin, ""
    if not rel_labels and config.apex:
        reply.add_auth(_negative_soa(zone, origin, snapshot.serial))  # an empty non-terminal of the parent
        return config.origin, ""
    if not rel_labels:
        if qtype in (QTYPE_SOA, QTYPE_ANY):
            reply.add_answer(_soa(zone, origin, snapshot.serial, config.soa.ttl))
        if qtype in (QTYPE_NS, QTYPE_ANY):
            for host in config.ns:
                reply.add_answer(RR(qname, QTYPE_NS, ttl=config.ns_ttl, rdata=NS(host)))
            for host in config.ns:
                for rr in _glue(config, host, QTYPE_ANY, DNSLabel(host)):
                    reply.add_ar(rr)
        if not reply.rr:
            reply.add_auth(_negative_soa(zone, origin, snapshot.serial))
        return config.origin, ""
    rel = b".".join(rel_labels)
    action = config.access_for(client)
    if action == "refuse":
        reply.header.rcode = RCODE_REFUSED
        return config.origin, ""
    if action == "error" and qtype in (QTYPE_A, QTYPE_TXT, QTYPE_ANY):
        # DESIGN section 3: the querier is not allowed; never mistaken for a listing.
        if qtype in (QTYPE_A, QTYPE_ANY):
            reply.add_answer(RR(qname, QTYPE_A, ttl=config.negative_ttl, rdata=A(ACCESS_CODE)))
        if qtype in (QTYPE_TXT, QTYPE_ANY):
            text = f"queries from {client} are not allowed by {config.origin}".encode("ascii", "replace")
            reply.add_answer(RR(qname, QTYPE_TXT, ttl=config.negative_ttl, rdata=TXT([text])))
        return config.origin, ACCESS_CODE
    host = rel.decode("ascii", "replace") + "." + config.origin
    if host in config.glue and not any(b"." in label for label in rel_labels):
        for rr in _glue(config, host, qtype, qname):
            reply.add_answer(rr)
        if not reply.rr:
            reply.add_auth(_negative_soa(zone, origin, snapshot.serial))
        return config.origin, ""
    cell = None
    if config.keys != "off" or resolver:
        why = OK
        if config.keys != "off" and is_key(rel_labels[-1]):
            cell, why = keys.check(rel_labels[-1], config.family) if keys is not None else (None, UNKNOWN)
            rel_labels = rel_labels[:-1]
        elif config.keys == "required":
            why = REQUIRED
        if why == OK and cell is None and resolver:
            why = RESOLVER  # a keyless query through a public resolver (a key says who asks: it is answered)
        if why != OK and qtype in (QTYPE_A, QTYPE_TXT, QTYPE_ANY):
            return _key_error(reply, qname, config, why, keys, _key_label(question))
        if why != OK:
            reply.add_auth(_negative_soa(zone, origin, snapshot.serial))  # no such record; the error is for A/TXT
            return config.origin, ""
        if not rel_labels:  # KEY.bl.example itself: it exists, with nothing of its own
            reply.add_auth(_negative_soa(zone, origin, snapshot.serial))
            cell[0] += 1
            return config.origin, ""
        rel = b".".join(rel_labels)
    result = zone.find(rel) if not any(b"." in label for label in rel_labels) else NXDOMAIN
    if cell is not None:
        cell[0] += 1  # a key's count: answered under it
    if result > 0:
        answer = zone.answers[result]
        if qtype in (QTYPE_A, QTYPE_ANY):
            for code in answer.codes:
                reply.add_answer(RR(qname, QTYPE_A, ttl=config.ttl, rdata=A(code)))
        text = answer.text(zone.subject_text(rel)) if qtype in (QTYPE_TXT, QTYPE_ANY) else None
        if text is not None:
            data = text.encode("ascii", "replace")
            chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
            reply.add_answer(RR(qname, QTYPE_TXT, ttl=config.ttl, rdata=TXT(chunks)))
        if not reply.rr:
            reply.add_auth(_negative_soa(zone, origin, snapshot.serial))
        return config.origin, ",".join(answer.codes)
    if result == NXDOMAIN:
        reply.header.rcode = RCODE_NXDOMAIN
    reply.add_auth(_negative_soa(zone, origin, snapshot.serial))
    return config.origin, ""


def _key_label(question: DNSQuestion) -> bytes:
    """The key label of a keyed name as asked (for the quota in an error's TXT)."""
    labels = question.qname.label
    return next((label for label in reversed(labels) if is_key(label)), b"")


def _key_error(reply: DNSRecord, qname: DNSLabel, config, why: int, keys: KeyTable | None,
               label: bytes) -> tuple[str, str]:
    """127.255.255.254 (or .255: past its quota) with a TXT that says why, for a short time."""
    code = OVER_CODE if why == OVER else ACCESS_CODE
    qtype = reply.q.qtype
    ttl = min(ERROR_TTL, config.negative_ttl)
    if qtype in (QTYPE_A, QTYPE_ANY):
        reply.add_answer(RR(qname, QTYPE_A, ttl=ttl, rdata=A(code)))
    if qtype in (QTYPE_TXT, QTYPE_ANY):
        quota = keys.quota_text(label) if why == OVER and keys is not None else ""
        text = error_text(why, config.origin, config.key_info, quota).encode("ascii", "replace")
        reply.add_answer(RR(qname, QTYPE_TXT, ttl=ttl, rdata=TXT([text[i:i + 255] for i in range(0, len(text), 255)])))
    return config.origin, code


def _glue(config, host: str, qtype: int, owner: DNSLabel) -> list[RR]:
    out = []
    for address in config.glue.get(host, ()):
        if ":" in address and qtype in (QTYPE_AAAA, QTYPE_ANY):
            out.append(RR(owner, QTYPE_AAAA, ttl=config.ns_ttl, rdata=AAAA(address)))
        elif ":" not in address and qtype in (QTYPE_A, QTYPE_ANY):
            out.append(RR(owner, QTYPE_A, ttl=config.ns_ttl, rdata=A(address)))
    return out


def _soa(zone: ZoneSnapshot, origin: DNSLabel, serial: int, ttl: int) -> RR:
    soa = zone.config.soa
    times = (serial, soa.refresh, soa.retry, soa.expire, zone.config.negative_ttl)
    return RR(origin, QTYPE_SOA, ttl=ttl, rdata=SOA(soa.mname, soa.rname, times))


def _negative_soa(zone: ZoneSnapshot, origin: DNSLabel, serial: int) -> RR:
    # RFC 2308 section 5: negative answers live min(SOA TTL, SOA minimum).
    return _soa(zone, origin, serial, min(zone.config.soa.ttl, zone.config.negative_ttl))
