"""``rbl feeds fetch``: refresh the vendors' range feeds without ever serving a bad one.

A feed decides which space is shared and which is dedicated, so a broken
download must never replace a good file: the body is parsed with the feed's own
parser before anything is written, an empty result is refused, and the new
file takes the old one's place by an atomic rename. On any failure the last
good file and its validators stay byte for byte as they were.

Vendors publish these files for anyone to poll, so we poll politely: the
validators of the last download (ETag, Last-Modified) are kept next to the
feed in ``<file>.http.json`` and sent back as a conditional GET; a ``304``
costs the vendor nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from rbl.errors import RblError
from rbl.files import replaced
from rbl.policy.feeds import FEEDS, read_feed

UPDATED = "updated"
UNCHANGED = "unchanged"
FAILED = "failed"

SIDECAR_SUFFIX = ".http.json"
USER_AGENT = "rbl-feeds-fetch/0.1 (+DNSBL range feed refresh)"
_CONCURRENCY = 8  # downloads at once: enough for every vendor, gentle on a small machine
_CHUNK = 1 << 16


@dataclass(frozen=True)
class FetchTarget:
    """A feed file to refresh: parser name in :data:`FEEDS`, where it lives, where it comes from."""

    feed: str
    path: Path
    url: str
    # Not a range feed (a listing source): parses a body (bytes, where from) and returns its
    # entry count, raising RblError for a bad one.
    reader: Callable[[bytes, str], int] | None = None


@dataclass
class FetchResult:
    """What became of one target: ``updated``, ``unchanged`` or ``failed``, and why, for people."""

    target: FetchTarget
    status: str
    detail: str
    entries: int


class _Failed(Exception):
    """This target failed for a reason worth saying as it is."""


def sidecar_path(path: Path | str) -> Path:
    """Where a feed file's HTTP validators are kept: ``<file>.http.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _header_value(value: object) -> str | None:
    """A validator fit to send back: a string without line breaks (the sidecar is only a file)."""
    if isinstance(value, str) and value and value.isprintable():
        return value
    return None


def _conditional_headers(target: FetchTarget) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from the sidecar, when it is for this url and the file exists."""
    path = Path(target.path)
    if not path.is_file():
        return {}
    try:
        saved = json.loads(sidecar_path(path).read_bytes())
    except (OSError, ValueError):  # no sidecar, or one we cannot read: fetch the whole file
        return {}
    if not isinstance(saved, dict) or saved.get("url") != target.url:
        return {}
    headers = {}
    if etag := _header_value(saved.get("etag")):
        headers["If-None-Match"] = etag
    if last_modified := _header_value(saved.get("last_modified")):
        headers["If-Modified-Since"] = last_modified
    return headers


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, durably; an operator's chmod of the file survives."""
    with replaced(path, 0o644, keep_mode=True) as out:
        out.write(data)


def _install(path: Path, body: bytes, sidecar: dict, replace_feed: bool) -> None:
    """Put the new feed (if it changed) and then its validators in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if replace_feed:
        _write_atomic(path, body)
    # Written after the feed: a crash between the two leaves old validators, which
    # only cost one full download, never a 304 for a file we do not have.
    _write_atomic(sidecar_path(path), (json.dumps(sidecar, indent=2) + "\n").encode())


async def _download(session: aiohttp.ClientSession, target: FetchTarget, headers: dict[str, str],
                    max_bytes: int) -> tuple[int, bytes, dict[str, str | None]]:
    """``(status, body, validators)``; the body is read in chunks and refused past ``max_bytes``."""
    async with session.get(target.url, headers=headers) as resp:
        if resp.status == 304:
            return 304, b"", {}
        if not 200 <= resp.status < 300:
            raise _Failed(f"HTTP {resp.status} {resp.reason or ''}".rstrip())
        too_big = f"larger than the limit of {max_bytes:,} bytes"
        if resp.content_length is not None and resp.content_length > max_bytes:
            raise _Failed(f"{too_big} (Content-Length {resp.content_length:,})")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > max_bytes:
                raise _Failed(too_big)
        validators = {"etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
        return resp.status, bytes(body), validators


async def _fetch(session: aiohttp.ClientSession, target: FetchTarget, timeout: float,
                 max_bytes: int) -> tuple[str, str, int]:
    path = Path(target.path)
    if target.reader is not None:
        parse = target.reader

        def on_disk() -> int:
            return target.reader(path.read_bytes(), str(path))
    else:
        feed = FEEDS.get(target.feed)
        if feed is None:
            raise _Failed(f"unknown feed {target.feed!r} (known: {', '.join(sorted(FEEDS))})")

        def parse(body: bytes, url: str) -> int:
            return len(feed.parse(body, url))

        def on_disk() -> int:
            return len(read_feed(target.feed, path))

    headers = _conditional_headers(target)
    async with asyncio.timeout(timeout):
        status, body, validators = await _download(session, target, headers, max_bytes)

    if status == 304:
        if not headers:
            raise _Failed("HTTP 304 Not Modified, but we asked for the whole file")
        try:
            entries = await asyncio.to_thread(on_disk)
        except (RblError, OSError) as exc:
            return UNCHANGED, f"not modified (304); the file on disk does not parse: {exc}", 0
        return UNCHANGED, "not modified (304)", entries

    # Parse before replace: the parser's verdict on the body decides, not the HTTP status.
    parsed = await asyncio.to_thread(parse, body, target.url)
    if not parsed:
        raise _Failed(f"the download parsed to 0 entries ({len(body):,} bytes); keeping the last good file")
    try:
        same = path.read_bytes() == body
    except OSError:
        same = False
    sidecar = {"url": target.url, **validators,
               "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        await asyncio.to_thread(_install, path, body, sidecar, not same)
    except OSError as exc:
        raise _Failed(f"cannot write {exc.filename or path}: {exc.strerror or exc}") from None
    if same:
        return UNCHANGED, f"same content (HTTP {status}), {parsed:,} entries", parsed
    return UPDATED, f"{parsed:,} entries", parsed


def _reason(exc: BaseException, timeout: float) -> str:
    """A failure in words a person can act on."""
    if isinstance(exc, (_Failed, RblError)):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad response: HTTP {exc.status} {exc.message}"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid url: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _fetch_one(session: aiohttp.ClientSession, gate: asyncio.Semaphore, target: FetchTarget,
                     timeout: float, max_bytes: int) -> tuple[str, str, int]:
    async with gate:
        try:
            return await _fetch(session, target, timeout, max_bytes)
        except Exception as exc:  # one target's failure is its result, never the whole run's
            return FAILED, _reason(exc, timeout), 0


async def fetch_feeds(targets: list[FetchTarget], timeout: float = 30.0,
                      max_bytes: int = 64 << 20) -> list[FetchResult]:
    """Refresh every target concurrently; one result per target, in input order.

    ``timeout`` bounds each download (connect to last byte). Targets that share
    a path are fetched once, with the first one's feed and url.
    """
    groups: dict[str, list[int]] = {}
    for i, target in enumerate(targets):
        groups.setdefault(os.path.abspath(target.path), []).append(i)
    gate = asyncio.Semaphore(_CONCURRENCY)
    # No session-wide timeout: aiohttp's default (5 min) would cut a longer --timeout short.
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT},
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        outcomes = await asyncio.gather(*(_fetch_one(session, gate, targets[members[0]], timeout, max_bytes)
                                          for members in groups.values()))
    results: list[FetchResult | None] = [None] * len(targets)
    for members, (status, detail, entries) in zip(groups.values(), outcomes):
        for i in members:
            results[i] = FetchResult(targets[i], status, detail, entries)
    return results  # type: ignore[return-value]  # every slot is filled above


def fetch_all(targets: list[FetchTarget], timeout: float = 30.0, max_bytes: int = 64 << 20) -> list[FetchResult]:
    """:func:`fetch_feeds` for callers without an event loop (the CLI)."""
    return asyncio.run(fetch_feeds(list(targets), timeout, max_bytes))
