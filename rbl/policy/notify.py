"""Where a vendor wants its notices: the ``notify:`` section of ``policy/vendors/<vendor>.yaml``.

::

    notify:
      webhook:
        url: https://abuse-hooks.example.net/rbl
        secret_file: secrets/aws-webhook.key   # relative to the policy folder
        timeout: 10s                           # an attempt that takes longer failed
        retry_max: 10m                         # backoff doubles from 1 s up to this
        failing_after: 15m                     # down this long: failing in metrics and the operator's view
      email:
        to: abuse@amazonaws.com                # default: the vendor's abuse address
        every: 15m                             # one digest per this long at most

Every error names the file and line: a URL that is not http(s), a secret file
that is missing or empty, an address that is not one, a duration that is not.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rbl import yamlfile
from rbl.errors import ConfigError
from rbl.policy.listing import parse_duration

# local@domain: what an abuse desk's address looks like (RFC 5321 in practice, no display names).
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                      r"[A-Za-z]{2,63}$")


@dataclass(frozen=True)
class Webhook:
    url: str
    secret_file: Path
    timeout: dt.timedelta = dt.timedelta(seconds=10)
    retry_max: dt.timedelta = dt.timedelta(minutes=10)
    failing_after: dt.timedelta = dt.timedelta(minutes=15)

    def secret(self) -> bytes:
        """The shared secret, read when used: rotating the file needs no restart."""
        return self.secret_file.read_bytes().strip()


@dataclass(frozen=True)
class Email:
    to: str
    every: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Notify:
    webhook: Webhook | None = None
    email: Email | None = None


def is_address(text: str) -> bool:
    return bool(_ADDRESS.match(text)) and len(text) <= 254


def _duration(node: yamlfile.Located, key: str, default: dt.timedelta) -> dt.timedelta:
    if key not in node:
        return default
    try:
        value = parse_duration(node[key]) if isinstance(node[key], str) else None
    except ValueError:
        value = None
    if value is None or value <= dt.timedelta(0):
        raise node.error(f"{key} must be a duration such as 30s, 15m or 1h, not {node[key]!r}", key)
    return value


def parse_notify(data: object, path: str, line: int, folder: Path, abuse: str) -> Notify:
    """The ``notify:`` section of one vendor file (``folder``: the policy folder)."""
    node = yamlfile.check_keys(data, {"webhook", "email"}, set(), "notify", path, line)
    webhook = email = None
    if "webhook" in node:
        hook = yamlfile.check_keys(node["webhook"], {"url", "secret_file", "timeout", "retry_max", "failing_after"},
                                   {"url", "secret_file"}, "notify.webhook", path, node.where("webhook"))
        url = hook["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        try:
            port_ok = parts is not None and (parts.port is None or parts.port > 0)
        except ValueError:
            port_ok = False
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise hook.error(f"url must be an http:// or https:// URL with a host, not {url!r}", "url")
        secret = hook["secret_file"]
        if not isinstance(secret, str) or not secret.strip():
            raise hook.error("secret_file must be a file name, relative to the policy folder", "secret_file")
        secret_path = (folder / secret).resolve()
        try:
            if not secret_path.read_bytes().strip():
                raise hook.error(f"secret_file {secret}: the file is empty", "secret_file")
        except OSError as exc:
            raise hook.error(f"secret_file {secret}: {exc.strerror or exc}", "secret_file") from None
        webhook = Webhook(url, secret_path, _duration(hook, "timeout", Webhook.timeout),
                          _duration(hook, "retry_max", Webhook.retry_max),
                          _duration(hook, "failing_after", Webhook.failing_after))
    if "email" in node:
        if node["email"] is None:  # "email:" alone: the abuse address, every 15 minutes
            mail = yamlfile.Located()
            mail.path, mail.line, mail.lines = path, node.where("email"), {}
        else:
            mail = yamlfile.check_keys(node["email"], {"to", "every"}, set(), "notify.email", path,
                                       node.where("email"))
        to = mail.get("to", abuse)
        if not isinstance(to, str) or not to:
            raise mail.error("to is required when the vendor names no abuse address", "to" if "to" in mail else None)
        if not is_address(to):
            raise mail.error(f"to must be an email address such as abuse@example.net, not {to!r}",
                             "to" if "to" in mail else None)
        email = Email(to, _duration(mail, "every", Email.every))
    if webhook is None and email is None:
        raise ConfigError("notify names neither a webhook nor an email", path, line)
    return Notify(webhook, email)
