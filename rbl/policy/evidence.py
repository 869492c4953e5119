"""Remediation evidence as vendors submit it: checked whole before anything is stored.

``POST /v1/evidence`` carries ``{"items": [...]}``; each item names a subject
(an address or CIDR inside the submitting vendor's own ranges), an action, the
vendor's reference and when it acted. This module turns the decoded JSON into
items or into the one error that names the item and field at fault; it does no
I/O, so the HTTP route and tests share it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from rbl.addresses import BITS, DOMAIN, Subject, parse_identity, parse_subject
from rbl.errors import RblError, SubjectError
from rbl.policy.classify import Classification

ACTIONS = ("tenant_terminated", "tenant_suspended", "port25_blocked", "egress_quarantined", "credentials_reset",
           "false_positive")  # false_positive asks the operator for review; it is not remediation
MAX_ITEMS = 1000
MAX_REFERENCE = 200
CLOCK_SKEW = dt.timedelta(minutes=5)  # acted_at a little ahead of our clock is a clock, not a lie
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_FIELDS = {"subject", "action", "reference", "acted_at", "identity"}


class EvidenceError(RblError):
    """A submission refused whole: the HTTP status, and where the problem is."""

    def __init__(self, status: int, message: str, item: int | None = None, field: str | None = None):
        self.status, self.item, self.field = status, item, field
        where = f"items[{item}]" + (f".{field}" if field else "") + ": " if item is not None else ""
        super().__init__(where + message)


@dataclass(frozen=True)
class Item:
    subject: Subject
    action: str
    reference: str
    acted_at: dt.datetime
    identity: str | None = None


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 timestamp with its offset, as an aware datetime.

    :raises ValueError: for anything else.
    """
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise ValueError("not an RFC 3339 time such as 2026-11-28T09:30:00Z")
    stamp = text.upper().replace("Z", "+00:00")
    if "." in stamp:  # Python reads at most 6 digits of a fraction
        head, rest = stamp.split(".", 1)
        digits = re.match(r"\d+", rest)[0]
        stamp = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    return dt.datetime.fromisoformat(stamp)


def inside(ranges: Classification, subject: Subject) -> bool:
    """Whether the whole address or CIDR lies in one of these ranges."""
    found = ranges.find(subject.kind, subject.net)
    if found is not None and found.plen <= subject.plen:
        return True
    # The most specific range at the network address is narrower than the subject:
    # a wider one may still hold all of it (ranges nest).
    return any(r is not None and r.plen <= subject.plen and r.contains(subject.kind, subject.net)
               for r in ranges.ranges[1:])


def parse_items(body: Any, vendor: str, ranges: Classification, now: dt.datetime) -> list[Item]:
    """Items of a submission, or the first problem: 400 for malformed, 403 for outside the vendor's ranges.

    :raises EvidenceError: naming the item and field.
    """
    if not isinstance(body, dict) or set(body) != {"items"}:
        raise EvidenceError(400, 'the body must be a JSON object {"items": [...]}', field="items")
    items = body["items"]
    if not isinstance(items, list) or not items:
        raise EvidenceError(400, "items must be a non-empty list", field="items")
    if len(items) > MAX_ITEMS:
        raise EvidenceError(413, f"at most {MAX_ITEMS} items per submission, not {len(items)}", field="items")
    out = []
    outside = None
    for i, item in enumerate(items):
        parsed = _item(i, item, now)
        if outside is None and not inside(ranges, parsed.subject):
            outside = EvidenceError(403, f"{parsed.subject.text} is not in {vendor}'s ranges", i, "subject")
        out.append(parsed)
    if outside is not None:  # malformed items are named first: they are the client's bug to fix
        raise outside
    return out


def _item(i: int, item: Any, now: dt.datetime) -> Item:
    if not isinstance(item, dict):
        raise EvidenceError(400, "an item must be an object", i)
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise EvidenceError(400, f"unknown field (expected {', '.join(sorted(_FIELDS))})", i, unknown[0])
    for name in ("subject", "action", "reference", "acted_at"):
        if name not in item:
            raise EvidenceError(400, "required", i, name)
        if not isinstance(item[name], str):
            raise EvidenceError(400, "must be a string", i, name)
    try:
        subject = parse_subject(item["subject"])
    except SubjectError as exc:
        raise EvidenceError(400, str(exc), i, "subject") from None
    if subject.kind == DOMAIN:
        raise EvidenceError(400, "an address or CIDR, not a domain (a domain goes in identity)", i, "subject")
    if subject.plen < BITS[subject.kind] // 2:
        raise EvidenceError(400, f"/{subject.plen} is wider than any one tenant's space", i, "subject")
    if item["action"] not in ACTIONS:
        raise EvidenceError(400, f"unknown action {item['action']!r} (expected {', '.join(ACTIONS)})", i, "action")
    reference = item["reference"].strip()
    if not reference or len(reference) > MAX_REFERENCE or not reference.isprintable():
        raise EvidenceError(400, f"the vendor's ticket: 1 to {MAX_REFERENCE} printable characters", i, "reference")
    try:
        acted_at = parse_time(item["acted_at"])
    except ValueError as exc:
        raise EvidenceError(400, str(exc), i, "acted_at") from None
    if acted_at > now + CLOCK_SKEW:
        raise EvidenceError(400, "is in the future", i, "acted_at")
    identity = item.get("identity")
    if identity is not None:
        try:
            identity = parse_identity(identity)  # as the CLI's --identity and POST /v1/listings check it
        except SubjectError:
            raise EvidenceError(400, "the tenant's DKIM signing domain, such as mail.example.com", i,
                                "identity") from None
    return Item(subject, item["action"], reference, acted_at.astimezone(dt.timezone.utc), identity)
