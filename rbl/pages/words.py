"""What the pages say: the answer codes and an explanation in plain words.

Pure functions over what :func:`rbl.explain.explain` returns and the policy:
no I/O, no HTML (the templates escape what these return). The meanings and
receivers' actions are DESIGN section 3's table; the codes themselves always
come from ``policy/listing.yaml`` and the zone files, so a page never names a
code the DNS would not answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rbl.addresses import DOMAIN, IP4, IP6
from rbl.policy.remediation import COOPERATIVE, NEGLIGENT
from rbl.policy.standing import Standing
from rbl.policy.vendors import Policy
from rbl.store.database import parse_timestamp
from rbl.zone.config import CLOUD_CODES, ZoneConfig

# name: (meaning, what a receiver should do)
MEANINGS: dict[str, tuple[str, str]] = {
    "block": ("direct evidence of abuse from this address or domain", "reject (5xx)"),
    "block-range": ("escalated: an owner-accountable range with many listed addresses", "reject (5xx)"),
    "throttle": ("a listed address in shared space whose vendor is remediating",
                 "defer (4xx), rate-limit or score"),
    "throttle-range": ("a shared pool of a vendor whose remediation fails the policy",
                       "rate-limit or score; never reject on this alone"),
    "quarantine": ("an abuse egress pool the vendor itself declared", "reject (5xx)"),
}
CLOUD_MEANINGS: dict[str, str] = {
    "shared": "shared space of a known cloud vendor: many tenants behind its addresses",
    "dedicated": "dedicated space of a known cloud vendor: one customer answers for it",
    "quarantine": "a vendor's declared quarantine (abuse egress) pool",
}
CLOUD_ACTION = "input to scoring, never a block on its own"
ERRORS: list[tuple[str, str]] = [
    ("127.255.255.252", "the query name is malformed under the zone (only where the zone turns this on)"),
    ("127.255.255.254", "the querier is not allowed (an access list, or a public resolver)"),
    ("127.255.255.255", "the querier is over its quota"),
]
SPACES = {
    "shared": "shared cloud space: many tenants use these addresses one after another, so only the listed "
              "address itself is listed, never its neighbours",
    "dedicated": "dedicated space: the customer holding the range answers for every address in it",
    "quarantine": "the vendor's own quarantine pool for abusive traffic",
    "excluded": "excluded by this list's operator: never listed",
    "unclassified": "no cloud vendor's range: owner-accountable space, where many listings in one network "
                    "list the whole network",
}
# Listing fields a page may show: never the source, the actor or anything about a trap.
PUBLIC_FIELDS = ("subject", "first_seen", "last_seen", "expires_at", "reason", "category", "code",
                 "remediated_at", "relisted_at", "exclude")


@dataclass(frozen=True)
class Code:
    address: str
    name: str
    meaning: str
    action: str


def zone_codes(zone: ZoneConfig, policy: Policy) -> dict[str, str]:
    """A zone's code names and their addresses, as it answers them."""
    if zone.serves == "cloud":
        return {**CLOUD_CODES, **zone.codes}
    return {**policy.listing.codes, **zone.codes}


def describe_code(address: str, zone: ZoneConfig, policy: Policy) -> Code:
    """One answer code of ``zone`` in words (a listing's own code, as rbldnsd data may carry, too)."""
    for name, value in zone_codes(zone, policy).items():
        if value == address:
            if zone.serves == "cloud":
                return Code(address, name, CLOUD_MEANINGS.get(name, name), CLOUD_ACTION)
            meaning, action = MEANINGS.get(name, (name, "as the operator documents it"))
            return Code(address, name, meaning, action)
    return Code(address, "listed", "listed with a code of the listing's own", "as the operator documents it")


def code_table(zones: list[ZoneConfig], policy: Policy) -> list[tuple[ZoneConfig, list[Code]]]:
    """Every zone's codes in words, for the home page: a zone that names codes of its own (the DKIM
    zone) shows those; the others every code they may answer."""
    return [(zone, [describe_code(address, zone, policy)
                    for address in (zone.codes or zone_codes(zone, policy)).values()]) for zone in zones]


def when(moment: str | dt.datetime | None, now: dt.datetime) -> str:
    """A time (as the store writes it, or a datetime) for people: the date and time in UTC, and how
    far from now."""
    if not moment:
        return "never"
    if isinstance(moment, str):
        moment = parse_timestamp(moment)
    delta = moment - now
    past = delta.total_seconds() < 0
    seconds = abs(int(delta.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            span = f"{count} {unit}{'s' * (count != 1)}"
            break
    else:
        span = "less than a minute"
    return f"{moment.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC ({span} {'ago' if past else 'from now'})"


def query_examples(origin: str) -> list[tuple[str, str]]:
    """One ``dig`` line per kind of subject, on the RFC 5782 test points (always answered)."""
    nibbles = ".".join(reversed(f"{0xFFFF7F000002:032x}"))  # ::ffff:127.0.0.2
    return [
        ("an IPv4 address (192.0.2.99: its octets reversed)", f"dig +short 99.2.0.192.{origin} A"),
        ("the IPv4 test point, always listed", f"dig +short 2.0.0.127.{origin} A"),
        ("an IPv6 address (its 32 nibbles reversed; here ::ffff:127.0.0.2)", f"dig +short {nibbles}.{origin} A"),
        ("a domain (the test point test)", f"dig +short test.{origin} A"),
        ("why it is listed", f"dig +short 2.0.0.127.{origin} TXT"),
    ]


def _listing(row: dict, now: dt.datetime) -> dict:
    shown = {k: row.get(k) for k in PUBLIC_FIELDS}
    shown["since"] = when(row.get("first_seen"), now)
    shown["until"] = when(row.get("expires_at"), now)
    shown["last"] = when(row.get("last_seen"), now)
    return shown


def _reasons(zone: dict, vendor: str | None, tier: str | None, names: list[str], found: dict | None) -> list[str]:
    """Why this zone answers what it does, in sentences."""
    out = []
    if "block" in names and (found or {}).get("space") == "shared":
        out.append(f"Block for this address only: shared space is listed one address at a time, and "
                   f"{vendor}'s tier ({tier or 'not scored'}) does not soften it.")
    if "throttle" in names:
        remediated = any(row.get("remediated_at") for row in zone.get("listings", []) if row.get("code") == "throttle")
        if remediated:
            out.append(f"{vendor or 'The vendor'} reported that it acted on this address: the listing answers "
                       "throttle until its shortened expiry, then ends.")
        elif tier == COOPERATIVE:
            out.append(f"Throttle, not block: {vendor} is cooperative (it remediates listings in its space in "
                       "time), so its tenants get a softer answer.")
    if "throttle-range" in names and found is not None:
        density = zone.get("density") or {}
        out.append(f"Throttle-range: {vendor} is negligent and {density.get('listed', 'many')} of the addresses "
                   f"of its shared range {found.get('cidr')} are listed, at least {density.get('threshold', '?')}.")
    escalation = zone.get("escalation")
    if escalation and escalation.get("applied"):
        out.append(f"Block-range: {escalation['listed']} addresses are listed in {escalation['within']}, at least "
                   f"{escalation['threshold']}, so the owner of that network answers for all of it.")
    if "quarantine" in names:
        out.append("The vendor declared this pool as its quarantine for abusive traffic.")
    return out


def lookup_view(explained: dict, zones: list[ZoneConfig], policy: Policy, standing: Standing | None,
                now: dt.datetime) -> dict:
    """The lookup page's content for one address or domain: every zone's answer in words."""
    found = explained.get("range")
    vendor = found.get("vendor") if found else None
    tier = standing.tier(vendor) if standing is not None and vendor else None
    by_origin = {zone.origin: zone for zone in zones}
    shown = []
    for origin, zone in explained["zones"].items():
        config = by_origin[origin]
        names = zone.get("names", [])
        codes = [describe_code(address, config, policy) for address in zone["codes"]]
        listings = [_listing(row, now) for row in zone.get("listings", [])]
        shown.append({
            "origin": origin, "serves": config.serves, "query": zone["query"], "codes": codes,
            "listed": bool(codes) and config.serves != "cloud", "listings": listings,
            "reasons": _reasons(zone, vendor, tier, names, found) if config.serves == "listings" else [],
            "escalation": zone.get("escalation"), "density": zone.get("density"),
            "trace": [step for step in zone["trace"] if not step.startswith("listing ")],
            "txt": zone.get("txt"),
        })
    space = (found or {}).get("space") or ("unclassified" if explained["kind"] != DOMAIN else None)
    tier_counts = (tier in (COOPERATIVE, NEGLIGENT) and space == "shared")
    return {
        "subject": explained["subject"], "kind": explained["kind"], "listed": explained["listed"],
        "kind_words": {IP4: "An IPv4 address", IP6: "An IPv6 address", DOMAIN: "A domain"}[explained["kind"]],
        "range": found, "space": space, "space_words": SPACES.get(space or "", ""),
        "tier": tier if tier_counts else None, "zones": shown,
    }
