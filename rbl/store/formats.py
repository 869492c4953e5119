"""Parsers for imported lists: ``rbl listing import FILE [--format ...]``.

Five formats, each read line by line into :class:`~rbl.store.listings.Entry`
values that carry their 1-based line number:

``plain``
    One IPv4/IPv6 address or CIDR per line. Blank lines and ``#``/``;``
    comments (whole line or trailing) are ignored.
``firehol``
    FireHOL ``.ipset``/``.netset`` files: a ``#`` header, then one address or
    CIDR per line. Read exactly like ``plain``.
``ipsum``
    stamparm/ipsum: a ``#`` header, then ``ADDRESS<TAB>COUNT``; the count
    becomes ``Entry.hits``.
``spamhaus-drop``
    Spamhaus DROP/EDROP/DROPv6: ``;`` comments, ``CIDR ; SBLnnnn`` lines (the
    SBL reference becomes ``Entry.reason``), ``; EOF`` at the end.
``rbldnsd``
    rbldnsd(8) data files for ip4set, ip4tset, ip4trie, ip6trie, ip6tset and
    dnset datasets, alone or in a combined file with ``$DATASET`` sections
    (which are flattened: the zones they name are not kept). Without a
    ``$DATASET`` line each entry is read by its shape: address, CIDR, ip4set
    prefix or range, or domain. ``:A:TXT`` values and defaults give
    ``Entry.code`` (dotted, in 127.0.0.0/8) and ``Entry.txt``; ``$n``
    variables and the ``$=`` base template are resolved here, while ``$``
    (the listed subject) is kept for the server to fill in.

Every error raised is an :class:`~rbl.errors.ImportFormatError` naming the
file and the line. Nothing is skipped silently except what each format
defines as a comment (and, in rbldnsd files, the ``$SOA``/``$NS``/``$TTL``
style specials and ``generic``/``acl`` sections, which hold no listings).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterator

from rbl.addresses import DOMAIN, IP4, IP6, Subject, parse_domain, parse_subject
from rbl.errors import ImportFormatError, SubjectError
from rbl.store.listings import Entry, staged

FORMATS: tuple[str, ...] = ("plain", "rbldnsd", "spamhaus-drop", "firehol", "ipsum")

_FORMAT_LIST = "plain, rbldnsd, spamhaus-drop, firehol or ipsum"

# guess_format reads at most this many data lines (comments and blank lines
# do not count), and never more than _SNIFF_MAX_LINES lines in all.
_SNIFF_DATA_LINES = 50
_SNIFF_MAX_LINES = 2000


class _LineError(Exception):
    """A line is wrong; the caller adds the path and the line number."""


# --------------------------------------------------------------------------
# Reading lines


def _lines(path: str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for each line; text keeps its line ending."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise ImportFormatError(f"cannot read the file: {exc.strerror or exc}", path, 0) from None
    with f:
        n = 0
        for n, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                if n == 1 and raw.startswith(b"\x1f\x8b"):
                    message = "the file is gzip-compressed; decompress it first"
                else:
                    message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                raise ImportFormatError(message, path, n) from None
            if n == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield n, text


def digest(path: str) -> str:
    """The file's SHA-256, hex: an import's audit row names exactly what was read."""
    import hashlib

    sha = hashlib.sha256()
    try:
        with open(os.fspath(path), "rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
    except OSError as exc:
        raise ImportFormatError(f"cannot read the file: {exc.strerror or exc}", os.fspath(path), 0) from None
    return sha.hexdigest()


def count_lines(path: str) -> int:
    """The number of lines in the file, cheaply (for a progress bar).

    Counts what :func:`read_entries` numbers: a last line without a newline
    counts too.
    """
    path = os.fspath(path)
    count = 0
    last = b"\n"
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError as exc:
        raise ImportFormatError(f"cannot read the file: {exc.strerror or exc}", path, 0) from None
    return count + (last != b"\n")


# --------------------------------------------------------------------------
# Addresses and CIDRs, as parse_subject reads them but fast for IPv4

# Canonical decimal text -> value: one dict lookup both checks and converts
# (no leading zeros, no signs, no spaces, in range), as ipaddress would.
_DEC_OCTET = {str(i): i for i in range(256)}
_PLEN4 = {str(i): i for i in range(33)}
_PLEN6 = {str(i): i for i in range(129)}
_HEX_ONLY = re.compile(r"[0-9a-fA-F:]+\Z")
_NETWORKISH = re.compile(r"[0-9][0-9./]*\Z")


def _fast_ip6(addr: str) -> int | None:
    """The value of plain hex IPv6 text (with at most one ``::``), else None."""
    if not _HEX_ONLY.match(addr):
        return None
    head, double, tail = addr.partition("::")
    if double:
        left = head.split(":") if head else []
        right = tail.split(":") if tail else []
        missing = 8 - len(left) - len(right)
        if missing < 1:
            return None
        groups = left + ["0"] * missing + right
    else:
        groups = addr.split(":")
        if len(groups) != 8:
            return None
    value = 0
    for group in groups:
        if not 0 < len(group) <= 4:
            return None
        value = (value << 16) | int(group, 16)
    return value


def _network(tok: str) -> Subject:
    """An IPv4/IPv6 address or CIDR exactly as :func:`parse_subject` accepts it.

    Canonical text takes a fast path (the import of a 200k-line list should
    take seconds, not a minute); anything else, errors included, goes through
    parse_subject for its exact rules and messages.
    """
    addr, slash, plen_text = tok.partition("/")
    parts = addr.split(".")
    if len(parts) == 4:
        octet = _DEC_OCTET
        try:
            net = (octet[parts[0]] << 24) | (octet[parts[1]] << 16) | (octet[parts[2]] << 8) | octet[parts[3]]
            plen = _PLEN4[plen_text] if slash else 32
        except KeyError:
            pass
        else:
            if not net & ((1 << (32 - plen)) - 1):
                return Subject(IP4, net, plen)
    elif ":" in addr:
        net = _fast_ip6(addr)
        if net is not None:
            plen = _PLEN6.get(plen_text, -1) if slash else 128
            if plen >= 0 and not net & ((1 << (128 - plen)) - 1):
                return Subject(IP6, net, plen)
    if "%" in tok:  # ipaddress accepts IPv6 scope ids; a listing cannot have one
        raise _LineError(f"{tok!r} is not an IP address or CIDR (it has a scope id)")
    if ":" in tok or _NETWORKISH.match(tok):
        return parse_subject(tok)
    raise _LineError(f"{tok!r} is not an IP address or CIDR")


def _host_bits_error(tok: str, net: int, plen: int, bits: int) -> _LineError:
    hostmask = (1 << (bits - plen)) - 1
    fixed = Subject(IP4 if bits == 32 else IP6, net & ~hostmask, plen)
    return _LineError(f"{tok!r} has host bits set (did you mean {fixed.text}?)")


# --------------------------------------------------------------------------
# plain, firehol, ipsum, spamhaus-drop


class _Plain:
    """One address or CIDR per line; ``#`` and ``;`` start comments."""

    def line(self, text: str, n: int) -> Entry | None:
        s = text
        if "#" in s:
            s = s[: s.index("#")]
        if ";" in s:
            s = s[: s.index(";")]
        s = s.strip()
        if not s:
            return None
        if " " in s or "\t" in s:
            tok, rest = s.split(None, 1)
            hint = " (an ipsum list? try --format ipsum)" if rest.isdigit() else ""
            raise _LineError(f"unexpected {rest!r} after {tok!r}: expected one address or CIDR per line{hint}")
        return Entry(_network(s), line=n)


class _Ipsum:
    """``ADDRESS<TAB>COUNT`` lines after a ``#`` header."""

    def line(self, text: str, n: int) -> Entry | None:
        s = text
        if "#" in s:
            s = s[: s.index("#")]
        s = s.strip()
        if not s:
            return None
        parts = s.split()
        if len(parts) != 2:
            raise _LineError(f"expected 'ADDRESS<TAB>COUNT', got {s!r}")
        tok, count = parts
        if not (count.isascii() and count.isdigit()):
            raise _LineError(f"{count!r} after {tok!r} is not a count (a whole number)")
        return Entry(_network(tok), hits=int(count), line=n)


class _SpamhausDrop:
    """``CIDR ; SBLnnnn`` lines; ``;`` lines are comments (``; EOF`` ends the list)."""

    def line(self, text: str, n: int) -> Entry | None:
        s = text
        if "#" in s:
            s = s[: s.index("#")]
        cidr, _, reason = s.partition(";")
        cidr = cidr.strip()
        if not cidr:
            return None
        if " " in cidr or "\t" in cidr:
            raise _LineError(f"expected 'CIDR ; SBLnnnn', got {s.strip()!r}")
        return Entry(_network(cidr), reason=reason.strip() or None, line=n)


# --------------------------------------------------------------------------
# rbldnsd

# Dataset types whose entries are listings, and the subject kind each takes.
_DATASETS = {
    "ip4set": IP4,
    "ip4tset": IP4,
    "ip4trie": IP4,
    "ip6trie": IP6,
    "ip6tset": IP6,
    "dnset": DOMAIN,
}
# Dataset types that hold no listings: their sections are skipped.
_SKIPPED_DATASETS = frozenset({"generic", "acl"})

_IP4_PREFIX = r"[0-9]+(?:\.[0-9]+){0,3}"
_IP4_ENTRY = re.compile(rf"({_IP4_PREFIX})(?:/([0-9]+)|-({_IP4_PREFIX}))?\Z")
_IP4ISH = re.compile(r"[0-9][0-9./-]*\Z")
_IP6_GROUPS = re.compile(r"[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){1,6}\Z")
_SUBJECT_TOKEN = re.compile(r"[^\s#;]+")
_A_VALUE = re.compile(r":[ \t]*([0-9]+(?:\.[0-9]+){3}|[0-9]+)(?![0-9.])[ \t]*")
_SUBST = re.compile(r"\$([$0-9=])")


def _ip4_prefix(text: str, tok: str) -> tuple[int, int]:
    """``127.0.0`` -> (0x7f000000, 24): the value completed with zeros, and its bits."""
    octets = text.split(".")
    value = 0
    for octet in octets:
        o = int(octet)
        if o > 255:
            raise _LineError(f"{tok!r} is not an IPv4 address, prefix, CIDR or range (octet {octet} is over 255)")
        value = (value << 8) | o
    bits = 8 * len(octets)
    return value << (32 - bits), bits


def _a_value(text: str) -> str:
    """An rbldnsd A value: ``N`` for 127.0.0.N, or a full address in 127.0.0.0/8."""
    if "." not in text:
        number = int(text)
        if not 1 <= number <= 255:
            raise _LineError(f"A value {text!r} is out of range (N means 127.0.0.N, N from 1 to 255)")
        return f"127.0.0.{number}"
    octets = [int(o) for o in text.split(".")]
    if any(o > 255 for o in octets):
        raise _LineError(f"A value {text!r} is not an IPv4 address")
    if octets[0] != 127:
        raise _LineError(f"A value {text!r} is not in 127.0.0.0/8")
    return ".".join(map(str, octets))


class _Rbldnsd:
    """rbldnsd data lines, with ``$DATASET`` sections and ``:A:TXT`` defaults."""

    def __init__(self) -> None:
        self.dataset: str | None = None  # None: no $DATASET yet, each line by its shape
        self.kind: str | None = None
        self.skipping = False  # inside a generic or acl section
        self.default: tuple[str, str | None] | None = None
        # $n substitution variables and the $= base template: the common
        # section's apply to every dataset; the first assignment wins (as in rbldnsd).
        self.global_vars: dict[str, str] = {}
        self.vars = self.global_vars
        self.base: str | None = None
        self.global_base: str | None = None

    # -- specials ----------------------------------------------------------

    def _special(self, body: str) -> None:
        """A ``$...`` line, without its ``$``."""
        parts = body.split(None, 1)
        word = parts[0].lower() if parts else ""
        rest = parts[1].strip() if len(parts) > 1 else ""
        if word == "dataset":
            self._start_dataset(rest)
        elif self.skipping:
            return
        elif len(word) == 1 and word.isdigit():
            if rest and word not in self.vars:
                self.vars[word] = rest
        elif word == "=":
            if rest and self.base is None:
                self.base = rest
                if self.dataset is None:
                    self.global_base = rest
        # $SOA, $NS, $TTL, $MAXRANGE4, $TIMESTAMP and unknown specials: nothing to import.

    def _start_dataset(self, rest: str) -> None:
        # A comment starts at # or ; at the start or after a space (rbldnsd's rule).
        m = re.search(r"(?:^|\s)[#;]", rest)
        if m:
            rest = rest[: m.start()]
        parts = rest.split()
        if not parts:
            raise _LineError("$DATASET needs a dataset type, as in '$DATASET ip4set:name zone'")
        dataset = parts[0].partition(":")[0].lower()
        if dataset in _SKIPPED_DATASETS:
            self.skipping = True
            self.dataset = dataset
            return
        if dataset not in _DATASETS:
            raise _LineError(
                f"unknown or unsupported dataset type {parts[0].partition(':')[0]!r} "
                "(expected ip4set, ip4tset, ip4trie, ip6trie, ip6tset, dnset, or generic/acl, which are skipped)"
            )
        self.skipping = False
        self.dataset = dataset
        self.kind = _DATASETS[dataset]
        self.default = None
        self.vars = dict(self.global_vars)
        self.base = self.global_base

    # -- values ------------------------------------------------------------

    def _value(self, rest: str, default: tuple[str, str | None] | None) -> tuple[str | None, str | None]:
        """``(code, txt)`` from an entry's value (``:A:TXT``, ``:A``, ``:A:`` or ``TXT``)."""
        dcode, dtxt = default if default is not None else (None, None)
        if rest[0] != ":":
            return dcode, rest
        m = _A_VALUE.match(rest)
        if m is None:
            raise _LineError(f"invalid value {rest!r}: expected ':A:TXT', ':A', ':A:' or a TXT, "
                             "where A is N (for 127.0.0.N) or an address in 127.0.0.0/8")
        code = _a_value(m.group(1))
        after = rest[m.end():]
        if not after or after[0] in "#;":
            return code, dtxt  # ":A": the default TXT
        if after[0] == ":":
            return code, after[1:].strip()  # ":A:TXT", or ":A:": "" for no TXT at all
        raise _LineError(f"unexpected {after!r} after the A value in {rest!r}")

    def _txt(self, txt: str | None) -> str | None:
        """Resolve ``$n`` variables, the ``$=`` base template and a leading ``=``.

        ``$`` (the listed subject) and ``$$`` stay as they are.
        """
        if txt is not None and txt.startswith("="):
            template = txt[1:]
            inner = template
        elif self.base:
            template = self.base
            inner = txt or "$"
        else:
            if txt is None or "$" not in txt:
                return txt
            template = inner = txt
        if "$" in template:
            variables = self.vars

            def substitute(m: re.Match) -> str:
                c = m.group(1)
                if c == "$":
                    return "$$"
                if c == "=":
                    return inner
                return variables.get(c, m.group(0))

            template = _SUBST.sub(substitute, template)
        return template or None

    # -- subjects ----------------------------------------------------------

    def _ip4(self, tok: str) -> Subject | list[Subject]:
        m = _IP4_ENTRY.match(tok)
        if m is None:
            where = f" (in an {self.dataset} dataset)" if self.dataset else ""
            raise _LineError(f"{tok!r} is not an IPv4 address, prefix, CIDR or range{where}")
        first, plen_text, last = m.groups()
        a, abits = _ip4_prefix(first, tok)
        if last is None:
            plen = abits if plen_text is None else int(plen_text)
            if plen > 32:
                raise _LineError(f"{tok!r} is not an IPv4 CIDR (prefix length {plen_text} is over 32)")
            if a & ((1 << (32 - plen)) - 1):
                raise _host_bits_error(tok, a, plen, 32)
            return Subject(IP4, a, plen)
        if self.dataset == "ip4trie":
            raise _LineError(f"{tok!r}: an ip4trie dataset takes CIDRs, not ranges")
        b, bbits = _ip4_prefix(last, tok)
        if bbits == 8 and abits > 8:
            # "1.2.3.4-10": the one octet replaces the first boundary's last octet.
            b = (b >> (abits - 8)) | (a & ~((1 << (40 - abits)) - 1) & 0xFFFFFFFF)
        elif bbits != abits:
            raise _LineError(f"{tok!r}: both ends of a range need as many octets "
                             "(or the end is one octet, as in 10.0.0.1-20)")
        b |= (1 << (32 - abits)) - 1
        if a > b:
            raise _LineError(f"{tok!r}: the range ends before it starts")
        return [
            Subject(IP4, int(net.network_address), net.prefixlen)
            for net in ipaddress.summarize_address_range(ipaddress.IPv4Address(a), ipaddress.IPv4Address(b))
        ]

    def _ip6(self, tok: str) -> Subject:
        addr, slash, plen_text = tok.partition("/")
        if ":" in addr and _IP6_GROUPS.match(addr):
            # rbldnsd's short form: "2001:db8:c000/36", "2001:db8:1:2" (= /64).
            groups = addr.split(":")
            value = 0
            for group in groups:
                value = (value << 16) | int(group, 16)
            net = value << (16 * (8 - len(groups)))
            if slash:
                if not (plen_text.isascii() and plen_text.isdigit()) or int(plen_text) > 128:
                    raise _LineError(f"{tok!r} is not an IPv6 CIDR (bad prefix length {plen_text!r})")
                plen = int(plen_text)
            else:
                plen = 16 * len(groups)
            if net & ((1 << (128 - plen)) - 1):
                raise _host_bits_error(tok, net, plen, 128)
            return Subject(IP6, net, plen)
        if ":" not in addr:
            where = f" (in an {self.dataset} dataset)" if self.dataset else ""
            raise _LineError(f"{tok!r} is not an IPv6 address or CIDR{where}")
        subject = _network(tok)
        if subject.kind != IP6:
            raise _LineError(f"{tok!r} is not an IPv6 address or CIDR")
        return subject

    # -- lines -------------------------------------------------------------

    def line(self, text: str, n: int) -> Entry | list[Entry] | None:
        s = text.strip()
        if not s or s[0] in "#;":
            return None
        c = s[0]
        if c == "$" or (c == ":" and s[1:2] == "$"):
            self._special(s[1:] if c == "$" else s[2:])
            return None
        if self.skipping:
            return None
        if c == ":" and s[1:2] != ":":  # "::1" is an address, not a default
            self.default = self._value(s, None)
            return None
        exclude = c == "!"
        if exclude:
            s = s[1:].lstrip()
            if not s or s[0] in "#;":
                raise _LineError("'!' without a subject to exclude")
        tok = _SUBJECT_TOKEN.match(s)
        if tok is None:
            raise _LineError(f"expected a subject, got {s!r}")
        tok = tok.group()
        if ":" in tok:
            head = tok.partition(":")[0]
            if "." in head and _IP4ISH.match(head):
                tok = head  # "1.2.3.4:2:text": IPv4 with a value right after it
        rest = s[len(tok):].lstrip()

        kind = self.kind
        if kind is None:  # no $DATASET: decide by the line's shape
            kind = IP6 if ":" in tok else IP4 if _IP4ISH.match(tok) else DOMAIN
        if kind == IP4:
            subject = self._ip4(tok)
        elif kind == IP6:
            subject = self._ip6(tok)
        else:
            try:
                subject = parse_domain(tok)
            except SubjectError:
                if self.dataset is None:
                    raise _LineError(f"{tok!r} is not an address, CIDR, range or domain name") from None
                raise

        if exclude:
            code = txt = None
        else:
            if not rest or rest[0] in "#;":
                code, txt = self.default if self.default is not None else (None, None)
            else:
                code, txt = self._value(rest, self.default)
            txt = self._txt(txt)
        if subject.__class__ is list:
            return [Entry(sub, exclude=exclude, code=code, txt=txt, line=n) for sub in subject]
        return Entry(subject, exclude=exclude, code=code, txt=txt, line=n)


_PARSERS = {
    "plain": _Plain,
    "firehol": _Plain,
    "ipsum": _Ipsum,
    "spamhaus-drop": _SpamhausDrop,
    "rbldnsd": _Rbldnsd,
}


# --------------------------------------------------------------------------
# The public API


def read_entries(path: str, fmt: str | None = None) -> Iterator[Entry]:
    """The entries of a list file, in file order, each with its line number.

    ``fmt`` None guesses the format (:func:`guess_format`). An rbldnsd range
    becomes several entries with the same line number.

    :raises ImportFormatError: for an unknown format, an unreadable file (line 0),
        and, while iterating, at the first bad line.
    """
    path = os.fspath(path)
    if fmt is None:
        fmt = guess_format(path)
    elif fmt not in _PARSERS:
        raise ImportFormatError(f"unknown format {fmt!r} (expected {_FORMAT_LIST})", path, 0)
    else:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ImportFormatError(f"cannot read the file: {exc.strerror or exc}", path, 0) from None
    return _read(path, _PARSERS[fmt]())


def read_rows(path: str, fmt: str | None = None) -> Iterator[tuple]:
    """:func:`read_entries` as rows for :meth:`~rbl.store.listings.ListingStore.import_rows`.

    A plain or FireHOL line that is one IPv4 address, canonical, takes a fast path:
    ``inet_pton`` is strict (four decimal octets, no leading zeros), so what it accepts
    is exactly what the line parser would read, and the token is its canonical text.
    Every other line goes through the format's parser, errors and all.
    """
    path = os.fspath(path)
    if fmt is None:
        fmt = guess_format(path)
    entries = read_entries(path, fmt)  # checks the format and that the file opens
    if _PARSERS.get(fmt) is _Plain:
        return _plain_rows(path, _Plain())
    if _PARSERS.get(fmt) is _Rbldnsd:
        return _rbldnsd_rows(path, _Rbldnsd())
    return map(staged, entries)


def _plain_rows(path: str, parser: _Plain) -> Iterator[tuple]:
    pton, family = socket.inet_pton, socket.AF_INET
    for n, text in _lines(path):
        tok = text.strip()
        try:
            packed = pton(family, tok)
        except (OSError, ValueError):  # not one canonical IPv4 address: the parser says what it is
            try:
                entry = parser.line(text, n)
            except (_LineError, SubjectError) as exc:
                raise ImportFormatError(str(exc), path, n) from None
            if entry is not None:
                yield staged(entry)
            continue
        yield IP4, packed, 32, tok, 0, None, None, None, None


def _rbldnsd_rows(path: str, parser: _Rbldnsd) -> Iterator[tuple]:
    """rbldnsd lines as rows; a line that is one canonical IPv4 address gets the row the parser
    gave the last such line, until a ``$`` or ``:`` line changes what the parser would say."""
    pton, family = socket.inet_pton, socket.AF_INET
    tail = None  # what a bare address answers under the current defaults and dataset
    for n, text in _lines(path):
        tok = text.strip()
        if tail is not None:
            try:
                yield (IP4, pton(family, tok), 32, tok, *tail)
                continue
            except (OSError, ValueError):
                pass
        try:
            result = parser.line(text, n)
        except (_LineError, SubjectError) as exc:
            raise ImportFormatError(str(exc), path, n) from None
        if tok[:1] in ("$", ":"):
            tail = None
        if result is None:
            continue
        if result.__class__ is list:
            yield from map(staged, result)
            continue
        row = staged(result)
        yield row
        if tail is None and row[0] == IP4 and row[2] == 32 and row[3] == tok:
            try:
                pton(family, tok)
            except (OSError, ValueError):
                continue
            tail = row[4:]


def _read(path: str, parser) -> Iterator[Entry]:
    feed = parser.line
    for n, text in _lines(path):
        try:
            result = feed(text, n)
        except (_LineError, SubjectError) as exc:
            raise ImportFormatError(str(exc), path, n) from None
        if result is None:
            continue
        if result.__class__ is list:
            yield from result
        else:
            yield result


_SBL = re.compile(r"SBL\d+")


def guess_format(path: str) -> str:
    """Tell the format of a list file from its name and first data lines.

    Reads up to 50 data lines (comments and blank lines aside) and tries each
    format's own parser on them. Preference, among the formats that read them
    all: firehol (``.ipset``/``.netset`` or a header naming FireHOL),
    spamhaus-drop (``CIDR ; SBLnnnn`` lines, or only comments naming Spamhaus),
    ipsum (``ADDRESS<TAB>COUNT``), plain, rbldnsd.

    :raises ImportFormatError: when no format reads those lines: the error of
        the format that read furthest, or, if none read even the first data
        line, a "cannot guess" message naming that line.
    """
    path = os.fspath(path)
    candidates = ("plain", "ipsum", "spamhaus-drop", "rbldnsd")
    parsers = {name: _PARSERS[name]() for name in candidates}
    failed: dict[str, tuple[int, str]] = {}
    comments: list[str] = []
    data_lines = 0
    first_data: tuple[int, str] | None = None
    sbl = False
    for n, text in _lines(path):
        s = text.strip()
        if not s:
            continue
        if s[0] in "#;":
            comments.append(s)
        else:
            data_lines += 1
            if first_data is None:
                first_data = (n, s)
            for name, parser in parsers.items():
                if name in failed:
                    continue
                try:
                    result = parser.line(text, n)
                except (_LineError, SubjectError) as exc:
                    failed[name] = (n, str(exc))
                    continue
                if name == "spamhaus-drop" and result is not None and result.reason and _SBL.match(result.reason):
                    sbl = True
            if data_lines >= _SNIFF_DATA_LINES or len(failed) == len(parsers):
                break
        if n >= _SNIFF_MAX_LINES:
            break

    header = "\n".join(comments).lower()
    ok = [name for name in candidates if name not in failed]
    if "plain" in ok and (os.path.splitext(path)[1].lower() in (".ipset", ".netset") or "firehol" in header):
        return "firehol"
    if "spamhaus-drop" in ok and (sbl or (data_lines == 0 and "spamhaus" in header)):
        return "spamhaus-drop"
    if "ipsum" in ok and data_lines:
        return "ipsum"
    if "plain" in ok:
        return "plain"
    if "rbldnsd" in ok:
        return "rbldnsd"

    # Nothing reads every line: report the format that read furthest.
    preference = ("plain", "ipsum", "spamhaus-drop", "rbldnsd")
    if sbl:
        preference = ("spamhaus-drop", "plain", "ipsum", "rbldnsd")
    best = max(preference, key=lambda name: (failed[name][0], -preference.index(name)))
    n, message = failed[best]
    if first_data is not None and n == first_data[0]:
        raise ImportFormatError(
            f"cannot guess the format: {first_data[1][:80]!r} does not look like {_FORMAT_LIST} data; "
            "name it with --format",
            path,
            n,
        )
    raise ImportFormatError(message, path, n)
