"""``policy/resolvers/*.txt``: the egress ranges of public resolvers, answered 127.255.255.254.

A public resolver hides who asks and multiplies the load, so a keyless query
that comes from one is answered with the access error and a TXT that says to
query from one's own resolver (a valid key is answered from anywhere: the key
says who asks). Each line's first word is a network; the rest of the line is
ignored, which reads both a plain CIDR list and the format Google publishes for
Google Public DNS (``prefix location``, from ``dig TXT locations.publicdns.goog``).
``#`` starts a comment.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from rbl.errors import ConfigError

FOLDER = "resolvers"


def resolver_files(policy: str | Path) -> list[Path]:
    return sorted((Path(policy) / FOLDER).glob("*.txt"))


def load_resolvers(policy: str | Path) -> list[str]:
    """Every network of every resolver file, as text, sorted and without repeats.

    :raises ConfigError: naming the file and line of the first word that is not a network.
    """
    networks: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    for path in resolver_files(policy):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {getattr(exc, 'strerror', None) or 'not UTF-8'}", str(path)) from None
        for number, line in enumerate(text.splitlines(), 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            try:
                networks.add(ipaddress.ip_network(words[0], strict=False))
            except ValueError:
                raise ConfigError(f"{words[0]!r} is not a network such as 192.0.2.0/24", str(path), number) from None
    return [str(net) for net in sorted(networks, key=lambda n: (n.version, n))]
