"""What ``GET /metrics`` shows, in the Prometheus text format (version 0.0.4).

The primary keeps its own numbers here (snapshots compiled, evidence accepted
and rejected) and each DNS worker's latest query totals, which workers send
over their standard output (:mod:`rbl.dns.counts`). Query counts arrive keyed
by zone, rcode number and the answer's codes as addresses; they are named here,
with the policy's and the zone's code names, only when shown.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rbl.dns.counts import Key
from rbl.dns.keys import OVER_CODE
from rbl.zone.config import ACCESS_CODE, CLOUD_CODES, MALFORMED_CODE

if TYPE_CHECKING:
    from rbl.policy.vendors import Policy
    from rbl.zone.snapshot import Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 16: "BADVERS"}
ERROR_CODES = {MALFORMED_CODE: "malformed", ACCESS_CODE: "not-allowed", OVER_CODE: "over-quota"}
NOT_LISTED = "none"


@dataclass
class Family:
    """One metric: its name, type, help and samples (labels, value)."""

    name: str
    type: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value as Prometheus reads it: integers exact, +Inf, -Inf, NaN."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The text exposition: HELP and TYPE for each family, then one line per sample."""
    lines = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for labels, value in family.samples:
            if labels:
                inner = ",".join(f'{key}="{escape_label(str(text))}"' for key, text in labels.items())
                lines.append(f"{family.name}{{{inner}}} {number(value)}")
            else:
                lines.append(f"{family.name} {number(value)}")
    return "\n".join(lines) + "\n"


def code_names(codes: str, names: dict[str, str]) -> str:
    """An answer's codes ("127.0.0.2,127.0.0.3") as names ("block+block-range"); none when not listed."""
    if not codes:
        return NOT_LISTED
    return "+".join(names.get(code) or ERROR_CODES.get(code) or code for code in codes.split(","))


def zone_code_names(snapshot: Snapshot | None, policy: Policy | None) -> dict[str, dict[str, str]]:
    """Each zone's code names by address: the policy's, overridden by the zone's own."""
    base = dict(policy.listing.codes) if policy is not None else {}
    out: dict[str, dict[str, str]] = {}
    for zone in (snapshot.zones.values() if snapshot is not None else ()):
        config = zone.config
        named = {**(CLOUD_CODES if config.serves == "cloud" else base), **config.codes}
        out[config.origin] = {address: name for name, address in named.items()}
    out[""] = {address: name for name, address in base.items()}
    return out


def _summed(retired: Counter, workers: dict[int, dict]) -> Counter:
    """Exited workers' last totals plus every live worker's latest."""
    total = Counter(retired)
    for totals in workers.values():
        total.update(totals)
    return total


class Metrics:
    """The primary's counters and the workers' query totals."""

    def __init__(self) -> None:
        # The HTTP thread reads (and counts evidence) while the primary's loop folds the workers'
        # totals: every change and every reading under one lock, so no dict changes mid-iteration.
        self._lock = threading.Lock()
        self._workers: dict[int, dict[Key, int]] = {}  # by worker: its latest totals
        self._retired: Counter = Counter()  # the last totals of workers that have exited
        self._worker_keys: dict[int, dict[int, int]] = {}  # by worker: queries per access key id
        self._retired_keys: Counter = Counter()
        self._worker_limited: dict[int, dict[str, int]] = {}  # by worker: RRL's limited answers by kind-action
        self._retired_limited: Counter = Counter()
        self.key_names: dict[int, str] = {}  # key id -> name, for the labels (the primary's key table)
        self.key_usage: dict[int, tuple[int, int, int]] = {}  # key id -> (period start, used, total)
        self.key_quota: dict[int, int] = {}  # key id -> queries per period
        self.keys_over: frozenset[int] = frozenset()
        self.evidence: Counter = Counter()  # (outcome, status, reason) -> submissions
        self.evidence_items = 0
        self.compiles: Counter = Counter()  # kind (full, patch) -> count
        self.compile_seconds: dict[str, float] = {}  # kind -> the last one's seconds
        self.compile_failures = 0
        self.sources: Counter = Counter()  # (source, status: updated, unchanged, failed) -> fetches
        self.source_listings: dict[str, int] = {}  # source -> listings after its last good replace
        self.source_success: dict[str, float] = {}  # source -> when it last replaced its listings

    # -- fed by the worker pool ----------------------------------------------------

    def worker_totals(self, worker: int, totals: dict[Key, int], keys: dict[int, int] | None = None,
                      limited: dict[str, int] | None = None) -> None:
        with self._lock:
            self._workers[worker] = totals
            self._worker_keys[worker] = keys or {}
            self._worker_limited[worker] = limited or {}

    def worker_gone(self, worker: int) -> None:
        """A worker exited: its last totals stay counted (they only grow)."""
        with self._lock:
            self._retired.update(self._workers.pop(worker, {}))
            self._retired_keys.update(self._worker_keys.pop(worker, {}))
            self._retired_limited.update(self._worker_limited.pop(worker, {}))

    def key_totals(self) -> Counter:
        """Queries answered under each access key id by any worker since the primary started."""
        with self._lock:
            return _summed(self._retired_keys, self._worker_keys)

    def keys_known(self, names: dict[int, str], quotas: dict[int, int], usage: dict[int, tuple[int, int, int]],
                   over: frozenset[int]) -> None:
        """The primary's view of the keys: names, quotas, usage in the period and which are over."""
        with self._lock:
            self.key_names, self.key_quota, self.key_usage, self.keys_over = names, quotas, usage, over

    def queries(self) -> Counter:
        """Every query answered by any worker since the primary started, by (zone, rcode, codes)."""
        with self._lock:
            return self._queries()

    def _queries(self) -> Counter:
        return _summed(self._retired, self._workers)

    # -- fed by the primary ----------------------------------------------------------

    def compiled(self, kind: str, seconds: float) -> None:
        with self._lock:
            self.compiles[kind] += 1
            self.compile_seconds[kind] = seconds

    def compile_failed(self) -> None:
        with self._lock:
            self.compile_failures += 1

    def source_fetched(self, source: str, status: str, listings: int | None = None) -> None:
        """One scheduled fetch of a listing source; ``listings`` after a good replace."""
        with self._lock:
            self.sources[(source, status)] += 1
            if status != "failed" and listings is not None:
                self.source_listings[source] = listings
                self.source_success[source] = time.time()

    def evidence_answered(self, status: int, reason: str, items: int = 0) -> None:
        """One ``POST /v1/evidence``: accepted (2xx, with the items newly stored) or rejected."""
        outcome = "accepted" if 200 <= status < 300 else "rejected"
        with self._lock:
            self.evidence[(outcome, str(status), reason)] += 1
            self.evidence_items += items

    # -- shown ---------------------------------------------------------------------------

    def families(self, snapshot: Snapshot | None = None, policy: Policy | None = None) -> list[Family]:
        with self._lock:
            return self._families(snapshot, policy)

    def _families(self, snapshot: Snapshot | None, policy: Policy | None) -> list[Family]:
        names = zone_code_names(snapshot, policy)
        queries = Family("rbl_dns_queries_total", "counter",
                         "DNS queries answered, by zone (empty: none of ours), response code and the codes "
                         "of the name's answer (none: not listed).")
        merged: Counter = Counter()
        for (zone, rcode, codes), count in self._queries().items():
            merged[(zone, RCODES.get(rcode, str(rcode)), code_names(codes, names.get(zone, names[""])))] += count
        for (zone, rcode, code), count in sorted(merged.items()):
            queries.samples.append(({"zone": zone, "rcode": rcode, "code": code}, count))
        evidence = Family("rbl_evidence_submissions_total", "counter",
                          "POST /v1/evidence answered, by outcome (accepted, rejected), HTTP status and reason.")
        for (outcome, status, reason), count in sorted(self.evidence.items()):
            evidence.samples.append(({"outcome": outcome, "status": status, "reason": reason}, count))
        families = [
            queries,
            evidence,
            Family("rbl_evidence_items_total", "counter", "Evidence items newly stored by accepted submissions.",
                   [({}, self.evidence_items)]),
            Family("rbl_snapshot_compiles_total", "counter",
                   "Snapshots built: full compiles and patches of a few changed listings.",
                   [({"kind": kind}, self.compiles[kind]) for kind in ("full", "patch")]),
            Family("rbl_snapshot_compile_seconds", "gauge", "Seconds the last snapshot of each kind took to build.",
                   [({"kind": kind}, self.compile_seconds[kind]) for kind in ("full", "patch")
                    if kind in self.compile_seconds]),
            Family("rbl_snapshot_compile_failures_total", "counter",
                   "Snapshots that failed to build (the one being served stays).", [({}, self.compile_failures)]),
            Family("rbl_source_fetches_total", "counter",
                   "Scheduled fetches of listing sources, by source and status (failed: the last good listings stay).",
                   [({"source": name, "status": status}, count) for (name, status), count in sorted(self.sources.items())]),
            Family("rbl_source_listings", "gauge", "Listings of each source after its last good replace.",
                   [({"source": name}, count) for name, count in sorted(self.source_listings.items())]),
            Family("rbl_source_success_timestamp_seconds", "gauge",
                   "When each listing source last replaced its listings, in seconds since the epoch.",
                   [({"source": name}, at) for name, at in sorted(self.source_success.items())]),
        ]
        limited = _summed(self._retired_limited, self._worker_limited)
        families += [
            Family("rbl_key_queries_total", "counter", "DNS queries answered under each access key, by key name.",
                   [({"key": self.key_names[i]}, usage[2]) for i, usage in sorted(self.key_usage.items())
                    if i in self.key_names]),
            Family("rbl_key_period_queries", "gauge",
                   "Queries under each access key in its quota's current period.",
                   [({"key": self.key_names[i]}, usage[1]) for i, usage in sorted(self.key_usage.items())
                    if i in self.key_names]),
            Family("rbl_key_quota", "gauge", "Each access key's quota: queries per period (keys with one).",
                   [({"key": self.key_names[i]}, q) for i, q in sorted(self.key_quota.items()) if i in self.key_names]),
            Family("rbl_key_over_quota", "gauge", "1 while an access key is past its quota (answered 127.255.255.255).",
                   [({"key": self.key_names[i]}, int(i in self.keys_over)) for i in sorted(self.key_quota)
                    if i in self.key_names]),
            Family("rbl_rrl_limited_total", "counter",
                   "UDP answers response rate limiting held back, by kind of answer and action "
                   "(dropped, or slipped: sent truncated so a real client retries over TCP).",
                   [({"kind": name.rsplit("-", 1)[0], "action": name.rsplit("-", 1)[1]}, count)
                    for name, count in sorted(limited.items())]),
        ]
        if snapshot is not None:
            families += [
                Family("rbl_snapshot_serial", "gauge", "Serial of the snapshot being served (the zones' SOA serial).",
                       [({}, snapshot.serial)]),
                Family("rbl_snapshot_built_timestamp_seconds", "gauge",
                       "When the snapshot being served was built, in seconds since the epoch.",
                       [({}, snapshot.built_at)]),
                Family("rbl_snapshot_listings", "gauge", "Listings served, as of the last full compile.",
                       [({}, snapshot.listings)]),
            ]
        return families

    def text(self, snapshot: Snapshot | None = None, policy: Policy | None = None,
             notices: list[Family] | None = None) -> str:
        """The exposition; code names from ``policy`` and the zones of ``snapshot``; ``notices``:
        :func:`notice_families`, read from the store (other processes write the outbox too)."""
        return render(self.families(snapshot, policy) + (notices or []))


@dataclass(frozen=True)
class ChannelFigures:
    """One vendor's channel as the store says: what :func:`notice_families` shows."""

    vendor: str
    channel: str
    delivered: int
    attempts: int
    oldest_undelivered: float | None  # seconds since the oldest event not delivered yet was written
    failing: bool


def notice_families(written: dict[str, int], channels: list[ChannelFigures]) -> list[Family]:
    """The outbox in metrics: events written per vendor; per vendor and channel, events
    delivered, failed attempts, the oldest undelivered event's age and whether it is failing."""
    def per_channel(name: str, kind: str, text: str, value) -> Family:
        return Family(name, kind, text, [({"vendor": c.vendor, "channel": c.channel}, value(c)) for c in channels])

    return [
        Family("rbl_notice_events_total", "counter", "Notices written to the outbox, per vendor (its newest id).",
               [({"vendor": vendor}, count) for vendor, count in sorted(written.items())]),
        per_channel("rbl_notice_delivered_total", "counter", "Notices a vendor's channel accepted.",
                    lambda c: c.delivered),
        per_channel("rbl_notice_failed_attempts_total", "counter",
                    "Delivery attempts that failed (an error status, a timeout, a refused connection).",
                    lambda c: c.attempts),
        per_channel("rbl_notice_oldest_undelivered_seconds", "gauge",
                    "Age of the oldest notice the channel has not accepted yet (0: none waits).",
                    lambda c: float(c.oldest_undelivered or 0.0)),
        per_channel("rbl_notice_failing", "gauge",
                    "1 while the channel has been down longer than its failing_after; its notices wait.",
                    lambda c: int(c.failing)),
    ]
