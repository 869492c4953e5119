"""Answering: a packet and the current snapshot in, reply bytes out. No sockets here."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rbl.dns.counts import QueryCounts
from rbl.dns.general import general_answer
from rbl.transfer.respond import TransferResponder
from rbl.dns.wire import Wires, build_wires, fast_answer_rest
from rbl.zone.snapshot import Snapshot

log = logging.getLogger(__name__)


class Responder:
    """Holds the snapshot being served; :meth:`use` swaps in a new one atomically.

    Every answered query is counted (see :mod:`rbl.dns.counts`): the fast paths
    in the current templates' hit lists, the general path in ``counts``.
    """

    def __init__(self, snapshot: Snapshot, transfers: TransferResponder | None = None):
        self._current: tuple[Snapshot, Wires, Callable | None] = self._state(snapshot)
        self.counts = QueryCounts()
        self.transfers = transfers  # zone transfers and TSIG-signed queries; None: refused

    @staticmethod
    def _state(snapshot: Snapshot) -> tuple[Snapshot, Wires, Callable | None]:
        wires = build_wires(snapshot)
        return snapshot, wires, wires.hot

    @property
    def snapshot(self) -> Snapshot:
        return self._current[0]

    @property
    def wires(self) -> Wires:
        return self._current[1]

    def use(self, snapshot: Snapshot) -> None:
        old = self._current[1]
        # One assignment, so a query never sees a new snapshot with old templates.
        self._current = self._state(snapshot)
        self.counts.fold(old.values())  # the old answer tables say what the old hits mean

    def totals(self) -> dict:
        """Every query answered so far, by (zone, rcode, codes)."""
        self.counts.fold(self._current[1].values())
        return self.counts.totals

    @property
    def hot(self) -> Callable[[bytes], bytes | None] | None:
        """The current snapshot's hot path (see :func:`rbl.dns.wire.hot_path`)."""
        return self._current[2]

    @property
    def needs_client(self) -> bool:
        """Whether any zone's answers depend on who asks (access rules)."""
        return any(zone.config.access for zone in self._current[0].zones.values())

    def respond(self, data: bytes, udp: bool = True, client: str | None = None) -> bytes | None:
        """The reply to one DNS message from client (an address), or None to stay silent."""
        snapshot, wires, hot = self._current
        try:
            if hot is not None:
                reply = hot(data)
                if reply is not None:
                    return reply
            reply = fast_answer_rest(data, snapshot, wires, udp)
            if reply is None:
                reply = general_answer(data, snapshot, udp, client, self.counts, self.transfers)
            return reply
        except Exception:  # a packet must never take the server down
            log.exception("unexpected error answering a %d-byte packet", len(data))
            return None
