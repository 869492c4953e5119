"""Credentials for the HTTP API: vendor and operator tokens, kept only as hashes."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Workspace, stored_bytes
from rbl.errors import StoreError
from rbl.store import ListingStore
from rbl.store.tokens import Token, TokenStore, token_hash


@pytest.fixture
def tokens(workspace: Workspace):
    store = ListingStore(workspace.db)
    yield TokenStore(store)
    store.close()


def created(proc) -> str:
    """The token a create printed: the last word of its output."""
    return proc.stdout.split()[-1]


def test_vendor_and_operator_tokens_from_create_to_revoke(workspace, tokens):
    made = workspace.rbl("vendor", "token", "create", "aws", "--label", "abuse desk")
    aws = created(made)
    assert made.stdout.startswith("token 1 for vendor aws (shown once, store it now): rbl_")
    assert made.stdout.strip().endswith(aws) and aws.startswith("rbl_") and len(aws) == 47
    op = created(workspace.rbl("operator", "token", "create"))

    token = tokens.verify(aws)
    assert token is not None and (token.id, token.scope, token.vendor, token.label) == (1, "vendor", "aws", "abuse desk")
    assert token.hint == aws[:8] and token.created_by.startswith("cli")
    # A vendor token for aws is not an operator token, and the other way round.
    assert token.scope != "operator"
    token = tokens.verify(op)
    assert token is not None and (token.scope, token.vendor) == ("operator", None)

    listed = workspace.rbl("vendor", "token", "list").stdout
    assert listed.splitlines()[0].split("\t") == ["id", "scope", "vendor", "hint", "label", "created", "revoked"]
    row = listed.splitlines()[1].split("\t")
    assert row[:5] == ["1", "vendor", "aws", aws[:8] + "...", "abuse desk"] and row[6] == "-"
    assert "operator" not in listed  # each list shows its own scope
    assert aws not in listed and op not in listed

    # Each revoke refuses the other scope's tokens, unknown ids and revoked tokens.
    wrong = workspace.rbl("vendor", "token", "revoke", "2", check=False)
    assert wrong.returncode == 2 and "token 2 is an operator token" in wrong.stderr
    assert workspace.rbl("vendor", "token", "revoke", "1").stdout.strip() == "token 1 for vendor aws revoked"
    assert tokens.verify(aws) is None
    assert tokens.verify(op) is not None
    again = workspace.rbl("vendor", "token", "revoke", "1", check=False)
    assert again.returncode == 2 and "token 1 for vendor aws is already revoked" in again.stderr

    rows = [json.loads(line) for line in workspace.rbl("vendor", "token", "list", "aws", "--json").stdout.splitlines()]
    assert [(r["id"], r["revoked_at"] is not None) for r in rows] == [(1, True)]
    ops = workspace.rbl("operator", "token", "list").stdout.splitlines()
    assert len(ops) == 2 and ops[1].split("\t")[:4] == ["2", "operator", "-", op[:8] + "..."]

    # Neither token is anywhere on disk, nor in the audit rows (which carry no hash either).
    on_disk = stored_bytes(workspace)
    for text in (aws, op):
        assert text.encode() not in on_disk and text[8:].encode() not in on_disk
    with closing(sqlite3.connect(workspace.db)) as db:
        audit = db.execute("SELECT actor, action, subject, before, after FROM audit ORDER BY id").fetchall()
    assert [a[1] for a in audit] == ["token-create", "token-create", "token-revoke"]
    assert all(a[0].startswith("cli") and a[2] is None for a in audit)
    assert audit[0][3] is None and json.loads(audit[0][4])["vendor"] == "aws"
    before, after = json.loads(audit[2][3]), json.loads(audit[2][4])
    assert before["revoked_at"] is None and after["revoked_at"] is not None and after["revoked_by"].startswith("cli")
    for _, _, _, *states in audit:
        for state in filter(None, states):
            assert "hash" not in json.loads(state)
            assert all(text not in state and token_hash(text) not in state for text in (aws, op))


def test_unknown_vendor_and_unknown_id_exit_2(workspace):
    unknown = workspace.rbl("vendor", "token", "create", "nimbus", check=False)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "'nimbus'" in unknown.stderr and "aws" in unknown.stderr and "gcp" in unknown.stderr
    for group in ("vendor", "operator"):
        missing = workspace.rbl(group, "token", "revoke", "99", check=False)
        assert missing.returncode == 2 and "token 99" in missing.stderr


def test_store_times_scopes_and_refusals(tmp_path):
    now = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    store = ListingStore(tmp_path / "rbl.db", clock=lambda: now)
    try:
        tokens = TokenStore(store)
        generation = store.generation()
        token, text = tokens.create("vendor", "gcp", "test", label="l")
        assert token == Token(1, "vendor", "gcp", text[:8], "l", "2030-01-02T03:04:05Z", "test", None)
        assert store.generation() == generation + 1
        for scope, vendor in (("vendor", None), ("vendor", ""), ("operator", "gcp"), ("root", None)):
            with pytest.raises(StoreError):
                tokens.create(scope, vendor, "test")
        with pytest.raises(StoreError, match="no token 7"):
            tokens.revoke(7, "test")
        op, _ = tokens.create("operator", None, "test")
        revoked = tokens.revoke(token.id, "someone")
        assert (revoked.revoked_at, revoked.revoked_by, revoked.active) == ("2030-01-02T03:04:05Z", "someone", False)
        assert [t.id for t in tokens.list()] == [1, 2]
        assert [t.id for t in tokens.list(include_revoked=False)] == [op.id]
        assert [t.id for t in tokens.list("gcp")] == [1] and tokens.list("aws") == []
        assert [t.id for t in tokens.list(scope="operator")] == [op.id]
        # The table refuses what the store never writes: an operator token with a vendor.
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute("INSERT INTO tokens (scope, vendor, hash, hint, created_at, created_by) "
                             "VALUES ('operator', 'aws', 'x', 'rbl_', 'now', 'test')")
        with pytest.raises(sqlite3.IntegrityError):
            store.db.execute("INSERT INTO tokens (scope, vendor, hash, hint, created_at, created_by) "
                             "VALUES ('vendor', NULL, 'y', 'rbl_', 'now', 'test')")
    finally:
        store.close()


JUNK = ["", " ", "rbl_", "Bearer rbl_x", "rbl_" + "A" * 43, "x" * 10_000, "rbl_" + "x" * 10_000,
        "rbl_ünïcødé🔑", "rbl_\ud800", "rbl_\x00", "None", "null", None, b"rbl_abc", 0, [], {}]


@pytest.mark.parametrize("junk", JUNK, ids=repr)
def test_verify_refuses_junk(tokens, junk):
    tokens.create("operator", None, "test")
    assert tokens.verify(junk) is None


def test_only_an_exact_created_token_verifies(tmp_path):
    store = ListingStore(tmp_path / "rbl.db")
    tokens = TokenStore(store)
    made = [tokens.create("vendor", "aws", "test")[1], tokens.create("operator", None, "test")[1],
            tokens.create("vendor", "gcp", "test")[1]]
    gone = tokens.create("vendor", "aws", "test")
    tokens.revoke(gone[0].id, "test")
    live = dict(zip(made, ("aws", None, "gcp")))

    def near(text: str):
        """Texts that differ from a token by a little: a character changed, cut, added or cased."""
        return st.one_of(
            st.tuples(st.integers(0, len(text) - 1), st.characters()).map(
                lambda c: text[:c[0]] + c[1] + text[c[0] + 1:]),
            st.integers(0, len(text) - 1).map(lambda n: text[:n]),
            st.text(min_size=1).map(lambda extra: text + extra),
            st.just(text.swapcase()), st.just(" " + text), st.just(text + "\n"),
        )

    candidates = st.one_of(
        st.text(), st.text().map(lambda t: "rbl_" + t), st.binary(), st.none(),
        st.sampled_from([*made, gone[1]]), st.sampled_from([*made, gone[1]]).flatmap(near),
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(candidates)
    def check(text):
        token = tokens.verify(text)
        if text in live:
            assert token is not None and token.vendor == live[text]
        else:
            assert token is None

    try:
        check()
    finally:
        store.close()


def test_a_token_change_does_not_stop_listings_reaching_dns(server, workspace):
    """Token audit rows have no subject: the server's patcher must skip them, not choke."""
    workspace.rbl("vendor", "token", "create", "aws")
    workspace.rbl("listing", "add", "192.0.2.77")
    server.wait_for(lambda: server.addresses("77.2.0.192.bl.example") == {"127.0.0.2"}, timeout=3)
    assert not any("Traceback" in line for line in server.log)
