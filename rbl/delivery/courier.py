"""The courier: in ``rbl serve``, delivers each vendor's outbox to its webhook and abuse desk.

One task per vendor and channel (``notify:`` in the vendor's file, read again as
the policy changes) reads the events after the channel's delivered id, sends
them, and moves the id only once the receiver accepted them. So delivery is at
least once and in id order, per vendor, across restarts (the id is in the
store); a receiver dedupes by id. A failed attempt (an error status, a timeout,
a refused connection, an SMTP error) is retried after a backoff that doubles
from one second up to the channel's ``retry_max``, with jitter so vendors that
failed together do not retry together; nothing is dropped while it waits. A
channel down for longer than ``failing_after`` is *failing* in ``/metrics`` and
on the operator's page, and said once in the log.

Every store access runs in the courier's one thread on its own connection:
a big import holding the write lock stalls the courier, never the primary's loop.
The same thread writes the events time causes (:func:`rbl.policy.notices.observe`):
expiries, tiers and escalations about once a second, overdue cases every tenth of the
SLA (at least every 30 s), and prunes delivered events past KEEP_SECONDS hourly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rbl import __version__
from rbl.delivery.digest import digest
from rbl.delivery.signing import HEADER, sign
from rbl.errors import ConfigError
from rbl.metrics import ChannelFigures
from rbl.policy.notices import observe, overdue_every
from rbl.policy.notify import Notify
from rbl.policy.standing import Standing
from rbl.policy.vendors import Policy
from rbl.store import ListingStore
from rbl.store.outbox import ChannelState, Outbox

log = logging.getLogger("rbl")
T = TypeVar("T")

POLL_SECONDS = 0.02  # how often the store is asked for new events (a primary-key probe per vendor)
IDLE_SECONDS = 0.5  # an idle channel looks again at least this often (backoff and digest timers)
OBSERVE_SECONDS = 1.0  # how often expiries, overdue cases, tiers and dense ranges are looked at
WEBHOOK_BATCH = 500  # events in one POST
# At most one POST per vendor this often while events flow: at 100 events a second one POST each
# cost DNS on a shared core a tenth of its qps (bench/notices.py), batched a few per cent.
WEBHOOK_PACE = 0.1
DIGEST_BATCH = 10_000  # events in one email
FIRST_RETRY = 1.0  # seconds; doubled per failed attempt up to the channel's retry_max
KEEP_SECONDS = 30 * 86400  # delivered events are kept this long for the pull feed, then pruned
PRUNE_SECONDS = 3600.0  # how often
EMAIL_FAILING_AFTER = 3600.0  # a relay down this long: the vendor's digests are failing


@dataclass(frozen=True)
class Relay:
    """The SMTP relay digests go through (``rbl serve --smtp``)."""

    host: str
    port: int = 25
    starttls: bool = False
    credentials: Path | None = None  # a file: user and password, on one line as user:password
    sender: str = ""

    def login(self) -> tuple[str, str] | None:
        if self.credentials is None:
            return None
        try:
            text = self.credentials.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the SMTP credentials: {exc.strerror}", str(self.credentials)) from None
        user, sep, password = text.partition(":") if ":" in text.splitlines()[0] else text.partition("\n")
        if not sep or not user or not password:
            raise ConfigError("SMTP credentials: one line, user:password", str(self.credentials), 1)
        return user, password.strip()

    def from_address(self) -> str:
        return self.sender or f"rbl@{socket.getfqdn()}"


def backoff(retries: int, cap: float, rng: random.Random = random) -> float:
    """Seconds before attempt ``retries + 1``: doubling from FIRST_RETRY, capped, then a random
    share of it between a half and all ("equal jitter": spread out, never much shorter)."""
    delay = min(cap, FIRST_RETRY * 2 ** max(0, retries - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


class Courier:
    """Delivers the outbox while ``rbl serve`` runs (:meth:`run`)."""

    def __init__(self, db: str, policy: Callable[[], Policy | None], relay: Relay | None = None,
                 standing: Callable[[], tuple[Standing | None, dict | None, tuple[str, ...]]] | None = None):
        self.db_path = db
        self.policy = policy
        self.relay = relay
        # The vendors' standing, the dense ranges of the last compile and the zones that
        # serve listings: what the time-driven events compare with.
        self.standing = standing or (lambda: (None, None, ()))
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rbl-courier")
        self._store: ListingStore | None = None
        self._warned: set[tuple[str, str]] = set()
        self._failing: set[tuple[str, str]] = set()  # said to be failing in the log, until delivered again
        self._wake: dict[tuple[str, str], asyncio.Event] = {}  # set when the channel's vendor has news
        self._retry_at: dict[tuple[str, str], float] = {}  # the next attempt of a failing channel

    async def _db(self, work: Callable[[Outbox], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: work(self._outbox))

    def _open(self) -> None:
        self._store = ListingStore(self.db_path)
        self._outbox = Outbox(self._store)

    async def run(self) -> None:
        """Deliver until cancelled."""
        import aiohttp  # only rbl serve delivers: aiohttp costs a fifth of a second of a start

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._open)
        tasks: dict[tuple[str, str], asyncio.Task] = {}
        observed = pruned = overdue = 0.0
        watcher = asyncio.create_task(self._watch())
        try:
            async with aiohttp.ClientSession() as session:
                while True:
                    policy = self.policy()
                    wanted = set()
                    for vendor in (policy.vendors.values() if policy is not None else ()):
                        if vendor.notify is not None:
                            wanted |= {(vendor.name, "webhook")} if vendor.notify.webhook else set()
                            wanted |= {(vendor.name, "email")} if vendor.notify.email else set()
                    for key in sorted(wanted - set(tasks)):
                        tasks[key] = asyncio.create_task(self._channel(*key, session))
                    for key in sorted(set(tasks) - wanted):
                        tasks.pop(key).cancel()
                    if policy is not None and time.monotonic() - observed >= OBSERVE_SECONDS:
                        observed = time.monotonic()
                        due = time.monotonic() - overdue >= overdue_every(policy)
                        overdue = time.monotonic() if due else overdue
                        await self._observe(policy, due)
                    if policy is not None and time.monotonic() - pruned >= PRUNE_SECONDS:
                        pruned = time.monotonic()
                        await self._prune(policy)
                    await asyncio.sleep(0.2)
        finally:
            for task in [*tasks.values(), watcher]:
                task.cancel()
            await asyncio.gather(*tasks.values(), watcher, return_exceptions=True)
            await loop.run_in_executor(self._pool, self._close)
            self._pool.shutdown(wait=True)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()

    async def _observe(self, policy: Policy, overdue: bool) -> None:
        standing, dense, zones = self.standing()
        try:
            await self._db(lambda outbox: observe(outbox.store, policy, zones, outbox.store.clock(), standing, dense,
                                                  overdue))
        except Exception:  # the next look tries again; delivery goes on meanwhile
            log.exception("notices: looking for expiries, overdue cases and tier changes failed")

    async def _prune(self, policy: Policy) -> None:
        channels: dict[str, list[str]] = {}
        for vendor, channel in configured(policy):
            channels.setdefault(vendor, []).append(channel)
        try:
            removed = await self._db(lambda outbox: outbox.prune(int(time.time() - KEEP_SECONDS), channels))
        except Exception:
            log.exception("notices: pruning old delivered events failed")
            return
        if removed:
            log.info("notices: %d delivered events older than %d days pruned", removed, KEEP_SECONDS // 86400)

    def _notify(self, vendor: str) -> Notify | None:
        policy = self.policy()
        info = policy.vendors.get(vendor) if policy is not None else None
        return info.notify if info is not None else None

    async def _watch(self) -> None:
        """Wake the channels of each vendor whose newest event id moved (whoever wrote it: this
        server, the CLI, an import): one probe per vendor every POLL_SECONDS for all channels."""
        seen: dict[str, int] = {}
        while True:
            await asyncio.sleep(POLL_SECONDS)
            vendors = sorted({vendor for vendor, _ in self._wake})
            try:
                newest = await self._db(lambda o: o.newest_of(vendors))
            except Exception:
                log.exception("notices: reading the outbox failed; trying again")
                await asyncio.sleep(1)
                continue
            for (vendor, _channel), wake in self._wake.items():
                if newest.get(vendor) != seen.get(vendor):
                    wake.set()
            seen = newest

    async def _channel(self, vendor: str, channel: str, session) -> None:
        wake = self._wake.setdefault((vendor, channel), asyncio.Event())
        try:
            await self._loop(vendor, channel, session, wake)
        finally:
            self._wake.pop((vendor, channel), None)

    async def _loop(self, vendor: str, channel: str, session, wake: asyncio.Event) -> None:
        while True:
            wake.clear()
            try:
                sent = await self._once(vendor, channel, session)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notices to %s by %s: unexpected error; trying again", vendor, channel)
                sent = False
                await asyncio.sleep(1)
            if not sent:
                idle = IDLE_SECONDS
                if (vendor, channel) in self._retry_at:  # a retry due sooner: wake for it
                    idle = min(idle, max(0.01, self._retry_at[(vendor, channel)] - time.time()))
                try:
                    await asyncio.wait_for(wake.wait(), idle)
                except asyncio.TimeoutError:
                    pass

    async def _once(self, vendor: str, channel: str, session) -> bool:
        """One delivery attempt when one is due; True when something was delivered."""
        notify = self._notify(vendor)
        if notify is None:
            return False
        state, newest = await self._db(lambda o: (o.channel(vendor, channel), o.newest(vendor)))
        now = time.time()
        if state.delivered >= newest or (state.next_at is not None and now < state.next_at):
            return False
        if channel == "email":
            if self.relay is None:
                if (vendor, channel) not in self._warned:
                    self._warned.add((vendor, channel))
                    log.warning("notices to %s by email wait: rbl serve was given no --smtp relay", vendor)
                return False
            every = notify.email.every.total_seconds()
            if state.retries == 0 and state.delivered_at is not None and now < state.delivered_at + every:
                return False  # one digest per `every` at most
            events = await self._db(lambda o: o.events(vendor, state.delivered, DIGEST_BATCH))
            error = await asyncio.get_running_loop().run_in_executor(None, self._mail, vendor, notify, events)
            cap = min(notify.email.every.total_seconds(), 600.0)
            failing_after = EMAIL_FAILING_AFTER
        else:
            if state.retries == 0 and state.delivered_at is not None and now < state.delivered_at + WEBHOOK_PACE \
                    and newest - state.delivered < WEBHOOK_BATCH:
                # Events trickling in: gather them for a moment, one POST for many (the first after
                # a quiet spell goes at once, and a backlog goes batch after batch).
                self._retry_at[(vendor, channel)] = state.delivered_at + WEBHOOK_PACE
                return False
            events = await self._db(lambda o: o.events(vendor, state.delivered, WEBHOOK_BATCH))
            error = await self._post(session, vendor, notify, events)
            cap = notify.webhook.retry_max.total_seconds()
            failing_after = notify.webhook.failing_after.total_seconds()
        if error is None:
            await self._db(lambda o: o.delivered(vendor, channel, events[-1]["id"], time.time()))
            self._failing.discard((vendor, channel))
            self._retry_at.pop((vendor, channel), None)  # (a pacing wait sets it again)
            if state.retries:
                log.info("notices to %s by %s delivered again after %d failed attempts", vendor, channel,
                         state.retries)
            return True
        delay = backoff(state.retries + 1, cap)
        self._retry_at[(vendor, channel)] = now + delay
        after = await self._db(lambda o: o.failed(vendor, channel, error, now, now + delay))
        if is_failing(after, now, failing_after) and (vendor, channel) not in self._failing:
            self._failing.add((vendor, channel))
            log.error("notices to %s by %s failing: down since %s: %s; events wait, none is dropped",
                      vendor, channel, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(after.down_since)), error)
        else:
            log.warning("notices to %s by %s: %s; attempt %d, next in %.1f s", vendor, channel, error,
                        after.retries, delay)
        return False

    async def _post(self, session, vendor: str, notify: Notify, events: list[dict]) -> str | None:
        """POST one signed batch; None when the receiver accepted it (2xx), else what went wrong."""
        import json

        import aiohttp

        hook = notify.webhook
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        try:
            secret = hook.secret()
        except OSError as exc:
            return f"secret_file {hook.secret_file}: {exc.strerror}"
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", HEADER: sign(secret, stamp, body),
                   "User-Agent": f"rbl/{__version__}", "Rbl-Vendor": vendor}
        try:
            async with session.post(hook.url, data=body, headers=headers, allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=hook.timeout.total_seconds())) as response:
                await response.content.read(65536)
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except asyncio.TimeoutError:
            return f"no answer within {hook.timeout.total_seconds():g} s"
        except (aiohttp.ClientError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"

    def _mail(self, vendor: str, notify: Notify, events: list[dict]) -> str | None:
        """Send one digest (in a thread: smtplib blocks); None when the relay accepted it."""
        relay = self.relay
        policy = self.policy()
        title = policy.vendors[vendor].title if policy is not None and vendor in policy.vendors else vendor
        sender = relay.from_address()
        message = digest(vendor, title, events, sender, notify.email.to, sender.rpartition("@")[2] or "rbl")
        try:
            login = relay.login()
            with smtplib.SMTP(relay.host, relay.port, timeout=30) as smtp:
                if relay.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if login is not None:
                    smtp.login(*login)
                smtp.send_message(message, from_addr=sender, to_addrs=[notify.email.to])
        except ConfigError as exc:
            return str(exc)
        except (smtplib.SMTPException, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None


def configured(policy: Policy | None) -> dict[tuple[str, str], float]:
    """Every (vendor, channel) the policy names, with its failing_after in seconds."""
    out = {}
    for vendor in (policy.vendors.values() if policy is not None else ()):
        notify = vendor.notify
        if notify is not None and notify.webhook is not None:
            out[(vendor.name, "webhook")] = notify.webhook.failing_after.total_seconds()
        if notify is not None and notify.email is not None:
            out[(vendor.name, "email")] = EMAIL_FAILING_AFTER
    return out


def channel_figures(outbox: Outbox, policy: Policy | None, now: float,
                    vendor: str | None = None) -> tuple[dict[str, int], list[ChannelFigures]]:
    """Events written per vendor, and each configured channel's figures (for one ``vendor``, or all)."""
    written = outbox.newest_of(sorted(policy.vendors) if policy is not None else [])
    states = {(c.vendor, c.channel): c for c in outbox.channels()}
    figures = []
    for (name, channel), failing_after in sorted(configured(policy).items()):
        if vendor is not None and name != vendor:
            continue
        state = states.get((name, channel)) or outbox.channel(name, channel)
        oldest = None
        if written.get(name, 0) > state.delivered:
            at = outbox.at_of(name, state.delivered + 1)
            oldest = max(0.0, now - at) if at is not None else None
        figures.append(ChannelFigures(name, channel, state.delivered, state.attempts, oldest,
                                      is_failing(state, now, failing_after)))
    if vendor is not None:
        written = {vendor: written.get(vendor, 0)}
    return written, figures


def is_failing(state: ChannelState, now: float, failing_after: float) -> bool:
    """Whether a channel has been down longer than ``failing_after`` seconds."""
    return state.down_since is not None and now - state.down_since >= failing_after
