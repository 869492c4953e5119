"""Snapshots as files: written once by the compiler, mapped read-only by every DNS worker.

The big arrays are stored raw and memory-mapped, so N workers share one copy
in the page cache instead of holding N. Layout: 8-byte magic, 8-byte header
length, a JSON header (zones, where each array lies), then the arrays and each
zone's answers (JSON, named by digest so an unchanged table is reused),
each 8-byte aligned, in native byte order (the file never leaves the machine).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import struct
import sys
from array import array
from pathlib import Path

from rbl.errors import SnapshotError
from rbl.files import replaced
from rbl.zone.config import RateLimit, Soa, ZoneConfig
from rbl.zone.snapshot import Answer, Snapshot, ZoneSnapshot
from rbl.zone.tenant import TENANT_ARRAYS, TenantZone

MAGIC = b"RBLSNAP3"
_ARRAYS = ("ip4_starts", "ip4_values", "ip4_blocks", "ip6_hi", "ip6_lo", "ip6_values", "domain_values")


def write_snapshot(snapshot: Snapshot, path: str | Path) -> None:
    """Write atomically: a reader sees the old file or the whole new one."""
    path = Path(path)
    blobs: list[bytes] = []
    offset = 0

    def place(data: bytes) -> list[int]:
        nonlocal offset
        start = offset
        blobs.append(data + b"\0" * (-len(data) % 8))
        offset += len(blobs[-1])
        return [start, len(data)]

    zones = []
    for zone in snapshot.zones.values():
        arrays = _ARRAYS + (TENANT_ARRAYS if isinstance(zone, TenantZone) else ())
        placed = {name: place(getattr(zone, name).tobytes()) for name in arrays}
        keys = zone.domain_keys
        placed["domain_keys"] = place(b"".join(keys))
        ends = array("I")
        total = 0
        for key in keys:
            total += len(key)
            ends.append(total)
        placed["domain_key_ends"] = place(ends.tobytes())
        # Transfer settings (and their TSIG secret) stay out: workers read them from the
        # settings.json the primary writes beside the snapshots (rbl/transfer/versions.py).
        config = dataclasses.asdict(dataclasses.replace(zone.config, transfer=None))
        del config["transfer"]
        answers, digest = _answers_blob(zone.answers)
        placed["answers"] = place(answers)
        zones.append({
            "config": config,
            "answers_digest": digest,
            "malformed": zone.malformed,
            "arrays": placed,
            "typecodes": {name: getattr(zone, name).typecode for name in arrays},
        })
    header = json.dumps({
        "serial": snapshot.serial, "built_at": snapshot.built_at, "compile_seconds": snapshot.compile_seconds,
        "listings": snapshot.listings, "byteorder": sys.byteorder, "zones": zones,
    }).encode()
    header += b" " * (-len(header) % 8)
    # Not durable: an fsync holds every change's answer until its file is on disk
    # (measured: +10 ms for the 16 MiB of 1,000,000 listings, up to 1 s for 300 MiB);
    # unsynced, a file replaced within seconds mostly never reaches the disk. A killed
    # primary loses nothing (the page cache has it); after a power cut a restart may
    # answer from a damaged kept snapshot until its first compile (seconds).
    # The umask's mode: only the primary's workers, the same user, read them.
    with replaced(path, None, durable=False) as f:
        f.write(MAGIC + struct.pack("<Q", len(header)) + header)
        for blob in blobs:
            f.write(blob)


# Answers of recent snapshots, by identity when written and by digest when read: the
# cloud zone has one answer per range (70,000 with every real feed) and they change
# only with the policy, so a patch of listings neither serialises nor parses them again.
_WRITTEN: dict[int, tuple[list, bytes, str]] = {}
_READ: dict[str, list] = {}
_KEEP = 8


def _remember(cache: dict, key, value) -> None:
    cache[key] = value
    while len(cache) > _KEEP:
        del cache[next(iter(cache))]


def _answers_blob(answers: list) -> tuple[bytes, str]:
    known = _WRITTEN.get(id(answers))
    if known is not None and known[0] is answers:
        return known[1], known[2]
    blob = json.dumps([None if a is None else [list(a.codes), None if a.txt is None else list(a.txt)]
                       for a in answers]).encode()
    digest = hashlib.blake2b(blob, digest_size=16).hexdigest()
    _remember(_WRITTEN, id(answers), (answers, blob, digest))
    return blob, digest


def _answers(blob: memoryview, digest: str) -> list:
    known = _READ.get(digest)
    if known is None:
        known = [None if a is None else Answer(tuple(a[0]), None if a[1] is None else tuple(a[1]))
                 for a in json.loads(bytes(blob))]
        _remember(_READ, digest, known)
    return known


def read_snapshot(path: str | Path) -> Snapshot:
    """Map a snapshot file; its arrays are views into the shared mapping, not copies.

    :raises SnapshotError: for a file that is not a whole snapshot of this format.
    """
    try:
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"{path}: cannot map the snapshot: {exc}") from None
    view = memoryview(mapped)
    if view[:8] != MAGIC:
        raise SnapshotError(f"{path}: not an rbl snapshot file")
    (length,) = struct.unpack_from("<Q", view, 8)
    try:
        header = json.loads(bytes(view[16:16 + length]))
    except ValueError as exc:
        raise SnapshotError(f"{path}: damaged snapshot header: {exc}") from None
    if header["byteorder"] != sys.byteorder:
        raise SnapshotError(f"{path}: written on a machine of the other byte order")
    base = 16 + length
    zones: dict[bytes, ZoneSnapshot] = {}
    for entry in header["zones"]:
        def region(name: str) -> memoryview:
            start, size = entry["arrays"][name]
            return view[base + start: base + start + size]

        arrays = {name: region(name).cast(code) for name, code in entry["typecodes"].items()}
        keys_blob = bytes(region("domain_keys"))
        ends = region("domain_key_ends").cast("I")
        keys, start = [], 0
        for end in ends:  # domain keys are few: a list of them is worth its memory
            keys.append(keys_blob[start:end])
            start = end
        config = dict(entry["config"])
        config["soa"] = Soa(**config["soa"])
        config["ns"] = tuple(config["ns"])
        config["glue"] = {host: tuple(addresses) for host, addresses in config["glue"].items()}
        config["access"] = tuple(tuple(rule) for rule in config["access"])
        if config.get("rate_limit") is not None:
            config["rate_limit"] = RateLimit(**dict(config["rate_limit"], exempt=tuple(config["rate_limit"]["exempt"])))
        answers = _answers(region("answers"), entry["answers_digest"])
        kind = TenantZone if config["serves"] == "tenant" else ZoneSnapshot
        zone = kind(config=ZoneConfig(**config), answers=answers, domain_keys=keys,
                            malformed=entry["malformed"], answers_digest=entry["answers_digest"], **arrays)
        zones[zone.origin] = zone
    return Snapshot(serial=header["serial"], zones=zones, built_at=header["built_at"],
                    compile_seconds=header["compile_seconds"], listings=header["listings"])
