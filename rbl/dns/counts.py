"""A DNS worker's query counts: one integer add per answered query, shipped to the primary.

Per snapshot, each zone's templates (:class:`rbl.dns.wire.ZoneWire`) carry
``hits``, a list of ints indexed like the lookup's result: n > 0 the answer
table's entry n (NOERROR, that answer's codes), 0 NXDOMAIN, -1 (the extra last
slot) NODATA. Counting a query on the fast paths is then ``hits[result] += 1``;
what an index means is worked out only when the lists are folded into labelled
totals, once a second and when a snapshot is replaced. The general path
(REFUSED, FORMERR, the apex, access rules...) is slow anyway and adds to the
labelled totals directly.

A worker sends its totals since it started, not increments, as one JSON line
on its standard output; the primary keeps each worker's latest line, so a line
that is late or never written loses nothing but freshness. The same line
carries the queries answered under each access key (by key id, for quotas) and
the answers response rate limiting dropped or slipped (by kind).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from rbl.protocol import RCODE_NOERROR, RCODE_NXDOMAIN

# (zone origin, "" outside our zones; rcode; the answer's codes joined by "," and "" when not listed)
Key = tuple[str, int, str]


def new_hits(answers: list) -> list[int]:
    """A zone's per-answer counters: one slot per answer, and the last one for NODATA."""
    return [0] * (len(answers) + 1)


class QueryCounts:
    """Totals by label since the worker started; fed by the hit lists and the general path."""

    def __init__(self) -> None:
        self.totals: dict[Key, int] = {}

    def add(self, key: Key, count: int = 1) -> None:
        totals = self.totals
        totals[key] = totals.get(key, 0) + count

    def fold(self, wires: Iterable) -> None:
        """Move every zone's hits into the totals and zero them (the hot path keeps its lists)."""
        for wire in wires:
            hits = wire.hits
            if not any(hits):
                continue
            zone = wire.zone
            origin, answers, last = zone.config.origin, zone.answers, len(hits) - 1
            for index in [i for i, n in enumerate(hits) if n]:
                count = hits[index]
                hits[index] = 0
                if index == 0:
                    key = (origin, RCODE_NXDOMAIN, "")
                elif index == last:
                    key = (origin, RCODE_NOERROR, "")
                else:
                    key = (origin, RCODE_NOERROR, ",".join(answers[index].codes))
                self.add(key, count)


def encode(totals: dict[Key, int], keys: dict[int, int] | None = None, limited: dict[str, int] | None = None) -> bytes:
    """One line for the primary: ``{"queries": [[zone, rcode, codes, count], ...], "keys": [[id, count], ...],
    "limited": [[kind-action, count], ...]}`` (the last two only when not empty)."""
    data: dict = {"queries": [[*key, count] for key, count in totals.items()]}
    if keys:
        data["keys"] = [[key_id, count] for key_id, count in sorted(keys.items())]
    if limited:
        data["limited"] = [[name, count] for name, count in sorted(limited.items())]
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def decode_line(line: bytes) -> tuple[dict[Key, int], dict[int, int], dict[str, int]]:
    """A worker's line back into query totals, per-key totals and RRL totals.

    :raises ValueError: for a line that is not one of ours.
    """
    data = json.loads(line)
    queries = decode(line, data)
    keys, limited = {}, {}
    for name, out, kind in (("keys", keys, int), ("limited", limited, str)):
        for entry in data.get(name, []):
            if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], kind)
                    and isinstance(entry[1], int) and entry[1] >= 0):
                raise ValueError(f"not a {name} count: {entry!r}")
            out[entry[0]] = entry[1]
    return queries, keys, limited


def decode(line: bytes, data: object = None) -> dict[Key, int]:
    """A worker's line back into query totals.

    :raises ValueError: for a line that is not one of ours.
    """
    data = json.loads(line) if data is None else data
    entries = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('not {"queries": [...]}')
    out: dict[Key, int] = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 4):
            raise ValueError(f"not [zone, rcode, codes, count]: {entry!r}")
        zone, rcode, codes, count = entry
        if not (isinstance(zone, str) and isinstance(rcode, int) and isinstance(codes, str)
                and isinstance(count, int) and count >= 0):
            raise ValueError(f"not a query count: {entry!r}")
        out[(zone, rcode, codes)] = count
    return out
