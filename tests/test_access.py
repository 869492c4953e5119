"""Access control per client network (DESIGN section 6): allow, refuse, or the error code."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import pytest

from conftest import Server
from rbl.errors import ConfigError
from rbl.zone.config import load_zone

RULES = """
access:
  - networks: [127.0.0.2/32]
    action: refuse
  - networks: [127.0.0.3/32, "::/0"]
    action: error
  - networks: [127.0.0.0/8]
    action: allow
"""


def ask(server, name, rdtype, source, tcp=False):
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, "127.0.0.1", port=server.port, source=source, timeout=5)
    return dns.query.udp(query, "127.0.0.1", port=server.port, source=source, timeout=5)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_rules_answer_by_client_network(workspace, tcp):
    zone = workspace.zones / "bl.example.yaml"
    zone.write_text(zone.read_text() + RULES)
    workspace.rbl("listing", "add", "192.0.2.1")
    server = Server(workspace)
    try:
        allowed = ask(server, "1.2.0.192.bl.example", "A", "127.0.0.1", tcp)
        assert [rr.address for rr in allowed.answer[0]] == ["127.0.0.2"]
        refused = ask(server, "1.2.0.192.bl.example", "A", "127.0.0.2", tcp)
        assert refused.rcode() == dns.rcode.REFUSED and not refused.answer
        error = ask(server, "9.9.9.9.bl.example", "A", "127.0.0.3", tcp)
        assert [rr.address for rr in error.answer[0]] == ["127.255.255.254"]
        txt = ask(server, "1.2.0.192.bl.example", "TXT", "127.0.0.3", tcp)
        assert b"not allowed" in txt.answer[0][0].strings[0]
        # The zone itself stays visible to everyone allowed to see it at all.
        assert ask(server, "bl.example", "SOA", "127.0.0.3", tcp).answer
    finally:
        server.stop()


def test_a_bad_rule_names_file_and_line(tmp_path):
    path = tmp_path / "bl.example.yaml"
    text = (RULES.replace("action: error", "action: deny"))
    path.write_text("origin: bl.example\nsoa: {mname: ns.other.example, rname: h.other.example}\n"
                    "ns: {servers: [{name: ns.other.example}]}\n" + text)
    with pytest.raises(ConfigError, match=r"line 9: unknown action 'deny'"):
        load_zone(path)
