"""Webhook signatures: HMAC-SHA256 of ``TIMESTAMP.BODY``, sent as ``Rbl-Signature: t=TIMESTAMP,v1=HEX``.

The timestamp is inside what is signed, so a receiver that refuses old
timestamps (say, five minutes) cannot be sent a recorded delivery again;
``v1`` names the scheme, so a new one can be sent beside it while receivers
move over (the scheme Stripe and Slack use).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "Rbl-Signature"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The header's value for ``body`` sent at ``timestamp`` (seconds since the epoch)."""
    digest = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: bytes, header: str, body: bytes, now: int | None = None, tolerance: int = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` (and, given ``now``, was made within
    ``tolerance`` seconds of it): what a receiver runs. Any ``v1`` in the header may match."""
    pairs = [item.strip().split("=", 1) for item in header.split(",") if "=" in item]
    stamps = [value for key, value in pairs if key == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if now is not None and abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, value) for key, value in pairs if key == "v1")
