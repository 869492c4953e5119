"""A zone's versions as files, for the DNS workers to stream to secondaries (AXFR, IXFR).

For each new serial the primary renders the zone's records once, in a helper
process (:func:`render_snapshot`), into ``FOLDER/<origin>/``:

- ``FINGERPRINT.part``: one segment of the zone (the records under an IPv4 /8,
  an IPv6 or IPv4-mapped /4, a zone's domains; see
  :func:`rbl.zone.records.zone_segments`) as message bodies ready to send, names
  compressed: chunks of a 4-byte length, a 2-byte record count and the body.
  Named by what its records are made of, a part no change touched is the
  previous version's file, so a change renders only the parts it touched;
- ``SERIAL.soa``: the version's SOA as one chunk: the whole zone is it, the
  parts in order, and it again;
- ``FINGERPRINT.digests``: a 64-bit digest per record of a part, which the
  next version's part of the same segment is diffed against;
- ``START-END.ixfr``: one step of history (RFC 1995): the SOA of START, the
  records deleted, the SOA of END, the records added;
- ``index.json``: the newest serial, its files and the steps kept (the
  ``history`` setting), replaced atomically last, so a worker sees either the
  old version or the whole new one.

``settings.json`` (who may transfer, the TSIG keys) is written by the primary
as soon as a zone file changes (:func:`write_settings`), not when a version is
rendered, so a narrowed allow list takes effect at once. Both JSON files are
readable by the owner only: they may hold a secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rbl.errors import TransferError
from rbl.protocol import QTYPE_SOA, name_wire
from rbl.files import replaced
from rbl.transfer import history
from rbl.transfer.rrwire import Packer, WireRecord, encode, unpack
from rbl.zone.config import TransferConfig

if TYPE_CHECKING:  # numpy only where versions are rendered (the primary's helper): workers do without
    import numpy as np

    from rbl.zone.records import Segment

TRANSFER_FOLDER = "transfer"  # beside the snapshot files
INDEX = "index.json"
SETTINGS = "settings.json"
_CHUNK = struct.Struct(">IH")
_STORED = struct.Struct(">HHIH")  # name length, type, TTL, rdata length


def question_length(origin: str) -> int:
    """Bytes of the question every transfer message carries: the origin, type and class."""
    return len(name_wire(origin)) + 4


# Every file this module writes is replaced with durable=False, as the snapshots beside
# them (rbl/zone/snapshot_file.py): a crash may lose the newest files, never expose half
# of one, and an index naming a lost file gets a fresh start (no step, the whole zone).
def write_json(path: Path, data: dict) -> None:
    """Atomically, readable by the owner only (settings hold the TSIG secret)."""
    with replaced(path, 0o600, durable=False) as f:
        f.write(json.dumps(data).encode())


def write_settings(folder: Path, origin: str, config: TransferConfig) -> None:
    """The zone's transfer settings for the workers (``folder/<origin>/settings.json``)."""
    zone_dir = folder / origin
    zone_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = config.key
    write_json(zone_dir / SETTINGS, {
        "allow": list(config.allow), "tsig": config.tsig,
        "key": None if key is None else {"name": key.name, "algorithm": key.algorithm,
                                         "secret": base64.b64encode(key.secret).decode()},
    })


def store_records(records: Iterable[WireRecord]) -> bytes:
    """Records in the step file format: each a name length, type, TTL, rdata length, name, rdata."""
    out = bytearray()
    for name, rtype, ttl, rdata in records:
        raw = name.encode("ascii")
        out += _STORED.pack(len(raw), rtype, ttl, len(rdata)) + raw + rdata
    return bytes(out)


def load_records(data: bytes) -> Iterator[WireRecord]:
    """The records of a step file."""
    pos = 0
    while pos < len(data):
        name_len, rtype, ttl, rdlen = _STORED.unpack_from(data, pos)
        pos += _STORED.size
        name = data[pos: pos + name_len].decode("ascii")
        pos += name_len
        yield WireRecord(name, rtype, ttl, data[pos: pos + rdlen])
        pos += rdlen


def read_chunks(f) -> Iterator[tuple[bytes, int]]:
    """(body, record count) of each chunk of an open ``.axfr`` file."""
    while True:
        head = f.read(_CHUNK.size)
        if not head:
            return
        length, count = _CHUNK.unpack(head)
        body = f.read(length)
        if len(body) != length:
            raise TransferError(f"{getattr(f, 'name', 'an axfr file')} ends inside a chunk")
        yield body, count


def records_at(path: Path, indexes: np.ndarray, origin: str) -> list[WireRecord]:
    """The records at ``indexes`` (sorted, counting the file's first record as 0) of a ``.part`` file."""
    qlen, labels = question_length(origin), origin.count(".") + 1
    out: list[WireRecord] = []
    wanted = indexes.tolist()
    i = 0
    first = 0
    with open(path, "rb") as f:
        while i < len(wanted):
            head = f.read(_CHUNK.size)
            if not head:
                raise TransferError(f"{path}: record {wanted[i]} is past the end")
            length, count = _CHUNK.unpack(head)
            if wanted[i] >= first + count:
                f.seek(length, os.SEEK_CUR)
            else:
                records = unpack(f.read(length), count, qlen, labels)
                while i < len(wanted) and wanted[i] < first + count:
                    out.append(records[wanted[i] - first])
                    i += 1
            first += count
    return out


def version_files(zone_dir: Path, index: dict) -> list[Path]:
    """The files whose chunks, in order, are a version's whole zone: its SOA, its parts, its SOA."""
    soa = zone_dir / index["soa_file"]
    return [soa, *(zone_dir / part["file"] for part in index["parts"]), soa]


def open_version(zone_dir: Path, index: dict) -> list:
    """:func:`version_files`, opened: an open file stays readable when a newer version's tidying
    unlinks it. :raises FileNotFoundError: when one is gone already (read the newest index)."""
    handles = []
    try:
        for path in version_files(zone_dir, index):
            handles.append(open(path, "rb"))
    except BaseException:
        for f in handles:
            f.close()
        raise
    return handles


def _soa_serial(record: WireRecord) -> int:
    # The serial follows two uncompressed names.
    data = record.rdata
    pos = 0
    for _ in range(2):
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    return struct.unpack_from(">I", data, pos)[0]


def version_soa(index: dict) -> WireRecord:
    """The SOA record of the version an index describes (as :func:`render` wrote it there)."""
    return WireRecord("", QTYPE_SOA, index["soa"]["ttl"], bytes.fromhex(index["soa"]["rdata"]))


def read_index(zone_dir: Path) -> dict | None:
    try:
        return json.loads((zone_dir / INDEX).read_text())
    except (OSError, ValueError):
        return None


def render(segments: Iterable[Segment], origin: str, folder: Path, keep: int) -> dict:
    """Write the version of a zone that ``segments`` are (:class:`~rbl.zone.records.Segment`, the
    SOA alone first); its index.

    Each segment is a ``.part`` file named by its fingerprint: one the previous
    version has already is reused, so a change costs the segments it touched,
    and the IXFR step diffs only those. ``keep``: how many steps of history to
    keep (0: none; every IXFR gets the whole zone).

    :raises TransferError: for records that are not a zone (no SOA first) or cannot be encoded.
    """
    started = time.perf_counter()
    zone_dir = folder / origin
    zone_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    segments = iter(segments)
    head = next(segments, None)
    first = list(encode(head.records())) if head is not None else []
    if len(first) != 1 or first[0][1] != QTYPE_SOA or first[0][0]:
        raise TransferError(f"{origin}: the records do not begin with the SOA")
    soa = WireRecord(*first[0])
    serial = _soa_serial(soa)
    previous = read_index(zone_dir)
    if previous is not None and previous["serial"] == serial:
        return previous  # rendered already (the same snapshot offered twice)
    if previous is not None and "parts" not in previous:
        previous = None  # written by an older rbl: start afresh
    qlen = question_length(origin)
    known = {part["fingerprint"]: part for part in previous["parts"]} if previous is not None else {}
    parts: list[dict] = []
    rendered = 0
    for segment in segments:
        fingerprint = segment.fingerprint.hex()
        part = known.get(fingerprint)
        if part is None or not (zone_dir / part["file"]).exists() \
                or (keep and not (zone_dir / part["digests"]).exists()):
            part = _render_part(segment, fingerprint, zone_dir, qlen, keep, origin)
            rendered += 1
        if part["records"]:
            parts.append(part)
    soa_file = f"{serial}.soa"
    packer = Packer(qlen)
    packer.add(*soa)
    body, count = packer.flush()
    with replaced(zone_dir / soa_file, None, durable=False) as f:
        f.write(_CHUNK.pack(len(body), count) + body)
    records = sum(part["records"] for part in parts)
    axfr_bytes = 2 * (_CHUNK.size + len(body)) + sum(part["bytes"] for part in parts)
    steps: list[history.Step] = []
    step_seconds = 0.0
    if previous is not None and keep and history.serial_newer(serial, previous["serial"]):
        step_started = time.perf_counter()
        found = _step(previous, parts, zone_dir, origin, limit=records)
        if found is not None:  # else no step: the history starts afresh, older clients get the whole zone
            gone, new = found
            data = store_records([version_soa(previous), *gone, soa, *new])
            name = f"{previous['serial']}-{serial}.ixfr"
            with replaced(zone_dir / name, None, durable=False) as f:
                f.write(data)
            steps = [history.Step(**s) for s in previous["steps"]]
            steps.append(history.Step(previous["serial"], serial, len(gone), len(new), len(data), name))
        step_seconds = time.perf_counter() - step_started
    kept, _dropped = history.keep(steps, keep)
    index = {
        "origin": origin, "serial": serial, "soa_file": soa_file, "parts": parts,
        "records": records, "axfr_bytes": axfr_bytes, "question_length": qlen,
        "soa": {"ttl": soa.ttl, "rdata": soa.rdata.hex()},
        "steps": [s.__dict__ for s in kept], "rendered": rendered,
        "render_seconds": time.perf_counter() - started, "diff_seconds": step_seconds,
    }
    write_json(zone_dir / INDEX, index)
    _tidy(zone_dir, index, previous)
    return index


def _render_part(segment: Segment, fingerprint: str, zone_dir: Path, qlen: int, keep: int, origin: str) -> dict:
    """A segment's records as a ``.part`` file of chunks (and their digests, when history is kept)."""
    path = zone_dir / f"{fingerprint}.part"
    digests = bytearray()
    count = 0
    packer = Packer(qlen)
    add = packer.add
    blake = hashlib.blake2b
    chunk = _CHUNK.pack
    with replaced(path, None, durable=False) as f:  # the umask's mode, in a folder of mode 0o700
        write = f.write
        # The loop a million records go through: kept flat, no call it can do without.
        for name, rtype, ttl, rdata in encode(segment.records()):
            if rtype == QTYPE_SOA and not name:
                raise TransferError(f"{origin}: a second SOA at the apex")
            if keep:  # the digest diffs compare (see history.diff): name, type, TTL and rdata
                digests += blake(b"%s %d %d %s" % (name.encode(), rtype, ttl, rdata), digest_size=8).digest()
            count += 1
            done = add(name, rtype, ttl, rdata)
            if done is not None:
                write(chunk(len(done[0]), done[1]) + done[0])
        done = packer.flush()
        if done is not None:
            write(chunk(len(done[0]), done[1]) + done[0])
    if keep:
        with replaced(zone_dir / f"{fingerprint}.digests", None, durable=False) as f:
            f.write(digests)
    return {"key": segment.key, "fingerprint": fingerprint, "file": path.name, "digests": f"{fingerprint}.digests",
            "records": count, "bytes": path.stat().st_size}


def _step(previous: dict, parts: list[dict], zone_dir: Path, origin: str, limit: int
          ) -> tuple[list[WireRecord], list[WireRecord]] | None:
    """(records deleted, records added) from the previous version to ``parts``, diffing only the
    parts that differ; None when the previous files are gone or the step would outweigh the zone."""
    import numpy as np

    old_parts = {part["key"]: part for part in previous["parts"]}
    gone: list[WireRecord] = []
    new: list[WireRecord] = []
    left = limit  # a step as big as the zone is never sent (the zone is): it is not built either
    try:
        for part in parts:
            old = old_parts.pop(part["key"], None)
            if old is not None and old["fingerprint"] == part["fingerprint"]:
                continue
            old_digests = np.fromfile(zone_dir / old["digests"], dtype=np.uint64) if old is not None \
                else np.zeros(0, dtype=np.uint64)
            found = history.diff(old_digests, np.fromfile(zone_dir / part["digests"], dtype=np.uint64),
                                 limit=left)
            if found is None:
                return None
            left -= len(found[0]) + len(found[1])
            if old is not None:
                gone += records_at(zone_dir / old["file"], found[0], origin)
            new += records_at(zone_dir / part["file"], found[1], origin)
        for old in old_parts.values():  # segments that are gone: every record of theirs
            left -= old["records"]
            if left <= 0:
                return None
            gone += records_at(zone_dir / old["file"], np.arange(old["records"]), origin)
    except (OSError, TransferError):
        return None  # the previous version's files are gone: no history to build on
    return gone, new


def _tidy(zone_dir: Path, index: dict, previous: dict | None) -> None:
    """Remove files no index names: a worker streaming one has it open, and unlinking keeps it readable."""
    keep = {INDEX, SETTINGS}
    for version in (index, previous) if previous is not None else (index,):
        # A worker may have read the previous index and not yet opened its files.
        keep |= {version["soa_file"], *(s["file"] for s in version["steps"])}
        keep |= {name for part in version["parts"] for name in (part["file"], part["digests"])}
    for path in zone_dir.iterdir():
        if path.name not in keep and not path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)


def render_snapshot(snapshot_path: str, origin: str, folder: str, keep: int) -> dict:
    """:func:`render` of a snapshot file's zone (run in the primary's helper process)."""
    from rbl.zone.records import zone_segments
    from rbl.zone.snapshot_file import read_snapshot

    snapshot = read_snapshot(snapshot_path)
    return render(zone_segments(snapshot, origin), origin, Path(folder), keep)


def main() -> None:
    """The primary's helper process: a JSON job a line on standard input, a JSON result a line out.

    A job is ``{"snapshot": PATH, "origin": ORIGIN, "folder": FOLDER, "keep": N}``;
    the result ``{"index": {...}}`` or ``{"error": "..."}``. End of input ends it.
    Rendering a large zone is seconds of pure Python: here it takes no time
    from the primary's compiles and HTTP.
    """
    import logging
    import sys

    from rbl.errors import RblError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s transfer renderer: %(message)s",
                        stream=sys.stderr)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            result = {"index": render_snapshot(job["snapshot"], job["origin"], job["folder"], job["keep"])}
        except RblError as exc:
            result = {"error": str(exc)}
        except Exception as exc:  # keep serving the next job; the primary logs it
            logging.exception("rendering %s failed", job.get("origin"))
            result = {"error": f"unexpected {type(exc).__name__}: {exc}"}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
