"""Delisting requests as people send them, and the operator's answer to one.

Anyone may ask the operator to review a listing (``POST /v1/delist-requests``);
a request is queued and never delists by itself. The operator closes it as
``delisted`` (the listing is removed through the normal, audited listing path)
or ``rejected``, with a note for the requester. This module checks the bodies
of both; it does no I/O, so the HTTP route, the CLI and tests share it. Whether
a wider listing would still list the subject is read from the listings by the
store (:func:`rbl.store.delisting.still_listing`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from rbl.addresses import DOMAIN, IP4, IP6, Subject, parse_subject
from rbl.errors import RblError, SubjectError

RESOLUTIONS = ("delisted", "rejected")
STATES = ("open", "closed")
MAX_SUBJECT = 300
MAX_REASON = 2000
MAX_NOTE = 2000
MAX_EMAIL = 254  # RFC 5321's limit on a forward path
MAX_LISTED = 100  # listings named in a request's listed_as; a CIDR may overlap many more
FIELDS = {"subject", "zone", "reason", "email"}
CLOSE_FIELDS = {"resolution", "note"}
# Light on purpose: one @, no spaces, a dot in the domain. Whether mail reaches it
# is for the operator's reply to find out; a strict RFC 5322 parser refuses real addresses.
_EMAIL = re.compile(r"^[^\s@<>\"(),;:]+@[^\s@<>\"(),;:\[\]]+\.[^\s@<>\"(),;:\[\].]{2,}$")


class DelistError(RblError):
    """A request refused: the HTTP status and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None):
        self.status, self.field = status, field
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True)
class Request:
    subject: Subject
    zone: str
    reason: str
    email: str


def _text(body: dict, name: str, limit: int, multiline: bool = False) -> str:
    if name not in body:
        raise DelistError(400, "required", name)
    value = body[name]
    if not isinstance(value, str):
        raise DelistError(400, "must be a string", name)
    value = value.strip()
    allowed = value.replace("\n", "").replace("\r", "").replace("\t", "") if multiline else value
    if not value or len(value) > limit or not allowed.isprintable():
        lines = "text" if multiline else "printable characters on one line"
        raise DelistError(400, f"1 to {limit} characters of {lines}", name)
    return value


def parse_request(body: Any, zones: dict[str, str]) -> Request:
    """A delisting request from the decoded JSON body, or the first problem (400 naming the field).

    ``zones`` maps each origin to what it serves, the default zone first; a zone
    that describes space (``serves: cloud``) lists nothing to delist.

    :raises DelistError:
    """
    if not isinstance(body, dict):
        raise DelistError(400, "the body must be a JSON object with subject, reason, email and optionally zone",
                          "body")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise DelistError(400, f"unknown field {unknown[0]!r} (expected {', '.join(sorted(FIELDS))})", unknown[0])
    text = _text(body, "subject", MAX_SUBJECT)
    try:
        subject = parse_subject(text)
    except SubjectError as exc:
        raise DelistError(400, str(exc), "subject") from None
    if subject.kind != DOMAIN and subject.plen < subject.bits // 2:
        # A review is about one sender's listing; a /8 would ask about everyone's.
        raise DelistError(400, f"/{subject.plen} is wider than one sender's space (at most /{subject.bits // 2})",
                          "subject")
    if _test_point(subject):
        raise DelistError(400, f"{subject.text} is loopback or an RFC 5782 test point: its answer never changes",
                          "subject")
    zone = next(iter(zones), "")
    if "zone" in body:
        if not isinstance(body["zone"], str):
            raise DelistError(400, "must be a string", "zone")
        zone = body["zone"].strip().lower().rstrip(".")
        listing = [origin for origin, serves in zones.items() if serves != "cloud"]
        if zone not in listing:
            why = "describes address space and lists nothing" if zones.get(zone) == "cloud" else "is not served here"
            raise DelistError(400, f"{zone!r} {why} (zones: {', '.join(listing)})", "zone")
    reason = _text(body, "reason", MAX_REASON, multiline=True)
    email = _text(body, "email", MAX_EMAIL)
    if not _EMAIL.match(email):
        raise DelistError(400, f"{email!r} is not an email address such as postmaster@example.com", "email")
    return Request(subject, zone, reason, email)


_LOOPBACK = ((IP4, 0x7F000000, 8), (IP6, 0xFFFF7F000000, 104))  # 127.0.0.0/8, ::ffff:127.0.0.0/104


def _test_point(subject: Subject) -> bool:
    if subject.kind == DOMAIN:
        return subject.domain in ("test", "invalid")
    return any(subject.kind == kind and subject.plen >= plen and subject.net >> (subject.bits - plen) == net >> (subject.bits - plen)
               for kind, net, plen in _LOOPBACK)


def parse_close(body: Any) -> tuple[str, str]:
    """(resolution, note) of a close, or the first problem (400 naming the field).

    :raises DelistError:
    """
    if not isinstance(body, dict):
        raise DelistError(400, "the body must be a JSON object with resolution and note", "body")
    unknown = sorted(set(body) - CLOSE_FIELDS)
    if unknown:
        raise DelistError(400, f"unknown field {unknown[0]!r} (expected {', '.join(sorted(CLOSE_FIELDS))})", unknown[0])
    if body.get("resolution") not in RESOLUTIONS:
        raise DelistError(400, f"one of {', '.join(RESOLUTIONS)}", "resolution")
    # The requester reads the note: a decision without a reason is not one.
    return body["resolution"], _text(body, "note", MAX_NOTE, multiline=True)


def next_steps(email: str) -> str:
    """What the requester is told happens now."""
    return (f"Queued for the operator, who reviews the listing and its evidence and answers at {email}. "
            "Nothing is delisted automatically. If the operator delists it, DNS answers change within "
            "seconds (resolvers may cache the old answer for its TTL). Fix the cause first: a subject "
            "listed again soon after a listing ends is listed for longer.")
