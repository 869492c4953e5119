"""The ``rbl`` command: one click group, a subcommand per job (a module per group of jobs)."""

from __future__ import annotations

from rbl.cli import access, keys, listings, policy, serving  # noqa: F401 - each registers its commands
from rbl.cli.base import cli


def main() -> None:
    cli(prog_name="rbl")
