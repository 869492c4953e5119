"""rbl listing import: real lists in, one transaction, nothing half-written."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time

from conftest import shared_file
from test_cli import dump


def count(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM listings WHERE state = 'active'").fetchone()[0]


def test_a_failing_import_leaves_the_store_exactly_as_it_was(workspace, tmp_path):
    workspace.rbl("listing", "add", "192.0.2.1", "198.51.100.0/24")
    lines = [f"10.{i // 256}.{i % 256}.1\n" for i in range(1000)]
    lines[776] = "10.3.8.300\n"
    bad = tmp_path / "list.txt"
    bad.write_text("".join(lines))
    before = dump(workspace.db)
    proc = workspace.rbl("listing", "import", str(bad), "--format", "plain", check=False)
    assert proc.returncode == 2
    assert f"{bad}, line 777: " in proc.stderr and "10.3.8.300" in proc.stderr
    assert dump(workspace.db) == before


def test_the_200k_line_firehol_file_imports(workspace):
    path = shared_file("blocklists", "firehol-firehol_abusers_30d.netset")
    started = time.monotonic()
    out = workspace.rbl("listing", "import", str(path)).stdout
    took = time.monotonic() - started
    assert "(firehol)" in out  # guessed
    assert count(workspace.db) == 207306, out
    print(f"imported 207,306 FireHOL entries in {took:.1f} s")
    # One audit row for the whole import (issue 12: 315 bytes a listing went to per-line JSON),
    # and the history of any line still names it.
    with sqlite3.connect(workspace.db) as conn:
        audit = conn.execute("SELECT count(*), min(action), max(action), max(after) FROM audit").fetchone()
    assert audit[:3] == (1, "import", "import")
    about = json.loads(audit[3])
    assert (about["added"], about["entries"], about["format"]) == (207306, 207306, "firehol")
    assert about["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    last = [line for line in path.read_text().splitlines() if line and not line.startswith("#")][-1]
    history = workspace.rbl("listing", "show", last, "--history").stdout
    assert "import (added)" in history and about["sha256"] in history, history


def test_spamhaus_reasons_and_ipsum_hits_are_kept(workspace):
    workspace.rbl("listing", "import", str(shared_file("blocklists", "spamhaus-drop.txt")))
    workspace.rbl("listing", "import", str(shared_file("blocklists", "ipsum.txt")), "--format", "ipsum")
    assert count(workspace.db) == 1385 + 120430
    rows = [json.loads(line) for line in workspace.rbl("listing", "show", "--json").stdout.splitlines()]
    drop = [r for r in rows if r.get("source") == "spamhaus-drop.txt"]
    assert len(drop) == 1385 and all(r["reason"].startswith("SBL") for r in drop)
    ipsum = [r for r in rows if r.get("source") == "ipsum.txt"]
    assert max(r["hits"] for r in ipsum) > 5


def test_rbldnsd_values_and_exclusions_are_served(workspace, tmp_path):
    from conftest import Server

    data = tmp_path / "bl.rbldnsd"
    data.write_text(":127.0.0.2:Default for $\n203.0.113.0/24\n!203.0.113.8/29\n203.0.113.9 :3:Special $\n")
    workspace.rbl("listing", "import", str(data), "--expires", "never")
    server = Server(workspace)
    try:
        assert server.addresses("1.113.0.203.bl.example") == {"127.0.0.2"}
        assert server.query("10.113.0.203.bl.example").rcode() == 3
        assert server.addresses("9.113.0.203.bl.example") == {"127.0.0.3"}
        txt = server.query("9.113.0.203.bl.example", "TXT").answer[0][0].strings
        assert txt == (b"Special 203.0.113.9",)
    finally:
        server.stop()


def test_a_progress_bar_on_a_terminal_only(workspace, tmp_path):
    import shlex
    import subprocess
    import sys

    from conftest import require_tool

    script = require_tool("script")
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"10.0.{i // 256}.{i % 256}\n" for i in range(3000)))
    command = shlex.join([sys.executable, "-m", "rbl", "listing", "import", str(listing)])
    tty = subprocess.run([script, "-qec", command, "/dev/null"], env=workspace.env, capture_output=True,
                         text=True, timeout=60)
    assert "importing" in tty.stdout and "100%" in tty.stdout and "3000 added" in tty.stdout
    piped = workspace.rbl("listing", "import", str(listing))
    assert "importing" not in piped.stdout + piped.stderr and "3000 refreshed" in piped.stdout
