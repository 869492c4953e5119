"""The operator's policy folder: listing numbers, vendors and their ranges, exclusions.

``policy/vendors/<vendor>.yaml`` names a vendor and where its address space
is (DESIGN section 8)::

    name: aws
    title: Amazon Web Services
    abuse: abuse@amazonaws.com
    ranges:
      - feed: aws-ip-ranges            # parser of the vendor's published file
        file: feeds/aws-ip-ranges.json # relative to the policy folder
        url: https://ip-ranges.amazonaws.com/ip-ranges.json   # for `rbl feeds fetch`
        select: {service: EC2}         # feed attributes; a value or a list of values
        space: shared                  # shared, dedicated or quarantine
      - cidrs: [198.51.100.0/28]       # declared by the vendor
        space: dedicated
        label: one customer's block

``policy/exclusions.yaml`` lists what is never listed::

    exclusions:
      - cidrs: [192.0.2.0/28]
        reason: our own relays

Errors (which stop a policy from being used) and warnings (which ``rbl policy
check`` reports, and a running server logs) both name file and line.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from rbl import yamlfile
from rbl.addresses import IP4, IP6
from rbl.errors import ConfigError
from rbl.policy.classify import Classification, Range
from rbl.policy.feeds import FEEDS, read_feed, select
from rbl.policy.listing import ListingPolicy, load_listing_policy
from rbl.policy.notify import Notify, parse_notify

SPACES = ("shared", "dedicated", "quarantine")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class RangeRule:
    """One item of a vendor's ``ranges``: a feed selection or declared CIDRs."""

    vendor: str
    space: str
    path: str
    line: int
    feed: str | None = None
    file: Path | None = None
    url: str | None = None
    select: tuple[tuple[str, tuple[str, ...]], ...] = ()
    cidrs: tuple[tuple[str, int, int], ...] = ()
    label: str | None = None
    file_line: int = 0
    select_line: int = 0

    @property
    def source(self) -> str:
        where = f"{self.path}, line {self.line}"
        if self.feed:
            chosen = " ".join(f"{k}={'|'.join(v)}" for k, v in self.select)
            return f"{where}: {self.feed} feed {self.file}{' ' + chosen if chosen else ''}"
        return f"{where}: declared"


@dataclass
class Vendor:
    name: str
    title: str
    abuse: str
    path: str
    rules: list[RangeRule] = field(default_factory=list)
    notify: Notify | None = None  # where its notices go besides its pull feed (rbl.policy.notify)


@dataclass
class Policy:
    """Everything in the policy folder, loaded and checked."""

    folder: Path
    listing: ListingPolicy
    vendors: dict[str, Vendor]
    ranges: list[Range]
    warnings: list[ConfigError]
    files: list[Path]
    classification: Classification = field(init=False)

    def __post_init__(self) -> None:
        self.classification = Classification(self.ranges)
        self._of_vendor: dict[str, Classification] = {}

    def ranges_of(self, vendor: str) -> Classification:
        """One vendor's own ranges alone (another vendor's range inside them does not hide them)."""
        if vendor not in self._of_vendor:
            self._of_vendor[vendor] = Classification([r for r in self.ranges if r.vendor == vendor])
        return self._of_vendor[vendor]


def policy_files(folder: str | Path) -> list[Path]:
    """The files a policy is read from (feeds come from the vendor files), for change detection."""
    folder = Path(folder)
    return [folder / "listing.yaml", folder / "exclusions.yaml", *sorted((folder / "vendors").glob("*.yaml"))]


def load_policy(folder: str | Path) -> Policy:
    """Load the whole policy folder.

    :raises ConfigError: naming file and line of the first error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("no such policy folder", str(folder))
    listing = load_listing_policy(folder)
    warnings: list[ConfigError] = []
    files = [p for p in policy_files(folder) if p.exists()]
    ranges = _exclusions(folder / "exclusions.yaml")
    vendors: dict[str, Vendor] = {}
    for path in sorted((folder / "vendors").glob("*.yml")):
        warnings.append(ConfigError("ignored: vendor files are named <vendor>.yaml", str(path), 1))
    for path in sorted((folder / "vendors").glob("*.yaml")):
        vendor = _vendor(path)
        vendors[vendor.name] = vendor
        found, feed_files = _vendor_ranges(folder, vendor, warnings)
        ranges += found
        files += feed_files
    return Policy(folder=folder, listing=listing, vendors=vendors, ranges=ranges, warnings=warnings,
                  files=sorted(set(files)))


def _text(node: yamlfile.Located, key: str, required: bool = True) -> str | None:
    if key not in node:
        if required:
            raise node.error(f"lacks the required key {key!r}")
        return None
    value = node[key]
    if not isinstance(value, str) or not value.strip():
        raise node.error(f"{key} must be a non-empty text, not {value!r}", key)
    return value.strip()


def _cidrs(node: yamlfile.Located, key: str) -> tuple[tuple[str, int, int], ...]:
    items = node[key]
    if not isinstance(items, list) or not items:
        raise node.error(f"{key} must be a non-empty list of CIDRs such as 198.51.100.0/28", key)
    out = []
    lines = getattr(items, "lines", [])
    for i, item in enumerate(items):
        line = lines[i] if i < len(lines) else node.where(key)
        try:
            network = ipaddress.ip_network(str(item))
        except ValueError:
            raise ConfigError(f"{key}: {item!r} is not a CIDR such as 198.51.100.0/28 (host bits clear)",
                              node.path, line) from None
        out.append((IP4 if network.version == 4 else IP6, int(network.network_address), network.prefixlen))
    return tuple(out)


def _exclusions(path: Path) -> list[Range]:
    if not path.exists():
        return []
    data = yamlfile.load(path)
    if data is None:
        return []
    node = yamlfile.check_keys(data, {"exclusions"}, set(), "exclusions file", str(path), 1)
    items = node.get("exclusions") or []
    if not isinstance(items, list):
        raise node.error("exclusions must be a list", "exclusions")
    out = []
    for i, item in enumerate(items):
        line = items.lines[i] if hasattr(items, "lines") else node.where("exclusions")
        item = yamlfile.check_keys(item, {"cidrs", "reason"}, {"cidrs", "reason"}, "exclusion", str(path), line)
        reason = _text(item, "reason")
        for kind, net, plen in _cidrs(item, "cidrs"):
            out.append(Range(kind, net, plen, "", "excluded", (("reason", reason),), f"{path}, line {item.line}"))
    return out


def _vendor(path: Path) -> Vendor:
    name = str(path)
    data = yamlfile.load(path)
    node = yamlfile.check_keys(data, {"name", "title", "abuse", "ranges", "notify"}, {"name", "ranges"}, "vendor",
                               name, 1)
    vendor_name = _text(node, "name")
    if vendor_name != path.stem:
        raise node.error(f"name {vendor_name!r} must be the file's name ({path.stem!r})", "name")
    if not set(vendor_name) <= _NAME_CHARS:
        raise node.error(f"name {vendor_name!r}: use lowercase letters, digits, - and _", "name")
    vendor = Vendor(name=vendor_name, title=_text(node, "title", False) or vendor_name,
                    abuse=_text(node, "abuse", False) or "", path=name)
    items = node["ranges"]
    if not isinstance(items, list) or not items:
        raise node.error("ranges must be a non-empty list", "ranges")
    for i, item in enumerate(items):
        line = items.lines[i] if hasattr(items, "lines") else node.where("ranges")
        vendor.rules.append(_rule(vendor_name, item, name, line))
    if "notify" in node:  # the policy folder is the vendors folder's parent
        vendor.notify = parse_notify(node["notify"], name, node.where("notify"), path.parent.parent, vendor.abuse)
    return vendor


def _rule(vendor: str, item, path: str, line: int) -> RangeRule:
    item = yamlfile.check_keys(item, {"feed", "file", "url", "select", "cidrs", "space", "label"}, {"space"},
                               "range", path, line)
    space = item["space"]
    if not isinstance(space, str) or space not in SPACES:
        raise item.error(f"space: unknown kind {space!r} (expected {', '.join(SPACES)})", "space")
    label = _text(item, "label", False)
    if ("feed" in item) == ("cidrs" in item):
        raise item.error("a range has either feed (with file) or cidrs, not both and not neither")
    if "cidrs" in item:
        for key in ("file", "url", "select"):
            if key in item:
                raise item.error(f"{key} belongs to a feed range, not to declared cidrs", key)
        return RangeRule(vendor, space, path, item.line, cidrs=_cidrs(item, "cidrs"), label=label)
    feed_name = item["feed"]
    if not isinstance(feed_name, str) or feed_name not in FEEDS:
        raise item.error(f"feed: unknown feed {feed_name!r} (expected {', '.join(sorted(FEEDS))})", "feed")
    file_text = _text(item, "file")
    url = _text(item, "url", False)
    if url is not None and not url.startswith(("https://", "http://")):
        raise item.error(f"url: {url!r} is not an http(s) URL", "url")
    chosen: list[tuple[str, tuple[str, ...]]] = []
    if "select" in item:
        selector = item["select"]
        if not isinstance(selector, yamlfile.Located):
            raise item.error("select must be a mapping such as {service: EC2}", "select")
        keys = FEEDS[feed_name].keys
        for key, value in selector.items():
            if key not in keys:
                allowed = ", ".join(keys) if keys else "none: it has no attributes"
                raise selector.error(f"select: unknown key {key!r} for feed {feed_name} (keys: {allowed})", key)
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
                raise selector.error(f"select {key}: a value or a list of values, not {value!r}", key)
            chosen.append((key, tuple(str(v) for v in values)))
    return RangeRule(vendor, space, path, item.line, feed=feed_name, file=Path(file_text), url=url,
                     select=tuple(chosen), label=label, file_line=item.where("file"),
                     select_line=item.where("select"))


def _label_values(entries, name: str) -> set[str]:
    out: set[str] = set()
    for entry in entries:
        value = entry.labels.get(name)
        if isinstance(value, str):
            out.add(value)
        elif value:
            out.update(value)
    return out


def _vendor_ranges(folder: Path, vendor: Vendor, warnings: list[ConfigError]) -> tuple[list[Range], list[Path]]:
    out: list[Range] = []
    files: list[Path] = []
    declared: dict[tuple[str, int, int], RangeRule] = {}
    cache: dict[tuple[str, Path], list] = {}
    for rule in vendor.rules:
        if rule.cidrs:
            entries = [(kind, net, plen, (("label", rule.label),) if rule.label else ()) for kind, net, plen in rule.cidrs]
        else:
            path = rule.file if rule.file.is_absolute() else folder / rule.file
            if not path.exists():
                raise ConfigError(f"file: {rule.file} does not exist (looked at {path}; `rbl feeds fetch` "
                                  "downloads it)", rule.path, rule.file_line)
            files.append(path)
            key = (rule.feed, path)
            if key not in cache:
                cache[key] = read_feed(rule.feed, path)
            chosen = select(cache[key], {k: list(v) for k, v in rule.select})
            if not chosen:
                warnings.append(ConfigError(
                    f"select matches nothing in {rule.file} ({len(cache[key])} entries): this range classifies "
                    "no address", rule.path, rule.select_line))
            else:
                for name, values in rule.select:
                    # A misspelt value among several still matches something: name it.
                    seen = _label_values(cache[key], name)
                    for value in values:
                        if value not in seen:
                            warnings.append(ConfigError(
                                f"select {name}: {value!r} matches nothing in {rule.file}", rule.path,
                                rule.select_line))
            entries = [(e.kind, e.net, e.plen, tuple((k, v if isinstance(v, str) else ",".join(v))
                                                      for k, v in e.labels.items() if v))
                       for e in chosen]
        for kind, net, plen, labels in entries:
            other = declared.get((kind, net, plen))
            if other is not None and other.space != rule.space:
                cidr = str(ipaddress.ip_network((net, plen)))
                raise ConfigError(f"{cidr} is {rule.space} here but {other.space} at line {other.line}: "
                                  "a vendor's ranges must not contradict each other", rule.path, rule.line)
            declared.setdefault((kind, net, plen), rule)
            out.append(Range(kind, net, plen, vendor.name, rule.space, labels, rule.source))
    return out, files
