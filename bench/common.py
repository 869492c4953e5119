"""What the bench scripts share: their command line, a free port, stopping a server, filling a store.

Imported as ``common``: a script run as ``python bench/x.py`` has bench/ first on its path.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # rbl from this checkout, not an installed one


def arguments(doc: str) -> argparse.ArgumentParser:
    """A command line whose --help is the script's docstring as written (its examples keep their lines)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def store_arguments(doc: str, seed: int) -> argparse.ArgumentParser:
    """:func:`arguments` with the options of the benches that fill a store: --listings, --rounds, --seed."""
    out = arguments(doc)
    out.add_argument("--listings", type=int, default=1_000_000)
    out.add_argument("--rounds", type=int, default=3)
    out.add_argument("--seed", type=int, default=seed)
    return out


def free_port() -> int:
    """A loopback port free for both UDP and TCP (DNS servers bind both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue  # taken for TCP: another
        return port
    raise RuntimeError("no loopback port free for both UDP and TCP")


def stop(proc: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM (a clean stop), then SIGKILL if it is still running after ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def fill_store(db: Path, entries: Iterable) -> float:
    """Add ``entries`` (``rbl.store.listings.Entry``) to bl.example in the store at ``db``, never
    expiring, as one import; the seconds the add took (entries made lazily are made within it)."""
    from rbl.store import ListingStore

    store = ListingStore(db)
    started = time.perf_counter()
    store.import_entries(entries, zone="bl.example", actor="bench", source="bench", expires=None)
    store.close()
    return time.perf_counter() - started
