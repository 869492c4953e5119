"""The aiohttp application ``rbl serve --http`` runs beside the DNS workers.

Every error is JSON with a status of 4xx and a message naming the problem,
never an HTML page or a traceback.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from rbl.errors import SubjectError
from rbl.http.ratelimit import RateLimiter, client_key
from rbl.explain import explain

if TYPE_CHECKING:
    from rbl.metrics import Metrics
    from rbl.store import ListingStore
    from rbl.zone.source import SnapshotSource

log = logging.getLogger("rbl.http")


@dataclass
class Served:
    """What the routes answer from."""

    source: SnapshotSource  # the current snapshot, the last good policy, the vendors' tiers
    store: ListingStore  # the routes' own connection: they read and write while the source compiles
    metrics: Metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unauthorized(whose: str) -> web.Response:
    return error(401, f"{whose} bearer token is required (Authorization: Bearer TOKEN)",
                 headers={"WWW-Authenticate": 'Bearer realm="rbl"'})


def error(status: int, message: str, headers: dict | None = None, **extra) -> web.Response:
    return web.json_response({"error": message, **{k: v for k, v in extra.items() if v is not None}},
                             status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's own HTTP errors (404, 405...) and crashes into JSON bodies."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return error(exc.status, exc.reason or "error", path=request.path)
    except Exception:
        log.exception("error answering %s %s", request.method, request.path)
        return error(500, "internal error")


class Api:
    """Routes over the service's store, zones and last good policy."""

    def __init__(self, service):
        self.service = service
        self.delist_limiter = RateLimiter()  # per client, in the primary's memory

    async def lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        service = self.service
        policy = service.source.policy
        if policy is None or service.source.current is None:
            return error(503, "no snapshot is being served yet")
        zones = [zone.config for zone in service.source.current.zones.values()]
        try:
            result = explain(subject, service.store, zones, policy, standing=service.source.standing)
        except SubjectError as exc:
            return error(400, f"subject: {exc}", field="subject")
        result["serial"] = service.source.current.serial
        return web.Response(text=json.dumps(result, indent=2) + "\n", content_type="application/json")

    def _token(self, request: web.Request):
        """The bearer token in force, or None. The token is never logged or echoed."""
        from rbl.store.tokens import TokenStore

        header = request.headers.get("Authorization", "")
        scheme, _, text = header.partition(" ")
        if scheme.lower() != "bearer" or not text.strip():
            return None
        return TokenStore(self.service.store).verify(text.strip())

    async def evidence(self, request: web.Request) -> web.Response:
        """Remediation evidence from a vendor, for subjects in its own ranges; all items or none.

        Every answer is counted for ``GET /metrics`` by status and reason.
        """
        metrics = self.service.metrics
        try:
            response, reason, items = await self._evidence(request)
        except web.HTTPException as exc:  # a body over client_max_size: 413
            metrics.evidence_answered(exc.status, "too_large" if exc.status == 413 else "http")
            raise
        except Exception:
            metrics.evidence_answered(500, "error")
            raise
        metrics.evidence_answered(response.status, reason, items)
        return response

    async def _evidence(self, request: web.Request) -> tuple[web.Response, str, int]:
        """The answer, the reason for metrics, and how many items were newly stored."""
        import hashlib

        from rbl.policy.evidence import EvidenceError, parse_items
        from rbl.store.evidence import EvidenceStore, IdempotencyConflict, Remediation

        token = self._token(request)
        if token is None:
            return unauthorized("a vendor's"), "unauthorized", 0
        if token.scope != "vendor":
            return error(403, "evidence comes with a vendor's token, not the operator's"), "operator_token", 0
        policy = self.service.source.policy
        if policy is None or token.vendor not in policy.vendors:
            return error(403, f"vendor {token.vendor} is not in the policy"), "unknown_vendor", 0
        raw = await request.read()  # over client_max_size: 413 from aiohttp, JSON from the middleware
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, f"the body is not JSON: {exc}", field="body"), "malformed", 0
        store = self.service.store
        try:
            items = parse_items(body, token.vendor, policy.ranges_of(token.vendor), store.clock())
        except EvidenceError as exc:
            reason = {403: "outside_ranges", 413: "too_large"}.get(exc.status, "malformed")
            return error(exc.status, str(exc), item=exc.item, field=exc.field), reason, 0
        key = request.headers.get("Idempotency-Key")
        if key is not None and not (0 < len(key) <= 200 and key.isprintable()):
            return error(400, "Idempotency-Key: 1 to 200 printable characters", field="Idempotency-Key"), "malformed", 0
        classification = policy.classification
        zones = tuple(zone.config.origin for zone in self.service.source.current.zones.values()
                      if zone.config.serves == "listings")
        vendor = token.vendor

        def shared(kind: str, address: int) -> bool:  # this vendor's shared space, not a neighbour's inside it
            found = classification.find(kind, address)
            return found is not None and found.space == "shared" and found.vendor == vendor

        remediation = Remediation(zones, shared, policy.listing.expiry.remediated)
        try:
            done = EvidenceStore(store).submit(token.vendor, token.id, items, hashlib.sha256(raw).hexdigest(),
                                               f"vendor:{token.vendor} token:{token.id}", key, remediation)
        except IdempotencyConflict as exc:
            return error(409, str(exc), field="Idempotency-Key"), "idempotency_conflict", 0
        response = web.json_response({"submission": done.id, "accepted": done.items, "evidence": done.evidence,
                                      "replayed": done.replayed}, status=202)
        return response, "replayed" if done.replayed else "stored", 0 if done.replayed else done.items


    async def listings(self, request: web.Request) -> web.Response:
        """The operator adds (POST) or removes (DELETE) listings: all subjects or none."""
        from rbl.addresses import parse_subject
        from rbl.errors import StoreError
        from rbl.policy.listing import parse_duration
        from rbl.store.listings import Entry

        token = self._token(request)
        if token is None:
            return unauthorized("the operator's")
        if token.scope != "operator":
            return error(403, "listings are the operator's: a vendor's token cannot change them")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, f"the body is not JSON: {exc}", field="body")
        fields = {"subjects", "zone", "category", "reason", "source", "expires"}
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
        origins = [zone.config.origin for zone in self.service.source.current.zones.values()]
        zone = body.get("zone", origins[0]).lower().rstrip(".")
        if zone not in origins:
            return error(400, f"no zone {zone!r} (zones: {', '.join(origins)})", field="zone")
        actor = f"operator token:{token.id}"
        store = self.service.store
        if request.method == "DELETE":
            try:
                count = store.remove(subjects, zone=zone, actor=actor)
            except StoreError as exc:
                return error(404, str(exc), field="subjects")
            return web.json_response({"zone": zone, "removed": count})
        rules = self.service.source.policy.listing.expiry
        kwargs: dict = {"expires": rules.default, "repeat": rules}
        if "expires" in body:
            try:
                kwargs = {"expires": parse_duration(body["expires"])}
            except ValueError as exc:
                return error(400, str(exc), field="expires")
        added, refreshed = store.add([Entry(s) for s in subjects], zone=zone, actor=actor,
                                     category=body.get("category"), reason=body.get("reason"),
                                     source=body.get("source", "http"), **kwargs)
        return web.json_response({"zone": zone, "added": added, "refreshed": refreshed}, status=201)


    def _operator(self, request: web.Request, what: str):
        """The operator's token in force, or the 401/403 reply for anything else."""
        token = self._token(request)
        if token is None:
            return None, unauthorized("the operator's")
        if token.scope != "operator":
            verb = "read" if request.method == "GET" else "change"
            return None, error(403, f"{what} are the operator's: a vendor's token cannot {verb} them")
        return token, None

    def _listed_as(self, wanted) -> dict:
        """What the zone answers for the requested subject now: codes, and the listings behind them."""
        from rbl.addresses import DOMAIN
        from rbl.policy.delisting import MAX_LISTED

        service = self.service
        subject = wanted.subject
        if subject.kind == DOMAIN or subject.plen == subject.bits:
            zones = [zone.config for zone in service.source.current.zones.values()]
            found = explain(subject.text, service.store, zones, service.source.policy,
                            standing=service.source.standing)["zones"][wanted.zone]
            return {"codes": found["codes"],
                    "listings": [row["subject"] for row in found.get("listings", [])
                                 if not row.get("exclude")][:MAX_LISTED]}
        # A CIDR: the listings around or inside it (at most MAX_LISTED named).
        rows = service.store.overlapping(wanted.zone, subject.kind, subject.net, subject.plen,
                                          service.store.clock())
        return {"codes": [], "listings": sorted({row[3] for row in rows if not row[4]})[:MAX_LISTED]}

    async def delist_request(self, request: web.Request) -> web.Response:
        """Anyone asks the operator to review a listing: rate-limited per client, queued, never delisting by itself."""
        from rbl.policy.delisting import DelistError, next_steps, parse_request
        from rbl.store.delisting import DelistStore

        service = self.service
        if service.source.policy is None or service.source.current is None:
            return error(503, "no snapshot is being served yet")
        client = client_key(request.remote)
        rules = service.source.policy.listing.delisting
        # Every request counts, malformed ones too: the limit is what protects the operator's queue.
        wait = self.delist_limiter.take(client, rules.requests_per_hour / 3600, rules.burst)
        if wait:
            seconds = max(1, math.ceil(wait))
            return error(429, f"too many delisting requests from {client}: at most {rules.burst} at once and "
                              f"{rules.requests_per_hour} an hour; retry in {seconds} s",
                         headers={"Retry-After": str(seconds)}, retry_after=seconds)
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, f"the body is not JSON: {exc}", field="body")
        zones = {zone.config.origin: zone.config.serves for zone in service.source.current.zones.values()}
        try:
            wanted = parse_request(body, zones)
        except DelistError as exc:
            return error(exc.status, str(exc), field=exc.field)
        listed = self._listed_as(wanted)
        if not listed["codes"] and not listed["listings"]:
            return error(404, f"{wanted.subject.text} is not listed in {wanted.zone}: there is nothing to delist",
                         field="subject")
        made, new = DelistStore(service.store).create(wanted, client, listed, actor=f"public:{client}")
        return web.json_response({
            "id": made.id, "state": made.state, "subject": made.subject, "zone": made.zone,
            "listed_as": made.listed_as, "created_at": made.created_at, "duplicate": not new,
            "next": next_steps(made.email),
        }, status=202)

    async def delist_requests(self, request: web.Request) -> web.Response:
        """The operator's queue of delisting requests: open ones by default."""
        from rbl.store.delisting import DelistStore

        _, refused = self._operator(request, "delisting requests")
        if refused is not None:
            return refused
        state = request.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            return error(400, "state: one of open, closed, all", field="state")
        rows = DelistStore(self.service.store).list(None if state == "all" else state)
        return web.json_response({"state": state, "requests": [row.as_dict() for row in rows]})

    async def delist_close(self, request: web.Request) -> web.Response:
        """The operator closes a request: delisted (the listing is removed, audited) or rejected, with a note."""
        from rbl.policy.delisting import DelistError, parse_close
        from rbl.store.delisting import AlreadyClosed, DelistStore, NoSuchRequest, StillListed

        token, refused = self._operator(request, "delisting requests")
        if refused is not None:
            return refused
        text = request.match_info["id"]
        request_id = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
        if request_id is None:
            return error(404, f"no delisting request {text!r}", field="id")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, f"the body is not JSON: {exc}", field="body")
        try:
            resolution, note = parse_close(body)
        except DelistError as exc:
            return error(exc.status, str(exc), field=exc.field)
        try:
            closed, removed = DelistStore(self.service.store).close(request_id, resolution, note,
                                                                     f"operator token:{token.id}")
        except NoSuchRequest as exc:
            return error(404, str(exc), field="id")
        except (AlreadyClosed, StillListed) as exc:
            return error(409, str(exc), field="id" if isinstance(exc, AlreadyClosed) else "resolution")
        return web.json_response({"request": closed.as_dict(), "removed": removed})

    async def vendor(self, request: web.Request) -> web.Response:
        """A vendor's record: score, tier and the numbers behind them, open cases, listings in its space."""
        from rbl.policy.standing import open_cases, vendor_scores

        name = request.match_info["vendor"]
        token = self._token(request)
        if token is None:
            return unauthorized("the vendor's own or the operator's")
        if token.scope == "vendor" and token.vendor != name:
            return error(403, "a vendor's token reads that vendor's record only")
        policy = self.service.source.policy
        if policy is None or name not in policy.vendors:
            return error(404, f"no vendor {name!r} in the policy", field="vendor")
        store = self.service.store
        now = store.clock()
        rules = policy.listing.remediation
        zones = tuple(zone.config.origin for zone in self.service.source.current.zones.values()
                      if zone.config.serves == "listings")
        columns = store.case_columns(zones, now - rules.window, now, active=True)
        score = vendor_scores(columns, policy.classification, policy.listing, now, [name])[name]
        cases, active = open_cases(columns, policy.classification, name, now)
        info = policy.vendors[name]
        return web.json_response({
            "vendor": name, "title": info.title, "abuse": info.abuse or None,
            "tier": score.tier, "score": score.score, "reason": score.reason, "numbers": score.as_dict(),
            "rules": {"window_days": rules.window.days, "sla_hours": rules.sla.total_seconds() / 3600,
                      "recidivism_days": rules.recidivism.days, "min_cases": rules.min_cases,
                      "cooperative": rules.cooperative, "negligent": rules.negligent, "density": rules.density},
            "open_cases": [{"subject": subject, "opened_at": opened.isoformat(), "listed": listed,
                            "overdue": now - opened > rules.sla} for opened, subject, listed in cases[:1000]],
            "listings": {"active": active, "in_window": score.cases},
        })

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format: queries, evidence, snapshots. The operator's token."""
        from rbl.metrics import CONTENT_TYPE

        token = self._token(request)
        if token is None:
            return unauthorized("the operator's")
        if token.scope != "operator":
            return error(403, "metrics are the operator's: a vendor's token cannot read them")
        service = self.service
        text = service.metrics.text(service.source.current, service.source.policy)
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


async def _openapi(request: web.Request) -> web.Response:
    from rbl.http.openapi import spec

    return web.json_response(spec())


def make_app(service: Served | None) -> web.Application:
    """The application over ``service`` (None: only the routes that need nothing, as for the spec)."""
    app = web.Application(middlewares=[json_errors], client_max_size=1 << 20)
    api = Api(service)
    app.router.add_get("/v1/lookup/{subject}", api.lookup)
    app.router.add_post("/v1/evidence", api.evidence)
    app.router.add_post("/v1/listings", api.listings)
    app.router.add_delete("/v1/listings", api.listings)
    app.router.add_get("/v1/vendors/{vendor}", api.vendor)
    app.router.add_post("/v1/delist-requests", api.delist_request)
    app.router.add_get("/v1/delist-requests", api.delist_requests)
    app.router.add_post("/v1/delist-requests/{id}/close", api.delist_close)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/openapi.json", _openapi)
    return app


async def start_http(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on host:port (0: any free port); returns the runner and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # port 0: the one the kernel chose
    return runner, bound
