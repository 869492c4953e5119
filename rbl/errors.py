"""One exception root: every error rbl raises on purpose is an :class:`RblError`."""

from __future__ import annotations


class RblError(Exception):
    """Root of every error rbl raises on purpose."""


class ConfigError(RblError):
    """A policy or zone file is wrong; the message names the file and line."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path is not None:
            where = f"{path}, line {line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class SubjectError(RblError, ValueError):
    """A subject (address, CIDR or domain) cannot be understood."""


class ImportFormatError(RblError):
    """A line of an imported list is wrong; the message names the file and line."""

    def __init__(self, message: str, path: str, line: int):
        self.path = path
        self.line = line
        super().__init__(f"{path}, line {line}: {message}")


class StoreError(RblError):
    """The listing store refused a change."""


class SnapshotError(RblError):
    """A snapshot could not be built; the one being served stays."""


class TransferError(RblError):
    """A zone transfer message is malformed, or a transfer cannot be served."""


class ExportError(RblError):
    """A snapshot cannot be written in an export format exactly as rbl answers it."""
