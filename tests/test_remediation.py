"""A vendor's remediation score and tier (rbl.policy.remediation): worked examples, boundaries, properties."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbl.policy.listing import Remediation
from rbl.policy.remediation import COOPERATIVE, NEGLIGENT, NEUTRAL, Case, Score, score_vendor, tier_of, tiers

RULES = Remediation()  # window 30d, sla 24h, recidivism 7d, min_cases 10, cooperative 0.8, negligent 0.4
NOW = dt.datetime(2026, 11, 28, 12, tzinfo=dt.timezone.utc)
SECOND, MINUTE, HOUR, DAY = (dt.timedelta(seconds=1), dt.timedelta(minutes=1), dt.timedelta(hours=1),
                             dt.timedelta(days=1))


def case(opened_ago: dt.timedelta, fixed_after: dt.timedelta | None = None,
         relisted_after: dt.timedelta | None = None, vendor: str = "a", n: int = 0, fp: bool = False) -> Case:
    """A case opened ``opened_ago`` before NOW, remediated ``fixed_after`` after opening, relisted after that."""
    opened = NOW - opened_ago
    fixed = opened + fixed_after if fixed_after is not None else None
    again = fixed + relisted_after if fixed is not None and relisted_after is not None else None
    return Case(vendor, f"192.0.2.{n % 256}", opened, fixed, again, fp)


def many(count: int, opened_ago: dt.timedelta, fixed_after: dt.timedelta | None = None,
         relisted_after: dt.timedelta | None = None, vendor: str = "a", fp: bool = False) -> list[Case]:
    return [case(opened_ago, fixed_after, relisted_after, vendor, i, fp) for i in range(count)]


def score(cases, rules: Remediation = RULES, now: dt.datetime = NOW, vendor: str = "a") -> Score:
    return score_vendor(vendor, cases, rules, now)


# Worked examples (DESIGN section 4, issue 5's scenario).

def test_a_vendor_remediating_every_case_within_hours_for_a_month_is_cooperative():
    cases = [case(30 * DAY - i * 12 * HOUR, 3 * HOUR, n=i) for i in range(60)]  # one every 12 hours
    result = score(cases)
    assert (result.tier, result.score, result.cases) == (COOPERATIVE, 1.0, 60)
    assert result.remediated_in_time == 60 and result.remediated_late == result.open == result.relisted == 0
    assert result.durable == 46 and result.pending == 14  # remediated in the last 7 days: not judged yet
    assert result.window_start == NOW - 30 * DAY
    assert "cooperative" in result.reason and "60 of 60 remediated within 24 hours" in result.reason


def test_a_vendor_never_remediating_is_negligent_once_past_min_cases_and_the_sla():
    cases = many(12, 2 * DAY)
    result = score(cases)
    assert (result.tier, result.score, result.overdue, result.open) == (NEGLIGENT, 0.0, 12, 0)
    assert "negligent" in result.reason
    # The same cases an hour after they opened: all inside the SLA, nothing judged yet.
    early = score(cases, now=NOW - 2 * DAY + HOUR)
    assert (early.tier, early.score, early.open, early.cases) == (NEUTRAL, None, 12, 12)
    assert "nothing judged yet" in early.reason
    # Nine of them past the SLA: a score of 0, but too few cases for a record.
    few = score(many(9, 2 * DAY))
    assert (few.tier, few.score) == (NEUTRAL, 0.0) and "fewer than the 10" in few.reason


def test_nine_cases_are_neutral_however_good():
    result = score(many(9, 20 * DAY, HOUR))
    assert (result.tier, result.score, result.cases) == (NEUTRAL, 1.0, 9)
    assert score(many(10, 20 * DAY, HOUR)).tier == COOPERATIVE


def test_cases_older_than_the_window_are_ignored():
    old = many(20, 31 * DAY)  # never remediated, but long ago
    result = score(old + many(10, 20 * DAY, HOUR))
    assert (result.tier, result.cases, result.overdue) == (COOPERATIVE, 10, 0)
    assert score(old).cases == 0 and score(old).tier == NEUTRAL
    # The window includes its first instant; cases opened after now do not exist yet.
    assert score(many(10, 30 * DAY)).cases == 10
    assert score(many(10, 30 * DAY + SECOND)).cases == 0
    assert score(many(10, -HOUR)).cases == 0


def test_a_case_inside_its_sla_does_not_hurt():
    result = score(many(10, 20 * DAY, HOUR) + many(5, HOUR))
    assert (result.tier, result.score, result.open, result.cases, result.judged) == (COOPERATIVE, 1.0, 5, 15, 10)


def test_relisting_within_seven_days_of_remediation_hurts():
    good = many(10, 20 * DAY, HOUR)
    relapsing = many(10, 20 * DAY, HOUR, 2 * DAY)
    result = score(relapsing)
    assert (result.durable, result.relisted, result.score, result.tier) == (0, 10, 0.5, NEUTRAL)
    half = score(good[:5] + relapsing[5:])
    assert (half.durable, half.relisted, half.score) == (5, 5, 0.75)
    # Relisted eight days after remediation: a new case, not recidivism.
    late_relisting = score(many(10, 20 * DAY, HOUR, 8 * DAY))
    assert (late_relisting.durable, late_relisting.relisted, late_relisting.score) == (10, 0, 1.0)


def test_false_positives_are_excluded():
    disputed = many(20, 5 * DAY, fp=True)  # never remediated: would be negligent if counted
    result = score(many(10, 20 * DAY, HOUR) + disputed)
    assert (result.tier, result.cases) == (COOPERATIVE, 10)
    assert score(disputed).cases == 0


def test_late_remediation_is_durable_but_not_in_time():
    result = score(many(12, 20 * DAY, 30 * HOUR))
    assert (result.remediated_in_time, result.remediated_late, result.durable, result.score, result.tier) == \
        (0, 12, 12, 0.5, NEUTRAL)


def test_a_recent_remediation_is_not_judged_for_durability_yet():
    result = score(many(10, 3 * DAY, HOUR))
    assert (result.durable, result.relisted, result.pending, result.score) == (0, 0, 10, 1.0)
    assert "not relisted" not in result.reason  # the durable share has nothing judged: left out


def test_other_vendors_cases_do_not_count():
    result = score(many(10, 20 * DAY, HOUR, vendor="b") + many(3, 2 * DAY))
    assert (result.cases, result.tier) == (3, NEUTRAL)


def test_facts_later_than_now_have_not_happened_yet():
    opened = NOW - 2 * DAY
    ahead = [Case("a", f"192.0.2.{i}", opened, NOW + MINUTE) for i in range(10)]  # a clock a minute fast
    result = score(ahead)
    assert (result.remediated_in_time, result.overdue, result.tier) == (0, 10, NEGLIGENT)
    future_relisting = [Case("a", f"192.0.2.{i}", NOW - 20 * DAY, NOW - 20 * DAY + HOUR, NOW + HOUR)
                        for i in range(10)]
    assert score(future_relisting).relisted == 0 and score(future_relisting).durable == 10


def test_a_remediation_dated_before_the_listing_is_in_time():
    result = score(many(10, 20 * DAY, -HOUR))
    assert (result.remediated_in_time, result.tier) == (10, COOPERATIVE)


def test_a_relisting_before_the_remediation_or_without_one_is_ignored():
    before = [Case("a", "192.0.2.1", NOW - 20 * DAY, NOW - 19 * DAY, NOW - 19 * DAY - HOUR)]
    assert (score(before).durable, score(before).relisted) == (1, 0)
    unremediated = [Case("a", "192.0.2.1", NOW - 20 * DAY, None, NOW - 18 * DAY)]
    assert (score(unremediated).overdue, score(unremediated).relisted) == (1, 0)


def test_now_must_be_aware():
    with pytest.raises(ValueError, match="aware"):
        score_vendor("a", [], RULES, NOW.replace(tzinfo=None))


def test_other_numbers_from_listing_yaml():
    rules = Remediation(window=dt.timedelta(days=7), sla=dt.timedelta(hours=4), recidivism=dt.timedelta(days=2),
                        min_cases=3, cooperative=0.9, negligent=0.5)
    cases = many(3, 5 * DAY, 3 * HOUR) + many(3, 10 * DAY)  # the never-remediated ones are out of a 7d window
    result = score(cases, rules)
    assert (result.cases, result.score, result.tier) == (3, 1.0, COOPERATIVE)
    assert score(many(3, 5 * DAY, 5 * HOUR), rules).remediated_late == 3  # 5 hours is late for a 4h SLA
    assert "in the last 7 days" in result.reason and "within 4 hours" in result.reason


def test_tiers_scores_each_named_vendor_once():
    cases = many(10, 20 * DAY, HOUR, vendor="a") + many(10, 20 * DAY, vendor="b") + many(10, 20 * DAY, vendor="gone")
    result = tiers(iter(cases), RULES, NOW, ["a", "b", "quiet"])  # a one-shot iterator is fine
    assert set(result) == {"a", "b", "quiet"}
    assert {v: s.tier for v, s in result.items()} == {"a": COOPERATIVE, "b": NEGLIGENT, "quiet": NEUTRAL}
    assert result["quiet"].cases == 0 and result["quiet"].score is None and "No cases" in result["quiet"].reason
    assert result["a"] == score_vendor("a", cases, RULES, NOW)


def test_as_dict_has_every_number():
    numbers = score(many(12, 2 * DAY)).as_dict()
    assert numbers["tier"] == NEGLIGENT and numbers["overdue"] == 12 and numbers["judged"] == 12
    assert numbers["window_start"] == (NOW - 30 * DAY).isoformat()


# Boundaries: exactly 24 hours, exactly 7 days, exactly the thresholds.

def test_remediated_at_exactly_the_sla_is_in_time():
    assert score(many(10, 20 * DAY, 24 * HOUR)).remediated_in_time == 10
    assert score(many(10, 20 * DAY, 24 * HOUR + SECOND)).remediated_late == 10


def test_an_unremediated_case_is_open_until_the_sla_has_run_out():
    at = score(many(10, 24 * HOUR))
    assert (at.open, at.overdue, at.score) == (10, 0, None)
    past = score(many(10, 24 * HOUR + dt.timedelta(microseconds=1)))
    assert (past.open, past.overdue, past.score, past.tier) == (0, 10, 0.0, NEGLIGENT)


def test_relisted_at_exactly_the_recidivism_window_counts_against():
    assert score(many(10, 20 * DAY, HOUR, 7 * DAY)).relisted == 10
    assert score(many(10, 20 * DAY, HOUR, 7 * DAY + SECOND)).durable == 10
    # Durable only once the recidivism window has fully passed.
    fixed_ago = NOW - 7 * DAY  # remediated exactly 7 days ago: not judged yet
    exactly = [Case("a", f"192.0.2.{i}", fixed_ago - HOUR, fixed_ago) for i in range(10)]
    assert (score(exactly).durable, score(exactly).pending) == (0, 10)
    assert score(exactly, now=NOW + SECOND).durable == 10


def in_time_of_ten(k: int) -> list[Case]:
    """Ten cases opened two days ago, ``k`` remediated within an hour (durability not judged yet)."""
    return many(k, 2 * DAY, HOUR) + [case(2 * DAY, n=100 + i) for i in range(10 - k)]


def test_exactly_the_cooperative_threshold_is_cooperative():
    result = score(in_time_of_ten(8))
    assert (result.score, result.tier) == (0.8, COOPERATIVE)
    assert "score 0.80, at or above 0.8: cooperative" in result.reason
    assert score(in_time_of_ten(7)).tier == NEUTRAL
    # 6 of 10 in time and 10 of 10 durable: a mean of exactly 4/5 (in floats, (0.6 + 1.0) / 2 is not safe).
    mixed = score(many(6, 20 * DAY, HOUR) + [case(20 * DAY, 2 * DAY, n=50 + i) for i in range(4)])
    assert (mixed.remediated_in_time, mixed.durable, mixed.score, mixed.tier) == (6, 10, 0.8, COOPERATIVE)


def test_exactly_the_negligent_threshold_is_not_negligent():
    assert (score(in_time_of_ten(4)).score, score(in_time_of_ten(4)).tier) == (0.4, NEUTRAL)
    assert score(in_time_of_ten(3)).tier == NEGLIGENT
    assert "below 0.4: negligent" in score(in_time_of_ten(3)).reason


def test_exactly_the_negligent_threshold_where_float_arithmetic_would_drift_below_it():
    # 10 of 15 in time (2/3) and 2 of 15 durable (2/15): the mean is exactly 2/5, but (2/3 + 2/15) / 2 in
    # floats is 0.39999999999999997, which a float comparison would call negligent.
    cases = [case(20 * DAY, HOUR if i < 10 else 2 * DAY, None if i < 2 else DAY, n=i) for i in range(15)]
    result = score(cases)
    assert (result.remediated_in_time, result.durable, result.relisted) == (10, 2, 13)
    assert (2 / 3 + 2 / 15) / 2 < 0.4
    assert (result.score, result.tier) == (0.4, NEUTRAL)


def test_a_score_just_below_the_threshold_is_not_shown_as_the_threshold():
    cases = many(1599, 2 * DAY, HOUR) + [case(2 * DAY, n=i) for i in range(401)]  # 1599 of 2000: 0.7995
    result = score(cases)
    assert result.tier == NEUTRAL and "0.80" not in result.reason and "0.799" in result.reason


# Properties.

MINUTES = st.integers(-60, 13 * 24 * 60).map(lambda m: m * MINUTE)
EDGES = st.sampled_from([dt.timedelta(0), RULES.sla, RULES.sla + MINUTE, RULES.recidivism,
                         RULES.recidivism + MINUTE, RULES.recidivism - MINUTE])
DELTAS = st.one_of(st.none(), EDGES, MINUTES)


@st.composite
def a_case(draw) -> Case:
    opened = NOW - draw(st.one_of(st.sampled_from([RULES.window, RULES.sla]),
                                  st.integers(-24 * 60, 40 * 24 * 60).map(lambda m: m * MINUTE)))
    fixed_after = draw(DELTAS)
    fixed = opened + fixed_after if fixed_after is not None else None
    again_after = draw(DELTAS)
    again = (fixed or opened) + again_after if again_after is not None else None
    return Case(draw(st.sampled_from("aab")), f"192.0.2.{draw(st.integers(0, 255))}", opened, fixed, again,
                draw(st.integers(0, 9)) == 0)  # one case in ten disputed


@st.composite
def some_rules(draw) -> Remediation:
    low, high = sorted(draw(st.lists(st.integers(0, 20), min_size=2, max_size=2)))
    return Remediation(window=draw(st.integers(1, 40)) * DAY, sla=draw(st.integers(1, 72)) * HOUR,
                       recidivism=draw(st.integers(1, 10)) * DAY, min_cases=draw(st.integers(0, 15)),
                       cooperative=round(high * 0.05, 2), negligent=round(low * 0.05, 2))


CASES = st.lists(a_case(), max_size=30)
RULESETS = st.one_of(st.just(RULES), some_rules())
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def expected_tier(result: Score, rules: Remediation) -> str:
    if result.score is None or result.cases < rules.min_cases:
        return NEUTRAL
    if result.score >= rules.cooperative:
        return COOPERATIVE
    return NEGLIGENT if result.score < rules.negligent else NEUTRAL


@FAST
@given(CASES, RULESETS)
def test_the_score_is_a_share_and_the_tier_follows_from_score_and_counts(cases, rules):
    result = score(cases, rules)
    assert result.score is None or 0 <= result.score <= 1
    assert result.tier == expected_tier(result, rules) == tier_of(result.score, result.cases, rules)
    assert result.cases == result.remediated_in_time + result.remediated_late + result.open + result.overdue
    assert min(result.overdue, result.pending, result.open) >= 0
    assert (result.score is None) == (result.judged == 0)
    assert result.window_start == NOW - rules.window


@FAST
@given(CASES, RULESETS, st.data())
def test_remediating_one_more_case_in_time_never_lowers_the_score(cases, rules, data):
    before = score(cases, rules)
    candidates = [i for i, c in enumerate(cases) if c.vendor == "a" and (c.remediated_at is None or c.remediated_at > NOW)]
    if not candidates:
        return
    i = data.draw(st.sampled_from(candidates))
    target = cases[i]
    latest = min(rules.sla, max(NOW - target.opened_at, dt.timedelta(0)))
    when = target.opened_at + data.draw(st.integers(0, int(latest.total_seconds()))) * SECOND
    fixed = dataclasses.replace(target, remediated_at=when, relisted_at=None)
    after = score(cases[:i] + [fixed] + cases[i + 1:], rules)
    if before.score is not None:
        assert after.score is not None and after.score >= before.score
    assert after.remediated_in_time >= before.remediated_in_time


@FAST
@given(CASES, RULESETS, st.data())
def test_adding_a_relisting_never_raises_the_score(cases, rules, data):
    before = score(cases, rules)
    candidates = [i for i, c in enumerate(cases) if c.relisted_at is None]
    if not candidates:
        return
    i = data.draw(st.sampled_from(candidates))
    target = cases[i]
    again = (target.remediated_at or target.opened_at) + data.draw(DELTAS.filter(lambda d: d is not None))
    after = score(cases[:i] + [dataclasses.replace(target, relisted_at=again)] + cases[i + 1:], rules)
    assert (after.score is None) == (before.score is None)
    if before.score is not None:
        assert after.score <= before.score
    assert after.relisted >= before.relisted


@FAST
@given(CASES, RULESETS, st.integers(-5 * 365 * 24 * 60, 5 * 365 * 24 * 60), st.integers(0, 59))
def test_shifting_every_time_by_the_same_delta_changes_nothing(cases, rules, minutes, seconds):
    delta = minutes * MINUTE + seconds * SECOND

    def shift(t: dt.datetime | None) -> dt.datetime | None:
        return None if t is None else t + delta

    moved = [dataclasses.replace(c, opened_at=shift(c.opened_at), remediated_at=shift(c.remediated_at),
                                 relisted_at=shift(c.relisted_at)) for c in cases]
    before, after = score(cases, rules), score(moved, rules, NOW + delta)
    assert after == dataclasses.replace(before, window_start=before.window_start + delta)


@FAST
@given(CASES, RULESETS)
def test_tiers_agrees_with_score_vendor(cases, rules):
    result = tiers(cases, rules, NOW, ["a", "b", "c"])
    assert result == {v: score_vendor(v, cases, rules, NOW) for v in ("a", "b", "c")}
