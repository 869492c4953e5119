"""Bulk import and --replace: the SQL fast path makes exactly the rows the per-row path makes.

Issue 12: a ten-million-line import goes through a staging table and a few SQL
statements, audited as one row with its keys packed (import_sets); the per-row
path (:meth:`ListingStore.add`'s) is its slow twin.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
from contextlib import closing

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_file
from rbl.addresses import parse_subject
from rbl.policy.listing import Expiry
from rbl.store import ListingStore, bulk, formats, listings
from rbl.store.formats import read_entries
from rbl.store.listings import Entry

START = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
ZONE = "bl.example"

subject = st.one_of(
    st.integers(0, 40).map(lambda i: f"192.0.2.{i}"),
    st.integers(0, 6).map(lambda i: f"198.51.{i}.0/24"),
    st.integers(0, 8).map(lambda i: f"2001:db8::{i:x}"),
    st.sampled_from(["a.example", "*.a.example", ".b.example"]),
)
entry = st.tuples(subject, st.booleans(), st.sampled_from([None, None, "127.0.0.3", "throttle"]),
                  st.sampled_from([None, "from the file"]), st.sampled_from([None, None, 7]))
# Before the import: add (source a or b, expiring or not), remove, evidence-like code changes; hours pass.
step = st.tuples(st.sampled_from(["add-a", "add-b", "add-forever", "remove"]), subject, st.integers(0, 30))


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now


def rows(store: ListingStore) -> list[tuple]:
    return store.db.execute(
        "SELECT zone, kind, net, plen, subject, exclude, code, txt, category, reason, source, first_seen, last_seen, "
        "hits, expires_at, state, lifetime, remediated_at, relisted_at, disputed_at FROM listings "
        "ORDER BY zone, kind, net, plen").fetchall()


def build(path, steps) -> tuple[ListingStore, Clock]:
    clock = Clock()
    store = ListingStore(path, clock=clock)
    for action, text, hours in steps:
        clock.now += dt.timedelta(hours=hours)
        subj = parse_subject(text)
        if action == "remove":
            old = store.get(ZONE, subj)
            if old is not None and old.state == "active":
                store.remove([subj], zone=ZONE, actor="test")
        else:
            store.add([Entry(subj)], zone=ZONE, actor="test", source="b" if action == "add-b" else "a",
                      expires=None if action == "add-forever" else dt.timedelta(hours=24),
                      repeat=Expiry(), category="spam")
    clock.now += dt.timedelta(hours=1)
    return store, clock


@settings(max_examples=80, deadline=None)
@given(st.lists(step, max_size=25), st.lists(entry, max_size=30), st.booleans(),
       st.sampled_from([None, dt.timedelta(hours=12), dt.timedelta(days=3)]))
def test_bulk_import_makes_the_rows_the_per_row_path_makes(tmp_path_factory, steps, lines, replace, expires):
    folder = tmp_path_factory.mktemp("bulk")
    results, tables = [], []
    for name, bulk_above in (("slow", 10**9), ("fast", -1)):
        store, _clock = build(folder / f"{name}.db", steps)
        entries = [Entry(parse_subject(t), exclude=x, code=c, reason=r, hits=h, line=n)
                   for n, (t, x, c, r, h) in enumerate(lines, 1)]
        bulk._SET_SIZE = 3  # import_sets rows of three keys: the chunking is exercised too
        try:
            done = store.import_entries(entries, zone=ZONE, actor="test", source="a", category=None,
                                        reason="listed", expires=expires, repeat=Expiry(), replace=replace,
                                        bulk_above=bulk_above)
        finally:
            bulk._SET_SIZE = 1_000_000
        results.append((done.added, done.refreshed, done.removed))
        tables.append(rows(store))
        if name == "fast":
            assert done.audit is not None
            history_ok(store, lines, replace)
        store.close()
    assert results[0] == results[1]
    assert tables[0] == tables[1]


def history_ok(store: ListingStore, lines, replace) -> None:
    """Every imported subject's history names the import that added or refreshed it."""
    (audit,) = store.db.execute("SELECT max(id) FROM audit WHERE action = 'import' AND subject IS NULL").fetchone()
    about = json.loads(store.db.execute("SELECT after FROM audit WHERE id = ?", [audit]).fetchone()[0])
    added = {text for text, *_ in lines if store.get(ZONE, parse_subject(text)).first_seen
             == store.get(ZONE, parse_subject(text)).last_seen}
    for text in added:
        events = [e for e in store.history(parse_subject(text)) if e["audit"] == audit]
        # New, or back after it ended: "added"; listed before and seen again: no set names it (a refresh).
        assert [e["action"] for e in events] in (["import (added)"], ["import (changed)"], []), (text, events)
    # Every key the import added is in exactly one of its sets, and the sets are sorted.
    sets = store.db.execute("SELECT kind, keys FROM import_sets WHERE audit = ? AND change = 'added'", [audit]).fetchall()
    for kind, keys in sets:
        if kind != "domain":
            width = 5 if kind == "ip4" else 17
            chunks = [keys[i:i + width] for i in range(0, len(keys), width)]
            assert chunks == sorted(set(chunks)) and 0 < len(chunks) <= 3
    assert about["replace"] is replace


def test_replace_leaves_exactly_the_newer_list_and_keeps_first_seen(tmp_path):
    """Real lists: an older FireHOL and Spamhaus DROP made by dropping and adding lines, then the real one."""
    rng = random.Random(12)
    for name, fmt in (("firehol-firehol_abusers_30d.netset", "firehol"), ("spamhaus-drop.txt", "spamhaus-drop")):
        newer = shared_file("blocklists", name)
        text = newer.read_text().splitlines(keepends=True)
        data = [i for i, line in enumerate(text) if line.strip() and line.strip()[0] not in "#;"]
        dropped = set(rng.sample(data, len(data) // 20))  # lines the older list lacked
        listed_now = {e.subject.text for e in read_entries(str(newer), fmt)}
        extra = [f"100.64.{i}.0/24\n" if fmt == "firehol" else f"100.64.{i}.0/24 ; SBL{900000 + i}\n"
                 for i in range(0, 250, 3) if f"100.64.{i}.0/24" not in listed_now]  # only the older list had these
        assert len(extra) > 50
        older = tmp_path / f"older-{name}"
        older.write_text("".join(line for i, line in enumerate(text) if i not in dropped) + "".join(extra))

        clock = Clock()
        store = ListingStore(tmp_path / f"{fmt}.db", clock=clock)
        store.add([Entry(parse_subject("192.0.2.99"))], zone=ZONE, actor="test", source="a trap")  # another source
        first = store.import_entries(read_entries(str(older), fmt), zone=ZONE, actor="test", source=fmt,
                                     expires=dt.timedelta(days=2), replace=True)
        clock.now += dt.timedelta(hours=6)
        done = store.import_entries(read_entries(str(newer), fmt), zone=ZONE, actor="test", source=fmt,
                                    expires=dt.timedelta(days=2), replace=True)

        wanted = {e.subject.text for e in read_entries(str(newer), fmt)}
        in_both = wanted & {e.subject.text for e in read_entries(str(older), fmt)}
        listed = {r.subject: r for r in store.show(zone=ZONE)}
        assert set(listed) == wanted | {"192.0.2.99"}, name  # the other source is untouched
        assert done.removed == len(extra) and done.added == len(wanted - in_both) == len(dropped), name
        assert done.refreshed == len(in_both) and first.added == len(in_both) + len(extra)
        for text in in_both:
            row = listed[text]
            assert row.first_seen == "2026-11-01T00:00:00Z" and row.last_seen == "2026-11-01T06:00:00Z", text
            assert row.hits == 1  # a replace: still in the upstream list is not a new hit
        for text in wanted - in_both:
            assert listed[text].first_seen == "2026-11-01T06:00:00Z"
        gone = parse_subject(extra[0].split()[0])
        assert store.get(ZONE, gone).state == "removed"
        history = [e["action"] for e in store.history(gone)]
        # FireHOL (200k lines) is a bulk import, DROP (1,500) is audited row by row.
        bulk = ["import (added)", "import (removed)"]
        assert history == (bulk if fmt == "firehol" else ["import", "remove"]), history
        store.close()


def test_a_failing_bulk_import_changes_nothing(tmp_path):
    store = ListingStore(tmp_path / "rbl.db")
    store.import_entries([Entry(parse_subject(f"10.0.{i >> 8}.{i & 255}")) for i in range(5000)], zone=ZONE,
                         actor="test", source="s")

    def broken():
        for i in range(5000):
            yield Entry(parse_subject(f"10.1.{i >> 8}.{i & 255}"))
        raise ValueError("line 5001 is bad")

    before = rows(store)
    try:
        store.import_entries(broken(), zone=ZONE, actor="test", source="s", replace=True)
    except ValueError:
        pass
    else:
        raise AssertionError("the import did not fail")
    assert rows(store) == before
    with closing(sqlite3.connect(tmp_path / "rbl.db")) as db:
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM import_sets").fetchone()[0] == 1


# Lines of every shape the fast readers must leave to the parser, and the bare addresses they take;
# lines that are errors (in some format or dataset) are rarer, so most files read to the end.
GOOD = ["192.0.2.1", "192.0.2.77", "10.1.2.3", "  192.0.2.9  ", "192.0.2.0/24", "!192.0.2.1",
        "192.0.2.4 :3:own text", "# a comment", "; another", "", ":127.0.0.3:listed: $", ":4:", "$1 a variable",
        "$= base $1 $", "$DATASET ip4set one", "$DATASET ip4trie three"]
BAD = ["192.0.2.010", "192.0.2", "192.0.2.1-5", "192.0.2.5:2", "::1", "2001:db8::/32", "bad.example",
       "*.bad.example", "$DATASET dnset two", "$DATASET generic x", "300.1.2.3", "1.2.3.4/33"]
LINE = st.sampled_from(GOOD * 6 + BAD)


@settings(max_examples=150, deadline=None)
@given(st.lists(LINE, max_size=20), st.sampled_from(["rbldnsd", "plain"]))
def test_the_fast_line_readers_give_the_rows_the_parser_gives(tmp_path_factory, lines, fmt):
    """read_rows takes canonical IPv4 lines without the parser (plain), or with the row the parser
    gave the last one under the same defaults (rbldnsd): the rows, or the error, are the parser's."""
    path = tmp_path_factory.mktemp("lines") / "list.txt"
    path.write_text("".join(line + "\n" for line in lines))

    def outcome(read):
        try:
            return list(read())
        except Exception as exc:  # noqa: BLE001 - the two must fail alike
            return f"{type(exc).__name__}: {exc}"

    fast = outcome(lambda: formats.read_rows(str(path), fmt))
    slow = outcome(lambda: map(listings.staged, read_entries(str(path), fmt)))
    assert fast == slow
