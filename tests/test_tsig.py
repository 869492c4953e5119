"""TSIG (RFC 8945) as rbl signs and checks it, held to dnspython's implementation both ways."""

from __future__ import annotations

import base64
import time

import dns.message
import dns.name
import dns.rcode
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.transfer import tsig
from rbl.errors import TransferError
from rbl.zone.config import TSIG_ALGORITHMS, TsigKey

SECRET = b"0123456789abcdef0123456789abcdef"
KEY = TsigKey("rbl-xfr", "hmac-sha256", SECRET)


def keyring(key: TsigKey) -> dict:
    return dns.tsigkeyring.from_text({key.name: (key.algorithm, base64.b64encode(key.secret).decode())})


def signed_query(key: TsigKey, name: str = "bl.example", rdtype: str = "SOA") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    query.use_tsig(keyring(key), keyname=key.name, algorithm=key.algorithm)
    return query


def test_a_query_dnspython_signs_checks_out_and_a_tampered_one_does_not():
    query = signed_query(KEY)
    wire = query.to_wire()
    found = tsig.find_tsig(wire)
    assert found is not None and found.key_name == "rbl-xfr" and found.algorithm == "hmac-sha256"
    assert tsig.verify(wire, found, {"rbl-xfr": KEY}) == KEY
    tampered = wire[:13] + bytes([wire[13] ^ 0x20]) + wire[14:]  # the question's name, in another case
    with pytest.raises(tsig.TsigFailure) as caught:
        tsig.verify(tampered, tsig.find_tsig(tampered), {"rbl-xfr": KEY})
    assert caught.value.error == tsig.BADSIG


def test_unknown_key_wrong_secret_and_skewed_clock():
    wire = signed_query(KEY).to_wire()
    found = tsig.find_tsig(wire)
    with pytest.raises(tsig.TsigFailure) as caught:
        tsig.verify(wire, found, {"other": TsigKey("other", "hmac-sha256", SECRET)})
    assert caught.value.error == tsig.BADKEY
    with pytest.raises(tsig.TsigFailure) as caught:
        tsig.verify(wire, found, {"rbl-xfr": TsigKey("rbl-xfr", "hmac-sha512", SECRET)})
    assert caught.value.error == tsig.BADKEY  # the algorithm is part of the key
    wrong = TsigKey("rbl-xfr", "hmac-sha256", b"x" * 32)
    with pytest.raises(tsig.TsigFailure) as caught:
        tsig.verify(wire, found, {"rbl-xfr": wrong})
    assert caught.value.error == tsig.BADSIG
    assert "x" * 16 not in str(caught.value) and SECRET.decode() not in str(caught.value)
    with pytest.raises(tsig.TsigFailure) as caught:
        tsig.verify(wire, found, {"rbl-xfr": KEY}, now=time.time() + tsig.FUDGE + 5)
    assert caught.value.error == tsig.BADTIME


def test_an_unsigned_message_has_no_tsig_and_a_tsig_must_come_last():
    assert tsig.find_tsig(dns.message.make_query("bl.example", "SOA").to_wire()) is None
    query = signed_query(KEY)
    wire = query.to_wire()
    # One more additional record after the TSIG.
    extra = b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x7f\x00\x00\x01"
    moved = wire[:10] + (int.from_bytes(wire[10:12], "big") + 1).to_bytes(2, "big") + wire[12:] + extra
    with pytest.raises(TransferError, match="not the last record"):
        tsig.find_tsig(moved)


def test_a_reply_rbl_signs_is_valid_for_dnspython():
    query = signed_query(KEY)
    found = tsig.find_tsig(query.to_wire())
    unsigned = dns.message.make_response(dns.message.make_query("bl.example", "SOA"))
    unsigned.id = query.id
    signed, mac = tsig.sign(unsigned.to_wire(), KEY, request_mac=found.mac)
    parsed = dns.message.from_wire(signed, keyring=keyring(KEY), request_mac=query.mac)
    assert parsed.had_tsig and parsed.rcode() == dns.rcode.NOERROR
    assert len(mac) == 32


def test_an_error_reply_carries_the_tsig_error_unsigned():
    query = signed_query(KEY)
    wire = query.to_wire()
    found = tsig.find_tsig(wire)
    head = dns.message.make_response(dns.message.make_query("bl.example", "SOA"))
    head.id = query.id
    head.set_rcode(dns.rcode.NOTAUTH)
    reply = tsig.error_reply(head.to_wire(), found, tsig.BADKEY)
    with pytest.raises(dns.tsig.PeerBadKey):
        dns.message.from_wire(reply, keyring=keyring(KEY), request_mac=query.mac)


def test_a_stream_rbl_signs_is_valid_message_by_message_for_dnspython():
    """RFC 8945 5.3.1: the first message with the request's MAC, each next one with the previous MAC."""
    query = dns.message.make_query("bl.example", "AXFR")
    query.use_tsig(keyring(KEY), keyname=KEY.name)
    request = query.to_wire()
    signer = tsig.StreamSigner(KEY, tsig.find_tsig(request).mac)
    ctx = None
    for i in range(5):
        reply = dns.message.make_response(dns.message.make_query("bl.example", "AXFR"))
        reply.id = query.id
        reply.answer.append(dns.rrset.from_text(f"host{i}.bl.example.", 60, "IN", "A", f"127.0.0.{i + 1}"))
        parsed = dns.message.from_wire(signer.sign(reply.to_wire()), keyring=keyring(KEY), request_mac=query.mac,
                                       xfr=True, origin=dns.name.from_text("bl.example"), tsig_ctx=ctx, multi=True)
        assert parsed.had_tsig
        ctx = parsed.tsig_ctx


@settings(max_examples=60, deadline=None)
@given(
    algorithm=st.sampled_from(TSIG_ALGORITHMS),
    secret=st.binary(min_size=16, max_size=64),
    name=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z0-9]{1,10}){0,2}", fullmatch=True),
    qname=st.from_regex(r"([a-z0-9]{1,10}\.){0,3}bl\.example", fullmatch=True),
    flip=st.integers(min_value=0, max_value=10_000),
)
def test_sign_and_verify_agree_with_dnspython_for_any_key(algorithm, secret, name, qname, flip):
    key = TsigKey(name, algorithm, secret)
    # dnspython signs, rbl checks.
    query = signed_query(key, qname)
    wire = query.to_wire()
    found = tsig.find_tsig(wire)
    assert tsig.verify(wire, found, {name: key}) == key
    # rbl signs a reply, dnspython checks it against the query's MAC.
    reply = dns.message.make_response(dns.message.make_query(qname, "SOA"))
    reply.id = query.id
    signed, _ = tsig.sign(reply.to_wire(), key, request_mac=found.mac)
    assert dns.message.from_wire(signed, keyring=keyring(key), request_mac=query.mac).had_tsig
    # Any flipped bit before the TSIG's MAC fails the check.
    pos = 2 + flip % (found.start - 2)  # the ID is not signed: the original ID in the TSIG is
    bad = wire[:pos] + bytes([wire[pos] ^ 0x01]) + wire[pos + 1:]
    try:
        again = tsig.find_tsig(bad)
    except TransferError:
        return  # the flip broke the message's structure: refused before any MAC
    if again is None:
        return
    with pytest.raises(tsig.TsigFailure):
        tsig.verify(bad, again, {name: key})
