"""The email digest: one message for a run of a vendor's events, for a person and for a program.

``multipart/mixed``: a plain-text part a person at the abuse desk can read, then
``events.json`` (the events exactly as the webhook and the pull feed carry them)
and ``listed.csv`` (the addresses listed in the period, one a row). The
Message-ID is made from the vendor and the event ids, so a digest sent again
after a crash is the same message to a receiver that dedupes, and the ids are
in ``X-Rbl-Events`` for a program that files by them.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from email.message import EmailMessage
from email.utils import formatdate

WORDS = {"listed": ("listing", "listings"), "delisted": ("delisting", "delistings"),
         "remediated": ("remediation", "remediations"), "overdue": ("overdue case", "overdue cases"),
         "tier": ("tier change", "tier changes"), "escalated": ("escalated range", "escalated ranges")}
CSV_FIELDS = ("subject", "zone", "codes", "first_seen", "expires_at", "sla_deadline", "reason", "category", "range")


def _count(kinds: Counter) -> str:
    parts = [f"{n} {WORDS[k][n != 1]}" for k, n in sorted(kinds.items(), key=lambda kv: list(WORDS).index(kv[0]))]
    return ", ".join(parts)


def _line(event: dict) -> str:
    kind = event["type"]
    what = event.get("subject", "")
    if kind == "listed":
        codes = "+".join(c["name"] for c in event.get("codes", []))
        tail = f"answers {codes}" + (f"; remediate by {event['sla_deadline']}" if event.get("sla_deadline") else "")
        if event.get("reason"):
            tail += f"; reason: {event['reason']}"
    elif kind == "delisted":
        tail = f"no longer listed ({event.get('reason')})"
    elif kind == "remediated":
        tail = f"your evidence was accepted: throttle until {event.get('expires_at')}"
    elif kind == "overdue":
        tail = f"not remediated within the SLA (deadline {event.get('sla_deadline')})"
    elif kind == "tier":
        what = f"tier {event.get('previous')} -> {event.get('tier')}"
        tail = event.get("reason") or ""
    else:
        tail = f"throttle-range: {event.get('listed')} of {event.get('units')} listed ({event.get('density', 0):.1%})"
    return f"  #{event['id']}  {event['at']}  {kind:<10} {what}  {tail}"


def listed_csv(events: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for event in events:
        if event["type"] == "listed":
            writer.writerow([("+".join(c["name"] for c in event.get("codes", [])) if field == "codes"
                              else event.get(field) or "") for field in CSV_FIELDS])
    return out.getvalue()


def digest(vendor: str, title: str, events: list[dict], sender: str, to: str, domain: str,
           now: float | None = None) -> EmailMessage:
    """The message for ``events`` (in id order, one vendor's)."""
    first, last = events[0]["id"], events[-1]["id"]
    kinds = Counter(e["type"] for e in events)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(now, usegmt=True)
    message["Subject"] = f"rbl: {_count(kinds)} in {title} address space (events {first}-{last})"
    message["Message-ID"] = f"<rbl.{vendor}.{first}-{last}@{domain}>"
    message["X-Rbl-Vendor"] = vendor
    message["X-Rbl-Events"] = f"{first}-{last}"
    text = [f"Notices for {title} ({vendor}), events {first} to {last}: {_count(kinds)}.", ""]
    text += [_line(e) for e in events]
    text += ["", "events.json holds every event as the webhook and GET /v1/vendors/" + vendor + "/events carry them;",
             "listed.csv the addresses listed in this period. Each event has an id, increasing: a gap means",
             "a digest is missing; the same id twice is the same event."]
    message.set_content("\n".join(text) + "\n")
    body = json.dumps({"vendor": vendor, "events": events}, indent=1).encode()
    message.add_attachment(body, maintype="application", subtype="json", filename="events.json")
    message.add_attachment(listed_csv(events).encode(), maintype="text", subtype="csv", filename="listed.csv")
    return message
