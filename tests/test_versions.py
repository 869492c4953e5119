"""A zone's versions for transfer: the IXFR steps rbl writes turn an old version into the new one;
a client older than the history gets the whole zone. The records come from a stand-in source."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.transfer.rrwire import encode as wire_records, unpack
from rbl.transfer import history
from rbl.transfer.history import Step, UP_TO_DATE, WHOLE_ZONE, plan
from rbl.transfer.versions import INDEX, load_records, question_length, read_chunks, read_index, render, version_files
from rbl.zone.records import Segment

ORIGIN = "bl.example"
SOA_TYPE = 6


def soa(serial: int) -> tuple:
    return ("@", 3600, "SOA", f"ns1.bl.example. hostmaster.bl.example. {serial} 3600 600 604800 300")


# The pool versions draw from: addresses with A and TXT, wildcards, a domain; TTLs vary too.
POOL = [(f"{i}.2.0.192", ttl, "A", code) for i in range(40) for ttl in (2100, 300) for code in ("127.0.0.2", "127.0.0.3")]
POOL += [(f"{i}.2.0.192", 2100, "TXT", f'"Listed: 192.0.2.{i}"') for i in range(40)]
POOL += [("*.3.0.192", 2100, "A", "127.0.0.3"), ("example.com", 2100, "A", "127.0.2.2"),
         ("@", 86400, "NS", "ns1.bl.example."), ("ns1", 86400, "A", "127.0.0.1")]


def segments(records: list) -> list[Segment]:
    """The SOA alone, then the records in segments by their name's first character (as the zone's
    segments are by first-level node), each fingerprinted by its content."""
    groups: dict[str, list] = {}
    for record in records[1:]:
        groups.setdefault(record[0][0], []).append(record)
    out = [Segment("soa", hashlib.blake2b(repr(records[0]).encode()).digest(), lambda: iter(records[:1]))]
    for key, group in groups.items():
        out.append(Segment(key, hashlib.blake2b(repr((key, group)).encode()).digest(), lambda group=group: iter(group)))
    return out


def split_step(records: list) -> tuple[int, int, set, set]:
    """(start serial, end serial, deleted, added) of a step file's records."""
    assert records[0].rtype == SOA_TYPE
    second = next(i for i in range(1, len(records)) if records[i].rtype == SOA_TYPE and records[i].name == "")
    serial = lambda r: int.from_bytes(r.rdata[-20:-16], "big")  # noqa: E731
    return serial(records[0]), serial(records[second]), set(records[1:second]), set(records[second + 1:])


def as_wire(version: list) -> set:
    return set(wire_records(version))


pool_index = st.integers(0, len(POOL) - 1)


@settings(max_examples=40, deadline=None)
@given(base=st.sets(pool_index, min_size=60), toggles=st.lists(st.sets(pool_index, max_size=8), min_size=1,
                                                              max_size=5),
       keep=st.integers(0, 6), gap=st.integers(1, 2**20))
def test_applying_the_steps_to_any_old_version_gives_the_newest(base, toggles, keep, gap):
    versions = [base]
    for toggle in toggles:  # each version a few records away from the one before
        versions.append(versions[-1] ^ toggle)
    folder = Path(tempfile.mkdtemp(prefix="rbl-test-versions-"))
    try:
        serials, contents = [], []
        serial = 2**32 - 3  # the serials wrap around 2**32 on the way (RFC 1982)
        for chosen in versions:
            serial = (serial + gap) % 2**32
            parts = segments([soa(serial), *(POOL[i] for i in sorted(chosen))])
            version = [r for part in parts[1:] for r in part.records()]
            index = render(parts, ORIGIN, folder, keep)
            serials.append(serial)
            contents.append(version)
            assert index["serial"] == serial and index["records"] == len(version)
        zone_dir = folder / ORIGIN
        index = read_index(zone_dir)
        # The whole zone as sent: SOA, the records in order, SOA.
        sent = []
        for path in version_files(zone_dir, index):
            with open(path, "rb") as f:
                sent += [r for body, count in read_chunks(f) for r in unpack(body, count, question_length(ORIGIN), 2)]
        assert sent == list(wire_records([soa(serials[-1]), *contents[-1], soa(serials[-1])]))
        steps = [Step(**s) for s in index["steps"]]
        assert len(steps) == min(keep, len(versions) - 1)
        for i, old in enumerate(contents):
            answer = plan(steps, serials[-1], serials[i], zone_size=10**9)
            if i == len(contents) - 1:
                assert answer == UP_TO_DATE
                continue
            if i < len(contents) - 1 - keep:
                assert answer == WHOLE_ZONE  # the history does not reach back: AXFR
                continue
            assert answer not in (UP_TO_DATE, WHOLE_ZONE)
            have = as_wire(old)
            at = serials[i]
            for step in answer:
                start, end, deleted, added = split_step(list(load_records((zone_dir / step.file).read_bytes())))
                assert start == at and deleted <= have and not added & (have - deleted)
                have = history.apply(have, deleted, added)
                at = end
            assert at == serials[-1] and have == as_wire(contents[-1])
        # Files no index names are gone: two versions' parts at most, the kept steps.
        names = {p.name for p in zone_dir.iterdir()}
        assert len([n for n in names if n.endswith(".soa")]) <= 2
        assert len([n for n in names if n.endswith(".part")]) <= 2 * len({r[0][0] for r in POOL})
        assert {s.file for s in steps} <= names and len([n for n in names if n.endswith(".ixfr")]) <= keep + 1
    finally:
        shutil.rmtree(folder)


def step(start: int, end: int, size: int = 10) -> Step:
    return Step(start, end, 1, 1, size, f"{start}-{end}.ixfr")


def test_plan_picks_the_chain_from_the_client_or_the_whole_zone():
    steps = [step(1, 2), step(2, 5), step(5, 9)]
    assert plan(steps, 9, 2, 1000) == steps[1:]
    assert plan(steps, 9, 1, 1000) == steps
    assert plan(steps, 9, 9, 1000) == UP_TO_DATE
    assert plan(steps, 9, 12, 1000) == UP_TO_DATE  # a newer serial than ours: our SOA alone (RFC 1995)
    assert plan(steps, 9, 3, 1000) == WHOLE_ZONE  # never ours
    assert plan(steps, 9, 0, 1000) == WHOLE_ZONE  # older than the history
    assert plan(steps, 9, 1, 25) == WHOLE_ZONE  # the steps outweigh the zone
    assert plan([step(1, 2), step(3, 9)], 9, 1, 1000) == WHOLE_ZONE  # a gap in the history
    assert plan(steps, 10, 5, 1000) == WHOLE_ZONE  # the history does not end at the newest
    assert plan([], 9, 1, 1000) == WHOLE_ZONE


def test_keep_bounds_the_history():
    steps = [step(1, 2), step(2, 5), step(5, 9)]
    assert history.keep(steps, 2) == (steps[1:], steps[:1])
    assert history.keep(steps, 0) == ([], steps)
    assert history.keep([step(1, 2), step(3, 9)], 5) == ([step(3, 9)], [step(1, 2)])


def test_serial_arithmetic_wraps():
    assert history.serial_newer(1, 2**32 - 1) and not history.serial_newer(2**32 - 1, 1)
    assert not history.serial_newer(5, 5)


def test_a_serial_that_goes_back_starts_the_history_afresh(tmp_path):
    render(segments([soa(100), *POOL[:10]]), ORIGIN, tmp_path, 8)
    render(segments([soa(101), *POOL[:11]]), ORIGIN, tmp_path, 8)
    assert len(read_index(tmp_path / ORIGIN)["steps"]) == 1
    render(segments([soa(50), *POOL[:12]]), ORIGIN, tmp_path, 8)  # a store restored from an old backup
    index = read_index(tmp_path / ORIGIN)
    assert index["serial"] == 50 and index["steps"] == []
    assert (tmp_path / ORIGIN / INDEX).stat().st_mode & 0o077 == 0  # it may be read by its owner only


def test_a_change_as_big_as_the_zone_builds_no_step(tmp_path):
    render(segments([soa(1), *POOL[:10]]), ORIGIN, tmp_path, 8)
    render(segments([soa(2), *POOL[:12]]), ORIGIN, tmp_path, 8)
    assert len(read_index(tmp_path / ORIGIN)["steps"]) == 1
    render(segments([soa(3), *POOL[20:32]]), ORIGIN, tmp_path, 8)  # every record changed: the zone is the smaller
    index = read_index(tmp_path / ORIGIN)
    assert index["steps"] == [] and plan([], 3, 2, index["axfr_bytes"]) == WHOLE_ZONE
