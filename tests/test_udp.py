"""The UDP server's two receive paths (batched recvmmsg, one recvfrom at a time) answer alike."""

from __future__ import annotations

import asyncio
import socket
import time

import dns.asyncquery
import dns.message
import pytest

from rbl.dns import batch
from rbl.dns.answer import Responder
from rbl.dns.server import UdpServer
from rbl.policy.listing import ListingPolicy
from rbl.zone.compile import compile_zone
from rbl.zone.snapshot import Snapshot
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


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_batch_with_unanswered_datagrams_sends_each_reply_to_its_own_sender(host):
    """Replies are packed in front of the dropped ones: each must still go to its own sender, batch after batch."""
    if not batch.available():
        pytest.fail("recvmmsg is missing from libc on this Linux machine")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    server.setblocking(False)
    responder = Responder(snapshot())
    batched = batch.BatchSocket(server.fileno(), family)
    clients = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(12)]
    try:
        for round_ in range(3):
            expected = {}
            for i, client in enumerate(clients):
                client.settimeout(0.2)
                if (i + round_) % 3 == 0:
                    client.sendto(b"\x00", server.getsockname())  # too short: no reply at all
                else:
                    query = dns.message.make_query(f"{i}.2.0.192.bl.example", "A")
                    query.id = 1000 * round_ + i
                    client.sendto(query.to_wire(), server.getsockname())
                    expected[i] = query.id
            time.sleep(0.05)
            assert batched.serve(responder.respond, False, responder.hot)
            for i, client in enumerate(clients):
                if i in expected:
                    reply = dns.message.from_wire(client.recv(4096))
                    assert reply.id == expected[i] and reply.answer[0].name.to_text().startswith(f"{i}.2.0.192")
                else:
                    with pytest.raises(socket.timeout):
                        client.recv(4096)
    finally:
        server.close()
        for client in clients:
            client.close()
