"""Listing sources on a schedule: an upstream list mirrored by rbl serve, served by a real aiohttp server.

Issue 12: a new version is listed and answered within its period plus a second;
a broken or empty download keeps the last good listings, said in the log and in metrics.
"""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from aiohttp import web

from conftest import LoopbackHTTP, Server
from test_metrics import scrape

EVERY = 2  # seconds between fetches


class Upstream:
    """A list publisher on loopback whose body and status the test changes."""

    def __init__(self) -> None:
        self.body, self.status, self.fetches = b"", 200, 0
        self.http = LoopbackHTTP("upstream")

    @property
    def port(self) -> int:
        return self.http.port

    def __enter__(self) -> "Upstream":
        app = web.Application()
        app.router.add_get("/list.txt", self.serve)
        self.http.start(app)
        return self

    def __exit__(self, *exc) -> None:
        self.http.stop()

    async def serve(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.status != 200:
            return web.Response(status=self.status, text="upstream is down")
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=self.body, headers={"ETag": etag}, content_type="text/plain")


def write_source(workspace, port: int, every: int = EVERY, **extra: str) -> None:
    folder = workspace.policy / "sources"
    folder.mkdir(exist_ok=True)
    lines = [f"url: http://127.0.0.1:{port}/list.txt", "format: plain", "category: botnet", f"every: {every}s",
             "expires: 1d", *(f"{k}: {v}" for k, v in extra.items())]
    (folder / "trap-feed.yaml").write_text("\n".join(lines) + "\n")


def listed(server: Server, address: str) -> bool:
    name = ".".join(reversed(address.split("."))) + ".bl.example"
    return server.query(name).rcode() == 0 and bool(server.addresses(name))


def metric(server: Server, token: str, status: str) -> float:
    _status, _type, text = scrape(server, token)
    found = re.search(r'rbl_source_fetches_total\{source="trap-feed",status="' + status + r'"\} (\S+)', text)
    return float(found[1]) if found else 0.0


def test_a_scheduled_source_is_mirrored_and_a_broken_download_keeps_the_last_good(workspace):
    with Upstream() as upstream:
        upstream.body = b"# version 1\n192.0.2.10\n192.0.2.11\n"
        write_source(workspace, upstream.port)
        token = workspace.rbl("operator", "token", "create").stdout.split()[-1]
        server = Server(workspace)
        try:
            server.wait_for(lambda: listed(server, "192.0.2.10"), timeout=EVERY + 5)
            assert listed(server, "192.0.2.11") and not listed(server, "192.0.2.12")

            # A new version: listed within its period plus a second, the vanished line gone.
            upstream.body = b"# version 2\n192.0.2.11\n192.0.2.12\n"
            changed = time.monotonic()
            server.wait_for(lambda: listed(server, "192.0.2.12") and not listed(server, "192.0.2.10"),
                            timeout=EVERY + 1)
            took = time.monotonic() - changed
            print(f"a new upstream version answered {took:.2f} s after it was published (every {EVERY} s)")
            assert listed(server, "192.0.2.11")
            shown = workspace.rbl("listing", "show", "192.0.2.11").stdout
            assert "source=trap-feed" in shown and "category=botnet" in shown

            # Down, then an empty body: the last good listings stay; the log and metrics say so.
            for failures, (status, body) in enumerate(((503, b""), (200, b"# nothing today\n")), 1):
                upstream.status, upstream.body = status, body
                seen = upstream.fetches
                # The fetch is counted when it is asked; its failure once the primary has read the reply.
                server.wait_for(lambda: upstream.fetches >= seen + 1 and metric(server, token, "failed") >= failures,
                                timeout=EVERY + 2)
                assert listed(server, "192.0.2.11") and listed(server, "192.0.2.12")
            assert metric(server, token, "failed") >= 2
            log = "".join(server.log)
            assert "source trap-feed: HTTP 503" in log and "the last good listings stay" in log, log
            assert "parsed to 0 entries" in log, log
            assert not listed(server, "192.0.2.10")
        finally:
            server.stop()


def test_rbl_sources_fetch_by_hand_and_bad_source_files(workspace):
    with Upstream() as upstream:
        upstream.body = b"198.51.100.7\n198.51.100.0/28\n"
        write_source(workspace, upstream.port)
        out = workspace.rbl("sources", "fetch").stdout
        assert "trap-feed: updated" in out and "2 added" in out, out
        out = workspace.rbl("sources", "fetch", "trap-feed").stdout
        assert "trap-feed: unchanged" in out and "2 refreshed, 0 removed" in out, out  # a 304, still replaced
        upstream.status = 500
        proc = workspace.rbl("sources", "fetch", check=False)
        assert proc.returncode == 2 and "HTTP 500" in proc.stderr and "last good listings stay" in proc.stderr
        assert "198.51.100.7" in workspace.rbl("listing", "show", "198.51.100.7").stdout
        proc = workspace.rbl("sources", "fetch", "nope", check=False)
        assert proc.returncode == 2 and "no source nope" in proc.stderr


@pytest.mark.parametrize("line, message", [
    ("url: ftp://example.net/list.txt", "is not an http(s) URL"),
    ("format: csv", "format: 'csv' is not one of"),
    ("every: never", "every: a source is fetched"),
    ("zone: other.example", "is not served here"),
    ("colour: blue", "unknown key 'colour'"),
])
def test_policy_check_names_the_source_file_and_line(workspace, line, message):
    folder = workspace.policy / "sources"
    folder.mkdir()
    good = {"url": "url: https://lists.example.net/x.txt", "format": "format: plain", "every": "every: 1h"}
    key = line.split(":")[0]
    good[key] = line
    (folder / "upstream.yaml").write_text("\n".join(good.values()) + "\n")
    proc = workspace.rbl("policy", "check", check=False)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr and "upstream.yaml" in proc.stderr, proc.stderr
    if key in ("url", "format", "every", "colour"):
        number = list(good).index(key) + 1
        assert f"upstream.yaml:{number}" in proc.stderr or f"line {number}" in proc.stderr, proc.stderr
