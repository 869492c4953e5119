"""Shared fixtures: a real `rbl serve` on port 0, the real CLI, real peers."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def require_tool(name: str) -> str:
    """The path of a peer or tool; under CI a missing one fails instead of skipping."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None
    )
    if path is None:
        message = f"{name} is not installed (the README's test command installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing: the tests read real data from ../shared/data"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class Workspace:
    """A store, policy and zones of a test's own, copied from the shipped ones."""

    root: Path
    db: Path = field(init=False)
    policy: Path = field(init=False)
    zones: Path = field(init=False)

    def __post_init__(self) -> None:
        self.db = self.root / "rbl.db"
        self.policy = self.root / "policy"
        self.zones = self.root / "zones"
        shutil.copytree(ROOT / "policy", self.policy)
        shutil.copytree(ROOT / "zones", self.zones)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(RBL_DB=str(self.db), RBL_POLICY=str(self.policy), RBL_ZONES=str(self.zones))
        return env

    def rbl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        """Run the real CLI (``python -m rbl``) against this workspace."""
        proc = subprocess.run([sys.executable, "-m", "rbl", *args], env=self.env, cwd=self.root,
                              capture_output=True, text=True, input=stdin, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"rbl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


def stored_bytes(workspace: Workspace) -> bytes:
    """Every byte the database keeps on disk: the main file, its WAL and shared memory."""
    out = b""
    for suffix in ("", "-wal", "-shm"):
        path = workspace.db.with_name(workspace.db.name + suffix)
        if path.exists():
            out += path.read_bytes()
    return out


def answers_test_point(proc: subprocess.Popen, port: int, origin: str, timeout: float) -> bool:
    """Whether a peer server (rbldnsd, NSD, Knot) on 127.0.0.1:port starts answering the RFC 5782
    test point 127.0.0.2 of ``origin`` within ``timeout`` seconds; False if it exits first."""
    query = dns.message.make_query(f"2.0.0.127.{origin}", "A").to_wire()
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                sock.sendto(query, ("127.0.0.1", port))
                reply = dns.message.from_wire(sock.recv(65535))
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    return True
            except (socket.timeout, ConnectionRefusedError):
                time.sleep(0.05)
    return False


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1, for a peer server (Knot, NSD, rbldnsd) to bind."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    raise AssertionError("no free port for a peer server")


def peer_on_free_port(name: str, start: Callable[[int], subprocess.Popen], origin: str, timeout: float,
                      log: Callable[[], str]) -> tuple[subprocess.Popen, int]:
    """A peer server answering the test point of ``origin``, and its port: ``start(port)`` launches
    it; one that does not answer within ``timeout`` seconds is stopped and started on another port."""
    for _ in range(5):  # the free port may be taken between probing and binding
        port = free_port()
        proc = start(port)
        if answers_test_point(proc, port, origin, timeout):
            return proc, port
        stop_process(proc)
    raise AssertionError(f"{name} did not start:\n{log()}")


def stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL after 10 s: a test never leaves a server behind."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LoopbackHTTP:
    """A real aiohttp server on 127.0.0.1 (a free port) in a thread with its own event loop, so the
    code under test can run its own (``asyncio.run``) in the test's thread, as the CLI does."""

    def __init__(self, name: str = "loopback-http") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.runner = None
        self.port = 0

    def start(self, app, **runner_options) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(app, runner_options), self.loop).result(10)

    async def _start(self, app, runner_options: dict) -> None:
        from aiohttp import web

        self.runner = web.AppRunner(app, shutdown_timeout=1, **runner_options)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


class Server:
    """A real ``rbl serve`` subprocess listening on a free loopback port."""

    def __init__(self, workspace: Workspace, *extra: str, env: dict[str, str] | None = None):
        self.workspace = workspace
        self.log: list[str] = []
        if not any(arg.startswith("--http") for arg in extra):
            extra = ("--http", "127.0.0.1:0", *extra)
        self.extra, self.env = extra, env
        self.http_port: int | None = None
        # stdout and stderr in one pipe: self.log is everything the server and its workers print.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rbl", "serve", "--dns", "127.0.0.1:0", *extra],
            env=env or workspace.env, cwd=workspace.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = self.proc.stdout
        self.port = self._wait_for_port()
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.output.readline()
            if not line:
                raise AssertionError("rbl serve exited early:\n" + "".join(self.log))
            self.log.append(line)
            http = re.search(r"HTTP on http://\S+:(\d+)/", line)
            if http:
                self.http_port = int(http[1])
            match = re.search(r"DNS on \S+:(\d+)", line)
            if match:
                return int(match[1])
        raise AssertionError("rbl serve did not report its port:\n" + "".join(self.log))

    def _drain(self) -> None:
        for line in self.output:
            self.log.append(line)

    def query(self, name: str, rdtype: str = "A", tcp: bool = False, **kwargs) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, **kwargs)
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=5)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=5)

    def addresses(self, name: str) -> set[str]:
        reply = self.query(name, "A")
        return {rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == dns.rdatatype.A}

    def wait_for(self, predicate, timeout: float = 1.0) -> float:
        """Seconds until predicate() holds; fails after timeout."""
        start = time.monotonic()
        while True:
            if predicate():
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"not true within {timeout} s; server log:\n{''.join(self.log)}")
            time.sleep(0.02)

    def get(self, path: str, token: str | None = None) -> tuple[int, dict]:
        """GET a route of the real HTTP API: status and JSON body."""
        return self.http("GET", path, token=token)

    def http(self, method: str, path: str, body=None, token: str | None = None, headers: dict | None = None,
             raw: bytes | None = None) -> tuple[int, dict]:
        """One request to the real HTTP API (a JSON body, or raw bytes): status and JSON reply."""
        import json
        import urllib.error
        import urllib.request

        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> None:
        stop_process(self.proc)
        self._drainer.join(5)
        self.output.close()

    def children(self) -> list[int]:
        """The ids of the primary's child processes (its DNS workers)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid ...
            except (OSError, IndexError):
                continue  # gone meanwhile
            if int(fields[1]) == self.proc.pid:
                found.append(int(stat.parent.name))
        return found

    def kill(self) -> list[int]:
        """SIGKILL the primary, as a crash or the OOM killer would: no cleanup of its own runs.

        Its DNS workers should see the end of their input and stop by themselves; one
        still there after 10 s is killed, so a test never leaves a process behind, and
        its id returned (an orphan would go on answering on the port from a stale
        snapshot). Start the server again on the same store with :meth:`restarted`.
        """
        workers = self.children()
        self.proc.kill()
        self.proc.wait()
        self._drainer.join(5)
        self.output.close()
        deadline = time.monotonic() + 10
        for pid in workers:
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        orphans = [pid for pid in workers if _running(pid)]
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
            self.log.append(f"(test) DNS worker {pid} outlived its primary: killed\n")
        return orphans

    def restarted(self) -> "Server":
        """A new ``rbl serve`` with the same arguments on the same workspace (new ports if they were 0)."""
        return Server(self.workspace, *self.extra, env=self.env)


def _running(pid: int) -> bool:
    """Whether a process exists and is not a zombie (a reparented child its new parent reaps)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def server(workspace: Workspace):
    srv = Server(workspace)
    yield srv
    srv.stop()
