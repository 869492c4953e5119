"""What the pages keep in the store and sign: sessions, the vendors' days, disputes, form fields."""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing

from hypothesis import given
from hypothesis import strategies as st

from rbl.addresses import parse_subject
from rbl.pages import forms
from rbl.policy.evidence import Item
from rbl.store import ListingStore
from rbl.store.delisting import DelistStore
from rbl.store.evidence import EvidenceStore, Remediation
from rbl.store.history import VendorHistory
from rbl.store.listings import Entry
from rbl.store.sessions import SessionStore
from rbl.store.tokens import TokenStore

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def at(clock):
    return lambda: clock[0]


def test_a_session_ends_on_sign_out_at_expiry_and_when_its_token_is_revoked(tmp_path):
    clock = [NOW]
    store = ListingStore(tmp_path / "rbl.db", clock=at(clock))
    tokens, sessions = TokenStore(store), SessionStore(store)
    token, _ = tokens.create("vendor", "aws", "test")
    first, second, third = (sessions.open(token) for _ in range(3))
    assert sessions.verify(first).id == token.id and sessions.count(token.id) == 3
    with closing(sqlite3.connect(tmp_path / "rbl.db")) as db:  # only hashes are kept
        kept = [row[0] for row in db.execute("SELECT hash FROM sessions")]
    assert first not in kept and len(kept) == 3
    assert sessions.end(first) and sessions.verify(first) is None and not sessions.end(first)
    clock[0] = NOW + dt.timedelta(hours=12)
    assert sessions.verify(second) is None  # twelve hours after sign-in
    clock[0] = NOW
    assert sessions.verify(third) is not None
    tokens.revoke(token.id, "test")
    assert sessions.verify(third) is None and sessions.count(token.id) == 0
    for junk in (None, "", "x" * 101, 5, "\x00"):
        assert sessions.verify(junk) is None


def test_history_keeps_one_row_per_vendor_and_day_the_last_scoring(tmp_path):
    store = ListingStore(tmp_path / "rbl.db")
    history = VendorHistory(store)

    class Score:
        def __init__(self, score):
            self.tier, self.score, self.cases, self.remediated_in_time, self.overdue, self.open = \
                "neutral", score, 3, 1, 1, 1

    history.record(NOW, {"aws": Score(0.5)}, {"aws": 4})
    history.record(NOW + dt.timedelta(hours=3), {"aws": Score(0.6)}, {"aws": 5})
    history.record(NOW + dt.timedelta(days=1), {"aws": Score(None)}, {})
    days = history.days("aws", NOW.date())
    assert [(d.day, d.score, d.listed) for d in days] == [(NOW.date(), 0.6, 5),
                                                          (NOW.date() + dt.timedelta(days=1), None, 0)]
    assert history.first_day("aws") == NOW.date() and history.first_day("gcp") is None


def test_a_dispute_joins_the_queue_and_closing_it_keeps_or_removes_the_listing(tmp_path):
    clock = [NOW]
    store = ListingStore(tmp_path / "rbl.db", clock=at(clock))
    token = TokenStore(store).create("vendor", "aws", "test")[0]
    store.add([Entry(parse_subject(a)) for a in ("3.5.141.7", "3.5.141.8")], zone="bl.example", actor="trap",
              expires=dt.timedelta(days=7))
    remediation = Remediation(("bl.example",), lambda kind, address: True, dt.timedelta(hours=6))
    clock[0] = NOW + dt.timedelta(hours=1)
    items = [Item(parse_subject(a), "false_positive", f"T-{a}", NOW + dt.timedelta(minutes=30), None)
             for a in ("3.5.141.7", "3.5.141.8")]
    EvidenceStore(store).submit("aws", token.id, items, "h1", "vendor:aws", remediation=remediation)
    EvidenceStore(store).submit("aws", token.id, items, "h2", "vendor:aws", remediation=remediation)  # again
    queue = DelistStore(store)
    disputes = queue.list("open", kind="dispute")
    assert [(d.subject, d.vendor, d.kind) for d in disputes] == [("3.5.141.7", "aws", "dispute"),
                                                                  ("3.5.141.8", "aws", "dispute")]
    assert queue.list("open", kind="request") == []
    rejected, removed = queue.close(disputes[0].id, "rejected", "Our trap saw it.", "operator token:9")
    assert removed == [] and rejected.resolution == "rejected"
    kept = store.get("bl.example", parse_subject("3.5.141.7"))
    assert kept.state == "active" and kept.disputed_at is None  # a case of the vendor's again
    accepted, removed = queue.close(disputes[1].id, "delisted", "Agreed.", "operator token:9")
    assert removed == ["3.5.141.8"] and store.get("bl.example", parse_subject("3.5.141.8")).state != "active"
    with closing(sqlite3.connect(tmp_path / "rbl.db")) as db:
        actions = [row[0] for row in db.execute("SELECT action FROM audit WHERE actor = 'operator token:9' "
                                                "ORDER BY id")]
    assert actions == ["dispute-reject", "delist-close", "remove", "delist-close"]


@given(st.binary(min_size=16, max_size=64), st.text(min_size=16, max_size=40), st.sampled_from(["delist", "signin"]),
       st.text(max_size=120))
def test_a_signed_field_is_valid_for_its_cookie_and_purpose_only(key, cookie, purpose, forged):
    field = forms.sign(key, cookie, purpose)
    assert forms.valid(key, cookie, purpose, field) == (len(cookie) <= forms.MAX_VALUE)
    assert not forms.valid(key, cookie + "x", purpose, field)
    assert not forms.valid(key, cookie, "close", field)
    assert forms.valid(key, cookie, purpose, forged) == (forged == field and len(cookie) <= forms.MAX_VALUE)
    assert forms.good_cookie(forms.new_cookie())


def test_origin_checks():
    assert forms.same_origin("http://127.0.0.1:8080", "http", "127.0.0.1:8080")
    assert not forms.same_origin("http://localhost:8080", "http", "127.0.0.1:8080")
    assert not forms.same_origin("null", "http", "127.0.0.1:8080")
    assert forms.same_origin(None, "http", "127.0.0.1:8080")  # no header: the signed field decides
