"""Response rate limiting (rate_limit: in the zone file) and public resolvers (policy/resolvers/),
over real UDP and TCP from several loopback networks (each its own /24)."""

from __future__ import annotations

import re
import socket
import threading
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import Server, Workspace
from test_keys import ACCESS, create_key, keyed
from test_metrics import metric, operator_token, samples, scrape

RATE = 200


def rate_limited(workspace: Workspace, exempt: str = "127.0.9.0/24", window: int = 2) -> None:
    path = workspace.zones / "bl.example.yaml"
    path.write_text(path.read_text().replace("serves: listings\n", (
        "serves: listings\nrate_limit:\n"
        f"  responses_per_second: {RATE}\n  nxdomains_per_second: {RATE}\n  errors_per_second: 20\n"
        f"  window: {window}\n  slip: 2\n  exempt: [{exempt}]\n"), 1))


def flood(port: int, source: str, name: str, rate: float, seconds: float) -> tuple[int, list[dns.message.Message]]:
    """Send one name at ``rate`` a second for ``seconds`` from ``source``; (sent, replies)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    replies: list[bytes] = []
    done = threading.Event()

    def receive() -> None:
        sock.settimeout(0.2)
        while True:
            try:
                replies.append(sock.recv(4096))
            except socket.timeout:
                if done.is_set():
                    return
    reader = threading.Thread(target=receive)
    reader.start()
    query = dns.message.make_query(name, "A")
    sent = 0
    started = time.monotonic()
    try:
        while (now := time.monotonic()) < started + seconds:
            due = int((now - started) * rate) + 1
            while sent < due:
                query.id = sent % 65536
                sock.sendto(query.to_wire(), ("127.0.0.1", port))
                sent += 1
            time.sleep(0.001)
    finally:
        time.sleep(0.3)
        done.set()
        reader.join()
        sock.close()
    return sent, [dns.message.from_wire(r) for r in replies]


def full(replies) -> list:
    return [r for r in replies if not r.flags & dns.flags.TC and r.answer]


def truncated(replies) -> list:
    return [r for r in replies if r.flags & dns.flags.TC]


@pytest.fixture
def limited_server(workspace):
    rate_limited(workspace)
    server = Server(workspace)
    yield server
    server.stop()


def test_a_flood_gets_at_most_the_rate_the_rest_dropped_or_slipped_and_its_tcp_retry_answered(limited_server,
                                                                                             workspace):
    server = limited_server
    seconds = 1.5
    sent, replies = flood(server.port, "127.0.3.1", "2.0.0.127.bl.example", 10_000, seconds)
    assert sent >= 10_000
    answered = full(replies)
    # One second's burst, then the rate: never more.
    assert RATE <= len(answered) <= RATE * (seconds + 1) + 20, len(answered)
    slipped = truncated(replies)
    # Slip 2: about every second limited answer goes out truncated, the rest are dropped.
    limited = sent - len(answered)
    assert 0.35 * limited <= len(slipped) <= 0.65 * limited, (len(slipped), limited)
    assert all(not r.answer and r.rcode() == dns.rcode.NOERROR and r.question for r in slipped)
    assert len(replies) < sent * 0.7  # a spoofed victim gets far less than was asked for
    # The real client retries a truncated answer over TCP: RRL never limits TCP.
    for _ in range(50):
        reply = server.query("2.0.0.127.bl.example", tcp=True)
        assert {rr.address for rrset in reply.answer for rr in rrset} == {"127.0.0.2"}
    token = operator_token(workspace)

    def limited_counts() -> dict:
        return metric(samples(scrape(server, token)[2]), "rbl_rrl_limited_total")
    # In /metrics within a second or two (workers fold their counts every second).
    # (A datagram lost on a busy machine is neither answered nor limited: hence the slack.)
    server.wait_for(lambda: sum(limited_counts().values()) >= limited * 0.9, 3)
    counts = limited_counts()
    assert counts[(("action", "slipped"), ("kind", "answer"))] >= len(slipped)
    assert counts[(("action", "dropped"), ("kind", "answer"))] >= (limited - len(slipped)) * 0.8


def test_an_exempt_network_and_a_client_under_the_rate_are_never_limited(limited_server):
    server = limited_server
    sent, replies = flood(server.port, "127.0.9.1", "2.0.0.127.bl.example", 2_000, 1.0)
    assert len(full(replies)) >= sent * 0.98 and not truncated(replies)
    # Beside a flood from another network, a client at half the rate gets every answer.
    flooding = threading.Thread(target=flood, args=(server.port, "127.0.3.1", "2.0.0.127.bl.example", 5_000, 2.5))
    flooding.start()
    try:
        time.sleep(0.3)
        sent, replies = flood(server.port, "127.0.4.1", "10.2.0.192.bl.example", RATE / 2, 1.5)
    finally:
        flooding.join()
    assert len(replies) == sent and not truncated(replies)
    assert all(r.rcode() == dns.rcode.NXDOMAIN for r in replies)


def test_a_rate_limit_that_two_zone_files_disagree_on_names_the_second_file(workspace):
    rate_limited(workspace)
    other = workspace.zones / "other.example.yaml"
    other.write_text(re.sub(r"responses_per_second: \d+", "responses_per_second: 5",
                            (workspace.zones / "bl.example.yaml").read_text().replace("origin: bl.example",
                                                                                        "origin: other.example")))
    other.write_text(other.read_text().replace("bl.example", "other.example"))
    proc = workspace.rbl("policy", "check", check=False)
    assert proc.returncode == 2 and "other.example.yaml, line" in proc.stderr and "rate_limit" in proc.stderr


def _udp_from(source: str, port: int, name: str, rdtype: str = "A") -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=5, source=source)


def test_a_public_resolver_gets_the_error_answer_unless_it_brings_a_key(workspace):
    keyed(workspace, "optional")
    (workspace.policy / "resolvers" / "test.txt").write_text("# loopback stands in for a public resolver\n"
                                                               "127.0.7.0/24 lab\n")
    key = create_key(workspace, "acme-mail")
    server = Server(workspace, "--workers", "2")
    try:
        reply = _udp_from("127.0.7.1", server.port, "2.0.0.127.bl.example", "ANY")
        codes = {rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == dns.rdatatype.A}
        text = " ".join(b"".join(rr.strings).decode() for rrset in reply.answer for rr in rrset
                        if rr.rdtype == dns.rdatatype.TXT)
        assert codes == {ACCESS} and "public resolvers" in text and "https://bl.example/keys" in text
        assert min(rrset.ttl for rrset in reply.answer) <= 60
        tcp = dns.query.tcp(dns.message.make_query("2.0.0.127.cloud.bl.example", "A"), "127.0.0.1",
                            port=server.port, timeout=5, source="127.0.7.1")
        assert {rr.address for rrset in tcp.answer for rr in rrset} == {ACCESS}
        # The key says who asks: answered, through the resolver too.
        reply = _udp_from("127.0.7.1", server.port, f"2.0.0.127.{key}.bl.example")
        assert {rr.address for rrset in reply.answer for rr in rrset} == {"127.0.0.2"}
        # Anyone else: as ever.
        assert {rr.address for rrset in _udp_from("127.0.0.1", server.port, "2.0.0.127.bl.example").answer
                for rr in rrset} == {"127.0.0.2"}
        # The apex still answers the resolver: the error is for lookups.
        assert _udp_from("127.0.7.1", server.port, "bl.example", "SOA").answer
        # An edited list is in force within a second.
        (workspace.policy / "resolvers" / "test.txt").write_text("127.0.8.0/24\n")
        server.wait_for(lambda: {rr.address for rrset in _udp_from("127.0.8.1", server.port,
                                                                    "2.0.0.127.bl.example").answer
                                 for rr in rrset} == {ACCESS}, 1.5)
        assert {rr.address for rrset in _udp_from("127.0.7.1", server.port, "2.0.0.127.bl.example").answer
                for rr in rrset} == {"127.0.0.2"}
    finally:
        server.stop()


def test_a_bad_resolver_line_names_the_file_and_line(workspace):
    (workspace.policy / "resolvers" / "bad.txt").write_text("# fine\n192.0.2.0/24\nnot-a-network x\n")
    proc = workspace.rbl("policy", "check", check=False)
    assert proc.returncode == 2 and "bad.txt, line 3" in proc.stderr and "not-a-network" in proc.stderr
