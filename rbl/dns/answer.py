"""Answering: a packet and the current snapshot in, reply bytes out. No sockets here."""

from __future__ import annotations

import logging

from rbl.dns.clients import ClientGate
from rbl.dns.counts import QueryCounts
from rbl.dns.general import general_answer
from rbl.dns.keys import KeyTable
from rbl.dns.wire import HotAnswer, SnapshotWire, build_snapshot_wire, template_answer
from rbl.transfer.respond import TransferResponder
from rbl.zone.snapshot import Snapshot

log = logging.getLogger(__name__)

# What queries are answered from: the snapshot, its templates and their hot path.
# A plain tuple, replaced whole, so a query never sees a new snapshot with old
# templates; read by unpacking, which costs less per query than a NamedTuple's.
Serving = tuple[Snapshot, SnapshotWire, HotAnswer | None]


def _serving(snapshot: Snapshot, keys: KeyTable) -> Serving:
    wires = build_snapshot_wire(snapshot, keys)
    return snapshot, wires, wires.hot


def _rate_limit(snapshot: Snapshot):
    """The server's one rate limit (rbl.zone.config.load_zones checks that zone files agree)."""
    return next((z.config.rate_limit for z in snapshot.zones.values() if z.config.rate_limit is not None), None)


class Responder:
    """Holds the snapshot being served; :meth:`use` swaps in a new one atomically.

    Every answered query is counted (see :mod:`rbl.dns.counts`): the fast paths
    in the current templates' hit lists, the general path in ``counts``.
    """

    def __init__(self, snapshot: Snapshot, transfers: TransferResponder | None = None,
                 keys: KeyTable | None = None, resolvers: list[str] | tuple[str, ...] = ()):
        self.keys = keys if keys is not None else KeyTable()
        self._serving: Serving = _serving(snapshot, self.keys)
        self.counts = QueryCounts()
        self.transfers = transfers  # zone transfers and TSIG-signed queries; None: refused
        self.resolvers = tuple(resolvers)
        # Per client network: public resolver or not, and RRL (the batch loop's; TCP asks it too).
        self.gate = ClientGate(_rate_limit(snapshot), self.resolvers)

    @property
    def snapshot(self) -> Snapshot:
        snapshot, _wires, _hot_answer = self._serving
        return snapshot

    @property
    def wires(self) -> SnapshotWire:
        _snapshot, wires, _hot_answer = self._serving
        return wires

    @property
    def hot(self) -> HotAnswer | None:
        """The current snapshot's hot path (see :func:`rbl.dns.wire.make_hot_answer`)."""
        _snapshot, _wires, hot_answer = self._serving
        return hot_answer

    def use(self, snapshot: Snapshot) -> None:
        old = self.wires
        self._serving = _serving(snapshot, self.keys)  # one assignment: see Serving
        self.counts.fold(old.values())  # the old answer tables say what the old hits mean
        if _rate_limit(snapshot) != self.gate.limit:
            self.gate = ClientGate(_rate_limit(snapshot), self.resolvers)

    def use_access(self, keys: list[dict], resolvers: list[str] | tuple[str, ...]) -> None:
        """A new key table and list of public resolvers (the primary's access file)."""
        self.keys.replace(keys)
        if tuple(resolvers) != self.resolvers:
            self.resolvers = tuple(resolvers)
            self.gate = ClientGate(self.gate.limit, self.resolvers)

    def totals(self) -> dict:
        """Every query answered so far, by (zone, rcode, codes)."""
        self.counts.fold(self.wires.values())
        return self.counts.totals

    @property
    def needs_client(self) -> bool:
        """Whether any zone's answers depend on who asks (access rules)."""
        return any(zone.config.access for zone in self.snapshot.zones.values())

    def respond(self, data: bytes, udp: bool = True, client: str | None = None,
                resolver: bool = False) -> bytes | None:
        """The reply to one DNS message from client (an address; ``resolver``: a public
        resolver's), or None to stay silent."""
        snapshot, wires, hot_answer = self._serving
        try:
            if not resolver:  # a resolver's queries are the general path's: it alone knows what they get
                if hot_answer is not None:
                    reply = hot_answer(data)
                    if reply is not None:
                        return reply
                reply = template_answer(data, snapshot, wires, udp)
                if reply is not None:
                    return reply
            return general_answer(data, snapshot, udp, client, self.counts, self.transfers, self.keys, resolver)
        except Exception:  # a packet must never take the server down
            log.exception("unexpected error answering a %d-byte packet", len(data))
            return None
