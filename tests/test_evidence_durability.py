"""Evidence under load survives a SIGKILL of the server: every 2xx is in the store afterwards.

Several vendor clients submit evidence to a real ``rbl serve`` for 30 seconds; at
about 12 s the server is killed with SIGKILL (no cleanup, as a crash or the OOM
killer would) and started again on the same database file. Clients act like
careful vendors: a request that gets no answer (connection refused or cut) is
retried with the same Idempotency-Key and body until it gets one. Afterwards
every submission that was answered 2xx must be in the store, whole, once; and a
retry of it is answered as a replay that stores nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field

import aiohttp

from conftest import Server

SECONDS = 30.0  # of submitting, downtime included
KILL_AT = 12.0
CLIENTS = 4
HARD_TIMEOUT = 150.0  # the whole run, restart and retries included
SPACE = [(0x03058C00, 22), (0x34040000, 14), (0x36F70000, 16), (0x0D7D0000, 16)]  # aws EC2 (shared) in policy/feeds/
ACTIONS = ["tenant_terminated", "tenant_suspended", "port25_blocked", "egress_quarantined", "credentials_reset"]


@dataclass
class Answered:
    key: str
    body: bytes
    submission: int
    evidence: list[int]
    replayed: bool
    at: float  # monotonic time of the answer
    retried: bool  # some earlier attempt got no answer


@dataclass
class Run:
    url: str
    token: str
    answered: list[Answered] = field(default_factory=list)
    wrong: list[tuple[str, int, str]] = field(default_factory=list)  # key, status, body: 4xx/5xx
    unanswered: list[str] = field(default_factory=list)
    connection_errors: int = 0
    killed_at: float | None = None
    restarted_at: float | None = None
    workers: list[int] = field(default_factory=list)  # the killed primary's DNS workers
    orphans: list[int] = field(default_factory=list)  # those still running 10 s after it


def body_for(rng: random.Random, now: dt.datetime) -> bytes:
    items = []
    for _ in range(rng.choice([1, 1, 1, 2, 5])):
        net, plen = rng.choice(SPACE)
        address = net + rng.randrange(1 << (32 - plen))
        subject = ".".join(str(address >> s & 255) for s in (24, 16, 8, 0))
        if rng.random() < 0.1:  # now and then a tenant's /28
            subject = ".".join(str(address >> s & 255) for s in (24, 16, 8)) + f".{address & 0xF0}/28"
        acted = now - dt.timedelta(minutes=rng.randrange(1, 600))
        items.append({"subject": subject, "action": rng.choice(ACTIONS), "reference": f"T-{rng.randrange(10**6)}",
                      "acted_at": acted.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return json.dumps({"items": items}).encode()


async def client(n: int, run: Run, session: aiohttp.ClientSession, ends: float, gives_up: float) -> None:
    rng = random.Random(n)
    count = 0
    while time.monotonic() < ends:
        count += 1
        key = f"load-{n}-{count}"
        body = body_for(rng, dt.datetime.now(dt.timezone.utc))
        retried = False
        while True:  # the same key and body until the server answers: a retry is safe
            if time.monotonic() > gives_up:
                run.unanswered.append(key)
                return
            try:
                async with session.post(run.url, data=body, headers={
                        "Authorization": f"Bearer {run.token}", "Content-Type": "application/json",
                        "Idempotency-Key": key}) as response:
                    status, text = response.status, await response.text()
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError):
                run.connection_errors += 1  # expected while the server is down
                retried = True
                await asyncio.sleep(0.05)
                continue
            if 200 <= status < 300:
                reply = json.loads(text)
                run.answered.append(Answered(key, body, reply["submission"], reply["evidence"], reply["replayed"],
                                             time.monotonic(), retried))
            else:
                run.wrong.append((key, status, text[:300]))
            break


async def load(servers: list[Server], run: Run) -> None:
    started = time.monotonic()
    ends, gives_up = started + SECONDS, started + HARD_TIMEOUT - 20
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        clients = [asyncio.create_task(client(n, run, session, ends, gives_up)) for n in range(CLIENTS)]
        await asyncio.sleep(KILL_AT)
        run.killed_at = time.monotonic()
        run.workers = servers[-1].children()
        run.orphans = await asyncio.to_thread(servers[-1].kill)  # mid-flight: the clients are still submitting
        # Started again on the same database file, in a thread: the clients keep trying meanwhile.
        servers.append(await asyncio.to_thread(servers[-1].restarted))
        run.restarted_at = time.monotonic()
        run.url = f"http://127.0.0.1:{servers[-1].http_port}/v1/evidence"
        await asyncio.gather(*clients)


def test_every_acknowledged_submission_survives_a_sigkill(workspace):
    aws = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    (workspace.root / "tmp").mkdir()
    # A killed primary cannot remove its snapshot folder: keep it in the test's own directory.
    servers = [Server(workspace, env={**workspace.env, "TMPDIR": str(workspace.root / "tmp")})]
    run = Run(f"http://127.0.0.1:{servers[0].http_port}/v1/evidence", aws)
    try:
        asyncio.run(asyncio.wait_for(load(servers, run), HARD_TIMEOUT))
        server = servers[-1]
        assert len(servers) == 2 and servers[0].proc.returncode == -9 and server.proc.poll() is None
        # The killed primary's DNS workers stopped with it: none goes on answering from a stale snapshot.
        assert run.workers and run.orphans == []

        # Connection errors during the kill are expected; any 4xx or 5xx is not, nor a request never answered.
        assert run.wrong == [] and run.unanswered == []
        before = [a for a in run.answered if a.at < run.killed_at]
        after = [a for a in run.answered if a.at > run.restarted_at]
        print(f"\n{len(run.answered)} submissions answered 2xx ({len(before)} before the kill, {len(after)} after "
              f"the restart {run.restarted_at - run.killed_at:.1f} s later), {run.connection_errors} connection "
              f"errors, {sum(a.replayed for a in run.answered)} first answered as a replay of a request cut by the kill")
        assert len(before) > 100 and len(after) > 100
        # A replay answers only a retry of a request the kill cut: a fresh key is never one.
        assert all(a.retried for a in run.answered if a.replayed)
        keys = [a.key for a in run.answered]
        assert len(set(keys)) == len(keys)

        # Every 2xx is in the store, whole, once: read the file itself, read-only.
        with closing(sqlite3.connect(f"file:{workspace.db}?mode=ro", uri=True)) as db:
            submissions = {key: (id_, items) for key, id_, items in db.execute(
                "SELECT idempotency_key, id, items FROM submissions WHERE vendor = 'aws'")}
            evidence: dict[int, list[int]] = {}
            for id_, submission in db.execute("SELECT id, submission FROM evidence ORDER BY id"):
                evidence.setdefault(submission, []).append(id_)
            audited = db.execute("SELECT count(*) FROM audit WHERE action = 'evidence'").fetchone()[0]
        for a in run.answered:
            assert a.key in submissions, f"{a.key} was answered 2xx (submission {a.submission}) and is not stored"
            items = len(json.loads(a.body)["items"])
            assert submissions[a.key] == (a.submission, items) and evidence[a.submission] == a.evidence, a.key
        # Nothing half-written: each stored submission has all its items, each item its audit row.
        assert all(len(evidence.get(id_, [])) == items for id_, items in submissions.values())
        assert set(evidence) <= {id_ for id_, _ in submissions.values()}
        assert audited == sum(len(ids) for ids in evidence.values())
        # Stored but never answered (cut by the kill, never retried) cannot happen: every key was retried.
        assert set(submissions) == set(keys)

        # After the restart, a retry with the same key is a replay over HTTP and stores nothing twice:
        # those answered in the last two seconds before the kill, those the kill cut, and a sample.
        rng = random.Random(5)
        edge = [a for a in run.answered if run.killed_at - 2 < a.at < run.killed_at or a.retried]
        sample = edge + rng.sample(run.answered, min(200, len(run.answered)))
        assert edge
        for a in sample:
            status, reply = server.http("POST", "/v1/evidence", token=aws, raw=a.body,
                                        headers={"Idempotency-Key": a.key})
            assert (status, reply["submission"], reply["evidence"], reply["replayed"]) == \
                (202, a.submission, a.evidence, True), a.key
        with closing(sqlite3.connect(f"file:{workspace.db}?mode=ro", uri=True)) as db:
            assert db.execute("SELECT count(*) FROM submissions").fetchone()[0] == len(submissions)
            assert db.execute("SELECT count(*) FROM evidence").fetchone()[0] == sum(map(len, evidence.values()))
        # The restarted server serves DNS from a snapshot rebuilt from the store.
        assert server.addresses("2.0.0.127.bl.example") == {"127.0.0.2"}
    finally:
        for server in servers:
            server.stop()
