"""A vendor's remediation record: cases, the score over a sliding window, and the tier.

DESIGN section 4. A case is a listed address in the vendor's space. Within the
window (cases opened in the last ``window``, false positives left out):

- *in time*: of the cases whose SLA has run out or that were remediated, the
  share remediated within ``sla`` of being listed (a case still inside its SLA
  and not yet remediated is not judged yet: it cannot count against the vendor);
- *durable*: of the remediated cases whose recidivism window has passed or that
  were relisted, the share not relisted within ``recidivism`` of remediation.

The score is the mean of the shares that have judged cases; below
``min_cases`` counted cases, or with nothing judged, the tier is neutral.
Time comes only from ``now``: tests run a month in a second.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from rbl.policy.listing import Remediation

COOPERATIVE, NEUTRAL, NEGLIGENT = "cooperative", "neutral", "negligent"


@dataclass(frozen=True)
class Case:
    vendor: str
    subject: str
    opened_at: dt.datetime
    remediated_at: dt.datetime | None = None
    relisted_at: dt.datetime | None = None  # listed again after the remediation
    false_positive: bool = False


@dataclass(frozen=True)
class Score:
    vendor: str
    tier: str
    score: float | None
    cases: int
    judged: int  # cases past their SLA or remediated
    in_time: int
    remediated: int
    durable_judged: int  # remediated cases past the recidivism window or relisted
    durable: int
    open: int  # inside their SLA, not remediated: not judged yet
    reason: str

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def score_vendor(vendor: str, cases: Iterable[Case], rules: Remediation, now: dt.datetime) -> Score:
    start = now - rules.window
    counted = [c for c in cases if c.vendor == vendor and start <= c.opened_at <= now and not c.false_positive]
    judged = in_time = remediated = durable_judged = durable = still_open = 0
    for case in counted:
        fixed = case.remediated_at is not None and case.remediated_at <= now
        if fixed:
            remediated += 1
        if fixed or now - case.opened_at > rules.sla:
            judged += 1
            in_time += fixed and case.remediated_at - case.opened_at <= rules.sla
        else:
            still_open += 1
        if fixed:
            relisted = case.relisted_at is not None and case.relisted_at - case.remediated_at <= rules.recidivism \
                and case.relisted_at <= now
            if relisted or now - case.remediated_at > rules.recidivism:
                durable_judged += 1
                durable += not relisted
    shares = [n / d for n, d in ((in_time, judged), (durable, durable_judged)) if d]
    score = sum(shares) / len(shares) if shares else None
    if score is None or len(counted) < rules.min_cases:
        tier = NEUTRAL
        reason = (f"{len(counted)} case{'s' * (len(counted) != 1)} in the last {rules.window.days} days, "
                  f"fewer than {rules.min_cases}: neutral until there is a record")
    elif score >= rules.cooperative:
        tier, reason = COOPERATIVE, f"score {score:.2f} at or above {rules.cooperative}: cooperative"
    elif score < rules.negligent:
        tier, reason = NEGLIGENT, f"score {score:.2f} below {rules.negligent}: negligent"
    else:
        tier, reason = NEUTRAL, f"score {score:.2f} between {rules.negligent} and {rules.cooperative}: neutral"
    return Score(vendor, tier, score, len(counted), judged, in_time, remediated, durable_judged, durable, still_open,
                 reason)
