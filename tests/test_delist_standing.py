"""A delisting request is judged by what the zone answers now, the vendors' tiers included.

Regression: the HTTP layer explained the subject without the vendors' standing,
as if every vendor were neutral, so an address answering throttle-range (a
negligent vendor's dense shared range) was "not listed" and the request refused,
and a cooperative vendor's throttled address was recorded as blocked.
"""

from __future__ import annotations

import datetime as dt

from conftest import Server
from rbl.policy.vendors import load_policy
from test_vendor_record import simulate_month

ASK = {"reason": "The tenant is gone.", "email": "postmaster@example.com"}


def test_a_delisting_request_sees_the_tiers_dns_answers_with(workspace):
    # A month of aws remediating within hours (cooperative) and linode never (negligent).
    simulate_month(workspace.db, load_policy(workspace.policy), dt.datetime.now(dt.timezone.utc))
    # linode's 8th listed address makes its shared 45.79.0.0/24 dense; aws's new listing is throttled.
    workspace.rbl("listing", "add", "45.79.0.200", "3.5.141.200")
    server = Server(workspace)
    try:
        server.wait_for(lambda: server.addresses("100.0.79.45.bl.example") == {"127.0.0.5"}, timeout=5)
        assert server.addresses("200.141.5.3.bl.example") == {"127.0.0.4"}

        # Not listed itself, but answering throttle-range: there is something to delist.
        status, made = server.http("POST", "/v1/delist-requests", {**ASK, "subject": "45.79.0.100"})
        assert status == 202, made
        assert made["listed_as"] == {"codes": ["127.0.0.5"], "listings": []}
        # Listed, answering throttle (not block): the request records what receivers see.
        status, made = server.http("POST", "/v1/delist-requests", {**ASK, "subject": "3.5.141.200"})
        assert status == 202, made
        assert made["listed_as"] == {"codes": ["127.0.0.4"], "listings": ["3.5.141.200"]}
    finally:
        server.stop()
