"""Exports for mirrors: rbldnsd data files and RFC 1035 zone files, from a snapshot.

``DIR/<origin>.rbldnsd`` is one rbldnsd ``combined`` dataset per zone, holding
its sub-zones too; ``DIR/<origin>.zone`` is a master file any authoritative
server loads. Both are written to a temporary file in DIR and renamed into
place, so rsync or a running server never sees half a file.

How the rbldnsd file says exactly what rbl answers: rbldnsd asks every
dataset of a (sub)zone and adds every A record they give (once each), so a
zone's answers are split by code: one ``ip4trie`` (``ip6trie``, ``dnset``)
section per code, listing the space whose answers carry that code, as
disjoint CIDRs (nothing overlaps, so longest-prefix rules never come into
play). Each entry carries its answer's TXT template, the same in every
section, so rbldnsd's duplicate check leaves one TXT record. Domains keep the
nesting rbldnsd understands (``name``, ``*.name``, ``.name``, ``!`` exclusions).

A tenant zone is two ``dnset`` sections: the implicated pairs as names, and in
shared space the bystander wildcard below each address, with the implicated
names excluded from it (``!name``). rbldnsd looks an exact name up before the
longest wildcard above it, so nothing more is needed for the names below an
identity or its parents. The TXT is written per address, literally: in a
dnset rbldnsd's ``$`` would be the whole name asked, not the address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from rbl.errors import ExportError
from rbl.files import replaced
from rbl.zone.records import (
    IP4_BITS, IP6_BITS, cidrs, domain_nodes, ip4_runs, ip6_runs, project, tenant_addresses, zone_records,
)
from rbl.zone.snapshot import Answer, Snapshot, ZoneSnapshot
from rbl.zone.tenant import BYSTANDER, IMPLICATED, TenantZone

log = logging.getLogger("rbl")

FORMATS = ("rbldnsd", "zonefile")
SUFFIX = {"rbldnsd": ".rbldnsd", "zonefile": ".zone"}
RBLDNSD_TXT_MAX = 254  # rbldnsd cuts a TXT longer than this (one character-string)
_OCTETS = [str(i) for i in range(256)]


# -- rbldnsd ---------------------------------------------------------------------


def rbldnsd_template(answer: Answer, origin: str) -> str:
    """An answer's TXT as an rbldnsd template: ``$`` is the subject, ``$$`` a dollar.

    :raises ExportError: for a TXT rbldnsd cannot say the same way.
    """
    if answer.txt is None or answer.txt == ("",):
        return ""
    for part in answer.txt[1:]:
        if part[:1].isdigit():
            raise ExportError(f"zone {origin}: TXT {_show(answer)} has a digit right after $, which rbldnsd "
                              "reads as a substitution variable ($1..$9); put a space or other character there")
    text = "$".join(part.replace("$", "$$") for part in answer.txt)
    if len(text) > RBLDNSD_TXT_MAX or any(not 0x20 <= ord(c) < 0x7F for c in text) or text[0] in " \t#":
        raise ExportError(f"zone {origin}: TXT {_show(answer)} cannot be an rbldnsd template (at most "
                          f"{RBLDNSD_TXT_MAX} printable ASCII characters, not starting with a space or #)")
    return text


def _show(answer: Answer) -> str:
    return repr("$".join(answer.txt or ()))


def _code_keys(zone: ZoneSnapshot) -> list[tuple[str, np.ndarray, list[str]]]:
    """Per code: a table from answer index to a TXT key (0: the code is not in the answer), and the TXTs."""
    origin = zone.config.origin
    codes = sorted({code for answer in zone.answers if answer is not None for code in answer.codes},
                   key=lambda c: tuple(int(x) for x in c.split(".")))
    templates: list[str] = []
    numbers: dict[str, int] = {}
    per_answer = [0] * len(zone.answers)
    for index, answer in enumerate(zone.answers):
        if answer is None:
            continue
        text = rbldnsd_template(answer, origin)
        if text not in numbers:
            numbers[text] = len(templates) + 1
            templates.append(text)
        per_answer[index] = numbers[text]
    out = []
    for code in codes:
        table = np.array([per_answer[i] if a is not None and code in a.codes else 0
                          for i, a in enumerate(zone.answers)], dtype=np.int64)
        out.append((code, table, templates))
    return out


def _ip4_texts(nets: np.ndarray, plens: np.ndarray) -> list[str]:
    out = []
    for net, plen in zip(nets.tolist(), plens.tolist()):
        text = f"{_OCTETS[net >> 24]}.{_OCTETS[net >> 16 & 255]}.{_OCTETS[net >> 8 & 255]}.{_OCTETS[net & 255]}"
        out.append(text if plen == 32 else f"{text}/{plen}")
    return out


def _ip6_texts(nets: np.ndarray, plens: np.ndarray) -> list[str]:
    import ipaddress

    return [f"{ipaddress.IPv6Address(net)}/{plen}" for net, plen in zip(nets.tolist(), plens.tolist())]


def _entries_by_template(keys: np.ndarray, texts: list[str], templates: list[str], code: str) -> Iterator[str]:
    """Entries grouped by TXT template: one ``:A:TXT`` default line per group, then bare entries."""
    if not len(keys):
        return
    order = np.argsort(keys, kind="stable")
    keys_sorted = keys[order]
    bounds = np.flatnonzero(np.diff(keys_sorted)) + 1
    for group in np.split(np.arange(len(keys)), bounds):
        key = int(keys_sorted[group[0]])
        yield f":{code}:{templates[key - 1]}"
        positions = order[group]
        positions.sort()
        for position in positions.tolist():
            yield texts[position]


def rbldnsd_lines(snapshot: Snapshot, origin: str) -> Iterator[str]:
    """The combined dataset of zone ``origin`` and its sub-zones, line by line.

    :raises ExportError: when a TXT cannot be an rbldnsd template.
    """
    zones = sorted((z for z in snapshot.zones.values() if z.config.origin == origin or z.config.apex == origin),
                   key=lambda z: (bool(z.config.apex), z.config.origin))
    config = zones[0].config
    soa = config.soa
    yield f"# {origin}: rbl snapshot {snapshot.serial}, written by rbl export rbldnsd; do not edit"
    yield f"# serve it: rbldnsd ... {origin}:combined:{origin}.rbldnsd"
    yield (f"$SOA {soa.ttl} {soa.mname} {soa.rname} {snapshot.serial} {soa.refresh} {soa.retry} {soa.expire} "
           f"{config.negative_ttl}")
    yield f"$NS {config.ns_ttl} {' '.join(config.ns)}"
    glue = [(host, address) for host in config.ns for address in config.glue.get(host, ()) if ":" not in address]
    if glue:
        # In-zone glue as rbl serves it (rbldnsd's generic dataset has no AAAA).
        yield "$DATASET generic:glue @"
        for host, address in glue:
            yield f"{host[: -len(origin) - 1]} {config.ns_ttl} A {address}"
    for zone in zones:
        if isinstance(zone, TenantZone):
            yield from _tenant_sections(zone, zone.config.origin[: -len(origin) - 1])
            continue
        yield from _zone_sections(zone, zone.config.origin[: -len(origin) - 1] if zone.config.apex else "@",
                                  [z.config.origin[: -len(origin) - 1] for z in zones if z.config.apex]
                                  if not zone.config.apex else [])


def _zone_sections(zone: ZoneSnapshot, subzone: str, skip: list[str]) -> Iterator[str]:
    ttl = zone.config.ttl
    ip4 = ip4_runs(zone)
    ip6 = ip6_runs(zone)  # rbldnsd answers ::ffff:0:0/96 from the IPv4 data itself, as rbl does
    nodes = [n for n in domain_nodes(zone) if not any(n.name == s or n.name.endswith("." + s) for s in skip)]
    for code, table, templates in _code_keys(zone):
        for kind, runs, bits, texts in (("ip4trie", ip4, IP4_BITS, _ip4_texts), ("ip6trie", ip6, IP6_BITS, _ip6_texts)):
            nets, plens, keys = cidrs(*project(*runs, table), bits)
            if len(nets):
                yield f"$DATASET {kind}:{code} {subzone}"
                yield f"$TTL {ttl}"
                yield from _entries_by_template(keys, texts(nets, plens), templates, code)
        lines = list(_dnset_entries(nodes, table, templates, code))
        if lines:
            yield f"$DATASET dnset:{code} {subzone}"
            yield f"$TTL {ttl}"
            yield from lines


def _dnset_entries(nodes, table: np.ndarray, templates: list[str], code: str) -> Iterator[str]:
    """dnset lines for one code: a name where its answer differs from what covers it from above,
    ``*.name`` where the answer below differs; ``.name`` for both alike, ``!`` for unlisted."""

    def value(key: int) -> str:
        return f":{code}:{templates[key - 1]}" if templates[key - 1] else f":{code}:"

    for node in nodes:
        exact, below, above = int(table[node.exact]), int(table[node.below]), int(table[node.parent_below])
        if exact != above and below != above and exact == below:
            yield f".{node.name} {value(exact)}" if exact else f"!.{node.name}"
            continue
        if exact != above:
            yield f"{node.name} {value(exact)}" if exact else f"!{node.name}"
        if below != above:
            yield f"*.{node.name} {value(below)}" if below else f"!*.{node.name}"


def _literal(answer: Answer, subject: str, origin: str) -> str:
    """An answer's TXT for one subject as an rbldnsd value with no substitution in it."""
    text = answer.text(subject)
    return "" if not text else rbldnsd_template(Answer(answer.codes, (text,)), origin)


def _tenant_sections(zone: TenantZone, subzone: str) -> Iterator[str]:
    origin = zone.config.origin
    for value in (IMPLICATED, BYSTANDER):
        answer = zone.answers[value]
        (code,) = answer.codes
        lines = []
        for kind in ("ip4", "ip6"):
            for entry in tenant_addresses(zone, kind):
                if value == BYSTANDER and not entry.shared:
                    continue
                implicated = [name for name, found in entry.names.items() if found == IMPLICATED]
                lines.append(f":{code}:{_literal(answer, entry.address, origin)}")
                if value == IMPLICATED:
                    lines.extend(f"{name}.{entry.reverse}" for name in implicated)
                else:
                    lines.append(f"*.{entry.reverse}")
                    lines.extend(f"!{name}.{entry.reverse}" for name in implicated)
        if lines:
            yield f"$DATASET dnset:{code} {subzone}"
            yield f"$TTL {zone.config.ttl}"
            yield from lines


# -- zone files -------------------------------------------------------------------


def zonefile_lines(snapshot: Snapshot, origin: str, mapped: bool | None = None) -> Iterator[str]:
    """An RFC 1035 master file of zone ``origin`` and its sub-zones."""
    yield f"; {origin}: rbl snapshot {snapshot.serial}, written by rbl export zonefile; do not edit"
    yield f"$ORIGIN {origin}."
    last_name, last_ttl = None, None
    for name, ttl, rtype, rdata in zone_records(snapshot, origin, mapped):
        if ttl != last_ttl:
            yield f"$TTL {ttl}"
            last_ttl = ttl
        owner = "" if name == last_name else name  # a blank owner repeats the last one
        last_name = name
        yield f"{owner}\t{rtype}\t{rdata}"


# -- files ------------------------------------------------------------------------


def write_atomically(path: Path, lines: Iterable[str]) -> int:
    """Write lines to a temporary file beside ``path``, then rename it there; returns the size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0o644: mirrors and servers running as other users read it.
    with replaced(path, 0o644) as out:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 65536:
                out.write(("\n".join(batch) + "\n").encode("ascii"))
                batch = []
        if batch:
            out.write(("\n".join(batch) + "\n").encode("ascii"))
    return path.stat().st_size


def export(snapshot: Snapshot, fmt: str, directory: Path) -> list[tuple[Path, int]]:
    """Write every zone of the snapshot in one format; returns (path, size) per file.

    :raises ExportError: when a zone cannot be written exactly; files already
        written stay, the one that failed keeps its previous version.
    """
    directory = Path(directory)
    origins = sorted(z.config.origin for z in snapshot.zones.values() if not z.config.apex)
    written = []
    for origin in origins:
        path = directory / f"{origin}{SUFFIX[fmt]}"
        if fmt == "rbldnsd":
            lines = rbldnsd_lines(snapshot, origin)
        else:
            lines = zonefile_lines(snapshot, origin)
        written.append((path, write_atomically(path, lines)))
    return written


def watch(build: Callable[[], Snapshot | None], write: Callable[[Snapshot], None], interval: float,
          poll: float = 0.1, stop: Callable[[], bool] = lambda: False) -> None:
    """Call ``write`` with each new snapshot ``build`` returns (None: nothing changed).

    At most one write per ``interval`` seconds: a mirror reloads a whole file for
    each, so a burst of changes becomes one rewrite. A failed build or write is
    logged and the files stay as they were.
    """
    last = 0.0
    while not stop():
        wait = last + interval - time.monotonic()
        time.sleep(max(poll, wait))
        try:
            snapshot = build()
            if snapshot is None:
                continue
            write(snapshot)
        except Exception as exc:  # noqa: BLE001 - keep watching; the last good files stay
            log.error("export failed, keeping the last files: %s", exc)
        last = time.monotonic()
