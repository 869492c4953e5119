"""Explanations: what every zone answers for one subject, and why, in words.

``rbl explain`` and ``GET /v1/lookup/{subject}`` print this. It decides rule
by rule from the store and the policy (:func:`rbl.policy.decide.decide_address`),
the slow twin of the compiled snapshot the DNS server answers from.
:func:`vendor_cases` is the same for a vendor's record: its cases one by one.
"""

from __future__ import annotations

import datetime as dt

from rbl.addresses import BITS, BOTH, DOMAIN, EXACT, IP4, SUBDOMAINS, Subject, parse_subject, reverse_name
from rbl.errors import SubjectError
from rbl.policy.decide import decide_address
from rbl.policy.classify import Classification
from rbl.policy.remediation import NEGLIGENT, Case
from rbl.policy.standing import Standing
from rbl.policy.vendors import Policy
from rbl.store.database import parse_timestamp, timestamp
from rbl.store.listings import Listing, ListingStore
from rbl.zone.config import CLOUD_CODES, ZoneConfig

_TEST_POINTS = {0x7F000002: "listed", 0x7F000001: "not listed"}


def explain(text: str, store: ListingStore, zones: list[ZoneConfig], policy: Policy,
            now: dt.datetime | None = None, standing: Standing | None = None) -> dict:
    """The decision and its trace for an address or a domain, in every zone.

    ``standing``: the vendors' tiers the answers were compiled with (None: every vendor neutral).

    :raises SubjectError: when ``text`` is neither an address nor a domain.
    """
    subject = parse_subject(text)
    if subject.kind != DOMAIN and subject.plen != subject.bits:
        raise SubjectError(f"{text!r} is a network: explain takes one address or a domain")
    now = now or store.clock()
    out: dict = {"subject": subject.text, "kind": subject.kind, "zones": {}}
    if subject.kind != DOMAIN:
        found = policy.classification.find(subject.kind, subject.net)
        out["range"] = None if found is None else {
            "vendor": found.vendor or None, "space": found.space, "cidr": found.cidr,
            "labels": dict(found.labels), "source": found.source,
        }
        if found is not None and found.vendor in policy.vendors:
            vendor = policy.vendors[found.vendor]
            out["range"].update(title=vendor.title, abuse=vendor.abuse or None)
    for zone in zones:
        out["zones"][zone.origin] = _zone(subject, store, zone, policy, now, standing)
    out["listed"] = any(z["codes"] for name, z in out["zones"].items() if z["serves"] != "cloud")
    return out


def _codes(zone: ZoneConfig, policy: Policy) -> dict[str, str]:
    return {**policy.listing.codes, **zone.codes}


def _code(codes: dict[str, str], name: str) -> str:
    if name in codes:
        return codes[name]
    return f"127.0.0.{name}" if name.isdigit() else name  # a listing's own code, as rbldnsd writes it


def _zone(subject: Subject, store: ListingStore, zone: ZoneConfig, policy: Policy, now: dt.datetime,
          standing: Standing | None) -> dict:
    query = f"{reverse_name(subject) if subject.kind != DOMAIN else subject.domain}.{zone.origin}"
    result: dict = {"query": query, "serves": zone.serves, "codes": [], "trace": []}
    if zone.serves == "cloud":
        if subject.kind == DOMAIN:
            result["trace"].append("the cloud information zone answers addresses only")
            return result
        found = policy.classification.find(subject.kind, subject.net)
        codes = {**CLOUD_CODES, **zone.codes}
        if found is None or found.space not in codes:
            result["trace"].append("not in any vendor's range" if found is None else "excluded by the operator")
        else:
            result["codes"] = [codes[found.space]]
            result["txt"] = found.describe()
            result["trace"].append(f"{found.space} space of {found.vendor}: {found.describe()}")
        return result
    listings = [row for row in store.show(subject, zone=zone.origin)
                if row.expires_at is None or row.expires_at > timestamp(now)]
    result["listings"] = [row.as_dict() for row in listings]
    for row in listings:
        result["trace"].append(f"listing {'!' if row.exclude else ''}{row.subject}: first seen {row.first_seen}, "
                               f"last seen {row.last_seen}, {row.hits} hit{'s' * (row.hits != 1)}, "
                               f"expires {row.expires_at or 'never'}"
                               + (f", reason: {row.reason}" if row.reason else "")
                               + (f"; the vendor remediated it at {row.remediated_at} (evidence accepted): "
                                  "throttle until it expires" if row.code == "throttle" and row.remediated_at else "")
                               + (f"; listed again at {row.relisted_at}, after the vendor's remediation at "
                                  f"{row.remediated_at}" if row.relisted_at and row.code != "throttle" else ""))
    if subject.kind == DOMAIN:
        return _domain(subject, listings, zone, policy, result)
    codes = _codes(zone, policy)
    test_point = _TEST_POINTS.get(subject.net) if subject.kind == IP4 else None
    if zone.serves == "verbatim":
        innermost = max(listings, key=lambda r: (r.plen, r.exclude), default=None)
        if test_point is not None:
            result["trace"].append(f"an RFC 5782 test point: always {test_point}")
            result["codes"] = [codes["block"]] if test_point == "listed" else []
        elif innermost is not None and not innermost.exclude:
            result["codes"] = [_code(codes, innermost.code or "block")]
            result["trace"].append(f"served verbatim: {innermost.subject} answers {result['codes'][0]}")
        return result
    prefix = policy.listing.escalation.prefix(subject.kind)
    bits = BITS[subject.kind]
    net = subject.net >> (bits - prefix) << (bits - prefix)
    rows = store.overlapping(zone.origin, subject.kind, net, prefix, now)
    found = policy.classification.find(subject.kind, subject.net)
    if standing is not None and found is not None and found.space == "shared" \
            and standing.tier(found.vendor) == NEGLIGENT and found.plen < prefix:
        rows = store.overlapping(zone.origin, subject.kind, found.net, found.plen, now)  # its density counts
    decision = decide_address(subject.kind, subject.net, rows, policy.classification, policy.listing, test_point,
                              standing)
    result["codes"] = [_code(codes, name) for name in decision.codes]
    result["names"] = list(decision.codes)
    result["space"] = decision.space
    result["escalation"] = decision.escalation
    if decision.density is not None:
        result["density"] = decision.density
    result["trace"] += decision.trace
    return result


def _domain(subject: Subject, listings, zone: ZoneConfig, policy: Policy, result: dict) -> dict:
    codes = _codes(zone, policy)
    if subject.domain in ("test", "invalid"):
        listed = subject.domain == "test"
        result["trace"].append(f"an RFC 5782 test point: always {'listed' if listed else 'not listed'}")
        result["codes"] = [codes["block"]] if listed else []
        return result

    def depth(row) -> tuple:
        # The innermost listing decides, as in the snapshot: the longest name, then the
        # narrowest cover (the name alone, then its subdomains only, then both), then an exclusion.
        base = parse_subject(row.subject)
        return (base.domain.count("."), {EXACT: 2, SUBDOMAINS: 1, BOTH: 0}[base.cover], row.exclude)

    innermost = max(listings, key=depth, default=None)
    if innermost is None:
        result["trace"].append("not listed")
    elif innermost.exclude:
        result["trace"].append(f"not listed: the exclusion {innermost.subject} cuts a hole")
    else:
        result["codes"] = [_code(codes, innermost.code or "block")]
        result["trace"].append(f"listed by {innermost.subject}: {result['codes'][0]}")
    return result


def render(explained: dict) -> str:
    """The explanation as text a person reads."""
    lines = [explained["subject"] + (" is listed" if explained["listed"] else " is not listed")]
    found = explained.get("range")
    if found:
        who = f"{found.get('title') or found['vendor']} " if found.get("vendor") else ""
        lines.append(f"  range: {found['cidr']}, {who}{found['space']} space ({found['source']})")
    elif explained["kind"] != DOMAIN:
        lines.append("  range: none (unclassified, owner-accountable space)")
    for origin, zone in explained["zones"].items():
        answer = " ".join(zone["codes"]) or "NXDOMAIN"
        lines.append(f"{zone['query']}: {answer}")
        lines += [f"  - {step}" for step in zone["trace"]]
    return "\n".join(lines)


def vendor_cases(store: ListingStore, classification: Classification, vendor: str, zones: tuple[str, ...],
                 since: dt.datetime) -> tuple[list[Case], list[Listing]]:
    """The vendor's cases first seen since ``since``, one by one, and the listings they come from.

    The slow twin of :func:`rbl.policy.standing.vendor_scores` over
    :meth:`ListingStore.case_columns` (which count the same cases as columns), that
    the tests hold them to: a case is a single listed address, expired or not, whose
    deciding range in ``classification`` is the vendor's.
    """
    def moment(text: str | None) -> dt.datetime | None:
        return parse_timestamp(text) if text is not None else None

    cases, listings = [], []
    for row in store.case_rows(zones, since):
        found = classification.find(row.kind, int.from_bytes(row.net, "big"))
        if found is None or found.vendor != vendor:
            continue
        cases.append(Case(vendor, row.subject, parse_timestamp(row.first_seen), moment(row.remediated_at),
                          moment(row.relisted_at), row.disputed_at is not None))
        listings.append(row)
    return cases, listings
