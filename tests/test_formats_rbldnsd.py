"""The rbldnsd import format: datasets, values, short forms, ranges, substitutions."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbl.addresses import BOTH, DOMAIN, EXACT, IP4, IP6, SUBDOMAINS
from rbl.store.formats import read_entries
from test_formats import expect_error, write



def rbl(tmp_path: Path, text: str) -> list:
    return list(read_entries(write(tmp_path, "data.rbldnsd", text), "rbldnsd"))


def test_rbldnsd_values_and_defaults(tmp_path):
    entries = rbl(
        tmp_path,
        "192.0.2.1\n"  # no value, no default yet
        "192.0.2.2 no default here\n"  # TXT only, no default A
        ":2:Listed, see http://bl.example/?$\n"
        "192.0.2.4\n"  # default A and TXT
        "192.0.2.5 :5\n"  # own A, default TXT
        "192.0.2.6 :6:\n"  # own A, no TXT
        "192.0.2.7 open relay $\n"  # default A, own TXT
        "192.0.2.8 :127.0.0.8:Text # with a hash\n"  # own A and TXT (a TXT keeps '#')
        "192.0.2.9 # comment: default value\n"
        "192.0.2.10 ; comment too\n"
        "192.0.2.11:11:glued to the address\n"
        "192.0.2.12 :12 # comment after A\n"
        "192.0.2.13 :13:  spaced\n",
    )
    got = [(e.subject.text, e.code, e.txt, e.line) for e in entries]
    default_txt = "Listed, see http://bl.example/?$"
    assert got == [
        ("192.0.2.1", None, None, 1),
        ("192.0.2.2", None, "no default here", 2),
        ("192.0.2.4", "127.0.0.2", default_txt, 4),
        ("192.0.2.5", "127.0.0.5", default_txt, 5),
        ("192.0.2.6", "127.0.0.6", "", 6),  # ":A:" : no TXT at all
        ("192.0.2.7", "127.0.0.2", "open relay $", 7),
        ("192.0.2.8", "127.0.0.8", "Text # with a hash", 8),
        ("192.0.2.9", "127.0.0.2", default_txt, 9),
        ("192.0.2.10", "127.0.0.2", default_txt, 10),
        ("192.0.2.11", "127.0.0.11", "glued to the address", 11),
        ("192.0.2.12", "127.0.0.12", default_txt, 12),
        ("192.0.2.13", "127.0.0.13", "spaced", 13),
    ]


def test_rbldnsd_ip4set_short_forms_and_ranges(tmp_path):
    entries = rbl(
        tmp_path,
        "$DATASET ip4set:test @\n"
        "127.0.0\n"
        "10\n"
        "10.1\n"
        "127.16/12\n"
        "127.16.0/12\n"
        "192.0.2.0/25\n"
        "1.2.3.4-1.2.3.10\n"
        "1.2.3.4-10\n"
        "127.16-31\n"
        "127.16.0-127.31.255\n"
        "10.0.0.0-10.255.255.255\n"
        "192.0.2.7-7\n",
    )
    by_line: dict[int, list[str]] = {}
    for e in entries:
        by_line.setdefault(e.line, []).append(e.subject.text)
    assert by_line == {
        2: ["127.0.0.0/24"],
        3: ["10.0.0.0/8"],
        4: ["10.1.0.0/16"],
        5: ["127.16.0.0/12"],
        6: ["127.16.0.0/12"],
        7: ["192.0.2.0/25"],
        8: ["1.2.3.4/30", "1.2.3.8/31", "1.2.3.10"],
        9: ["1.2.3.4/30", "1.2.3.8/31", "1.2.3.10"],
        10: ["127.16.0.0/12"],
        11: ["127.16.0.0/12"],
        12: ["10.0.0.0/8"],
        13: ["192.0.2.7"],
    }


def test_rbldnsd_exclusions(tmp_path):
    entries = rbl(tmp_path, ":3:listed\n10.0.0.0/8\n!10.1.2.3\n! 10.9.0.0/16 :4:value ignored\n!10.2.0.0-10.2.0.2\n")
    assert [(e.subject.text, e.exclude, e.code, e.txt) for e in entries] == [
        ("10.0.0.0/8", False, "127.0.0.3", "listed"),
        ("10.1.2.3", True, None, None),
        ("10.9.0.0/16", True, None, None),
        ("10.2.0.0/31", True, None, None),
        ("10.2.0.2", True, None, None),
    ]


def test_rbldnsd_ip6trie(tmp_path):
    entries = rbl(
        tmp_path,
        "$DATASET ip6trie:v6 @\n"
        ":127.0.1.2: Listed, see http://example.com/lookup?$\n"
        "2001:21ab:c000/36\n"  # trailing :0s omitted
        "2001:21ab:def7:4242 :127.0.1.3: This one smells funny\n"  # four groups: a /64
        "2605:6001:42::/52\n"
        "::1\t\t# localhost\n"
        "!2605:6001:42::bead   # exclusion\n"
        "0:0:0:0:0:0:0:0/0\n",
    )
    assert [(e.subject.text, e.exclude, e.code, e.txt) for e in entries] == [
        ("2001:21ab:c000::/36", False, "127.0.1.2", "Listed, see http://example.com/lookup?$"),
        ("2001:21ab:def7:4242::/64", False, "127.0.1.3", "This one smells funny"),
        ("2605:6001:42::/52", False, "127.0.1.2", "Listed, see http://example.com/lookup?$"),
        ("::1", False, "127.0.1.2", "Listed, see http://example.com/lookup?$"),
        ("2605:6001:42::bead", True, None, None),
        ("::/0", False, "127.0.1.2", "Listed, see http://example.com/lookup?$"),
    ]
    assert all(e.subject.kind == IP6 for e in entries)


def test_rbldnsd_dnset(tmp_path):
    entries = rbl(
        tmp_path,
        "$DATASET dnset:domains @\n"
        ":2:Domain $ is listed\n"
        "example.com\n"
        "*.example.net :3:wild\n"
        ".Example.ORG\n"
        "!good.example.com\n"
        "!*.ok.example.net\n",
    )
    got = [(e.subject.kind, e.subject.domain, e.subject.cover, e.exclude, e.code, e.txt) for e in entries]
    assert got == [
        (DOMAIN, "example.com", EXACT, False, "127.0.0.2", "Domain $ is listed"),
        (DOMAIN, "example.net", SUBDOMAINS, False, "127.0.0.3", "wild"),
        (DOMAIN, "example.org", BOTH, False, "127.0.0.2", "Domain $ is listed"),
        (DOMAIN, "good.example.com", EXACT, True, None, None),
        (DOMAIN, "ok.example.net", SUBDOMAINS, True, None, None),
    ]


def test_rbldnsd_combined_datasets_switch_type_and_reset_defaults(tmp_path):
    entries = rbl(
        tmp_path,
        "# common section\n"
        "$NS 1w ns1.ex.com ns2.ex.com\n"
        "$SOA 1w ns1.ex.com admin.ex.com 0 2h 2h 1w 1h\n"
        "$TTL 3600\n"
        "$MAXRANGE4 /16\n"
        "$TIMESTAMP 2024:01:01\n"
        "$DATASET ip4set:proxy proxies @   # a comment\n"
        ":2:Open proxy, see http://bl.ex.com/proxy/$\n"
        "127.0.0.2\n"
        "$DATASET ip4trie:relay relays\n"
        "127.0.0.3\n"  # the default does not carry over to a new dataset
        "192.0.2.0/24 :4:relay\n"
        "$DATASET generic:common proxies relays @\n"
        "@ A 127.0.0.8\n"  # a generic section holds no listings: skipped
        "www TXT \"hello\"\n"
        "$DATASET dnset:names names\n"
        "example.com\n"
        "$DATASET ip6trie:v6 v6\n"
        "2001:db8::/32\n",
    )
    assert [(e.subject.text, e.code, e.txt, e.line) for e in entries] == [
        ("127.0.0.2", "127.0.0.2", "Open proxy, see http://bl.ex.com/proxy/$", 9),
        ("127.0.0.3", None, None, 11),
        ("192.0.2.0/24", "127.0.0.4", "relay", 12),
        ("example.com", None, None, 17),
        ("2001:db8::/32", None, None, 19),
    ]


def test_rbldnsd_without_dataset_takes_each_line_by_shape(tmp_path):
    entries = rbl(tmp_path, "192.0.2.0/24\n10.1\n2001:db8::/48\nexample.com\n*.example.net\n.example.org\n")
    assert [(e.subject.kind, e.subject.text) for e in entries] == [
        (IP4, "192.0.2.0/24"), (IP4, "10.1.0.0/16"), (IP6, "2001:db8::/48"),
        (DOMAIN, "example.com"), (DOMAIN, "*.example.net"), (DOMAIN, ".example.org"),
    ]


def test_rbldnsd_substitution_variables_and_base_template(tmp_path):
    entries = rbl(
        tmp_path,
        "$1 See http://www.example.com/bl\n"
        "$2 for details\n"
        "127.0.0.2  $1/spammer/$ $2\n"
        "127.0.0.3  costs $$5 and $9\n"  # $$ stays, an undefined $9 stays
        "$DATASET ip4set:based @\n"
        "$= See http://www.example.com/bl?$= ($) for details\n"
        "127.0.0.4    r123\n"
        "127.0.0.5\n"
        "127.0.0.6    =See other blocklists for details about $\n"
        "127.0.0.7    $1\n",
    )
    assert [e.txt for e in entries] == [
        "See http://www.example.com/bl/spammer/$ for details",
        "costs $$5 and $9",
        "See http://www.example.com/bl?r123 ($) for details",
        "See http://www.example.com/bl?$ ($) for details",
        "See other blocklists for details about $",
        "See http://www.example.com/bl?$1 ($) for details",  # $= inserts the entry's TXT as is
    ]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("$DATASET ip4set:x @\n127.0.0.1/24\n", 2, "'127.0.0.1/24' has host bits set (did you mean 127.0.0.0/24?)"),
        ("$DATASET ip6trie:x @\n2001:db8::1/64\n", 2, "'2001:db8::1/64' has host bits set"),
        ("$DATASET ip6trie:x @\n2001:db8:1/16\n", 2, "'2001:db8:1/16' has host bits set (did you mean 2001::/16?)"),
        ("$DATASET ip4set:x @\n1.2.3.256\n", 2, "'1.2.3.256' is not an IPv4 address, prefix, CIDR or range"),
        ("$DATASET ip4set:x @\n1.2.3.4/33\n", 2, "prefix length 33 is over 32"),
        ("$DATASET ip4set:x @\n1.2.3.10-1.2.3.4\n", 2, "the range ends before it starts"),
        ("$DATASET ip4set:x @\n1.2.3.10-4\n", 2, "the range ends before it starts"),
        ("$DATASET ip4set:x @\n1.2-1.2.3.4\n", 2, "both ends of a range need as many octets"),
        ("$DATASET ip4trie:x @\n1.2.3.4-1.2.3.9\n", 2, "an ip4trie dataset takes CIDRs, not ranges"),
        ("$DATASET ip4set:x @\n2001:db8::/32\n", 2, "not an IPv4 address, prefix, CIDR or range (in an ip4set"),
        ("$DATASET ip6trie:x @\n192.0.2.1\n", 2, "'192.0.2.1' is not an IPv6 address or CIDR (in an ip6trie dataset)"),
        ("$DATASET ip6trie:x @\n2001:db8::/129\n", 2, "'2001:db8::/129' is not an IP address or CIDR"),
        ("$DATASET dnset:x @\n192.0.2.1\n", 2, "'192.0.2.1' is not a valid domain name"),
        ("$DATASET dnset:x @\nexa mple.com\n", 2, "'exa' is not a valid domain name"),
        ("$DATASET dnset:x @\nnot_a..domain\n", 2, "'not_a..domain' is not a valid domain name"),
        ("192.0.2.1\n{garbage}\n", 2, "'{garbage}' is not an address, CIDR, range or domain name"),
        ("$DATASET ip4set:x @\n!\n", 2, "'!' without a subject"),
        ("$DATASET ip4set:x @\n:9:ok\n:abc:bad\n", 3, "invalid value ':abc:bad'"),
        ("$DATASET ip4set:x @\n192.0.2.1 :10.0.0.2:txt\n", 2, "A value '10.0.0.2' is not in 127.0.0.0/8"),
        ("$DATASET ip4set:x @\n192.0.2.1 :0:txt\n", 2, "A value '0' is out of range"),
        ("$DATASET ip4set:x @\n192.0.2.1 :256\n", 2, "A value '256' is out of range"),
        ("$DATASET ip4set:x @\n192.0.2.1 :127.0.0.300:\n", 2, "A value '127.0.0.300' is not an IPv4 address"),
        ("$DATASET ip4set:x @\n192.0.2.1 :127.0.2:txt\n", 2, "invalid value ':127.0.2:txt'"),
        ("$DATASET ip4set:x @\n192.0.2.1 :2 trailing\n", 2, "unexpected 'trailing' after the A value"),
        ("# header\n$DATASET ip4hash:x @\n", 2, "unknown or unsupported dataset type 'ip4hash'"),
        ("$DATASET combined:x @\n", 1, "unknown or unsupported dataset type 'combined'"),
        ("$DATASET\n", 1, "$DATASET needs a dataset type"),
    ],
)
def test_rbldnsd_errors_name_path_and_line(tmp_path, body, line, message):
    path = write(tmp_path, "data.rbldnsd", body)
    err = expect_error(path, "rbldnsd", line)
    assert message in str(err)
