"""The rbl command as an operator uses it: real processes, exit codes, messages."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import click
import pytest

from rbl.cli import cli


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in all_commands(cli)], ids=" ".join)
def test_every_command_has_help_with_an_example(workspace, path):
    out = workspace.rbl(*path, "--help").stdout
    assert "Example:" in out
    assert workspace.rbl(*path, "-h").stdout == out


def test_python_dash_m_and_version(workspace):
    out = subprocess.run([sys.executable, "-m", "rbl", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("rbl, version ")


def test_add_show_remove_and_audit(workspace):
    out = workspace.rbl("listing", "add", "192.0.2.0/24", "2001:db8::/48", "*.spam.example",
                        "--reason", "trap hits", "--category", "spam", "--expires", "2d").stdout
    assert "3 added" in out
    shown = workspace.rbl("listing", "show", "192.0.2.77").stdout
    assert "192.0.2.0/24" in shown and "reason=trap hits" in shown and "category=spam" in shown
    rows = [json.loads(line) for line in workspace.rbl("listing", "show", "--json").stdout.splitlines()]
    assert {r["subject"] for r in rows} == {"192.0.2.0/24", "2001:db8::/48", "*.spam.example"}
    assert workspace.rbl("listing", "show", "www.spam.example").stdout.count("*.spam.example") == 1
    assert workspace.rbl("listing", "show", "198.51.100.1", check=False).returncode == 1
    workspace.rbl("listing", "add", "192.0.2.0/24")
    again = json.loads(workspace.rbl("listing", "show", "192.0.2.0/24", "--json").stdout)
    assert again["hits"] == 2 and again["first_seen"] <= again["last_seen"]
    assert "1 removed" in workspace.rbl("listing", "remove", "2001:db8::/48").stdout
    with sqlite3.connect(workspace.db) as db:
        audit = db.execute("SELECT actor, action, subject, before, after FROM audit ORDER BY id").fetchall()
        assert [a[1] for a in audit] == ["add", "add", "add", "add", "remove"]
        assert all(a[0].startswith("cli") for a in audit)
        assert audit[0][3] is None and json.loads(audit[0][4])["subject"] == "192.0.2.0/24"
        assert json.loads(audit[3][3])["hits"] == 1 and json.loads(audit[3][4])["hits"] == 2
        assert json.loads(audit[4][4])["state"] == "removed"
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit SET actor = 'someone else'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM audit")


def dump(path) -> list[str]:
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


@pytest.mark.parametrize("args, message", [
    (("listing", "add", "300.1.2.3"), "SUBJECT: '300.1.2.3' is not an IP address or CIDR"),
    (("listing", "add", "192.0.2.1/24"), "has host bits set"),
    (("listing", "add", "192.0.2.1", "--expires", "soon"), "--expires: 'soon' is not a duration"),
    (("listing", "add", "192.0.2.1", "--zone", "nope.example"), "--zone: no zone 'nope.example'"),
    (("listing", "remove", "192.0.2.1", "198.51.100.9"), "198.51.100.9 is not listed in bl.example"),
    (("listing", "import", "missing.txt"), "missing.txt"),
    (("serve", "--dns", "localhost:dns"), "is not an address and port"),
])
def test_bad_input_exits_2_naming_the_field_and_changes_nothing(workspace, args, message):
    workspace.rbl("listing", "add", "192.0.2.1")
    before = dump(workspace.db)
    proc = workspace.rbl(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert dump(workspace.db) == before


def test_broken_zone_file_names_file_and_line(workspace):
    zone = workspace.zones / "bl.example.yaml"
    zone.write_text(zone.read_text().replace("ttl: 2100", "ttl: forever"))
    proc = workspace.rbl("listing", "add", "192.0.2.1", check=False)
    assert proc.returncode == 2
    assert f"{zone}, line " in proc.stderr and "ttl must be a whole number" in proc.stderr


def test_environment_and_options_choose_the_store(workspace, tmp_path):
    other = tmp_path / "other.db"
    workspace.rbl("listing", "add", "192.0.2.1", "--db", str(other))
    assert workspace.rbl("listing", "show", "--db", str(other), "--json").stdout.count("192.0.2.1") == 1
    assert "no listings" in workspace.rbl("listing", "show").stdout  # RBL_DB points elsewhere
