"""``rbl feeds fetch`` against a real aiohttp server on loopback serving the real feed files.

The server runs in a thread with its own event loop; the code under test runs
``fetch_all`` (its own ``asyncio.run``) in the test's thread, as the CLI does.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path

import pytest
from aiohttp import web
from conftest import SHARED_DATA, LoopbackHTTP, shared_file

from rbl.policy.fetch import FAILED, UNCHANGED, UPDATED, FetchTarget, fetch_all, sidecar_path

AWS = "aws-ip-ranges.json"
AWS_ENTRIES = 8971 + 4373


class FeedServer:
    """Serves ../shared/data/feeds with ETag and Last-Modified, honouring conditional GETs,
    plus endpoints that misbehave on purpose. Records every request's headers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.custom: dict[str, tuple[int, bytes]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.http = LoopbackHTTP("feed-server")

    @property
    def port(self) -> int:
        return self.http.port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        app = web.Application()
        app.router.add_get("/feeds/{name}", self.feed)
        app.router.add_get("/custom/{key}", self.custom_body)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/chunked", self.chunked)
        app.middlewares.append(self.record)
        # handler_cancellation: a client that gave up stops the slow handler, so cleanup is quick.
        self.http.start(app, handler_cancellation=True)

    def stop(self) -> None:
        self.http.stop()

    @web.middleware
    async def record(self, request: web.Request, handler):
        self.requests.append((request.path, dict(request.headers)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1

    async def feed(self, request: web.Request) -> web.Response:
        path = SHARED_DATA / "feeds" / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        modified = int(path.stat().st_mtime)
        headers = {"ETag": etag, "Last-Modified": email.utils.formatdate(modified, usegmt=True)}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        since = request.headers.get("If-Modified-Since")
        if since and "If-None-Match" not in request.headers:
            if email.utils.parsedate_to_datetime(since).timestamp() >= modified:
                return web.Response(status=304, headers=headers)
        if "delay" in request.query:
            await asyncio.sleep(float(request.query["delay"]))
        return web.Response(body=body, headers=headers, content_type="application/json")

    async def custom_body(self, request: web.Request) -> web.Response:
        status, body = self.custom[request.match_info["key"]]
        return web.Response(status=status, body=body)

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(body=b"{}")

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        """1 MB without a Content-Length: only counting while reading can stop it."""
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for _ in range(64):
                await response.write(b" " * 16384)
            await response.write_eof()
        except (ConnectionError, RuntimeError):  # the client stopped reading, as it should
            pass
        return response


@pytest.fixture(scope="module")
def feed_server():
    server = FeedServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def srv(feed_server: FeedServer) -> FeedServer:
    feed_server.requests.clear()
    feed_server.custom.clear()
    feed_server.max_in_flight = 0
    return feed_server


def closed_port() -> int:
    """A loopback port nobody listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in a folder with its bytes: 'untouched' means equal snapshots, no temp files."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_first_fetch_updates_and_writes_sidecar(srv, tmp_path):
    path = tmp_path / "feeds" / "aws-ip-ranges.json"  # the folder does not exist yet
    target = FetchTarget("aws-ip-ranges", path, srv.url(f"/feeds/{AWS}"))
    [result] = fetch_all([target])
    assert (result.status, result.detail, result.entries) == (UPDATED, "13,344 entries", AWS_ENTRIES)
    assert result.target == target
    assert path.read_bytes() == shared_file("feeds", AWS).read_bytes()
    sidecar = json.loads(sidecar_path(path).read_text())
    assert sidecar["url"] == target.url
    assert sidecar["etag"].startswith('"') and sidecar["last_modified"].endswith("GMT")
    assert sidecar["fetched_at"].endswith("+00:00")
    assert set(snapshot(path.parent)) == {"aws-ip-ranges.json", "aws-ip-ranges.json.http.json"}
    assert "If-None-Match" not in srv.requests[0][1]


def test_second_fetch_sends_validators_and_is_unchanged(srv, tmp_path):
    path = tmp_path / "aws.json"
    target = FetchTarget("aws-ip-ranges", path, srv.url(f"/feeds/{AWS}"))
    fetch_all([target])
    before = snapshot(tmp_path)
    [result] = fetch_all([target])
    assert (result.status, result.detail, result.entries) == (UNCHANGED, "not modified (304)", AWS_ENTRIES)
    etag = json.loads(sidecar_path(path).read_text())["etag"]
    sent = srv.requests[-1][1]
    assert sent["If-None-Match"] == etag
    assert sent["If-Modified-Since"] == json.loads(sidecar_path(path).read_text())["last_modified"]
    assert snapshot(tmp_path) == before


def test_last_modified_alone_makes_a_conditional_get(srv, tmp_path):
    path = tmp_path / "gcp.json"
    target = FetchTarget("gcp-cloud", path, srv.url("/feeds/gcp-cloud.json"))
    fetch_all([target])
    saved = json.loads(sidecar_path(path).read_text())
    sidecar_path(path).write_text(json.dumps({**saved, "etag": None}))  # a server that sends no ETag
    [result] = fetch_all([target])
    assert (result.status, result.entries) == (UNCHANGED, 782)
    assert "If-None-Match" not in srv.requests[-1][1]
    assert srv.requests[-1][1]["If-Modified-Since"] == saved["last_modified"]


def test_validators_of_another_url_are_not_sent(srv, tmp_path):
    path = tmp_path / "aws.json"
    fetch_all([FetchTarget("aws-ip-ranges", path, srv.url(f"/feeds/{AWS}"))])
    [result] = fetch_all([FetchTarget("aws-ip-ranges", path, srv.url(f"/feeds/{AWS}?mirror=2"))])
    assert "If-None-Match" not in srv.requests[-1][1]
    assert result.status == UNCHANGED and result.detail == "same content (HTTP 200), 13,344 entries"
    assert json.loads(sidecar_path(path).read_text())["url"].endswith("?mirror=2")  # validators now for this url


def test_validators_need_the_feed_file(srv, tmp_path):
    path = tmp_path / "aws.json"
    target = FetchTarget("aws-ip-ranges", path, srv.url(f"/feeds/{AWS}"))
    fetch_all([target])
    path.unlink()  # the sidecar alone must not turn into a 304 for a file we do not have
    [result] = fetch_all([target])
    assert result.status == UPDATED and "If-None-Match" not in srv.requests[-1][1]
    assert path.read_bytes() == shared_file("feeds", AWS).read_bytes()


def _aws_bytes() -> bytes:
    return shared_file("feeds", AWS).read_bytes()


# (id, server setup, url path, fetch keywords, detail pattern)
FAILURES = [
    ("http-500", lambda s: s.custom.update(x=(500, b"oops")), "/custom/x", {}, r"^HTTP 500 Internal Server Error$"),
    ("http-404", None, "/feeds/no-such-file.json", {}, r"^HTTP 404 Not Found$"),
    ("garbage-body", lambda s: s.custom.update(x=(200, b"<html>We are down</html>")), "/custom/x", {},
     r"/custom/x, line 1: not valid JSON"),
    ("truncated-json", lambda s: s.custom.update(x=(200, _aws_bytes()[:500_000])), "/custom/x", {},
     r"/custom/x, line \d+: not valid JSON"),
    ("bad-cidr", lambda s: s.custom.update(x=(200, _aws_bytes().replace(b'"3.5.140.0/22"', b'"3.5.140.0/33"'))),
     "/custom/x", {}, r"/custom/x, line 12: prefixes\[1\]: ip_prefix '3\.5\.140\.0/33' is not an IPv4 CIDR"),
    ("another-vendors-file", None, "/feeds/gcp-cloud.json", {}, r"gcp-cloud\.json, line 4: prefixes\[0\]: missing key 'ip_prefix'"),
    ("empty-lists", lambda s: s.custom.update(x=(200, b'{"syncToken": "1", "prefixes": [], "ipv6_prefixes": []}')),
     "/custom/x", {}, r"parsed to 0 entries"),
    ("empty-body", lambda s: s.custom.update(x=(200, b"")), "/custom/x", {}, r"not valid JSON"),
    ("over-max-bytes", None, f"/feeds/{AWS}", {"max_bytes": 100_000},
     r"^larger than the limit of 100,000 bytes \(Content-Length 2,063,224\)$"),
    ("over-max-bytes-chunked", None, "/chunked", {"max_bytes": 100_000}, r"^larger than the limit of 100,000 bytes$"),
    ("slow-server", None, "/slow", {"timeout": 0.5}, r"^timed out after 0\.5 s$"),
    ("closed-port", None, None, {}, r"^cannot connect: .*127\.0\.0\.1"),
]


@pytest.mark.parametrize("case", FAILURES, ids=[case[0] for case in FAILURES])
def test_failure_keeps_the_last_good_file(srv, tmp_path, case):
    _, setup, url_path, kwargs, pattern = case
    if setup:
        setup(srv)
    url = srv.url(url_path) if url_path else f"http://127.0.0.1:{closed_port()}/ip-ranges.json"
    path = tmp_path / "aws.json"
    # The last good file and validators for this very url: the request is conditional.
    path.write_bytes(_aws_bytes())
    sidecar_path(path).write_text(json.dumps({"url": url, "etag": '"old"', "last_modified": None}))
    before = snapshot(tmp_path)
    started = time.monotonic()
    [result] = fetch_all([FetchTarget("aws-ip-ranges", path, url)], **kwargs)
    assert result.status == FAILED and result.entries == 0
    assert re.search(pattern, result.detail), result.detail
    assert snapshot(tmp_path) == before  # byte for byte, and no temp file left behind
    assert time.monotonic() - started < 5


def test_failure_without_a_previous_file_leaves_nothing(srv, tmp_path):
    srv.custom["x"] = (200, b"not a feed")
    [result] = fetch_all([FetchTarget("aws-ip-ranges", tmp_path / "aws.json", srv.url("/custom/x"))])
    assert result.status == FAILED
    assert list(tmp_path.iterdir()) == []


def test_unknown_feed_fails_without_a_request(srv, tmp_path):
    [result] = fetch_all([FetchTarget("aws", tmp_path / "aws.json", srv.url(f"/feeds/{AWS}"))])
    assert result.status == FAILED and result.detail.startswith("unknown feed 'aws'")
    assert srv.requests == []


def test_targets_sharing_a_path_are_fetched_once(srv, tmp_path):
    (tmp_path / "feeds").mkdir()
    first = FetchTarget("aws-ip-ranges", tmp_path / "feeds" / "aws.json", srv.url(f"/feeds/{AWS}"))
    second = FetchTarget("aws-ip-ranges", tmp_path / "feeds" / ".." / "feeds" / "aws.json", first.url)
    results = fetch_all([first, second])
    assert [r.target for r in results] == [first, second]
    assert [(r.status, r.entries) for r in results] == [(UPDATED, AWS_ENTRIES)] * 2
    assert len(srv.requests) == 1


def test_several_targets_run_concurrently_and_report_in_order(srv, tmp_path):
    srv.custom["x"] = (503, b"")
    targets = [
        FetchTarget("gcp-cloud", tmp_path / "gcp.json", srv.url("/feeds/gcp-cloud.json?delay=0.4")),
        FetchTarget("aws-ip-ranges", tmp_path / "broken.json", srv.url("/custom/x")),
        FetchTarget("oracle-public-ip-ranges", tmp_path / "oracle.json",
                    srv.url("/feeds/oracle-public_ip_ranges.json?delay=0.4")),
        FetchTarget("cidr-list", tmp_path / "cf4.txt", srv.url("/feeds/cloudflare-ips-v4.txt?delay=0.4")),
        FetchTarget("geofeed", tmp_path / "linode.csv", srv.url("/feeds/linode-geofeed.csv?delay=0.4")),
    ]
    results = fetch_all(targets)
    assert [r.target for r in results] == targets
    assert [(r.status, r.entries) for r in results] == [
        (UPDATED, 782), (FAILED, 0), (UPDATED, 896), (UPDATED, 15), (UPDATED, 4552)]
    assert results[1].detail == "HTTP 503 Service Unavailable"
    assert srv.max_in_flight >= 4  # the four delayed downloads overlapped
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"{name}{suffix}" for name in ("gcp.json", "oracle.json", "cf4.txt", "linode.csv") for suffix in ("", ".http.json"))


def test_replaced_file_keeps_its_permissions(srv, tmp_path):
    path = tmp_path / "cf4.txt"
    path.write_text("192.0.2.0/24\n")
    path.chmod(0o640)
    [result] = fetch_all([FetchTarget("cidr-list", path, srv.url("/feeds/cloudflare-ips-v4.txt"))])
    assert result.status == UPDATED and result.detail == "15 entries"
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.read_bytes() == shared_file("feeds", "cloudflare-ips-v4.txt").read_bytes()


def test_rbl_feeds_fetch_refreshes_the_shipped_demo_policy(srv, tmp_path):
    """The CLI end to end: the demo's AWS excerpt replaced by the real feed, then classifying with it."""
    import subprocess
    import sys

    from conftest import Workspace

    workspace = Workspace(tmp_path)
    aws = workspace.policy / "vendors" / "aws.yaml"
    aws.write_text(aws.read_text().replace("https://ip-ranges.amazonaws.com/ip-ranges.json", srv.url(f"/feeds/{AWS}")))
    broken = workspace.policy / "vendors" / "gcp.yaml"
    broken.write_text(broken.read_text().replace("https://www.gstatic.com/ipranges/cloud.json",
                                                 f"http://127.0.0.1:{closed_port()}/cloud.json"))
    for vendor in ("azure", "oracle", "digitalocean", "linode"):  # no network beyond loopback
        (workspace.policy / "vendors" / f"{vendor}.yaml").unlink()
    gcp_before = (workspace.policy / "feeds" / "gcp-cloud.json").read_bytes()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rbl", *args], env=workspace.env, cwd=workspace.root,
                              capture_output=True, text=True, timeout=120)

    before = run("explain", "35.180.1.1", "--json")  # EC2 eu-west-3 in the real feed
    assert '"range": null' in before.stdout  # not in the demo excerpt
    fetched = run("feeds", "fetch", "--timeout", "5")
    assert fetched.returncode == 2  # the GCP feed failed
    assert f"aws-ip-ranges.json: updated: {AWS_ENTRIES:,} entries" in fetched.stdout
    assert "gcp-cloud.json: failed" in fetched.stderr
    assert (workspace.policy / "feeds" / "aws-ip-ranges.json").read_bytes() == shared_file("feeds", AWS).read_bytes()
    assert (workspace.policy / "feeds" / "gcp-cloud.json").read_bytes() == gcp_before  # the last good file kept
    checked = run("policy", "check")
    assert checked.returncode == 0, checked.stderr
    after = run("explain", "35.180.1.1", "--json")
    assert '"cidr": "35.180.0.0/16"' in after.stdout and '"space": "shared"' in after.stdout
    again = run("feeds", "fetch", "--timeout", "5")
    assert "aws-ip-ranges.json: unchanged" in again.stdout
