"""The pages of a real `rbl serve --http`, driven in Debian's headless Chromium.

One server for the module, with a store seeded through the store's own paths:
a month and more of Linode listings nobody remediates (a negligent vendor,
with a history of scorings day by day, as the primary records them), and
today's listings for the subjects the pages are asked about. Each test opens
its own browser (its own cookies). With RBL_SCREENSHOTS=DIR set, the tests also
save the README's screenshots there (desktop and a 390-pixel phone); every page is checked to fit the
phone either way.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import sqlite3
import urllib.parse
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from browser import Browser, describe, serious
from conftest import Server, Workspace, free_port
from notices_peers import notify, webhook
from rbl.addresses import parse_subject
from rbl.policy.vendors import load_policy
from rbl.store import ListingStore
from rbl.store.history import VendorHistory
from rbl.store.listings import Entry
from rbl.store.tokens import TokenStore
from rbl.zone.config import load_zones
from rbl.zone.source import vendor_standing

DAY = dt.timedelta(days=1)
SHOTS = os.environ.get("RBL_SCREENSHOTS")

# Subject: what bl.example answers for it, and words its page must say.
SUBJECTS = {
    "3.5.141.7": ({"127.0.0.2"}, "shared space is listed one address at a time"),  # EC2, listed
    "192.0.2.99": ({"127.0.0.3"}, "Block-range: 8 addresses are listed in 192.0.2.0/24"),  # escalated /24
    "3.5.141.9": ({"127.0.0.4"}, "reported that it acted on this address"),  # throttled after evidence
    "2001:db8::25": ({"127.0.0.2"}, "spam from a v6 host"),  # IPv6
    "198.51.100.7": (set(), "not listed"),  # unlisted
    "45.79.0.200": ({"127.0.0.5"}, "Throttle-range: linode is negligent"),  # the tier changes the answer
}


@dataclass
class Site:
    workspace: Workspace
    server: Server
    tokens: dict[str, tuple[int, str]]  # name: (id, text)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def fetch(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
              source: str = "127.0.0.1") -> tuple[int, dict, str]:
        """One request from ``source`` (another loopback address is another client to the rate limits)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.http_port, timeout=10, source_address=(source, 0))
        with closing(conn):
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode("utf-8", "replace")

    def api(self, method: str, path: str, body, token: str | None = None, source: str = "127.0.0.1"):
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        status, _, text = self.fetch(method, path, json.dumps(body).encode(), headers, source)
        return status, json.loads(text)

    def dns(self, name: str) -> set[str]:
        return self.server.addresses(name)


def seed(workspace: Workspace, now: dt.datetime) -> dict[str, tuple[int, str]]:
    """40 days of Linode listings never remediated, scored day by day into the history as the
    primary does at each compile (so the plots reach back past the 30-day window); the tokens."""
    policy = load_policy(workspace.policy)
    zones = load_zones(workspace.zones)
    clock = [now - 40 * DAY]
    store = ListingStore(workspace.db, clock=lambda: clock[0])
    rules = policy.listing.expiry
    for day in range(40):
        clock[0] = now - (40 - day) * DAY
        store.add([Entry(parse_subject(f"45.79.0.{day + 10}"))], zone="bl.example", actor="trap",
                  reason="spam trap", expires=rules.default, repeat=rules)
        standing = vendor_standing(store, zones, policy, clock[0])
        VendorHistory(store).record(clock[0], standing.scores, standing.listed)
    clock[0] = now
    tokens = {}
    for name, scope, vendor in (("linode", "vendor", "linode"), ("aws", "vendor", "aws"),
                                ("operator", "operator", None)):
        token, text = TokenStore(store).create(scope, vendor, "test")
        tokens[name] = (token.id, text)
    store.close()
    return tokens


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    workspace = Workspace(tmp_path_factory.mktemp("pages"))
    tokens = seed(workspace, dt.datetime.now(dt.timezone.utc))
    workspace.rbl("listing", "add", "3.5.141.7", "3.5.141.8", "3.5.141.9", "--reason", "spam trap hit",
                  "--category", "spam", "--source", "trap-net-7")
    workspace.rbl("listing", "add", *[f"192.0.2.{i}" for i in range(1, 9)], "--reason", "botnet C&C")
    workspace.rbl("listing", "add", "2001:db8::25", "--reason", "spam from a v6 host")
    # Two more in Linode's shared 45.79.0.0/24 make it dense (8 listed): negligent, so throttle-range.
    workspace.rbl("listing", "add", "45.79.0.100", "45.79.0.101", "--reason", "spam trap hit")
    workspace.rbl("listing", "add", "bad.example", "--zone", "dkim.bl.example", "--reason", "phishing kit signer")
    # Linode's webhook is down (nothing listens there): its notices wait, failing, on the operator's page.
    notify(workspace, "linode", webhook(f"http://127.0.0.1:{free_port()}/hook", "linode",
                                        "    retry_max: 1s\n    failing_after: 1s\n"))
    server = Server(workspace)
    try:
        ready = Site(workspace, server, tokens)
        acted = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # after the listings
        item = {"action": "tenant_terminated", "reference": "T-9", "acted_at": acted}
        status, _ = ready.api("POST", "/v1/evidence", {"items": [{"subject": "3.5.141.9", **item},
                                                                 {"subject": "3.5.141.8", **item,
                                                                  "action": "false_positive"}]}, tokens["aws"][1])
        assert status == 202
        server.wait_for(lambda: ready.dns("9.141.5.3.bl.example") == {"127.0.0.4"}, timeout=5)
        # Someone asked (from another address than the browser's) for 192.0.2.5: the operator's queue.
        status, made = ready.api("POST", "/v1/delist-requests", {
            "subject": "192.0.2.5", "reason": "We cleaned the host <b>really</b>", "email": "noc@example.net"},
            source="127.0.0.3")
        assert status == 202, made
        yield ready
    finally:
        server.stop()


def shoot(browser: Browser, name: str) -> None:
    """The page fits a phone 390 pixels wide; with RBL_SCREENSHOTS, the README's screenshots of it
    (desktop and phone) are saved there."""
    folder = Path(SHOTS) if SHOTS else None
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
        browser.screenshot(folder / f"{name}-desktop.png")
    browser.resize(390, 844, mobile=True)  # at once, without a reload (which would post a form again)
    assert browser.horizontal_overflow() == 0, f"{name} is wider than a phone"
    if folder:
        browser.screenshot(folder / f"{name}-phone.png")
    browser.resize(1280, 900)


def submit(browser: Browser, button) -> None:
    """Click a form's button and wait for the page it loads."""
    old = browser.driver.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(browser.driver, 10).until(staleness_of(old))


def accessible(browser: Browser, what: str) -> None:
    found = serious(browser.axe())
    assert not found, f"{what}: {describe(found)}"


def page_codes(browser: Browser) -> dict[str, tuple[str, set[str]]]:
    """Per zone on a lookup page: the query name it shows and the codes it says DNS answers."""
    out = {}
    for section in browser.driver.find_elements(By.CSS_SELECTOR, "section[data-zone]"):
        codes = {c.get_attribute("data-code") for c in section.find_elements(By.CSS_SELECTOR, "code[data-code]")}
        out[section.get_attribute("data-zone")] = (section.get_attribute("data-query"), codes)
    return out


def test_every_subject_kind_shows_the_answer_dns_gives_and_why(site):
    with Browser.desktop() as browser:
        for subject, (codes, words) in SUBJECTS.items():
            browser.get(f"{site.base}/lookup?q={urllib.parse.quote(subject)}")
            shown = page_codes(browser)
            assert shown["bl.example"][1] == codes, subject
            for zone, (query, on_page) in shown.items():  # the same moment: nothing changes in between
                assert site.dns(query) == on_page, (subject, zone)
            text = browser.driver.find_element(By.TAG_NAME, "main").text
            assert words in text, (subject, text)
            assert ("Ask for delisting" in text) == bool(codes), subject
            if subject.startswith("45.79."):
                assert "The vendor's tier: negligent" in text
        # The EC2 address: its space in words, the vendor, the range; never the listing's source.
        browser.get(f"{site.base}/lookup?q=3.5.141.7")
        text = browser.driver.find_element(By.TAG_NAME, "main").text
        assert "3.5.140.0/22" in text and "Amazon Web Services" in text and "shared cloud space" in text.lower()
        assert "trap-net-7" not in browser.driver.page_source and "cli:" not in browser.driver.page_source
        assert shown and site.dns("7.141.5.3.cloud.bl.example") == {"127.0.1.1"}
        accessible(browser, "lookup, listed EC2 address")
        shoot(browser, "lookup")
        # The DKIM zone: a signing domain.
        browser.get(f"{site.base}/lookup?q=bad.example")
        shown = page_codes(browser)
        assert shown["dkim.bl.example"][1] == {"127.0.2.2"} == site.dns("bad.example.dkim.bl.example")
        assert "phishing kit signer" in browser.driver.page_source
        browser.get(f"{site.base}/lookup?q=192.0.2.99")
        accessible(browser, "lookup, escalated range")
        browser.get(f"{site.base}/")
        text = browser.driver.find_element(By.TAG_NAME, "main").text
        for code in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.1.1", "127.0.2.2",
                     "127.255.255.254"):
            assert code in text
        assert "never reject on this alone" in text and "dig +short 2.0.0.127.bl.example A" in text
        accessible(browser, "home")
        shoot(browser, "home")


def queue(site: Site, subject: str) -> list[dict]:
    status, body = site.api("GET", "/v1/delist-requests?state=all", None, site.tokens["operator"][1])
    assert status == 200
    return [r for r in body["requests"] if r["subject"] == subject and r["kind"] == "request"]


def test_the_delisting_form_queues_once_refuses_forgery_and_shows_the_limit(site):
    with Browser.desktop() as browser:
        browser.get(f"{site.base}/lookup?q=3.5.141.7")
        form = browser.driver.find_element(By.CSS_SELECTOR, "form.delist")
        form.find_element(By.NAME, "email").send_keys("postmaster@shop.example")
        form.find_element(By.NAME, "reason").send_keys("The tenant behind this address was terminated.")
        submit(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        made = browser.driver.find_element(By.TAG_NAME, "main").text
        number = re.search(r"queued\s+as number (\d+)", made)
        assert number, made
        assert "Nothing is delisted automatically" in made
        accessible(browser, "delisting request sent")
        shoot(browser, "delist-requested")
        assert [r["id"] for r in queue(site, "3.5.141.7")] == [int(number[1])]
        # Pressing the button again: the same request, not a second one.
        browser.driver.back()
        # The page back from the history is a new document: wait for its form, not the old one's.
        button = WebDriverWait(browser.driver, 10).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
            and d.find_elements(By.CSS_SELECTOR, "form.delist button[type=submit]"))[0]
        submit(browser, button)
        assert f"number {number[1]}" in browser.driver.find_element(By.TAG_NAME, "main").text
        assert len(queue(site, "3.5.141.7")) == 1

        # Another site posts the same fields (the signed one too, copied from a real page): refused.
        browser.driver.back()
        fields = {e.get_attribute("name"): e.get_attribute("value")
                  for e in browser.driver.find_elements(By.CSS_SELECTOR, "form.delist input[type=hidden]")}
        browser.post_cross_site(f"{site.base}/lookup/delist",
                                {**fields, "email": "evil@attacker.example", "reason": "forged"})
        assert "Form refused" in browser.driver.title
        assert len(queue(site, "3.5.141.7")) == 1
        # Without a browser: no cookie, no Origin: refused too, as a page.
        status, headers, text = site.fetch("POST", "/lookup/delist", urllib.parse.urlencode(
            {**fields, "email": "a@b.example", "reason": "x"}).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"}, source="127.0.0.4")
        assert status == 403 and headers["Content-Type"].startswith("text/html") and "Form refused" in text

        # The form's rate limit (burst 3 per client, the forged post counted too) answers a page.
        browser.get(f"{site.base}/lookup?q=3.5.141.7")
        form = browser.driver.find_element(By.CSS_SELECTOR, "form.delist")
        form.find_element(By.NAME, "email").send_keys("other@shop.example")
        form.find_element(By.NAME, "reason").send_keys("again")
        submit(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        assert browser.driver.title.startswith("Too many requests")
        assert "Try again in" in browser.driver.find_element(By.TAG_NAME, "main").text
        accessible(browser, "rate limited")
        assert len(queue(site, "3.5.141.7")) == 1


def sign_in(browser: Browser, site: Site, token: str) -> None:
    browser.driver.find_element(By.ID, "token").send_keys(token)
    submit(browser, browser.driver.find_element(By.CSS_SELECTOR, "form.signin button[type=submit]"))


def test_a_vendor_signs_in_sees_its_dashboard_and_nothing_else_until_revoked(site):
    token_id, token = site.tokens["linode"]
    with Browser.desktop() as browser:
        browser.get(f"{site.base}/vendors/linode")
        assert browser.driver.current_url == f"{site.base}/signin?next=/vendors/linode"
        accessible(browser, "sign-in")
        shoot(browser, "signin")
        sign_in(browser, site, "rbl_not-a-real-token")
        assert "not one in force" in browser.driver.page_source
        sign_in(browser, site, token)
        assert browser.driver.current_url == f"{site.base}/vendors/linode"
        cookie = browser.driver.get_cookie("rbl_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        source = browser.driver.page_source
        assert token not in source and token[4:] not in source
        main = browser.driver.find_element(By.TAG_NAME, "main").text
        assert "Tier: negligent" in main and "Overdue" in main
        # Open cases oldest first, each with its SLA deadline (24 hours after it opened).
        rows = browser.driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=cases] tbody tr")
        opened = [row.find_elements(By.TAG_NAME, "td")[1].text[:16] for row in rows]
        assert len(rows) >= 29 and opened == sorted(opened)
        first = rows[0].find_elements(By.TAG_NAME, "td")
        assert (dt.datetime.strptime(first[2].text[:16], "%Y-%m-%d %H:%M")
                - dt.datetime.strptime(first[1].text[:16], "%Y-%m-%d %H:%M")) == dt.timedelta(hours=24)
        # Both plots are drawn (SVG from the server), from a history older than the 30-day window.
        for img in browser.driver.find_elements(By.CSS_SELECTOR, "figure img"):
            assert browser.driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        since = dt.date.fromisoformat(re.search(r"Day by day, since (\S+)", main)[1])
        assert since <= dt.date.today() - dt.timedelta(days=39)
        accessible(browser, "vendor dashboard")
        shoot(browser, "vendor")
        status, headers, svg = site.fetch("GET", "/vendors/linode/score.svg",
                                          headers={"Cookie": f"rbl_session={cookie['value']}"})
        assert status == 200 and headers["Content-Type"] == "image/svg+xml" and "<svg" in svg
        assert site.fetch("GET", "/vendors/linode/score.svg")[0] == 303  # no session: to sign-in

        # Another vendor's dashboard and the operator's queue are not its to open.
        browser.get(f"{site.base}/vendors/aws")
        assert browser.driver.title.startswith("Not yours") and "Amazon" not in browser.driver.page_source
        browser.get(f"{site.base}/operator")
        assert browser.driver.title.startswith("Not yours") and "192.0.2.5" not in browser.driver.page_source

        # The primary records its own scoring of today beside the seeded days.
        with closing(sqlite3.connect(site.workspace.db)) as db:
            assert db.execute("SELECT count(*) FROM vendor_days WHERE vendor = 'linode' AND day = ?",
                              [dt.datetime.now(dt.timezone.utc).date().isoformat()]).fetchone()[0] == 1

        # Revoked: the next page load goes to sign-in.
        site.workspace.rbl("vendor", "token", "revoke", str(token_id))
        browser.get(f"{site.base}/vendors/linode")
        assert browser.driver.current_url == f"{site.base}/signin?next=/vendors/linode"


def test_signing_out_ends_the_session(site):
    with Browser.desktop() as browser:
        browser.get(f"{site.base}/signin")
        sign_in(browser, site, site.tokens["aws"][1])
        assert browser.driver.current_url == f"{site.base}/vendors/aws"
        value = browser.driver.get_cookie("rbl_session")["value"]
        submit(browser, browser.driver.find_element(By.CSS_SELECTOR, "header form button"))
        assert browser.driver.current_url == f"{site.base}/signin"
        # The old cookie, replayed, opens nothing.
        status, headers, _ = site.fetch("GET", "/vendors/aws", headers={"Cookie": f"rbl_session={value}"})
        assert status == 303 and headers["Location"].startswith("/signin")


def test_the_operator_closes_a_request_and_a_dispute_from_the_page(site):
    token_id, token = site.tokens["operator"]
    with Browser.desktop() as browser:
        browser.get(f"{site.base}/operator")
        sign_in(browser, site, token)
        assert browser.driver.current_url == f"{site.base}/operator"
        # The requester's words, escaped: markup shows as text.
        assert "We cleaned the host <b>really</b>" in browser.driver.find_element(By.TAG_NAME, "main").text
        site.server.wait_for(lambda: "linode by webhook" in site.fetch("GET", "/operator", headers={
            "Cookie": "; ".join(f"{c['name']}={c['value']}" for c in browser.driver.get_cookies())})[2], timeout=10)
        browser.get(f"{site.base}/operator")
        failing = browser.driver.find_element(By.CSS_SELECTOR, "section.alert").text
        assert "Notices failing (1)" in failing and re.search(r"linode by webhook: [1-9]\d* waiting, the oldest \d+ "
                                                                 r"(seconds|minutes|hours) old", failing), failing
        assert "ClientConnectorError" in failing or "Connect" in failing, failing
        accessible(browser, "operator queue")
        shoot(browser, "operator")
        items = {a.find_element(By.TAG_NAME, "h3").text: a for a in browser.driver.find_elements(By.CSS_SELECTOR,
                                                                                                    "article.item")}
        request = next(a for h, a in items.items() if h.startswith("Request") and "192.0.2.5" in h)
        request.find_element(By.CSS_SELECTOR, "input[value=rejected]").click()
        request.find_element(By.NAME, "note").send_keys("Still sending: see the trap hits.")
        submit(browser, request.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        assert "as rejected" in browser.driver.find_element(By.CSS_SELECTOR, "[role=status]").text
        dispute = next(a for a in browser.driver.find_elements(By.CSS_SELECTOR, "article.item")
                       if a.find_element(By.TAG_NAME, "h3").text.startswith("Dispute"))
        assert "3.5.141.8" in dispute.text and "from vendor aws" in dispute.text
        dispute.find_element(By.CSS_SELECTOR, "input[value=delisted]").click()
        dispute.find_element(By.NAME, "note").send_keys("Agreed: a false positive.")
        submit(browser, dispute.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        assert "as delisted" in browser.driver.find_element(By.CSS_SELECTOR, "[role=status]").text
        left = [a.find_element(By.TAG_NAME, "h3").text for a in browser.driver.find_elements(By.CSS_SELECTOR,
                                                                                           "article.item")]
        assert not [h for h in left if "192.0.2.5" in h or "3.5.141.8" in h], left  # both left the queue
    # The accepted dispute removed the listing; the rejected request kept 192.0.2.5's.
    site.server.wait_for(lambda: site.dns("8.141.5.3.bl.example") == set(), timeout=5)
    assert site.dns("5.2.0.192.bl.example") == {"127.0.0.2", "127.0.0.3"}
    with closing(sqlite3.connect(site.workspace.db)) as db:
        actors = db.execute("SELECT actor, action FROM audit WHERE action IN ('delist-close', 'remove') "
                            "AND actor LIKE 'operator%' ORDER BY id").fetchall()
    assert actors == [(f"operator token:{token_id}", "delist-close"), (f"operator token:{token_id}", "remove"),
                      (f"operator token:{token_id}", "delist-close")]


HOSTILE = ["<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "a" * 10_000, "192.0.2.1\x00",
           "\u202e1.2.0.291", "ex\u200bample.com", "１２７.０.０.２", "exаmple.com", "%00", "\ud800"]


def test_subjects_written_to_attack_the_page_come_back_escaped_or_refused(site):
    for text in HOSTILE:
        query = urllib.parse.quote(text, errors="surrogatepass")
        status, headers, body = site.fetch("GET", f"/lookup?q={query}")
        assert status in (200, 400), (text[:40], status)
        assert headers["Content-Type"].startswith("text/html")
        assert "<script" not in body and "onerror=alert" not in body.replace("onerror=alert(1)&gt;", "")
        assert "Traceback" not in body and "\x00" not in body
        if status == 400:
            assert 'class="problem"' in body
    with Browser.desktop() as browser:
        browser.get(f"{site.base}/lookup?q={urllib.parse.quote(HOSTILE[0])}")
        assert browser.driver.title.startswith("Not a subject")
        assert "'<script>alert(1)</script>' is not a valid domain" in browser.driver.find_element(By.TAG_NAME,
                                                                                                   "main").text
        accessible(browser, "a refused subject")
        shoot(browser, "refused")


def test_every_page_carries_the_security_headers_and_no_script(site):
    for path in ("/", "/lookup", "/lookup?q=3.5.141.7", "/signin", "/vendors/aws", "/operator", "/nowhere",
                 "/v1/lookup/3.5.141.7", "/static/rbl.css"):
        status, headers, body = site.fetch("GET", path)
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Referrer-Policy"] == "same-origin", path
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "default-src 'none'" in csp, path
        assert "<script" not in body, path
    # Pages answer errors as pages; the API stays JSON.
    status, headers, body = site.fetch("GET", "/nowhere")
    assert status == 404 and headers["Content-Type"].startswith("text/html")
    status, headers, body = site.fetch("GET", "/v1/nowhere")
    assert status == 404 and json.loads(body)["error"]
    status, _, body = site.fetch("GET", "/v1/lookup/3.5.141.7")
    assert status == 200 and json.loads(body)["zones"]["bl.example"]["codes"] == ["127.0.0.2"]


def test_the_http_side_yields_to_dns(site):
    """Pages and the API run at nice 19 in threads of their own; the DNS workers and the primary's
    loop at the niceness they started with, so under load DNS answers first (bench/pages.py)."""
    assert site.fetch("GET", "/lookup?q=3.5.141.7")[0] == 200  # the read threads exist now

    def nice(stat: Path) -> int:
        return int(stat.read_text().rsplit(")", 1)[1].split()[16])  # field 19 of /proc/PID/stat

    pid = site.server.proc.pid
    threads = {int(task.name): nice(task / "stat") for task in Path(f"/proc/{pid}/task").iterdir()}
    base = threads[pid]  # the main thread: the event loop that publishes snapshots
    assert sorted(set(threads.values())) == [base, min(19, base + 19)], threads
    assert sum(value != base for value in threads.values()) >= 2  # the HTTP loop and a read thread
    workers = site.server.children()
    assert workers and all(nice(Path(f"/proc/{worker}/stat")) == base for worker in workers)
