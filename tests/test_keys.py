"""Access keys in query names (keys: in the zone file), over DNS with two workers, and quotas."""

from __future__ import annotations

import json
import re
import socket
import time

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from conftest import Server, Workspace, stored_bytes
from test_metrics import metric, operator_token, samples, scrape

ACCESS = "127.255.255.254"
OVER = "127.255.255.255"


def keyed(workspace: Workspace, mode: str) -> None:
    path = workspace.zones / "bl.example.yaml"
    text = path.read_text()
    path.write_text(text.replace("serves: listings\n", f"serves: listings\nkeys: {mode}\n"
                                 'key_info: "keys: https://bl.example/keys"\n', 1))


def create_key(workspace: Workspace, name: str, *options: str) -> str:
    out = workspace.rbl("key", "create", name, *options).stdout
    match = re.search(r"store it now\): ([a-z2-7]{26})$", out.strip())
    assert match, out
    return match[1]


def answer(reply: dns.message.Message) -> tuple:
    """What a receiver reads from a reply: rcode, addresses and texts (TTLs apart)."""
    found = []
    for rrset in reply.answer:
        for rr in rrset:
            found.append(rr.address if rr.rdtype == dns.rdatatype.A else b"".join(rr.strings))
    return dns.rcode.to_text(reply.rcode()), sorted(map(str, found))


def addresses_and_text(server: Server, name: str, tcp: bool = False) -> tuple[set[str], str, int]:
    reply = server.query(name, "ANY", tcp=tcp)
    codes = {rr.address for rrset in reply.answer for rr in rrset if rr.rdtype == dns.rdatatype.A}
    text = " ".join(b"".join(rr.strings).decode() for rrset in reply.answer for rr in rrset
                    if rr.rdtype == dns.rdatatype.TXT)
    ttl = min((rrset.ttl for rrset in reply.answer), default=-1)
    return codes, text, ttl


# The sample a valid key must answer exactly as the keyless zone does: test points, listed and
# unlisted addresses, a network listing, IPv6, a domain, the cloud and tenant sub-zones.
SAMPLE = ["2.0.0.127", "1.0.0.127", "10.2.0.192", "11.2.0.192", "7.141.5.3", "9.141.5.3", "1.51.100.198",
          "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2",
          "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"]
SUBZONE_SAMPLE = ["7.141.5.3.cloud", "1.1.1.1.cloud", "shop.example.7.141.5.3.tenant", "other.example.7.141.5.3.tenant"]


def test_a_valid_key_answers_as_the_keyless_zone_and_bad_keys_get_the_error_answer(workspace):
    keyed(workspace, "optional")
    key = create_key(workspace, "acme-mail")
    workspace.rbl("listing", "add", "192.0.2.10", "2001:db8::1", "198.51.100.0/24", "--reason", "trap")
    workspace.rbl("listing", "add", "3.5.141.7", "--identity", "shop.example", "--reason", "trap")
    server = Server(workspace, "--workers", "2")
    try:
        names = [f"{n}.bl.example" for n in SAMPLE] + [f"{n}.bl.example" for n in SUBZONE_SAMPLE]
        for name in names:
            origin = next(o for o in ("tenant.bl.example", "cloud.bl.example", "bl.example") if name.endswith(o))
            under_key = name[: -len(origin)] + key.upper()[:13] + key[13:] + "." + origin  # any case
            for rdtype in ("A", "TXT", "ANY", "AAAA"):
                for tcp in (False, True):
                    assert answer(server.query(under_key, rdtype, tcp=tcp)) == \
                        answer(server.query(name, rdtype, tcp=tcp)), (name, rdtype, tcp)
        assert server.addresses(f"2.0.0.127.{key}.bl.example") == {"127.0.0.2"}
        assert server.addresses(f"1.0.0.127.{key}.bl.example") == set()

        unknown = "a" * 26
        codes, text, ttl = addresses_and_text(server, f"2.0.0.127.{unknown}.bl.example")
        assert codes == {ACCESS} and "unknown access key" in text and "https://bl.example/keys" in text
        assert 0 < ttl <= 60  # short: never cached like a listing
        codes, text, _ = addresses_and_text(server, f"2.0.0.127.{unknown}.cloud.bl.example", tcp=True)
        assert codes == {ACCESS} and "unknown access key" in text

        workspace.rbl("key", "revoke", "acme-mail")
        took = server.wait_for(lambda: server.addresses(f"2.0.0.127.{key}.bl.example") == {ACCESS}, 1.0)
        assert took < 1.0
        codes, text, _ = addresses_and_text(server, f"10.2.0.192.{key}.bl.example")
        assert codes == {ACCESS} and "revoked" in text
        # The same key on the other worker (each worker serves some of these sockets).
        for _ in range(10):
            assert server.addresses(f"10.2.0.192.{key}.bl.example") == {ACCESS}
    finally:
        server.stop()


def test_a_required_key_refuses_keyless_queries_with_the_error_and_answers_keyed_ones(workspace):
    keyed(workspace, "required")
    key = create_key(workspace, "acme-mail")
    other = create_key(workspace, "elsewhere", "--zone", "bl.example")
    workspace.rbl("listing", "add", "192.0.2.10", "--reason", "trap")
    server = Server(workspace, "--workers", "2")
    try:
        for name in ("2.0.0.127.bl.example", "10.2.0.192.bl.example", "7.141.5.3.cloud.bl.example"):
            codes, text, ttl = addresses_and_text(server, name)
            assert codes == {ACCESS} and "answers only queries with an access key" in text, name
            assert 0 < ttl <= 60
        assert server.addresses(f"10.2.0.192.{key}.bl.example") == {"127.0.0.2"}
        assert server.addresses(f"10.2.0.192.{other}.bl.example") == {"127.0.0.2"}
        assert server.addresses(f"2.0.0.127.{key}.bl.example") == {"127.0.0.2"}
        reply = server.query(f"1.0.0.127.{key}.bl.example")
        assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer
        # The apex still answers: resolvers need its SOA and NS.
        assert server.query("bl.example", "SOA").answer
    finally:
        server.stop()


def test_a_key_is_stored_only_as_a_hash_and_never_logged(workspace):
    keyed(workspace, "optional")
    key = create_key(workspace, "acme-mail", "--quota", "100000/day")
    server = Server(workspace)
    try:
        assert server.addresses(f"2.0.0.127.{key}.bl.example") == {"127.0.0.2"}
        assert server.addresses(f"2.0.0.127.{'b' * 26}.bl.example") == {ACCESS}
    finally:
        server.stop()
    assert key.encode() not in stored_bytes(workspace)
    assert key not in "".join(server.log)
    listed = workspace.rbl("key", "list").stdout
    assert "acme-mail" in listed and key not in listed and key[:4] + "..." in listed and "100000/day" in listed
    for path in workspace.root.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_key_commands_name_the_bad_field_and_exit_2(workspace):
    for args, field in [(("key", "create", "Bad Name"), "key name"), (("key", "create", "a", "--quota", "5"), "--quota"),
                        (("key", "create", "a", "--zone", "nope.example"), "--zone"),
                        (("key", "revoke", "nobody"), "no key named")]:
        proc = workspace.rbl(*args, check=False)
        assert proc.returncode == 2 and field in proc.stderr, (args, proc.stderr)
    create_key(workspace, "twice")
    proc = workspace.rbl("key", "create", "twice", check=False)
    assert proc.returncode == 2 and "exists already" in proc.stderr


def _blast(port: int, names: list[str], rate: float, sockets: int = 16) -> list[str]:
    """Send the names at about ``rate`` a second from many sockets (so both workers get some);
    the first A address of each reply, in order of sending."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sockets)]
    out = []
    try:
        started = time.monotonic()
        for i, name in enumerate(names):
            sock = socks[i % sockets]
            query = dns.message.make_query(name, "A")
            sock.settimeout(2)
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
            reply = dns.message.from_wire(sock.recv(4096))
            out.append(next((rr.address for rrset in reply.answer for rr in rrset), "-"))
            pause = started + (i + 1) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        for sock in socks:
            sock.close()
    return out


def test_a_quota_of_1000_is_counted_across_two_workers_and_rolls_over_with_its_period(workspace):
    keyed(workspace, "required")
    period = 8
    key = create_key(workspace, "small", "--quota", f"1000/{period}s")
    server = Server(workspace, "--workers", "2")
    try:
        # Start at the beginning of a period (periods are aligned to the epoch).
        time.sleep(period - time.time() % period + 0.05)
        started = time.time()
        rate = 500.0
        got = _blast(server.port, [f"2.0.0.127.{key}.bl.example"] * 1800, rate)
        assert time.time() - started < period, "the run outlasted the period: the machine is too slow"
        answered = got.index(OVER) if OVER in got else len(got)
        assert 1000 <= answered <= 1000 + rate * 1.5, answered  # the 1000th, plus about a second's worth
        assert set(got[answered:]) == {OVER}, "once over, a key stays over until the period rolls over"
        codes, text, ttl = addresses_and_text(server, f"2.0.0.127.{key}.bl.example")
        assert codes == {OVER} and "past its quota of 1000/8s" in text and 0 < ttl <= 60
        # The next period: answered again within a second of it.
        time.sleep(period - time.time() % period)
        server.wait_for(lambda: server.addresses(f"2.0.0.127.{key}.bl.example") == {"127.0.0.2"}, 1.5)
        status, _, text = scrape(server, operator_token(workspace))
        assert status == 200
        parsed = samples(text)
        total = metric(parsed, "rbl_key_queries_total")[(("key", "small"),)]
        assert total >= answered  # every answered query under it, both workers summed (counts lag a second)
        assert metric(parsed, "rbl_key_quota")[(("key", "small"),)] == 1000
        assert metric(parsed, "rbl_key_over_quota")[(("key", "small"),)] == 0
    finally:
        server.stop()
    # The usage the server wrote shows in rbl key list.
    row = json.loads(workspace.rbl("key", "list", "--json").stdout.splitlines()[0])
    assert row["name"] == "small" and row["quota"] == "1000/8s" and row["total"] >= answered


@pytest.mark.parametrize("mode", ["bogus", "yes"])
def test_a_bad_keys_setting_names_the_file_and_line(workspace, mode):
    path = workspace.zones / "bl.example.yaml"
    path.write_text(path.read_text().replace("serves: listings\n", f"serves: listings\nkeys: {mode}\n", 1))
    proc = workspace.rbl("policy", "check", check=False)
    assert proc.returncode == 2 and "bl.example.yaml, line" in proc.stderr and "keys" in proc.stderr, proc.stderr


def test_operators_create_list_and_revoke_keys_over_http_and_bad_bodies_get_4xx(workspace):
    keyed(workspace, "required")
    token = operator_token(workspace)
    server = Server(workspace, "--workers", "2")
    try:
        status, made = server.http("POST", "/v1/keys", {"name": "acme-mail", "quota": "5000/hour",
                                                        "zones": ["bl.example"]}, token=token)
        assert status == 201 and made["key"]["quota"] == "5000/hour" and made["key"]["zones"] == ["bl.example"]
        key = made["secret"]
        assert re.fullmatch(r"[a-z2-7]{26}", key) and made["key"]["hint"] == key[:4]
        server.wait_for(lambda: server.addresses(f"2.0.0.127.{key}.bl.example") == {"127.0.0.2"}, 1.0)
        status, listed = server.get("/v1/keys", token=token)
        assert status == 200 and [k["name"] for k in listed["keys"]] == ["acme-mail"]
        assert key not in json.dumps(listed)
        for body, field in [({"name": "Bad Name"}, "name"), ({"name": "x", "quota": "lots"}, "quota"),
                            ({"name": "x", "zones": ["nope.example"]}, "zones"), ({"name": "x", "colour": 1}, "colour"),
                            ({"name": "acme-mail"}, "name")]:
            status, reply = server.http("POST", "/v1/keys", body, token=token)
            assert 400 <= status < 500 and reply["field"] == field, (body, status, reply)
        assert server.http("POST", "/v1/keys", {"name": "acme-mail"}, token=token)[0] == 409
        assert server.http("POST", "/v1/keys", {"name": "y"})[0] == 401
        status, revoked = server.http("POST", "/v1/keys/acme-mail/revoke", token=token)
        assert status == 200 and revoked["key"]["revoked_at"]
        server.wait_for(lambda: server.addresses(f"2.0.0.127.{key}.bl.example") == {ACCESS}, 1.0)
        assert server.http("POST", "/v1/keys/acme-mail/revoke", token=token)[0] == 409
        assert server.http("POST", "/v1/keys/nobody/revoke", token=token)[0] == 404
        assert [k["name"] for k in server.get("/v1/keys", token=token)[1]["keys"]] == ["acme-mail"]
    finally:
        server.stop()


def test_keyed_zones_still_export_and_transfer_the_keyless_names(workspace, tmp_path):
    workspace.rbl("listing", "add", "192.0.2.10", "2001:db8::1", "--reason", "trap")

    def exported(where: str) -> dict[str, list[str]]:
        out = tmp_path / where
        workspace.rbl("export", "rbldnsd", str(out))
        workspace.rbl("export", "zonefile", str(out))
        # Everything but the serial, which every export takes afresh.
        return {p.name: [line for line in p.read_text().splitlines() if "SOA" not in line and "snapshot" not in line]
                for p in sorted(out.iterdir())}

    plain = exported("plain")
    keyed(workspace, "required")
    assert exported("keyed") == plain  # mirrors apply their own access rules (README)
    path = workspace.zones / "bl.example.yaml"
    path.write_text(path.read_text() + "transfer:\n  tsig: optional\n")
    server = Server(workspace)
    try:
        import dns.query
        import dns.xfr
        import dns.zone

        def transferred():
            try:
                return dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "bl.example", port=server.port, timeout=10))
            except dns.xfr.TransferError:  # SERVFAIL until the first transfer version is rendered
                return None
        server.wait_for(lambda: transferred() is not None, 10)
        zone = transferred()
        names = {str(name) for name in zone.nodes}
        assert "10.2.0.192" in names and "2.0.0.127" in names
        assert not any(re.search(r"(^|\.)[a-z2-7]{26}(\.|$)", name) for name in names)
        rdata = zone.find_rdataset("10.2.0.192", "A")
        assert {rr.address for rr in rdata} == {"127.0.0.2"}
    finally:
        server.stop()
