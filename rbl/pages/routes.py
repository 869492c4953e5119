"""The pages of ``rbl serve --http``: HTML for people, beside the JSON API.

Server-rendered with Jinja2 (through aiohttp-jinja2, autoescaping every
value), no JavaScript, one stylesheet of our own, nothing fetched from
elsewhere. The pages answer from the same state as the API
(:data:`rbl.http.app.SERVED`, the read threads, the delisting limiter) and
write through the same stores, so a request sent from a page lands in the same
queue, under the same rate limit, with the same audit rows.

- ``/`` what the list is and its codes, ``/lookup?q=`` one subject in words,
  ``POST /lookup/delist`` a delisting request from the form under a listed answer;
- ``/signin`` and ``/signout``: a token traded for a session cookie
  (:mod:`rbl.store.sessions`); ``/vendors/{vendor}`` a vendor's dashboard with
  its plots; ``/operator`` the operator's queue of requests and disputes.

Every POST carries the signed field of :mod:`rbl.pages.forms`. Errors are
pages too (the status, what was wrong, never a traceback), and every response
carries the security headers of :func:`security_headers`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import math
import re
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import web

from rbl.addresses import DOMAIN, IP4, parse_subject
from rbl.delivery.courier import channel_figures
from rbl.errors import SubjectError
from rbl.explain import explain
from rbl.http.app import DELIST_LIMITER, READS, SERVED, listed_as, vendor_record
from rbl.http.ratelimit import RateLimiter, client_key
from rbl.pages import forms
from rbl.pages.plots import listed_plot, score_plot
from rbl.pages.words import ERRORS, code_table, describe_code, lookup_view, query_examples, when
from rbl.policy.delisting import MAX_SUBJECT, DelistError, next_steps, parse_close, parse_request
from rbl.policy.standing import range_ids, vendor_spans
from rbl.store import ListingStore
from rbl.store.delisting import AlreadyClosed, DelistStore, NoSuchRequest, StillListed
from rbl.store.history import VendorHistory
from rbl.store.outbox import Outbox
from rbl.store.sessions import LIFETIME, SessionStore
from rbl.store.tokens import Token, TokenStore

log = logging.getLogger("rbl.pages")

HERE = Path(__file__).parent
SESSION = "rbl_session"
SIGNIN_LIMITER = web.AppKey("signin_limiter", RateLimiter)
FORM_KEY = web.AppKey("form_key", bytes)  # read once: the migration made it, nothing changes it
SIGNIN_RATE, SIGNIN_BURST = 30 / 3600, 10  # per client: guessing a 256-bit token is hopeless; this is for load
MAX_LISTED_SHOWN = 200  # a vendor's listed addresses on its dashboard
HISTORY_DAYS = 365  # the plots reach back at most this far
API = re.compile(r"/v[0-9]+(/|$)|/metrics$|/openapi\.json$")  # the API answers JSON, errors included

# No script at all; styles and images from this server only; forms post here only.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"  # matplotlib styles inline


def _is_page(path: str) -> bool:
    return API.match(path) is None


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, the API's too: no sniffing, no framing, no referrer to other sites, the strict CSP."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: under no-referrer Chromium sends "Origin: null" with our own forms.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy", CSP)
    if _is_page(request.path) and not request.path.startswith("/static/"):
        headers.setdefault("Cache-Control", "no-store")  # signed-in pages and forms with fields: never cached


def page(request: web.Request, template: str, context: dict, status: int = 200) -> web.Response:
    """A page from ``template``, with what every page shows (who is signed in, the form fields)."""
    who: Token | None = request.get("signed_in")
    cookie = request.cookies.get(forms.COOKIE)
    fresh = not forms.good_cookie(cookie)
    if fresh:
        cookie = forms.new_cookie()
    key = request.app[FORM_KEY]
    context = {"signed_in": who, "field": lambda purpose: forms.sign(key, cookie, purpose), "field_name": forms.FIELD,
               **context}
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    if fresh:
        response.set_cookie(forms.COOKIE, cookie, httponly=True, samesite="Strict", secure=request.secure, path="/")
    return response


def problem(request: web.Request, status: int, title: str, message: str, **extra) -> web.Response:
    """An error as a page: the status, a title and what was wrong."""
    return page(request, "problem.html", {"status": status, "title": title, "message": message, **extra}, status)


@web.middleware
async def html_errors(request: web.Request, handler) -> web.StreamResponse:
    """Pages answer errors as pages (the API's stay JSON, by :func:`rbl.http.app.json_errors`)."""
    if not _is_page(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 403:  # from _signed_in_as: the reason says whose page it is
            return problem(request, 403, "Not yours", exc.reason or "Forbidden")
        return problem(request, exc.status, exc.reason or "Error", {
            404: "There is no page here.", 405: "This page does not take that kind of request.",
            413: "What was sent is too large."}.get(exc.status, exc.reason or "The request was refused."))
    except Exception:
        log.exception("error answering %s %s", request.method, request.path)
        return problem(request, 500, "Internal error", "Something went wrong on our side; it has been logged.")


# -- sessions and forms ------------------------------------------------------

def signed_in(request: web.Request) -> Token | None:
    """The token behind the request's session cookie, if it is good (read on every page, so a
    revoked token's sessions end at once)."""
    token = SessionStore(request.app[SERVED].store).verify(request.cookies.get(SESSION))
    request["signed_in"] = token
    return token


async def posted(request: web.Request, purpose: str) -> dict | web.Response:
    """A POSTed form's fields, or the page refusing it: a form sent from another site, or without
    the field signed for this browser."""
    data = await request.post()
    if not forms.same_origin(request.headers.get("Origin"), request.scheme, request.host) \
            or not forms.valid(request.app[FORM_KEY], request.cookies.get(forms.COOKIE), purpose,
                               data.get(forms.FIELD)):
        return problem(request, 403, "Form refused",
                       "This form was not sent from this site's own page (or the page is too old). "
                       "Open the page again and send the form from there.")
    return {k: v for k, v in data.items() if isinstance(v, str) and k != forms.FIELD}


def see_other(location: str) -> web.Response:
    """After a POST, the page to load next (303: with GET)."""
    return web.Response(status=303, headers={"Location": location})


def to_signin(request: web.Request) -> None:
    raise web.HTTPSeeOther(f"/signin?next={quote(request.path_qs, safe='/')}")


def _local(path: str | None) -> str | None:
    """A path on this server to go back to after sign-in (never another site's URL)."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path and len(path) < 500 \
            and path.isprintable():
        return path
    return None


def _served(request: web.Request):
    source = request.app[SERVED].source
    current, policy, standing = source.served, source.policy, source.standing
    if policy is None or current is None:
        raise web.HTTPServiceUnavailable(reason="Starting")
    return current, policy, standing


# -- the public pages --------------------------------------------------------

async def home(request: web.Request) -> web.Response:
    signed_in(request)
    current, policy, _ = _served(request)
    zones = [zone.config for zone in current.zones.values()]
    return page(request, "home.html", {
        "zones": code_table(zones, policy), "errors": ERRORS, "origin": zones[0].origin,
        "examples": query_examples(zones[0].origin), "listing": policy.listing,
    })


def _subject_problem(text: str) -> str | None:
    """What is wrong with a subject as typed, before parsing it (the parser's word comes after)."""
    if not text.strip():
        return "Type an IPv4 or IPv6 address, a network in CIDR notation or a domain."
    if len(text) > MAX_SUBJECT:
        return f"That is {len(text):,} characters long; an address, network or domain has at most {MAX_SUBJECT}."
    if not text.isprintable():
        return "That contains control characters (such as NUL or a line break); type the subject alone."
    return None


def network_view(store: ListingStore, zones, policy, text: str, now: dt.datetime) -> dict:
    """A CIDR: its space, and in every listing zone the listings around or inside it."""
    subject = parse_subject(text)
    found = policy.classification.find(subject.kind, subject.net)
    shown = []
    for zone in zones:
        if zone.serves == "cloud":
            continue
        rows = store.overlapping(zone.origin, subject.kind, subject.net, subject.plen, now)
        listed = sorted({row[3] for row in rows if not row[4]})
        shown.append({"origin": zone.origin, "listed": listed[:MAX_LISTED_SHOWN], "more": max(0, len(listed) - MAX_LISTED_SHOWN)})
    return {"subject": subject.text, "range": None if found is None else {
        "vendor": found.vendor or None, "space": found.space, "cidr": found.cidr}, "zones": shown}


async def lookup(request: web.Request) -> web.Response:
    signed_in(request)
    text = request.query.get("q")
    if text is None:
        return page(request, "lookup.html", {"view": None, "q": ""})
    wrong = _subject_problem(text)
    if wrong:
        # Echoed back in the search box only when it is plain text of a sane length.
        return problem(request, 400, "Not a subject", wrong, q=text if len(text) <= MAX_SUBJECT and text.isprintable() else "")
    current, policy, standing = _served(request)
    zones = [zone.config for zone in current.zones.values()]
    try:
        subject = parse_subject(text.strip())
    except SubjectError as exc:
        return problem(request, 400, "Not a subject", f"{exc}. Type an IPv4 or IPv6 address (192.0.2.1, 2001:db8::1), "
                       "a network (192.0.2.0/24) or a domain (example.com).", q=text)
    reads = request.app[READS]
    if subject.kind != DOMAIN and subject.plen != subject.bits:
        view = await reads.run(lambda store: network_view(store, zones, policy, subject.text, store.clock()))
        return page(request, "network.html", {"view": view, "q": subject.text})

    def read(store: ListingStore) -> dict:
        now = store.clock()
        return lookup_view(explain(subject.text, store, zones, policy, now=now, standing=standing), zones, policy,
                           standing, now)

    view = await reads.run(read)
    return page(request, "lookup.html", {"view": view, "q": subject.text, "serial": current.serial})


async def delist(request: web.Request) -> web.Response:
    """The form under a listed answer: a delisting request into the operator's queue."""
    signed_in(request)
    current, policy, standing = _served(request)
    client = client_key(request.remote)
    rules = policy.listing.delisting
    # Counted before anything else, as the API does: the limit protects the operator's queue.
    wait = request.app[DELIST_LIMITER].take(client, rules.requests_per_hour / 3600, rules.burst)
    if wait:
        seconds = max(1, math.ceil(wait))
        response = problem(request, 429, "Too many requests",
                           f"This address ({client}) sent too many delisting requests: at most {rules.burst} at once "
                           f"and {rules.requests_per_hour} an hour. Try again in {seconds} seconds.")
        response.headers["Retry-After"] = str(seconds)
        return response
    fields = await posted(request, "delist")
    if isinstance(fields, web.Response):
        return fields
    body = {k: fields[k] for k in ("subject", "zone", "reason", "email") if k in fields}
    try:
        wanted = parse_request(body, {zone.config.origin: zone.config.serves for zone in current.zones.values()})
    except DelistError as exc:
        typed = body.get("subject", "")[:MAX_SUBJECT]
        return problem(request, exc.status, "Request not sent", str(exc), q=typed if typed.isprintable() else "")
    zones = [zone.config for zone in current.zones.values()]
    listed = await request.app[READS].run(lambda store: listed_as(store, zones, policy, standing, wanted))
    if not listed["codes"] and not listed["listings"]:
        return problem(request, 404, "Not listed",
                       f"{wanted.subject.text} is not listed in {wanted.zone}: there is nothing to delist.",
                       q=wanted.subject.text)
    made, new = DelistStore(request.app[SERVED].store).create(wanted, client, listed, actor=f"public:{client}")
    return page(request, "requested.html", {"made": made, "new": new, "next": next_steps(made.email)}, 202)


# -- signing in ----------------------------------------------------------------

async def signin_form(request: web.Request) -> web.Response:
    who = signed_in(request)
    back = _local(request.query.get("next"))
    if who is not None and back:
        raise web.HTTPSeeOther(back)
    return page(request, "signin.html", {"next": back or "", "failed": False})


async def signin(request: web.Request) -> web.Response:
    client = client_key(request.remote)
    if request.app[SIGNIN_LIMITER].take(client, SIGNIN_RATE, SIGNIN_BURST):
        return problem(request, 429, "Too many sign-in attempts", f"Too many sign-in attempts from {client}; "
                       "try again in a few minutes.")
    fields = await posted(request, "signin")
    if isinstance(fields, web.Response):
        return fields
    store = request.app[SERVED].store
    token = TokenStore(store).verify(fields.get("token", "").strip())
    back = _local(fields.get("next"))
    if token is None:
        # The token typed is never echoed back, logged or kept.
        return page(request, "signin.html", {"next": back or "", "failed": True}, 401)
    session = SessionStore(store).open(token)
    home = f"/vendors/{quote(token.vendor)}" if token.scope == "vendor" else "/operator"
    response = see_other(back or home)
    response.set_cookie(SESSION, session, httponly=True, samesite="Strict", secure=request.secure, path="/",
                        max_age=int(LIFETIME.total_seconds()))
    return response


async def signout(request: web.Request) -> web.Response:
    fields = await posted(request, "signout")
    if isinstance(fields, web.Response):
        return fields
    SessionStore(request.app[SERVED].store).end(request.cookies.get(SESSION))
    response = see_other("/signin")
    response.del_cookie(SESSION, path="/")
    return response


def _signed_in_as(request: web.Request, vendor: str | None) -> Token:
    """The signed-in token allowed here (``vendor``: that vendor's dashboard; None: the operator's
    queue), or the answer: to sign-in without a session, a refusal page for someone else's."""
    token = signed_in(request)
    if token is None:
        to_signin(request)
    if token.scope == "operator" or (vendor is not None and token.vendor == vendor):
        return token
    what = "the operator's queue" if vendor is None else f"the dashboard of {vendor}"
    raise web.HTTPForbidden(reason=f"Signed in as vendor {token.vendor}: {what} is not yours to open.")


# -- a vendor's dashboard -----------------------------------------------------

def _vendor_name(request: web.Request, policy) -> str:
    name = request.match_info["vendor"]
    if name not in policy.vendors:
        raise web.HTTPNotFound(reason="No such vendor")
    return name


def _history(store: ListingStore, name: str, window: dt.timedelta) -> tuple[list, dt.date, dt.date]:
    today = store.clock().astimezone(dt.timezone.utc).date()
    start = today - dt.timedelta(days=window.days)
    first = VendorHistory(store).first_day(name)
    since = max(min(first or start, start), today - dt.timedelta(days=HISTORY_DAYS))
    return VendorHistory(store).days(name, since), since, today


def space_listings(store: ListingStore, policy, zones: tuple[str, ...], name: str) -> list[dict]:
    """The single addresses listed now in the vendor's space (the newest first, at most a few hundred)."""
    now = store.clock()
    rules = policy.listing.remediation
    columns = store.case_columns(zones, now - rules.window, now, active=True,
                                 within=vendor_spans(policy.classification, [name]))
    ids = {i for i, r in enumerate(policy.classification.ranges) if r is not None and r.vendor == name}
    out = []
    for part in columns:
        address = ipaddress.IPv4Address if part.kind == IP4 else ipaddress.IPv6Address
        owners = range_ids(policy.classification, part.kind, part.addresses)  # the deciding range, as scoring
        for i in range(len(part.addresses)):
            if part.active[i] and int(owners[i]) in ids:
                opened = dt.datetime.fromtimestamp(int(part.opened[i]) // 1_000_000, dt.timezone.utc)
                out.append({"subject": str(address(int(part.addresses[i]))), "opened": opened,
                            "remediated": int(part.remediated[i]) > 0, "disputed": bool(part.disputed[i])})
    out.sort(key=lambda row: row["opened"], reverse=True)
    return out[:MAX_LISTED_SHOWN]


async def vendor(request: web.Request) -> web.Response:
    current, policy, _ = _served(request)
    name = _vendor_name(request, policy)
    _signed_in_as(request, name)
    zones = tuple(zone.config.origin for zone in current.zones.values() if zone.config.serves == "listings")
    rules = policy.listing.remediation

    def read(store: ListingStore) -> dict:
        record = vendor_record(store, policy, zones, name)
        days, since, today = _history(store, name, rules.window)
        now = store.clock()
        for case in record["open_cases"]:
            opened = dt.datetime.fromisoformat(case["opened_at"])
            case["opened"], case["deadline"] = when(opened, now), when(opened + rules.sla, now)
        listed = space_listings(store, policy, zones, name)
        for row in listed:
            row["since"] = when(row["opened"], now)
        return {"record": record, "days": days[-60:], "since": since, "today": today, "listed": listed}

    view = await request.app[READS].run(read)
    return page(request, "vendor.html", {"vendor": name, "rules": rules, **view})


async def vendor_plot(request: web.Request) -> web.Response:
    _, policy, _ = _served(request)
    name = _vendor_name(request, policy)
    _signed_in_as(request, name)
    which = request.match_info["plot"]
    rules = policy.listing.remediation

    def draw(store: ListingStore) -> bytes:
        days, since, today = _history(store, name, rules.window)
        if which == "score":
            return score_plot(days, since, today, rules.cooperative, rules.negligent)
        return listed_plot(days, since, today)

    svg = await request.app[READS].run(draw)
    return web.Response(body=svg, content_type="image/svg+xml", headers={"Content-Security-Policy": SVG_CSP})


# -- the operator's queue ---------------------------------------------------------

async def operator(request: web.Request) -> web.Response:
    _signed_in_as(request, None)
    _served(request)
    queue = DelistStore(request.app[SERVED].store)
    now = request.app[SERVED].store.clock()
    rows = [{"row": row, "since": when(row.created_at, now)} for row in queue.list("open")]
    shown = request.query.get("closed", "")  # the one just closed, named at the top
    closed = queue.get(int(shown)) if shown.isascii() and shown.isdigit() and len(shown) < 18 else None
    return page(request, "operator.html", {
        "requests": [r for r in rows if r["row"].kind == "request"],
        "disputes": [r for r in rows if r["row"].kind == "dispute"], "closed": closed,
        "failing": _failing(request)})


def _age(seconds: float) -> str:
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{int(seconds // size)} {unit} old"
    return f"{int(seconds)} seconds old"


def _failing(request: web.Request) -> list[dict]:
    """The vendors' notice channels down past their limit, in words."""
    outbox = Outbox(request.app[SERVED].store)
    written, figures = channel_figures(outbox, request.app[SERVED].source.policy, time.time())
    out = []
    for c in figures:
        if c.failing:
            state = outbox.channel(c.vendor, c.channel)
            out.append({"vendor": c.vendor, "channel": c.channel, "waiting": written.get(c.vendor, 0) - c.delivered,
                        "oldest": _age(c.oldest_undelivered or 0.0), "attempts": c.attempts,
                        "error": state.last_error})
    return out


async def operator_close(request: web.Request) -> web.Response:
    token = _signed_in_as(request, None)
    fields = await posted(request, "close")
    if isinstance(fields, web.Response):
        return fields
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise web.HTTPNotFound(reason="No such request")
    try:
        resolution, note = parse_close({"resolution": fields.get("resolution"), "note": fields.get("note", "")})
    except DelistError as exc:
        return problem(request, 400, "Not closed", str(exc))
    try:
        # The same audited path as rbl delist close and the API, under the signed-in operator's token.
        DelistStore(request.app[SERVED].store).close(int(text), resolution, note, f"operator token:{token.id}")
    except NoSuchRequest as exc:
        return problem(request, 404, "Not closed", str(exc))
    except (AlreadyClosed, StillListed) as exc:
        return problem(request, 409, "Not closed", str(exc))
    return see_other(f"/operator?closed={int(text)}")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name != "rbl.css":
        raise web.HTTPNotFound()
    return web.Response(body=(HERE / "static" / name).read_bytes(), content_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})


def add_pages(app: web.Application) -> None:
    """The pages beside the API of :func:`rbl.http.app.make_app` with its state (before the
    application starts)."""
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=jinja2.select_autoescape(default=True), undefined=jinja2.StrictUndefined)
    env.globals["describe_code"] = describe_code
    app.middlewares.append(html_errors)
    app.on_response_prepare.append(security_headers)
    app[SIGNIN_LIMITER] = RateLimiter()
    app[FORM_KEY] = SessionStore(app[SERVED].store).form_key()
    app.router.add_get("/", home)
    app.router.add_get("/lookup", lookup)
    app.router.add_post("/lookup/delist", delist)
    app.router.add_get("/signin", signin_form)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
    app.router.add_get("/vendors/{vendor}", vendor)
    app.router.add_get("/vendors/{vendor}/{plot:score|listed}.svg", vendor_plot)
    app.router.add_get("/operator", operator)
    app.router.add_post("/operator/requests/{id}/close", operator_close)
    app.router.add_get("/static/{name}", static)
