"""The import parsers: plain, firehol, ipsum, spamhaus-drop (rbldnsd: test_formats_rbldnsd.py), guessing."""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rbl.addresses import DOMAIN, IP4, IP6, Subject, parse_subject
from rbl.errors import ImportFormatError, RblError, SubjectError
from rbl.store.formats import FORMATS, count_lines, guess_format, read_entries

from conftest import shared_file

def shared(*parts: str) -> str:
    return str(shared_file(*parts))


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def net(text: str) -> Subject:
    return parse_subject(text)


def texts(entries) -> list[str]:
    return [e.subject.text for e in entries]


def expect_error(path: str, fmt: str | None, line: int) -> ImportFormatError:
    """Reading fails at ``line``; the message names the path and the line."""
    with pytest.raises(ImportFormatError) as info:
        list(read_entries(path, fmt))
    err = info.value
    assert err.path == path
    assert err.line == line
    assert str(err).startswith(f"{path}, line {line}: ")
    assert isinstance(err, RblError)
    return err


# --------------------------------------------------------------------------
# plain


def test_formats_constant():
    assert FORMATS == ("plain", "rbldnsd", "spamhaus-drop", "firehol", "ipsum")


def test_plain_reads_addresses_cidrs_and_comments(tmp_path):
    path = write(
        tmp_path,
        "list.txt",
        "# a header\n"
        "; another comment\n"
        "\n"
        "192.0.2.1\n"
        "198.51.100.0/24   # trailing hash comment\n"
        "   203.0.113.0/25;trailing semicolon comment\n"
        "2001:db8::/32\n"
        "2001:DB8:0:0:0:0:0:1\n"
        "\t\n"
        "0.0.0.0/0\n"
        "::/0",  # no trailing newline
    )
    entries = list(read_entries(path, "plain"))
    assert texts(entries) == [
        "192.0.2.1", "198.51.100.0/24", "203.0.113.0/25", "2001:db8::/32", "2001:db8::1", "0.0.0.0/0", "::/0",
    ]
    assert [e.line for e in entries] == [4, 5, 6, 7, 8, 10, 11]
    assert all(not e.exclude and e.code is None and e.txt is None and e.hits is None for e in entries)
    assert entries[0].subject == Subject(IP4, 0xC0000201, 32)


def test_plain_accepts_crlf_and_a_bom(tmp_path):
    path = write(tmp_path, "crlf.txt", b"\xef\xbb\xbf192.0.2.1\r\n# c\r\n192.0.2.2/31\r\n\r\n2001:db8::1\r\n")
    entries = list(read_entries(path, "plain"))
    assert texts(entries) == ["192.0.2.1", "192.0.2.2/31", "2001:db8::1"]
    assert [e.line for e in entries] == [1, 3, 5]


def test_plain_empty_file_has_no_entries(tmp_path):
    assert list(read_entries(write(tmp_path, "empty.txt", ""), "plain")) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("300.1.2.3", "'300.1.2.3' is not an IP address or CIDR"),
        ("192.0.2.1/24", "'192.0.2.1/24' has host bits set (did you mean 192.0.2.0/24?)"),
        ("2001:db8::1/32", "'2001:db8::1/32' has host bits set"),
        ("192.0.2.0/33", "'192.0.2.0/33' is not an IP address or CIDR"),
        ("192.0.2", "'192.0.2' is not an IP address or CIDR"),
        ("01.2.3.4", "'01.2.3.4' is not an IP address or CIDR"),
        ("example.com", "'example.com' is not an IP address or CIDR"),
        ("hello", "'hello' is not an IP address or CIDR"),
        ("2001:db8:::1", "'2001:db8:::1' is not an IP address or CIDR"),
        ("fe80::1%eth0", "'fe80::1%eth0' is not an IP address or CIDR"),
        ("192.0.2.1 192.0.2.2", "unexpected '192.0.2.2' after '192.0.2.1'"),
        ("192.0.2.1\t10", "try --format ipsum"),
        ("1.2.3.4-1.2.3.9", "'1.2.3.4-1.2.3.9' is not an IP address or CIDR"),
        ("!192.0.2.1", "'!192.0.2.1' is not an IP address or CIDR"),
    ],
)
def test_plain_errors_name_path_and_line(tmp_path, line, message):
    head = "# header\n192.0.2.200\n\n10.0.0.0/8\n# c\n192.0.2.201\n"
    path = write(tmp_path, "list.txt", head + line + "\n192.0.2.9\n")
    err = expect_error(path, "plain", 7)
    assert message in str(err)


def test_plain_error_example_message_exactly(tmp_path):
    path = write(tmp_path, "list.txt", "1.1.1.1\n" * 6 + "300.1.2.3\n")
    err = expect_error(path, "plain", 7)
    assert str(err) == f"{path}, line 7: '300.1.2.3' is not an IP address or CIDR"


def test_errors_stop_at_the_first_bad_line_after_yielding_the_good_ones(tmp_path):
    path = write(tmp_path, "list.txt", "192.0.2.1\n192.0.2.2\nbad\n300.0.0.0\n")
    seen = []
    with pytest.raises(ImportFormatError) as info:
        for entry in read_entries(path, "plain"):
            seen.append(entry.subject.text)
    assert seen == ["192.0.2.1", "192.0.2.2"]
    assert info.value.line == 3


def test_invalid_utf8_is_a_line_error(tmp_path):
    path = write(tmp_path, "latin1.txt", b"192.0.2.1\n# caf\xe9\n192.0.2.2\n")
    err = expect_error(path, "plain", 2)
    assert "not UTF-8" in str(err)


def test_gzip_file_is_named_as_such(tmp_path):
    import gzip

    path = write(tmp_path, "list.txt.gz", gzip.compress(b"192.0.2.1\n" * 100))
    err = expect_error(path, "plain", 1)
    assert "gzip" in str(err)
    with pytest.raises(ImportFormatError, match="gzip"):
        guess_format(path)


def test_unknown_format_and_missing_file(tmp_path):
    path = write(tmp_path, "list.txt", "192.0.2.1\n")
    with pytest.raises(ImportFormatError) as info:
        read_entries(path, "csv")  # raised on the call, before iterating
    assert info.value.line == 0
    assert "unknown format 'csv'" in str(info.value)
    assert "plain, rbldnsd, spamhaus-drop, firehol or ipsum" in str(info.value)

    missing = str(tmp_path / "nope.txt")
    for fmt in (None, "plain"):
        with pytest.raises(ImportFormatError) as info:
            read_entries(missing, fmt)
        assert info.value.path == missing
        assert "cannot read" in str(info.value)
    with pytest.raises(ImportFormatError):
        count_lines(missing)


def test_read_entries_accepts_a_path_object(tmp_path):
    path = Path(write(tmp_path, "list.txt", "192.0.2.1\n"))
    assert texts(read_entries(path)) == ["192.0.2.1"]


# --------------------------------------------------------------------------
# firehol

FIREHOL_SAMPLE = """\
#
# example_list
#
# ipv4 hash:net ipset
#
# Maintainer      : FireHOL
# Generated by FireHOL's update-ipsets.sh
# Processed with FireHOL's iprange
#
0.0.0.0/8
1.10.16.0/20
5.188.10.0/23
223.254.0.1
"""


def test_firehol_reads_like_plain(tmp_path):
    path = write(tmp_path, "example.netset", FIREHOL_SAMPLE)
    entries = list(read_entries(path, "firehol"))
    assert texts(entries) == ["0.0.0.0/8", "1.10.16.0/20", "5.188.10.0/23", "223.254.0.1"]
    assert [e.line for e in entries] == [10, 11, 12, 13]


def test_firehol_errors_name_path_and_line(tmp_path):
    path = write(tmp_path, "example.ipset", FIREHOL_SAMPLE + "5.188.10.1/23\n")
    err = expect_error(path, "firehol", 14)
    assert "host bits set (did you mean 5.188.10.0/23?)" in str(err)


def test_firehol_is_guessed_by_extension_or_header(tmp_path):
    assert guess_format(write(tmp_path, "a.netset", "192.0.2.0/24\n")) == "firehol"
    assert guess_format(write(tmp_path, "a.ipset", "192.0.2.1\n")) == "firehol"
    assert guess_format(write(tmp_path, "a.txt", FIREHOL_SAMPLE)) == "firehol"
    assert guess_format(write(tmp_path, "b.txt", "# a list\n192.0.2.1\n")) == "plain"


# --------------------------------------------------------------------------
# ipsum

IPSUM_SAMPLE = """\
# IPsum Threat Intelligence Feed
# (https://github.com/stamparm/ipsum)
#
# IP\tnumber of (black)lists
#
77.90.185.20\t10
2.57.122.53\t9
162.251.62.103\t1
"""


def test_ipsum_reads_hits(tmp_path):
    path = write(tmp_path, "ipsum.txt", IPSUM_SAMPLE)
    entries = list(read_entries(path, "ipsum"))
    assert [(e.subject.text, e.hits, e.line) for e in entries] == [
        ("77.90.185.20", 10, 6), ("2.57.122.53", 9, 7), ("162.251.62.103", 1, 8),
    ]
    assert guess_format(path) == "ipsum"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("192.0.2.1", "expected 'ADDRESS<TAB>COUNT', got '192.0.2.1'"),
        ("192.0.2.1\tmany", "'many' after '192.0.2.1' is not a count"),
        ("192.0.2.1\t-3", "'-3' after '192.0.2.1' is not a count"),
        ("192.0.2.1\t3\textra", "expected 'ADDRESS<TAB>COUNT'"),
        ("192.0.2.300\t3", "'192.0.2.300' is not an IP address or CIDR"),
    ],
)
def test_ipsum_errors_name_path_and_line(tmp_path, line, message):
    path = write(tmp_path, "ipsum.txt", IPSUM_SAMPLE + line + "\n")
    err = expect_error(path, "ipsum", 9)
    assert message in str(err)


# --------------------------------------------------------------------------
# spamhaus-drop

DROP_SAMPLE = """\
; Spamhaus DROP List 2025/01/17 - (c) 2025 The Spamhaus Project SLU
; https://www.spamhaus.org/drop/drop.txt
1.10.16.0/20 ; SBL256894
2.57.122.0/24 ; SBL636050
2001:678:6c4::/48 ; SBL626637
5.42.92.0/24
; EOF
"""


def test_spamhaus_drop_reads_reasons(tmp_path):
    path = write(tmp_path, "drop.txt", DROP_SAMPLE)
    entries = list(read_entries(path, "spamhaus-drop"))
    assert [(e.subject.text, e.reason, e.line) for e in entries] == [
        ("1.10.16.0/20", "SBL256894", 3),
        ("2.57.122.0/24", "SBL636050", 4),
        ("2001:678:6c4::/48", "SBL626637", 5),
        ("5.42.92.0/24", None, 6),
    ]
    assert guess_format(path) == "spamhaus-drop"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1.10.16.1/20 ; SBL1", "'1.10.16.1/20' has host bits set (did you mean 1.10.16.0/20?)"),
        ("1.10.16.0 /20 ; SBL1", "expected 'CIDR ; SBLnnnn'"),
        ("SBL1 ; 1.10.16.0/20", "'SBL1' is not an IP address or CIDR"),
    ],
)
def test_spamhaus_drop_errors_name_path_and_line(tmp_path, line, message):
    path = write(tmp_path, "drop.txt", DROP_SAMPLE.replace("; EOF\n", line + "\n; EOF\n"))
    err = expect_error(path, "spamhaus-drop", 7)
    assert message in str(err)


def test_spamhaus_comment_only_stub_is_guessed_and_empty(tmp_path):
    path = write(tmp_path, "edrop.txt", "; This list has been merged into drop.txt\n; Spamhaus EDROP List\n; EOF\n")
    assert guess_format(path) == "spamhaus-drop"
    assert list(read_entries(path)) == []


# --------------------------------------------------------------------------
# guessing


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("a.txt", "192.0.2.1\n2001:db8::/32\n", "plain"),
        ("a.txt", "::/10\n40::/11\n", "plain"),
        ("a.txt", "# only a comment\n", "plain"),
        ("a.txt", "", "plain"),
        ("a.txt", "; Spamhaus\n1.10.16.0/20 ; SBL256894\n; EOF\n", "spamhaus-drop"),
        ("a.txt", "192.0.2.1 ; a trailing comment\n", "plain"),
        ("a.txt", "# ipsum\n192.0.2.1\t3\n192.0.2.2\t1\n", "ipsum"),
        ("a.txt", "$DATASET ip4set:x @\n192.0.2.1\n", "rbldnsd"),
        ("a.txt", ":2:listed\n192.0.2.1\n", "rbldnsd"),
        ("a.txt", "192.0.2.1 :2:listed\n", "rbldnsd"),
        ("a.txt", "192.0.2.0/24\n!192.0.2.1\n", "rbldnsd"),
        ("a.txt", "example.com\n*.example.net\n", "rbldnsd"),
        ("a.txt", "1.2.3.4-10\n", "rbldnsd"),
        ("a.txt", "$TTL 3600\n192.0.2.1\n", "rbldnsd"),
        ("a.netset", "1.2.3.0/24\n", "firehol"),
    ],
)
def test_guess_format_inline(tmp_path, name, text, fmt):
    assert guess_format(write(tmp_path, name, text)) == fmt


def test_guess_format_nothing_fits(tmp_path):
    path = write(tmp_path, "feed.json", '{\n  "prefixes": ["192.0.2.0/24"]\n}\n')
    with pytest.raises(ImportFormatError) as info:
        guess_format(path)
    assert info.value.line == 1
    assert str(info.value).startswith(f"{path}, line 1: cannot guess the format")
    assert "--format" in str(info.value)

    csv = write(tmp_path, "geo.csv", "# geofeed\n# more\n192.0.2.0/24,US,US-TX,Austin,\n")
    with pytest.raises(ImportFormatError) as info:
        read_entries(csv)
    assert info.value.line == 3


def test_guess_format_reports_the_bad_line_of_an_otherwise_plain_list(tmp_path):
    path = write(tmp_path, "list.txt", "192.0.2.1\n" * 6 + "300.1.2.3\n")
    with pytest.raises(ImportFormatError) as info:
        guess_format(path)
    assert str(info.value) == f"{path}, line 7: '300.1.2.3' is not an IP address or CIDR"
    expect_error(path, None, 7)


def test_guess_reads_past_a_long_comment_header(tmp_path):
    path = write(tmp_path, "data.txt", "#\n" * 120 + "$DATASET ip4set:x @\n192.0.2.1\n")
    assert guess_format(path) == "rbldnsd"


def test_read_entries_guesses(tmp_path):
    path = write(tmp_path, "ipsum.txt", IPSUM_SAMPLE)
    assert [e.hits for e in read_entries(path)] == [10, 9, 1]


# --------------------------------------------------------------------------
# count_lines


@pytest.mark.parametrize(
    ("data", "lines"),
    [(b"", 0), (b"a", 1), (b"a\n", 1), (b"a\nb", 2), (b"a\r\nb\r\n", 2), (b"\n\n\n", 3)],
)
def test_count_lines(tmp_path, data, lines):
    path = write(tmp_path, "f.txt", data)
    assert count_lines(path) == lines


def test_count_lines_matches_the_last_line_number(tmp_path):
    path = write(tmp_path, "f.txt", "# c\n192.0.2.1\n\n192.0.2.2")
    assert count_lines(path) == list(read_entries(path, "plain"))[-1].line == 4


# --------------------------------------------------------------------------
# the real files in ../shared/data


@pytest.mark.parametrize(
    ("name", "fmt", "count"),
    [
        ("spamhaus-drop.txt", "spamhaus-drop", 1385),
        ("spamhaus-dropv6.txt", "spamhaus-drop", 78),
        ("spamhaus-edrop.txt", "spamhaus-drop", 321),
        ("spamhaus-edrop-merged-stub.txt", "spamhaus-drop", 0),
        ("firehol-firehol_level1.netset", "firehol", 2511),
        ("firehol-blocklist_de.ipset", "firehol", 22474),
        ("firehol-dshield.netset", "firehol", 19),
        ("ipsum.txt", "ipsum", 120430),
        ("ipsum-levels-3.txt", "plain", 14217),
        ("cymru-fullbogons-ipv4.txt", "plain", 703),
    ],
)
def test_real_blocklists(name, fmt, count):
    path = shared("blocklists", name)
    assert guess_format(path) == fmt
    entries = list(read_entries(path))
    assert len(entries) == count
    assert all(e.line is not None and 1 <= e.line <= count_lines(path) for e in entries[:50])


def test_real_spamhaus_drop_details():
    entries = list(read_entries(shared("blocklists", "spamhaus-drop.txt"), "spamhaus-drop"))
    assert (entries[0].subject, entries[0].reason, entries[0].line) == (net("1.10.16.0/20"), "SBL256894", 5)
    assert (entries[-1].subject, entries[-1].reason) == (net("223.254.0.0/16"), "SBL212803")
    assert all(e.reason and e.reason.startswith("SBL") for e in entries)
    v6 = list(read_entries(shared("blocklists", "spamhaus-dropv6.txt")))
    assert (v6[0].subject, v6[0].reason) == (net("2001:678:6c4::/48"), "SBL626637")
    assert all(e.subject.kind == IP6 for e in v6)


def test_real_firehol_level1_has_bogons():
    entries = list(read_entries(shared("blocklists", "firehol-firehol_level1.netset")))
    subjects = {e.subject for e in entries}
    assert {net("0.0.0.0/8"), net("10.0.0.0/8"), net("224.0.0.0/3")} <= subjects
    assert entries[0].line == 34


def test_real_ipsum_hits():
    entries = list(read_entries(shared("blocklists", "ipsum.txt"), "ipsum"))
    assert (entries[0].subject, entries[0].hits, entries[0].line) == (net("77.90.185.20"), 10, 8)
    assert (entries[-1].subject, entries[-1].hits) == (net("162.251.62.103"), 1)
    assert all(e.hits >= 1 for e in entries)
    assert [e.hits for e in entries] == sorted((e.hits for e in entries), reverse=True)
    levels = list(read_entries(shared("blocklists", "ipsum-levels-3.txt")))
    assert all(e.hits is None for e in levels)
    assert {e.subject for e in levels} == {e.subject for e in entries if e.hits >= 3}


def test_real_feeds_plain_without_trailing_newline():
    v4 = list(read_entries(shared("feeds", "cloudflare-ips-v4.txt")))
    v6 = list(read_entries(shared("feeds", "cloudflare-ips-v6.txt")))
    assert len(v4) == 15 and len(v6) == 7
    with pytest.raises(ImportFormatError, match="cannot guess the format"):
        guess_format(shared("feeds", "aws-ip-ranges.json"))


def test_real_abusers_30d_is_fast():
    path = shared("blocklists", "firehol-firehol_abusers_30d.netset")
    assert guess_format(path) == "firehol"
    start = time.perf_counter()
    count = sum(1 for _ in read_entries(path))
    elapsed = time.perf_counter() - start
    assert count == 207306
    assert elapsed < 5, f"{elapsed:.2f} s for 207,306 entries"


def test_real_expurgate_spf_protection_outlook():
    path = shared("rbldnsd", "expurgate-spf-protection-outlook-com.rbldnsd")
    assert guess_format(path) == "rbldnsd"
    entries = list(read_entries(path))
    got = {(e.subject.text, e.code, e.txt) for e in entries}
    assert len(entries) == 12
    assert ("40.92.0.0/15", "127.0.0.3", "v=spf1 ip4:$ -all") in got
    assert ("0.0.0.0/1", "127.0.0.99", "v=spf1 -all") in got
    assert ("128.0.0.0/1", "127.0.0.99", "v=spf1 -all") in got
    assert ("2a01:111:f403:f000::/52", "127.0.0.3", "v=spf1 ip6:$ -all") in got
    assert ("::/0", "127.0.0.99", "v=spf1 -all") in got
    assert not any(e.exclude for e in entries)


def test_real_expurgate_default_config():
    entries = list(read_entries(shared("rbldnsd", "expurgate-default-running-config.rbldnsd")))
    assert [(e.subject.text, e.code, e.txt, e.line) for e in entries] == [
        ("192.0.2.1", "127.0.0.3", "v=spf1 ip4:$ ~all", 15),
        ("127.0.0.2", "127.0.0.3", "v=spf1 ip4:$ ~all", 16),
        ("0.0.0.0/1", "127.0.0.99", "v=spf1 ~all", 18),
        ("128.0.0.0/1", "127.0.0.99", "v=spf1 ~all", 19),
        ("::/0", "127.0.0.99", "v=spf1 ~all", 23),
    ]


def test_real_expurgate_running_config():
    path = shared("rbldnsd", "expurgate-running-config.rbldnsd")
    assert guess_format(path) == "rbldnsd"
    entries = list(read_entries(path))
    assert len(entries) == 307
    got = {(e.subject.text, e.code, e.txt) for e in entries}
    assert ("74.125.0.0/16", "127.0.0.3", "v=spf1 ip4:$ ~all") in got  # _spf.google.com
    assert ("2001:4860:4000::/36", "127.0.0.3", "v=spf1 ip6:$ ~all") in got
    assert ("104.47.0.0/17", "127.0.0.3", "v=spf1 ip4:$ -all") in got  # outlook, -all
    # 8 zones, each with its own catch-all: the combined file flattens them.
    assert sum(e.subject.text == "0.0.0.0/1" for e in entries) == 8
    assert sum(e.subject.text == "::/0" for e in entries) == 8
    assert {e.subject.kind for e in entries} == {IP4, IP6}


# --------------------------------------------------------------------------
# properties

ip4_networks = st.builds(
    lambda value, plen: ipaddress.IPv4Network((value >> (32 - plen) << (32 - plen), plen)),
    st.integers(0, 2**32 - 1), st.integers(0, 32),
)
ip6_networks = st.builds(
    lambda value, plen: ipaddress.IPv6Network((value >> (128 - plen) << (128 - plen), plen)),
    st.integers(0, 2**128 - 1) | st.integers(0, 2**32 - 1) | st.integers(0, 2**16 - 1).map(lambda v: v << 112),
    st.integers(0, 128),
)


@st.composite
def plain_line(draw):
    """A network and one way to write it on a plain line."""
    network = draw(ip4_networks | ip6_networks)
    if network.prefixlen == network.max_prefixlen and draw(st.booleans()):
        text = str(network.network_address)
    else:
        text = str(network)
    if network.version == 6:
        addr = network.network_address
        form = draw(st.sampled_from(["compressed", "exploded", "upper"]))
        body = addr.exploded if form == "exploded" else str(addr)
        body = body.upper() if form == "upper" else body
        text = body if "/" not in text else f"{body}/{network.prefixlen}"
    pad = draw(st.sampled_from(["", " ", "\t", "  "]))
    comment = draw(st.sampled_from(["", " # seen", "\t; seen", "#x"]))
    return network, f"{pad}{text}{pad}{comment}"


@given(
    st.lists(plain_line(), max_size=30),
    st.lists(st.sampled_from(["", "# comment", "; comment", "   "]), max_size=5),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_plain_round_trip(tmp_path, items, fillers, newline, final_newline):
    lines = [filler for filler in fillers] + [text for _, text in items]
    body = newline.join(lines) + (newline if final_newline and lines else "")
    path = write(tmp_path, "roundtrip.txt", body)
    entries = list(read_entries(path, "plain"))
    expected = [
        Subject(IP4 if n.version == 4 else IP6, int(n.network_address), n.prefixlen) for n, _ in items
    ]
    assert [e.subject for e in entries] == expected
    assert [e.line for e in entries] == list(range(len(fillers) + 1, len(lines) + 1))
    assert count_lines(path) == len(body.splitlines())


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
@example(0, 2**32 - 1)
@example(0x01020304, 0x0102030A)
@example(5, 5)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_ip4set_range_expands_to_exact_cover(tmp_path, a, b):
    a, b = min(a, b), max(a, b)
    first, last = ipaddress.IPv4Address(a), ipaddress.IPv4Address(b)
    # Both spellings: full addresses, and the last-octet shorthand where it applies.
    lines = [f"{first}-{last}"]
    if a >> 8 == b >> 8:
        lines.append(f"{first}-{b & 255}")
    path = write(tmp_path, "range.rbldnsd", "$DATASET ip4set:r @\n" + "\n".join(lines) + "\n")
    entries = list(read_entries(path, "rbldnsd"))
    for line_no in range(2, 2 + len(lines)):
        subjects = [e.subject for e in entries if e.line == line_no]
        assert subjects, line_no
        cursor = a
        for subject in subjects:
            assert subject.kind == IP4
            size = 1 << (32 - subject.plen)
            assert subject.net == cursor  # contiguous, in order, from a
            assert subject.net % size == 0  # a real CIDR, on its boundary
            cursor += size
        assert cursor == b + 1  # ends exactly at b


def _canonical(text: str) -> Subject | str:
    try:
        return parse_subject(text)
    except SubjectError:
        return "error"


address_texts = st.one_of(
    ip4_networks.map(str),
    ip6_networks.map(str),
    ip6_networks.map(lambda n: f"{n.network_address.exploded}/{n.prefixlen}"),
    st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){0,4}(/[0-9]{1,3})?\Z"),
    st.from_regex(r"\A[0-9a-fA-F:]{1,40}(/[0-9]{1,3})?\Z"),
)


@given(address_texts)
@example("1:2:3:4:5:6:7::")
@example("::")
@example("1:2:3:4:5:6:7:8::")
@example(":::")
@example("1::2::3")
@example("0001:0002::/32")
@example("00001::")
@example("1.2.3.0/024")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_plain_agrees_with_parse_subject(tmp_path, text):
    """The fast paths take exactly what parse_subject takes, with the same result."""
    path = write(tmp_path, "one.txt", text + "\n")
    want = _canonical(text)
    if want == "error" or want.kind == DOMAIN:
        with pytest.raises(ImportFormatError):
            list(read_entries(path, "plain"))
    else:
        assert [e.subject for e in read_entries(path, "plain")] == [want]
