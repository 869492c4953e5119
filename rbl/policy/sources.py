"""Listing sources: upstream lists an operator mirrors, fetched on a schedule and replaced whole.

``policy/sources/<name>.yaml`` names one list::

    url: https://www.spamhaus.org/drop/drop.txt
    format: spamhaus-drop        # plain, firehol, ipsum, spamhaus-drop, rbldnsd
    zone: bl.example             # default: the first zone
    category: hijacked
    reason: Spamhaus DROP        # for entries that carry none
    expires: 2d                  # default: the listing policy's expiry
    every: 1h

The primary (and ``rbl sources fetch``, by hand) downloads it with the range feeds'
rules (:mod:`rbl.policy.fetch`: conditional GET, parse before replace, an empty or
broken download refused, the last good file kept), into ``<store>.sources/`` next to
the store, then imports it with ``replace``: the source's listings in its zone are
exactly the list's, in one transaction. A failed download changes no listing.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rbl import yamlfile
from rbl.errors import ConfigError
from rbl.policy.listing import Expiry, parse_duration
from rbl.store.formats import FORMATS, digest, read_rows
from rbl.store.listings import Imported, ListingStore

if TYPE_CHECKING:
    from rbl.policy.fetch import FetchResult
    from rbl.policy.notices import Notices

_KEYS = ("url", "format", "zone", "category", "reason", "expires", "every")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class Source:
    """One upstream list, as its file says."""

    name: str  # the file's stem: the listings' source
    url: str
    format: str
    zone: str | None  # None: the first zone
    category: str | None
    reason: str | None
    expires: dt.timedelta | None  # None: never (when expires_given)
    expires_given: bool  # False: the listing policy's expiry, with its repeat rule
    every: dt.timedelta
    file: str  # the policy file, for messages

    def download(self, db: str | Path) -> Path:
        """Where its last good download is kept: ``<store>.sources/<name>.list``."""
        db = Path(db)
        return db.with_name(db.name + ".sources") / f"{self.name}.list"


def sources_folder(policy: str | Path) -> Path:
    return Path(policy) / "sources"


def source_files(policy: str | Path) -> list[Path]:
    return sorted(sources_folder(policy).glob("*.yaml"))


def load_sources(policy: str | Path) -> list[Source]:
    """Every ``policy/sources/*.yaml``, checked.

    :raises ConfigError: naming the file and line of the first error.
    """
    return [_source(path) for path in source_files(policy)]


def _source(path: Path) -> Source:
    name = path.stem
    data = yamlfile.load(path)
    if not isinstance(data, yamlfile.Located):
        raise ConfigError("a source file is a mapping (url:, format:, every: ...)", str(path), 1)
    if not set(name) <= _NAME_CHARS:
        raise ConfigError(f"source name {name!r}: use lower-case letters, digits, '-', '_' and '.'", str(path), 1)
    for key in data:
        if key not in _KEYS:
            raise data.error(f"unknown key {key!r} (expected {', '.join(_KEYS)})", key)
    for key in ("url", "format", "every"):
        if key not in data:
            raise data.error(f"missing {key!r}")
    url = data["url"]
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise data.error(f"url: {url!r} is not an http(s) URL", "url")
    fmt = data["format"]
    if fmt not in FORMATS:
        raise data.error(f"format: {fmt!r} is not one of {', '.join(FORMATS)}", "format")
    text = {}
    for key in ("zone", "category", "reason"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise data.error(f"{key}: expected text", key)
        text[key] = value.strip() if value else None
    try:
        every = parse_duration(data["every"])
    except ValueError as exc:
        raise data.error(f"every: {exc}", "every") from None
    if every is None or every < dt.timedelta(seconds=1):
        raise data.error("every: a source is fetched at least once in a while (1s or more)", "every")
    expires = None
    if "expires" in data:
        try:
            expires = parse_duration(data["expires"])
        except ValueError as exc:
            raise data.error(f"expires: {exc}", "expires") from None
    zone = text["zone"].lower().rstrip(".") if text["zone"] else None
    return Source(name, url, fmt, zone, text["category"], text["reason"], expires, "expires" in data, every,
                  str(path))


def _counter(fmt: str):
    """A fetch reader: the body written to a temporary file and read by the list's parser."""

    def count(body: bytes, where: str) -> int:
        fd, name = tempfile.mkstemp(prefix=".rbl-source-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(body)
            return sum(1 for _ in read_rows(name, fmt))
        finally:
            os.unlink(name)

    return count


async def fetch_source(source: Source, db: str | Path, timeout: float = 30.0,
                       max_bytes: int = 512 << 20) -> FetchResult:
    """Download the source (the last good file stays on any failure)."""
    # Imported here: aiohttp costs a fifth of a second of every rbl serve start.
    from rbl.policy.fetch import FetchTarget, fetch_feeds

    target = FetchTarget(f"source {source.name}", source.download(db), source.url, reader=_counter(source.format))
    [result] = await fetch_feeds([target], timeout, max_bytes)
    return result


def replace_from(source: Source, db: str | Path, zone: str, expiry: Expiry, result: FetchResult,
                 notices: Notices | None = None) -> Imported | None:
    """Replace the source's listings with its last good download (None after a failed fetch);
    ``notices``: the vendors' notices hook (:class:`rbl.policy.notices.Notices`)."""
    if result.status == "failed":  # rbl.policy.fetch.FAILED
        return None
    path = source.download(db)
    expires = {"expires": source.expires} if source.expires_given else {"expires": expiry.default, "repeat": expiry}
    store = ListingStore(db)
    store.notices = notices
    try:
        return store.import_rows(read_rows(str(path), source.format), zone=source.zone or zone,
                                 actor=f"source:{source.name}", category=source.category, reason=source.reason,
                                 source=source.name, replace=True,
                                 about={"url": source.url, "file": str(path), "sha256": digest(str(path)),
                                        "format": source.format, "fetch": result.status}, **expires)
    finally:
        store.close()
