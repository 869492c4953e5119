"""Notices to vendors: events in the outbox, pushed signed to a real webhook, mailed as a digest to a
real SMTP server, pulled with a long poll; never lost across a SIGKILL, never another vendor's."""

from __future__ import annotations

import email
import email.policy
import csv
import io
import json
import threading
import time
from pathlib import Path

import pytest

from conftest import Server
from test_metrics import scrape
from notices_peers import SECRET, Mailbox, Receiver, notify, signed, webhook

AWS = "3.5.141."  # the demo's EC2 pool, shared: 3.5.140.0/22
GCP = "34.35.0."  # Google Cloud, shared: 34.35.0.0/16


def readme_check():
    """The README's receiver-side signature check, run as written there."""
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text.split("```python\nimport hashlib, hmac", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec("import hashlib, hmac" + block, scope)
    return scope["genuine"]


def _events(server: Server, vendor: str, token: str, after: int = 0, **query) -> tuple[int, dict]:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return server.get(f"/v1/vendors/{vendor}/events?after={after}{extra}", token=token)


def _operator(workspace) -> str:
    return workspace.rbl("operator", "token", "create").stdout.split()[-1]


def _add(server: Server, token: str, *subjects: str) -> None:
    status, body = server.http("POST", "/v1/listings", {"subjects": list(subjects), "reason": "trap hit"}, token=token)
    assert status == 201, body


@pytest.mark.parametrize("section, problem, line", [
    ("  webhook:\n    url: ftp://hooks.example.net/rbl\n    secret_file: secrets/aws.key\n", "http:// or https://", 24),
    ("  webhook:\n    url: https://hooks.example.net/rbl\n    secret_file: secrets/missing.key\n", "secret_file", 25),
    ("  email:\n    to: not-an-address\n", "email address", 24),
    ("  email:\n    every: soon\n", "duration", 24),
    ("  pager: {}\n", "unknown key 'pager'", 23),
])
def test_policy_check_names_the_file_and_line_of_a_bad_notify_section(workspace, section, problem, line):
    notify(workspace, "aws", section)
    lines = (workspace.policy / "vendors" / "aws.yaml").read_text().splitlines()
    assert lines[21] == "notify:"  # the lines the cases name are the section's own
    done = workspace.rbl("policy", "check", check=False)
    assert done.returncode == 2
    assert f"aws.yaml, line {line}" in done.stderr and problem in done.stderr, done.stderr


def test_a_listing_in_aws_shared_space_reaches_its_webhook_signed_within_a_second(workspace):
    with Receiver() as receiver:
        notify(workspace, "aws", webhook(receiver.url("aws"), "aws"))
        server = Server(workspace)
        try:
            workspace.rbl("listing", "add", AWS + "7", "--reason", "spam trap hit", "--category", "spam")
            committed = time.monotonic()
            receiver.wait(lambda: receiver.accepted(), 1.0)
            delivery = receiver.deliveries[0]
            assert delivery.at - committed < 1.0
            assert signed(SECRET, delivery.signature, delivery.body)
            assert readme_check()(SECRET, delivery.signature, delivery.body)  # the README's receiver agrees
            assert not signed(b"another secret", delivery.signature, delivery.body)
            assert not signed(SECRET, delivery.signature, delivery.body.replace(b"3.5.141.7", b"3.5.141.8"))
            [event] = delivery.events
            assert event["id"] == 1 and event["vendor"] == "aws" and event["type"] == "listed"
            assert event["subject"] == AWS + "7" and event["zone"] == "bl.example"
            assert event["codes"] == [{"name": "block", "value": "127.0.0.2"}]
            assert event["reason"] == "spam trap hit" and event["category"] == "spam"
            assert event["space"] == "shared" and event["range"] == "3.5.140.0/22"
            first = time.strptime(event["first_seen"], "%Y-%m-%dT%H:%M:%SZ")
            deadline = time.strptime(event["sla_deadline"], "%Y-%m-%dT%H:%M:%SZ")
            assert time.mktime(deadline) - time.mktime(first) == 24 * 3600  # listing.yaml: sla 24h
            assert event["expires_at"] > event["first_seen"]
            # Outside every vendor's space, and a CIDR in shared space (it lists no one): nothing.
            workspace.rbl("listing", "add", "192.0.2.77", "3.5.140.0/24")
            workspace.rbl("listing", "remove", AWS + "7")
            receiver.wait(lambda: len(receiver.accepted()) == 2, 2.0)
            time.sleep(0.3)
            assert [(e["id"], e["type"], e["subject"], e["reason"]) for e in receiver.accepted()] == [
                (1, "listed", AWS + "7", "spam trap hit"), (2, "delisted", AWS + "7", "removed")]
        finally:
            server.stop()


def test_a_receiver_down_for_30_seconds_then_up_gets_every_event_once_in_order(workspace):
    operator = _operator(workspace)
    with Receiver() as receiver:
        started: list[float] = []

        def answer() -> int:
            started.append(started[0] if started else time.monotonic())
            return 500 if time.monotonic() - started[0] < 30 else 200

        receiver.answer = answer
        notify(workspace, "aws", webhook(receiver.url("aws"), "aws", "    retry_max: 2s\n    failing_after: 10s\n"))
        server = Server(workspace)
        try:
            added = []
            for i in range(12):  # listings while it is down, and one once it is up again
                added.append(AWS + str(10 + i))
                _add(server, operator, added[-1])
                time.sleep(2.5 if i < 11 else 0)
            receiver.wait(lambda: len(receiver.accepted()) >= 1, 10)
            _status, _type, text = scrape(server, operator)
            assert 'rbl_notice_failed_attempts_total{vendor="aws",channel="webhook"}' in text
            # Down past failing_after during the outage: the server logged it once (checked below).
            _add(server, operator, AWS + "99")
            added.append(AWS + "99")
            receiver.wait(lambda: len(receiver.accepted()) == len(added), 10)
            time.sleep(0.5)
            accepted = receiver.accepted()
            assert [e["id"] for e in accepted] == list(range(1, len(added) + 1))  # each once, in order
            assert [e["subject"] for e in accepted] == added
            assert sum(d.status == 500 for d in receiver.deliveries) >= 8  # retried through the outage
            gaps = [b.at - a.at for a, b in zip(receiver.deliveries, receiver.deliveries[1:]) if a.status == 500]
            assert max(gaps) < 2.5  # backoff capped at retry_max, with jitter
            said = [line for line in server.log if "notices to aws by webhook failing" in line]
            assert len(said) == 1, "".join(server.log[-40:])  # once per outage, not once an attempt
            _status, _type, text = scrape(server, operator)
            assert 'rbl_notice_failing{vendor="aws",channel="webhook"} 0' in text
            assert f'rbl_notice_delivered_total{{vendor="aws",channel="webhook"}} {len(added)}' in text
            assert 'rbl_notice_oldest_undelivered_seconds{vendor="aws",channel="webhook"} 0.0' in text
            attempts = next(line for line in text.splitlines()
                            if line.startswith('rbl_notice_failed_attempts_total{vendor="aws"'))
            assert int(attempts.split()[-1]) == sum(d.status == 500 for d in receiver.deliveries)
        finally:
            server.stop()


def test_the_failing_mark_shows_in_metrics_and_the_cli_while_events_wait(workspace):
    operator = _operator(workspace)
    with Receiver() as receiver:
        receiver.answer = lambda: 503
        notify(workspace, "aws", webhook(receiver.url("aws"), "aws", "    retry_max: 1s\n    failing_after: 2s\n"))
        server = Server(workspace)
        try:
            _add(server, operator, AWS + "5", AWS + "6")
            receiver.wait(lambda: len(receiver.deliveries) >= 4 and receiver.deliveries[-1].at
                          - receiver.deliveries[0].at > 2.5, 10)
            time.sleep(0.5)
            _status, _type, text = scrape(server, operator)
            assert 'rbl_notice_failing{vendor="aws",channel="webhook"} 1' in text
            assert 'rbl_notice_events_total{vendor="aws"} 2' in text
            assert 'rbl_notice_delivered_total{vendor="aws",channel="webhook"} 0' in text
            age = next(line for line in text.splitlines()
                       if line.startswith('rbl_notice_oldest_undelivered_seconds{vendor="aws"'))
            assert float(age.split()[-1]) >= 2
            shown = workspace.rbl("vendor", "notices", "aws").stdout
            assert "webhook: FAILING: delivered through 0, 2 waiting" in shown and "HTTP 503" in shown
            as_json = json.loads(workspace.rbl("vendor", "notices", "aws", "--json").stdout)
            assert [e["subject"] for e in as_json["events"]] == [AWS + "5", AWS + "6"]
            assert as_json["channels"][0]["failing"] is True
            receiver.answer = lambda: 200
            receiver.wait(lambda: len(receiver.accepted()) == 2, 5)
        finally:
            server.stop()


def test_sigkill_while_listings_are_added_and_delivered_loses_and_invents_nothing(workspace):
    operator = _operator(workspace)
    subjects = [f"3.5.{140 + i // 250}.{i % 250 + 1}" for i in range(1000)]
    with Receiver() as receiver:
        notify(workspace, "aws", webhook(receiver.url("aws"), "aws", "    retry_max: 1s\n"))
        server = Server(workspace)
        stop = threading.Event()
        sent: list[str] = []

        def add_all(target: Server) -> None:
            for subject in subjects[len(sent):]:
                if stop.is_set():
                    return
                try:
                    _add(target, operator, subject)
                except OSError:
                    return  # the server is gone: what it committed is in the store
                sent.append(subject)

        adder = threading.Thread(target=add_all, args=(server,))
        adder.start()
        try:
            receiver.wait(lambda: len(receiver.accepted()) >= 300, 60)
            assert not server.kill()  # SIGKILL mid-stream: no cleanup runs
            adder.join(30)
            server = server.restarted()
            add_all(server)  # the rest, then the restarted server delivers what it owes
            status, listed = server.get("/v1/vendors/aws", token=operator)
            assert status == 200
            newest = json.loads(workspace.rbl("vendor", "notices", "aws", "--json", "--events", "0").stdout)["written"]
            receiver.wait(lambda: len(receiver.deduped()) >= newest, 60)
        finally:
            stop.set()
            server.stop()
    kept = receiver.deduped()
    assert sorted(i for _, i in kept) == list(range(1, newest + 1))  # every id, no gap
    active = {json.loads(line)["subject"] for line in workspace.rbl("listing", "show", "--json").stdout.splitlines()}
    assert {e["subject"] for e in kept.values()} == active == set(subjects)  # none lost, none invented
    assert all(e["type"] == "listed" for e in kept.values())
    duplicates = len(receiver.accepted()) - len(kept)
    assert duplicates <= 500  # at least once: at most the batch in flight at the kill comes again
    # An import that fails leaves no event: all lines or none, the events with them.
    bad = workspace.root / "bad.txt"
    bad.write_text("3.5.143.240\n3.5.143.241\nnot-an-address\n")
    assert workspace.rbl("listing", "import", str(bad), check=False).returncode == 2
    after = json.loads(workspace.rbl("vendor", "notices", "aws", "--json", "--events", "0").stdout)["written"]
    assert after == newest


def test_the_digest_reaches_a_real_smtp_server_with_a_readable_and_a_machine_part(workspace):
    operator = _operator(workspace)
    with Mailbox(workspace.root) as box:
        notify(workspace, "aws", "  email:\n    to: abuse@aws.example\n    every: 4s\n")
        env = dict(workspace.env, SSL_CERT_FILE=str(box.cert))  # the relay's certificate, trusted
        server = Server(workspace, "--smtp", f"127.0.0.1:{box.port}", "--smtp-starttls",
                        "--smtp-credentials", str(box.credentials(workspace.root)), "--smtp-from", "rbl@bl.example",
                        env=env)
        try:
            first = [AWS + "31", AWS + "32", AWS + "33"]
            _add(server, operator, *first, "192.0.2.31")  # the last is no vendor's
            deadline = time.monotonic() + 10
            while not box.messages and time.monotonic() < deadline:
                time.sleep(0.05)
            assert box.messages, "".join(server.log)
            time.sleep(0.5)
            second = [AWS + "34", AWS + "35"]
            _add(server, operator, *second)
            workspace.rbl("listing", "remove", AWS + "31")
            deadline = time.monotonic() + 15
            while len(box.messages) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            server.stop()
    assert len(box.messages) == 2
    assert box.messages[1][0] - box.messages[0][0] >= 3.5  # one digest per `every` at most
    parsed = []
    for _at, raw, rcpt in box.messages:
        assert rcpt == ["abuse@aws.example"]
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert message["From"] == "rbl@bl.example" and message["To"] == "abuse@aws.example"
        assert message["Message-ID"].startswith("<rbl.aws.") and message["Message-ID"].endswith("@bl.example>")
        text = message.get_body(("plain",)).get_content()
        parts = {part.get_filename(): part for part in message.iter_attachments()}
        events = json.loads(parts["events.json"].get_content())["events"]
        rows = list(csv.DictReader(io.StringIO(parts["listed.csv"].get_content())))
        ids = [e["id"] for e in events]
        assert message["X-Rbl-Events"] == f"{ids[0]}-{ids[-1]}"
        assert all(f"#{i}" in text for i in ids) and "Amazon Web Services" in text
        parsed.append((events, rows))
    (events1, rows1), (events2, rows2) = parsed
    assert [r["subject"] for r in rows1] == first and all(r["codes"] == "block" for r in rows1)
    assert [e["type"] for e in events1] == ["listed"] * 3 and [e["id"] for e in events1] == [1, 2, 3]
    assert [r["subject"] for r in rows2] == second  # exactly the addresses listed in that period
    assert [(e["id"], e["type"], e["subject"]) for e in events2] == [
        (4, "listed", AWS + "34"), (5, "listed", AWS + "35"), (6, "delisted", AWS + "31")]


def test_the_long_poll_answers_within_100_ms_of_an_event_and_empty_after_its_wait(workspace):
    operator = _operator(workspace)
    vendor = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    server = Server(workspace)
    try:
        answered: dict = {}

        def poll() -> None:
            answered["reply"] = _events(server, "aws", vendor, 0, wait=10)
            answered["at"] = time.monotonic()

        waiting = threading.Thread(target=poll)
        waiting.start()
        time.sleep(0.5)
        assert "reply" not in answered  # nothing yet: it waits
        _add(server, operator, AWS + "40")
        committed = time.monotonic()
        waiting.join(5)
        status, body = answered["reply"]
        assert status == 200 and [e["subject"] for e in body["events"]] == [AWS + "40"]
        assert answered["at"] - committed < 0.1
        assert body["next"] == body["newest"] == 1
        started = time.monotonic()
        status, body = _events(server, "aws", vendor, 1, wait=1)
        assert status == 200 and body["events"] == [] and body["next"] == 1
        assert 1.0 <= time.monotonic() - started < 1.5
        for query, field in (("wait=61", "wait"), ("limit=0", "limit"), ("wait=x", "wait")):
            status, body = server.get(f"/v1/vendors/aws/events?{query}", token=vendor)
            assert status == 400 and body["field"] == field
        status, body = server.get("/v1/vendors/aws/events?after=-1", token=vendor)
        assert status == 400 and body["field"] == "after"
        assert server.get("/v1/vendors/aws/events")[0] == 401
        assert server.get("/v1/vendors/nobody/events", token=operator)[0] == 404
    finally:
        server.stop()


def test_a_vendor_never_sees_another_vendors_events_by_any_channel(workspace):
    operator = _operator(workspace)
    gcp = workspace.rbl("vendor", "token", "create", "gcp").stdout.split()[-1]
    with Receiver() as receiver:
        notify(workspace, "aws", webhook(receiver.url("aws"), "aws"))
        notify(workspace, "gcp", webhook(receiver.url("gcp"), "gcp"))
        server = Server(workspace)
        try:
            _add(server, operator, AWS + "50", GCP + "50", AWS + "51", GCP + "51")
            receiver.wait(lambda: len(receiver.accepted()) == 4, 3)
            status, body = _events(server, "aws", gcp)
            assert status == 403 and "error" in body
            status, body = _events(server, "gcp", gcp)
            assert status == 200 and [e["subject"] for e in body["events"]] == [GCP + "50", GCP + "51"]
            assert [e["id"] for e in body["events"]] == [1, 2]  # numbered per vendor
            status, body = _events(server, "aws", operator)
            assert [e["subject"] for e in body["events"]] == [AWS + "50", AWS + "51"]
        finally:
            server.stop()
    for delivery in receiver.deliveries:
        path_vendor = {e["vendor"] for e in delivery.events}
        assert len(path_vendor) == 1
    by_hook = {}
    for d in receiver.deliveries:
        by_hook.setdefault(d.events[0]["vendor"], []).extend(e["subject"] for e in d.events)
    assert by_hook == {"aws": [AWS + "50", AWS + "51"], "gcp": [GCP + "50", GCP + "51"]}
    assert all(signed(SECRET, d.signature, d.body) for d in receiver.deliveries)


def test_remediation_expiry_and_overdue_are_told_as_they_happen(workspace):
    listing = workspace.policy / "listing.yaml"
    listing.write_text(listing.read_text().replace("sla: 24h", "sla: 3s"))
    operator = _operator(workspace)
    vendor = workspace.rbl("vendor", "token", "create", "aws").stdout.split()[-1]
    server = Server(workspace)
    try:
        _add(server, operator, AWS + "60", AWS + "61")
        workspace.rbl("listing", "add", AWS + "62", "--expires", "2s")
        time.sleep(1.1)  # the vendor acts after the listing (evidence from before it is not remediation)
        acted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time()))
        status, body = server.http("POST", "/v1/evidence", {"items": [
            {"subject": AWS + "60", "action": "tenant_terminated", "reference": "T-1", "acted_at": acted}]},
            token=vendor)
        assert status == 202, body
        deadline = time.monotonic() + 10
        kinds: dict = {}
        while time.monotonic() < deadline:
            events = _events(server, "aws", vendor)[1]["events"]
            kinds = {(e["type"], e["subject"]): e for e in events}
            if ("overdue", AWS + "61") in kinds and ("delisted", AWS + "62") in kinds:
                break
            time.sleep(0.2)
        remediated = kinds[("remediated", AWS + "60")]
        assert remediated["codes"] == [{"name": "throttle", "value": "127.0.0.4"}] and remediated["acted_at"] == acted
        assert kinds[("delisted", AWS + "62")]["reason"] == "expired"
        overdue = kinds[("overdue", AWS + "61")]
        assert overdue["sla_deadline"] > overdue["first_seen"]
        assert ("overdue", AWS + "60") not in kinds  # remediated in time
        ids = [e["id"] for e in events]
        assert ids == sorted(ids) == list(range(1, len(ids) + 1))
        time.sleep(1.5)  # said once: later looks find nothing new
        assert len(_events(server, "aws", vendor)[1]["events"]) == len(events)
    finally:
        server.stop()


def test_changes_made_while_the_policy_is_broken_are_told_from_the_last_good_one(workspace):
    with Receiver() as receiver:
        notify(workspace, "aws", webhook(receiver.url("aws"), "aws"))
        server = Server(workspace)
        try:
            aws = workspace.policy / "vendors" / "aws.yaml"
            good = aws.read_text()
            aws.write_text(good.replace("space: shared", "space: sharde", 1))
            done = workspace.rbl("listing", "add", AWS + "70")
            assert "warning" in done.stderr and "left to rbl serve" in done.stderr
            receiver.wait(lambda: receiver.accepted(), 5)
            assert [(e["type"], e["subject"]) for e in receiver.accepted()] == [("listed", AWS + "70")]
            aws.write_text(good)
        finally:
            server.stop()
