"""Real receivers for the vendors' notices: an aiohttp webhook and an aiosmtpd SMTP server, on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from conftest import LoopbackHTTP, Workspace, free_port

SECRET = b"a-shared-secret-of-the-test"


def notify(workspace: Workspace, vendor: str, section: str) -> None:
    """Give ``vendor`` a ``notify:`` section (YAML text, indented under it) and the test's secret."""
    secrets = workspace.policy / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / f"{vendor}.key").write_bytes(SECRET + b"\n")
    path = workspace.policy / "vendors" / f"{vendor}.yaml"
    path.write_text(path.read_text() + "notify:\n" + section)


def webhook(url: str, vendor: str, extra: str = "") -> str:
    return f"  webhook:\n    url: {url}\n    secret_file: secrets/{vendor}.key\n{extra}"


@dataclass
class Delivery:
    at: float
    status: int
    signature: str
    body: bytes
    events: list = field(default_factory=list)


class Receiver:
    """A vendor's webhook: records every POST, answers what :attr:`answer` says (200 by default),
    and checks the signature with the secret as a vendor's receiver would (HMAC-SHA256 of
    ``TIMESTAMP.BODY``), independently of rbl's own code."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.answer = lambda: 200
        self.lock = threading.Lock()
        self.http = LoopbackHTTP("webhook-receiver")

    def __enter__(self) -> "Receiver":
        from aiohttp import web

        async def hook(request):
            body = await request.read()
            status = self.answer()
            with self.lock:
                self.deliveries.append(Delivery(time.monotonic(), status, request.headers.get("Rbl-Signature", ""),
                                                body, json.loads(body)["events"]))
            return web.json_response({"ok": status == 200}, status=status)

        app = web.Application()
        app.router.add_post("/hook/{vendor}", hook)
        self.http.start(app)
        return self

    def __exit__(self, *exc) -> None:
        self.http.stop()

    def url(self, vendor: str) -> str:
        return f"http://127.0.0.1:{self.http.port}/hook/{vendor}"

    def accepted(self) -> list[dict]:
        """Events of the deliveries answered 200, in the order received."""
        with self.lock:
            return [e for d in self.deliveries if d.status == 200 for e in d.events]

    def deduped(self) -> dict[tuple[str, int], dict]:
        """What a receiver that dedupes by (vendor, id) keeps."""
        return {(e["vendor"], e["id"]): e for e in self.accepted()}

    def wait(self, predicate, timeout: float) -> float:
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                raise AssertionError(f"not within {timeout} s: {len(self.deliveries)} deliveries")
            time.sleep(0.01)
        return time.monotonic() - start


def signed(secret: bytes, header: str, body: bytes) -> bool:
    """The receiver's check: ``t=TIMESTAMP,v1=HEX`` is HMAC-SHA256(secret, TIMESTAMP.BODY), made recently."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"]) and abs(time.time() - int(parts["t"])) < 300


class Mailbox:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message, and requires STARTTLS
    (a certificate of its own for 127.0.0.1, made with openssl into ``folder``) and a login."""

    def __init__(self, folder: Path, user: str = "rbl", password: str = "relay-password") -> None:
        self.messages: list[tuple[float, bytes, list[str]]] = []
        self.user, self.password = user, password
        self.cert, self.key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(self.key), "-out", str(self.cert)], check=True, capture_output=True)

    def __enter__(self) -> "Mailbox":
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                box.messages.append((time.monotonic(), envelope.original_content or envelope.content,
                                     list(envelope.rcpt_tos)))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == self.user.encode() and auth_data.password == self.password.encode()
            return AuthResult(success=ok)

        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.cert, self.key)
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticator,
                                     auth_required=True, tls_context=tls, require_starttls=True)
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    def credentials(self, folder: Path) -> Path:
        path = folder / "smtp.secret"
        path.write_text(f"{self.user}:{self.password}\n")
        return path
