"""The receiver's side of the tenant zone with the real SpamAssassin: the AskDNS rule pair of the
README, a DKIM-signed message (dkimpy) from a listed shared address, and a local Unbound that serves
the signers' DKIM keys and forwards ``bl.example`` to a real ``rbl serve``.

Unbound sits between them as a receiver's resolver would: it minimises the query name (RFC 9156), so
it walks down ``tenant.bl.example`` label by label, and an NXDOMAIN above a pair name would hide it.
"""

from __future__ import annotations

import email
import subprocess
import textwrap
import time
from email.utils import formatdate, make_msgid
from pathlib import Path

import dkim
import dns.exception
import dns.message
import dns.query
import pytest

from conftest import Server, free_port, require_tool, stop_process

EC2 = "3.5.141.7"  # AWS EC2, shared space in the shipped policy
EC2_V6 = "2600:1f19:8000::7"
SIGNERS = ("shop.example", "honest.example")

# The README's rules, word for word (tests/test_spamassassin.py checks they are there).
RULES = r"""
askdns   RBL_TENANT_IMPLICATED _DKIMDOMAIN_._LASTEXTERNALREVIP_.tenant.bl.example A /^127\.0\.3\.2$/
describe RBL_TENANT_IMPLICATED The DKIM signer is the tenant whose mail got this shared address listed
score    RBL_TENANT_IMPLICATED 3.0
askdns   RBL_TENANT_BYSTANDER  _DKIMDOMAIN_._LASTEXTERNALREVIP_.tenant.bl.example A /^127\.0\.3\.1$/
describe RBL_TENANT_BYSTANDER  The DKIM signer is another tenant of a listed shared address
score    RBL_TENANT_BYSTANDER  -2.0
tflags   RBL_TENANT_BYSTANDER  nice
"""


def _keys(directory: Path, signer: str) -> tuple[bytes, str]:
    """A 1024-bit RSA key pair: the private key (PEM) and the public key as DKIM's ``p=``."""
    openssl = require_tool("openssl")
    private = directory / f"{signer}.pem"
    subprocess.run([openssl, "genrsa", "-traditional", "-out", str(private), "1024"], check=True,
                   capture_output=True, timeout=60)
    public = subprocess.run([openssl, "rsa", "-in", str(private), "-pubout", "-outform", "PEM"], check=True,
                            capture_output=True, text=True, timeout=60).stdout
    return private.read_bytes(), "".join(line for line in public.splitlines() if not line.startswith("-----"))


def _unbound_conf(port: int, rbl_port: int, keys: dict[str, str], directory: Path) -> str:
    zones = "".join(f'    local-zone: "{s}." static\n'
                    f'    local-data: \'sel._domainkey.{s}. 300 TXT "v=DKIM1; k=rsa; p={key}"\'\n'
                    for s, key in keys.items())
    return textwrap.dedent(f"""\
        server:
            interface: 127.0.0.1
            port: {port}
            access-control: 127.0.0.0/8 allow
            do-not-query-localhost: no
            module-config: "iterator"
            username: ""
            chroot: ""
            directory: "{directory}"
            pidfile: ""
            use-syslog: no
            logfile: ""
            verbosity: 1
            num-threads: 1
            outgoing-range: 64
            so-reuseport: no
            qname-minimisation: yes
            # No cache, so that a removal shows at once (a receiver's resolver keeps answers for their TTL).
            cache-max-ttl: 0
            cache-max-negative-ttl: 0
            # The closed network: nothing but the signers' keys and the DNSBL.
            local-zone: "." refuse
            local-zone: "bl.example." transparent
        """) + zones + textwrap.dedent(f"""\
        stub-zone:
            name: "bl.example"
            stub-addr: 127.0.0.1@{rbl_port}
        """)


def _start_unbound(directory: Path, rbl_port: int, keys: dict[str, str]) -> tuple[subprocess.Popen, int]:
    binary = require_tool("unbound")
    log = directory / "unbound.log"
    for _ in range(5):  # the free port may be taken between probing and binding
        port = free_port()
        conf = directory / "unbound.conf"
        conf.write_text(_unbound_conf(port, rbl_port, keys, directory))
        with log.open("w") as out:
            proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                reply = dns.query.udp(dns.message.make_query(f"sel._domainkey.{SIGNERS[0]}", "TXT"), "127.0.0.1",
                                      port=port, timeout=0.5)
                if reply.answer:
                    return proc, port
            except (OSError, dns.exception.Timeout):
                time.sleep(0.1)
        stop_process(proc)
    raise AssertionError(f"unbound did not start:\n{log.read_text()}")


class Receiver:
    """SpamAssassin with only the README's rules (and the DKIM ones to see the signature verified)."""

    def __init__(self, directory: Path, resolver_port: int):
        self.directory = directory
        self.config = directory / "sa-rules"
        self.site = directory / "sa-site"
        self.home = directory / "sa-home"
        for path in (self.config, self.site, self.home):
            path.mkdir()
        (self.config / "rbl.cf").write_text(textwrap.dedent(f"""\
            loadplugin Mail::SpamAssassin::Plugin::Check
            loadplugin Mail::SpamAssassin::Plugin::DKIM
            loadplugin Mail::SpamAssassin::Plugin::AskDNS
            dns_available yes
            dns_server 127.0.0.1:{resolver_port}
            rbl_timeout 10 2
            use_bayes 0
            util_rb_tld example
            required_score 5.0
            report_safe 0
            add_header all Status _YESNO_, score=_SCORE_ required=_REQD_ tests=_TESTS_ autolearn=_AUTOLEARN_
            full     DKIM_SIGNED eval:check_dkim_signed()
            full     DKIM_VALID  eval:check_dkim_valid()
            """) + RULES)

    def tests(self, message: bytes) -> set[str]:
        """The rules a message hits."""
        proc = subprocess.run(
            [require_tool("spamassassin"), "--configpath", str(self.config), "--siteconfigpath", str(self.site),
             "--prefspath", str(self.home / "user_prefs"), "--nocreate-prefs"],
            input=message, capture_output=True, timeout=120, env={"HOME": str(self.home), "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        status = email.message_from_bytes(proc.stdout)["X-Spam-Status"]
        assert status is not None, proc.stdout.decode(errors="replace")[:2000]
        found = " ".join(status.split()).split("tests=", 1)[1].split(" autolearn=")[0]
        return {name for name in found.replace(" ", "").split(",") if name and name != "none"}


def _message(address: str, signer: str | None, keys: dict[str, bytes]) -> bytes:
    """A message as the receiving MX hands it on: signed (when ``signer``), then the MX's Received line
    naming the connecting shared address."""
    sender = signer or "unsigned.example"
    body = (f"From: News <news@{sender}>\r\nTo: someone@receiver.example\r\nSubject: hello from {sender}\r\n"
            f"Date: {formatdate()}\r\nMessage-ID: {make_msgid(domain=sender)}\r\n\r\n"
            "A message from a tenant of shared cloud space.\r\n").encode()
    if signer:
        body = dkim.sign(body, b"sel", signer.encode(), keys[signer],
                         include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + body
    received = (f"Received: from out.{sender} (out.{sender} [{address}])\r\n\tby mx.receiver.example (Postfix) "
                f"with ESMTPS id 4Zx1; {formatdate()}\r\n").encode()
    return received + body


@pytest.fixture
def receiving(workspace, tmp_path):
    for address in (EC2, EC2_V6):
        workspace.rbl("listing", "add", address, "--identity", "shop.example", "--reason", "spam from a tenant")
    server = Server(workspace)
    pairs = {s: _keys(tmp_path, s) for s in SIGNERS}
    unbound, port = None, None
    try:
        unbound, port = _start_unbound(tmp_path, server.port, {s: public for s, (_, public) in pairs.items()})
        yield server, Receiver(tmp_path, port), {s: private for s, (private, _) in pairs.items()}
    finally:
        stop_process(unbound)
        server.stop()


def test_spamassassin_scores_the_signer_implicated_or_bystander(receiving):
    server, receiver, keys = receiving
    for address in (EC2, EC2_V6):
        hit = receiver.tests(_message(address, "shop.example", keys))
        assert {"DKIM_SIGNED", "DKIM_VALID", "RBL_TENANT_IMPLICATED"} <= hit, (address, hit)
        assert "RBL_TENANT_BYSTANDER" not in hit, (address, hit)
        hit = receiver.tests(_message(address, "honest.example", keys))
        assert {"DKIM_VALID", "RBL_TENANT_BYSTANDER"} <= hit, (address, hit)
        assert "RBL_TENANT_IMPLICATED" not in hit, (address, hit)
    # Unsigned: no signing domain, so no pair to ask about.
    hit = receiver.tests(_message(EC2, None, keys))
    assert not hit & {"DKIM_SIGNED", "RBL_TENANT_IMPLICATED", "RBL_TENANT_BYSTANDER"}, hit
    # Once the listing is gone, neither.
    server.workspace.rbl("listing", "remove", EC2)
    server.wait_for(lambda: server.addresses("shop.example.7.141.5.3.tenant.bl.example") == set())
    hit = receiver.tests(_message(EC2, "shop.example", keys))
    assert "DKIM_VALID" in hit and not hit & {"RBL_TENANT_IMPLICATED", "RBL_TENANT_BYSTANDER"}, hit


def test_the_readme_carries_the_rules():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for line in RULES.strip().splitlines():
        assert line in readme, line
