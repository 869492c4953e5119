"""Writes that change no answer publish no snapshot (issue 12: evidence was 40% of the primary's CPU).

Servers rebuild when the store's generation moves; these writes must leave it alone,
and the ones that change an answer must still move it.
"""

from __future__ import annotations

import datetime as dt

from rbl.addresses import parse_subject
from rbl.policy.evidence import Item
from rbl.store import ListingStore
from rbl.store.evidence import EvidenceStore, Remediation
from rbl.store.listings import Entry
from rbl.store.tokens import TokenStore

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)
SHARED = Remediation(zones=("bl.example",), shared=lambda kind, address: True, lasts=dt.timedelta(hours=6))


def test_evidence_that_changes_no_listing_keeps_the_generation(tmp_path):
    store = ListingStore(tmp_path / "rbl.db", clock=lambda: NOW)
    token, _ = TokenStore(store).create("vendor", "aws", "test")
    store.add([Entry(parse_subject("3.5.140.7"))], zone="bl.example", actor="test")
    evidence = EvidenceStore(store)
    acted = NOW + dt.timedelta(minutes=1)  # acted on after the listing: it counts

    def submit(subject: str, key: str, action: str = "tenant_terminated") -> int:
        before = store.generation()
        evidence.submit("aws", token.id, [Item(parse_subject(subject), action, "T-1", acted)], key, "test",
                        remediation=SHARED)
        return store.generation() - before

    assert submit("3.5.140.99", "a") == 0  # not listed: stored, audited, no new snapshot
    assert submit("3.5.140.7", "b") == 1  # remediated: throttle from now on
    assert store.get("bl.example", parse_subject("3.5.140.7")).code == "throttle"
    assert submit("3.5.140.7", "c") == 0  # the same report again changes nothing
    assert submit("3.5.140.7", "d", "false_positive") == 1  # disputed: the case leaves the score
    assert submit("3.5.140.7", "e", "false_positive") == 0
    assert store.db.execute("SELECT count(*) FROM evidence").fetchone()[0] == 5
