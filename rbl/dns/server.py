"""UDP and TCP DNS servers on asyncio; they move bytes, the Responder decides what to send
(for AXFR and IXFR over TCP, the TransferResponder)."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time

from rbl.dns import batch
from rbl.dns.answer import Responder
from rbl.dns.clients import DROP, LIMITED, RESOLVER, network_key, truncated
from rbl.dns.wire import MAX_QUERY
from rbl.errors import RblError
from rbl.transfer.respond import transfer_qtype

log = logging.getLogger(__name__)

TCP_IDLE_SECONDS = 10.0  # RFC 7766 6.2.3: close idle connections, seconds not minutes
TCP_MAX_CONNECTIONS = 256


class UdpServer:
    """Answers a UDP socket straight from the event loop's readiness callback.

    Under load one wake-up drains up to a burst of datagrams, in batches of
    recvmmsg/sendmmsg where libc has them (:mod:`rbl.dns.batch`), else with
    plain recvfrom/sendto: asyncio's datagram transport costs more per packet
    than answering does.
    """

    BURST = 256

    def __init__(self, responder: Responder, sock: socket.socket):
        self.responder = responder
        self.sock = sock
        sock.setblocking(False)
        self.batch = batch.BatchSocket(sock.fileno(), sock.family) if batch.available() else None
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable if self.batch is None else self._readable_batched)

    def _readable_batched(self) -> None:
        responder = self.responder
        respond, with_client, hot_answer = responder.respond, responder.needs_client, responder.hot
        gate = responder.gate if responder.gate.active else None
        for _ in range(self.BURST // batch.BATCH):
            if not self.batch.serve(respond, with_client, hot_answer, gate):
                return

    def _readable(self) -> None:
        recvfrom, sendto, respond = self.sock.recvfrom, self.sock.sendto, self.responder.respond
        gate = self.responder.gate if self.responder.gate.active else None
        now = time.monotonic()
        for _ in range(self.BURST):
            try:
                data, addr = recvfrom(MAX_QUERY)  # larger ones arrive cut short: FORMERR anyway
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP errors surface here: the client went away
                continue
            if gate is None:
                reply = respond(data, True, addr[0])
            else:
                key = network_key(addr[0])
                entry = gate.table.get(key) or gate.entry(key, now)
                reply = respond(data, True, addr[0], bool(entry[0] & RESOLVER))
                if reply is not None and entry[0] & LIMITED:
                    verdict = gate.account(entry, reply, now)
                    reply = None if verdict == DROP else truncated(reply) if verdict else reply
            if reply is not None:
                try:
                    sendto(reply, addr)
                except OSError:  # a full buffer or a vanished client: UDP may drop
                    pass

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class TcpHandler:
    """RFC 7766: length-prefixed messages, pipelined, answered in order; idle timeout."""

    def __init__(self, responder: Responder, idle: float = TCP_IDLE_SECONDS, limit: int = TCP_MAX_CONNECTIONS):
        self.responder = responder
        self.idle = idle
        self.limit = limit
        self.open = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open >= self.limit:
            writer.close()
            return
        self.open += 1
        client = (writer.get_extra_info("peername") or ("",))[0]
        # RRL never limits TCP; a public resolver's keyless queries get their error here too.
        resolver = self.responder.gate.resolvers.holds_text(client)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), self.idle)
                    (length,) = struct.unpack(">H", head)
                    data = await asyncio.wait_for(reader.readexactly(length), self.idle)
                except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                    break
                transfers = self.responder.transfers
                if transfers is not None and transfer_qtype(data):
                    try:
                        await transfers.serve(data, client, writer)  # AXFR/IXFR: a stream of messages
                    except ConnectionError:
                        break  # a stream cut short: only closing the connection tells the client
                    continue
                reply = self.responder.respond(data, False, client, resolver)
                if reply is None:
                    continue
                writer.write(struct.pack(">H", len(reply)) + reply)
                if writer.transport.get_write_buffer_size() > 65536:
                    await writer.drain()
        finally:
            self.open -= 1
            writer.close()


def bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket, int]:
    """A UDP and a TCP socket bound to host:port (port 0: one free port for both).

    Both carry SO_REUSEPORT, so every DNS worker binds the same port and the
    kernel spreads queries over them.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _attempt in range(20):
        udp_sock = socket.socket(family, socket.SOCK_DGRAM)
        udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        udp_sock.bind((host, port))
        bound = udp_sock.getsockname()[1]
        tcp_sock = socket.socket(family, socket.SOCK_STREAM)
        tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            tcp_sock.bind((host, bound))
        except OSError:
            udp_sock.close()
            tcp_sock.close()
            if port:
                raise
            continue  # the free UDP port was taken for TCP: try another
        return udp_sock, tcp_sock, bound
    raise RblError(f"no free port on {host} for both UDP and TCP")


async def start_dns(responder: Responder, host: str, port: int) -> list:
    """Answer UDP and TCP on host:port, beside any other worker on that port."""
    udp_sock, tcp_sock, _ = bind_pair(host, port)
    udp = UdpServer(responder, udp_sock)
    server = await asyncio.start_server(TcpHandler(responder), sock=tcp_sock, backlog=128)
    return [udp, server]
