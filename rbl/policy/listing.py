"""``policy/listing.yaml``: answer codes, expiry, escalation and remediation numbers.

Every number of DESIGN section 4's decision table lives here. Example::

    codes:
      block: 127.0.0.2
      block-range: 127.0.0.3
      throttle: 127.0.0.4
      throttle-range: 127.0.0.5
      quarantine: 127.0.0.6
    expiry:
      default: 7d          # after last_seen; "never" keeps listings until removed
      repeat_window: 30d   # relisted this soon after the last listing ended...
      repeat_multiplier: 2 # ...lives this many times as long as the last one,
      max: 90d             # but never longer than this
      remediated: 6h       # shared space: expiry after accepted remediation evidence
    escalation:            # owner-accountable space only: shared space never escalates
      addresses: 8         # this many listed addresses in one prefix list the prefix
      ip4_prefix: 24
      ip6_prefix: 64
    remediation:
      window: 30d          # a vendor's cases are scored over this sliding window
      sla: 24h             # remediated within this counts as remediated in time
      recidivism: 7d       # relisted within this after remediation counts against
      min_cases: 10        # fewer cases: tier neutral
      cooperative: 0.8     # score at or above: cooperative
      negligent: 0.4       # score below: negligent
      density: 0.02        # negligent vendor: a shared range this densely listed answers throttle-range
    delisting:             # POST /v1/delist-requests, per client address (IPv6: per /64)
      requests_per_hour: 10  # sustained rate
      burst: 3             # this many at once before the rate applies
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
# The tenant zone's codes (an identity at an address): also set under ``codes:``.
TENANT_CODES = {
    "implicated": "127.0.3.2",  # the address's listing names this signing domain
    "bystander": "127.0.3.1",   # it names others, not this one: shared space only
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
class Expiry:
    """How long listings live, and how repeat offenders live longer."""

    default: dt.timedelta | None = dt.timedelta(days=7)
    repeat_window: dt.timedelta = dt.timedelta(days=30)
    repeat_multiplier: float = 2.0
    max: dt.timedelta = dt.timedelta(days=90)
    remediated: dt.timedelta = dt.timedelta(hours=6)

    def lifetime(self, previous: dt.timedelta | None, ended: dt.datetime | None, now: dt.datetime,
                 requested: dt.timedelta | None) -> dt.timedelta | None:
        """The lifetime of a listing made now.

        ``previous`` and ``ended`` describe the subject's last listing (None if
        never listed). Relisted within the repeat window, it lives
        ``repeat_multiplier`` times its previous lifetime, capped at ``max``.
        """
        if requested is None or previous is None or ended is None:
            return requested
        if now - ended > self.repeat_window:
            return requested
        longer = dt.timedelta(seconds=previous.total_seconds() * self.repeat_multiplier)
        return min(max(longer, requested), max(self.max, requested))


@dataclass(frozen=True)
class Escalation:
    """When listed addresses in owner-accountable space list their whole prefix."""

    addresses: int = 8
    ip4_prefix: int = 24
    ip6_prefix: int = 64

    def prefix(self, kind: str) -> int:
        return self.ip4_prefix if kind == "ip4" else self.ip6_prefix


@dataclass(frozen=True)
class Remediation:
    """How a vendor's cases are scored into a tier, and what a negligent vendor's tier does."""

    window: dt.timedelta = dt.timedelta(days=30)
    sla: dt.timedelta = dt.timedelta(hours=24)
    recidivism: dt.timedelta = dt.timedelta(days=7)
    min_cases: int = 10
    cooperative: float = 0.8
    negligent: float = 0.4
    # A negligent vendor's shared range with this share of its units listed (an address
    # in IPv4, an escalation prefix in IPv6; at least escalation.addresses) answers throttle-range.
    density: float = 0.02


@dataclass(frozen=True)
class Delisting:
    """How many delisting requests one client may send: a token bucket per client address."""

    requests_per_hour: int = 10
    burst: int = 3


@dataclass(frozen=True)
class Identity:
    """What vendor evidence naming a tenant's signing domain does."""

    # tenant_terminated with an identity lists that domain in the DKIM zone this long.
    terminated: dt.timedelta = dt.timedelta(days=30)


@dataclass(frozen=True)
class ListingPolicy:
    codes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CODES))
    tenant_codes: dict[str, str] = field(default_factory=lambda: dict(TENANT_CODES))
    identity: Identity = field(default_factory=Identity)
    expiry: Expiry = field(default_factory=Expiry)
    escalation: Escalation = field(default_factory=Escalation)
    remediation: Remediation = field(default_factory=Remediation)
    delisting: Delisting = field(default_factory=Delisting)


def _duration(node: yamlfile.Located, key: str, default, allow_never: bool = False):
    if key not in node:
        return default
    try:
        value = parse_duration(node[key])
    except ValueError as exc:
        raise node.error(f"{key}: {exc}", key) from None
    if value is None and not allow_never:
        raise node.error(f"{key}: 'never' is not allowed here", key)
    if value is not None and not value:
        raise node.error(f"{key}: must be longer than 0", key)
    return value


def _number(node: yamlfile.Located, key: str, default, kind: type, low: float, high: float | None = None):
    if key not in node:
        return default
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise node.error(f"{key} must be a {'number' if kind is float else 'whole number'}, not {value!r}", key)
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise node.error(f"{key} must be {bound}, not {value!r}", key)
    return kind(value)


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
    sections = {"codes", "expiry", "escalation", "remediation", "delisting", "identity"}
    yamlfile.check_keys(data, sections, set(), "listing policy", name, 1)
    codes = {**DEFAULT_CODES, **TENANT_CODES}
    if "codes" in data:
        node = yamlfile.check_keys(data["codes"], set(codes), set(), "codes", name, data.where("codes"))
        for key, value in node.items():
            codes[key] = check_code(node, key, value)
        seen: dict[str, str] = {}
        for key, value in codes.items():
            if value in seen:
                line_key = key if key in node else seen[value]
                raise node.error(f"code {key}: {value} is already the code of {seen[value]}; "
                                 "receivers could not tell them apart", line_key)
            seen[value] = key
    expiry = Expiry()
    if "expiry" in data:
        node = yamlfile.check_keys(data["expiry"], {"default", "repeat_window", "repeat_multiplier", "max", "remediated"},
                                   set(), "expiry", name, data.where("expiry"))
        expiry = Expiry(
            default=_duration(node, "default", expiry.default, allow_never=True),
            repeat_window=_duration(node, "repeat_window", expiry.repeat_window),
            repeat_multiplier=_number(node, "repeat_multiplier", expiry.repeat_multiplier, float, 1),
            max=_duration(node, "max", expiry.max),
            remediated=_duration(node, "remediated", expiry.remediated),
        )
    escalation = Escalation()
    if "escalation" in data:
        node = yamlfile.check_keys(data["escalation"], {"addresses", "ip4_prefix", "ip6_prefix"}, set(),
                                   "escalation", name, data.where("escalation"))
        escalation = Escalation(
            addresses=_number(node, "addresses", escalation.addresses, int, 2),
            ip4_prefix=_number(node, "ip4_prefix", escalation.ip4_prefix, int, 8, 31),
            ip6_prefix=_number(node, "ip6_prefix", escalation.ip6_prefix, int, 16, 127),
        )
    remediation = Remediation()
    if "remediation" in data:
        node = yamlfile.check_keys(data["remediation"],
                                   {"window", "sla", "recidivism", "min_cases", "cooperative", "negligent", "density"},
                                   set(), "remediation", name, data.where("remediation"))
        remediation = Remediation(
            window=_duration(node, "window", remediation.window),
            sla=_duration(node, "sla", remediation.sla),
            recidivism=_duration(node, "recidivism", remediation.recidivism),
            min_cases=_number(node, "min_cases", remediation.min_cases, int, 0),
            cooperative=_number(node, "cooperative", remediation.cooperative, float, 0, 1),
            negligent=_number(node, "negligent", remediation.negligent, float, 0, 1),
            density=_number(node, "density", remediation.density, float, 0, 1),
        )
        if remediation.negligent > remediation.cooperative:
            raise node.error("negligent must not be above cooperative", "negligent")
    delisting = Delisting()
    if "delisting" in data:
        node = yamlfile.check_keys(data["delisting"], {"requests_per_hour", "burst"}, set(), "delisting", name,
                                   data.where("delisting"))
        # At least one an hour and one at once: zero would refuse every requester, and the
        # form is how a wrongly listed sender reaches the operator. The caps keep a typo from
        # turning the limit off.
        delisting = Delisting(
            requests_per_hour=_number(node, "requests_per_hour", delisting.requests_per_hour, int, 1, 3600),
            burst=_number(node, "burst", delisting.burst, int, 1, 100),
        )
    identity = Identity()
    if "identity" in data:
        node = yamlfile.check_keys(data["identity"], {"terminated"}, set(), "identity", name, data.where("identity"))
        identity = Identity(terminated=_duration(node, "terminated", identity.terminated))
    return ListingPolicy(codes={k: v for k, v in codes.items() if k in DEFAULT_CODES},
                         tenant_codes={k: v for k, v in codes.items() if k in TENANT_CODES},
                         identity=identity, expiry=expiry, escalation=escalation, remediation=remediation,
                         delisting=delisting)


def check_code(node: yamlfile.Located, key: str, value: object) -> str:
    """An answer code: an IPv4 address in 127.0.0.0/8 (RFC 5782)."""
    try:
        addr = ipaddress.IPv4Address(str(value))
    except ValueError:
        raise node.error(f"code {key}: {value!r} is not an IPv4 address", key) from None
    if addr not in ipaddress.IPv4Network("127.0.0.0/8"):
        raise node.error(f"code {key}: {value} is outside 127.0.0.0/8 (RFC 5782)", key)
    return str(addr)
