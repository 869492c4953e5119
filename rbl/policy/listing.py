"""``policy/listing.yaml``: answer codes and expiry.

Example::

    codes:
      block: 127.0.0.2
      block-range: 127.0.0.3
      throttle: 127.0.0.4
      throttle-range: 127.0.0.5
      quarantine: 127.0.0.6
    expiry:
      default: 7d        # after last_seen; "never" keeps listings until removed
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from rbl import yamlfile

DEFAULT_CODES = {
    "block": "127.0.0.2",
    "block-range": "127.0.0.3",
    "throttle": "127.0.0.4",
    "throttle-range": "127.0.0.5",
    "quarantine": "127.0.0.6",
}

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta | None:
    """``30s``, ``15m``, ``6h``, ``7d``, ``2w``; ``never`` is None.

    :raises ValueError: for anything else.
    """
    text = str(text).strip().lower()
    if text == "never":
        return None
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (like 30s, 15m, 6h, 7d, 2w or never)")
    return dt.timedelta(seconds=int(match[1]) * _UNITS[match[2]])


@dataclass(frozen=True)
class ListingPolicy:
    codes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CODES))
    default_expiry: dt.timedelta | None = dt.timedelta(days=7)

    def code(self, name: str) -> str:
        return self.codes[name]


def load_listing_policy(policy_dir: str | Path) -> ListingPolicy:
    """Read ``listing.yaml`` from the policy folder; defaults when it is absent.

    :raises ConfigError: naming file and line.
    """
    path = Path(policy_dir) / "listing.yaml"
    if not path.exists():
        return ListingPolicy()
    data = yamlfile.load(path)
    if data is None:
        return ListingPolicy()
    name = str(path)
    yamlfile.check_keys(data, {"codes", "expiry"}, set(), "listing policy", name, 1)
    codes = dict(DEFAULT_CODES)
    if "codes" in data:
        node = yamlfile.check_keys(data["codes"], set(DEFAULT_CODES), set(), "codes", name, data.where("codes"))
        for key, value in node.items():
            try:
                addr = ipaddress.IPv4Address(str(value))
            except ValueError:
                raise node.error(f"code {key}: {value!r} is not an IPv4 address", key) from None
            if addr not in ipaddress.IPv4Network("127.0.0.0/8"):
                raise node.error(f"code {key}: {value} is outside 127.0.0.0/8 (RFC 5782)", key)
            codes[key] = str(addr)
    expiry = dt.timedelta(days=7)
    if "expiry" in data:
        node = yamlfile.check_keys(data["expiry"], {"default"}, set(), "expiry", name, data.where("expiry"))
        if "default" in node:
            try:
                expiry = parse_duration(node["default"])
            except ValueError as exc:
                raise node.error(f"expiry default: {exc}", "default") from None
    return ListingPolicy(codes=codes, default_expiry=expiry)
