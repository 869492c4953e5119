"""Cloud vendors' published IP-range feeds, read into one shape.

rbl learns which address space is shared, dedicated or quarantine from the
vendors' own feeds (DESIGN section 8): a vendor policy names a feed parser
(``feed: aws-ip-ranges``), a file and a ``select:`` over the feed's labels.
Every parser here turns one vendor format into :class:`FeedEntry` rows, in file
order and not deduplicated, so counts can be checked against the published files.

A feed file is fetched from the internet, so a parser trusts nothing: every
error is a :class:`~rbl.errors.ConfigError` naming the file, the line and the
field (``prefixes[12]: ip_prefix '3.5.140.0/33' is not an IPv4 CIDR``), and a
bad file is refused before it replaces a good one (see :mod:`rbl.policy.fetch`).
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rbl.addresses import IP4, IP6
from rbl.errors import ConfigError

Label = str | tuple[str, ...]


@dataclass(slots=True)
class FeedEntry:
    """One published range and the feed's attributes for it.

    ``labels`` dicts may be shared by the entries of one group (an Azure tag, a
    GitHub key) to keep 90,000 Azure prefixes small: treat them as read-only.
    Empty attributes (Azure's global tags have ``region: ""``) are left out.
    """

    kind: str
    net: int
    plen: int
    labels: dict[str, Label]

    @property
    def cidr(self) -> str:
        """Canonical text, as :mod:`ipaddress` prints it: ``3.5.140.0/22``, ``2600:1f14::/35``."""
        if self.kind == IP4:
            n = self.net
            return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}/{self.plen}"
        return f"{ipaddress.IPv6Address(self.net)}/{self.plen}"


@dataclass(frozen=True)
class Feed:
    """A feed parser as a vendor policy names it (``feed: aws-ip-ranges``)."""

    name: str
    title: str
    keys: tuple[str, ...]
    parse: Callable[[bytes, str], list[FeedEntry]]


# --- CIDRs -------------------------------------------------------------------

_MASK4 = [(0xFFFFFFFF << (32 - p)) & 0xFFFFFFFF for p in range(33)]
_MASK6 = [((1 << 128) - 1) ^ ((1 << (128 - p)) - 1) for p in range(129)]
_PLEN = re.compile(r"[0-9]{1,3}", re.ASCII).fullmatch
_pton = socket.inet_pton


def parse_cidr(text: str) -> tuple[str, int, int] | None:
    """``(kind, net, plen)`` for an address or CIDR, host bits cleared; None if it is neither.

    Vendors publish CIDRs with host bits set (``13.105.117.10/31``), so those
    are normalised as ``ipaddress.ip_network(strict=False)`` does. ``inet_pton``
    reads addresses nine times faster than :mod:`ipaddress` (Azure's 90,000
    prefixes in about 0.1 s); it refuses what ipaddress refuses (leading zeros
    in IPv4, scope ids), and ipaddress still reads the rare IPv4 netmask form.
    """
    addr, slash, p = text.partition("/")
    if slash:
        if _PLEN(p) is None:
            return _netmask_form(text)
        plen = int(p)
    else:
        plen = -1
    try:
        if ":" in addr:
            if plen > 128 or "%" in addr:
                return None
            plen = 128 if plen < 0 else plen
            return IP6, int.from_bytes(_pton(socket.AF_INET6, addr), "big") & _MASK6[plen], plen
        if plen > 32:
            return None
        plen = 32 if plen < 0 else plen
        return IP4, int.from_bytes(_pton(socket.AF_INET, addr), "big") & _MASK4[plen], plen
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None


def _netmask_form(text: str) -> tuple[str, int, int] | None:
    """``192.0.2.0/255.255.255.0``, which ipaddress reads and the fast path does not."""
    if ":" in text:
        return None
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return None
    return IP4, int(net.network_address), net.prefixlen


def _family_text(kind: str | None) -> str:
    return {IP4: "an IPv4 CIDR", IP6: "an IPv6 CIDR", None: "a CIDR"}[kind]


def _describe_bad_cidr(value: str, want: str | None) -> str:
    """Why a string is refused: not a CIDR at all, or the other family."""
    got = parse_cidr(value)
    why = f"{value!r} is not {_family_text(want)}"
    if got is not None:
        why += f" (it is {'IPv4' if got[0] == IP4 else 'IPv6'})"
    return why


# --- JSON feeds: errors with a path and a line --------------------------------

JsonPath = tuple[str | int, ...]


class _Bad(Exception):
    """A JSON value is wrong; ``path`` leads to it so its line can be found."""

    def __init__(self, message: str, path: JsonPath):
        super().__init__(message)
        self.message = message
        self.path = path


def _where(path: JsonPath) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text or "top level"


_JSON_TYPE = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
              float: "a number", type(None): "null"}


def _type_name(value: Any) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _need(obj: Any, key: str, path: JsonPath, kind: type = str, required: bool = True) -> Any:
    """``obj[key]`` checked to be of ``kind``; None when absent and not required."""
    if key not in obj:
        if required:
            raise _Bad(f"{_where(path)}: missing key {key!r}", path)
        return None
    value = obj[key]
    if type(value) is not kind:
        raise _Bad(f"{_where(path)}: {key} must be {_JSON_TYPE[kind]}, not {_type_name(value)}", (*path, key))
    return value


def _object(value: Any, path: JsonPath) -> dict:
    if type(value) is not dict:
        raise _Bad(f"{_where(path)} must be an object, not {_type_name(value)}", path)
    return value


def _objects(parent: dict, key: str, path: JsonPath) -> Iterator[tuple[JsonPath, dict]]:
    """Each element of the array ``parent[key]`` (at ``path``), checked to be an object, with its own path."""
    for i, item in enumerate(_need(parent, key, path, list)):
        where = (*path, key, i)
        yield where, _object(item, where)


def _labels(obj: dict, keys: tuple[str, ...], path: JsonPath, rename: Mapping[str, str] | None = None) -> dict[str, Label]:
    """The string attributes of ``obj`` under ``keys``; absent or empty ones left out."""
    labels: dict[str, Label] = {}
    for key in keys:
        value = _need(obj, key, path, required=False)
        if value:
            labels[rename.get(key, key) if rename else key] = value
    return labels


def _cidr_field(obj: dict, key: str, path: JsonPath, want: str | None) -> tuple[str, int, int]:
    value = _need(obj, key, path)
    got = parse_cidr(value)
    if got is None or want is not None and got[0] != want:
        raise _Bad(f"{_where(path)}: {key} {_describe_bad_cidr(value, want)}", (*path, key))
    return got


def _cidr_list(values: list, path: JsonPath, labels: dict[str, Label], out: list[FeedEntry],
               want: str | None = None) -> None:
    """Append one entry per CIDR string of a JSON array (the hot loop for Azure)."""
    for i, value in enumerate(values):
        got = parse_cidr(value) if type(value) is str else None
        if got is None or want is not None and got[0] != want:
            if type(value) is not str:
                raise _Bad(f"{_where((*path, i))} must be a string, not {_type_name(value)}", (*path, i))
            raise _Bad(f"{_where((*path, i))}: {_describe_bad_cidr(value, want)}", (*path, i))
        out.append(FeedEntry(got[0], got[1], got[2], labels))


_WS = re.compile(r"[ \t\n\r]*").match
_DECODER = json.JSONDecoder()


def _json_line(text: str, path: JsonPath) -> int | None:
    """The line where the value at ``path`` starts in the JSON ``text`` (None if lost).

    Walks the raw text along the path, skipping siblings with the C decoder, so
    even a bad value near the end of Azure's 4 MB file is found in milliseconds.
    """
    try:
        pos = _WS(text, 0).end()
        for step in path:
            if isinstance(step, int):
                if text[pos] != "[":
                    return None
                pos = _WS(text, pos + 1).end()
                for _ in range(step):
                    pos = _WS(text, _DECODER.raw_decode(text, pos)[1]).end()
                    if text[pos] != ",":
                        return None
                    pos = _WS(text, pos + 1).end()
                continue
            if text[pos] != "{":
                return None
            pos = _WS(text, pos + 1).end()
            while True:
                if text[pos] != '"':
                    return None
                key, pos = json.decoder.scanstring(text, pos + 1)
                pos = _WS(text, pos).end()
                if text[pos] != ":":
                    return None
                pos = _WS(text, pos + 1).end()
                if key == step:
                    break
                pos = _WS(text, _DECODER.raw_decode(text, pos)[1]).end()
                if text[pos] != ",":
                    return None
                pos = _WS(text, pos + 1).end()
    except (ValueError, IndexError):
        return None
    return text.count("\n", 0, pos) + 1


def _decode(content: bytes, display: str) -> str:
    """UTF-8 text (RFC 8259 and RFC 8805 both say UTF-8); a BOM is tolerated."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", display, content.count(b"\n", 0, exc.start) + 1) from None
    return text[1:] if text.startswith("\ufeff") else text


def _json_feed(walk: Callable[[dict], list[FeedEntry]]) -> Callable[[bytes, str], list[FeedEntry]]:
    """A parser from a walker over the decoded JSON's top-level object: errors get the file and line."""

    def parse(content: bytes, display: str) -> list[FeedEntry]:
        text = _decode(content, display)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON: {exc.msg} (column {exc.colno})", display, exc.lineno) from None
        except RecursionError:
            raise ConfigError("not valid JSON: nested too deeply", display) from None
        try:
            return walk(_object(data, ()))
        except _Bad as bad:
            raise ConfigError(bad.message, display, _json_line(text, bad.path)) from None

    parse.__doc__ = walk.__doc__
    return parse


# --- the vendors' formats ----------------------------------------------------

_AWS_KEYS = ("service", "region", "network_border_group")


def _aws(top: dict) -> list[FeedEntry]:
    """AWS ``ip-ranges.json``: ``prefixes[].ip_prefix`` and ``ipv6_prefixes[].ipv6_prefix``."""
    out: list[FeedEntry] = []
    for key, field, want in (("prefixes", "ip_prefix", IP4), ("ipv6_prefixes", "ipv6_prefix", IP6)):
        for path, item in _objects(top, key, ()):
            kind, net, plen = _cidr_field(item, field, path, want)
            _need(item, "service", path)
            _need(item, "region", path)
            out.append(FeedEntry(kind, net, plen, _labels(item, _AWS_KEYS, path)))
    return out


def _gcp(top: dict) -> list[FeedEntry]:
    """Google ``cloud.json`` and ``goog.json``: ``prefixes[]`` with ``ipv4Prefix`` or ``ipv6Prefix``."""
    out: list[FeedEntry] = []
    for path, item in _objects(top, "prefixes", ()):
        if ("ipv4Prefix" in item) == ("ipv6Prefix" in item):
            which = "both ipv4Prefix and" if "ipv4Prefix" in item else "neither ipv4Prefix nor"
            raise _Bad(f"{_where(path)}: has {which} ipv6Prefix", path)
        field, want = ("ipv4Prefix", IP4) if "ipv4Prefix" in item else ("ipv6Prefix", IP6)
        kind, net, plen = _cidr_field(item, field, path, want)
        out.append(FeedEntry(kind, net, plen, _labels(item, ("scope", "service"), path)))
    return out


def _azure(top: dict) -> list[FeedEntry]:
    """Azure Service Tags: ``values[].properties.addressPrefixes[]``, one entry per prefix per tag."""
    out: list[FeedEntry] = []
    for path, tag in _objects(top, "values", ()):
        name = _need(tag, "name", path)
        props = _need(tag, "properties", path, dict)
        ppath = (*path, "properties")
        prefixes = _need(props, "addressPrefixes", ppath, list)
        labels = _labels(props, ("systemService", "region"), ppath)
        if name:
            labels = {"name": name, **labels}
        _cidr_list(prefixes, (*ppath, "addressPrefixes"), labels, out)
    return out


def _oracle(top: dict) -> list[FeedEntry]:
    """Oracle ``public_ip_ranges.json``: ``regions[].cidrs[].{cidr, tags[]}``."""
    out: list[FeedEntry] = []
    for path, region in _objects(top, "regions", ()):
        name = _need(region, "region", path)
        for cpath, item in _objects(region, "cidrs", path):
            kind, net, plen = _cidr_field(item, "cidr", cpath, None)
            tags = _need(item, "tags", cpath, list, required=False) or []
            for k, tag in enumerate(tags):
                if type(tag) is not str:
                    raise _Bad(f"{_where((*cpath, 'tags', k))} must be a string, not {_type_name(tag)}",
                               (*cpath, "tags", k))
            labels: dict[str, Label] = {"region": name} if name else {}
            labels["tags"] = tuple(tags)
            out.append(FeedEntry(kind, net, plen, labels))
    return out


# GitHub's meta keys that are not CIDR lists; any other list must hold only CIDRs.
_GITHUB_NOT_CIDRS = frozenset({"ssh_keys", "ssh_key_fingerprints", "domains", "verifiable_password_authentication"})


def _github(top: dict) -> list[FeedEntry]:
    """GitHub ``api.github.com/meta``: every CIDR list, labelled with its key (``actions``)."""
    out: list[FeedEntry] = []
    for key, values in top.items():
        if key in _GITHUB_NOT_CIDRS or type(values) is not list:
            continue
        _cidr_list(values, (key,), {"key": key}, out)
    return out


def _fastly(top: dict) -> list[FeedEntry]:
    """Fastly ``public-ip-list``: ``addresses[]`` and ``ipv6_addresses[]``."""
    out: list[FeedEntry] = []
    _cidr_list(_need(top, "addresses", (), list), ("addresses",), {}, out, IP4)
    _cidr_list(_need(top, "ipv6_addresses", (), list), ("ipv6_addresses",), {}, out, IP6)
    return out


def _lines(content: bytes, display: str):
    """``(line number, text)`` of each line that is not blank or a ``#`` comment."""
    for number, line in enumerate(_decode(content, display).split("\n"), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


_GEOFEED_KEYS = ("country", "region", "city", "postal")


def _geofeed(content: bytes, display: str) -> list[FeedEntry]:
    """RFC 8805 geofeed CSV: ``prefix,country,region,city,postal``; no header, ``#`` comments."""
    out: list[FeedEntry] = []
    for number, line in _lines(content, display):
        try:
            fields = next(csv.reader([line], strict=True)) if '"' in line else line.split(",")
        except csv.Error as exc:
            raise ConfigError(f"not a CSV row: {exc}", display, number) from None
        if len(fields) > 5:
            raise ConfigError(f"{len(fields)} fields; a geofeed row has at most 5 "
                              "(prefix,country,region,city,postal)", display, number)
        prefix = fields[0].strip()
        got = parse_cidr(prefix)
        if got is None:
            raise ConfigError(f"prefix {prefix!r} is not a CIDR", display, number)
        labels: dict[str, Label] = {}
        for key, value in zip(_GEOFEED_KEYS, fields[1:]):
            value = value.strip()
            if value:
                labels[key] = value
        out.append(FeedEntry(got[0], got[1], got[2], labels))
    return out


def _cidr_lines(content: bytes, display: str) -> list[FeedEntry]:
    """One CIDR per line (Cloudflare ``ips-v4``/``ips-v6``); blank lines and ``#`` comments allowed."""
    out: list[FeedEntry] = []
    for number, line in _lines(content, display):
        text = line.split("#", 1)[0].strip()
        got = parse_cidr(text)
        if got is None:
            raise ConfigError(f"{text!r} is not a CIDR", display, number)
        out.append(FeedEntry(got[0], got[1], got[2], {}))
    return out


FEEDS: dict[str, Feed] = {feed.name: feed for feed in (
    Feed("aws-ip-ranges", "AWS ip-ranges.json", _AWS_KEYS, _json_feed(_aws)),
    Feed("gcp-cloud", "Google Cloud cloud.json (also Google goog.json)", ("scope", "service"), _json_feed(_gcp)),
    Feed("azure-service-tags", "Azure Service Tags (ServiceTags_Public.json)", ("name", "systemService", "region"),
         _json_feed(_azure)),
    Feed("oracle-public-ip-ranges", "Oracle Cloud public_ip_ranges.json", ("region", "tags"), _json_feed(_oracle)),
    Feed("geofeed", "RFC 8805 geofeed CSV (DigitalOcean, Linode)", _GEOFEED_KEYS, _geofeed),
    Feed("github-meta", "GitHub api.github.com/meta", ("key",), _json_feed(_github)),
    Feed("cidr-list", "one CIDR per line (Cloudflare ips-v4, ips-v6)", (), _cidr_lines),
    Feed("fastly-public-ip-list", "Fastly public-ip-list", (), _json_feed(_fastly)),
)}


def read_feed(name: str, path: Path | str, display: str | None = None) -> list[FeedEntry]:
    """Read and parse a feed file with the parser ``name``; ``display`` names it in errors.

    :raises ConfigError: unknown feed name, unreadable file, or anything wrong inside it.
    """
    display = str(path) if display is None else display
    feed = FEEDS.get(name)
    if feed is None:
        raise ConfigError(f"unknown feed {name!r} (known: {', '.join(sorted(FEEDS))})", display)
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read feed file: {exc.strerror or exc}", display) from None
    return feed.parse(content, display)


def select(entries: list[FeedEntry], selector: Mapping[str, str | list[str]]) -> list[FeedEntry]:
    """The entries whose labels match every key of ``selector`` (empty: all entries).

    A label matches when it equals the value or one of a list of values; a tuple
    label (Oracle's ``tags``) matches when any of its elements does. Matching is
    exact and case-sensitive: the vendors' own spelling (``EC2``, ``AzureCloud``).
    """
    wanted = [(key, frozenset(value) if isinstance(value, (list, tuple, set, frozenset)) else frozenset([value]))
              for key, value in selector.items()]
    if not wanted:
        return list(entries)

    def matches(entry: FeedEntry) -> bool:
        labels = entry.labels
        for key, allowed in wanted:
            label = labels.get(key)
            if label is None:
                return False
            if type(label) is tuple:
                if allowed.isdisjoint(label):
                    return False
            elif label not in allowed:
                return False
        return True

    return [entry for entry in entries if matches(entry)]
