"""The UDP server's two receive paths (batched recvmmsg, one recvfrom at a time) answer alike."""

from __future__ import annotations

import asyncio
import socket

import dns.asyncquery
import dns.message
import pytest

from rbl.dns import batch
from rbl.dns.answer import Responder
from rbl.dns.server import UdpServer
from rbl.policy.listing import ListingPolicy
from rbl.zone.snapshot import Snapshot, compile_zone
from test_snapshot import CONFIG, row


def snapshot() -> Snapshot:
    zone, count = compile_zone(CONFIG, ListingPolicy(), [row("192.0.2.0/24")])
    return Snapshot(serial=1, zones={zone.origin: zone}, built_at=0, compile_seconds=0, listings=count)


@pytest.mark.parametrize("batched", [True, False], ids=["recvmmsg", "recvfrom"])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_both_receive_paths_answer_many_clients(batched, host):
    if batched and not batch.available():
        pytest.fail("recvmmsg is missing from libc on this Linux machine")

    async def run() -> list:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
        server = UdpServer(Responder(snapshot()), sock)
        if not batched:
            server.loop.remove_reader(sock.fileno())
            server.loop.add_reader(sock.fileno(), server._readable)
        port = sock.getsockname()[1]
        names = [f"{i}.2.0.192.bl.example" for i in range(200)] + ["1.3.0.192.bl.example"] * 50
        replies = await asyncio.gather(*(dns.asyncquery.udp(dns.message.make_query(n, "A"), host, port=port,
                                                            timeout=5) for n in names))
        server.close()
        return replies

    replies = asyncio.run(run())
    assert [r.rcode() for r in replies] == [0] * 200 + [3] * 50
    assert all(r.answer[0][0].address == "127.0.0.2" for r in replies[:200])
