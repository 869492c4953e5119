"""Files replaced whole: a reader sees the old content or the new, never half of either.

Every writer of rbl that replaces a file (exports for mirrors, fetched feeds,
snapshots, transfer versions) goes through :func:`replaced`.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def replaced(path: Path | str, mode: int | None, *, keep_mode: bool = False,
             durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content to: renamed over ``path`` when the block ends.

    It is a temporary file beside ``path`` (the same file system, so the rename is
    atomic, named ``.<name>.<random>.tmp``); when the block raises, it is removed and
    ``path`` keeps its old content.

    ``mode``: the new file's permissions, exactly (the umask does not apply); None
    for what ``open()`` would give a new file (0o666 less the umask).
    ``keep_mode``: an existing file's permissions win over ``mode``, so an
    operator's chmod survives a rewrite.
    ``durable``: fsync the data before the rename and the folder after it, so the
    new content, not an empty file, is there after a power loss. Only for files
    that outlive the process: it costs a write-back of every byte while the caller
    waits.
    """
    path = Path(path)
    if keep_mode:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            pass
    fd, tmp = _create_beside(path, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            if durable:
                os.fsync(out.fileno())
            if mode is not None:
                os.fchmod(out.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the error to report is the one that stopped the write
            tmp.unlink()
        raise
    if durable:
        # The rename is durable only once the folder's entry is on disk too.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _create_beside(path: Path, mode: int | None) -> tuple[int, Path]:
    # Private until renamed when the mode is set afterwards; 0o666 when the umask is to
    # decide, as reading the umask (set it, set it back) would race other threads.
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                           0o666 if mode is None else 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")
