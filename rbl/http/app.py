"""The aiohttp application ``rbl serve --http`` runs beside the DNS workers.

The routes are functions over the application's state (:func:`make_app`):
:data:`SERVED`, the snapshot source, the routes' own store and the metrics;
:data:`READS`, threads with read connections of their own, where the heavy
reads (lookups, the vendor view, what a delisting request is about) run off
the event loop. Token checks and writes (listings, evidence, delisting
requests) are short and run on the loop, on the routes' store. The loop is
the HTTP side's own, in a thread at a lower CPU priority than DNS
(:class:`HttpThread`).

Every error is JSON, a message naming the problem (and the field or item), never
an HTML page or a traceback: 4xx for the request, 503 before the first
snapshot, 500 for a crash (logged).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

from rbl.addresses import DOMAIN, parse_identities, parse_subject
from rbl.errors import StoreError, SubjectError
from rbl.explain import explain
from rbl.http.openapi import spec
from rbl.http.ratelimit import RateLimiter, client_key
from rbl.delivery.courier import channel_figures
from rbl.metrics import CONTENT_TYPE, Metrics, notice_families
from rbl.policy.delisting import MAX_LISTED, DelistError, Request, next_steps, parse_close, parse_request
from rbl.policy.evidence import EvidenceError, parse_items
from rbl.policy.listing import parse_duration
from rbl.policy.standing import Standing, open_cases, vendor_scores, vendor_spans
from rbl.policy.vendors import Policy
from rbl.store import ListingStore
from rbl.store.delisting import AlreadyClosed, DelistStore, NoSuchRequest, StillListed
from rbl.store.evidence import EvidenceStore, IdempotencyConflict, Remediation
from rbl.store.database import Clock
from rbl.store.listings import Entry
from rbl.store.outbox import Outbox
from rbl.store.tokens import Token, TokenStore
from rbl.zone.config import ZoneConfig
from rbl.zone.source import SnapshotSource

log = logging.getLogger("rbl.http")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

READ_THREADS = 2  # a vendor view (about 1 s at a million listings) leaves one for lookups


@dataclass
class Served:
    """What the routes answer from."""

    source: SnapshotSource  # the served snapshot, the last good policy, the vendors' tiers
    store: ListingStore  # the routes' own connection: they read and write while the source compiles
    metrics: Metrics


class Reads:
    """Heavy reads in a few threads, each on a connection of its own.

    Not on the routes' store: its one sqlite3 connection has no lock
    (check_same_thread=False only lifts sqlite3's check) and writes run on it
    as explicit BEGIN IMMEDIATE ... COMMIT in autocommit mode, so a thread
    reading on it while the loop is inside a write would read inside that
    transaction (rows not committed yet, maybe rolled back) and share the
    connection's cursors across threads. A connection per thread, in WAL mode,
    reads the last commit without waiting for the writer, and sees every write
    the loop committed before the read was handed over.
    """

    def __init__(self, path: str, clock: Clock, threads: int = READ_THREADS):
        self._path, self._clock = path, clock
        self._local = threading.local()
        self._opened: list[ListingStore] = []
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="rbl-http-read", initializer=self._open)

    def _open(self) -> None:  # in each new thread
        store = ListingStore(self._path, clock=self._clock)
        self._local.store = store
        self._opened.append(store)

    async def run(self, read: Callable[[ListingStore], T]) -> T:
        """``read(store)`` in a read thread, with that thread's store."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: read(self._local.store))

    def close(self) -> None:
        """Wait for the reads under way, then close their connections."""
        self._pool.shutdown(wait=True)
        for store in self._opened:
            store.close()


SERVED = web.AppKey("served", Served)
READS = web.AppKey("reads", Reads)
DELIST_LIMITER = web.AppKey("delist_limiter", RateLimiter)  # per client, in the primary's memory


def error(status: int, message: str, headers: dict | None = None, **extra) -> web.Response:
    return web.json_response({"error": message, **{k: v for k, v in extra.items() if v is not None}},
                             status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's own HTTP errors (404, 405...) and crashes into JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":  # redirects stay redirects
            raise
        return error(exc.status, exc.reason or "error", path=request.path)
    except Exception:
        log.exception("error answering %s %s", request.method, request.path)
        return error(500, "internal error")


def authorize(request: web.Request, whose: str, scope: str | None = None, refusal: str = "") -> Token | web.Response:
    """The bearer token in force, or the reply refusing the request: 401 asking for ``whose``
    token when there is no known one, 403 with ``refusal`` when the token's scope is not ``scope``
    (None: any scope). The token is never logged or echoed."""
    scheme, _, text = request.headers.get("Authorization", "").partition(" ")
    token = None
    if scheme.lower() == "bearer" and text.strip():
        token = TokenStore(request.app[SERVED].store).verify(text.strip())
    if token is None:
        return error(401, f"{whose} bearer token is required (Authorization: Bearer TOKEN)",
                     headers={"WWW-Authenticate": 'Bearer realm="rbl"'})
    if scope is not None and token.scope != scope:
        return error(403, refusal)
    return token


def authorize_operator(request: web.Request, what: str) -> Token | web.Response:
    """:func:`authorize` for the operator's token, ``what`` naming what the route reads or changes."""
    verb = "read" if request.method == "GET" else "change"
    return authorize(request, "the operator's", "operator", f"{what} are the operator's: a vendor's token cannot {verb} them")


async def read_json(request: web.Request) -> tuple[Any, bytes] | web.Response:
    """The body as JSON and as the bytes it came as, or the 400 saying it is not JSON.

    Over client_max_size: aiohttp's 413, made JSON by :func:`json_errors`.
    """
    raw = await request.read()
    try:
        return json.loads(raw), raw
    except (ValueError, UnicodeDecodeError) as exc:
        return error(400, f"the body is not JSON: {exc}", field="body")


async def lookup(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    source = request.app[SERVED].source
    # Read once: the serial below is this snapshot's even if a new one is served during the await.
    current, policy, standing = source.served, source.policy, source.standing
    if policy is None or current is None:
        return error(503, "no snapshot is being served yet")
    zones = [zone.config for zone in current.zones.values()]
    try:
        result = await request.app[READS].run(lambda store: explain(subject, store, zones, policy, standing=standing))
    except SubjectError as exc:
        return error(400, f"subject: {exc}", field="subject")
    result["serial"] = current.serial
    return web.Response(text=json.dumps(result, indent=2) + "\n", content_type="application/json")


async def evidence(request: web.Request) -> web.Response:
    """Remediation evidence from a vendor, for subjects in its own ranges; all items or none.

    Every answer is counted for ``GET /metrics`` by status and reason.
    """
    counts = request.app[SERVED].metrics
    try:
        response, reason, items = await _evidence(request)
    except web.HTTPException as exc:  # a body over client_max_size: 413
        counts.evidence_answered(exc.status, "too_large" if exc.status == 413 else "http")
        raise
    except Exception:
        counts.evidence_answered(500, "error")
        raise
    counts.evidence_answered(response.status, reason, items)
    return response


async def _evidence(request: web.Request) -> tuple[web.Response, str, int]:
    """The answer, the reason for metrics, and how many items were newly stored."""
    served = request.app[SERVED]
    token = authorize(request, "a vendor's", "vendor", "evidence comes with a vendor's token, not the operator's")
    if isinstance(token, web.Response):
        return token, "unauthorized" if token.status == 401 else "operator_token", 0
    policy = served.source.policy
    if policy is None or token.vendor not in policy.vendors:
        return error(403, f"vendor {token.vendor} is not in the policy"), "unknown_vendor", 0
    got = await read_json(request)
    if isinstance(got, web.Response):
        return got, "malformed", 0
    body, raw = got
    store = served.store
    try:
        items = parse_items(body, token.vendor, policy.ranges_of(token.vendor), store.clock())
    except EvidenceError as exc:
        reason = {403: "outside_ranges", 413: "too_large"}.get(exc.status, "malformed")
        return error(exc.status, str(exc), item=exc.item, field=exc.field), reason, 0
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 200 and key.isprintable()):
        return error(400, "Idempotency-Key: 1 to 200 printable characters", field="Idempotency-Key"), "malformed", 0
    classification = policy.classification
    zones = tuple(zone.config.origin for zone in served.source.served.zones.values()
                  if zone.config.serves == "listings")
    owner = token.vendor

    def shared(kind: str, address: int) -> bool:  # this vendor's shared space, not a neighbour's inside it
        found = classification.find(kind, address)
        return found is not None and found.space == "shared" and found.vendor == owner

    signers = tuple(zone.config.origin for zone in served.source.served.zones.values() if zone.config.dkim)
    remediation = Remediation(zones, shared, policy.listing.expiry.remediated, signers,
                              policy.listing.identity.terminated)
    try:
        done = EvidenceStore(store).submit(token.vendor, token.id, items, hashlib.sha256(raw).hexdigest(),
                                           f"vendor:{token.vendor} token:{token.id}", key, remediation)
    except IdempotencyConflict as exc:
        return error(409, str(exc), field="Idempotency-Key"), "idempotency_conflict", 0
    response = web.json_response({"submission": done.id, "accepted": done.items, "evidence": done.evidence,
                                  "replayed": done.replayed}, status=202)
    return response, "replayed" if done.replayed else "stored", 0 if done.replayed else done.items


async def listings(request: web.Request) -> web.Response:
    """The operator adds (POST) or removes (DELETE) listings: all subjects or none."""
    served = request.app[SERVED]
    token = authorize_operator(request, "listings")
    if isinstance(token, web.Response):
        return token
    got = await read_json(request)
    if isinstance(got, web.Response):
        return got
    body, _ = got
    fields = {"subjects", "zone", "category", "reason", "source", "expires", "identities"}
    if not isinstance(body, dict) or "subjects" not in body or set(body) - fields:
        unknown = sorted(set(body) - fields) if isinstance(body, dict) else []
        return error(400, f"a JSON object with subjects and optionally {', '.join(sorted(fields - {'subjects'}))}",
                     field=unknown[0] if unknown else "subjects")
    texts = body["subjects"]
    if not isinstance(texts, list) or not texts or len(texts) > 10_000 or not all(isinstance(t, str) for t in texts):
        return error(400, "subjects: a list of 1 to 10,000 addresses, CIDRs or domains", field="subjects")
    for name in ("zone", "category", "reason", "source", "expires"):
        if name in body and not isinstance(body[name], str):
            return error(400, f"{name} must be a string", field=name)
    subjects = []
    for i, text in enumerate(texts):
        try:
            subjects.append(parse_subject(text))
        except Exception as exc:  # SubjectError, with the item named
            return error(400, f"subjects[{i}]: {exc}", field="subjects", item=i)
    identities = body.get("identities", [])
    if not isinstance(identities, list) or len(identities) > 100:
        return error(400, "identities: a list of at most 100 signing domains such as shop.example", field="identities")
    try:
        identities = parse_identities(identities, subjects)
    except SubjectError as exc:
        return error(400, f"identities: {exc}", field="identities")
    origins = [zone.config.origin for zone in served.source.served.zones.values()]
    zone = body.get("zone", origins[0]).lower().rstrip(".")
    if zone not in origins:
        return error(400, f"no zone {zone!r} (zones: {', '.join(origins)})", field="zone")
    actor = f"operator token:{token.id}"
    store = served.store
    if request.method == "DELETE":
        try:
            count = store.remove(subjects, zone=zone, actor=actor)
        except StoreError as exc:
            return error(404, str(exc), field="subjects")
        return web.json_response({"zone": zone, "removed": count})
    rules = served.source.policy.listing.expiry
    kwargs: dict = {"expires": rules.default, "repeat": rules}
    if "expires" in body:
        try:
            kwargs = {"expires": parse_duration(body["expires"])}
        except ValueError as exc:
            return error(400, str(exc), field="expires")
    added, refreshed = store.add([Entry(s, identities=identities) for s in subjects], zone=zone, actor=actor,
                                 category=body.get("category"), reason=body.get("reason"),
                                 source=body.get("source", "http"), **kwargs)
    return web.json_response({"zone": zone, "added": added, "refreshed": refreshed}, status=201)


def listed_as(store: ListingStore, zones: list[ZoneConfig], policy: Policy, standing: Standing | None,
              wanted: Request) -> dict:
    """What the zone answers for the requested subject now, with the vendors' tiers it was compiled
    with: codes, and the listings behind them."""
    subject = wanted.subject
    if subject.kind == DOMAIN or subject.plen == subject.bits:
        found = explain(subject.text, store, zones, policy, standing=standing)["zones"][wanted.zone]
        return {"codes": found["codes"],
                "listings": [row["subject"] for row in found.get("listings", []) if not row.get("exclude")][:MAX_LISTED]}
    # A CIDR: the listings around or inside it (at most MAX_LISTED named).
    rows = store.overlapping(wanted.zone, subject.kind, subject.net, subject.plen, store.clock())
    return {"codes": [], "listings": sorted({row[3] for row in rows if not row[4]})[:MAX_LISTED]}


async def delist_request(request: web.Request) -> web.Response:
    """Anyone asks the operator to review a listing: rate-limited per client, queued, never delisting by itself."""
    served = request.app[SERVED]
    source = served.source
    current, policy, standing = source.served, source.policy, source.standing
    if policy is None or current is None:
        return error(503, "no snapshot is being served yet")
    client = client_key(request.remote)
    rules = policy.listing.delisting
    # Every request counts, malformed ones too: the limit is what protects the operator's queue.
    wait = request.app[DELIST_LIMITER].take(client, rules.requests_per_hour / 3600, rules.burst)
    if wait:
        seconds = max(1, math.ceil(wait))
        return error(429, f"too many delisting requests from {client}: at most {rules.burst} at once and "
                          f"{rules.requests_per_hour} an hour; retry in {seconds} s",
                     headers={"Retry-After": str(seconds)}, retry_after=seconds)
    got = await read_json(request)
    if isinstance(got, web.Response):
        return got
    body, _ = got
    try:
        wanted = parse_request(body, {zone.config.origin: zone.config.serves for zone in current.zones.values()})
    except DelistError as exc:
        return error(exc.status, str(exc), field=exc.field)
    zones = [zone.config for zone in current.zones.values()]
    listed = await request.app[READS].run(lambda store: listed_as(store, zones, policy, standing, wanted))
    if not listed["codes"] and not listed["listings"]:
        return error(404, f"{wanted.subject.text} is not listed in {wanted.zone}: there is nothing to delist",
                     field="subject")
    made, new = DelistStore(served.store).create(wanted, client, listed, actor=f"public:{client}")
    return web.json_response({
        "id": made.id, "state": made.state, "subject": made.subject, "zone": made.zone,
        "listed_as": made.listed_as, "created_at": made.created_at, "duplicate": not new,
        "next": next_steps(made.email),
    }, status=202)


async def delist_requests(request: web.Request) -> web.Response:
    """The operator's queue of delisting requests: open ones by default."""
    token = authorize_operator(request, "delisting requests")
    if isinstance(token, web.Response):
        return token
    state = request.query.get("state", "open")
    if state not in ("open", "closed", "all"):
        return error(400, "state: one of open, closed, all", field="state")
    rows = DelistStore(request.app[SERVED].store).list(None if state == "all" else state)
    return web.json_response({"state": state, "requests": [row.as_dict() for row in rows]})


async def delist_close(request: web.Request) -> web.Response:
    """The operator closes a request: delisted (the listing is removed, audited) or rejected, with a note."""
    token = authorize_operator(request, "delisting requests")
    if isinstance(token, web.Response):
        return token
    text = request.match_info["id"]
    request_id = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
    if request_id is None:
        return error(404, f"no delisting request {text!r}", field="id")
    got = await read_json(request)
    if isinstance(got, web.Response):
        return got
    body, _ = got
    try:
        resolution, note = parse_close(body)
    except DelistError as exc:
        return error(exc.status, str(exc), field=exc.field)
    try:
        closed, removed = DelistStore(request.app[SERVED].store).close(request_id, resolution, note,
                                                                        f"operator token:{token.id}")
    except NoSuchRequest as exc:
        return error(404, str(exc), field="id")
    except (AlreadyClosed, StillListed) as exc:
        return error(409, str(exc), field="id" if isinstance(exc, AlreadyClosed) else "resolution")
    return web.json_response({"request": closed.as_dict(), "removed": removed})


def vendor_record(store: ListingStore, policy: Policy, zones: tuple[str, ...], name: str) -> dict:
    """A vendor's record now: score, tier and the numbers behind them, the rules, its open cases
    (the oldest thousand) and how many of its listings are active."""
    now = store.clock()
    rules = policy.listing.remediation
    columns = store.case_columns(zones, now - rules.window, now, active=True,
                                 within=vendor_spans(policy.classification, [name]))
    score = vendor_scores(columns, policy.classification, policy.listing, now, [name])[name]
    cases, active = open_cases(columns, policy.classification, name, now)
    info = policy.vendors[name]
    return {
        "vendor": name, "title": info.title, "abuse": info.abuse or None,
        "tier": score.tier, "score": score.score, "reason": score.reason, "numbers": score.as_dict(),
        "rules": {"window_days": rules.window.days, "sla_hours": rules.sla.total_seconds() / 3600,
                  "recidivism_days": rules.recidivism.days, "min_cases": rules.min_cases,
                  "cooperative": rules.cooperative, "negligent": rules.negligent, "density": rules.density},
        "open_cases": [{"subject": subject, "opened_at": opened.isoformat(), "listed": listed,
                        "overdue": now - opened > rules.sla} for opened, subject, listed in cases[:1000]],
        "listings": {"active": active, "in_window": score.cases},
    }


def vendor_scope(request: web.Request, what: str) -> tuple[str, Policy] | web.Response:
    """The vendor of the path and the policy naming it, when the token is that vendor's or the
    operator's; else the refusal (401, 403 for another vendor's token, 404 for no such vendor)."""
    name = request.match_info["vendor"]
    token = authorize(request, "the vendor's own or the operator's")
    if isinstance(token, web.Response):
        return token
    if token.scope == "vendor" and token.vendor != name:
        return error(403, f"a vendor's token reads that vendor's {what} only")
    policy = request.app[SERVED].source.policy
    if policy is None or name not in policy.vendors:
        return error(404, f"no vendor {name!r} in the policy", field="vendor")
    return name, policy


async def vendor(request: web.Request) -> web.Response:
    """A vendor's record (:func:`vendor_record`), for that vendor's token or the operator's."""
    scope = vendor_scope(request, "record")
    if isinstance(scope, web.Response):
        return scope
    name, policy = scope
    source = request.app[SERVED].source
    zones = tuple(zone.config.origin for zone in source.served.zones.values() if zone.config.serves == "listings")
    return web.json_response(await request.app[READS].run(lambda store: vendor_record(store, policy, zones, name)))


EVENTS_LIMIT = 1000  # events in one answer of the pull feed, at most
MAX_WAIT = 60  # seconds a long poll may wait
WAIT_POLL = 0.02  # how often a long poll asks the store for a newer event (one primary-key read)


def _query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int | web.Response:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        return error(400, f"{name} must be a whole number from {low} to {high}, not {text[:40]!r}", field=name)
    return int(text)


async def vendor_events(request: web.Request) -> web.Response:
    """A vendor's notices after ``after``, oldest first (the vendor's token or the operator's); with
    ``wait``, a long poll that answers as soon as one is written, or empty when the time is up."""
    scope = vendor_scope(request, "events")
    if isinstance(scope, web.Response):
        return scope
    name, _policy = scope
    after = _query_int(request, "after", 0, 0, 2**62)
    wait = _query_int(request, "wait", 0, 0, MAX_WAIT)
    limit = _query_int(request, "limit", 100, 1, EVENTS_LIMIT)
    for value in (after, wait, limit):
        if isinstance(value, web.Response):
            return value
    outbox = Outbox(request.app[SERVED].store)
    deadline = asyncio.get_running_loop().time() + wait
    # The newest id is one read of the primary key, on the loop: a poll costs no thread.
    while outbox.newest(name) <= after and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(WAIT_POLL)
    events = outbox.events(name, after, limit)
    return web.json_response({"vendor": name, "events": events, "next": events[-1]["id"] if events else after,
                              "newest": outbox.newest(name)})


async def keys(request: web.Request) -> web.Response:
    """The operator's access keys: listed (GET, never their text) or created (POST, the text once)."""
    from rbl.store.keys import KeyStore, key_rows, parse_quota

    token = authorize_operator(request, "access keys")
    if isinstance(token, web.Response):
        return token
    served = request.app[SERVED]
    store = KeyStore(served.store)
    if request.method == "GET":
        return web.json_response({"keys": key_rows(store.list(), store.usage(), time.time())})
    got = await read_json(request)
    if isinstance(got, web.Response):
        return got
    body, _ = got
    fields = {"name", "quota", "zones"}
    if not isinstance(body, dict) or "name" not in body or set(body) - fields:
        unknown = sorted(set(body) - fields) if isinstance(body, dict) else []
        return error(400, "a JSON object with name and optionally quota and zones", field=unknown[0] if unknown else "name")
    if not isinstance(body["name"], str):
        return error(400, "name must be a string", field="name")
    quota = None
    if body.get("quota") is not None:
        try:
            quota = parse_quota(body["quota"]) if isinstance(body["quota"], str) else parse_quota("")
        except ValueError as exc:
            return error(400, f"quota: {exc}", field="quota")
    zones = body.get("zones")
    origins = sorted(z.config.origin for z in served.source.served.zones.values() if not z.config.apex)
    if zones is not None:
        if not isinstance(zones, list) or not zones or not all(isinstance(z, str) for z in zones):
            return error(400, "zones: a non-empty list of zone origins", field="zones")
        zones = [z.lower().rstrip(".") for z in zones]
        unknown = [z for z in zones if z not in origins]
        if unknown:
            return error(400, f"zones: no zone {unknown[0]!r} (zones: {', '.join(origins)})", field="zones")
    try:
        made, text = store.create(body["name"], f"operator token:{token.id}", quota, zones)
    except StoreError as exc:
        return error(409 if "exists already" in str(exc) else 400, str(exc), field="name")
    row = key_rows([made], {}, time.time())[0]
    return web.json_response({"key": row, "secret": text}, status=201)


async def key_revoke(request: web.Request) -> web.Response:
    """The operator revokes a key: answered 127.255.255.254 within a second."""
    from rbl.store.keys import KeyStore, key_rows

    token = authorize_operator(request, "access keys")
    if isinstance(token, web.Response):
        return token
    store = KeyStore(request.app[SERVED].store)
    name = request.match_info["name"]
    if store.get(name) is None:
        return error(404, f"no key named {name!r}", field="name")
    try:
        done = store.revoke(name, f"operator token:{token.id}")
    except StoreError as exc:
        return error(409, str(exc), field="name")
    return web.json_response({"key": key_rows([done], store.usage(), time.time())[0]})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: queries, evidence, snapshots. The operator's token."""
    token = authorize_operator(request, "metrics")
    if isinstance(token, web.Response):
        return token
    served = request.app[SERVED]
    written, channels = channel_figures(Outbox(served.store), served.source.policy, time.time())
    text = served.metrics.text(served.source.served, served.source.policy, notice_families(written, channels))
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


async def _close_reads(app: web.Application) -> None:
    app[READS].close()


def make_app(service: Served | None) -> web.Application:
    """Every route of the API, answering from ``service``: kept in the application's state with
    the read threads (closed when the application is cleaned up) and the delisting limiter.

    ``service=None``: the routes without state, for comparing them with the OpenAPI
    document; only ``/openapi.json`` answers (the others crash into a 500).
    """
    app = web.Application(middlewares=[json_errors], client_max_size=1 << 20)
    if service is not None:
        app[SERVED] = service
        app[READS] = Reads(service.store.path, service.store.clock)
        app[DELIST_LIMITER] = RateLimiter()
        app.on_cleanup.append(_close_reads)
    app.router.add_get("/v1/lookup/{subject}", lookup)
    app.router.add_post("/v1/evidence", evidence)
    app.router.add_post("/v1/listings", listings)
    app.router.add_delete("/v1/listings", listings)
    app.router.add_get("/v1/vendors/{vendor}", vendor)
    app.router.add_get("/v1/vendors/{vendor}/events", vendor_events)
    app.router.add_post("/v1/delist-requests", delist_request)
    app.router.add_get("/v1/delist-requests", delist_requests)
    app.router.add_post("/v1/delist-requests/{id}/close", delist_close)
    app.router.add_get("/v1/keys", keys)
    app.router.add_post("/v1/keys", keys)
    app.router.add_post("/v1/keys/{name}/revoke", key_revoke)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app


class HttpThread:
    """The HTTP side in a thread of its own, with its own event loop, at a lower CPU priority.

    DNS answers are what a blocklist is for: under load, the DNS workers and the primary's
    own loop (publishing snapshots, supervising workers) come first, and pages and API calls
    take what CPU is left (``nice`` added to this thread's niceness, and so to the read
    threads it starts: Linux keeps a niceness per thread). Without contention nothing is
    slower. The application is made in the thread by ``make``, so everything it starts
    belongs to that loop.
    """

    def __init__(self, make: Callable[[], web.Application], host: str, port: int, nice: int = 0):
        self._make, self._host, self._port, self._nice = make, host, port, nice
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready: Future = Future()

    def start(self, timeout: float = 60) -> int:
        """Start serving; the bound port. Raises what starting raised (a port in use...)."""
        self._thread = threading.Thread(target=self._run, name="rbl-http", daemon=True)
        self._thread.start()
        return self._ready.result(timeout)

    def _run(self) -> None:
        if self._nice:
            try:
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self._nice)
            except OSError as exc:  # not Linux, or refused: serve at the primary's priority
                log.warning("HTTP keeps the primary's CPU priority: %s", exc)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner, port = loop.run_until_complete(start_http(self._make(), self._host, self._port))
        except BaseException as exc:
            loop.close()
            self._ready.set_exception(exc)
            return
        self._loop = loop
        self._ready.set_result(port)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())  # the application's cleanup closes its read threads
            loop.close()

    def stop(self, timeout: float = 30) -> None:
        """Stop serving and clean the application up (from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)


async def start_http(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on host:port (0: any free port); returns the runner and the bound port."""
    # A request line up to 32 kB: a 10 kB subject typed into a page gets the page saying what is
    # wrong with it, not the HTTP parser's bare 400 (aiohttp's default stops at 8 kB).
    runner = web.AppRunner(app, access_log=None, max_line_size=32768)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # port 0: the one the kernel chose
    return runner, bound
