"""Per-client token buckets for the routes anyone may call (delisting requests).

Each client has a bucket holding up to ``burst`` tokens, refilled at ``rate``
tokens a second; a request takes one token or is refused with the seconds
until one is there. Buckets live in the primary's memory: a restart forgives
everyone, which is harmless for a limit counted in requests an hour.

Pure arithmetic over the times it is given, so tests drive it with exact
fractions and no sleeping.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_CLIENTS = 100_000  # buckets kept; the least recently seen go first (as if full again)


def client_key(address: str | None) -> str:
    """The unit a limit counts: an IPv4 address, or the /64 of an IPv6 one.

    One IPv6 host usually holds a whole /64 and can pick any address in it.
    """
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if parsed.version == 6:
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass(slots=True)
class _Bucket:
    tokens: object  # a number: float from the clock, Fraction in tests
    at: object


class RateLimiter:
    """Token buckets by client key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_CLIENTS):
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, rate, burst: int, now=None):
        """Take one token for ``key``: 0 when allowed, else the seconds until a token is there.

        ``rate`` is tokens a second and ``burst`` the bucket's size; both are read
        on every call, so a changed policy applies at once.
        """
        now = self.clock() if now is None else now
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(burst, now)
        else:
            elapsed = now - bucket.at
            if elapsed < 0:  # a clock that went back: refill nothing
                elapsed = 0
            bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
            bucket.at = max(now, bucket.at)
        self._buckets[key] = bucket  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0
        return (1 - bucket.tokens) / rate

    def __len__(self) -> int:
        return len(self._buckets)
