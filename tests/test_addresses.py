"""Subjects and query names: round trips and refusals."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbl.addresses import IP4, IP6, SubjectError, parse_relative, parse_subject, reverse_name

ip4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
ip6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


@given(ip4)
def test_ipv4_query_name_round_trip(addr):
    name = reverse_name(str(addr))
    assert name.split(".") == list(reversed(str(addr).split(".")))
    assert parse_relative(name.encode()) == (IP4, int(addr), 32)


@given(ip6)
def test_ipv6_query_name_round_trip(addr):
    name = reverse_name(str(addr))
    assert len(name.split(".")) == 32
    assert parse_relative(name.encode()) == (IP6, int(addr), 128)


@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_cidr_text_round_trip(value, plen):
    net = ipaddress.IPv4Network((value, plen), strict=False)
    subject = parse_subject(str(net))
    assert (subject.net, subject.plen) == (int(net.network_address), plen)
    assert parse_subject(subject.text) == subject


@given(st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_ipv6_cidr_text_round_trip(value, plen):
    net = ipaddress.IPv6Network((value, plen), strict=False)
    subject = parse_subject(str(net))
    assert parse_subject(subject.text) == subject


def test_partial_names_are_prefixes():
    assert parse_relative(b"127") == (IP4, 0x7F000000, 8)
    assert parse_relative(b"0.0.127") == (IP4, 0x7F000000, 24)
    assert parse_relative(b"f.f.f.f") == (IP6, 0xFFFF << 112, 16)
    assert parse_relative(b"example.com") is None
    assert parse_relative(b"256.0.0.1") is None  # not an octet, and not nibbles
    assert parse_relative(b"01.0.0.127") is None  # leading zeros are not RFC 5782


@pytest.mark.parametrize("text, cover", [("example.com", "exact"), ("*.Example.COM.", "subdomains"),
                                         (".example.com", "both")])
def test_domain_forms(text, cover):
    subject = parse_subject(text)
    assert (subject.domain, subject.cover) == ("example.com", cover)


@pytest.mark.parametrize("text, message", [
    ("192.0.2.1/24", "host bits set"),
    ("300.1.2.3", "not an IP address"),
    ("2001:db8::/129", "not an IP address"),
    ("nodot", "not a valid domain"),
    ("bad_-.example.com", "not a valid domain"),
    ("a..b", "not a valid domain"),
    ("host.123", "numeric top-level"),
    ("", "empty"),
    ("fe80::1%eth0", "scope id"),
])
def test_bad_subjects_say_why(text, message):
    with pytest.raises(SubjectError, match=message):
        parse_subject(text)


def test_ipv4_mapped_ipv6_subjects_are_ipv4():
    assert parse_subject("::ffff:192.0.2.1").text == "192.0.2.1"
    assert parse_subject("::ffff:c000:200/120").text == "192.0.2.0/24"
    assert parse_subject("::fffe:0:0/95").kind == IP6  # wider than the mapped block: stays IPv6
