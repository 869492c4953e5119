"""NOTIFY (RFC 1996) as the primary sends it: signed, tried again with a doubling wait, bounded.

A real UDP socket on loopback plays the secondary, reading and answering with dnspython.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time

import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import pytest

from rbl.transfer.notify import send_notify
from rbl.transfer.rrwire import WireRecord, rdata_wire
from rbl.errors import TransferError
from rbl.zone.config import TsigKey

SECRET = bytes(range(32))
KEY = TsigKey("rbl-xfr", "hmac-sha256", SECRET)
KEYRING = dns.tsigkeyring.from_text({"rbl-xfr": ("hmac-sha256", base64.b64encode(SECRET).decode())})
SOA = WireRecord("", 6, 3600, rdata_wire("SOA", "ns1.bl.example. hostmaster.bl.example. 77 3600 600 604800 300"))


class Secondary:
    """Ignores the first ``silent`` NOTIFYs, then answers with ``rcode`` (signed when asked signed)."""

    def __init__(self, silent: int = 0, rcode: int = dns.rcode.NOERROR, keyring=KEYRING, reply_keyring=None):
        self.reply_keyring = reply_keyring  # sign replies with another key (a secondary we must not believe)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.silent, self.rcode, self.keyring = silent, rcode, keyring
        self.received: list[tuple[float, dns.message.Message]] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            message = dns.message.from_wire(data, keyring=self.keyring)
            self.received.append((time.monotonic(), message))
            if len(self.received) <= self.silent:
                continue
            reply = dns.message.make_response(message)
            reply.set_rcode(self.rcode)
            if self.reply_keyring is not None:
                reply.use_tsig(self.reply_keyring, keyname="rbl-xfr")
            self.sock.sendto(reply.to_wire(), addr)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def secondary(request):
    made = []

    def make(**kwargs) -> Secondary:
        made.append(Secondary(**kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


def test_a_signed_notify_with_the_new_soa_is_answered_at_once(secondary):
    peer = secondary()
    tries = asyncio.run(send_notify("bl.example", SOA, ("127.0.0.1", peer.port), KEY))
    assert tries == 1
    (_, message), = peer.received
    assert message.opcode() == dns.opcode.NOTIFY and message.had_tsig  # dnspython checked the MAC
    assert message.question[0].rdtype == dns.rdatatype.SOA and str(message.question[0].name) == "bl.example."
    assert message.answer[0][0].serial == 77


def test_unanswered_notifies_are_tried_again_with_a_doubling_wait(secondary):
    peer = secondary(silent=2)
    started = time.monotonic()
    tries = asyncio.run(send_notify("bl.example", SOA, ("127.0.0.1", peer.port), KEY, tries=5, wait=0.2))
    assert tries == 3
    times = [at - started for at, _ in peer.received]
    assert 0.15 < times[1] - times[0] < 0.5 and 0.35 < times[2] - times[1] < 0.9  # 0.2 s, then 0.4 s


def test_a_secondary_that_never_answers_costs_a_bounded_number_of_tries(secondary):
    peer = secondary(silent=100)
    started = time.monotonic()
    with pytest.raises(TransferError, match="no answer after 3 tries"):
        asyncio.run(send_notify("bl.example", SOA, ("127.0.0.1", peer.port), None, tries=3, wait=0.05))
    assert len(peer.received) == 3 and time.monotonic() - started < 1.0


def test_a_refusal_fails_at_once(secondary):
    peer = secondary(rcode=dns.rcode.REFUSED)
    with pytest.raises(TransferError, match="rcode 5"):
        asyncio.run(send_notify("bl.example", SOA, ("127.0.0.1", peer.port), KEY, tries=2, wait=0.1))
    assert len(peer.received) == 1


def test_a_reply_signed_with_another_secret_is_not_believed(secondary):
    other = dns.tsigkeyring.from_text({"rbl-xfr": ("hmac-sha256", base64.b64encode(b"y" * 32).decode())})
    peer = secondary(reply_keyring=other)
    with pytest.raises(TransferError, match="BADSIG"):
        asyncio.run(send_notify("bl.example", SOA, ("127.0.0.1", peer.port), KEY, tries=1, wait=1))
