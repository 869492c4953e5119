"""A zone's versions as files, for the DNS workers to stream to secondaries (AXFR, IXFR).

For each new serial the primary renders the zone's records once, in a helper
process (:func:`render_snapshot`), into ``FOLDER/<origin>/``:

- ``SERIAL.axfr``: the whole zone as message bodies ready to send (SOA first
  and last, names compressed): chunks of a 4-byte length, a 2-byte record
  count and the body;
- ``SERIAL.digests``: a 64-bit digest per record, in the order of the bodies,
  which the next version is diffed against;
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

TRANSFER_FOLDER = "transfer"  # beside the snapshot files
INDEX = "index.json"
SETTINGS = "settings.json"
_CHUNK = struct.Struct(">IH")
_STORED = struct.Struct(">HHIH")  # name length, type, TTL, rdata length


def question_length(origin: str) -> int:
    """Bytes of the question every transfer message carries: the origin, type and class."""
    return len(name_wire(origin)) + 4


# Every file this module writes is replaced with durable=False, as the snapshots beside
# them (rbl/zone/snapshot_file.py): the folder is inside the primary's temporary one,
# which no restart reads, and an fsync would delay each version (an .axfr is the whole zone).
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
    """The records at ``indexes`` (sorted, counting the first SOA as 0) of an ``.axfr`` file."""
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


def render(records: Iterable, origin: str, folder: Path, keep: int) -> dict:
    """Write the version of a zone that ``records`` are (:class:`~rbl.zone.records.TextRecord` tuples,
    SOA first); its index.

    ``keep``: how many steps of history to keep (0: none; every IXFR gets the
    whole zone).

    :raises TransferError: for records that are not a zone (no SOA first) or cannot be encoded.
    """
    import numpy as np

    started = time.perf_counter()
    zone_dir = folder / origin
    zone_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stream = encode(records)
    first = next(stream, None)
    if first is None or first[1] != QTYPE_SOA or first[0]:
        raise TransferError(f"{origin}: the records do not begin with the SOA")
    soa = WireRecord(*first)
    serial = _soa_serial(soa)
    previous = read_index(zone_dir)
    if previous is not None and previous["serial"] == serial:
        return previous  # rendered already (the same snapshot offered twice)
    qlen = question_length(origin)
    axfr = zone_dir / f"{serial}.axfr"
    digests = bytearray()
    count = 0
    packer = Packer(qlen)
    add = packer.add
    blake = hashlib.blake2b
    chunk = _CHUNK.pack
    with replaced(axfr, None, durable=False) as f:  # the umask's mode, in a folder of mode 0o700
        write = f.write
        add(*soa)
        # The loop a million records go through: kept flat, no call it can do without.
        for name, rtype, ttl, rdata in stream:
            if rtype == QTYPE_SOA and not name:
                raise TransferError(f"{origin}: a second SOA at the apex")
            if keep:  # the digest diffs compare (see history.diff): name, type, TTL and rdata
                digests += blake(b"%s %d %d %s" % (name.encode(), rtype, ttl, rdata), digest_size=8).digest()
            count += 1
            done = add(name, rtype, ttl, rdata)
            if done is not None:
                write(chunk(len(done[0]), done[1]) + done[0])
        for done in (add(*soa), packer.flush()):
            if done is not None:
                write(chunk(len(done[0]), done[1]) + done[0])
    if keep:
        with replaced(zone_dir / f"{serial}.digests", None, durable=False) as f:
            f.write(digests)
    axfr_bytes = axfr.stat().st_size
    steps: list[history.Step] = []
    step_seconds = 0.0
    if previous is not None and keep and history.serial_newer(serial, previous["serial"]):
        step_started = time.perf_counter()
        old_path = zone_dir / previous["axfr"]
        gone = None  # no step: the history starts afresh, and older clients get the whole zone
        try:
            old = np.fromfile(zone_dir / previous["digests"], dtype=np.uint64)
            # A step as big as the zone is never sent (the zone is): it is not built either.
            found = history.diff(old, np.frombuffer(digests, dtype=np.uint64), limit=count)
            if found is not None:
                gone = records_at(old_path, found[0] + 1, origin)
                new = records_at(axfr, found[1] + 1, origin)
        except (OSError, TransferError):
            pass  # the previous version's files are gone: no history to build on
        if gone is not None:
            data = store_records([version_soa(previous), *gone, soa, *new])
            name = f"{previous['serial']}-{serial}.ixfr"
            with replaced(zone_dir / name, None, durable=False) as f:
                f.write(data)
            steps = [history.Step(**s) for s in previous["steps"]]
            steps.append(history.Step(previous["serial"], serial, len(gone), len(new), len(data), name))
        step_seconds = time.perf_counter() - step_started
    kept, _dropped = history.keep(steps, keep)
    index = {
        "origin": origin, "serial": serial, "axfr": axfr.name, "digests": f"{serial}.digests",
        "records": count, "axfr_bytes": axfr_bytes, "question_length": qlen,
        "soa": {"ttl": soa.ttl, "rdata": soa.rdata.hex()},
        "steps": [s.__dict__ for s in kept],
        "render_seconds": time.perf_counter() - started, "diff_seconds": step_seconds,
    }
    write_json(zone_dir / INDEX, index)
    _tidy(zone_dir, index, previous)
    return index


def _tidy(zone_dir: Path, index: dict, previous: dict | None) -> None:
    """Remove files no index names: a worker streaming one has it open, and unlinking keeps it readable."""
    keep = {INDEX, SETTINGS, index["axfr"], index["digests"], *(s["file"] for s in index["steps"])}
    if previous is not None:
        # A worker may have read the previous index and not yet opened its file.
        keep |= {previous["axfr"], *(s["file"] for s in previous["steps"])}
    for path in zone_dir.iterdir():
        if path.name not in keep and not path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)


def render_snapshot(snapshot_path: str, origin: str, folder: str, keep: int) -> dict:
    """:func:`render` of a snapshot file's zone (run in the primary's helper process)."""
    from rbl.zone.records import zone_records
    from rbl.zone.snapshot_file import read_snapshot

    snapshot = read_snapshot(snapshot_path)
    return render(zone_records(snapshot, origin), origin, Path(folder), keep)


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
