"""Which events a change causes, in-process on a real store: the bulk import's fast path held to
its row-by-row twin, the time-driven events (tier, escalation), signatures and the digest's CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbl.addresses import parse_subject
from rbl.delivery.courier import backoff
from rbl.delivery.digest import listed_csv
from rbl.delivery.signing import sign, verify
from rbl.policy.notices import Notices, observe
from rbl.policy.remediation import Score
from rbl.policy.standing import Standing
from rbl.policy.vendors import load_policy
from rbl.store import ListingStore
from rbl.store.listings import staged, Entry
from rbl.store.outbox import Outbox

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "policy")
NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.timezone.utc)

# Every kind of space: aws shared, dedicated and quarantine, gcp shared (v4, v6), no one's, a CIDR in
# shared space (lists no one), a dedicated CIDR, an exclusion, a domain.
SUBJECTS = ([f"3.5.140.{i}" for i in range(1, 9)] + ["198.19.254.3", "198.19.254.0/28", "198.19.255.7",
            "34.35.0.9", "2600:1900:8000::1", "2600:1900:8000::/48", "192.0.2.33", "3.5.141.0/24",
            "spam.example", "*.bulk.example"])


def _store(folder: str, clock=lambda: NOW) -> ListingStore:
    store = ListingStore(Path(folder) / "rbl.db", clock=clock)
    store.notices = Notices(POLICY)
    return store


def _told(store: ListingStore) -> list[tuple]:
    outbox = Outbox(store)
    return sorted((e["vendor"], e["type"], e["subject"], tuple(sorted((k, str(v)) for k, v in e.items()
                                                                      if k not in ("id",))))
                  for vendor in POLICY.vendors for e in outbox.events(vendor, 0, 100_000))


def _rows(subjects) -> list[tuple]:
    return [staged(Entry(parse_subject(text))) for text in sorted(subjects)]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sets(st.sampled_from(SUBJECTS)), st.sets(st.sampled_from(SUBJECTS)))
def test_a_bulk_import_tells_what_the_same_rows_imported_one_by_one_tell(first, second):
    with tempfile.TemporaryDirectory() as bulk_dir, tempfile.TemporaryDirectory() as rows_dir:
        bulk, rows = _store(bulk_dir), _store(rows_dir)
        for store, above in ((bulk, 0), (rows, 1_000_000)):
            for subjects in (first, second):  # the second replaces the first: what vanished is delisted
                store.import_rows(_rows(subjects), zone="bl.example", actor="test", source="feed", replace=True,
                                  bulk_above=above)
        assert _told(bulk) == _told(rows)
        listed = {s for s in first | second if s.startswith(("3.5.140.", "198.19.25", "34.35.", "2600:1900:8000::1"))}
        assert {t[2] for t in _told(rows) if t[1] == "listed"} == listed


def test_a_failed_transaction_leaves_no_event():
    with tempfile.TemporaryDirectory() as folder:
        store = _store(folder)
        try:
            with store.transaction() as conn:
                store._add_rows(conn, [Entry(parse_subject("3.5.140.1"))], _asked(store))
                assert Outbox(store).newest("aws") == 0  # the hook runs at commit, not before
                raise RuntimeError("the import failed halfway")
        except RuntimeError:
            pass
        assert Outbox(store).newest("aws") == 0 and store.get("bl.example", parse_subject("3.5.140.1")) is None
        store.add([Entry(parse_subject("3.5.140.1"))], zone="bl.example", actor="test")
        assert [e["type"] for e in Outbox(store).events("aws")] == ["listed"]


def _asked(store):
    from rbl.store.listings import _Asked

    return _Asked("bl.example", "test", "add", NOW, None, None, None, None, None, keep_hits=False)


def _score(vendor: str, tier: str) -> Score:
    return Score(vendor, tier, 0.9 if tier == "cooperative" else None, 12, 11, 0, 1, 11, 0,
                 NOW - dt.timedelta(days=30), f"{tier} for the test")


def test_a_tier_change_and_an_escalation_are_told_once():
    with tempfile.TemporaryDirectory() as folder:
        store = _store(folder)
        store.add([Entry(parse_subject(f"3.5.140.{i}")) for i in range(1, 30)], zone="bl.example", actor="test")
        zones = ("bl.example",)
        neutral = Standing.of({"aws": _score("aws", "neutral")}, POLICY.classification)
        cooperative = Standing.of({"aws": _score("aws", "cooperative")}, POLICY.classification)
        base = Outbox(store).newest("aws")
        assert observe(store, POLICY, zones, NOW, neutral, {"bl.example": set()}) == 0  # the first look: no news
        assert observe(store, POLICY, zones, NOW, cooperative, {"bl.example": {"3.5.140.0/22"}}) == 2
        assert observe(store, POLICY, zones, NOW, cooperative, {"bl.example": {"3.5.140.0/22"}}) == 0  # once
        tier, escalated = Outbox(store).events("aws", base)
        assert (tier["type"], tier["previous"], tier["tier"], tier["score"]) == ("tier", "neutral", "cooperative", 0.9)
        assert tier["numbers"]["cases"] == 12
        assert escalated["type"] == "escalated" and escalated["range"] == "3.5.140.0/22"
        assert (escalated["listed"], escalated["units"]) == (29, 1024)
        assert escalated["density"] == 29 / 1024
        assert escalated["codes"] == [{"name": "throttle-range", "value": "127.0.0.5"}]
        assert observe(store, POLICY, zones, NOW, cooperative, {"bl.example": set()}) == 1
        [ended] = Outbox(store).events("aws", escalated["id"])
        assert (ended["type"], ended["subject"], ended["reason"]) == ("delisted", "3.5.140.0/22", "below density")
        assert Outbox(store).newest("gcp") == 0  # none of it was gcp's


@given(st.binary(min_size=1, max_size=64), st.integers(0, 2**40), st.binary(max_size=512), st.integers(0, 511))
def test_a_signature_verifies_and_any_change_breaks_it(secret, timestamp, body, flip):
    header = sign(secret, timestamp, body)
    assert verify(secret, header, body)
    assert verify(secret, header, body, now=timestamp + 299) and not verify(secret, header, body, now=timestamp + 301)
    assert not verify(secret + b"x", header, body)
    if body:
        changed = bytearray(body)
        changed[flip % len(body)] ^= 1
        assert not verify(secret, header, bytes(changed))
    assert not verify(secret, header.replace(f"t={timestamp}", f"t={timestamp + 1}"), body)


@given(st.lists(st.sampled_from(SUBJECTS[:12]), unique=True), st.text(max_size=40))
def test_the_digests_csv_reads_back_as_the_addresses_listed(subjects, reason):
    events = [{"id": i, "type": "listed", "subject": s, "zone": "bl.example", "reason": reason,
               "codes": [{"name": "block", "value": "127.0.0.2"}]} for i, s in enumerate(subjects, 1)]
    events.append({"id": len(events) + 1, "type": "delisted", "subject": "3.5.140.99"})
    rows = list(csv.DictReader(io.StringIO(listed_csv(events), newline="")))
    assert [r["subject"] for r in rows] == subjects
    assert all(r["reason"] == reason and r["codes"] == "block" for r in rows)


def test_backoff_doubles_with_jitter_up_to_its_cap():
    import random

    rng = random.Random(7)
    for retries, cap in ((1, 600), (2, 600), (5, 600), (30, 60)):
        full = min(cap, 2 ** (retries - 1))
        for _ in range(50):
            assert full / 2 <= backoff(retries, cap, rng) <= full


def test_pruning_keeps_what_a_channel_has_not_delivered_and_the_newest_id():
    with tempfile.TemporaryDirectory() as folder:
        store = _store(folder)
        store.add([Entry(parse_subject(f"3.5.140.{i}")) for i in range(1, 6)], zone="bl.example", actor="test")
        store.add([Entry(parse_subject("34.35.0.1"))], zone="bl.example", actor="test")
        outbox = Outbox(store)
        outbox.delivered("aws", "webhook", 3, 0)
        later = int(NOW.timestamp()) + 1
        assert outbox.prune(later, {"aws": ["webhook"], "gcp": []}) == 3  # aws 1-3; gcp's only one stays
        assert [e["id"] for e in outbox.events("aws")] == [4, 5] and outbox.newest("gcp") == 1
        outbox.delivered("aws", "webhook", 5, 0)
        assert outbox.prune(later, {"aws": ["webhook"]}) == 1
        store.add([Entry(parse_subject("3.5.140.9"))], zone="bl.example", actor="test")
        assert [e["id"] for e in outbox.events("aws")] == [5, 6]  # the numbering goes on
