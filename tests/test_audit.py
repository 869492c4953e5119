"""Every write through HTTP or the CLI lands in the audit table with its actor; a refused one leaves nothing.

One scenario performs each write path in turn against a real server and the
real CLI, and holds the audit rows each one added to the actor, action and
subject it must name.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sqlite3
from contextlib import closing

CLI = f"cli:{getpass.getuser()}"  # the CLI's actor: the user who ran it
OPERATOR = "operator token:2"  # the second token created below
AWS = "vendor:aws token:1"


def rows_after(workspace, mark: int) -> list[tuple]:
    with closing(sqlite3.connect(workspace.db)) as db:
        return db.execute("SELECT id, at, actor, action, subject, before, after FROM audit WHERE id > ? ORDER BY id",
                          [mark]).fetchall()


def newest(workspace) -> int:
    with closing(sqlite3.connect(workspace.db)) as db:
        return db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]


def count(workspace, table: str, where: str = "1") -> int:
    with closing(sqlite3.connect(workspace.db)) as db:
        return db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]


def test_every_write_is_audited_with_its_actor(server, workspace):
    (workspace.root / "trap.txt").write_text("192.0.2.20\n198.51.100.0/24\n")
    tokens: dict[str, str] = {}

    def token(*args):
        def run():
            tokens[args[0]] = workspace.rbl(*args).stdout.split()[-1]
        return run

    def http(method, path, body, who=None, status=None):
        def run():
            got, reply = server.http(method, path, body() if callable(body) else body, tokens.get(who) if who else None)
            assert got == status, (method, path, got, reply)
        return run

    def cli(*args, code=0):
        def run():
            assert workspace.rbl(*args, check=False).returncode == code
        return run

    def evidence():  # acted on after it was listed: the listing is remediated (throttle)
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        return {"items": [{"subject": "3.5.140.7", "action": "tenant_terminated", "reference": "T-1", "acted_at": now}]}

    close = {"resolution": "rejected", "note": "the /24 still hits our traps"}
    # (what is done, how, the audit rows it must add: actor, action, subject)
    steps = [
        ("vendor token create", token("vendor", "token", "create", "aws"), [(CLI, "token-create", None)]),
        ("operator token create", token("operator", "token", "create"), [(CLI, "token-create", None)]),
        ("listing add (CLI)", cli("listing", "add", "192.0.2.10", "3.5.140.7"),
         [(CLI, "add", "192.0.2.10"), (CLI, "add", "3.5.140.7")]),
        ("listing import (CLI)", cli("listing", "import", str(workspace.root / "trap.txt")),
         [(CLI, "import", "192.0.2.20"), (CLI, "import", "198.51.100.0/24")]),
        ("listing remove (CLI)", cli("listing", "remove", "192.0.2.20"), [(CLI, "remove", "192.0.2.20")]),
        ("listing add (HTTP)", http("POST", "/v1/listings", {"subjects": ["192.0.2.44"]}, "operator", 201),
         [(OPERATOR, "add", "192.0.2.44")]),
        ("listing remove (HTTP)", http("DELETE", "/v1/listings", {"subjects": ["192.0.2.44"]}, "operator", 200),
         [(OPERATOR, "remove", "192.0.2.44")]),
        ("evidence (HTTP)", http("POST", "/v1/evidence", evidence, "vendor", 202),
         [(AWS, "evidence", "3.5.140.7"), (AWS, "remediate", "3.5.140.7")]),
        ("delisting request (HTTP, anyone)", http("POST", "/v1/delist-requests", {
            "subject": "198.51.100.7", "reason": "fixed", "email": "postmaster@example.com"}, None, 202),
         [("public:127.0.0.1", "delist-request", None)]),
        ("delisting close (HTTP)", http("POST", "/v1/delist-requests/1/close", close, "operator", 200),
         [(OPERATOR, "delist-close", None)]),
        ("delisting request again", http("POST", "/v1/delist-requests", {
            "subject": "192.0.2.10", "reason": "fixed", "email": "postmaster@example.com"}, None, 202),
         [("public:127.0.0.1", "delist-request", None)]),
        # Delisted: the listing goes through the listing store's remove, audited as such.
        ("delisting close (CLI)", cli("delist", "close", "2", "--resolution", "delisted", "--note", "thanks"),
         [(CLI, "remove", "192.0.2.10"), (CLI, "delist-close", None)]),
        ("vendor token revoke", cli("vendor", "token", "revoke", "1"), [(CLI, "token-revoke", None)]),
        ("operator token revoke", cli("operator", "token", "revoke", "2"), [(CLI, "token-revoke", None)]),
        # Refused writes leave no row behind.
        ("refused: revoked operator token", http("POST", "/v1/listings", {"subjects": ["192.0.2.45"]}, "operator",
                                                 401), []),
        ("refused: remove what is not listed", cli("listing", "remove", "192.0.2.99", code=2), []),
        ("refused: close a closed request", cli("delist", "close", "1", "--resolution", "rejected", "--note", "x",
                                                code=2), []),
        ("refused: a delisting request for what is not listed", http("POST", "/v1/delist-requests", {
            "subject": "192.0.2.99", "reason": "r", "email": "a@example.com"}, None, 404), []),
    ]
    for what, run, expected in steps:
        mark = newest(workspace)
        run()
        rows = rows_after(workspace, mark)
        assert [(r[2], r[3], r[4]) for r in rows] == expected, what
        for _, at, actor, action, subject, before, after in rows:
            dt.datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ")
            assert after is not None, what  # every row says what the thing became
            if action in ("add", "import", "evidence", "delist-request", "token-create"):
                assert before is None or action in ("add", "import"), what
            else:  # a change of something that was there: its state before
                assert before is not None, what

    # Nothing in the tables the writes touched lacks its audit row.
    assert count(workspace, "tokens") == count(workspace, "audit", "action = 'token-create'") == 2
    assert count(workspace, "tokens", "revoked_at IS NOT NULL") == count(workspace, "audit",
                                                                         "action = 'token-revoke'") == 2
    assert count(workspace, "evidence") == count(workspace, "audit", "action = 'evidence'") == 1
    assert count(workspace, "delist_requests") == count(workspace, "audit", "action = 'delist-request'") == 2
    assert count(workspace, "delist_requests", "state = 'closed'") == count(workspace, "audit",
                                                                            "action = 'delist-close'") == 2
    with closing(sqlite3.connect(workspace.db)) as db:
        listed = {s for (s,) in db.execute("SELECT subject FROM listings")}
        audited = {s for (s,) in db.execute("SELECT subject FROM audit WHERE action IN ('add', 'import')")}
        assert listed == audited
        for (state,) in db.execute("SELECT state FROM listings WHERE subject IN ('192.0.2.10', '192.0.2.20', "
                                   "'192.0.2.44')"):
            assert state == "removed"
        # What the rows say matches the store: the close by the CLI names who closed it.
        closed = json.loads(db.execute("SELECT after FROM audit WHERE action = 'delist-close' ORDER BY id DESC")
                            .fetchone()[0])
        assert (closed["resolution"], closed["closed_by"], closed["subject"]) == ("delisted", CLI, "192.0.2.10")
    assert not any("Traceback" in line for line in server.log)
