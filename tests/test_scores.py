"""Vendors' remediation scores and tiers (DESIGN section 4), pure and over the store with a fake clock."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.addresses import parse_subject
from rbl.policy.classify import Classification, Range
from rbl.policy.evidence import Item
from rbl.policy.listing import Remediation
from rbl.policy.scores import COOPERATIVE, NEGLIGENT, NEUTRAL, Case, score_vendor
from rbl.store import ListingStore
from rbl.store.evidence import EvidenceStore, vendor_cases
from rbl.store.listings import Entry
from rbl.store.tokens import TokenStore

RULES = Remediation()
NOW = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


def cases(n: int, fix_after: dt.timedelta | None, relist_after: dt.timedelta | None = None, vendor: str = "a"):
    out = []
    for i in range(n):
        opened = NOW - 20 * DAY + i * HOUR
        fixed = opened + fix_after if fix_after is not None else None
        relisted = fixed + relist_after if fixed is not None and relist_after is not None else None
        out.append(Case(vendor, f"192.0.2.{i}", opened, fixed, relisted))
    return out


def test_worked_examples():
    assert score_vendor("a", cases(12, 3 * HOUR), RULES, NOW).tier == COOPERATIVE
    never = score_vendor("a", cases(12, None), RULES, NOW)
    assert never.tier == NEGLIGENT and never.score == 0 and never.judged == 12
    assert score_vendor("a", cases(9, 3 * HOUR), RULES, NOW).tier == NEUTRAL  # below min_cases
    late = score_vendor("a", cases(12, 30 * HOUR), RULES, NOW)  # remediated, but late: durable, not in time
    assert late.in_time == 0 and late.durable == 12 and late.score == 0.5 and late.tier == NEUTRAL
    relapsing = score_vendor("a", cases(12, 3 * HOUR, 2 * DAY), RULES, NOW)
    assert relapsing.durable == 0 and relapsing.score == 0.5
    old = [Case("a", "192.0.2.1", NOW - 40 * DAY)] * 20
    assert score_vendor("a", old, RULES, NOW).cases == 0
    fresh = [Case("a", f"192.0.2.{i}", NOW - HOUR) for i in range(12)]  # inside the SLA: not judged yet
    assert score_vendor("a", fresh, RULES, NOW).tier == NEUTRAL and score_vendor("a", fresh, RULES, NOW).open == 12
    disputed = [Case("a", f"192.0.2.{i}", NOW - 5 * DAY, false_positive=True) for i in range(12)]
    assert score_vendor("a", disputed, RULES, NOW).cases == 0
    exactly = score_vendor("a", cases(12, 24 * HOUR), RULES, NOW)
    assert exactly.in_time == 12  # within the SLA includes its last second


deltas = st.one_of(st.none(), st.integers(0, 20 * 24).map(lambda h: h * HOUR))
case_lists = st.lists(st.tuples(st.integers(0, 35 * 24), deltas, deltas), max_size=30).map(
    lambda items: [Case("a", f"192.0.2.{i}", NOW - o * HOUR, NOW - o * HOUR + f if f is not None else None,
                        NOW - o * HOUR + f + r if f is not None and r is not None else None)
                   for i, (o, f, r) in enumerate(items)])


@settings(max_examples=300, deadline=None)
@given(case_lists, st.integers(0, 1000))
def test_properties(items, shift_hours):
    score = score_vendor("a", items, RULES, NOW)
    assert score.score is None or 0 <= score.score <= 1
    if score.score is None or score.cases < RULES.min_cases:
        assert score.tier == NEUTRAL
    shift = shift_hours * HOUR
    moved = [Case(c.vendor, c.subject, c.opened_at + shift, c.remediated_at and c.remediated_at + shift,
                  c.relisted_at and c.relisted_at + shift) for c in items]
    assert score_vendor("a", moved, RULES, NOW + shift).score == score.score
    for i, case in enumerate(items):
        if case.remediated_at is None and HOUR <= NOW - case.opened_at <= RULES.window:
            better = items[:i] + [Case("a", case.subject, case.opened_at, case.opened_at + HOUR)] + items[i + 1:]
            after = score_vendor("a", better, RULES, NOW).score
            assert after is not None and (score.score is None or after >= score.score - 1e-9)
            break


def test_a_month_of_remediation_in_a_second(tmp_path):
    """Vendor A remediates within hours, vendor B never: their records tell them apart."""
    clock = [NOW - 30 * DAY]
    store = ListingStore(tmp_path / "rbl.db", clock=lambda: clock[0])
    ranges = {"a": Classification([Range("ip4", 0x03058C00, 22, "a", "shared")]),
              "b": Classification([Range("ip4", 0x22000000, 16, "b", "shared")])}
    tokens = {v: TokenStore(store).create("vendor", v, "test")[0].id for v in ranges}
    for day in range(30):
        clock[0] = NOW - (30 - day) * DAY
        for vendor, base in (("a", 0x03058C00), ("b", 0x22000000)):
            address = f"{base >> 24}.{base >> 16 & 255}.{base >> 8 & 255 | day // 200}.{day + 1}"
            store.add([Entry(parse_subject(address))], zone="bl.example", actor="trap")
            if vendor == "a":
                acted = clock[0] + 2 * HOUR
                clock[0] += 3 * HOUR
                EvidenceStore(store).submit("a", tokens["a"], [Item(parse_subject(address), "tenant_terminated",
                                                                    f"T-{day}", acted)], f"h{day}", "vendor:a")
    clock[0] = NOW
    tiers = {}
    for vendor in ranges:
        found, listings = vendor_cases(store, vendor, ranges[vendor], ("bl.example",), NOW - RULES.window)
        assert len(found) == len(listings) >= 29
        tiers[vendor] = score_vendor(vendor, found, RULES, NOW)
    assert tiers["a"].tier == COOPERATIVE and tiers["a"].score == 1.0
    assert tiers["b"].tier == NEGLIGENT and tiers["b"].score == 0.0


def test_the_vendor_view_is_for_that_vendor_and_the_operator(server, workspace):
    aws = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    operator = workspace.rbl("operator", "token", "create").stdout.split()[-1]
    workspace.rbl("listing", "add", "3.5.140.7", "3.5.140.8")
    assert server.get("/v1/vendors/aws")[0] == 401
    assert server.get("/v1/vendors/gcp", aws)[0] == 403
    assert server.get("/v1/vendors/nope", operator)[0] == 404
    for token in (aws, operator):
        status, body = server.get("/v1/vendors/aws", token)
        assert status == 200 and body["tier"] == "neutral" and body["numbers"]["cases"] == 2
        assert {c["subject"] for c in body["open_cases"]} == {"3.5.140.7", "3.5.140.8"}
        assert body["rules"]["min_cases"] == 10 and "fewer than 10" in body["reason"]
