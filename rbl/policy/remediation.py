"""A vendor's remediation score and tier (DESIGN section 4), as pure code: no I/O, no clock.

A *case* is one listing in a vendor's space, from its first_seen until it is
remediated, expires or is relisted. The caller builds the cases: it attributes a
listing to a vendor only when the subject lies inside that vendor's own ranges,
and sets ``remediated_at`` only from that vendor's accepted evidence (DESIGN:
"evidence counts only for subjects inside that vendor's own ranges"). Here a
case counts for the vendor it names and for no other.

The numbers come from :class:`rbl.policy.listing.Remediation` (``listing.yaml``);
the defaults are window 30d, sla 24h, recidivism 7d, min_cases 10, cooperative
0.8, negligent 0.4. Every time is an aware datetime, and the present is only the
``now`` argument, so a test can run a month in a second. Definitions, for a vendor
``V`` at ``now``, with ``window_start = now - window``:

Counted cases
    ``V``'s cases with ``window_start <= opened_at <= now`` (both ends included)
    and ``false_positive`` not set. A disputed case is kept for the operator's
    review but neither helps nor hurts the vendor. A case is placed in the window
    by when it was opened, so each case belongs to one window position and its
    later facts only move it from "not judged yet" to judged.

Facts after ``now``
    A ``remediated_at`` or ``relisted_at`` later than ``now`` has not happened
    yet as far as this clock knows, and is ignored until ``now`` reaches it.

Remediated in time, late, open, overdue (a partition of the counted cases)
    *remediated* means ``remediated_at <= now``. A remediated case is *in time*
    when ``remediated_at - opened_at <= sla`` (the SLA includes its last instant,
    so exactly 24 hours is in time; a remediation dated before the listing was
    opened is in time too: the vendor had already acted), else *late*. A case
    not remediated is *open* while ``now - opened_at <= sla`` (it can still be
    remediated in time, so it must not count against the vendor yet) and
    *overdue* once ``now - opened_at > sla``. Overdue cases are not remediated
    in time, and stay so: remediating one later makes it late.

Durable, relisted, pending (a partition of the remediated cases)
    A remediated case is *relisted* when ``remediated_at <= relisted_at <= now``
    and ``relisted_at - remediated_at <= recidivism`` (again the last instant
    included). Otherwise it is *durable* once its recidivism window has fully
    passed, ``now - remediated_at > recidivism``, and *pending* (not judged yet)
    before that. A relisting later than ``recidivism`` after the remediation is
    a new case, not recidivism; a ``relisted_at`` before the remediation is not a
    relisting *after* remediation and is ignored; so is a ``relisted_at`` on a
    case never remediated (it is simply overdue or late).

Score
    The mean of the shares that have judged cases: the *in-time share*
    ``in_time / (in_time + late + overdue)`` and the *durable share*
    ``durable / (durable + relisted)``. Open and pending cases are in neither
    denominator. A share with no judged cases is left out of the mean (rather
    than counted as 0 or 1, which would invent a record); with neither, the score
    is None. The arithmetic is exact (fractions), and the thresholds are read as
    the decimals written in ``listing.yaml``, so 8 of 10 in time is exactly 0.8.

Tier
    ``neutral`` when the score is None or fewer than ``min_cases`` cases are
    counted; else ``cooperative`` at or above ``cooperative``, ``negligent``
    below ``negligent``, ``neutral`` in between.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from rbl.policy.listing import Remediation
from rbl.store.cases import NONE

COOPERATIVE, NEUTRAL, NEGLIGENT = "cooperative", "neutral", "negligent"
TIERS = (COOPERATIVE, NEUTRAL, NEGLIGENT)


@dataclass(frozen=True)
class Case:
    """One listing in a vendor's space, and what became of it."""

    vendor: str
    subject: str  # the listed address (text)
    opened_at: dt.datetime  # the listing's first_seen
    remediated_at: dt.datetime | None = None  # acted_at of the vendor's accepted evidence; None if none
    relisted_at: dt.datetime | None = None  # the same subject listed again after the remediation; None if not
    false_positive: bool = False  # the vendor disputed it: excluded from scoring, kept for review


@dataclass(frozen=True)
class Score:
    """A vendor's tier and the numbers behind it (see the module docstring for each definition)."""

    vendor: str
    tier: str  # cooperative, neutral or negligent
    score: float | None  # None when nothing is judged yet
    cases: int  # counted: in the window, not false positives
    remediated_in_time: int
    remediated_late: int
    open: int  # not remediated, still inside the SLA: not judged yet
    durable: int  # remediated, recidivism window fully passed, not relisted within it
    relisted: int  # remediated, then relisted within the recidivism window
    window_start: dt.datetime
    reason: str  # one sentence: why this tier

    @property
    def overdue(self) -> int:
        """Not remediated and past the SLA: judged as not remediated in time."""
        return self.cases - self.remediated_in_time - self.remediated_late - self.open

    @property
    def judged(self) -> int:
        """The in-time share's denominator."""
        return self.cases - self.open

    @property
    def remediated(self) -> int:
        return self.remediated_in_time + self.remediated_late

    @property
    def pending(self) -> int:
        """Remediated, still inside the recidivism window: not judged for durability yet."""
        return self.remediated - self.durable - self.relisted

    def as_dict(self) -> dict:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["window_start"] = self.window_start.isoformat()
        for name in ("overdue", "judged", "remediated", "pending"):
            out[name] = getattr(self, name)
        return out


def _threshold(value: float) -> Fraction:
    # The decimal the operator wrote (0.8), not the nearest binary float (0.8000000000000000444...),
    # so that a score of exactly 4/5 is "at or above 0.8".
    return Fraction(repr(float(value)))


def tier_of(score: Fraction | float | None, cases: int, rules: Remediation) -> str:
    """The tier for a score and a number of counted cases."""
    if score is None or cases < rules.min_cases:
        return NEUTRAL
    # A float score is a Fraction rounded (Score.score): read it back as the decimal it shows,
    # so that 0.3 stays at the threshold 0.3 (its binary value, 0.29999..., is below it).
    exact = score if isinstance(score, Fraction) else Fraction(repr(float(score)))
    if exact >= _threshold(rules.cooperative):
        return COOPERATIVE
    if exact < _threshold(rules.negligent):
        return NEGLIGENT
    return NEUTRAL


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _spoken(delta: dt.timedelta) -> str:
    """``24 hours``, ``7 days``, ``90 minutes``: durations as the reason sentence says them."""
    seconds = int(delta.total_seconds())
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0 and (seconds >= 2 * size or unit == "minute"):
            return _plural(seconds // size, unit)
    return _plural(seconds, "second")


def _show(score: Fraction, threshold: float) -> str:
    # Two decimals, or more when two would round across the threshold (0.7999 shown as 0.80 "below 0.8").
    for digits in range(2, 8):
        text = f"{float(score):.{digits}f}"
        if (Fraction(text) >= _threshold(threshold)) == (score >= _threshold(threshold)):
            return text
    return repr(float(score))


def score_vendor(vendor: str, cases: Iterable[Case], rules: Remediation, now: dt.datetime) -> Score:
    """``vendor``'s score and tier at ``now`` from ``cases`` (other vendors' cases are ignored).

    :raises ValueError: if ``now`` is a naive datetime.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")
    start = now - rules.window
    counted = in_time = late = still_open = durable = relisted = 0
    for case in cases:
        if case.vendor != vendor or case.false_positive or not start <= case.opened_at <= now:
            continue
        counted += 1
        fixed = case.remediated_at is not None and case.remediated_at <= now
        if not fixed:
            # Inside the SLA it may still be remediated in time: not judged yet. Past it: overdue.
            still_open += now - case.opened_at <= rules.sla
            continue
        if case.remediated_at - case.opened_at <= rules.sla:
            in_time += 1
        else:
            late += 1
        again = case.relisted_at
        if again is not None and case.remediated_at <= again <= now \
                and again - case.remediated_at <= rules.recidivism:
            relisted += 1
        elif now - case.remediated_at > rules.recidivism:
            durable += 1
        # else: still inside the recidivism window, not relisted yet: pending, in no denominator.
    return _score(vendor, counted, in_time, late, still_open, durable, relisted, start, rules)


def _score(vendor: str, counted: int, in_time: int, late: int, still_open: int, durable: int, relisted: int,
           start: dt.datetime, rules: Remediation) -> Score:
    overdue = counted - in_time - late - still_open
    shares = [Fraction(n, d) for n, d in ((in_time, in_time + late + overdue), (durable, durable + relisted)) if d]
    exact = sum(shares, Fraction(0)) / len(shares) if shares else None
    tier = tier_of(exact, counted, rules)
    reason = _reason(counted, in_time, late, overdue, still_open, durable, relisted, exact, tier, rules)
    return Score(vendor=vendor, tier=tier, score=None if exact is None else float(exact), cases=counted,
                 remediated_in_time=in_time, remediated_late=late, open=still_open, durable=durable,
                 relisted=relisted, window_start=start, reason=reason)


def _reason(counted: int, in_time: int, late: int, overdue: int, still_open: int, durable: int, relisted: int,
            exact: Fraction | None, tier: str, rules: Remediation) -> str:
    window, sla, recidivism = (_spoken(d) for d in (rules.window, rules.sla, rules.recidivism))
    head = f"{_plural(counted, 'case')} in the last {window}"
    if not counted:
        return f"No cases in the last {window}: no record yet, neutral."
    if counted < rules.min_cases:
        return f"{head}, fewer than the {rules.min_cases} needed for a record: neutral."
    if exact is None:
        return f"{head}, all {still_open} still inside the {sla} SLA: nothing judged yet, neutral."
    parts = [f"{in_time} of {in_time + late + overdue} remediated within {sla}"]
    if durable + relisted:
        parts.append(f"{durable} of {durable + relisted} not relisted within {recidivism}")
    numbers = f"{head}; {' and '.join(parts)}"
    if tier == COOPERATIVE:
        return f"{numbers}: score {_show(exact, rules.cooperative)}, at or above {rules.cooperative}: cooperative."
    if tier == NEGLIGENT:
        return f"{numbers}: score {_show(exact, rules.negligent)}, below {rules.negligent}: negligent."
    return (f"{numbers}: score {_show(exact, rules.cooperative)}, between {rules.negligent} and "
            f"{rules.cooperative}: neutral.")


def tiers(cases: Iterable[Case], rules: Remediation, now: dt.datetime, vendors: Iterable[str]) -> dict[str, Score]:
    """The score of every vendor in ``vendors`` (those with no cases: neutral, 0 cases).

    Cases naming a vendor not in ``vendors`` (say, one removed from the policy) get no entry.
    ``cases`` may be a one-shot iterator: it is read once.
    """
    by_vendor: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        by_vendor[case.vendor].append(case)
    return {vendor: score_vendor(vendor, by_vendor.get(vendor, ()), rules, now) for vendor in vendors}


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_US = dt.timedelta(microseconds=1)


def microseconds(moment: dt.datetime) -> int:
    """An aware datetime as integer microseconds since the epoch: exact, unlike a float."""
    return (moment - _EPOCH) // _US


def score_arrays(vendor: np.ndarray, opened: np.ndarray, remediated: np.ndarray, relisted: np.ndarray,
                 disputed: np.ndarray, vendors: Sequence[str], rules: Remediation,
                 now: dt.datetime) -> dict[str, Score]:
    """:func:`tiers` over columns instead of :class:`Case` objects: the compile's fast twin.

    Row ``i`` is a case of ``vendors[vendor[i]]`` (``vendor[i] < 0``: nobody's);
    times are int64 microseconds since the epoch, :data:`rbl.store.cases.NONE`
    where there is none; ``disputed`` marks false positives. Same definitions, same numbers.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")
    at = microseconds(now)
    start = now - rules.window
    sla, recidivism = rules.sla // _US, rules.recidivism // _US
    counted = (vendor >= 0) & ~disputed & (opened >= microseconds(start)) & (opened <= at)
    fixed = counted & (remediated != NONE) & (remediated <= at)
    still_open = counted & ~fixed & (at - opened <= sla)
    in_time = fixed & (remediated - opened <= sla)
    late = fixed & ~in_time
    again = fixed & (relisted != NONE) & (remediated <= relisted) & (relisted <= at) \
        & (relisted - remediated <= recidivism)
    durable = fixed & ~again & (at - remediated > recidivism)
    size = len(vendors)
    ids = np.where(vendor >= 0, vendor, 0)

    def per_vendor(mask: np.ndarray) -> np.ndarray:
        return np.bincount(ids[mask], minlength=size)

    columns = [per_vendor(m) for m in (counted, in_time, late, still_open, durable, again)]
    return {name: _score(name, *(int(column[i]) for column in columns), start, rules)
            for i, name in enumerate(vendors)}
