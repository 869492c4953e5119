"""Identities on listings: the DKIM signing domains seen abusing a listed address, named with
``--identity`` and ``"identities"``, kept across hits, audited, shown by show, explain and lookup."""

from __future__ import annotations

import json
import sqlite3
import time

from hypothesis import given
from hypothesis import strategies as st

from conftest import Server
from rbl.addresses import parse_identity, parse_subject
from rbl.errors import SubjectError
from rbl.store import ListingStore
from rbl.store.listings import Entry, staged


def _shown(workspace, subject: str) -> dict:
    [line] = workspace.rbl("listing", "show", subject, "--json").stdout.splitlines()
    return json.loads(line)


def test_identities_are_added_by_each_hit_audited_and_shown(workspace):
    workspace.rbl("listing", "add", "3.5.141.7", "--identity", "Shop.Example", "--identity", "mailer.shop.example")
    assert _shown(workspace, "3.5.141.7")["identities"] == ["mailer.shop.example", "shop.example"]
    workspace.rbl("listing", "add", "3.5.141.7", "--identity", "other.example")
    workspace.rbl("listing", "add", "3.5.141.7")  # a hit naming none keeps them
    assert _shown(workspace, "3.5.141.7")["identities"] == ["mailer.shop.example", "other.example", "shop.example"]
    assert "identities=mailer.shop.example,other.example,shop.example" in workspace.rbl(
        "listing", "show", "3.5.141.7").stdout
    with sqlite3.connect(workspace.db) as conn:
        rows = conn.execute("SELECT before, after FROM audit WHERE subject = '3.5.141.7' ORDER BY id").fetchall()
    assert json.loads(rows[1][0])["identities"] == ["mailer.shop.example", "shop.example"]
    assert json.loads(rows[1][1])["identities"] == ["mailer.shop.example", "other.example", "shop.example"]
    explained = json.loads(workspace.rbl("explain", "3.5.141.7", "--json").stdout)
    assert explained["zones"]["bl.example"]["listings"][0]["identities"][1] == "other.example"
    # Listed again after its removal: a new listing, the identities of this hit only.
    workspace.rbl("listing", "remove", "3.5.141.7")
    workspace.rbl("listing", "add", "3.5.141.7", "--identity", "new.example")
    assert _shown(workspace, "3.5.141.7")["identities"] == ["new.example"]


def test_an_identity_that_is_not_a_signing_domain_is_refused_naming_the_option(workspace):
    for bad in ("*.shop.example", ".shop.example", "not a domain", "shop", "shop.123"):
        done = workspace.rbl("listing", "add", "3.5.141.8", "--identity", bad, check=False)
        assert done.returncode == 2 and "--identity" in done.stderr, (bad, done.stderr)
    done = workspace.rbl("listing", "add", "spam.example", "--identity", "shop.example", check=False)
    assert done.returncode == 2 and "--identity" in done.stderr
    assert workspace.rbl("listing", "show", check=False).stdout.strip() == "no listings"  # nothing written


def test_the_http_api_takes_identities_and_refuses_bad_ones_naming_the_field(workspace):
    token = workspace.rbl("operator", "token", "create").stdout.split()[-1]
    server = Server(workspace)
    try:
        status, body = server.http("POST", "/v1/listings", {"subjects": ["3.5.141.9"], "identities": ["shop.example"]},
                                   token=token)
        assert status == 201, body
        status, body = server.get("/v1/lookup/3.5.141.9")
        assert status == 200 and body["zones"]["bl.example"]["listings"][0]["identities"] == ["shop.example"]
        for identities in (["*.x.example"], "shop.example", [5], ["a.example"] * 101):
            status, body = server.http("POST", "/v1/listings", {"subjects": ["3.5.141.10"],
                                                                "identities": identities}, token=token)
            assert status == 400 and body["field"] == "identities", (identities, body)
        status, body = server.http("POST", "/v1/listings", {"subjects": ["spam.example"],
                                                            "identities": ["a.example"]}, token=token)
        assert status == 400 and body["field"] == "identities"
        assert server.get("/v1/lookup/3.5.141.10")[1]["zones"]["bl.example"]["listings"] == []
    finally:
        server.stop()


def test_a_bulk_import_keeps_the_identities_of_listings_it_refreshes(tmp_path):
    store = ListingStore(tmp_path / "rbl.db")
    store.add([Entry(parse_subject("3.5.141.7"), identities=("shop.example",))], zone="bl.example", actor="test")
    rows = [staged(Entry(parse_subject(f"3.5.141.{i}"))) for i in range(1, 200)]
    store.import_rows(rows, zone="bl.example", actor="test", source="feed", bulk_above=0)
    assert store.get("bl.example", parse_subject("3.5.141.7")).identity_list == ["shop.example"]
    assert store.get("bl.example", parse_subject("3.5.141.8")).identities is None


labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(st.lists(labels, min_size=1, max_size=4), st.from_regex(r"[a-z]{2,6}", fullmatch=True), st.booleans())
def test_a_signing_domain_reads_back_as_itself_in_lower_case(parts, top, upper):
    name = ".".join([*parts, top])
    given_as = name.upper() if upper else name
    assert parse_identity(given_as) == name
    assert parse_identity(name + ".") == name
    for bad in ("*." + name, "." + name, name + " x"):
        try:
            parse_identity(bad)
        except SubjectError:
            continue
        raise AssertionError(f"{bad!r} was taken as a signing domain")


def test_a_false_positive_about_one_identity_takes_only_that_identity_off(workspace):
    workspace.rbl("listing", "add", "3.5.141.7", "3.5.141.8", "--identity", "shop.example",
                  "--identity", "honest.example")
    vendor = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    server = Server(workspace)
    try:
        acted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status, body = server.http("POST", "/v1/evidence", {"items": [
            {"subject": "3.5.141.7", "action": "false_positive", "reference": "T-7", "acted_at": acted,
             "identity": "Honest.Example"}]}, token=vendor)
        assert status == 202, body
        status, body = server.http("POST", "/v1/evidence", {"items": [
            {"subject": "3.5.141.8", "action": "false_positive", "reference": "T-8", "acted_at": acted,
             "identity": "*.honest.example"}]}, token=vendor)
        assert status == 400 and body["field"] == "identity"
    finally:
        server.stop()
    kept = _shown(workspace, "3.5.141.7")
    assert kept["identities"] == ["shop.example"] and "disputed_at" not in kept  # still listed, not disputed
    assert _shown(workspace, "3.5.141.8")["identities"] == ["honest.example", "shop.example"]
    assert workspace.rbl("delist", "list", "--state", "all", "--json").stdout == ""  # no dispute queued
    with sqlite3.connect(workspace.db) as conn:
        (before, after), = conn.execute("SELECT before, after FROM audit WHERE action = 'identity-remove'").fetchall()
    assert json.loads(before)["identities"] == ["honest.example", "shop.example"]
    assert json.loads(after)["identities"] == ["shop.example"]
