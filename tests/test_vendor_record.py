"""Vendors' records over the store with a fake clock, and what their tiers do to DNS answers (DESIGN 4)."""

from __future__ import annotations

import datetime as dt

import ipaddress
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, Server
from rbl.addresses import parse_subject
from rbl.explain import vendor_cases
from rbl.policy.evidence import Item
from rbl.policy.remediation import COOPERATIVE, NEGLIGENT, NEUTRAL, microseconds, score_vendor
from rbl.policy.standing import vendor_scores, vendor_spans
from rbl.policy.vendors import load_policy
from rbl.store import ListingStore
from rbl.store.cases import _NO_TIME, NONE, epoch_microseconds
from rbl.store.database import parse_timestamp, timestamp
from rbl.store.evidence import EvidenceStore, Remediation
from rbl.store.listings import Entry
from rbl.store.tokens import TokenStore

RULES = load_policy(ROOT / "policy").listing.remediation
NOW = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


A, B = "aws", "linode"
A_RANGE, B_RANGE = "3.5.140.0/22", "45.79.0.0/24"  # shared ranges in the shipped demo policy


def remediation_for(policy) -> Remediation:
    def shared(kind: str, address: int) -> bool:
        found = policy.classification.find(kind, address)
        return found is not None and found.space == "shared"

    return Remediation(("bl.example",), shared, policy.listing.expiry.remediated)


def simulate_month(db, policy, end: dt.datetime) -> None:
    """30 days before ``end``: A remediates each listing two hours after it, B never does.

    A gets two listings a day in its range, B one; every write goes through the
    store's own paths (listing adds, evidence submissions) under a moving clock.
    """
    clock = [end - 30 * DAY]
    store = ListingStore(db, clock=lambda: clock[0])
    token = TokenStore(store).create("vendor", A, "test")[0].id
    for day in range(30):
        clock[0] = end - (30 - day) * DAY + HOUR
        mine = [f"3.5.{140 + day % 2}.{day + 1}", f"3.5.142.{day + 1}"]
        expiry = {"expires": policy.listing.expiry.default, "repeat": policy.listing.expiry}
        store.add([Entry(parse_subject(a)) for a in mine], zone="bl.example", actor="trap", **expiry)
        store.add([Entry(parse_subject(f"45.79.0.{day + 1}"))], zone="bl.example", actor="trap", **expiry)
        acted = clock[0] + 2 * HOUR
        clock[0] += 3 * HOUR
        EvidenceStore(store).submit(A, token, [Item(parse_subject(a), "tenant_terminated", f"T-{day}-{a}", acted)
                                               for a in mine], f"h{day}", f"vendor:{A}",
                                    remediation=remediation_for(policy))
    store.close()


def test_a_month_of_remediation_in_a_second(tmp_path):
    """Vendor A remediates within hours, vendor B never: their records tell them apart, and the
    compile's column counting (fast) agrees with the case-by-case score (slow)."""
    policy = load_policy(ROOT / "policy")
    simulate_month(tmp_path / "rbl.db", policy, NOW)
    store = ListingStore(tmp_path / "rbl.db", clock=lambda: NOW)
    columns = store.case_columns(("bl.example",), NOW - RULES.window, NOW)
    fast = vendor_scores(columns, policy.classification, policy.listing, NOW, sorted(policy.vendors))
    for vendor in policy.vendors:
        cases, _ = vendor_cases(store, policy.classification, vendor, ("bl.example",), NOW - RULES.window)
        assert fast[vendor] == score_vendor(vendor, cases, RULES, NOW)
    assert fast[A].tier == COOPERATIVE and fast[A].score == 1.0 and fast[A].cases == 60
    assert fast[A].remediated_in_time == 60 and fast[A].durable == 46 and fast[A].pending == 14
    assert fast[B].tier == NEGLIGENT and fast[B].score == 0.0 and fast[B].overdue == 29 and fast[B].open == 1
    assert fast["gcp"].tier == NEUTRAL and fast["gcp"].cases == 0


histories = st.lists(st.tuples(st.integers(0, 4), st.sampled_from(["list", "fix", "dispute"]),
                               st.integers(1, 72)), max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(histories, st.integers(0, 40))
def test_column_scores_agree_with_case_scores_over_random_histories(tmp_path_factory, history, days_later):
    """Listings, remediations, relistings and disputes in any order, scored both ways."""
    policy = load_policy(ROOT / "policy")
    db = tmp_path_factory.mktemp("h") / "rbl.db"
    clock = [NOW - 40 * DAY]
    store = ListingStore(db, clock=lambda: clock[0])
    token = TokenStore(store).create("vendor", A, "test")[0].id
    for step, (which, action, hours) in enumerate(history):
        clock[0] += hours * HOUR
        # 192.0.2.9 is in no vendor's space: read or not (vendor_spans), it counts for no one.
        address = parse_subject(f"3.5.140.{which}" if which < 3 else f"45.79.0.{which}" if which == 3 else "192.0.2.9")
        if action == "list":
            store.add([Entry(address)], zone="bl.example", actor="trap", expires=policy.listing.expiry.default,
                      repeat=policy.listing.expiry)
        else:
            verb = "tenant_terminated" if action == "fix" else "false_positive"
            EvidenceStore(store).submit(A, token, [Item(address, verb, f"T{step}", clock[0] - HOUR)], f"h{step}",
                                        f"vendor:{A}", remediation=remediation_for(policy))
    now = clock[0] + days_later * DAY / 4
    columns = store.case_columns(("bl.example",), now - RULES.window, now)
    fast = vendor_scores(columns, policy.classification, policy.listing, now, [A, B])
    within = store.case_columns(("bl.example",), now - RULES.window, now,
                                within=vendor_spans(policy.classification, [A, B]))
    assert vendor_scores(within, policy.classification, policy.listing, now, [A, B]) == fast
    for vendor in (A, B):
        cases, _ = vendor_cases(store, policy.classification, vendor, ("bl.example",), now - RULES.window)
        assert fast[vendor] == score_vendor(vendor, cases, RULES, now)
    store.close()


def test_thirty_days_later_the_tiers_change_the_dns_answers(workspace):
    """The acceptance scenario: a month of A remediating and B not, then the real server."""
    policy = load_policy(workspace.policy)
    simulate_month(workspace.db, policy, dt.datetime.now(dt.timezone.utc))
    server = Server(workspace)
    try:
        def codes(address: str) -> set[str]:
            return server.addresses(".".join(reversed(address.split("."))) + ".bl.example")

        def every(cidr: str) -> list[str]:
            return [str(a) for a in ipaddress.ip_network(cidr)]

        workspace.rbl("listing", "add", "3.5.141.200")  # a new listing of A's, today
        assert server.wait_for(lambda: codes("3.5.141.200") == {"127.0.0.4"}, 5) >= 0  # cooperative: throttle
        assert codes("45.79.0.30") == {"127.0.0.2"}  # negligent, no evidence: block, this address only
        assert codes("45.79.0.100") == set()  # 7 of the /24 listed now; 8 make it dense (2% of 256, at least 8)...
        workspace.rbl("listing", "add", "45.79.0.200")  # ...and one more of B's makes it so
        server.wait_for(lambda: codes("45.79.0.100") == {"127.0.0.5"}, 5)
        assert codes("45.79.0.200") == codes("45.79.0.30") == {"127.0.0.2", "127.0.0.5"}
        assert codes("45.79.1.100") == set()  # the next /24 is another range
        seen = {frozenset(codes(a)) for a in every(A_RANGE) + every(B_RANGE)}
        assert not any("127.0.0.3" in c for c in seen), seen  # no shared range ever answers block-range
        assert seen == {frozenset(), frozenset({"127.0.0.4"}), frozenset({"127.0.0.5"}),
                        frozenset({"127.0.0.2", "127.0.0.5"})}

        operator = workspace.rbl("operator", "token", "create").stdout.split()[-1]
        status, a = server.get(f"/v1/vendors/{A}", operator)
        assert status == 200 and a["tier"] == COOPERATIVE and a["numbers"]["remediated_in_time"] == 60
        assert a["numbers"]["cases"] == 61 and [c["subject"] for c in a["open_cases"]] == ["3.5.141.200"]
        status, b = server.get(f"/v1/vendors/{B}", operator)
        assert status == 200 and b["tier"] == NEGLIGENT and b["numbers"]["overdue"] == 29
        assert b["numbers"]["cases"] == 31 and b["listings"]["active"] == 8 and "negligent" in b["reason"]
        explained = json.loads(workspace.rbl("explain", "45.79.0.100", "--json").stdout)
        assert explained["zones"]["bl.example"]["density"] == {"range": B_RANGE, "listed": 8, "threshold": 8,
                                                               "applied": True}
    finally:
        server.stop()


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
        assert body["rules"]["min_cases"] == 10 and "fewer than the 10" in body["reason"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 12, 31),
                                                  timezones=st.just(dt.timezone.utc))), min_size=1, max_size=20))
def test_store_times_read_in_bulk_as_one_by_one(moments):
    """epoch_microseconds (numpy, for the compile) against parse_timestamp (one by one)."""
    texts = [timestamp(m) if m is not None else _NO_TIME for m in moments]
    got = epoch_microseconds("".join(texts)).tolist()
    want = [NONE if m is None else microseconds(parse_timestamp(t)) for m, t in zip(moments, texts)]
    assert got == want
